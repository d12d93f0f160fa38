//! Regions that grow (see `docs/growth.md`), in process:
//!
//! - **The first publish that grows**: a region created at 1 MiB with a
//!   maximum of 64 MiB, then a publish of 64 MiB (it backs the new 2 × 63
//!   MiB with storage, raises the capacity, publishes), against a region
//!   created at 64 MiB and the same publish into it. Each trial creates
//!   its region, publishes once and drops it; the two kinds alternate
//!   (which one goes first alternates too), and the median trial of each
//!   is kept: the create, the first publish, and both.
//! - **Steady state**: publishes of 64 MiB (and 1 MiB) into a region that
//!   grew to that size against a region created at it. Once grown, a
//!   region is laid out and backed as one created at that size with the
//!   same maximum, so the two should cost the same; the ratio says
//!   whether they do. Rounds alternate the two regions (a batch of
//!   publishes each), after two publishes into each that touch both
//!   buffers; the median round of each is kept.
//!
//! Every time is taken by the wall clock and by the thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`, user + system: growing and first touches are
//! system time), whose ratios leave out what other processes of a shared
//! host took; the targets use the CPU time.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use anyhow::{ensure, Context, Result};
use filemap::FileMap;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::Namespace;
use crate::report::Target;
use crate::stats::median_f64;
use crate::suite::{self, Report, Suite};
use crate::sys;
use crate::units::{bytes, ns};

/// The region that grew, and the one created at the size.
pub const GROWN: &str = "grown";
pub const CREATED: &str = "created";

/// One side of a comparison, as measured.
#[derive(Debug, Clone)]
pub struct Row {
    /// `first_publish` or `steady`.
    pub case: &'static str,
    /// [`GROWN`] or [`CREATED`].
    pub region: &'static str,
    /// The capacity it was created with, and its maximum.
    pub capacity: usize,
    pub max_capacity: usize,
    /// Bytes of each publish.
    pub payload: usize,
    /// Median (wall, CPU) ns: of the create (first publish case only; 0
    /// otherwise) and of the publish.
    pub create: (f64, f64),
    pub publish: (f64, f64),
    /// Median (wall, CPU) ns of create + first publish, trial by trial
    /// (first publish case; the publish otherwise).
    pub total: (f64, f64),
    /// Trials (first publish) or rounds (steady).
    pub samples: usize,
    /// Publishes per round (steady; 1 for the first publish).
    pub batch: usize,
}

/// What each mode measures: (capacity it grows from, size it grows to),
/// the steady-state sizes with the capacity each grows from, trials of
/// the first publish, rounds of the steady state.
struct Plan {
    first: (usize, usize),
    steady: Vec<(usize, usize)>,
    trials: usize,
    rounds: usize,
}

fn plan(mode: Mode) -> Plan {
    match mode {
        // A debug build in CI: small sizes, no claims.
        Mode::Smoke => Plan {
            first: (64 << 10, 4 << 20),
            steady: vec![(16 << 10, 1 << 20)],
            trials: 2,
            rounds: 3,
        },
        Mode::Quick => Plan {
            first: (1 << 20, 64 << 20),
            steady: vec![(16 << 10, 1 << 20), (1 << 20, 64 << 20)],
            trials: 7,
            rounds: 15,
        },
        Mode::Full => Plan {
            first: (1 << 20, 64 << 20),
            steady: vec![(16 << 10, 1 << 20), (1 << 20, 64 << 20)],
            trials: 21,
            rounds: 41,
        },
    }
}

/// (wall, CPU) ns of `f`.
fn timed<T>(f: impl FnOnce() -> Result<T>) -> Result<(T, (f64, f64))> {
    let (w0, c0) = (sys::now_ns(), sys::thread_cpu_ns());
    let value = f()?;
    let wall = (sys::now_ns() - w0) as f64;
    let cpu = (sys::thread_cpu_ns() - c0) as f64;
    Ok((value, (wall, cpu)))
}

/// Median of each clock.
fn medians(samples: &[(f64, f64)]) -> (f64, f64) {
    let mut wall: Vec<f64> = samples.iter().map(|s| s.0).collect();
    let mut cpu: Vec<f64> = samples.iter().map(|s| s.1).collect();
    (median_f64(&mut wall), median_f64(&mut cpu))
}

fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8 | 1).collect()
}

fn create(name: &str, capacity: usize, max_capacity: usize) -> Result<FileMap> {
    FileMap::builder(name)
        .capacity(capacity)
        .max_capacity(max_capacity)
        .create_only()
        .open()
        .with_context(|| format!("creating region {name}"))
}

