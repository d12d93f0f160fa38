//! TEMPORARY stand-in for the core's `FileMap::lock_owned` / `OwnedGuard`
//! (issue 14 contract), until that lands on main. Same API; `WrongThread`
//! and `NotLocked` come out as `Error::Io` here (the real variants do not
//! exist yet); here they are `Fail::Status` with the same codes. Deleted by the merge of main.

use std::marker::PhantomData;
use std::thread::ThreadId;

use filemap::{FileMap, Guard, Published, Result, Snapshot};

use crate::status::{Fail, FM_E_NOT_LOCKED, FM_E_WRONG_THREAD};

pub(crate) trait LockOwned {
    fn lock_owned(&self) -> Result<OwnedGuard>;
}

impl LockOwned for FileMap {
    fn lock_owned(&self) -> Result<OwnedGuard> {
        let guard = self.lock()?;
        // SAFETY: the shim's guard never outlives the `FmMap` holding the
        // `FileMap` (the lock slot is declared before the map and dropped
        // first), which is the only place it is stored.
        let guard = unsafe { std::mem::transmute::<Guard<'_>, Guard<'static>>(guard) };
        Ok(OwnedGuard {
            guard: Some(guard),
            thread: std::thread::current().id(),
            _p: PhantomData,
        })
    }
}

pub struct OwnedGuard {
    guard: Option<Guard<'static>>,
    thread: ThreadId,
    _p: PhantomData<()>,
}

// SAFETY: shim only: the guard is used only from its thread (checked in
// every method); dropping from another thread is what the real type
// documents as best effort too.
unsafe impl Send for OwnedGuard {}

impl OwnedGuard {
    fn check(&self) -> Result<&Guard<'static>, Fail> {
        if std::thread::current().id() != self.thread {
            return Err(Fail::Status(FM_E_WRONG_THREAD, "wrong thread".into()));
        }
        self.guard
            .as_ref()
            .ok_or_else(|| Fail::Status(FM_E_NOT_LOCKED, "not locked".into()))
    }
    pub fn owner_died(&self) -> bool {
        self.guard.as_ref().is_some_and(|g| g.owner_died())
    }
    pub fn read(&self) -> Result<Snapshot, Fail> {
        Ok(self.check()?.read()?)
    }
    pub fn publish(&mut self, content: &[u8]) -> Result<Published, Fail> {
        self.check()?;
        Ok(self.guard.as_mut().expect("checked").publish(content)?)
    }
    pub fn unlock(&mut self) -> Result<(), Fail> {
        self.check()?;
        self.guard = None;
        Ok(())
    }
}
