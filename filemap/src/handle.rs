//! The state one open handle shares between the [`FileMap`] and what it
//! lends (guards, loans, watchers): the backend's handle, the region's
//! validated maximum capacity and this handle's writer id, the one way into
//! the region's memory ([`Inner::enter`] / [`Inner::leave`]), and growth
//! ([`Inner::make_room`]).
//!
//! **Growth.** A region is mapped whole, up to its maximum capacity, by
//! every handle from the start, with its buffers placed by the maximum
//! (`layout.rs`), so growing moves nothing and remaps nothing: every
//! attached handle, guard, loan, waiter and watcher keeps working. What
//! grows is the storage behind the mapping. A writer holding the lock
//! that publishes more than the current capacity first backs the new
//! bytes of both buffers (`Backend::back`: `fallocate(2)` on Linux,
//! committing the pages on Windows), and only then raises the header's
//! capacity; a full store fails there, with `OutOfSpace`, before anything
//! was written or raised. Backing twice is harmless, so a writer that died
//! between the two leaves a region whose next writer simply backs again.
//! Readers never look at the capacity: they bound every length by the
//! maximum, which their mapping holds, and an honest length only ever
//! names bytes a writer backed before publishing it. Where untouched
//! pages past the capacity fault instead of reading zeros (Windows'
//! reserved pages), each handle also makes a length's bytes safe to touch
//! through its own mapping before it loads them (`protocol::Reach`), and
//! a writer stores only within what it so reached or backed.
//!
//! [`FileMap`]: crate::FileMap

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::Duration;

use crate::attach::{self, Process};
use crate::backend::{Backend, Opened, Os};
use crate::error::{Error, Result};
use crate::info::{region_info, RegionInfo};
use crate::layout::{self, Header};
use crate::lock::LockError;
use crate::notify::{self, Wake};
use crate::protocol::{Refused, Sink, View};
use crate::snapshot::{Stamp, WriterId};

fn next_handle_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Relaxed)
}

/// One open handle's share of a region (behind an `Arc`: the `FileMap`,
/// its owned guards and its watchers hold it).
pub(crate) struct Inner {
    /// The backend's handle: the mapping and the OS objects.
    pub(crate) os: Os,
    name: String,
    path: PathBuf,
    /// The maximum capacity validated at open, trusted by this handle
    /// only: its mapping holds `region_size` of it.
    pub(crate) max_capacity: usize,
    pub(crate) existed: bool,
    /// This handle's attach-table slot.
    pub(crate) slot: usize,
    /// This handle's writer id, recorded with its publishes.
    pub(crate) id: WriterId,
    lock_timeout: Duration,
    /// The fork epoch the handle was opened at: another epoch means this
    /// is a forked child's copy, which must not be used.
    epoch: u32,
    /// How soon changes have been arriving, for adaptive waits.
    pub(crate) learner: notify::Learner,
}

impl Inner {
    pub(crate) fn new(name: &str, lock_timeout: Duration, opened: Opened<Os>) -> Inner {
        let Opened {
            os,
            path,
            max_capacity,
            existed,
            slot,
        } = opened;
        Inner {
            os,
            name: name.to_owned(),
            path,
            max_capacity,
            existed,
            slot,
            id: WriterId {
                pid: Os::pid(),
                handle: next_handle_number(),
            },
            lock_timeout,
            epoch: Os::fork_epoch(),
            learner: notify::Learner::new(Os::online_cpus(), Os::runnable_threads),
        }
    }

    pub(crate) fn header(&self) -> &Header {
        self.os.header()
    }