/// The first publish: trials of each kind, alternated.
fn first_publish(names: &Namespace, plan: &Plan) -> Result<Vec<Row>> {
    let (from, to) = plan.first;
    let payload = content(to);
    let kinds = [(GROWN, from), (CREATED, to)];
    let mut samples: [Vec<[(f64, f64); 3]>; 2] = [Vec::new(), Vec::new()];
    for trial in 0..plan.trials {
        for k in 0..2 {
            // Which kind goes first alternates trial by trial.
            let k = (k + trial) % 2;
            let (region, capacity) = kinds[k];
            let name = names.name("grow");
            let (map, create) = timed(|| create(&name, capacity, to))?;
            let (published, publish) = timed(|| Ok(map.write(&payload)?))?;
            ensure!(
                map.capacity() >= to && published.generation == 1,
                "{region}: capacity {} after publishing {to} bytes",
                map.capacity()
            );
            drop(map);
            let total = (create.0 + publish.0, create.1 + publish.1);
            samples[k].push([create, publish, total]);
        }
    }
    let rows = kinds
        .iter()
        .zip(&samples)
        .map(|(&(region, capacity), s)| {
            let pick = |i: usize| medians(&s.iter().map(|t| t[i]).collect::<Vec<_>>());
            Row {
                case: "first_publish",
                region,
                capacity,
                max_capacity: to,
                payload: to,
                create: pick(0),
                publish: pick(1),
                total: pick(2),
                samples: s.len(),
                batch: 1,
            }
        })
        .collect::<Vec<_>>();
    for r in &rows {
        eprintln!(
            "  first publish of {:>7}, {:<7} region: create {:>10}, publish {:>10}, both {:>10} (CPU {})",
            bytes(r.payload),
            r.region,
            ns(r.create.0),
            ns(r.publish.0),
            ns(r.total.0),
            ns(r.total.1)
        );
    }
    Ok(rows)
}

/// Steady state at `size`: a region grown from `from` against one created
/// at `size`, rounds alternated.
fn steady(names: &Namespace, plan: &Plan, from: usize, size: usize) -> Result<Vec<Row>> {
    let payload = content(size);
    let grown = create(&names.name("grown"), from, size)?;
    let created = create(&names.name("created"), size, size)?;
    // Two publishes each: the growth, then both buffers touched.
    for map in [&grown, &created] {
        map.write(&payload)?;
        map.write(&payload)?;
    }
    ensure!(
        grown.capacity() == created.capacity(),
        "grown to {} but created at {}",
        grown.capacity(),
        created.capacity()
    );
    // A few ms of publishing per round: 32 publishes of 1 MiB, one of
    // 64 MiB.
    let batch = ((32 << 20) / size).clamp(1, 64);
    let maps = [(GROWN, from, &grown), (CREATED, size, &created)];
    let mut samples: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    for round in 0..plan.rounds {
        for k in 0..2 {
            let k = (k + round) % 2;
            let map = maps[k].2;
            let ((), (wall, cpu)) = timed(|| {
                for _ in 0..batch {
                    map.write(&payload)?;
                }
                Ok(())
            })?;
            samples[k].push((wall / batch as f64, cpu / batch as f64));
        }
    }
    let rows = maps
        .iter()
        .zip(&samples)
        .map(|(&(region, capacity, _), s)| {
            let publish = medians(s);
            Row {
                case: "steady",
                region,
                capacity,
                max_capacity: size,
                payload: size,
                create: (0.0, 0.0),
                publish,
                total: publish,
                samples: s.len(),
                batch,
            }
        })
        .collect::<Vec<_>>();
    eprintln!(
        "  publish of {:>7} into a region grown from {:>7}: {:>10}; created at that size: {:>10}",
        bytes(size),
        bytes(from),
        ns(rows[0].publish.0),
        ns(rows[1].publish.0)
    );
    Ok(rows)
}

pub fn run(ns: &Namespace, mode: Mode) -> Result<Vec<Row>> {
    let plan = plan(mode);
    let mut rows = first_publish(ns, &plan)?;
    for &(from, size) in &plan.steady {
        rows.extend(steady(ns, &plan, from, size)?);
        ns.clean();
    }
    Ok(rows)
}

/// The suite: the first publish that grows a region, and publishes into a
/// grown region, each against a region created at the size.
pub const SUITE: Suite = Suite {
    name: "growth",
    run: run_suite,
    children: &[],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("growth:");
    let rows = suite::rows_or_none(run(ns, args.mode), fail);
    Box::new(Measured { rows })
}

