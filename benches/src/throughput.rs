//! Throughput: a writer process publishes as fast as it can for a fixed
//! time while one watcher process (blocking `wait_change` + `read_into`)
//! keeps up as well as it can. Reports writes/s, the watcher's reads/s and
//! the share of generations it saw, and bytes/s next to a plain memcpy of
//! the same size.

#![forbid(unsafe_code)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{anyhow, Context, Result};
use filemap::FileMap;

use crate::cli::Mode;
use crate::harness::{self, seq_of, ChildArgs, ChildProc, ChildStdinMode, Msg, Namespace, TIMEOUT};
use crate::sys;
use crate::timing::{gib_per_s, per_call};

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
        .capacity(payload.max(filemap::MIN_CAPACITY) as u64)
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
        map.wait_change(seen, Some(TIMEOUT))
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
