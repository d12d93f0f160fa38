//! Serialising straight into the region, which saves a private buffer
//! and one copy of the content: a ~1 MiB
//! struct published with `write_value` (MessagePack, `rmp_serde`'s
//! `write_named` into a `WriteLoan`) against `rmp_serde::to_vec_named` +
//! `write` (a private `Vec`, then one copy into the region); and raw bytes
//! through `loan()` + `write_all` in chunks against building a `Vec` from
//! the same chunks + `write`. In-process, one region, the same run; the
//! operations alternate over a few rounds and the median round is kept.
//! Each batch is timed twice: wall clock, and the thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`), which leaves out the time other processes
//! of a shared host held the core; the ratios use the CPU time.

#![forbid(unsafe_code)]

use filemap::ValueExt;
use std::fmt::Write as _;
use std::io::Write as _;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use filemap::FileMap;
use serde::Serialize;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::{Msg, Namespace};
use crate::stats::median_f64;
use crate::suite::{self, Report, Suite};
use crate::sys;
use crate::units::ns;

/// One element of the struct: a few fields, ~60 bytes encoded with names.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Reading {
    pub id: u64,
    pub x: f64,
    pub y: f64,
    pub flags: u32,
    pub label: String,
}

/// The ~1 MiB struct: 16,384 readings.
#[derive(Debug, Clone, Serialize, serde::Deserialize, PartialEq)]
pub struct Frame {
    pub seq: u64,
    pub readings: Vec<Reading>,
}

pub const READINGS: usize = 16 << 10;

pub fn frame() -> Frame {
    Frame {
        seq: 1,
        readings: (0..READINGS as u64)
            .map(|i| Reading {
                id: i,
                x: i as f64 * 0.5,
                y: -(i as f64) / 3.0,
                flags: (i as u32).wrapping_mul(2_654_435_761),
                label: format!("sensor-{:06}", i % 1_000_000),
            })
            .collect(),
    }
}

/// Serialise-and-publish through the loan (`write_value`).
pub const OP_VALUE: &str = "write_value";
/// `to_vec_named` + `write`.
pub const OP_VEC_VALUE: &str = "to_vec_named+write";
/// Diagnostic: the same encoder into the loan through an 8 KiB `BufWriter`
/// (no type-tag header), i.e. what `write_value` would cost if the loan's
/// per-call overhead on the encoder's many tiny writes were amortised.
pub const OP_BUF_VALUE: &str = "loan+BufWriter+write_named+commit";

#[derive(Debug, Clone)]
pub struct Row {
    pub op: String,
    /// Bytes published (the encoded struct, or the raw content).
    pub bytes: usize,
    /// Thread CPU time per publish (median batch of the median round).
    pub ns_per_op: f64,
    /// Wall-clock time per publish, the same way.
    pub wall_ns_per_op: f64,
}

/// (wall, thread CPU) nanoseconds per call of `f`: one calibration and one
/// warm-up batch, then `samples` batches of about `batch_time`; the median
/// batch of each clock.
fn per_call(
    samples: usize,
    batch_time: Duration,
    f: &mut dyn FnMut() -> Result<()>,
) -> Result<(f64, f64)> {
    let t = sys::now_ns();
    let mut calls = 0u64;
    while calls < 2 || (sys::now_ns() - t < batch_time.as_nanos() as u64 / 4 && calls < 10_000) {
        f()?;
        calls += 1;
    }
    let per = (sys::now_ns() - t) as f64 / calls as f64;
    let batch = ((batch_time.as_nanos() as f64 / per.max(1.0)) as u64).clamp(1, 10_000);
    let (mut wall, mut cpu) = (Vec::new(), Vec::new());
    for _ in 0..samples.max(1) {
        let (w0, c0) = (sys::now_ns(), sys::thread_cpu_ns());
        for _ in 0..batch {
            f()?;
        }
        wall.push((sys::now_ns() - w0) as f64 / batch as f64);
        cpu.push((sys::thread_cpu_ns() - c0) as f64 / batch as f64);
    }
    Ok((median_f64(&mut wall), median_f64(&mut cpu)))
}

