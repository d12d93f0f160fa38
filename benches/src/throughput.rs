//! Throughput: a writer process publishes as fast as it can for a fixed
//! time while one watcher process (blocking `wait_change` + `read_into`)
//! keeps up as well as it can. Reports writes/s, the watcher's reads/s and
//! the share of generations it saw, and bytes/s next to a plain memcpy of
//! the same size.
//!
//! The slow-reader case, where a reader slower than the writer must not
//! starve: the writer publishes a large
//! content back to back, and a reader process calls `read_into` and then
//! spends about as long again on the content (checksum passes over every
//! byte, for as long as its own uncontended copy took), so it reads slower
//! than the writer publishes. Reported: the time of each `read_into`
//! against the time of each publish. A read whose lock-free copies keep
//! being spoiled falls back to the lock, which a writer publishing back to
//! back hands over to a waiter that has waited 2 ms; so a read should take
//! about two spoiled copies, at most one publish and its own copy.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use filemap::FileMap;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::{self, seq_of, ChildArgs, ChildProc, ChildStdinMode, Msg, Namespace, TIMEOUT};
use crate::stats::{summarize, Summary};
use crate::suite::{self, Child, Report, Suite};
use crate::sys;
use crate::timing::{gib_per_s, per_call};
use crate::units::{bytes, ns};

#[derive(Debug, Clone)]
pub struct Row {
    pub payload: usize,
    pub seconds: f64,
    pub writes: u64,
    pub reads: u64,
    pub read_bytes: u64,
    pub memcpy_ns: f64,
}

impl Row {
    pub fn writes_per_s(&self) -> f64 {
        self.writes as f64 / self.seconds
    }
    pub fn reads_per_s(&self) -> f64 {
        self.reads as f64 / self.seconds
    }
    pub fn write_gib_per_s(&self) -> f64 {
        self.writes_per_s() * self.payload as f64 / (1u64 << 30) as f64
    }
    pub fn read_gib_per_s(&self) -> f64 {
        self.read_bytes as f64 / self.seconds / (1u64 << 30) as f64
    }
    pub fn memcpy_gib_per_s(&self) -> f64 {
        gib_per_s(self.payload, self.memcpy_ns)
    }
    pub fn seen_fraction(&self) -> f64 {
        self.reads as f64 / self.writes.max(1) as f64
    }
}

pub fn run(ns: &Namespace, mode: Mode, pin: bool) -> Result<Vec<Row>> {
    let pinned = pin && sys::cpu_count() >= 2 && sys::pin_to_cpu(0).is_ok();
    let result = mode
        .payloads()
        .into_iter()
        .map(|payload| one(ns, mode, payload, pinned.then_some(1)))
        .collect();
    if pinned {
        let _ = sys::unpin();
    }
    result
}

