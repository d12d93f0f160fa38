//! The robust cross-process lock.
//!
//! This module owns the lock word and the owner record in the header. It
//! never trusts them: a waiter sleeps in bounded slices, and after each
//! slice checks whether the owner named by the word is proven gone; a dead
//! owner's lock is taken over and the taker is told (`owner_died`), as
//! Windows reports an abandoned mutex. It must never wait without a
//! deadline, and it must never take the lock of a live owner.
//!
//! The lock word is a `u64`; its low half is the futex word:
//!
//! | bits   | field                                                        |
//! |--------|--------------------------------------------------------------|
//! | 0..30  | owner thread id (0: nobody)                                  |
//! | 30     | `STARVING`: a waiter waited too long; hand over on release   |
//! | 31     | `CONTENDED`: a waiter may sleep; wake one on release         |
//! | 32..64 | owner thread's start time, low 32 bits of clock ticks (0: unknown) |
//!
//! | word                     | state                                          |
//! |--------------------------|------------------------------------------------|
//! | `0`                      | free                                           |
//! | `HANDOFF` (`STARVING` alone) | free, for a thread that has slept waiting   |
//! | `owner [\| C] [\| S]`    | held by the thread and start time in `owner`   |
//!
//! Transitions: `0 -> owner` (fast path), `0 | HANDOFF -> owner|C` (a
//! waiter, which cannot know whether others sleep), `owner -> owner|C|S`
//! (a waiter announces itself, and after [`STARVE_AFTER`] asks for a
//! hand-over), `owner|S -> HANDOFF` and `owner -> 0` (release, waking one
//! if `C` or `S`), `dead owner -> me|C` (takeover).
//!
//! **A live owner's lock is never taken.** The owner's identity is whole in
//! the word from the instant the word names it: the compare-and-swap that
//! takes the lock writes the thread id and its start time together, both
//! computed before. So there is no window in which a stalled owner (a
//! SIGSTOP, a debugger, a frozen cgroup, swapping) is named by the word but
//! not yet identified, and a waiter needs no grace period: it takes over
//! only on proof that the thread named is not the owner. Proof is: no task
//! with that id (`kill(2)` says `ESRCH`), a zombie, or a live task whose
//! start time differs from the one in the word (the id was reused, or the
//! word is garbage). A start time of 0 in the word ("unknown") or an
//! unreadable `/proc` proves nothing, and the waiter keeps waiting until
//! its timeout, which names the holder. A scribbler can therefore keep
//! the lock held by writing a live thread's id and start time, which is no
//! more than it could do by taking the lock and keeping it.
//!
//! **Fairness.** Releasing stores 0 and lets the fastest thread win, which
//! keeps the lock cheap under contention; but a thread that releases and
//! re-takes the lock in a loop (a writer publishing back to back) could
//! then starve a sleeper for ever. A waiter that has waited
//! [`STARVE_AFTER`] sets `STARVING`; the owner's release then stores
//! `HANDOFF`, which the fast path cannot take, and wakes a sleeper, which
//! takes it. If nobody was left to wake, the releaser frees the word.
//!
//! Windows uses a named kernel mutex per region instead
//! (`Local\filemap.<name>.lock`): the kernel tells the next taker when
//! the owner ended without releasing it (`WAIT_ABANDONED`), which is
//! reported as `owner_died` exactly like a dead owner on Linux. Windows
//! mutexes are recursive, so re-entry is caught here (`WouldDeadlock`).

#[cfg(not(windows))]
use std::cell::Cell;
use std::sync::atomic::Ordering::Relaxed;
#[cfg(not(windows))]
use std::sync::atomic::Ordering::{Acquire, Release};
use std::time::{Duration, Instant};

use crate::layout::Header;
#[cfg(not(windows))]
use crate::layout::{
    owner_word, word_owner, LOCK_CONTENDED, LOCK_HANDOFF, LOCK_STARVING, LOCK_TID_MASK,
};
use crate::sys;

#[cfg(not(windows))]
/// The first sleep before the owner's liveness is checked; each next sleep
/// doubles, up to [`MAX_SLICE`].
const FIRST_SLICE: Duration = Duration::from_millis(1);
#[cfg(not(windows))]
const MAX_SLICE: Duration = Duration::from_millis(10);
/// How long a waiter waits before it asks the owner to hand the lock over.
#[cfg(not(windows))]
pub const STARVE_AFTER: Duration = Duration::from_millis(2);
/// Spins before the first sleep.
#[cfg(not(windows))]
const SPINS: u32 = 64;