/// What the suite measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
}

impl Measured {
    fn find(&self, case: &str, region: &str, payload: usize) -> Option<&Row> {
        self.rows
            .iter()
            .find(|r| r.case == case && r.region == region && r.payload == payload)
    }

    /// (grown, created) rows of `case` at `payload`.
    fn pair(&self, case: &str, payload: usize) -> Option<(&Row, &Row)> {
        Some((
            self.find(case, GROWN, payload)?,
            self.find(case, CREATED, payload)?,
        ))
    }

    fn payloads(&self, case: &str) -> Vec<usize> {
        let mut sizes: Vec<usize> = self
            .rows
            .iter()
            .filter(|r| r.case == case)
            .map(|r| r.payload)
            .collect();
        sizes.dedup();
        sizes
    }
}

impl Report for Measured {
    fn json(&self, rows: &mut Vec<Value>) {
        for r in &self.rows {
            rows.push(json!({
                "kind": "growth",
                "case": r.case,
                "region": r.region,
                "capacity_bytes": r.capacity,
                "max_capacity_bytes": r.max_capacity,
                "payload_bytes": r.payload,
                "create_ns": r.create.0,
                "create_cpu_ns": r.create.1,
                "publish_ns": r.publish.0,
                "publish_cpu_ns": r.publish.1,
                "total_ns": r.total.0,
                "total_cpu_ns": r.total.1,
                "samples": r.samples,
                "publishes_per_sample": r.batch,
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str("### Regions that grow (in process)\n\n");
        md.push_str(
            "Medians over alternated trials (first publish: create, publish once, drop) and \
             rounds (steady state); CPU = the thread's user + system time.\n\n",
        );
        md.push_str("| first publish | region | create | publish | create + publish | CPU, create + publish | trials |\n");
        md.push_str("|---:|---|---:|---:|---:|---:|---:|\n");
        for p in self.payloads("first_publish") {
            let Some((g, c)) = self.pair("first_publish", p) else {
                continue;
            };
            for r in [g, c] {
                let what = if r.region == GROWN {
                    format!(
                        "created at {}, max {}: grows",
                        bytes(r.capacity),
                        bytes(r.max_capacity)
                    )
                } else {
                    format!("created at {}", bytes(r.capacity))
                };
                let _ = writeln!(
                    md,
                    "| {} | {what} | {} | {} | {} | {} | {} |",
                    bytes(p),
                    ns(r.create.0),
                    ns(r.publish.0),
                    ns(r.total.0),
                    ns(r.total.1),
                    r.samples
                );
            }
            let _ = writeln!(
                md,
                "| {} | growing publish / (create + publish) | | {:.2}× (CPU {:.2}×) | {:.2}× (CPU {:.2}×) | | |",
                bytes(p),
                g.publish.0 / c.total.0,
                g.publish.1 / c.total.1,
                g.total.0 / c.total.0,
                g.total.1 / c.total.1,
            );
        }
        md.push('\n');
        md.push_str("| steady publish | grown region | created at the size | grown / created | CPU grown / created | rounds × publishes |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|\n");
        for p in self.payloads("steady") {
            let Some((g, c)) = self.pair("steady", p) else {
                continue;
            };
            let _ = writeln!(
                md,
                "| {} (grown from {}) | {} | {} | {:.2}× | {:.2}× | {} × {} |",
                bytes(p),
                bytes(g.capacity),
                ns(g.publish.0),
                ns(c.publish.0),
                g.publish.0 / c.publish.0,
                g.publish.1 / c.publish.1,
                g.samples,
                g.batch
            );
        }
        md.push('\n');
    }

    fn targets(&self, out: &mut Vec<Target>) {
        for p in self.payloads("first_publish") {
            if let Some((g, c)) = self.pair("first_publish", p) {
                out.push(Target {
                    name: format!(
                        "first publish growing {} → {} / create {} + first publish (CPU)",
                        bytes(g.capacity),
                        bytes(p),
                        bytes(p)
                    ),
                    payload: Some(p),
                    ratio: g.publish.1 / c.total.1,
                    limit: 1.2,
                    at_least: false,
                    unit: "×",
                });
            }
        }
        for p in self.payloads("steady") {
            if let Some((g, c)) = self.pair("steady", p) {
                out.push(Target {
                    name: "publish into a grown region / into one created at the size (CPU)"
                        .to_owned(),
                    payload: Some(p),
                    ratio: g.publish.1 / c.publish.1,
                    limit: 1.1,
                    at_least: false,
                    unit: "×",
                });
            }
        }
    }
}
