//! The ping-pong benchmark: every mechanism at every payload size, a few
//! repetitions each, interleaved (repetition-major) so that a burst of
//! noise on the machine spreads over all mechanisms instead of ruining
//! one.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::cli::{Args, Mode};
use crate::harness::Namespace;
use crate::mech::{Ctx, Mechanism};
use crate::stats::{median_f64, summarize, Repeated, Summary};
use crate::sys;

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
