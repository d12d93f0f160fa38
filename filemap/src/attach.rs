//! The attach table: one slot per open handle, naming its process.
//!
//! A slot holds the process id and start time of a handle's process and
//! the numbers of its threads sleeping or spinning on the region. The
//! table serves introspection ([`attached_pids`]), the crash accounting
//! of waiters (a dead process's counts are subtracted from the global
//! ones), the Windows wake semaphores (one per slot) and the `posix`
//! backend's lifetime (the last live slot's closer removes the region).
//!
//! Every value is read from memory other processes write, so a slot is
//! only ever freed after its process is proven gone (unknown counts as
//! alive), and a slot being reclaimed is first marked [`RECLAIMING`] so a
//! slot just re-taken by a live process is never cleaned under it.
//!
//! Opening must stay cheap: a liveness check costs a system call or two
//! (and a `/proc` read on Linux), so [`claim`] checks only the slots whose
//! waiter or spinner counts would be wrong if their process had died,
//! and sweeps the whole table only when no slot is free.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::layout::{Header, Slot};
use crate::notify;

/// What is known of a process (or thread) id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub enum Liveness {
    /// It runs; started at `start_time` (in the backend's own unit).
    Alive { start_time: u64 },
    /// No such process, or it has ended: proven gone.
    Dead,
    /// Could not tell (out of file descriptors, access denied...): treat
    /// as alive, so nobody's lock or slot is ever taken on a guess.
    Unknown,
}

/// What the attach table needs to know of processes: the backend's
/// contract with this module (every backend implements it).
pub trait Process {
    /// This process's id.
    fn pid() -> u32;

    /// This process's start time (0 if unknown), in the unit
    /// [`Process::liveness`] reports start times in.
    fn own_start_time() -> u64;

    /// Whether process `pid` runs, and since when.
    fn liveness(pid: u32) -> Liveness;
}

/// A slot's pid while a sweeper reclaims it; never a real pid.
pub const RECLAIMING: u32 = u32::MAX;

/// Whether the process recorded in a slot may still run (unknown counts
/// as alive; a start time of 0 means "not recorded yet").
pub fn slot_alive<P: Process>(pid: u32, start_time: u64) -> bool {
    match P::liveness(pid) {
        Liveness::Dead => false,
        Liveness::Unknown => true,
        Liveness::Alive { start_time: actual } => start_time == 0 || start_time == actual,
    }
}

/// Free `slot` if its process died without closing, with the waiters and
/// spinners it counted.
fn reclaim_if_dead<P: Process>(h: &Header, slot: &Slot) {
    let pid = slot.pid.load(Acquire);
    if pid == 0 || pid == RECLAIMING || slot_alive::<P>(pid, slot.start_time.load(Relaxed)) {
        return;
    }
    if slot
        .pid
        .compare_exchange(pid, RECLAIMING, Acquire, Relaxed)
        .is_ok()
    {
        notify::forget_waiters(h, slot);
        slot.start_time.store(0, Relaxed);
        slot.pid.store(0, Release);
    }
}

/// Free the slots of dead processes that still count sleepers or
/// spinners: their counts would make publishers wake for nobody, and
/// spinners keep others from spinning.
fn sweep_counted<P: Process>(h: &Header) {
    for slot in &h.slots {
        if slot.waiters.load(Relaxed) != 0 || slot.spinners.load(Relaxed) != 0 {
            reclaim_if_dead::<P>(h, slot);
        }
    }
}

/// Free every slot whose process died without closing.
pub fn sweep_all<P: Process>(h: &Header) {
    for slot in &h.slots {
        reclaim_if_dead::<P>(h, slot);
    }
}

/// Take the first free slot for this process.
fn take_free<P: Process>(h: &Header) -> Option<usize> {
    let pid = P::pid();
    for (index, slot) in h.slots.iter().enumerate() {
        if slot.pid.load(Relaxed) == 0
            && slot.pid.compare_exchange(0, pid, Acquire, Relaxed).is_ok()
        {
            slot.waiters.store(0, Relaxed);
            slot.spinners.store(0, Relaxed);
            slot.start_time.store(P::own_start_time(), Release);
            return Some(index);
        }
    }
    None
}

/// Claim a slot for a new handle of this process; `None` when every slot
/// belongs to a live process.
pub fn claim<P: Process>(h: &Header) -> Option<usize> {
    sweep_counted::<P>(h);
    take_free::<P>(h).or_else(|| {
        sweep_all::<P>(h);
        take_free::<P>(h)
    })
}

/// Give back slot `index`, held by this process (`pid`).
pub fn release(h: &Header, index: usize, pid: u32) {
    let slot = &h.slots[index];
    slot.start_time.store(0, Relaxed);
    let _ = slot.pid.compare_exchange(pid, 0, Release, Relaxed);
}

/// Live process ids in the attach table, without duplicates.
pub fn attached_pids<P: Process>(h: &Header) -> Vec<u32> {
    let mut pids: Vec<u32> = h
        .slots
        .iter()
        .map(|s| (s.pid.load(Acquire), s.start_time.load(Relaxed)))
        .filter(|&(pid, start)| pid != 0 && pid != RECLAIMING && slot_alive::<P>(pid, start))
        .map(|(pid, _)| pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A pid no process has (beyond every system's pid limit, below
    /// [`RECLAIMING`]).
    const DEAD: u32 = 0x7fff_fff0;

    /// This process is 1000; every other process is dead.
    struct Fake;

    impl Process for Fake {
        fn pid() -> u32 {
            1000
        }

        fn own_start_time() -> u64 {
            7
        }

        fn liveness(pid: u32) -> Liveness {
            match pid {
                1000 => Liveness::Alive { start_time: 7 },
                _ => Liveness::Dead,
            }
        }
    }

    #[test]
    fn a_dead_slot_with_sleepers_is_reclaimed_at_once_and_others_only_when_full() {
        let h = Header::zeroed();
        // A dead process that counted a sleeper, and one that did not.
        h.slots[0].pid.store(DEAD, Relaxed);
        h.slots[0].waiters.store(1, Relaxed);
        h.waiters.store(1, Relaxed);
        h.slots[1].pid.store(DEAD, Relaxed);
        let mine = claim::<Fake>(&h).unwrap();
        assert_eq!(mine, 0, "the sleeper's slot was freed and taken");
        assert_eq!(h.waiters.load(Relaxed), 0, "its count was forgotten");
        assert_eq!(
            h.slots[1].pid.load(Relaxed),
            DEAD,
            "not swept: slots were free"
        );
        // Fill the table with dead processes: a claim then sweeps it all.
        for slot in &h.slots[2..] {
            slot.pid.store(DEAD, Relaxed);
        }
        assert_eq!(claim::<Fake>(&h), Some(1));
        assert_eq!(h.slots[2].pid.load(Relaxed), 0, "swept");
        assert_eq!(attached_pids::<Fake>(&h), vec![Fake::pid()]);
        release(&h, 0, Fake::pid());
        release(&h, 1, Fake::pid());
        assert!(attached_pids::<Fake>(&h).is_empty());
    }
}
