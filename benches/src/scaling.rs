//! Scaling: latency from a publish to the moment the last of N watcher
//! processes has the new content, N = 1..32. Each watcher timestamps its
//! read against the `CLOCK_MONOTONIC` stamp the writer put in the message
//! (the same clock in every process) and acknowledges; the writer
//! publishes the next message only when all N acknowledged, so no watcher
//! skips one. `filemap-adaptive` does the same with `wait_change_adaptive`
//! (whose spinning must not cost latency when there are more waiting
//! processes than cores), `futex-floor` with a bare futex broadcast.
//!
//! Nothing is pinned here: N processes share the 2 cores, as they would.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::path::PathBuf;
use std::sync::atomic::Ordering::{AcqRel, Acquire, Relaxed, Release};
use std::time::Instant;

use anyhow::{anyhow, bail, Context, Result};
use filemap::FileMap;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::{self, ChildArgs, ChildProc, ChildStdinMode, Namespace, TIMEOUT};
use crate::report::Target;
use crate::stats::{summarize, Summary};
use crate::suite::{self, Child, Report, Suite};
use crate::sys::{self, Shm};
use crate::units::ns;

/// Which notification path the watchers use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// filemap `wait_change` + `read_into`.
    Filemap,
    /// filemap `wait_change_adaptive` + `read_into`.
    FilemapAdaptive,
    /// Bare futex broadcast on a sequence word.
    FutexFloor,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Filemap, Kind::FilemapAdaptive, Kind::FutexFloor];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Filemap => "filemap-blocking",
            Kind::FilemapAdaptive => "filemap-adaptive",
            Kind::FutexFloor => "futex-floor",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Row {
    pub kind: Kind,
    pub watchers: usize,
    pub summary: Summary,
}

/// The acknowledgement area: a futex counter of watchers done with the
/// current message, then one cache line per watcher holding its latency.
struct Acks {
    shm: Shm,
}

impl Acks {
    fn size(n: usize) -> usize {
        64 + 64 * n
    }
    fn done(&self) -> &std::sync::atomic::AtomicU32 {
        self.shm.u32_at(0)
    }
    fn latency(&self, i: usize) -> &std::sync::atomic::AtomicU64 {
        self.shm.u64_at(64 + 64 * i)
    }
}

/// The futex floor's message: sequence word (futex), then stamp and seq.
const WORD: usize = 0;
const STAMP: usize = 64;
const SEQ: usize = 72;

pub fn run(ns: &Namespace, mode: Mode) -> Result<Vec<Row>> {
    let mut rows = Vec::new();
    for n in mode.watcher_counts() {
        for kind in Kind::ALL {
            let summary = one(ns, mode, kind, n)
                .with_context(|| format!("{} with {n} watchers", kind.name()))?;
            ns.clean();
            eprintln!(
                "  {:<18} {n:>3} watchers  last-watcher median {:>10}  p99 {:>10}",
                kind.name(),
                crate::units::ns(summary.median as f64),
                crate::units::ns(summary.p99 as f64)
            );
            rows.push(Row {
                kind,
                watchers: n,
                summary,
            });
        }
    }
    Ok(rows)
}

