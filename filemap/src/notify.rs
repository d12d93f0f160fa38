//! Change notification: sleeping until the generation moves, and waking
//! sleepers after a publish.
//!
//! This module owns the `notify` futex word and the waiter counts. The word
//! holds the low 31 bits of the generation and [`SLEEPERS`], which a waiter
//! sets right before it sleeps. A publisher swaps in the new generation with
//! the bit clear and makes a `futex_wake` only when the bit was set: no
//! system call when nobody sleeps, and one per sleep, not one per publish,
//! while a watcher is between waking and re-checking (benches/PERFORMANCE.md
//! finding 4). The waiter counts (global and per attach slot) say how many
//! threads are in [`wait_once`], for introspection and the crash accounting
//! of dead slots; waking does not depend on them. This module must never
//! sleep unboundedly: another process may have scribbled on the word, so
//! sleeps last at most a slice and the generation is checked again after
//! each.
//!
//! Lost-wakeup freedom (all `SeqCst`). Publisher: `store(generation,
//! Release); old = swap(notify, new); if old & SLEEPERS { wake }`. Waiter:
//! `n = load(notify); g = load(generation); if g == seen { CAS(notify, n,
//! n | SLEEPERS) (skipped if set); futex_wait(notify, n | SLEEPERS) }`.
//! Take the publisher's swap in the single order of operations on `notify`:
//! - before the waiter's load of `n`: the load reads the swap (or later),
//!   which follows the generation store, so the waiter sees the new
//!   generation and does not sleep;
//! - between the load and the CAS: the CAS fails (the word changed) and the
//!   waiter returns without sleeping, to check the generation again;
//! - after the CAS (or after the load, when the bit was already set by
//!   another waiter and no swap came between): the swap returns the bit
//!   set, so the publisher wakes; a waiter not yet in the kernel then finds
//!   the word changed (`futex_wait` compares atomically with queueing) and
//!   does not sleep.
//!
//! Every case ends with the waiter awake and looking at the new
//! generation. The bit can stay set with nobody asleep (a waiter that timed
//! out): the next publish then makes one needless wake. A scribble that
//! clears it can delay a sleeper by at most a slice. [`interrupt`] changes
//! the word and wakes unconditionally.
//!
//! Windows has no cross-process futex (`WaitOnAddress` is process-local),
//! so each attach-table slot has a named semaphore
//! (`Local\filemap.<name>.wake.<pid>.<slot>`), made by the handle owning
//! the slot before it first counts itself as a waiter. The waiter sets
//! [`SLEEPERS`] exactly as above and then sleeps on its own semaphore
//! instead of the futex; the publisher, still only when the swap returned
//! the bit set, posts each slot whose `waiters` is non-zero. The waiter
//! counted itself in its slot before setting the bit, so a publisher that
//! sees the bit also sees the count. Lost-wakeup freedom is the same
//! argument with the semaphore's count in place of the kernel's compare: a
//! post that races ahead of the waiter's `WaitForSingleObject` is kept in
//! the count and ends that wait at once. The semaphore holds at most one
//! count, and only one thread of a handle (the leader) waits on it; the
//! handle's other sleepers wait for the leader to return, so a count is
//! never taken by a thread that began waiting after the publish while one
//! that waited before it sleeps on. Surplus counts (posts to waiters that
//! had already timed out) only cause one spurious wake-up, which every
//! caller loops over anyway.

use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant};

use crate::layout::{Header, Slot};
use crate::sys;

/// Longest single sleep; bounds the harm of scribbled waiter counts.
pub const SLICE: Duration = Duration::from_secs(1);

/// Bit of the notify word set by a waiter about to sleep.
pub const SLEEPERS: u32 = 1 << 31;

/// Tell sleepers that `generation` was published. Call after storing it.
#[inline]
pub fn published(h: &Header, generation: u64) {
    if h.notify.swap(generation as u32 & !SLEEPERS, SeqCst) & SLEEPERS != 0 {
        wake_all(h);
    }
}

/// Wake every thread sleeping on the region, in every process.
#[cfg(not(windows))]
#[cold]
pub fn wake_all(h: &Header) {
    sys::futex_wake(&h.notify, i32::MAX as u32);
}

