//! The robust cross-process lock.
//!
//! This module owns the lock word and the owner record in the header. It
//! never trusts them: a waiter sleeps in bounded slices, and after each
//! slice checks that the recorded owner still lives; a dead owner's lock is
//! taken over and the taker is told (`owner_died`), as Windows reports an
//! abandoned mutex. It must never wait without a deadline.
//!
//! Lock word states (`u32`, futex word):
//!
//! | value                 | meaning                                   |
//! |-----------------------|-------------------------------------------|
//! | `0`                   | free                                      |
//! | `tid`                 | held by thread `tid`, nobody sleeps       |
//! | `tid \| CONTENDED`    | held, and a waiter may sleep: wake on release |
//!
//! Transitions: `0 -> tid` (fast path), `0 -> tid|C` (taken by a waiter, which
//! cannot know whether others sleep), `tid -> tid|C` (a waiter announces
//! itself), `any held -> 0` (release, waking one if `C`), `dead tid|C ->
//! me|C` (takeover).
//!
//! Windows uses a named kernel mutex per region instead
//! (`Local\filemap.<name>.lock`): the kernel tells the next taker when
//! the owner ended without releasing it (`WAIT_ABANDONED`), which is
//! reported as `owner_died` exactly like a dead owner on Linux. Windows
//! mutexes are recursive, so re-entry is caught here (`WouldDeadlock`).

use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
#[cfg(not(windows))]
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use crate::layout::{pack_owner, Header};
#[cfg(not(windows))]
use crate::layout::{unpack_owner, LOCK_CONTENDED, LOCK_TID_MASK};
use crate::sys;

#[cfg(not(windows))]
/// The first sleep before the owner's liveness is checked; each next sleep
/// doubles, up to [`MAX_SLICE`].
const FIRST_SLICE: Duration = Duration::from_millis(1);
#[cfg(not(windows))]
const MAX_SLICE: Duration = Duration::from_millis(10);
/// How long an owner may stay unrecorded (or recorded as another thread)
/// before its lock word is taken for garbage.
#[cfg(not(windows))]
const UNRECORDED_GRACE: Duration = Duration::from_secs(1);
/// Spins before the first sleep.
#[cfg(not(windows))]
const SPINS: u32 = 64;

/// Why the lock was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum LockError {
    /// Waited `waited`; the holder's process id, when recorded.
    Timeout {
        waited: Duration,
        holder_pid: Option<u32>,
    },
    /// The calling thread holds the lock already.
    WouldDeadlock,
    /// Waiting for the lock failed (Windows: `WAIT_FAILED`, with the OS
    /// error code): not a timeout, and no holder to name.
    #[cfg(windows)]
    Failed { code: i32 },
}

#[cfg(not(windows))]
/// Take the lock. `Ok(true)` when the previous owner died holding it.
#[inline]
pub fn acquire(h: &Header, timeout: Duration) -> Result<bool, LockError> {
    let me = sys::tid() & LOCK_TID_MASK;
    let taken = if h.lock.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
        Ok(false)
    } else {
        acquire_slow(h, me, timeout)
    };
    if taken.is_ok() {
        record_owner(h, me);
        HELD.with(|held| held.set(held.get() + 1));
    }
    taken
}

#[cfg(not(windows))]
thread_local! {
    /// Region locks this thread holds: tells re-entry (a deadlock) from a
    /// lock word that merely names this thread because it was scribbled.
    static HELD: Cell<usize> = const { Cell::new(0) };
}

#[cfg(not(windows))]
#[cold]
fn acquire_slow(h: &Header, me: u32, timeout: Duration) -> Result<bool, LockError> {
    for _ in 0..SPINS {
        std::hint::spin_loop();
        if h.lock.load(Relaxed) == 0 && h.lock.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            return Ok(false);
        }
    }
    let start = Instant::now();
    let mut suspect = None;
    let mut slice = FIRST_SLICE;
    loop {
        let waited = start.elapsed();
        let word = h.lock.load(Relaxed);
        let owner = word & LOCK_TID_MASK;
        if waited >= timeout {
            return Err(LockError::Timeout {
                waited,
                holder_pid: recorded_pid(h, owner),
            });
        }
        if word == 0 {
            if h.lock
                .compare_exchange(0, me | LOCK_CONTENDED, Acquire, Relaxed)
                .is_ok()
            {
                return Ok(false);
            }
            continue;
        }
        if owner == me {
            if HELD.with(Cell::get) > 0 {
                return Err(LockError::WouldDeadlock);
            }
            // We hold no lock, so the word was scribbled: take it.
            if h.lock
                .compare_exchange(word, me | LOCK_CONTENDED, Acquire, Relaxed)
                .is_ok()
            {
                return Ok(true);
            }
            continue;
        }
        let contended = word | LOCK_CONTENDED;
        if word != contended
            && h.lock
                .compare_exchange(word, contended, Relaxed, Relaxed)
                .is_err()
        {
            continue;
        }
        sys::futex_wait(&h.lock, contended, slice.min(timeout - waited));
        slice = (slice * 2).min(MAX_SLICE);
        if h.lock.load(Relaxed) == contended
            && owner_is_dead(h, owner, &mut suspect)
            && h.lock
                .compare_exchange(contended, me | LOCK_CONTENDED, Acquire, Relaxed)
                .is_ok()
        {
            return Ok(true);
        }
    }
}

