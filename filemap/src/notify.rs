//! Change notification: sleeping until the generation moves, and waking
//! sleepers after a publish.
//!
//! Platform-free: sleeping and waking go through the backend's [`Wake`]
//! (a wait-on-address primitive on the notify word, or on Windows a
//! semaphore per attach slot).
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

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering::{Acquire, Relaxed, SeqCst};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64};
use std::time::{Duration, Instant};

use crate::layout::{Header, Slot};

/// Sleeping and waking on a region's notify word: what this module needs
/// of a backend (each backend implements it with its OS's primitive).
pub(crate) trait Wake {
    /// Before a thread first counts itself as a waiter: make what a
    /// publisher needs to wake it. `false` if that failed (the thread then
    /// polls).
    fn prepare(&self) -> bool {
        true
    }

    /// Taken after counting itself as a waiter and before re-checking the
    /// generation; handed to [`Wake::sleep`].
    fn token(&self) -> u64 {
        0
    }

    /// Sleep at most `timeout` while the notify word is `asleep` (or until
    /// a wake-up that came after `token` was taken). Returns `true` when
    /// the OS says a signal handler ran during the sleep and cut it short
    /// (`EINTR`), `false` otherwise or where the OS cannot tell.
    fn sleep(&self, h: &Header, asleep: u32, token: u64, prepared: bool, timeout: Duration)
        -> bool;

    /// Wake every thread sleeping on the region, in every process.
    fn wake_all(&self, h: &Header);

    /// Called by a waiter that has seen nothing change for a while (a
    /// sleep slice, or a long spin): a waiter touches only the header, so
    /// this is where a backend whose file can shrink checks that it still
    /// covers the mapping, and gives the mapping up if not (its generation
    /// then reads `layout::GONE`, which ends the wait).
    fn idle(&self) {}

    /// Wake this handle's own sleepers (an interrupt); by default everyone.
    fn interrupt(&self, h: &Header) {
        self.wake_all(h);
    }
}

/// Longest single sleep; bounds the harm of scribbled waiter counts.
pub const SLICE: Duration = Duration::from_secs(1);

/// Bit of the notify word set by a waiter about to sleep.
pub const SLEEPERS: u32 = 1;
/// What one event (a publish or an interrupt) adds to the notify word: the
/// counter lives above [`SLEEPERS`], so adding never touches the bit.
pub const TICK: u32 = 2;

/// Tell sleepers that a new generation was published. Call after storing it.
#[inline]
pub fn published(h: &Header, wake: &impl Wake) {
    if h.notify.fetch_add(TICK, SeqCst) & SLEEPERS != 0 {
        woken(h, wake);
    }
}

/// A publish found the sleepers bit set: clear it, then wake them all.
#[cold]
fn woken(h: &Header, wake: &impl Wake) {
    h.notify.fetch_and(!SLEEPERS, SeqCst);
    wake.wake_all(h);
}

/// Cut short the sleep of a local waiter whose `cancel` flag was just set:
/// move the counter (so a waiter about to sleep does not), then wake.
/// Other sleepers wake spuriously and sleep again. The sleepers bit is
/// left alone: other processes' sleepers still need the next publish to
/// wake them. (The caller repeats until its waiter has left: interrupts
/// from elsewhere may interleave.)
#[cold]
pub fn interrupt(h: &Header, wake: &impl Wake) {
    h.notify.fetch_add(TICK, SeqCst);
    wake.interrupt(h);
}

/// Sleep once while the generation is `seen`, at most `timeout` (capped at
/// [`SLICE`]). Returns the generation found on waking; it may still be
/// `seen` (timeout, spurious or unrelated wake-up). Does not sleep once
/// `cancel` is set; set it, then call [`interrupt`].
pub fn wait_once(
    h: &Header,
    slot: &Slot,
    wake: &impl Wake,
    seen: u64,
    timeout: Duration,
    cancel: Option<&AtomicBool>,
) -> u64 {
    sleep_once(h, slot, wake, seen, timeout, cancel).0
}