/// Wake every thread sleeping on the region, in every process: post the
/// semaphore of each slot whose waiter count is non-zero.
#[cfg(windows)]
#[cold]
pub fn wake_all(h: &Header) {
    let Some(wakers) = sys::wakers_of(header_key(h)) else {
        return;
    };
    for (index, slot) in h.slots.iter().enumerate() {
        let waiting = slot.waiters.load(SeqCst);
        let pid = slot.pid.load(Acquire);
        if waiting != 0 && pid != 0 {
            wakers.wake(index, pid);
        }
    }
}

/// Identifies a mapping of a region in this process: its base address.
#[cfg(windows)]
pub fn header_key(h: &Header) -> usize {
    h as *const Header as usize
}

/// Cut short the sleep of a local waiter whose `cancel` flag was just set:
/// change the futex word (so a waiter about to sleep does not), then wake.
/// Other sleepers wake spuriously and sleep again. (The caller repeats
/// until its waiter has left: interrupts from elsewhere may interleave.)
#[cold]
pub fn interrupt(h: &Header, slot: &Slot) {
    // Move the generation bits without carrying into (or clearing) SLEEPERS:
    // other processes' sleepers still need the next publish to wake them.
    let _ = h.notify.fetch_update(SeqCst, SeqCst, |word| {
        Some((word & SLEEPERS) | (word.wrapping_add(1) & !SLEEPERS))
    });
    #[cfg(not(windows))]
    {
        let _ = slot;
        wake_all(h);
    }
    // Only this handle's own sleepers need waking: post its semaphore.
    #[cfg(windows)]
    if let Some(wakers) = sys::wakers_of(header_key(h)) {
        let _ = slot;
        wakers.interrupt();
    }
}

/// Sleep once while the generation is `seen`, at most `timeout` (capped at
/// [`SLICE`]). Returns the generation found on waking; it may still be
/// `seen` (timeout, spurious or unrelated wake-up). Does not sleep once
/// `cancel` is set; set it, then call [`interrupt`].
pub fn wait_once(
    h: &Header,
    slot: &Slot,
    seen: u64,
    timeout: Duration,
    cancel: Option<&AtomicBool>,
) -> u64 {
    // A crash between two steps may only ever leave the global count too
    // high (a spurious wake-up), never below the sum of the slots' counts,
    // which the sweep of a dead slot subtracts: global up first, slot down
    // first.
    #[cfg(windows)]
    let wakers = sys::wakers_of(header_key(h)).filter(|w| w.prepare());
    h.waiters.fetch_add(1, SeqCst);
    slot.waiters.fetch_add(1, SeqCst);
    // After counting ourselves, before re-checking: a count taken from the
    // semaphore after this (by any thread of the handle) ends our sleep.
    #[cfg(windows)]
    let token = wakers.as_ref().map(|w| w.token());
    let notify = h.notify.load(SeqCst);
    let mut generation = h.generation.load(SeqCst);
    let cancelled = cancel.is_some_and(|c| c.load(SeqCst));
    if generation == seen && !cancelled {
        let asleep = notify | SLEEPERS;
        if notify == asleep
            || h.notify
                .compare_exchange(notify, asleep, SeqCst, SeqCst)
                .is_ok()
        {
            #[cfg(not(windows))]
            sys::futex_wait(&h.notify, asleep, timeout.min(SLICE));
            #[cfg(windows)]
            match (&wakers, token) {
                (Some(wakers), Some(token)) => wakers.sleep(token, timeout.min(SLICE)),
                // No semaphore could be made: poll.
                _ => std::thread::sleep(timeout.min(Duration::from_millis(1))),
            }
        }
        // Else the word moved (a publish or an interrupt): look again.
        generation = h.generation.load(Acquire);
    }
    saturating_decrement(&slot.waiters);
    saturating_decrement(&h.waiters);
    generation
}

/// Busy-poll until the generation is not `seen` or `deadline` passes.
#[inline]
pub fn spin(h: &Header, seen: u64, deadline: Option<Instant>) -> Option<u64> {
    loop {
        for _ in 0..1024 {
            let generation = h.generation.load(Acquire);
            if generation != seen {
                return Some(generation);
            }
            std::hint::spin_loop();
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return None;
        }
    }
}

/// Forget the sleepers counted in a dead process's slot.
pub fn forget_waiters(h: &Header, slot: &Slot) {
    let dead = slot.waiters.swap(0, SeqCst);
    if dead != 0 {
        let _ = h
            .waiters
            .fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(dead)));
    }
}

fn saturating_decrement(word: &AtomicU32) {
    let _ = word.fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(1)));
}