fn one(ns: &Namespace, mode: Mode, payload: usize, child_cpu: Option<usize>) -> Result<Row> {
    let name = ns.name("tput");
    let map = FileMap::builder(&name)
        .capacity(payload.max(filemap::MIN_CAPACITY))
        .create_only()
        .open()
        .with_context(|| format!("creating {name}"))?;
    let mut args = vec![format!("region={name}"), format!("payload={payload}")];
    if let Some(cpu) = child_cpu {
        args.push(format!("cpu={cpu}"));
    }
    let mut child = ChildProc::spawn(ns, "watch", &args, ChildStdinMode::Null)?;
    child.wait_ready()?;
    let mut msg = Msg::new(payload);
    let run_for = mode.throughput_time();
    let started = Instant::now();
    let mut writes = 0u64;
    loop {
        map.write(msg.set_seq(writes))?;
        writes += 1;
        if writes.is_multiple_of(16) && started.elapsed() >= run_for {
            break;
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    map.write(msg.set_seq(harness::STOP))?;
    let report = child.finish()?;
    let mut fields = report.split_whitespace().map(str::parse::<u64>);
    let mut next = || -> Result<u64> {
        fields
            .next()
            .ok_or_else(|| anyhow!("short watcher report {report:?}"))?
            .map_err(Into::into)
    };
    let (reads, read_bytes) = (next()?, next()?);
    let mut storage = Vec::new();
    let dst = crate::timing::page_aligned(&mut storage, payload);
    let memcpy_ns = per_call(mode.samples(), Duration::from_micros(500), || {
        dst.copy_from_slice(black_box(msg.bytes()));
        black_box(&mut *dst);
        Ok(())
    })?;
    let row = Row {
        payload,
        seconds,
        writes,
        reads,
        read_bytes,
        memcpy_ns,
    };
    eprintln!(
        "  {payload:>8} B  {:>12.0} writes/s  {:>12.0} reads/s ({:.0}% seen)  write {:.2} GiB/s  read {:.2} GiB/s  memcpy {:.2} GiB/s",
        row.writes_per_s(),
        row.reads_per_s(),
        100.0 * row.seen_fraction(),
        row.write_gib_per_s(),
        row.read_gib_per_s(),
        row.memcpy_gib_per_s()
    );
    Ok(row)
}

/// Child role `watch`: read every change until [`harness::STOP`], then
/// print "<reads> <bytes read>" (the STOP message not counted).
pub fn watch_main(args: &ChildArgs) -> Result<()> {
    if let Some(cpu) = args.opt("cpu") {
        sys::pin_to_cpu(cpu.parse()?)?;
    }
    let name = args.get("region")?;
    let map = FileMap::builder(name).open_only().open()?;
    let mut buf = harness::buffer(args.usize("payload")?);
    let mut seen = map.generation();
    let (mut reads, mut bytes) = (0u64, 0u64);
    harness::child_ready()?;
    loop {
        map.wait_change(seen, filemap::Wait::sleep().timeout(TIMEOUT))
            .ok()
            .ok_or_else(|| anyhow!("no change in {name} within {TIMEOUT:?}"))?;
        let stamp = map.read_into(&mut buf)?;
        seen = stamp.generation;
        if seq_of(&buf) == harness::STOP {
            break;
        }
        reads += 1;
        bytes += buf.len() as u64;
    }
    println!("{reads} {bytes}");
    Ok(())
}

/// One size of the slow-reader case.
#[derive(Debug, Clone)]
pub struct SlowRow {
    pub payload: usize,
    /// The reader's `read_into` alone, with no writer running (the fastest
    /// of five): what its processing step is sized to.
    pub copy_ns: f64,
    /// Each measured `read_into` under the back-to-back writer.
    pub read: Summary,
    /// The same reads, in the order they were made (nanoseconds).
    pub reads_ns: Vec<u64>,
    /// Each publish (`write`) of the writer meanwhile.
    pub publish: Summary,
}

impl SlowRow {
    /// Median read latency / median publish time.
    pub fn ratio(&self) -> f64 {
        self.read.median as f64 / self.publish.median.max(1) as f64
    }
    /// Slowest read / median publish time.
    pub fn max_ratio(&self) -> f64 {
        self.read.max as f64 / self.publish.median.max(1) as f64
    }
    /// What a read should take at most once a lock hand-over bounds it:
    /// two spoiled copies, one publish to wait out, its own copy (copies
    /// as long as the reader's uncontended read, the publish its median).
    pub fn bound_ns(&self) -> f64 {
        3.0 * self.copy_ns + self.publish.median as f64
    }
    /// Reads that took longer than [`SlowRow::bound_ns`].
    pub fn over_bound(&self) -> usize {
        let bound = self.bound_ns();
        self.reads_ns.iter().filter(|&&r| r as f64 > bound).count()
    }
}

/// Longest the writer keeps publishing for one size: the reader's reads
/// must all be done by then (even a starved reader, at the 1.45 s per read
/// at 256 MiB measured before a spoiled large read fell back to the lock
/// and a waiting reader was handed it, would still finish a full-mode run
/// of 40 reads).
const SLOW_READER_LIMIT: Duration = Duration::from_secs(180);

/// Reads of the slow reader before it measures (page faults of its
/// mapping's second buffer, the first hand-overs).
const SLOW_READER_WARMUP: usize = 2;

pub fn slow_reader(ns: &Namespace, mode: Mode, pin: bool) -> Result<Vec<SlowRow>> {
    let pinned = pin && sys::cpu_count() >= 2 && sys::pin_to_cpu(0).is_ok();
    let result = mode
        .slow_reader_plan()
        .into_iter()
        .map(|(payload, reads)| slow_one(ns, payload, reads, pinned.then_some(1)))
        .collect();
    if pinned {
        let _ = sys::unpin();
    }
    result
}

fn slow_one(
    ns: &Namespace,
    payload: usize,
    reads: usize,
    child_cpu: Option<usize>,
) -> Result<SlowRow> {
    let name = ns.name("slowread");
    let map = FileMap::builder(&name)
        .capacity(payload.max(filemap::MIN_CAPACITY))
        .create_only()
        .open()
        .with_context(|| format!("creating {name}"))?;
    let mut msg = Msg::new(payload);
    // Both buffers once, so the writer's page faults are not timed.
    map.write(msg.set_seq(0))?;
    map.write(msg.set_seq(1))?;
    let mut args = vec![
        format!("region={name}"),
        format!("payload={payload}"),
        format!("reads={reads}"),
    ];
    if let Some(cpu) = child_cpu {
        args.push(format!("cpu={cpu}"));
    }
    let mut child = ChildProc::spawn(ns, "slowreader", &args, ChildStdinMode::Null)?;
    child.wait_ready()?;
    let started = Instant::now();
    let mut publish = Vec::new();
    let mut seq = 2u64;
    while !child.exited()? {
        if started.elapsed() > SLOW_READER_LIMIT {
            bail!("the slow reader of {payload} B did not finish {reads} reads within {SLOW_READER_LIMIT:?}");
        }
        let t = Instant::now();
        map.write(msg.set_seq(seq))?;
        publish.push(t.elapsed().as_nanos() as u64);
        seq += 1;
    }
    let report = child.finish()?;
    let mut fields = report.split_whitespace().map(str::parse::<u64>);
    let copy_ns = fields
        .next()
        .ok_or_else(|| anyhow!("empty slow-reader report"))?? as f64;
    let mut read = fields.collect::<Result<Vec<u64>, _>>()?;
    if read.len() != reads {
        bail!("the slow reader reported {} reads, not {reads}", read.len());
    }
    let row = SlowRow {
        payload,
        copy_ns,
        reads_ns: read.clone(),
        read: summarize(&mut read),
        publish: summarize(&mut publish),
    };
    eprintln!(
        "  slow reader {:>9} B  read median {:>9.2} ms  p99 {:>9.2} ms  max {:>9.2} ms  (alone {:.2} ms)  publish median {:.2} ms ({} publishes)  read/publish {:.2}× (max {:.2}×)  {} reads over 3×alone + publish",
        payload,
        row.read.median as f64 / 1e6,
        row.read.p99 as f64 / 1e6,
        row.read.max as f64 / 1e6,
        row.copy_ns / 1e6,
        row.publish.median as f64 / 1e6,
        row.publish.count,
        row.ratio(),
        row.max_ratio(),
        row.over_bound(),
    );
    Ok(row)
}

/// One checksum pass over every byte of `buf` (a sum of 8-byte words and
/// the tail bytes, which the compiler vectorises: it reads everything).
fn checksum(buf: &[u8]) -> u64 {
    let mut words = buf.chunks_exact(8);
    let mut sum = 0u64;
    for w in &mut words {
        sum = sum.wrapping_add(u64::from_le_bytes(w.try_into().unwrap_or([0; 8])));
    }
    words
        .remainder()
        .iter()
        .fold(sum, |s, &b| s.wrapping_add(u64::from(b)))
}

/// Child role `slowreader`: time five uncontended reads, get ready, wait
/// for the writer to start, then `reads` times (after a warm-up): time one
/// `read_into`, check what it read, and process the content for about as
/// long as an uncontended copy took. Prints "<uncontended copy ns>
/// <read ns>...".
pub fn slow_reader_main(args: &ChildArgs) -> Result<()> {
    if let Some(cpu) = args.opt("cpu") {
        sys::pin_to_cpu(cpu.parse()?)?;
    }
    let name = args.get("region")?;
    let payload = args.usize("payload")?;
    let reads = args.usize("reads")?;
    let map = FileMap::builder(name).open_only().open()?;
    let mut buf = harness::buffer(payload);
    // The fastest of a few: on a busy machine the slower ones measure the
    // other load more than the copy.
    let mut copy = Duration::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        map.read_into(&mut buf)?;
        copy = copy.min(t.elapsed());
    }
    let seen = map.generation();
    harness::child_ready()?;
    map.wait_change(seen, filemap::Wait::sleep().timeout(TIMEOUT))
        .ok()
        .ok_or_else(|| anyhow!("the writer did not start within {TIMEOUT:?}"))?;
    let mut latencies = Vec::with_capacity(reads);
    let mut last = 0u64;
    let mut sink = 0u64;
    for i in 0..SLOW_READER_WARMUP + reads {
        let t = Instant::now();
        let stamp = map.read_into(&mut buf)?;
        let took = t.elapsed();
        // The writer publishes sequence g - 1 as generation g.
        if buf.len() != payload || stamp.generation < last || seq_of(&buf) + 1 != stamp.generation {
            bail!(
                "read {} B with sequence {} as generation {} (after generation {last})",
                buf.len(),
                seq_of(&buf),
                stamp.generation
            );
        }
        last = stamp.generation;
        if i >= SLOW_READER_WARMUP {
            latencies.push(took.as_nanos() as u64);
        }
        // Process: at least one pass over every byte, then more until the
        // processing took as long as a copy.
        let t = Instant::now();
        loop {
            sink = sink.wrapping_add(checksum(black_box(&buf)));
            if t.elapsed() >= copy {
                break;
            }
        }
    }
    black_box(sink);
    let list: Vec<String> = latencies.iter().map(u64::to_string).collect();
    println!("{} {}", copy.as_nanos(), list.join(" "));
    Ok(())
}

/// The suite: a free-running writer and one blocking watcher, then a slow
/// reader under a writer publishing back to back.
pub const SUITE: Suite = Suite {
    name: "throughput",
    run: run_suite,
    children: &[
        Child {
            role: "watch",
            main: watch_main,
        },
        Child {
            role: "slowreader",
            main: slow_reader_main,
        },
    ],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("throughput:");
    let rows = suite::rows_or_none(run(ns, args.mode, args.pin), fail);
    ns.clean();
    eprintln!("slow reader (read_into + as long again processing, writer back to back):");
    let slow = slow_reader(ns, args.mode, args.pin).unwrap_or_else(|e| {
        fail(e);
        Vec::new()
    });
    Box::new(Measured { rows, slow })
}

/// What the suite measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
    pub slow: Vec<SlowRow>,
}