    /// The one way into the region's shared memory: every operation that
    /// reads or writes it enters here and reports through
    /// [`Inner::leave`], so none can forget the two facts that make a
    /// handle unusable (see [`Inner::usable`]).
    #[inline]
    fn enter(&self) -> Result<View<'_>> {
        self.usable()?;
        Ok(self.os.view())
    }

    /// After an operation entered by [`Inner::enter`]: if the file shrank
    /// meanwhile, the operation ran on zero pages of our own (see
    /// `backend/unix/fault.rs`) and did nothing that counts, so it must
    /// not be reported as done.
    #[inline]
    fn leave<T>(&self, done: T) -> Result<T> {
        // Orders this check after the operation's loads: a thread that
        // read the zero pages finds the mark set before they were mapped.
        std::sync::atomic::fence(Acquire);
        if self.os.is_lost() {
            return Err(self.lost());
        }
        Ok(done)
    }

    /// The region name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// The backing file or object name shown to users.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// What the header says of the region now.
    pub(crate) fn info(&self) -> RegionInfo {
        region_info::<Os>(&self.name, &self.path, self.header(), self.max_capacity)
    }

    /// The current generation (one atomic load).
    #[inline]
    pub(crate) fn generation(&self) -> u64 {
        self.header().line.generation.load(Acquire)
    }

    /// `Err(ForkedHandle)` in a forked child: the parent may close the
    /// handle, and with it a non-persistent region, at any time, and the
    /// lock, lifetime lock and attach slot are the parent's.
    /// `Err(Truncated)` once the backing file shrank under the mapping.
    #[inline]
    pub(crate) fn usable(&self) -> Result<()> {
        if Os::fork_epoch() != self.epoch {
            return Err(self.forked());
        }
        if self.os.is_lost() {
            return Err(self.lost());
        }
        Ok(())
    }

    #[cold]
    fn lost(&self) -> Error {
        Error::Truncated {
            name: self.name.clone(),
            size: self.os.backing_size(),
            needed: layout::region_size(self.max_capacity) as u64,
        }
    }

    #[cold]
    pub(crate) fn forked(&self) -> Error {
        Error::ForkedHandle {
            name: self.name.clone(),
            opened_by: self.id.pid,
            pid: Os::pid(),
        }
    }

    /// Whether this is a forked child's copy of the handle.
    pub(crate) fn in_forked_child(&self) -> bool {
        Os::fork_epoch() != self.epoch
    }

    fn corrupted(&self, field: &'static str, value: u64) -> Error {
        Error::Corrupted {
            name: self.name.clone(),
            field,
            value,
        }
    }

    #[cold]
    fn refused(&self, r: Refused) -> Error {
        match r {
            Refused::Corrupt(c) => self.corrupted(c.field, c.value),
            Refused::TooSmall { needed, available } => Error::BufferTooSmall {
                name: self.name.clone(),
                len: available,
                needed,
            },
        }
    }

    /// The region's capacity now (it grows), bounded by the maximum, and
    /// by what this handle's mapping can reach: on systems that give a
    /// growing region's pages storage on demand (Windows), the capacity
    /// the header names is made safe to touch first, and if the system
    /// refuses (a header scribbled past what was backed, and no storage
    /// left) it is what was ready, so that a writer backs the rest before
    /// storing into it.
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        let capacity = layout::current_capacity(self.header(), self.max_capacity);
        self.os.view().reachable(capacity)
    }

    /// `Err(TooLarge)` unless `len` bytes fit the maximum capacity (a
    /// publish grows the region up to it); `Err` too when the handle
    /// cannot be used (see [`Inner::usable`]).
    #[inline]
    pub(crate) fn check_fits(&self, len: usize) -> Result<()> {
        self.usable()?;
        if len > self.max_capacity {
            return Err(self.too_large(len));
        }
        Ok(())
    }

    /// The error for a content of `len` bytes past the maximum capacity.
    #[cold]
    pub(crate) fn too_large(&self, len: usize) -> Error {
        Error::TooLarge {
            len,
            capacity: self.capacity(),
            max_capacity: self.max_capacity,
        }
    }

    /// Make room for a content of `len` bytes (at most the maximum, which
    /// the caller checked): grow the region if its capacity is less. The
    /// caller holds the lock. Returns the capacity now.
    ///
    /// # Errors
    /// [`Error::OutOfSpace`] when the store cannot back the growth (the
    /// region is as it was: same capacity, same content).
    #[inline]
    pub(crate) fn make_room(&self, len: usize) -> Result<usize> {
        let current = self.capacity();
        if len <= current {
            return Ok(current);
        }
        self.grow(current, len)
    }

    /// Grow from capacity `from` to hold `len` bytes: back the new bytes
    /// of both buffers, then raise the header's capacity (see the module
    /// notes). The caller holds the lock.
    #[cold]
    fn grow(&self, from: usize, len: usize) -> Result<usize> {
        // The file may have been cut short within pages this handle does
        // not touch before it stores (the header's own page, or whole
        // buffers): growth is rare, so look at its size (one `fstat` on
        // Unix) rather than back bytes past a cut and publish into a
        // region nobody may open any more.
        self.verify_backing()?;
        let to = layout::grown_capacity(len, self.max_capacity);
        let ranges = layout::backed_ranges(self.max_capacity, from, to);
        for (offset, bytes) in ranges {
            if let Err(e) = self.os.back(offset, bytes) {
                self.give_back(from, to);
                let needed = layout::backed_size(to) as u64;
                return Err(Os::space_error(
                    &self.name,
                    &self.path,
                    Os::BACK_OP,
                    e,
                    needed,
                ));
            }
        }
        crate::stall::stall_at("growth");
        // Raised only now that the space exists; readers never rely on it
        // (they bound lengths by the maximum), writers do.
        self.header().capacity.store(to as u64, Release);
        self.leave(to)
    }

    /// Give back the storage a growth from capacity `from` to `to` backed
    /// before it failed, the lock held: each buffer's bytes from
    /// `stride(to)` down to its content's end, and never below it, nor
    /// into the header. `from` is the header's capacity, which a peer may
    /// have scribbled below what was published (or to 0, which puts the
    /// header in the growth's first range): a hole punched there would
    /// zero a published content under its valid sequence, and readers
    /// would take the zeros for it. Honest, `from` is at least every
    /// length, and this gives back exactly what the growth added.
    #[cold]
    fn give_back(&self, from: usize, to: usize) {
        let line = &self.header().line;
        for (index, buffer) in line.buffers.iter().enumerate() {
            let len = buffer.len.load(Acquire).min(self.max_capacity as u64) as usize;
            let start = layout::stride(from.max(len));
            let end = layout::stride(to);
            if end > start {
                let at = layout::buffer_offset(self.max_capacity, index);
                self.os.unback(at + start, end - start);
            }
        }
    }

    /// Optimistic lock-free read; `None` when writers kept moving.
    #[inline]
    pub(crate) fn try_read<S: Sink + ?Sized>(&self, out: &mut S) -> Result<Option<Stamp>> {
        let read = self.enter()?.try_read(out);
        let stamp = self.leave(read)?.map_err(|r| self.refused(r))?;
        if stamp.is_some_and(|s| s.generation == 0 || s.writer.pid == 0) {
            self.verify_backing()?;
        }
        Ok(stamp)
    }

    /// Read the published content while holding the lock (it cannot move).
    pub(crate) fn read_locked<S: Sink + ?Sized>(&self, out: &mut S) -> Result<Stamp> {
        let read = self.enter()?.read_locked(out);
        let stamp = self.leave(read)?.map_err(|r| self.refused(r))?;
        if stamp.generation == 0 || stamp.writer.pid == 0 {
            self.verify_backing()?;
        }
        Ok(stamp)
    }

    /// A read found generation 0 or a writer of pid 0, or a wait a
    /// generation lower than one seen before: a region nothing was
    /// published into yet (for the read), or a file cut short within its
    /// header's page, which reads as zeros past the cut without any fault
    /// (`SIGBUS` comes only for pages wholly past the end), so
    /// [`Inner::leave`] saw nothing wrong.
    /// Rare, so the backend checks the file's size here (`Wake::idle`: one
    /// `fstat` on Unix) and `Err(Truncated)` if it shrank.
    #[cold]
    pub(crate) fn verify_backing(&self) -> Result<()> {
        self.os.idle();
        self.usable()
    }

    /// Read the published content into `out`: lock-free, or under the
    /// lock when writers keep it moving too fast.
    #[inline]
    pub(crate) fn read<S: Sink + ?Sized>(&self, out: &mut S) -> Result<Stamp> {
        if let Some(stamp) = self.try_read(out)? {
            return Ok(stamp);
        }
        self.read_slow(out)
    }

    #[cold]
    fn read_slow<S: Sink + ?Sized>(&self, out: &mut S) -> Result<Stamp> {
        self.lock()?;
        let stamp = self.read_locked(out);
        self.unlock()?;
        stamp
    }

    /// Take the region lock for the calling thread; `Ok(true)` when the
    /// previous owner died holding it.
    pub(crate) fn lock(&self) -> Result<bool> {
        self.enter()?;
        let locked = self.os.lock(self.lock_timeout);
        if locked.is_err() {
            // Waited in vain: the file may have shrunk meanwhile (the lock
            // word's page may outlive the rest), which says more.
            self.os.idle();
        }
        let owner_died = self.leave(locked)?.map_err(|e| match e {
            LockError::Timeout { waited, holder_pid } => Error::Timeout {
                what: "the region lock",
                waited,
                holder_pid,
            },
            LockError::WouldDeadlock => Error::WouldDeadlock {
                name: self.name.clone(),
            },
            LockError::Failed { op, code } => Error::Io {
                op,
                name: self.name.clone(),
                source: std::io::Error::from_raw_os_error(code),
            },
        })?;
        if owner_died {
            // The dead owner may have published without waking anyone.
            notify::published(self.header(), &self.os);
        }
        Ok(owner_died)
    }

    /// Publish `content` as the next generation, growing the region first
    /// if it must. The caller holds the lock and has checked
    /// `content.len() <= max_capacity`.
    pub(crate) fn publish_locked(&self, content: &[u8]) -> Result<u64> {
        self.make_room(content.len())?;
        let view = self.enter()?;
        let (next, index) = view.begin_publish();
        view.store(index, content);
        let generation = view.finish_publish(next, index, content.len(), self.id);
        notify::published(self.header(), &self.os);
        self.leave(generation)
    }

    /// Start publishing the next generation (see
    /// [`View::begin_publish`]); the caller holds the lock.
    pub(crate) fn begin_publish(&self) -> Result<(u64, usize)> {
        let begun = self.enter()?.begin_publish();
        self.leave(begun)
    }

    /// Store the whole content of buffer `index` (see [`View::store`]);
    /// the caller holds the lock.
    pub(crate) fn store(&self, index: usize, content: &[u8]) -> Result<()> {
        self.enter()?.store(index, content);
        self.leave(())
    }

    /// Copy `bytes` into buffer `index` at `offset`, for a content longer
    /// than the buffer's line holds (see [`View::store_at`]);
    /// the caller holds the lock.
    pub(crate) fn store_at(&self, index: usize, offset: usize, bytes: &[u8]) -> Result<()> {
        self.enter()?.store_at(index, offset, bytes);
        self.leave(())
    }

    /// Publish buffer `index`, filled with `len` bytes, as generation
    /// `next`, and wake the waiters.
    pub(crate) fn finish_publish(&self, next: u64, index: usize, len: usize) -> Result<u64> {
        let next = self.enter()?.finish_publish(next, index, len, self.id);
        notify::published(self.header(), &self.os);
        self.leave(next)
    }

    /// Release the lock taken by this thread. A forked child's copy
    /// releases nothing (the lock is its parent's): `ForkedHandle`.
    pub(crate) fn unlock(&self) -> Result<()> {
        if self.os.is_lost() && !self.in_forked_child() {
            // The operation under the lock faulted (the file was cut, or
            // a full store could not give a page): the lock word this
            // thread holds is in the region, not in the zero pages now
            // mapped, and the region may be intact. Release it there.
            self.os.unlock_lost();
            return Err(self.lost());
        }
        self.enter()?;
        self.os.unlock();
        self.leave(())
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.in_forked_child() || self.os.is_lost() {
            // A forked child's copy: the slot and the lifetime lock (shared
            // through the inherited open file) are the parent's. A lost
            // mapping holds our own zero pages, which say nothing about
            // the region (not even whether it is persistent): leave its
            // name alone; closing the file releases what this handle held.
            return;
        }
        attach::release(self.header(), self.slot, self.id.pid);
        // No sweep here: a liveness check per slot on every close would
        // cost more than the whole close; opening reclaims dead slots.
        self.os.close();
    }
}

impl Inner {
    /// One adaptive wait of a watcher: spin while that pays (see
    /// [`Strategy::Adaptive`](crate::Strategy::Adaptive)), then sleep once, at most
    /// `timeout`, unless `cancel` is set. Returns the generation found.
    pub(crate) fn wait_once(&self, seen: u64, timeout: Duration, cancel: &AtomicBool) -> u64 {
        let h = self.header();
        let slot = &h.slots[self.slot];
        if let Some(generation) =
            notify::spin_phase(h, slot, &self.os, seen, None, &self.learner, Some(cancel))
        {
            return generation;
        }
        notify::wait_once(h, slot, &self.os, seen, timeout, Some(cancel))
    }

    pub(crate) fn interrupt_waits(&self) {
        notify::interrupt(self.header(), &self.os);
    }
}
