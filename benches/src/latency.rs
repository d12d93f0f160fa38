//! The ping-pong benchmark: every mechanism at every payload size, a few
//! repetitions each, interleaved (repetition-major) so that a burst of
//! noise on the machine spreads over all mechanisms instead of ruining
//! one.

#![forbid(unsafe_code)]

use std::collections::BTreeMap;

use crate::cli::{Args, Mode};
use crate::harness::Namespace;
use crate::mech::{Ctx, Mechanism};
use crate::stats::{summarize, Repeated, Summary};
use crate::sys;

/// The outcome for one mechanism at one payload size.
#[derive(Debug, Clone)]
pub struct Cell {
    pub mechanism: Mechanism,
    pub payload: usize,
    pub result: Result<Repeated, String>,
}

pub fn run(ns: &Namespace, args: &Args, mode: Mode) -> Vec<Cell> {
    let pinned = args.pin && sys::cpu_count() >= 2 && sys::pin_to_cpu(0).is_ok();
    let child_cpu = pinned.then_some(1);
    let payloads = mode.payloads();
    let mut runs: BTreeMap<(usize, Mechanism), Vec<Summary>> = BTreeMap::new();
    let mut failed: BTreeMap<(usize, Mechanism), String> = BTreeMap::new();
    for rep in 0..args.runs {
        for &payload in &payloads {
            for &mechanism in &args.mechanisms {
                let key = (payload, mechanism);
                if failed.contains_key(&key) {
                    continue;
                }
                let ctx = Ctx {
                    mechanism,
                    ns,
                    plan: mode.plan(payload),
                    child_cpu,
                };
                let outcome = mechanism.run_parent(&ctx);
                ns.clean();
                match outcome {
                    Ok(mut samples) => {
                        let s = summarize(&mut samples);
                        eprintln!(
                            "  [{}/{}] {:<24} {:>8} B  median {:>10}  p99 {:>10}  ({} round trips)",
                            rep + 1,
                            args.runs,
                            mechanism.name(),
                            payload,
                            crate::report::ns(s.median as f64),
                            crate::report::ns(s.p99 as f64),
                            s.count
                        );
                        runs.entry(key).or_default().push(s);
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
            });
        }
    }
    cells
}
