//! The ping-pong benchmark: every mechanism at every payload size, a few
//! repetitions each, interleaved (repetition-major) so that a burst of
//! noise on the machine spreads over all mechanisms instead of ruining
//! one.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::Namespace;
use crate::mech::{Ctx, Mechanism};
use crate::report::Target;
use crate::stats::{median_f64, summarize, Repeated, Summary};
use crate::suite::{Child, Report, Suite};
use crate::sys;
use crate::units::{bytes, ns};

/// The outcome for one mechanism at one payload size.
#[derive(Debug, Clone)]
pub struct Cell {
    pub mechanism: Mechanism,
    pub payload: usize,
    pub result: Result<Repeated, String>,
    /// CPU time per measured round trip of each repetition, both processes.
    pub cpu: Vec<CpuPerRt>,
}

/// CPU time (user + system) per round trip over one repetition.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CpuPerRt {
    pub parent_ns: f64,
    pub child_ns: f64,
}

impl CpuPerRt {
    pub fn total_ns(&self) -> f64 {
        self.parent_ns + self.child_ns
    }
}

impl Cell {
    /// Median over the repetitions of both processes' CPU time per round
    /// trip; `None` if it could not be read.
    pub fn cpu_ns_per_rt(&self) -> Option<f64> {
        self.cpu_median(CpuPerRt::total_ns)
    }

    pub fn cpu_median(&self, f: impl Fn(&CpuPerRt) -> f64) -> Option<f64> {
        let mut v: Vec<f64> = self.cpu.iter().map(f).collect();
        let m = median_f64(&mut v);
        m.is_finite().then_some(m)
    }
}

pub fn run(ns: &Namespace, args: &Args, mode: Mode) -> Vec<Cell> {
    let pinned = args.pin && sys::cpu_count() >= 2 && sys::pin_to_cpu(0).is_ok();
    let child_cpu = pinned.then_some(1);
    let payloads = mode.payloads();
    let mut runs: BTreeMap<(usize, Mechanism), Vec<Summary>> = BTreeMap::new();
    let mut failed: BTreeMap<(usize, Mechanism), String> = BTreeMap::new();
    let mut cpu: BTreeMap<(usize, Mechanism), Vec<CpuPerRt>> = BTreeMap::new();
    for rep in 0..args.runs {
        for &payload in &payloads {
            for &mechanism in &args.mechanisms {
                let key = (payload, mechanism);
                if failed.contains_key(&key) {
                    continue;
                }
                let ctx = Ctx::new(mechanism, ns, mode.plan(payload), child_cpu);
                let outcome = mechanism.run_parent(&ctx);
                ns.clean();
                match outcome {
                    Ok(mut samples) => {
                        let s = summarize(&mut samples);
                        let per_rt = ctx.cpu.get().filter(|_| s.count > 0).map(|c| CpuPerRt {
                            parent_ns: c.parent_ns as f64 / s.count as f64,
                            child_ns: c.child_ns as f64 / s.count as f64,
                        });
                        eprintln!(
                            "  [{}/{}] {:<24} {:>8} B  median {:>10}  p99 {:>10}  cpu/rt {:>10}  ({} round trips)",
                            rep + 1,
                            args.runs,
                            mechanism.name(),
                            payload,
                            crate::units::ns(s.median as f64),
                            crate::units::ns(s.p99 as f64),
                            per_rt.map_or("?".to_owned(), |c| crate::units::ns(c.total_ns())),
                            s.count
                        );
                        runs.entry(key).or_default().push(s);
                        cpu.entry(key).or_default().extend(per_rt);
                    }
                    Err(e) => {
                        let e = format!("{e:#}");
                        eprintln!("  {} at {payload} B FAILED: {e}", mechanism.name());
                        failed.insert(key, e);
                    }
                }
            }
        }
    }
    if pinned {
        let _ = sys::unpin();
    }
    let mut cells = Vec::new();
    for &payload in &payloads {
        for &mechanism in &args.mechanisms {
            let key = (payload, mechanism);
            let result = match failed.remove(&key) {
                Some(e) => Err(e),
                None => Repeated::new(runs.remove(&key).unwrap_or_default())
                    .ok_or_else(|| "no repetition ran".to_owned()),
            };
            cells.push(Cell {
                mechanism,
                payload,
                result,
                cpu: cpu.remove(&key).unwrap_or_default(),
            });
        }
    }
    cells
}

