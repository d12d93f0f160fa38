//! The ping-pong mechanisms. Each module exports `parent(&Ctx, ..)`, which
//! sets up its channel, spawns the echo child and drives the round trips,
//! and `child(&ChildArgs, ..)`, the echo side run in the child process.
//! This file only names them and dispatches. Every module but
//! `shared_memory_raw_sync` (raw pointers into the peer's mapping) forbids
//! `unsafe`.

use std::cell::Cell;

use anyhow::{anyhow, Result};

use crate::harness::{self, ChildArgs, ChildProc, ChildStdinMode, Mark, Namespace, Plan, Step};

pub mod filemap;
pub mod futex_floor;
pub mod iceoryx2;
pub mod pipe;
pub mod shared_memory_raw_sync;
mod shm_pair;
pub mod spin_floor;
mod stream;
pub mod tcp_loopback;
pub mod unix_socket;

/// A way to move a message to another process and back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Mechanism {
    FilemapBlocking,
    FilemapSpin,
    FilemapAdaptive,
    FutexFloor,
    SpinFloor,
    UnixSocket,
    Pipe,
    TcpLoopback,
    Iceoryx2Spin,
    Iceoryx2Event,
    SharedMemoryRawSync,
}

impl Mechanism {
    /// Every mechanism, in report order.
    pub const ALL: [Mechanism; 11] = [
        Mechanism::FilemapBlocking,
        Mechanism::FilemapSpin,
        Mechanism::FilemapAdaptive,
        Mechanism::FutexFloor,
        Mechanism::SpinFloor,
        Mechanism::UnixSocket,
        Mechanism::Pipe,
        Mechanism::TcpLoopback,
        Mechanism::Iceoryx2Spin,
        Mechanism::Iceoryx2Event,
        Mechanism::SharedMemoryRawSync,
    ];

    /// The name used in JSON, tables and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::FilemapBlocking => "filemap-blocking",
            Mechanism::FilemapSpin => "filemap-spin",
            Mechanism::FilemapAdaptive => "filemap-adaptive",
            Mechanism::FutexFloor => "futex-floor",
            Mechanism::SpinFloor => "spin-floor",
            Mechanism::UnixSocket => "unix-socket",
            Mechanism::Pipe => "pipe",
            Mechanism::TcpLoopback => "tcp-loopback",
            Mechanism::Iceoryx2Spin => "iceoryx2-spin",
            Mechanism::Iceoryx2Event => "iceoryx2-event",
            Mechanism::SharedMemoryRawSync => "shared_memory-raw_sync",
        }
    }

    pub fn from_name(name: &str) -> Option<Mechanism> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Run the parent side of one repetition; one latency per round trip.
    pub fn run_parent(self, ctx: &Ctx) -> Result<Vec<u64>> {
        match self {
            Mechanism::FilemapBlocking => filemap::parent(ctx, filemap::Wait::Block),
            Mechanism::FilemapSpin => filemap::parent(ctx, filemap::Wait::Spin),
            Mechanism::FilemapAdaptive => filemap::parent(ctx, filemap::Wait::Adaptive),
            Mechanism::FutexFloor => futex_floor::parent(ctx),
            Mechanism::SpinFloor => spin_floor::parent(ctx),
            Mechanism::UnixSocket => unix_socket::parent(ctx),
            Mechanism::Pipe => pipe::parent(ctx),
            Mechanism::TcpLoopback => tcp_loopback::parent(ctx),
            Mechanism::Iceoryx2Spin => iceoryx2::parent(ctx, iceoryx2::Wait::Spin),
            Mechanism::Iceoryx2Event => iceoryx2::parent(ctx, iceoryx2::Wait::Event),
            Mechanism::SharedMemoryRawSync => shared_memory_raw_sync::parent(ctx),
        }
    }

    /// Run the echo side, in the child process.
    pub fn run_child(self, args: &ChildArgs) -> Result<()> {
        match self {
            Mechanism::FilemapBlocking => filemap::child(args, filemap::Wait::Block),
            Mechanism::FilemapSpin => filemap::child(args, filemap::Wait::Spin),
            Mechanism::FilemapAdaptive => filemap::child(args, filemap::Wait::Adaptive),
            Mechanism::FutexFloor => futex_floor::child(args),
            Mechanism::SpinFloor => spin_floor::child(args),
            Mechanism::UnixSocket => unix_socket::child(args),
            Mechanism::Pipe => pipe::child(args),
            Mechanism::TcpLoopback => tcp_loopback::child(args),
            Mechanism::Iceoryx2Spin => iceoryx2::child(args, iceoryx2::Wait::Spin),
            Mechanism::Iceoryx2Event => iceoryx2::child(args, iceoryx2::Wait::Event),
            Mechanism::SharedMemoryRawSync => shared_memory_raw_sync::child(args),
        }
    }
}

