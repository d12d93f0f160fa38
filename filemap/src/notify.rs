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
#[cold]
pub fn wake_all(h: &Header) {
    sys::futex_wake(&h.notify, i32::MAX as u32);
}

/// Cut short the sleep of a local waiter whose `cancel` flag was just set:
/// change the futex word (so a waiter about to sleep does not), then wake.
/// Other sleepers wake spuriously and sleep again. (The caller repeats
/// until its waiter has left: interrupts from elsewhere may interleave.)
#[cold]
pub fn interrupt(h: &Header) {
    h.notify.fetch_add(1, SeqCst);
    wake_all(h);
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
    h.waiters.fetch_add(1, SeqCst);
    slot.waiters.fetch_add(1, SeqCst);
    let notify = h.notify.load(SeqCst);
    let mut generation = h.generation.load(SeqCst);
    let cancelled = cancel.is_some_and(|c| c.load(SeqCst));
    if generation == seen && !cancelled {
        sys::futex_wait(&h.notify, notify, timeout.min(SLICE));
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