/// The suite: every mechanism at every payload size (`--mechanisms`).
pub const SUITE: Suite = Suite {
    name: "latency",
    run: |ns, args, _fail| {
        eprintln!("round-trip latency:");
        Box::new(Measured {
            cells: run(ns, args, args.mode),
        })
    },
    children: &[Child {
        role: "echo",
        main: crate::mech::echo_main,
    }],
};

/// Peers whose failure is reported without failing the run.
const PEERS: [Mechanism; 3] = [
    Mechanism::Iceoryx2Spin,
    Mechanism::Iceoryx2Event,
    Mechanism::SharedMemoryRawSync,
];

/// What the suite measured: a cell per payload and mechanism.
#[derive(Debug, Clone)]
pub struct Measured {
    pub cells: Vec<Cell>,
}

impl Measured {
    fn median(&self, m: Mechanism, payload: usize) -> Option<f64> {
        self.cells
            .iter()
            .find(|c| c.mechanism == m && c.payload == payload)
            .and_then(|c| c.result.as_ref().ok())
            .map(|r| r.chosen.median as f64)
    }

    /// The best repetition's median: what a noisy host inflates least.
    fn best(&self, m: Mechanism, payload: usize) -> Option<f64> {
        self.cells
            .iter()
            .find(|c| c.mechanism == m && c.payload == payload)
            .and_then(|c| c.result.as_ref().ok())
            .and_then(|r| r.runs.iter().map(|s| s.median).min())
            .map(|ns| ns as f64)
    }

    fn payloads(&self) -> Vec<usize> {
        let mut p: Vec<usize> = self.cells.iter().map(|c| c.payload).collect();
        p.dedup();
        p
    }
}

impl Report for Measured {
    /// The performance targets, each at every payload size measured.
    fn targets(&self, out: &mut Vec<Target>) {
        use Mechanism::*;
        let pairs = [
            (FilemapBlocking, FutexFloor, 1.2),
            (FilemapBlocking, UnixSocket, 0.5),
            (FilemapSpin, SpinFloor, 1.3),
            (FilemapSpin, Iceoryx2Spin, 0.5),
        ];
        for (ours, theirs, limit) in pairs {
            for payload in self.payloads() {
                if let (Some(a), Some(b)) =
                    (self.median(ours, payload), self.median(theirs, payload))
                {
                    out.push(Target {
                        name: format!("{} / {} median", ours.name(), theirs.name()),
                        payload: Some(payload),
                        ratio: a / b,
                        limit,
                        at_least: false,
                        unit: "×",
                    });
                }
            }
        }
        // What a user with large contents feels: publish + notify, the
        // other process wakes and reads 1 MiB out, and back, against the
        // least any shared-memory transport can do (busy-polling, one copy
        // each way). The gap is the two wake-ups and the copies through
        // the region's buffers.
        if let (Some(a), Some(b)) = (
            self.median(FilemapBlocking, 1 << 20),
            self.median(SpinFloor, 1 << 20),
        ) {
            out.push(Target {
                name: "filemap-blocking (publish + notify + read by another process) / spin-floor median".to_owned(),
                payload: Some(1 << 20),
                ratio: a / b,
                limit: 1.5,
                at_least: false,
                unit: "×",
            });
        }
        // Small contents, by best repetitions: the floor without the
        // scheduling noise of a shared host.
        if let (Some(a), Some(b)) = (self.best(FilemapSpin, 8), self.best(SpinFloor, 8)) {
            out.push(Target {
                name: "filemap-spin / spin-floor, best repetitions".to_owned(),
                payload: Some(8),
                ratio: a / b,
                limit: 1.3,
                at_least: false,
                unit: "×",
            });
        }
        // The adaptive wait with a prompt peer at 8 B: near spinning
        // latency, far below blocking.
        for (theirs, limit) in [(FilemapSpin, 1.5), (FilemapBlocking, 0.2)] {
            if let (Some(a), Some(b)) = (self.median(FilemapAdaptive, 8), self.median(theirs, 8)) {
                out.push(Target {
                    name: format!("filemap-adaptive / {} median", theirs.name()),
                    payload: Some(8),
                    ratio: a / b,
                    limit,
                    at_least: false,
                    unit: "×",
                });
            }
        }
    }