/// [`wait_once`], also saying whether a signal cut the sleep short
/// ([`Wake::sleep`]'s answer; `false` when it did not sleep).
fn sleep_once(
    h: &Header,
    slot: &Slot,
    wake: &impl Wake,
    seen: u64,
    timeout: Duration,
    cancel: Option<&AtomicBool>,
) -> (u64, bool) {
    let prepared = wake.prepare();
    // A crash between two steps may only ever leave the global count too
    // high (a spurious wake-up), never below the sum of the slots' counts,
    // which the sweep of a dead slot subtracts: global up first, slot down
    // first.
    h.waiters.fetch_add(1, SeqCst);
    slot.waiters.fetch_add(1, SeqCst);
    let token = wake.token();
    let notify = h.notify.load(SeqCst);
    let mut generation = h.line.generation.load(SeqCst);
    let cancelled = cancel.is_some_and(|c| c.load(SeqCst));
    let mut interrupted = false;
    if generation == seen && !cancelled {
        if let Some(asleep) = announce_sleep(h, notify) {
            interrupted = wake.sleep(h, asleep, token, prepared, timeout.min(SLICE));
        }
        // Else the word moved (a publish or an interrupt): look again.
        generation = h.line.generation.load(Acquire);
        if generation == seen {
            // Nothing changed for a while: let the backend check the
            // mapping (which may end the wait: see `Wake::idle`).
            wake.idle();
            generation = h.line.generation.load(Acquire);
        }
    }
    saturating_decrement(&slot.waiters);
    saturating_decrement(&h.waiters);
    (generation, interrupted)
}

/// Set the sleepers bit in the word last read as `notify`; the value to
/// sleep on, or `None` when the word moved since (an event happened: look
/// at the generation again instead of sleeping).
#[inline]
fn announce_sleep(h: &Header, notify: u32) -> Option<u32> {
    let asleep = notify | SLEEPERS;
    (notify == asleep
        || h.notify
            .compare_exchange(notify, asleep, SeqCst, SeqCst)
            .is_ok())
    .then_some(asleep)
}

/// Rounds of 64 polls between two calls of [`Wake::idle`] by [`spin`]:
/// a million polls, some milliseconds.
const IDLE_ROUNDS: u32 = 1 << 14;

/// Busy-poll until the generation is not `seen`, `deadline` passes or
/// `cancel` is set, calling `wake.idle()` now and then.
#[inline]
pub fn spin(
    h: &Header,
    wake: &impl Wake,
    seen: u64,
    deadline: Option<Instant>,
    cancel: Option<&AtomicBool>,
) -> Option<u64> {
    let mut rounds = 0u32;
    loop {
        for _ in 0..64 {
            let generation = h.line.generation.load(Acquire);
            if generation != seen {
                return Some(generation);
            }
            std::hint::spin_loop();
        }
        if deadline.is_some_and(|d| Instant::now() >= d) || is_set(cancel) {
            return None;
        }
        rounds = rounds.wrapping_add(1);
        if rounds % IDLE_ROUNDS == 0 {
            wake.idle();
        }
    }
}

fn is_set(flag: Option<&AtomicBool>) -> bool {
    flag.is_some_and(|f| f.load(Relaxed))
}

/// Forget the sleepers and spinners counted in a dead process's slot.
pub fn forget_waiters(h: &Header, slot: &Slot) {
    for (own, global) in [(&slot.waiters, &h.waiters), (&slot.spinners, &h.spinners)] {
        let dead = own.swap(0, SeqCst);
        if dead != 0 {
            let _ = global.fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(dead)));
        }
    }
}

/// The longest an adaptive wait busy-polls before it sleeps.
pub const MAX_SPIN: Duration = Duration::from_micros(50);
/// Spins in a row that saw nothing before a waiter stops spinning.
const MISSES: u32 = 4;
/// While spinning does not pay, every this many waits one spins for the
/// whole [`MAX_SPIN`] anyway, to notice when it pays again.
const PROBE_EVERY: u32 = 8;