/// Raw-content chunk sizes: a serialiser's small writes, and page-sized ones.
const CHUNKS: [usize; 2] = [64, 4096];
const RAW: usize = 1 << 20;

/// (name, bytes published, one publish).
type Op<'a> = (String, usize, Box<dyn FnMut() -> Result<()> + 'a>);

pub fn run(ns: &Namespace, mode: Mode) -> Result<Vec<Row>> {
    let (rounds, samples) = match mode {
        Mode::Smoke => (1, 2),
        Mode::Quick => (5, 7),
        Mode::Full => (9, 15),
    };
    let batch = Duration::from_millis(if mode == Mode::Smoke { 2 } else { 20 });
    let value = frame();
    let encoded = rmp_serde::to_vec_named(&value)?.len();
    let name = ns.name("loan");
    let map = FileMap::builder(&name)
        .capacity(encoded.max(RAW) + (64 << 10))
        .create_only()
        .open()
        .with_context(|| format!("creating region {name}"))?;

    // Both ways publish what a reader can decode.
    map.write_value(&value)?;
    ensure!(
        map.read_value::<Frame>()?.content == value,
        "write_value round trip"
    );
    let v = rmp_serde::to_vec_named(&value)?;
    map.write(&v)?;
    ensure!(map.read()?.content == v, "to_vec_named + write round trip");

    let raw = Msg::new(RAW);
    let mut ops: Vec<Op<'_>> = vec![
        (
            OP_VALUE.to_owned(),
            encoded,
            Box::new(|| {
                map.write_value(&value)?;
                Ok(())
            }),
        ),
        (
            OP_VEC_VALUE.to_owned(),
            encoded,
            Box::new(|| {
                let v = rmp_serde::to_vec_named(&value)?;
                map.write(&v)?;
                Ok(())
            }),
        ),
        (
            OP_BUF_VALUE.to_owned(),
            encoded,
            Box::new(|| {
                let mut loan = map.loan()?;
                {
                    let mut w = std::io::BufWriter::with_capacity(8 << 10, &mut loan);
                    rmp_serde::encode::write_named(&mut w, &value)?;
                    w.flush()?;
                }
                loan.commit()?;
                Ok(())
            }),
        ),
    ];
    for chunk in CHUNKS {
        let (map, raw) = (&map, &raw);
        ops.push((
            loan_op(chunk),
            RAW,
            Box::new(move || {
                let mut loan = map.loan()?;
                for c in raw.bytes().chunks(chunk) {
                    loan.write_all(c)?;
                }
                loan.commit()?;
                Ok(())
            }),
        ));
        ops.push((
            vec_op(chunk),
            RAW,
            Box::new(move || {
                let mut v = Vec::new();
                for c in raw.bytes().chunks(chunk) {
                    v.extend_from_slice(c);
                }
                map.write(&v)?;
                Ok(())
            }),
        ));
    }
    let mut per_round: Vec<(Vec<f64>, Vec<f64>)> = vec![(Vec::new(), Vec::new()); ops.len()];
    for _ in 0..rounds {
        for (i, (_, _, f)) in ops.iter_mut().enumerate() {
            let (wall, cpu) = per_call(samples, batch, f.as_mut())?;
            per_round[i].0.push(wall);
            per_round[i].1.push(cpu);
        }
    }
    let rows: Vec<Row> = ops
        .into_iter()
        .zip(per_round)
        .map(|((op, bytes, _), (mut wall, mut cpu))| Row {
            op,
            bytes,
            ns_per_op: median_f64(&mut cpu),
            wall_ns_per_op: median_f64(&mut wall),
        })
        .collect();
    for r in &rows {
        eprintln!(
            "  {:<36} {:>9} B  CPU {:>10}  wall {:>10} per publish",
            r.op,
            r.bytes,
            crate::units::ns(r.ns_per_op),
            crate::units::ns(r.wall_ns_per_op)
        );
    }
    Ok(rows)
}