    /// One object per mechanism and payload (no `kind`), or an error.
    fn json(&self, rows: &mut Vec<Value>) {
        for cell in &self.cells {
            match &cell.result {
                Ok(r) => {
                    let (lo, hi) = r.median_spread();
                    let (p99_lo, p99_hi) = r.p99_spread();
                    rows.push(json!({
                        "mechanism": cell.mechanism.name(),
                        "payload_bytes": cell.payload,
                        "median_ns": r.chosen.median,
                        "p99_ns": r.chosen.p99,
                        "p999_ns": r.chosen.p999,
                        "runs": r.runs.len(),
                        "round_trips": r.chosen.count,
                        "min_ns": r.chosen.min,
                        "max_ns": r.chosen.max,
                        "mean_ns": r.chosen.mean,
                        "median_ns_min": lo,
                        "median_ns_max": hi,
                        "p99_ns_min": p99_lo,
                        "p99_ns_max": p99_hi,
                        "run_medians_ns": r.runs.iter().map(|s| s.median).collect::<Vec<_>>(),
                        "run_p99_ns": r.runs.iter().map(|s| s.p99).collect::<Vec<_>>(),
                        "run_p999_ns": r.runs.iter().map(|s| s.p999).collect::<Vec<_>>(),
                        "cpu_ns_per_rt": cell.cpu_ns_per_rt(),
                        "cpu_ns_per_rt_parent": cell.cpu_median(|c| c.parent_ns),
                        "cpu_ns_per_rt_child": cell.cpu_median(|c| c.child_ns),
                        "run_cpu_ns_per_rt": cell.cpu.iter().map(|c| c.total_ns()).collect::<Vec<_>>(),
                    }));
                }
                Err(e) => rows.push(json!({
                    "kind": "error",
                    "mechanism": cell.mechanism.name(),
                    "payload_bytes": cell.payload,
                    "error": e,
                })),
            }
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.cells.is_empty() {
            return;
        }
        md.push_str("### Round-trip latency (two processes, ping-pong)\n\n");
        md.push_str(
            "Median repetition shown; spread = lowest–highest median over the repetitions. \
             Ratios are of medians (lower is better for filemap when > 1). \
             CPU / rt = user + system CPU time of both processes per measured round trip \
             (median over the repetitions); a round trip lasting the median with both \
             processes busy throughout would cost 2 × median.\n\n",
        );
        for payload in self.payloads() {
            let _ = writeln!(md, "**{}**\n", bytes(payload));
            md.push_str("| mechanism | median | p99 | p99.9 | CPU / rt | round trips × runs | median spread | × filemap-blocking | × filemap-spin |\n");
            md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            let blocking = self.median(Mechanism::FilemapBlocking, payload);
            let spin = self.median(Mechanism::FilemapSpin, payload);
            for cell in self.cells.iter().filter(|c| c.payload == payload) {
                match &cell.result {
                    Ok(r) => {
                        let (lo, hi) = r.median_spread();
                        let med = r.chosen.median as f64;
                        let ratio = |base: Option<f64>| {
                            base.map_or("–".to_owned(), |b| format!("{:.2}×", med / b))
                        };
                        let _ = writeln!(
                            md,
                            "| {} | {} | {} | {} | {} | {} × {} | {}–{} | {} | {} |",
                            cell.mechanism.name(),
                            ns(med),
                            ns(r.chosen.p99 as f64),
                            ns(r.chosen.p999 as f64),
                            cell.cpu_ns_per_rt().map_or("–".to_owned(), ns),
                            r.chosen.count,
                            r.runs.len(),
                            ns(lo as f64),
                            ns(hi as f64),
                            ratio(blocking),
                            ratio(spin),
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(
                            md,
                            "| {} | failed: {} | | | | | | | |",
                            cell.mechanism.name(),
                            e.replace('|', "\\|").replace('\n', " ")
                        );
                    }
                }
            }
            md.push('\n');
        }
    }

    fn plot(&self, sibling: &dyn Fn(&str) -> PathBuf) -> Result<Option<PathBuf>> {
        if self.cells.is_empty() {
            return Ok(None);
        }
        let path = sibling("latency");
        crate::plot::latency_vs_payload(&self.cells, &path)?;
        Ok(Some(path))
    }

    /// Peers may fail (reported in the tables and the JSON); filemap, the
    /// floors and the OS mechanisms may not.
    fn failed(&self) -> bool {
        self.cells
            .iter()
            .any(|c| c.result.is_err() && !PEERS.contains(&c.mechanism))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Repeated, Summary};

    fn cell(m: Mechanism, payload: usize, median: u64) -> Cell {
        let s = Summary {
            count: 1000,
            min: median / 2,
            median,
            p99: median * 2,
            p999: median * 3,
            max: median * 10,
            mean: median as f64,
        };
        Cell {
            mechanism: m,
            payload,
            result: Ok(Repeated::new(vec![s, s, s]).unwrap()),
            cpu: vec![CpuPerRt {
                parent_ns: median as f64,
                child_ns: median as f64 / 2.0,
            }],
        }
    }

    fn measured() -> Measured {
        Measured {
            cells: vec![
                cell(Mechanism::FilemapBlocking, 8, 1100),
                cell(Mechanism::FutexFloor, 8, 1000),
                cell(Mechanism::UnixSocket, 8, 4000),
                Cell {
                    mechanism: Mechanism::Iceoryx2Spin,
                    payload: 8,
                    result: Err("did not build".into()),
                    cpu: Vec::new(),
                },
            ],
        }
    }

    #[test]
    fn json_rows_have_the_required_fields() {
        let mut rows = Vec::new();
        measured().json(&mut rows);
        let latency: Vec<_> = rows.iter().filter(|r| r.get("kind").is_none()).collect();
        assert_eq!(latency.len(), 3);
        for r in latency {
            for key in [
                "mechanism",
                "payload_bytes",
                "median_ns",
                "p99_ns",
                "p999_ns",
                "runs",
            ] {
                assert!(r.get(key).is_some(), "{key} missing in {r}");
            }
        }
        assert!(rows
            .iter()
            .any(|r| r["kind"] == "error" && r["mechanism"] == "iceoryx2-spin"));
    }

    #[test]
    fn targets_compare_medians() {
        let mut t = Vec::new();
        measured().targets(&mut t);
        let floor = t.iter().find(|t| t.name.contains("futex-floor")).unwrap();
        assert!((floor.ratio - 1.1).abs() < 1e-9 && floor.met());
        let sock = t.iter().find(|t| t.name.contains("unix-socket")).unwrap();
        assert!((sock.ratio - 0.275).abs() < 1e-9 && sock.met());
        assert!(!t.iter().any(|t| t.name.contains("iceoryx2")));
    }

    #[test]
    fn markdown_shows_ratios_and_failures() {
        let mut md = String::new();
        measured().markdown(&mut md);
        assert!(md.contains("| futex-floor | 1.00 µs |"), "{md}");
        assert!(md.contains("0.91×"), "{md}");
        assert!(md.contains("failed: did not build"), "{md}");
    }

    #[test]
    fn only_a_failing_peer_leaves_the_run_successful() {
        let mut m = measured();
        assert!(!m.failed(), "iceoryx2 is a peer");
        m.cells[1].result = Err("futex broke".into());
        assert!(m.failed());
    }
}
