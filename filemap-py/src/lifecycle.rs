//! A handle's life in the process: inherited through `fork()`, and closed
//! at interpreter exit.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use filemap::{CancelToken, FileMap};
use pyo3::prelude::*;

use crate::convert::duration;

/// Bumped in a child after `os.fork()` (through `os.register_at_fork`, set
/// up by the package): a handle opened in an older epoch was inherited.
pub(crate) static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Called by the package in a child process right after `fork()`.
#[pyfunction]
pub(crate) fn _after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// Set by [`_close_all`]: the interpreter is exiting.
pub(crate) static EXITING: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// Set on a thread whose lock wait was ended by [`_close_all`]: the
    /// call it is in parks once it has let go of the region
    /// ([`parks_if_cut_by_exit`]).
    static CUT_BY_EXIT: Cell<bool> = const { Cell::new(false) };
}

/// A lock wait found its handle closed: when the interpreter is exiting
/// (the close was [`_close_all`]'s), mark this thread so that its call
/// parks instead of returning `Closed`.
pub(crate) fn lock_wait_closed() {
    if EXITING.load(Ordering::Acquire) {
        CUT_BY_EXIT.set(true);
    }
}

/// Run `call` (a handle's method, whose references to the region are its
/// own locals); if interpreter exit closed the handle under a lock wait
/// in it, let the thread stay blocked, without the GIL, once `call` has
/// returned and so let go of the region. This is what a daemon thread
/// blocked in `wait_change` does at exit: returning `Closed` would run the
/// thread's Python code on into finalisation, printing a traceback for a
/// wait the exit simply cut short. Only a call in progress at the close
/// parks: interpreter exit runs on the main thread, never inside one.
pub(crate) fn parks_if_cut_by_exit<T>(
    py: Python<'_>,
    call: impl FnOnce() -> PyResult<T>,
) -> PyResult<T> {
    let result = call();
    if CUT_BY_EXIT.replace(false) {
        let () = py.detach(|| loop {
            std::thread::park();
        });
    }
    result
}

/// A handle's region, shared by the handle and its calls in progress
/// (each holds a clone of the `Arc` while it runs), and the token that
/// ends the handle's waits when it closes.
pub(crate) struct Slot {
    /// `None` once closed.
    map: RwLock<Option<Arc<FileMap>>>,
    /// Given to every `wait_change` of the handle; cancelled by
    /// [`Slot::close`], which so ends those waits at once.
    cancel: CancelToken,
    /// [`FORK_EPOCH`] when the handle was opened: another epoch means this
    /// is a forked child's copy.
    epoch: u64,
}

impl Slot {
    /// The slot of a handle just opened, registered for [`_close_all`].
    pub(crate) fn open(map: FileMap) -> Arc<Slot> {
        let slot = Arc::new(Slot {
            map: RwLock::new(Some(Arc::new(map))),
            cancel: CancelToken::new(),
            epoch: FORK_EPOCH.load(Ordering::Relaxed),
        });
        register(&slot);
        slot
    }

    /// The region, unless the handle was closed.
    pub(crate) fn get(&self) -> Option<Arc<FileMap>> {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// What waits on this handle are given: [`Slot::close`] cancels it.
    pub(crate) fn cancel_token(&self) -> &CancelToken {
        &self.cancel
    }

    /// Close: take the region out (calls in progress keep their `Arc`
    /// until they return) and end the handle's waits. Returns the region
    /// unless it was closed already.
    pub(crate) fn close(&self) -> Option<Arc<FileMap>> {
        let map = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // After the take: a wait that starts from now on finds the handle
        // closed, or the token cancelled.
        self.cancel.cancel();
        map
    }
}

/// Every handle opened in this process, by its slot, for
/// [`_close_all`] at interpreter exit. Entries of handles gone are
/// dropped as the list grows.
static OPEN: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());

fn register(slot: &Arc<Slot>) {
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    if open.len() == open.capacity() {
        // Amortised: only when the list would grow.
        open.retain(|w| w.strong_count() > 0);
    }
    open.push(Arc::downgrade(slot));
}

/// Close every handle open in this process, whatever thread uses it, and
/// wait up to `grace` seconds for the calls in progress on them to let go
/// of their regions (a wait ends at once, through the handle's
/// [`CancelToken`], and lets go, staying blocked; a lock wait notices
/// within [`LOCK_SLICE`](crate::lock::LOCK_SLICE), and lets go and stays
/// blocked too: [`parks_if_cut_by_exit`]).
/// Run by the package at
/// interpreter exit, before daemon threads are frozen mid-call holding a
/// region: every region this process attached to is released (removed
/// when it was the last user of a non-persistent one). Returns how many
/// regions were still held by a call when `grace` ran out (a `Lock` held
/// across the exit, or a callback that does not return).
///
/// In a forked child, a handle inherited from the parent is closed without
/// waiting: the calls that were in progress on it at the fork ran on the
/// parent's threads, which the child does not have, so their references
/// are never dropped; and closing a forked copy releases nothing of the
/// region (the parent's share stays the parent's).
#[pyfunction]
pub(crate) fn _close_all(py: Python<'_>, grace: f64) -> PyResult<usize> {
    let grace = duration(Some(grace), "grace")?.unwrap_or(Duration::ZERO);
    EXITING.store(true, Ordering::Release);
    let slots: Vec<Arc<Slot>> =
        std::mem::take(&mut *OPEN.lock().unwrap_or_else(PoisonError::into_inner))
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
    let epoch = FORK_EPOCH.load(Ordering::Relaxed);
    let maps: Vec<Arc<FileMap>> = slots
        .iter()
        .filter_map(|slot| {
            let map = slot.close();
            // An inherited handle: nothing to wait for (dropped here).
            map.filter(|_| slot.epoch == epoch)
        })
        .collect();
    // Without the GIL: the threads inside a call need it to notice the
    // close and return.
    Ok(py.detach(move || {
        let deadline = Instant::now() + grace;
        let mut held = 0;
        for mut map in maps {
            loop {
                match Arc::try_unwrap(map) {
                    // The last reference: dropping it closes the handle.
                    Ok(map) => break drop(map),
                    Err(shared) if Instant::now() >= deadline => {
                        held += 1;
                        break drop(shared);
                    }
                    Err(shared) => {
                        map = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        held
    }))
}