/// What an adaptive waiter has learnt: whether spinning pays, and how long
/// it takes when it does. Shared by the threads of a handle and updated
/// without a lock: it is a heuristic, and a lost update only costs a
/// slightly different budget.
///
/// Only spins teach it. A change that a spin caught tells how soon the
/// peer answers while it is being waited for (a moving average of those
/// gaps sets the next budget); a spin that caught nothing is a miss, and
/// after [`MISSES`] in a row the waiter sleeps at once, except for a probe
/// of the whole [`MAX_SPIN`] every [`PROBE_EVERY`] waits. What a sleep saw
/// teaches nothing: its gap includes the waiter's own wake-up, so two
/// adaptive waiters that both slept would each measure a sleeping round
/// trip and conclude, wrongly, that the other is slow.
#[derive(Debug)]
pub struct Learner {
    /// How many threads of all processes may busy-poll one region at
    /// once: one fewer than the machine's CPUs, so a core is left for the
    /// peer that is to publish.
    spin_limit: u32,
    /// Moving average of the gaps caught by spins, in nanoseconds.
    gap_ns: AtomicU64,
    /// Spins in a row that caught nothing.
    misses: AtomicU32,
    /// Waits without a spin since the last probe.
    unspun: AtomicU32,
    /// How many CPUs the machine has (the crowding rule's yardstick).
    cpus: usize,
    /// Threads runnable on the machine now, if the OS says so cheaply
    /// (the backend's [`runnable_threads`](crate::backend::Backend)).
    runnable: fn() -> Option<usize>,
    /// When the learner was made: [`Learner::crowd`] counts from it.
    born: Instant,
    /// The last look at the machine's run queue: microseconds since
    /// `born` when it was taken, shifted left once, and whether the
    /// machine was crowded in bit 0; [`NEVER`] before the first look.
    crowd: AtomicU64,
}

/// [`Learner::crowd`] before the first look.
const NEVER: u64 = u64::MAX;
/// How long a look at the run queue holds: one read of a small kernel
/// file (a few microseconds) per this much time, and a load that begins
/// stops the spinning within it.
const CROWD_TTL: Duration = Duration::from_millis(10);

impl Learner {
    /// A learner for a machine with `cpus` CPUs online, which asks
    /// `runnable` how many threads are runnable on it (`None`: the OS
    /// does not say, and only the spins teach); it tries spinning at
    /// first.
    pub fn new(cpus: usize, runnable: fn() -> Option<usize>) -> Learner {
        Learner {
            spin_limit: u32::try_from(cpus.saturating_sub(1)).unwrap_or(u32::MAX),
            gap_ns: AtomicU64::new(0),
            misses: AtomicU32::new(0),
            unspun: AtomicU32::new(0),
            cpus,
            runnable,
            born: Instant::now(),
            crowd: AtomicU64::new(NEVER),
        }
    }

    /// Whether more threads are runnable on the machine than it has CPUs
    /// (the waiter itself counted: it is running). A spin then takes a CPU
    /// that a runnable thread, perhaps the very peer it waits for, would
    /// otherwise get: the peer's answer comes later, and the spin burns
    /// what the others needed. Looked at once per [`CROWD_TTL`] at most.
    pub fn crowded(&self) -> bool {
        let now = u64::try_from(self.born.elapsed().as_micros()).unwrap_or(u64::MAX >> 2);
        let last = self.crowd.load(Relaxed);
        if last != NEVER && now.saturating_sub(last >> 1) < CROWD_TTL.as_micros() as u64 {
            return last & 1 == 1;
        }
        let crowded = (self.runnable)().is_some_and(|r| r > self.cpus);
        self.crowd
            .store(((now & (u64::MAX >> 2)) << 1) | u64::from(crowded), Relaxed);
        crowded
    }