/// Why the lock was not taken.
#[derive(Debug, PartialEq, Eq)]
pub enum LockError {
    /// Waited `waited`; the holder's process id, when known.
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
    let me = own_word();
    let taken = if h.lock.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
        Ok(false)
    } else {
        acquire_slow(h, me, timeout)
    };
    if taken.is_ok() {
        record_owner(h, sys::tid());
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
fn acquire_slow(h: &Header, me: u64, timeout: Duration) -> Result<bool, LockError> {
    for _ in 0..SPINS {
        std::hint::spin_loop();
        if h.lock.load(Relaxed) == 0 && h.lock.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            return Ok(false);
        }
    }
    let my_tid = word_owner(me).0;
    let start = Instant::now();
    let mut slice = FIRST_SLICE;
    let mut slept = false;
    loop {
        let waited = start.elapsed();
        let word = h.lock.load(Relaxed);
        if waited >= timeout {
            return Err(LockError::Timeout {
                waited,
                holder_pid: holder_pid(h, word),
            });
        }
        // Free, or handed over and we have slept for it: take it. Others
        // may sleep, so keep CONTENDED.
        if word == 0 || (word == LOCK_HANDOFF && slept) {
            if h.lock
                .compare_exchange(word, me | LOCK_CONTENDED, Acquire, Relaxed)
                .is_ok()
            {
                return Ok(false);
            }
            continue;
        }
        let (owner, _) = word_owner(word);
        if owner == my_tid {
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
        // Announce ourselves (and our starving) to the owner. A HANDOFF
        // word stays as it is: the thread it was handed to takes it, or we
        // do after this sleep.
        let expected = if word == LOCK_HANDOFF {
            word
        } else if waited >= STARVE_AFTER {
            word | LOCK_CONTENDED | LOCK_STARVING
        } else {
            word | LOCK_CONTENDED
        };
        if word != expected
            && h.lock
                .compare_exchange(word, expected, Relaxed, Relaxed)
                .is_err()
        {
            continue;
        }
        sys::futex_wait_low(&h.lock, expected as u32, slice.min(timeout - waited));
        slept = true;
        slice = (slice * 2).min(MAX_SLICE);
        if expected != LOCK_HANDOFF
            && h.lock.load(Relaxed) == expected
            && owner_is_dead(expected)
            && h.lock
                .compare_exchange(expected, me | LOCK_CONTENDED, Acquire, Relaxed)
                .is_ok()
        {
            return Ok(true);
        }
    }
}

#[cfg(not(windows))]
/// The process holding the lock, as far as it can be told: the record the
/// owner wrote after taking it if that record is for the thread the word
/// names, else the thread's process from `/proc`.
fn holder_pid(h: &Header, word: u64) -> Option<u32> {
    let (owner, _) = word_owner(word);
    if owner == 0 {
        return None;
    }
    let pid = h.lock_pid.load(Relaxed);
    if h.lock_tid.load(Relaxed) == owner && pid != 0 {
        return Some(pid);
    }
    sys::process_of_thread(owner)
}

/// Record (informationally) who holds the lock: error messages name it.
fn record_owner(h: &Header, tid: u32) {
    h.lock_tid.store(tid, Relaxed);
    h.lock_pid.store(sys::pid(), Relaxed);
}

#[cfg(not(windows))]
thread_local! {
    /// This thread's lock word and the thread id it was made for.
    static OWN_WORD: Cell<(u32, u64)> = const { Cell::new((0, 0)) };
}

#[cfg(not(windows))]
/// `owner_word(this thread, its start time)`, computed once per thread
/// (the start time is a `/proc` read) and keyed by thread id, so a forked
/// child (a new thread id) computes its own.
#[inline]
fn own_word() -> u64 {
    let tid = sys::tid();
    OWN_WORD.with(|cell| match cell.get() {
        (cached, word) if cached == tid && tid != 0 => word,
        _ => {
            let word = owner_word(tid, sys::own_thread_start_time());
            cell.set((tid, word));
            word
        }
    })
}

#[cfg(not(windows))]
/// Whether the owner named by lock word `word` is proven gone. Anything
/// uncertain counts as alive: taking a live owner's lock would let two
/// writers publish at once.
fn owner_is_dead(word: u64) -> bool {
    let (owner, start) = word_owner(word);
    match sys::liveness(owner) {
        sys::Liveness::Dead => true, // died, or the word is garbage
        sys::Liveness::Unknown => false,
        // A live thread with another start time is not the owner: the id
        // was reused after the owner died, or the word is garbage. A start
        // time of 0 ("unknown") proves nothing.
        sys::Liveness::Alive { start_time } => {
            start != 0 && start_time != 0 && start_time as u32 != start
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
    release_for(h, sys::tid())
}

#[cfg(not(windows))]
/// Release the lock held by thread `tid` of this process (the caller's own
/// thread, or the thread that took an owned guard being dropped
/// elsewhere). Returns `false` (and changes nothing) if `tid` does not
/// hold it.
pub fn release_for(h: &Header, tid: u32) -> bool {
    let mut word = h.lock.load(Relaxed);
    let mut next;
    loop {
        if word == LOCK_HANDOFF || word_owner(word).0 != tid & LOCK_TID_MASK as u32 {
            return false;
        }
        next = if word & LOCK_STARVING != 0 {
            LOCK_HANDOFF
        } else {
            0
        };
        match h.lock.compare_exchange_weak(word, next, Release, Relaxed) {
            Ok(_) => break,
            Err(now) => word = now,
        }
    }
    if word & (LOCK_CONTENDED | LOCK_STARVING) != 0 {
        let woken = sys::futex_wake_low(&h.lock, 1);
        if next == LOCK_HANDOFF && woken == 0 {
            // The starving waiter left (timed out): free the word, or the
            // next taker would sleep a slice before it may take HANDOFF.
            let _ = h.lock.compare_exchange(LOCK_HANDOFF, 0, Relaxed, Relaxed);
        }
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
