//! Change notification: sleeping until the generation moves, and waking
//! sleepers after a publish.
//!
//! This module owns the `notify` futex word and the waiter counts. A
//! publisher stores the new generation's low half into `notify` and makes a
//! `futex_wake` only when `waiters` says someone sleeps, so writers make no
//! system call when nobody waits. It must never sleep unboundedly: another
//! process may have scribbled on the counts, so sleeps last at most a slice
//! and the generation is checked again after each.
//!
//! Lost-wakeup freedom (all `SeqCst`): the publisher does
//! `store(notify); load(waiters)`, the waiter `fetch_add(waiters);
//! load(notify); load(generation); futex_wait(notify, seen_notify)`. Either
//! the publisher sees the waiter and wakes it, or the waiter sees the new
//! `notify` (and generation) and does not sleep, or the kernel's compare in
//! `futex_wait` fails.
//!
//! Windows has no cross-process futex (`WaitOnAddress` is process-local),
//! so each attach-table slot has a named semaphore
//! (`Local\filemap.<name>.wake.<pid>.<slot>`), made by the handle owning
//! the slot before it first counts itself as a waiter. The waiter sleeps
//! on its own semaphore instead of the futex; the publisher, still only
//! when `waiters != 0`, posts each slot whose `waiters` is non-zero. Lost-wakeup freedom is the same argument, with the semaphore's
//! count in place of the kernel's compare: a post that races ahead of the
//! waiter's `WaitForSingleObject` is kept in the count and ends that wait
//! at once. The semaphore holds at most one count, and only one thread of
//! a handle (the leader) waits on it; the handle's other sleepers wait for
//! the leader to return, so a count is never taken by a thread that began
//! waiting after the publish while one that waited before it sleeps on.
//! Surplus counts (posts to waiters that had already timed out) only cause
//! one spurious wake-up, which every caller loops over anyway.

use std::sync::atomic::Ordering::{Acquire, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32};
use std::time::{Duration, Instant};

use crate::layout::{Header, Slot};
use crate::sys;

/// Longest single sleep; bounds the harm of scribbled waiter counts.
pub const SLICE: Duration = Duration::from_secs(1);

/// Tell sleepers that `generation` was published. Call after storing it.
#[inline]
pub fn published(h: &Header, generation: u64) {
    h.notify.store(generation as u32, SeqCst);
    if h.waiters.load(SeqCst) != 0 {
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
    h.notify.fetch_add(1, SeqCst);
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
        #[cfg(not(windows))]
        sys::futex_wait(&h.notify, notify, timeout.min(SLICE));
        #[cfg(windows)]
        {
            let _ = notify;
            match (&wakers, token) {
                (Some(wakers), Some(token)) => wakers.sleep(token, timeout.min(SLICE)),
                // No semaphore could be made: poll.
                _ => std::thread::sleep(timeout.min(Duration::from_millis(1))),
            }
        }
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
