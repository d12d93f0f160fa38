//! Change notification: sleeping until the generation moves, and waking
//! sleepers after a publish.
//!
//! This module owns the `notify` futex word and the waiter counts. The word
//! is a counter of events (publishes and interrupts) in bits 1..=31, which
//! every event bumps by [`TICK`] and which therefore never repeats a value
//! a waiter could have read a moment earlier (it wraps after 2^31 events),
//! and [`SLEEPERS`] in bit 0, which a waiter sets right before it sleeps. A
//! publisher makes a `futex_wake` only when the bit was set: no system call
//! when nobody sleeps, and one per sleep, not one per publish, while a
//! watcher is between waking and re-checking. The waiter counts (global
//! and per attach slot) say how many threads are in [`wait_once`], for
//! introspection and the crash accounting of dead slots; waking does not
//! depend on them. This module must never sleep unboundedly: another
//! process may have scribbled on the word, so sleeps last at most a slice
//! and the generation is checked again after each.
//!
//! Lost-wakeup freedom (all `SeqCst`). Publisher (and [`interrupt`], which
//! is a publish without a new generation): `store(generation); old =
//! fetch_add(notify, TICK); if old & SLEEPERS { fetch_and(notify,
//! !SLEEPERS); wake }`. Waiter: `n = load(notify); g = load(generation);
//! if g == seen { CAS(notify, n, n | SLEEPERS) (skipped if set);
//! futex_wait(notify, n | SLEEPERS) }`. Two facts carry the argument: every
//! event changes the word (the counter moves), and only a publisher that
//! then wakes clears the bit. Take a publisher's `fetch_add` P in the
//! single order of operations on `notify`:
//! - P before the waiter's load of `n`: the load reads P (or later), which
//!   follows the generation store, so the waiter sees the new generation
//!   and does not sleep;
//! - P between the load and the CAS: the CAS fails (P moved the counter)
//!   and the waiter returns without sleeping, to check the generation
//!   again;
//! - P after the CAS (or after the load, when the bit was already set and
//!   the waiter skipped the CAS): P finds the bit set and wakes, unless an
//!   earlier publisher P2 cleared it in between, and P2 wakes after its
//!   clear. Either wake comes after the word changed; a waiter not yet in
//!   the kernel then finds the word changed (`futex_wait` compares
//!   atomically with queueing) and does not sleep, one already queued is
//!   woken.
//!
//! Every case ends with the waiter awake and looking at the generation
//! again. The bit can stay set with nobody asleep (a waiter that timed
//! out): the next publish then makes one needless wake. A scribble that
//! clears it, or rewinds the counter, can delay a sleeper by at most a
//! slice.
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
pub const SLEEPERS: u32 = 1;
/// What one event (a publish or an interrupt) adds to the notify word: the
/// counter lives above [`SLEEPERS`], so adding never touches the bit.
pub const TICK: u32 = 2;

/// Tell sleepers that a new generation was published. Call after storing it.
#[inline]
pub fn published(h: &Header) {
    if h.notify.fetch_add(TICK, SeqCst) & SLEEPERS != 0 {
        woken(h);
    }
}

/// A publish found the sleepers bit set: clear it, then wake them all.
#[cold]
fn woken(h: &Header) {
    h.notify.fetch_and(!SLEEPERS, SeqCst);
    wake_all(h);
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
/// move the counter (so a waiter about to sleep does not), then wake.
/// Other sleepers wake spuriously and sleep again. The sleepers bit is
/// left alone: other processes' sleepers still need the next publish to
/// wake them. (The caller repeats until its waiter has left: interrupts
/// from elsewhere may interleave.)
#[cold]
pub fn interrupt(h: &Header) {
    h.notify.fetch_add(TICK, SeqCst);
    #[cfg(not(windows))]
    wake_all(h);
    // Only this handle's own sleepers need waking: post its semaphore.
    #[cfg(windows)]
    if let Some(wakers) = sys::wakers_of(header_key(h)) {
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