    /// How long the next wait spins before sleeping: twice the average
    /// gap a spin caught, and a little, at most [`MAX_SPIN`]; nothing while
    /// spinning does not pay, but for a probe every [`PROBE_EVERY`] waits;
    /// nothing while the machine is [crowded](Learner::crowded).
    pub fn budget(&self) -> Duration {
        let budget = self.spin_budget();
        if budget.is_zero() || self.crowded() {
            return Duration::ZERO;
        }
        budget
    }

    fn spin_budget(&self) -> Duration {
        if self.misses.load(Relaxed) >= MISSES {
            if self.unspun.fetch_add(1, Relaxed) + 1 >= PROBE_EVERY {
                self.unspun.store(0, Relaxed);
                return MAX_SPIN;
            }
            return Duration::ZERO;
        }
        let gap = self.gap_ns.load(Relaxed);
        (Duration::from_nanos(2 * gap) + Duration::from_micros(2)).min(MAX_SPIN)
    }

    /// A spin saw the change `gap` after the wait began.
    ///
    /// The first hit after spinning stopped paying (or ever) is taken as
    /// it is, not averaged in: the average of a waiter that slept is
    /// stale. This is what lets two adaptive waiters of a ping-pong start
    /// spinning together: one's probe catches the other's sleeping answer
    /// (its wake-up latency, tens of µs), so it keeps spinning for that
    /// long and answers at once; the other's next probe catches that
    /// prompt answer, and from then on both averages fall to the real
    /// round trip. Averaged in from zero, the first hit gave a budget too
    /// short to catch a sleeping peer's answer, and both kept sleeping.
    pub fn hit(&self, gap: Duration) {
        let gap = gap.min(MAX_SPIN).as_nanos() as u64;
        let old = self.gap_ns.load(Relaxed);
        let fresh = old == 0 || self.misses.load(Relaxed) >= MISSES;
        let average = if fresh { gap } else { old - old / 8 + gap / 8 };
        // 0 means "no hit yet".
        self.gap_ns.store(average.max(1), Relaxed);
        self.misses.store(0, Relaxed);
    }

    /// A spin ran out without seeing a change.
    pub fn miss(&self) {
        let _ = self
            .misses
            .fetch_update(Relaxed, Relaxed, |m| Some(m.saturating_add(1)));
    }
}

/// Count this thread in as a spinner, if the region has a core to spare
/// (fewer than `limit` spin on it).
fn claim_spinner(h: &Header, slot: &Slot, limit: u32) -> bool {
    if h.spinners.fetch_add(1, SeqCst) >= limit {
        saturating_decrement(&h.spinners);
        return false;
    }
    slot.spinners.fetch_add(1, SeqCst);
    true
}

fn release_spinner(h: &Header, slot: &Slot) {
    // Slot first, global second: a crash between them leaves the global
    // count high, which only costs spinning, never correctness.
    saturating_decrement(&slot.spinners);
    saturating_decrement(&h.spinners);
}

/// The busy-polling part of an adaptive wait, begun now: spin for
/// the budget `learner` allows, if a core is free for it, and `Some` new
/// generation if it came meanwhile (which the learner is told).
pub fn spin_phase(
    h: &Header,
    slot: &Slot,
    wake: &impl Wake,
    seen: u64,
    deadline: Option<Instant>,
    learner: &Learner,
    cancel: Option<&AtomicBool>,
) -> Option<u64> {
    let start = Instant::now();
    let budget = learner.budget();
    if budget.is_zero() || !claim_spinner(h, slot, learner.spin_limit) {
        return None;
    }
    let until = start + budget;
    let stop = deadline.map_or(until, |d| d.min(until));
    let spun = spin(h, wake, seen, Some(stop), cancel);
    release_spinner(h, slot);
    match spun {
        Some(_) => learner.hit(start.elapsed()),
        // A spin cut short by the caller's deadline (or a cancel) proves
        // nothing.
        None if stop == until && !is_set(cancel) => learner.miss(),
        None => {}
    }
    spun
}