fn one(ns: &Namespace, mode: Mode, kind: Kind, n: usize) -> Result<Summary> {
    let ack_name = ns.name("acks");
    let acks = Acks {
        shm: Shm::create(&ack_name, Acks::size(n))?,
    };
    let data_name = ns.name("scale");
    let region = match kind {
        Kind::Filemap | Kind::FilemapAdaptive => Some(
            FileMap::builder(&data_name)
                .capacity(64)
                .create_only()
                .open()?,
        ),
        Kind::FutexFloor => None,
    };
    let floor = match kind {
        Kind::Filemap | Kind::FilemapAdaptive => None,
        Kind::FutexFloor => Some(Shm::create(&data_name, 4096)?),
    };
    let mut children = Vec::with_capacity(n);
    for i in 0..n {
        let args = [
            format!("kind={}", kind.name()),
            format!("data={data_name}"),
            format!("acks={ack_name}"),
            format!("index={i}"),
            format!("watchers={n}"),
        ];
        children.push(ChildProc::spawn(
            ns,
            "watcher",
            &args,
            ChildStdinMode::Null,
        )?);
    }
    for child in &mut children {
        child.wait_ready()?;
    }
    let (warmup, measured) = mode.publishes();
    let mut samples = Vec::with_capacity(measured);
    let mut msg = [0u8; 16];
    for seq in 0..(warmup + measured) as u64 + 1 {
        let last = seq == (warmup + measured) as u64;
        let seq = if last { harness::STOP } else { seq };
        acks.done().store(0, Release);
        let stamp = sys::now_ns();
        msg[..8].copy_from_slice(&seq.to_le_bytes());
        msg[8..].copy_from_slice(&stamp.to_le_bytes());
        if let Some(map) = &region {
            map.write(&msg)?;
        }
        if let Some(shm) = &floor {
            shm.u64_at(STAMP).store(stamp, Relaxed);
            shm.u64_at(SEQ).store(seq, Relaxed);
            shm.u32_at(WORD).fetch_add(1, Release);
            sys::futex_wake(shm.u32_at(WORD), i32::MAX as u32);
        }
        if last {
            break;
        }
        wait_all(&acks, n)?;
        if seq >= warmup as u64 {
            let worst = (0..n)
                .map(|i| acks.latency(i).load(Relaxed))
                .max()
                .unwrap_or(0);
            samples.push(worst);
        }
    }
    for child in children {
        child.finish()?;
    }
    Ok(summarize(&mut samples))
}

/// Sleep until all `n` watchers acknowledged the current message.
fn wait_all(acks: &Acks, n: usize) -> Result<()> {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let done = acks.done().load(Acquire);
        if done as usize >= n {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!("only {done} of {n} watchers acknowledged within {TIMEOUT:?}");
        }
        sys::futex_wait(acks.done(), done, TIMEOUT);
    }
}

/// Child role `watcher`.
pub fn watcher_main(args: &ChildArgs) -> Result<()> {
    let n = args.usize("watchers")?;
    let i = args.usize("index")?;
    let acks = Acks {
        shm: Shm::open(args.get("acks")?)?,
    };
    anyhow::ensure!(acks.shm.len() >= Acks::size(n), "ack area too small");
    let data = args.get("data")?;
    let ack = |stamp: u64| {
        acks.latency(i)
            .store(sys::now_ns().saturating_sub(stamp), Relaxed);
        if acks.done().fetch_add(1, AcqRel) as usize + 1 == n {
            sys::futex_wake(acks.done(), 1);
        }
    };
    match args.get("kind")? {
        kind @ ("filemap-blocking" | "filemap-adaptive") => {
            let adaptive = kind == "filemap-adaptive";
            let map = FileMap::builder(data).open_only().open()?;
            let mut buf = harness::buffer(64);
            let mut seen = map.generation();
            harness::child_ready()?;
            loop {
                let moved = if adaptive {
                    map.wait_change(seen, filemap::Wait::adaptive().timeout(TIMEOUT))
                        .ok()
                } else {
                    map.wait_change(seen, filemap::Wait::sleep().timeout(TIMEOUT))
                        .ok()
                };
                seen = moved.ok_or_else(|| anyhow!("watcher {i}: no change within {TIMEOUT:?}"))?;
                map.read_into(&mut buf)?;
                anyhow::ensure!(
                    buf.len() == 16,
                    "watcher {i}: message of {} bytes",
                    buf.len()
                );
                if harness::seq_of(&buf) == harness::STOP {
                    return Ok(());
                }
                ack(u64::from_le_bytes(buf[8..16].try_into()?));
            }
        }
        "futex-floor" => {
            let shm = Shm::open(data)?;
            let word = shm.u32_at(WORD);
            let mut seen = word.load(Acquire);
            harness::child_ready()?;
            loop {
                let deadline = Instant::now() + TIMEOUT;
                while word.load(Acquire) == seen {
                    if Instant::now() >= deadline {
                        bail!("watcher {i}: no change within {TIMEOUT:?}");
                    }
                    sys::futex_wait(word, seen, TIMEOUT);
                }
                seen = word.load(Acquire);
                if shm.u64_at(SEQ).load(Relaxed) == harness::STOP {
                    return Ok(());
                }
                ack(shm.u64_at(STAMP).load(Relaxed));
            }
        }
        other => bail!("unknown watcher kind {other}"),
    }
}

