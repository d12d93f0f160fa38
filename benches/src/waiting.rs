//! What waiting costs when little happens: a waiter of each kind
//! (`wait_change` blocking, `wait_change_spin`, `wait_change_adaptive`)
//! on its own region and its own handle, in a thread of this process, with
//! its CPU time (user + system, `CLOCK_THREAD_CPUTIME_ID`) over the run.
//!
//! - **idle**: no change at all; one wait for the whole duration (1 s,
//!   0.1 s in smoke mode).
//! - **rare**: the main thread publishes a `CLOCK_MONOTONIC` stamp every
//!   10 ms (a paced workload, not synchronisation); the waiter waits for
//!   each change, reads it and records publish → read latency.
//!
//! The kinds run one after the other, so they do not compete for the cores.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use filemap::FileMap;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::{self, Namespace};
use crate::report::Target;
use crate::stats::{summarize, Summary};
use crate::suite::{self, Report, Suite};
use crate::sys;
use crate::units::ns;

/// How a waiter waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Blocking,
    Spin,
    Adaptive,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Blocking, Kind::Spin, Kind::Adaptive];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Blocking => "filemap-blocking",
            Kind::Spin => "filemap-spin",
            Kind::Adaptive => "filemap-adaptive",
        }
    }

    fn wait(self, map: &FileMap, seen: u64, timeout: Duration) -> Option<u64> {
        match self {
            Kind::Blocking => map
                .wait_change(seen, filemap::Wait::sleep().timeout(timeout))
                .ok(),
            Kind::Spin => map
                .wait_change(seen, filemap::Wait::spin().timeout(timeout))
                .ok(),
            Kind::Adaptive => map
                .wait_change(seen, filemap::Wait::adaptive().timeout(timeout))
                .ok(),
        }
    }
}

/// Which traffic the waiter sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No change at all.
    Idle,
    /// One change per `interval`.
    Rare { interval: Duration },
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Rare { .. } => "rare",
        }
    }

    pub fn interval_ns(self) -> Option<u64> {
        match self {
            Scenario::Idle => None,
            Scenario::Rare { interval } => Some(interval.as_nanos() as u64),
        }
    }
}

/// The interval of the rare-change scenario: one change per 10 ms, a
/// paced publisher (a sensor, a UI) that an adaptive waiter must not spin
/// for.
pub const RARE: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct Row {
    pub kind: Kind,
    pub scenario: Scenario,
    /// The waiter thread's wall time and CPU time.
    pub wall_ns: u64,
    pub cpu_ns: u64,
    /// Changes the waiter saw, and publish → read latency of each (rare).
    pub changes: usize,
    pub wake: Option<Summary>,
}

impl Row {
    /// The waiter's CPU time as a percentage of one core over its run.
    pub fn cpu_percent(&self) -> f64 {
        100.0 * self.cpu_ns as f64 / self.wall_ns.max(1) as f64
    }
}

/// (idle duration, rare-change count) of each mode.
fn plan(mode: Mode) -> (Duration, usize) {
    match mode {
        Mode::Smoke => (Duration::from_millis(100), 10),
        Mode::Quick => (Duration::from_secs(1), 100),
        Mode::Full => (Duration::from_secs(1), 300),
    }
}

pub fn run(ns: &Namespace, mode: Mode) -> Result<Vec<Row>> {
    let (idle, changes) = plan(mode);
    let mut rows = Vec::new();
    for scenario in [Scenario::Idle, Scenario::Rare { interval: RARE }] {
        for kind in Kind::ALL {
            let row = one(ns, kind, scenario, idle, changes)
                .with_context(|| format!("{} waiter, {}", kind.name(), scenario.name()))?;
            ns.clean();
            eprintln!(
                "  {:<18} {:<5} CPU {:>10} over {:>10} ({:.2}% of a core), {} changes{}",
                kind.name(),
                scenario.name(),
                crate::units::ns(row.cpu_ns as f64),
                crate::units::ns(row.wall_ns as f64),
                row.cpu_percent(),
                row.changes,
                row.wake.map_or(String::new(), |w| format!(
                    ", wake median {}",
                    crate::units::ns(w.median as f64)
                )),
            );
            rows.push(row);
        }
    }
    Ok(rows)
}

/// What the waiter thread measured: (wall ns, CPU ns, latencies).
type Waited = (u64, u64, Vec<u64>);

