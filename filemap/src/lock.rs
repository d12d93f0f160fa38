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
//! | 0..30  | owner id (0: nobody): a thread id, or a process id (below)   |
//! | 30     | `STARVING`: a waiter waited too long; hand over on release   |
//! | 31     | `CONTENDED`: a waiter may sleep; wake one on release         |
//! | 32..64 | owner's start time, low 32 bits (0: unknown)                 |
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
//! **Who the owner is** is the backend's ([`Owner`]): the Linux backend
//! names the owning *thread* (its id and start time, checked through
//! `/proc`); the `posix` backend names the owning *process* (its pid and
//! start time), because macOS and FreeBSD cannot check another process's
//! thread ids, and lets its own threads through a process-local gate per
//! region one at a time (`backend/posix`, `Gate`, with its own table), so
//! only one thread of a process ever contends for the word. A word that
//! names the caller's own identity is re-entry (`WouldDeadlock`) when the
//! backend says the calling thread holds the lock, else a scribble, taken
//! over. Sleeping and waking are the backend's wait-on-address primitive
//! on the word's low half.
//!
//! Windows uses a named kernel mutex per region instead
//! (`backend/windows`), so it does not use this module.

// Windows locks a kernel mutex: nothing here is used there.
#![cfg_attr(windows, allow(dead_code))]
#![forbid(unsafe_code)]

use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::{Duration, Instant};

use crate::layout::Header;

/// How long blocking calls wait for the region lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

/// Bit set in the lock word when a thread may sleep on it.
pub const LOCK_CONTENDED: u64 = 1 << 31;
/// Bit set in the lock word by a waiter that has waited too long: the
/// owner hands the lock over on release instead of freeing it.
pub const LOCK_STARVING: u64 = 1 << 30;
/// Mask of the owner id in the lock word (Linux thread ids are at most
/// 2^22, macOS and FreeBSD process ids at most 99999).
pub const LOCK_ID_MASK: u64 = (1 << 30) - 1;
/// The lock word of a lock released to a starving waiter: free, but only
/// for a thread that has already slept waiting for it.
pub const LOCK_HANDOFF: u64 = LOCK_STARVING;

/// The lock word naming owner `id`, started at `start_time` (0: unknown).
pub const fn owner_word(id: u32, start_time: u64) -> u64 {
    ((start_time as u32 as u64) << 32) | (id as u64 & LOCK_ID_MASK)
}

/// The owner id and start time (low 32 bits; 0: unknown) a lock word names.
pub const fn word_owner(word: u64) -> (u32, u32) {
    ((word & LOCK_ID_MASK) as u32, (word >> 32) as u32)
}

/// The first sleep before the owner's liveness is checked; each next sleep
/// doubles, up to [`MAX_SLICE`].
const FIRST_SLICE: Duration = Duration::from_millis(1);
const MAX_SLICE: Duration = Duration::from_millis(10);
/// How long a waiter waits before it asks the owner to hand the lock over.
pub const STARVE_AFTER: Duration = Duration::from_millis(2);
/// Spins before the first sleep.
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
    #[cfg_attr(not(windows), allow(dead_code))]
    Failed { op: &'static str, code: i32 },
}

/// What the backend says about owners: the identity written into the word,
/// proofs of death, and its wait-on-address primitive.
pub trait Owner {
    /// The word naming the calling thread (or its process) as owner.
    fn own_word(&self) -> u64;
    /// The word names the caller's own identity (its thread, or its
    /// process): whether the calling thread holds the lock already
    /// (taking it again would deadlock). If not, the word was scribbled,
    /// or left by a forked ancestor's copy of us, and is taken over.
    fn holds_it(&self) -> bool;
    /// The caller took the lock (bookkeeping for [`Owner::local`]).
    fn acquired(&self);
    /// Thread `tid` of this process released the lock.
    fn released(&self, tid: u32);
    /// Whether `word` is held by thread `tid` of this process.
    fn owns(&self, word: u64, tid: u32) -> bool;
    /// Whether the owner named by `word` is proven gone. Anything
    /// uncertain counts as alive: taking a live owner's lock would let two
    /// writers publish at once.
    fn is_dead(&self, word: u64) -> bool;
    /// The process named by a word, when the owner record does not say.
    fn process_of(&self, word: u64) -> Option<u32>;
    /// Sleep at most `timeout` while the low half of `word` is `expected`.
    fn wait(&self, word: &AtomicU64, expected: u32, timeout: Duration);