/// The suite: notification latency to the last of N watcher processes.
pub const SUITE: Suite = Suite {
    name: "scaling",
    run: run_suite,
    children: &[Child {
        role: "watcher",
        main: watcher_main,
    }],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("scaling with watchers:");
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
                "kind": "scaling",
                "mechanism": r.kind.name(),
                "watchers": r.watchers,
                "publishes": r.summary.count,
                "median_ns": r.summary.median,
                "p99_ns": r.summary.p99,
                "p999_ns": r.summary.p999,
                "max_ns": r.summary.max,
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str(
            "### Notification latency to the last of N watchers (publish → content read)\n\n",
        );
        md.push_str("| watchers | filemap-blocking median | p99 | filemap-adaptive median | p99 | futex-floor median | p99 | blocking / floor | adaptive / blocking |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut counts: Vec<usize> = self.rows.iter().map(|r| r.watchers).collect();
        counts.dedup();
        for n in counts {
            let find = |k| self.rows.iter().find(|r| r.watchers == n && r.kind == k);
            let (f, a, b) = (
                find(Kind::Filemap),
                find(Kind::FilemapAdaptive),
                find(Kind::FutexFloor),
            );
            let med = |r: Option<&Row>| r.map_or("–".to_owned(), |r| ns(r.summary.median as f64));
            let p99 = |r: Option<&Row>| r.map_or("–".to_owned(), |r| ns(r.summary.p99 as f64));
            let ratio = |x: Option<&Row>, y: Option<&Row>| match (x, y) {
                (Some(x), Some(y)) => {
                    format!("{:.2}×", x.summary.median as f64 / y.summary.median as f64)
                }
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                med(f),
                p99(f),
                med(a),
                p99(a),
                med(b),
                p99(b),
                ratio(f, b),
                ratio(a, f),
            );
        }
        md.push('\n');
    }

    fn targets(&self, out: &mut Vec<Target>) {
        // More waiting processes than cores: 1 writer + 8 watchers.
        let scale = |k| {
            self.rows
                .iter()
                .find(|r| r.kind == k && r.watchers == 8)
                .map(|r| r.summary.median as f64)
        };
        if let (Some(a), Some(b)) = (scale(Kind::FilemapAdaptive), scale(Kind::Filemap)) {
            out.push(Target {
                name: "1 writer + 8 watcher processes on 2 cores: adaptive / blocking median (last watcher)".to_owned(),
                payload: None,
                ratio: a / b,
                limit: 1.2,
                at_least: false,
                unit: "×",
            });
        }
    }

    fn plot(&self, sibling: &dyn Fn(&str) -> PathBuf) -> Result<Option<PathBuf>> {
        if self.rows.is_empty() {
            return Ok(None);
        }
        let path = sibling("watchers");
        crate::plot::latency_vs_watchers(&self.rows, &path)?;
        Ok(Some(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(kind: Kind, watchers: usize, median: u64) -> Row {
        Row {
            kind,
            watchers,
            summary: Summary {
                count: 100,
                min: median / 2,
                median,
                p99: median * 2,
                p999: median * 3,
                max: median * 4,
                mean: median as f64,
            },
        }
    }

    #[test]
    fn eight_watchers_give_the_adaptive_target_and_a_table_row() {
        let mut m = Measured {
            rows: vec![
                row(Kind::Filemap, 4, 10_000),
                row(Kind::FilemapAdaptive, 4, 11_000),
            ],
        };
        let mut t = Vec::new();
        m.targets(&mut t);
        assert!(t.is_empty(), "no target below 8 watchers");
        m.rows.push(row(Kind::Filemap, 8, 20_000));
        m.rows.push(row(Kind::FilemapAdaptive, 8, 22_000));
        m.targets(&mut t);
        assert_eq!(t.len(), 1);
        assert!((t[0].ratio - 1.1).abs() < 1e-9 && t[0].met(), "{t:?}");
        let mut md = String::new();
        m.markdown(&mut md);
        assert!(
            md.contains("| 8 | 20.00 µs | 40.00 µs | 22.00 µs | 44.00 µs | – | – | – | 1.10× |"),
            "{md}"
        );
    }
}