/// What a mechanism's parent side gets for one repetition.
pub struct Ctx<'a> {
    pub mechanism: Mechanism,
    pub ns: &'a Namespace,
    pub plan: Plan,
    /// CPU the child pins itself to (the parent is pinned to another).
    pub child_cpu: Option<usize>,
    /// The echo child's pid, once spawned.
    pub child_pid: Cell<Option<u32>>,
    /// CPU time of both processes over the measured round trips.
    pub cpu: Cell<Option<CpuSpan>>,
    /// Both processes' CPU clocks at the start of the measured round trips.
    cpu_start: Cell<Option<(u64, u64)>>,
}

/// CPU time (user + system, all threads) each process of a ping-pong used
/// over the measured round trips, in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuSpan {
    pub parent_ns: u64,
    pub child_ns: u64,
}

impl<'a> Ctx<'a> {
    pub fn new(
        mechanism: Mechanism,
        ns: &'a Namespace,
        plan: Plan,
        child_cpu: Option<usize>,
    ) -> Ctx<'a> {
        Ctx {
            mechanism,
            ns,
            plan,
            child_cpu,
            child_pid: Cell::new(None),
            cpu: Cell::new(None),
            cpu_start: Cell::new(None),
        }
    }

    /// [`harness::drive`] with this repetition's plan, reading both
    /// processes' CPU clocks around the measured round trips.
    pub fn drive(&self, step: impl FnMut(Step) -> Result<()>) -> Result<Vec<u64>> {
        let me = std::process::id();
        let clocks = || {
            let child = crate::sys::process_cpu_ns(self.child_pid.get()?)?;
            Some((crate::sys::process_cpu_ns(me)?, child))
        };
        harness::drive_marked(
            &self.plan,
            |mark| match mark {
                Mark::Start => self.cpu_start.set(clocks()),
                Mark::End => {
                    let span = self.cpu_start.get().zip(clocks()).map(|(a, b)| CpuSpan {
                        parent_ns: b.0.saturating_sub(a.0),
                        child_ns: b.1.saturating_sub(a.1),
                    });
                    self.cpu.set(span);
                }
            },
            step,
        )
    }
}

impl Ctx<'_> {
    /// Spawn the echo child for this mechanism with extra `key=value` args.
    pub fn spawn(&self, args: &[String], stdin: ChildStdinMode) -> Result<ChildProc> {
        let mut all = vec![
            format!("mech={}", self.mechanism.name()),
            format!("payload={}", self.plan.payload),
        ];
        if let Some(cpu) = self.child_cpu {
            all.push(format!("cpu={cpu}"));
        }
        all.extend_from_slice(args);
        let child = ChildProc::spawn(self.ns, "echo", &all, stdin)?;
        self.child_pid.set(Some(child.id()));
        Ok(child)
    }
}

/// Child role `echo`: pin, then run the mechanism's echo side.
pub fn echo_main(args: &ChildArgs) -> Result<()> {
    let name = args.get("mech")?;
    let mechanism =
        Mechanism::from_name(name).ok_or_else(|| anyhow!("unknown mechanism {name}"))?;
    if let Some(cpu) = args.opt("cpu") {
        crate::sys::pin_to_cpu(cpu.parse()?)?;
    }
    mechanism.run_child(args)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_are_unique() {
        for m in Mechanism::ALL {
            assert_eq!(Mechanism::from_name(m.name()), Some(m));
        }
        let mut names: Vec<_> = Mechanism::ALL.iter().map(|m| m.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Mechanism::ALL.len());
    }
}