pub fn loan_op(chunk: usize) -> String {
    format!("loan+write_all {chunk} B chunks+commit")
}

pub fn vec_op(chunk: usize) -> String {
    format!("Vec {chunk} B chunks+write")
}

/// The (loan, Vec) op pairs compared, by name: the serde pair first.
pub fn pairs() -> Vec<(String, String)> {
    [
        (OP_VALUE.to_owned(), OP_VEC_VALUE.to_owned()),
        (OP_BUF_VALUE.to_owned(), OP_VEC_VALUE.to_owned()),
    ]
    .into_iter()
    .chain(CHUNKS.iter().map(|&c| (loan_op(c), vec_op(c))))
    .collect()
}

/// The suite: serialise and publish ~1 MiB, through the loan and through a Vec + write.
pub const SUITE: Suite = Suite {
    name: "loan",
    run: run_suite,
    children: &[],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("serialise and publish ~1 MiB (loan vs Vec + write):");
    let rows = suite::rows_or_none(run(ns, args.mode), fail);
    Box::new(Measured { rows })
}

/// What the suite measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
}

impl Measured {
    /// (loan, baseline) ns per publish of a pair of rows.
    fn pair(&self, ours: &str, theirs: &str) -> Option<(f64, f64)> {
        let find = |op: &str| self.rows.iter().find(|r| r.op == op).map(|r| r.ns_per_op);
        Some((find(ours)?, find(theirs)?))
    }
}

impl Report for Measured {
    fn json(&self, rows: &mut Vec<Value>) {
        for r in &self.rows {
            rows.push(json!({
                "kind": "loan",
                "op": r.op,
                "payload_bytes": r.bytes,
                "ns_per_op": r.ns_per_op,
                "wall_ns_per_op": r.wall_ns_per_op,
                "gib_per_s": crate::timing::gib_per_s(r.bytes, r.ns_per_op),
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str(
            "### Serialise and publish (the loan vs a private Vec + write, in process)\n\n",
        );
        md.push_str(
            "Per publish: the thread's CPU time (what the host's other processes took is left \
             out), and wall-clock time. Ratio of CPU times.\n\n",
        );
        md.push_str("| way | bytes published | per publish (CPU) | wall | GiB/s (CPU) | baseline | baseline time / loan time |\n");
        md.push_str("|---|---:|---:|---:|---:|---|---:|\n");
        let mut shown = Vec::new();
        for (ours, theirs) in pairs() {
            for (op, base) in [(&ours, Some(&theirs)), (&theirs, None)] {
                let Some(r) = self.rows.iter().find(|r| &r.op == op) else {
                    continue;
                };
                if base.is_none() && shown.contains(op) {
                    continue;
                }
                shown.push(op.clone());
                let vs = base
                    .and_then(|b| self.pair(op, b))
                    .map_or(String::new(), |(a, b)| format!("{:.2}×", b / a));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.2} | {} | {} |",
                    r.op,
                    r.bytes,
                    ns(r.ns_per_op),
                    ns(r.wall_ns_per_op),
                    crate::timing::gib_per_s(r.bytes, r.ns_per_op),
                    base.map_or("", |b| b.as_str()),
                    vs,
                );
            }
        }
        md.push('\n');
    }
    // No target: encoding dominates both `write_value` and
    // `to_vec_named` + `write` (see the module docs), so no loan can make
    // one 1.3x faster than the other; the rows are reported as they are.
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_is_about_a_mebibyte_encoded() {
        let n = rmp_serde::to_vec_named(&frame()).unwrap().len();
        assert!((900 << 10..1400 << 10).contains(&n), "{n} bytes");
    }
}