    /// The calling process's id, recorded beside the word so error
    /// messages can name the holder.
    fn pid(&self) -> u32;
    /// Wake up to `count` sleepers on the low half of `word`; how many.
    fn wake(&self, word: &AtomicU64, count: u32) -> usize;
}

/// Take the lock. `Ok(true)` when the previous owner died holding it.
#[inline]
pub fn acquire(h: &Header, owner: &impl Owner, timeout: Duration) -> Result<bool, LockError> {
    let me = owner.own_word();
    let taken = if h.lock.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
        Ok(false)
    } else {
        acquire_slow(h, owner, me, timeout)
    };
    if taken.is_ok() {
        record_owner(h, word_owner(me).0, owner.pid());
        owner.acquired();
    }
    taken
}

#[cold]
fn acquire_slow(
    h: &Header,
    owner: &impl Owner,
    me: u64,
    timeout: Duration,
) -> Result<bool, LockError> {
    for _ in 0..SPINS {
        std::hint::spin_loop();
        if h.lock.load(Relaxed) == 0 && h.lock.compare_exchange(0, me, Acquire, Relaxed).is_ok() {
            return Ok(false);
        }
    }
    let my_id = word_owner(me).0;
    let start = Instant::now();
    let mut slice = FIRST_SLICE;
    let mut slept = false;
    loop {
        let waited = start.elapsed();
        let word = h.lock.load(Relaxed);
        if waited >= timeout {
            return Err(LockError::Timeout {
                waited,
                holder_pid: holder_pid(h, owner, word),
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
        if word_owner(word).0 == my_id {
            if owner.holds_it() {
                return Err(LockError::WouldDeadlock);
            }
            // Nobody here holds it, so the word was scribbled: take it.
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
        owner.wait(&h.lock, expected as u32, slice.min(timeout - waited));
        slept = true;
        slice = (slice * 2).min(MAX_SLICE);
        if expected != LOCK_HANDOFF
            && word_owner(expected).0 != my_id
            && h.lock.load(Relaxed) == expected
            && owner.is_dead(expected)
            && h.lock
                .compare_exchange(expected, me | LOCK_CONTENDED, Acquire, Relaxed)
                .is_ok()
        {
            return Ok(true);
        }
    }
}

/// The process holding the lock, as far as it can be told: the record the
/// owner wrote after taking it if that record is for the owner the word
/// names, else what the backend can find out.
fn holder_pid(h: &Header, owner: &impl Owner, word: u64) -> Option<u32> {
    let (id, _) = word_owner(word);
    if id == 0 {
        return None;
    }
    let pid = h.lock_pid.load(Relaxed);
    if h.lock_tid.load(Relaxed) == id && pid != 0 {
        return Some(pid);
    }
    owner.process_of(word)
}

/// Record (informationally) who holds the lock: error messages name it.
/// `lock_tid` holds the id the word names (a thread id, or with process
/// identity the pid), so [`holder_pid`] can tell the record is current.
pub fn record_owner(h: &Header, id: u32, pid: u32) {
    h.lock_tid.store(id, Relaxed);
    h.lock_pid.store(pid, Relaxed);
}

/// Release the lock held by thread `tid` of this process (the caller's own
/// thread, or the thread that took an owned guard being dropped
/// elsewhere). Returns `false` (and changes nothing) if `tid` does not
/// hold it: another process took it over, judging us dead, or scribbled
/// on it.
#[inline]
pub fn release(h: &Header, owner: &impl Owner, tid: u32) -> bool {
    let mut word = h.lock.load(Relaxed);
    let mut next;
    loop {
        if word == LOCK_HANDOFF || !owner.owns(word, tid) {
            owner.released(tid);
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
    owner.released(tid);
    if word & (LOCK_CONTENDED | LOCK_STARVING) != 0 {
        let woken = owner.wake(&h.lock, 1);
        if next == LOCK_HANDOFF && woken == 0 {
            // The starving waiter left (timed out): free the word, or the
            // next taker would sleep a slice before it may take HANDOFF.
            let _ = h.lock.compare_exchange(LOCK_HANDOFF, 0, Relaxed, Relaxed);
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owner_word_round_trips_and_leaves_the_flags_clear() {
        let word = owner_word(4_194_304, 0x1_2345_6789);
        assert_eq!(word_owner(word), (4_194_304, 0x2345_6789));
        assert_eq!(word & (LOCK_CONTENDED | LOCK_STARVING), 0);
        assert_eq!(
            word_owner(word | LOCK_CONTENDED | LOCK_STARVING).0,
            4_194_304
        );
        assert_ne!(owner_word(0, 0), LOCK_HANDOFF);
    }
}