/// Wait for the generation to leave `seen`: busy-poll for the budget
/// `learner` allows (if a core is free for it), then sleep as
/// [`sleep_until`] does. Returns the new generation, or `Ok(None)` at the
/// deadline or once `cancel` is set, `Err(Interrupted)` as
/// [`sleep_until`] says. Sleeping follows the sleepers-bit
/// protocol above unchanged, so spinning first adds no way to lose a
/// wake-up: a publish during the spin is seen by the poll, one after it by
/// the protocol.
#[allow(clippy::too_many_arguments)] // the wait's parts, as `sleep_until` takes them
pub fn adaptive(
    h: &Header,
    slot: &Slot,
    wake: &impl Wake,
    seen: u64,
    deadline: Option<Instant>,
    learner: &Learner,
    cancel: Option<&AtomicBool>,
    interruptible: bool,
) -> Result<Option<u64>, Interrupted> {
    if let Some(generation) = spin_phase(h, slot, wake, seen, deadline, learner, cancel) {
        return Ok(Some(generation));
    }
    sleep_until(h, slot, wake, seen, deadline, cancel, interruptible)
}

/// An interruptible sleep was cut short by a signal (see
/// [`Wake::sleep`]) before the generation moved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interrupted;

/// Sleep (in slices, by [`wait_once`]) until the generation leaves
/// `seen`, and return it; `Ok(None)` once `deadline` passes first (no
/// deadline: as long as it takes) or `cancel` is set (set it, then call
/// [`interrupt`]). With `interruptible`, a sleep that a signal handler cut
/// short ends the wait with `Err(Interrupted)` unless the generation moved
/// meanwhile; without, the wait sleeps again.
pub fn sleep_until(
    h: &Header,
    slot: &Slot,
    wake: &impl Wake,
    seen: u64,
    deadline: Option<Instant>,
    cancel: Option<&AtomicBool>,
    interruptible: bool,
) -> Result<Option<u64>, Interrupted> {
    loop {
        let generation = h.line.generation.load(Acquire);
        if generation != seen {
            return Ok(Some(generation));
        }
        if is_set(cancel) {
            return Ok(None);
        }
        let remaining = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(r) if !r.is_zero() => r,
                _ => return Ok(None),
            },
            None => SLICE,
        };
        let (generation, interrupted) = sleep_once(h, slot, wake, seen, remaining, cancel);
        if interrupted && interruptible && generation == seen {
            return Err(Interrupted);
        }
    }
}

