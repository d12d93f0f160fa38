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
//!
//! Then the round trip a default wait gives, on a quiet host and under
//! load: two threads ping-pong 8 bytes through two regions (each thread
//! its own handles, as two processes would have), with the blocking and
//! the adaptive wait, against two threads ping-ponging through two pipes,
//! the kernel's own hand-off. **quiet**: nothing else of ours runs;
//! **loaded**: two CPU-bound threads busy beside the pair for the whole
//! measurement. The three mechanisms alternate, repetition by repetition,
//! so that a host whose load changes hurts them alike.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::sync::atomic::{AtomicBool, Ordering};
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
    eprintln!("round trips, quiet and with {LOAD_THREADS} CPU-bound threads beside the pair:");
    let trips = suite::rows_or_none(round_trips(ns, args.mode), fail);
    Box::new(Measured { rows, trips })
}

/// What the suite measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
    pub trips: Vec<Trip>,
}

/// How the two threads of a round trip hand the message over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hand {
    Blocking,
    Adaptive,
    Pipe,
}

impl Hand {
    pub const ALL: [Hand; 3] = [Hand::Blocking, Hand::Adaptive, Hand::Pipe];

    pub fn name(self) -> &'static str {
        match self {
            Hand::Blocking => "filemap-blocking",
            Hand::Adaptive => "filemap-adaptive",
            Hand::Pipe => "pipe",
        }
    }
}

/// CPU-bound threads beside the pair in the loaded condition.
pub const LOAD_THREADS: usize = 2;

/// One round-trip row: a mechanism under one condition.
#[derive(Debug, Clone)]
pub struct Trip {
    pub hand: Hand,
    /// CPU-bound threads running beside the pair (0: quiet).
    pub load: usize,
    pub summary: Summary,
}

/// (round trips per repetition, repetitions) of each mode.
fn trip_plan(mode: Mode) -> (usize, usize) {
    match mode {
        Mode::Smoke => (200, 1),
        Mode::Quick => (2_000, 3),
        Mode::Full => (5_000, 5),
    }
}

/// The round trips, quiet then loaded.
pub fn round_trips(ns: &Namespace, mode: Mode) -> Result<Vec<Trip>> {
    let (n, reps) = trip_plan(mode);
    let mut out = Vec::new();
    for load in [0, LOAD_THREADS] {
        let stop = AtomicBool::new(false);
        let samples = std::thread::scope(|s| -> Result<Vec<Vec<u64>>> {
            for _ in 0..load {
                s.spawn(|| {
                    let mut x = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        x = std::hint::black_box(
                            x.wrapping_mul(6364136223846793005).wrapping_add(1),
                        );
                    }
                });
            }
            let measured = (|| {
                let mut samples = vec![Vec::new(); Hand::ALL.len()];
                for _ in 0..reps {
                    for (i, hand) in Hand::ALL.into_iter().enumerate() {
                        let got = trip(ns, hand, n)
                            .with_context(|| format!("{} round trips, load {load}", hand.name()))?;
                        samples[i].extend(got);
                        ns.clean();
                    }
                }
                Ok(samples)
            })();
            stop.store(true, Ordering::Relaxed);
            measured
        })?;
        for (hand, mut got) in Hand::ALL.into_iter().zip(samples) {
            let summary = summarize(&mut got);
            eprintln!(
                "  round trip 8 B, {:<6} {:<18} median {:>10}  p99 {:>10}",
                if load == 0 { "quiet" } else { "loaded" },
                hand.name(),
                ns_fmt(summary.median),
                ns_fmt(summary.p99),
            );
            out.push(Trip {
                hand,
                load,
                summary,
            });
        }
    }
    Ok(out)
}

fn ns_fmt(v: u64) -> String {
    crate::units::ns(v as f64)
}