impl Report for Measured {
    fn json(&self, rows: &mut Vec<Value>) {
        for r in &self.rows {
            rows.push(json!({
                "kind": "throughput",
                "mechanism": "filemap-blocking",
                "payload_bytes": r.payload,
                "seconds": r.seconds,
                "writes": r.writes,
                "reads": r.reads,
                "writes_per_s": r.writes_per_s(),
                "reads_per_s": r.reads_per_s(),
                "seen_fraction": r.seen_fraction(),
                "write_gib_per_s": r.write_gib_per_s(),
                "read_gib_per_s": r.read_gib_per_s(),
                "memcpy_gib_per_s": r.memcpy_gib_per_s(),
            }));
        }
        for r in &self.slow {
            rows.push(json!({
                "kind": "slow_reader",
                "mechanism": "filemap",
                "payload_bytes": r.payload,
                "reads": r.read.count,
                "read_alone_ns": r.copy_ns,
                "read_median_ns": r.read.median,
                "read_p99_ns": r.read.p99,
                "read_max_ns": r.read.max,
                "read_min_ns": r.read.min,
                "publishes": r.publish.count,
                "publish_median_ns": r.publish.median,
                "publish_p99_ns": r.publish.p99,
                "publish_max_ns": r.publish.max,
                "read_over_publish": r.ratio(),
                "read_max_over_publish": r.max_ratio(),
                "bound_ns": r.bound_ns(),
                "reads_over_bound": r.over_bound(),
                "read_ns": r.reads_ns,
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        self.throughput_md(md);
        self.slow_reader_md(md);
    }
}

impl Measured {
    fn throughput_md(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str(
            "### Throughput (free-running writer, one blocking watcher, two processes)\n\n",
        );
        md.push_str("| payload | writes/s | watcher reads/s | seen | write GiB/s | read GiB/s | memcpy GiB/s |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} |",
                bytes(r.payload),
                r.writes_per_s(),
                r.reads_per_s(),
                100.0 * r.seen_fraction(),
                r.write_gib_per_s(),
                r.read_gib_per_s(),
                r.memcpy_gib_per_s(),
            );
        }
        md.push('\n');
    }

    fn slow_reader_md(&self, md: &mut String) {
        if self.slow.is_empty() {
            return;
        }
        md.push_str("### Slow reader (writer publishing back to back; reader: `read_into`, then as long again processing)\n\n");
        md.push_str(
            "Read = one `read_into` under the writer; alone = the same reader's fastest of five \
             `read_into` with no writer (its processing after each read lasts as long). \
             Ratios are to the median publish. Bound = 3 × alone + median publish: two spoiled \
             copies, one publish to wait out and its own copy.\n\n",
        );
        md.push_str("| payload | reads | read median | read p99 | read max | read alone | publishes | publish median | publish p99 | read / publish | max read / publish | reads over bound |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.slow {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {} of {} |",
                bytes(r.payload),
                r.read.count,
                ns(r.read.median as f64),
                ns(r.read.p99 as f64),
                ns(r.read.max as f64),
                ns(r.copy_ns),
                r.publish.count,
                ns(r.publish.median as f64),
                ns(r.publish.p99 as f64),
                r.ratio(),
                r.max_ratio(),
                r.over_bound(),
                r.read.count,
            );
        }
        md.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slow_reader_rows_show_latency_against_publish_time() {
        let summary = |median: u64, max: u64| Summary {
            count: 10,
            min: median / 2,
            median,
            p99: max,
            p999: max,
            max,
            mean: median as f64,
        };
        let r = Measured {
            rows: Vec::new(),
            slow: vec![SlowRow {
                payload: 64 << 20,
                copy_ns: 12e6,
                read: summary(30_000_000, 45_000_000),
                reads_ns: vec![30_000_000; 9]
                    .into_iter()
                    .chain([52_000_000])
                    .collect(),
                publish: summary(15_000_000, 16_000_000),
            }],
        };
        let mut md = String::new();
        r.markdown(&mut md);
        assert!(
            md.contains("| 64 MiB | 10 | 30.00 ms | 45.00 ms | 45.00 ms | 12.00 ms | 10 | 15.00 ms | 16.00 ms | 2.00× | 3.00× | 1 of 10 |"),
            "{md}"
        );
        assert!(!md.contains("### Throughput"), "{md}");
        let mut rows = Vec::new();
        r.json(&mut rows);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row["kind"], "slow_reader");
        assert_eq!(row["read_median_ns"], 30_000_000);
        assert_eq!(row["publish_median_ns"], 15_000_000);
        assert_eq!(row["read_over_publish"], 2.0);
        assert_eq!(row["bound_ns"], 51e6);
        assert_eq!(row["reads_over_bound"], 1);
        assert_eq!(row["read_ns"].as_array().unwrap().len(), 10);
    }
}