fn one(
    ns: &Namespace,
    kind: Kind,
    scenario: Scenario,
    idle: Duration,
    changes: usize,
) -> Result<Row> {
    let name = ns.name("wait");
    let map = FileMap::builder(&name)
        .capacity(filemap::MIN_CAPACITY)
        .create_only()
        .open()
        .with_context(|| format!("creating region {name}"))?;
    let (ready_tx, ready_rx) = mpsc::channel();
    let waiter = std::thread::spawn(move || -> Result<Waited> {
        // Its own handle, as another process would have.
        let map = FileMap::builder(&name).open_only().open()?;
        let mut buf = harness::buffer(64);
        let mut seen = map.generation();
        let mut wake = Vec::new();
        let _ = ready_tx.send(());
        let (t0, cpu0) = (Instant::now(), sys::thread_cpu_ns());
        match scenario {
            Scenario::Idle => {
                if let Some(g) = kind.wait(&map, seen, idle) {
                    bail!("region changed to generation {g} with nobody writing");
                }
            }
            Scenario::Rare { .. } => loop {
                seen = kind
                    .wait(&map, seen, harness::TIMEOUT)
                    .ok_or_else(|| anyhow!("no change within {:?}", harness::TIMEOUT))?;
                map.read_into(&mut buf)?;
                if harness::seq_of(&buf) == harness::STOP {
                    break;
                }
                let stamp = buf.get(8..16).and_then(|b| b.try_into().ok());
                let stamp = u64::from_le_bytes(stamp.ok_or_else(|| anyhow!("short message"))?);
                wake.push(sys::now_ns().saturating_sub(stamp));
            },
        }
        let cpu = sys::thread_cpu_ns().saturating_sub(cpu0);
        Ok((t0.elapsed().as_nanos() as u64, cpu, wake))
    });
    ready_rx
        .recv_timeout(harness::TIMEOUT)
        .map_err(|_| anyhow!("the waiter did not start"))?;
    if let Scenario::Rare { interval } = scenario {
        let mut msg = [0u8; 16];
        for seq in 0..changes as u64 {
            // Pacing the workload, not waiting for a condition.
            std::thread::sleep(interval);
            msg[..8].copy_from_slice(&seq.to_le_bytes());
            msg[8..].copy_from_slice(&sys::now_ns().to_le_bytes());
            map.write(&msg)?;
        }
        std::thread::sleep(interval);
        msg[..8].copy_from_slice(&harness::STOP.to_le_bytes());
        map.write(&msg)?;
    }
    let (wall_ns, cpu_ns, mut wake) = waiter
        .join()
        .map_err(|_| anyhow!("the waiter panicked"))??;
    let seen = wake.len();
    if matches!(scenario, Scenario::Rare { .. }) && seen == 0 {
        bail!("the waiter saw none of {changes} changes");
    }
    Ok(Row {
        kind,
        scenario,
        wall_ns,
        cpu_ns,
        changes: seen,
        wake: (!wake.is_empty()).then(|| summarize(&mut wake)),
    })
}

/// The suite: one waiter thread, idle and with a change per 10 ms, its CPU time.
pub const SUITE: Suite = Suite {
    name: "waiting",
    run: run_suite,
    children: &[],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("waiting with little traffic (CPU of one waiter):");
    let rows = suite::rows_or_none(run(ns, args.mode), fail);
    Box::new(Measured { rows })
}

/// What the suite measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
}

impl Report for Measured {
    fn json(&self, rows: &mut Vec<Value>) {
        for r in &self.rows {
            rows.push(json!({
                "kind": "waiting",
                "mechanism": r.kind.name(),
                "scenario": r.scenario.name(),
                "interval_ns": r.scenario.interval_ns(),
                "wall_ns": r.wall_ns,
                "cpu_ns": r.cpu_ns,
                "cpu_percent": r.cpu_percent(),
                "changes": r.changes,
                "wake_median_ns": r.wake.map(|w| w.median),
                "wake_p99_ns": r.wake.map(|w| w.p99),
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str("### Waiting with little traffic (one waiter thread, its CPU time)\n\n");
        md.push_str(
            "idle = one wait with no change at all; rare = one change per 10 ms, each read \
             (wake = publish → content read). CPU = user + system time of the waiter thread; \
             % = of one core over the run.\n\n",
        );
        md.push_str(
            "| waiter | scenario | run | CPU | CPU % | changes seen | wake median | wake p99 |\n",
        );
        md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2}% | {} | {} | {} |",
                r.kind.name(),
                r.scenario.name(),
                ns(r.wall_ns as f64),
                ns(r.cpu_ns as f64),
                r.cpu_percent(),
                r.changes,
                r.wake.map_or("–".to_owned(), |w| ns(w.median as f64)),
                r.wake.map_or("–".to_owned(), |w| ns(w.p99 as f64)),
            );
        }
        md.push('\n');
    }

    /// Rare changes: the adaptive waiter's CPU against the blocking one's.
    fn targets(&self, out: &mut Vec<Target>) {
        let rare = |k| {
            self.rows
                .iter()
                .find(|r| r.kind == k && matches!(r.scenario, Scenario::Rare { .. }))
                .map(Row::cpu_percent)
        };
        if let (Some(a), Some(b)) = (rare(Kind::Adaptive), rare(Kind::Blocking)) {
            out.push(Target {
                name: "one change per 10 ms: adaptive waiter CPU % − blocking waiter CPU %"
                    .to_owned(),
                payload: None,
                ratio: a - b,
                limit: 2.0,
                at_least: false,
                unit: " pp",
            });
        }
    }
}