#[cfg(not(windows))]
/// The process id recorded for lock owner `owner`, if the record is its.
fn recorded_pid(h: &Header, owner: u32) -> Option<u32> {
    let pid = h.lock_pid.load(Relaxed);
    (unpack_owner(h.lock_owner.load(Relaxed)).0 == owner && pid != 0).then_some(pid)
}

fn record_owner(h: &Header, me: u32) {
    h.lock_owner.store(owner_record(me), Relaxed);
    h.lock_pid.store(sys::pid(), Relaxed);
}

thread_local! {
    /// This thread's owner record and the thread id it was made for.
    static RECORD: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
}

/// `pack_owner(me, start time of this thread)`, computed once per thread:
/// the start-time lookup was a tenth of an 8-byte write (callgrind,
/// benches/PERFORMANCE.md finding 7). Keyed by thread id, so a forked
/// child (a new thread id) computes its own.
#[inline]
fn owner_record(me: u32) -> u64 {
    RECORD.with(|cell| match cell.get() {
        (tid, record) if tid == me && me != 0 => record,
        _ => {
            let record = pack_owner(me, sys::own_thread_start_time());
            cell.set((me, record));
            record
        }
    })
}

#[cfg(not(windows))]
/// Whether thread `owner`, named by the lock word, is proven gone.
/// `suspect` remembers since when a live owner has been seen without a
/// matching record. Anything uncertain counts as alive: taking a live
/// owner's lock would let two writers publish at once.
fn owner_is_dead(h: &Header, owner: u32, suspect: &mut Option<(u32, Instant)>) -> bool {
    let actual_start = match sys::liveness(owner) {
        sys::Liveness::Dead => return true, // died, or the word is garbage
        sys::Liveness::Unknown => return false,
        sys::Liveness::Alive { start_time } => start_time,
    };
    let (recorded_tid, recorded_start) = unpack_owner(h.lock_owner.load(Relaxed));
    if recorded_tid == owner {
        // The thread id was reused by a thread that never took this lock.
        // A start time of 0 means "unknown" and proves nothing.
        let actual = unpack_owner(pack_owner(owner, actual_start)).1;
        return recorded_start != 0 && actual != 0 && recorded_start != actual;
    }
    // The owner records itself right after taking the lock; a record that
    // stays wrong for long means the word was scribbled over.
    match suspect {
        Some((tid, since)) if *tid == owner => since.elapsed() > UNRECORDED_GRACE,
        _ => {
            *suspect = Some((owner, Instant::now()));
            false
        }
    }
}

#[cfg(not(windows))]
/// Release the lock taken by [`acquire`] in this thread. Returns `false`
/// (and changes nothing) if the lock is no longer ours: another process
/// took it over, judging us dead, or scribbled on it.
#[inline]
pub fn release(h: &Header) -> bool {
    HELD.with(|held| held.set(held.get().saturating_sub(1)));
    let me = sys::tid() & LOCK_TID_MASK;
    let mut word = h.lock.load(Relaxed);
    loop {
        if word & LOCK_TID_MASK != me {
            return false;
        }
        match h.lock.compare_exchange_weak(word, 0, Release, Relaxed) {
            Ok(_) => break,
            Err(now) => word = now,
        }
    }
    if word & LOCK_CONTENDED != 0 {
        sys::futex_wake(&h.lock, 1);
    }
    true
}

#[cfg(windows)]
thread_local! {
    /// Keys of the region mutexes this thread holds (Windows mutexes are
    /// recursive, so the kernel would let a re-entry through).
    static HELD_MUTEXES: std::cell::RefCell<Vec<u64>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Take the region's named mutex. `Ok(true)` when the previous owner ended
/// without releasing it (`WAIT_ABANDONED`): the published content is
/// intact, its half-written inactive buffer is simply ignored.
#[cfg(windows)]
pub fn acquire_mutex(
    h: &Header,
    mutex: &sys::NamedMutex,
    timeout: Duration,
) -> Result<bool, LockError> {
    let key = mutex.key();
    if HELD_MUTEXES.with(|held| held.borrow().contains(&key)) {
        return Err(LockError::WouldDeadlock);
    }
    let start = Instant::now();
    let owner_died = match mutex.wait(timeout) {
        sys::MutexWait::Acquired => false,
        sys::MutexWait::Abandoned => true,
        sys::MutexWait::Failed(code) => return Err(LockError::Failed { code }),
        sys::MutexWait::TimedOut => {
            let pid = h.lock_pid.load(Relaxed);
            return Err(LockError::Timeout {
                waited: start.elapsed(),
                holder_pid: (pid != 0).then_some(pid),
            });
        }
    };
    record_owner(h, sys::tid());
    HELD_MUTEXES.with(|held| held.borrow_mut().push(key));
    Ok(owner_died)
}

/// Release the mutex taken by [`acquire_mutex`] in this thread.
#[cfg(windows)]
pub fn release_mutex(h: &Header, mutex: &sys::NamedMutex) -> bool {
    let key = mutex.key();
    HELD_MUTEXES.with(|held| {
        let mut held = held.borrow_mut();
        if let Some(i) = held.iter().rposition(|&k| k == key) {
            held.swap_remove(i);
        }
    });
    h.lock_pid.store(0, Relaxed);
    mutex.release()
}