/// `n` timed round trips of 8 bytes between two threads, after a warm-up
/// of a tenth as many.
fn trip(ns: &Namespace, hand: Hand, n: usize) -> Result<Vec<u64>> {
    let warm = n / 10;
    let total = warm + n;
    match hand {
        Hand::Pipe => {
            let (mut ping_rx, mut ping_tx) = std::io::pipe()?;
            let (mut pong_rx, mut pong_tx) = std::io::pipe()?;
            let echo = std::thread::spawn(move || -> std::io::Result<()> {
                let mut b = [0u8; 8];
                for _ in 0..total {
                    ping_rx.read_exact(&mut b)?;
                    pong_tx.write_all(&b)?;
                }
                Ok(())
            });
            let mut times = Vec::with_capacity(n);
            let mut b = [0u8; 8];
            for i in 0..total as u64 {
                let t = Instant::now();
                ping_tx.write_all(&i.to_le_bytes())?;
                pong_rx.read_exact(&mut b)?;
                if u64::from_le_bytes(b) != i {
                    bail!(
                        "pipe echo out of step: sent {i}, got {}",
                        u64::from_le_bytes(b)
                    );
                }
                if i as usize >= warm {
                    times.push(t.elapsed().as_nanos() as u64);
                }
            }
            echo.join()
                .map_err(|_| anyhow!("the echo thread panicked"))??;
            Ok(times)
        }
        Hand::Blocking | Hand::Adaptive => {
            let kind = if hand == Hand::Adaptive {
                Kind::Adaptive
            } else {
                Kind::Blocking
            };
            let (ping_name, pong_name) = (ns.name("ping"), ns.name("pong"));
            let make = |name: &str| {
                FileMap::builder(name)
                    .capacity(filemap::MIN_CAPACITY)
                    .create_only()
                    .open()
                    .with_context(|| format!("creating region {name}"))
            };
            let (ping, pong) = (make(&ping_name)?, make(&pong_name)?);
            let (ready_tx, ready_rx) = mpsc::channel();
            let echo = std::thread::spawn(move || -> Result<()> {
                // Its own handles, as another process would have.
                let ping = FileMap::builder(&ping_name).open_only().open()?;
                let pong = FileMap::builder(&pong_name).open_only().open()?;
                let mut seen = ping.generation();
                let mut buf = harness::buffer(64);
                let _ = ready_tx.send(());
                for _ in 0..total {
                    seen = kind
                        .wait(&ping, seen, harness::TIMEOUT)
                        .ok_or_else(|| anyhow!("no ping within {:?}", harness::TIMEOUT))?;
                    ping.read_into(&mut buf)?;
                    pong.write(&buf)?;
                }
                Ok(())
            });
            ready_rx
                .recv_timeout(harness::TIMEOUT)
                .map_err(|_| anyhow!("the echo thread did not start"))?;
            let mut times = Vec::with_capacity(n);
            let mut seen = pong.generation();
            let mut buf = harness::buffer(64);
            for i in 0..total as u64 {
                let t = Instant::now();
                ping.write(&i.to_le_bytes())?;
                // One answer per ping: the echo writes once per change it sees,
                // and the next ping waits for it.
                seen = kind
                    .wait(&pong, seen, harness::TIMEOUT)
                    .ok_or_else(|| anyhow!("no pong within {:?}", harness::TIMEOUT))?;
                pong.read_into(&mut buf)?;
                if i as usize >= warm {
                    times.push(t.elapsed().as_nanos() as u64);
                }
            }
            echo.join()
                .map_err(|_| anyhow!("the echo thread panicked"))??;
            Ok(times)
        }
    }
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
        for t in &self.trips {
            rows.push(json!({
                "kind": "waiting-round-trip",
                "mechanism": t.hand.name(),
                "scenario": if t.load == 0 { "quiet" } else { "loaded" },
                "load_threads": t.load,
                "payload": 8,
                "count": t.summary.count,
                "median_ns": t.summary.median,
                "p99_ns": t.summary.p99,
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        self.markdown_trips(md);
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
    /// Round trips: the adaptive wait near spinning speed on a quiet host
    /// (against a pipe's hand-off), and no worse than blocking under load.
    fn targets(&self, out: &mut Vec<Target>) {
        let trip = |hand, loaded: bool| {
            self.trips
                .iter()
                .find(|t| t.hand == hand && (t.load > 0) == loaded)
                .map(|t| t.summary.median as f64)
        };
        if let (Some(a), Some(p)) = (trip(Hand::Adaptive, false), trip(Hand::Pipe, false)) {
            out.push(Target {
                name: "quiet host, 8 B round trip: adaptive wait / pipe median".to_owned(),
                payload: Some(8),
                ratio: a / p.max(1.0),
                limit: 0.1,
                at_least: false,
                unit: "×",
            });
        }
        if let (Some(a), Some(b)) = (trip(Hand::Adaptive, true), trip(Hand::Blocking, true)) {
            out.push(Target {
                name: format!(
                    "{LOAD_THREADS} CPU-bound threads beside the pair, 8 B round trip: adaptive / blocking median"
                ),
                payload: Some(8),
                ratio: a / b.max(1.0),
                limit: 1.2,
                at_least: false,
                unit: "×",
            });
        }
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

impl Measured {
    fn markdown_trips(&self, md: &mut String) {
        if self.trips.is_empty() {
            return;
        }
        md.push_str("### Round trips of a default wait, quiet and loaded\n\n");
        let _ = writeln!(
            md,
            "Two threads ping-pong 8 B (each its own handles); quiet = nothing else of ours runs, \
             loaded = {LOAD_THREADS} CPU-bound threads beside the pair. Mechanisms alternated \
             repetition by repetition.\n"
        );
        md.push_str("| condition | mechanism | round trips | median | p99 |\n");
        md.push_str("|---|---|---:|---:|---:|\n");
        for t in &self.trips {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                if t.load == 0 { "quiet" } else { "loaded" },
                t.hand.name(),
                t.summary.count,
                ns(t.summary.median as f64),
                ns(t.summary.p99 as f64),
            );
        }
        md.push('\n');
    }
}