fn saturating_decrement(word: &AtomicU32) {
    let _ = word.fetch_update(SeqCst, SeqCst, |w| Some(w.saturating_sub(1)));
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sleeps by polling: the tests here check the words, not the OS.
    /// `signalled`: every sleep says a signal cut it short.
    struct Poll {
        signalled: bool,
    }

    const POLL: Poll = Poll { signalled: false };
    const SIGNALLED: Poll = Poll { signalled: true };

    impl Wake for Poll {
        fn sleep(
            &self,
            _h: &Header,
            _asleep: u32,
            _token: u64,
            _prepared: bool,
            t: Duration,
        ) -> bool {
            std::thread::sleep(t.min(Duration::from_millis(1)));
            self.signalled
        }

        fn wake_all(&self, _h: &Header) {}
    }

    /// An interrupt followed by a publish left the word at the value a
    /// waiter had read before both (the interrupt bumped the generation
    /// bits to g+1, the publish stored g+1), so the waiter's announcement
    /// succeeded after the publish had looked for sleepers: a lost wake-up
    /// of up to a slice.
    #[test]
    fn a_waiter_never_announces_itself_after_an_interrupt_and_a_publish() {
        let h = Header::zeroed();
        for _ in 0..3 {
            let seen_by_waiter = h.notify.load(SeqCst);
            interrupt(&h, &POLL);
            h.line.generation.fetch_add(1, SeqCst);
            published(&h, &POLL);
            assert_eq!(announce_sleep(&h, seen_by_waiter), None);
        }
    }

    #[test]
    fn a_publish_after_an_announcement_clears_the_bit_and_moves_the_word() {
        let h = Header::zeroed();
        let before = h.notify.load(SeqCst);
        let asleep = announce_sleep(&h, before).unwrap();
        assert_eq!(asleep & SLEEPERS, SLEEPERS);
        // A second waiter finds the bit set and sleeps on the same value.
        assert_eq!(announce_sleep(&h, asleep), Some(asleep));
        published(&h, &POLL);
        let after = h.notify.load(SeqCst);
        assert_eq!(after & SLEEPERS, 0, "the publisher cleared the bit");
        assert_ne!(after, asleep);
        assert_ne!(after, before);
        // Interrupts move the counter but leave other sleepers' bit alone.
        let asleep = announce_sleep(&h, after).unwrap();
        interrupt(&h, &POLL);
        let now = h.notify.load(SeqCst);
        assert_eq!(now & SLEEPERS, SLEEPERS);
        // A waiter holding `asleep` would now not sleep: the kernel's
        // compare sees another value.
        assert_ne!(now, asleep);
    }

    #[test]
    fn the_counter_wraps_without_touching_the_sleepers_bit() {
        let h = Header::zeroed();
        h.notify.store(u32::MAX - 1, SeqCst); // counter at its top, bit clear
        published(&h, &POLL);
        assert_eq!(h.notify.load(SeqCst), 0);
        h.notify.store(u32::MAX, SeqCst); // counter at its top, bit set
        published(&h, &POLL);
        assert_eq!(h.notify.load(SeqCst), 0, "wrapped, and the bit cleared");
    }

    #[test]
    fn the_learner_spins_only_while_spinning_pays_and_probes_meanwhile() {
        let learner = Learner::new(2, unknown);
        assert!(!learner.budget().is_zero(), "a new handle tries spinning");
        for _ in 0..50 {
            learner.hit(Duration::from_micros(1));
        }
        let fast = learner.budget();
        assert!(
            fast > Duration::ZERO && fast <= Duration::from_micros(10),
            "{fast:?}"
        );
        for _ in 0..MISSES {
            learner.miss();
        }
        let budgets: Vec<Duration> = (0..2 * PROBE_EVERY).map(|_| learner.budget()).collect();
        let probes = budgets.iter().filter(|b| !b.is_zero()).count();
        assert_eq!(
            probes, 2,
            "sleep at once but for a probe every {PROBE_EVERY} waits: {budgets:?}"
        );
        assert!(budgets.iter().all(|b| b.is_zero() || *b == MAX_SPIN));
        // A probe that catches a change: spinning pays again, and the
        // budget is set by that change's gap alone (a sleeping peer's
        // answer, 30 µs: twice that is above the cap), not averaged in
        // with the fast gaps of before.
        learner.hit(Duration::from_micros(30));
        assert_eq!(learner.budget(), MAX_SPIN);
        // Then fast answers bring it down again, gradually.
        for _ in 0..50 {
            learner.hit(Duration::from_micros(1));
        }
        let budget = learner.budget();
        assert!(budget <= Duration::from_micros(10), "{budget:?}");
    }

    fn unknown() -> Option<usize> {
        None
    }

    fn three_runnable() -> Option<usize> {
        Some(3)
    }

    fn two_runnable() -> Option<usize> {
        Some(2)
    }

    #[test]
    fn the_learner_does_not_spin_while_more_threads_are_runnable_than_cpus() {
        for runnable in [
            three_runnable as fn() -> Option<usize>,
            two_runnable,
            unknown,
        ] {
            let learner = Learner::new(2, runnable);
            for _ in 0..50 {
                learner.hit(Duration::from_micros(1));
            }
            let crowded = runnable().is_some_and(|r| r > 2);
            assert_eq!(learner.crowded(), crowded);
            assert_eq!(
                learner.budget().is_zero(),
                crowded,
                "{:?} runnable on 2 CPUs, with spins that pay",
                runnable()
            );
        }
    }

    #[test]
    fn the_learner_looks_at_the_run_queue_rarely() {
        static LOOKS: AtomicU32 = AtomicU32::new(0);
        fn counted() -> Option<usize> {
            LOOKS.fetch_add(1, SeqCst);
            Some(1)
        }
        let start = Instant::now();
        let learner = Learner::new(2, counted);
        for _ in 0..10_000 {
            let _ = learner.budget();
        }
        let elapsed = start.elapsed();
        let looks = LOOKS.load(SeqCst);
        // At most one look per CROWD_TTL, and the first: the bound follows
        // the time the loop took, which is a few ms natively and more under
        // an emulator or on a loaded machine.
        let most = 1 + elapsed.as_micros() / CROWD_TTL.as_micros();
        assert!(
            (1..=most).contains(&u128::from(looks)),
            "{looks} looks for 10000 waits in {elapsed:?} (at most {most})"
        );
    }

    #[test]
    fn spinners_are_bounded_by_the_cores_and_forgotten_with_a_dead_slot() {
        let h = Header::zeroed();
        let slot = &h.slots[3];
        let limit = Learner::new(4, unknown).spin_limit;
        assert_eq!(limit, 3, "one core is left for the publisher");
        assert_eq!(
            Learner::new(1, unknown).spin_limit,
            0,
            "one core: never spin"
        );
        let mut claimed = 0;
        while claim_spinner(&h, slot, limit) {
            claimed += 1;
            assert!(claimed <= 1024, "no bound");
        }
        assert_eq!(claimed, limit);
        assert_eq!(h.spinners.load(SeqCst), limit, "a refusal undoes its count");
        release_spinner(&h, slot);
        assert!(
            claim_spinner(&h, slot, limit),
            "a released place can be taken"
        );
        // The process dies spinning: its slot's spinners are forgotten.
        h.waiters.store(2, SeqCst);
        slot.waiters.store(2, SeqCst);
        forget_waiters(&h, slot);
        assert_eq!(h.spinners.load(SeqCst), 0);
        assert_eq!(h.waiters.load(SeqCst), 0);
    }

    #[test]
    fn only_an_interruptible_sleep_ends_when_a_signal_cuts_it_short() {
        let h = Header::zeroed();
        let slot = &h.slots[0];
        assert_eq!(
            sleep_until(&h, slot, &SIGNALLED, 0, None, None, true),
            Err(Interrupted)
        );
        let deadline = Instant::now() + Duration::from_millis(20);
        assert_eq!(
            sleep_until(&h, slot, &SIGNALLED, 0, Some(deadline), None, false),
            Ok(None),
            "a plain wait sleeps on to its deadline"
        );
        assert!(Instant::now() >= deadline);
        // A change seen on waking wins over the signal.
        h.line.generation.store(3, SeqCst);
        assert_eq!(
            sleep_until(&h, slot, &SIGNALLED, 0, None, None, true),
            Ok(Some(3))
        );
    }

    #[test]
    fn an_adaptive_wait_honours_its_deadline_and_sees_a_change() {
        let h = Header::zeroed();
        let learner = Learner::new(2, unknown);
        let start = Instant::now();
        let timeout = Duration::from_millis(30);
        assert_eq!(
            adaptive(
                &h,
                &h.slots[0],
                &POLL,
                0,
                Some(start + timeout),
                &learner,
                None,
                true
            ),
            Ok(None)
        );
        let waited = start.elapsed();
        assert!(waited >= timeout && waited < timeout + SLICE, "{waited:?}");
        assert_eq!(h.spinners.load(SeqCst), 0, "the spinner left");
        h.line.generation.store(5, SeqCst);
        assert_eq!(
            adaptive(&h, &h.slots[0], &POLL, 0, None, &learner, None, true),
            Ok(Some(5))
        );
    }
}
