//! In-process cost of publishing and reading, next to cloudflare's
//! mmap-sync doing the same job (one writer, readers of a mapped file,
//! both on tmpfs) and a plain memcpy of the same size.
//!
//! filemap `read_into` copies the content into a private buffer; mmap-sync
//! `read` is zero-copy (it hands out a guarded reference into the mapping),
//! so it is shown both bare and followed by the same copy. mmap-sync
//! `write` serialises the value with rkyv, validates it, checksums it and
//! `msync`s; that is its publish path.

use std::fmt::Write as _;
use std::hint::black_box;
use std::time::Duration;

use anyhow::{anyhow, Context, Result};
use filemap::FileMap;
use mmap_sync::synchronizer::Synchronizer;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::{Msg, Namespace};
use crate::report::Target;
use crate::suite::{self, Report, Suite};
use crate::timing::per_call;
use crate::units::{bytes, ns};

/// One in-process timing.
#[derive(Debug, Clone)]
pub struct Row {
    /// `write`, `read`, `read+copy`, `write+read`, `memcpy`.
    pub op: &'static str,
    /// `filemap`, `mmap-sync` or `memcpy`.
    pub implementation: &'static str,
    pub payload: usize,
    pub ns_per_op: f64,
}

pub fn sizes(mode: Mode) -> Vec<usize> {
    let mut sizes = vec![64, 4 << 10, 64 << 10, 1 << 20];
    if mode != Mode::Smoke {
        sizes.push(4 << 20);
    }
    sizes
}

/// Rounds of the copy rows (`memcpy`, `memcpy alt`, filemap `write` and
/// `read`), alternated within each size so that a burst of noise from other
/// processes hits all four; each row is its median round.
const ROUNDS: usize = 5;

/// The memcpy baseline whose destination alternates between two buffers,
/// as a publish does (a region has two buffers and a write fills the one
/// readers are not on): the cache footprint of `write` (source + two
/// buffers), where `memcpy` has that of `read_into` (one buffer + one
/// private buffer).
pub const MEMCPY_ALT: &str = "memcpy alt";

const BATCH: Duration = Duration::from_micros(500);

/// The op of the C ABI comparison rows (payload [`ABI_PAYLOAD`]).
pub const ABI_OP: &str = "abi write+read";
/// Payload of the C ABI comparison: small, so the per-call overhead shows.
pub const ABI_PAYLOAD: usize = 8;

/// `fm_write` + `fm_read` through filemap-ffi's C ABI against
/// `write` + `read_into` from Rust, same handles, same run. Three rounds,
/// alternating, each side's median round reported, so drift hits both.
fn abi_overhead(ns: &Namespace, samples: usize, rows: &mut Vec<Row>) -> Result<()> {
    use filemap_ffi::{fm_close, fm_open, fm_read, fm_write, FmMap, FM_OK};
    let name = ns.name("abi");
    let writer = FileMap::builder(&name)
        .capacity(filemap::MIN_CAPACITY)
        .create_only()
        .open()
        .with_context(|| format!("creating {name}"))?;
    let reader = FileMap::builder(&name).open_only().open()?;
    let c_name = std::ffi::CString::new(name.clone())?;
    let (mut c_writer, mut c_reader): (*mut FmMap, *mut FmMap) =
        (std::ptr::null_mut(), std::ptr::null_mut());
    // SAFETY: a valid C string and out-pointers; each handle closed below.
    let opened = unsafe {
        (
            fm_open(c_name.as_ptr(), 0, 0, &mut c_writer),
            fm_open(c_name.as_ptr(), 0, 0, &mut c_reader),
        )
    };
    anyhow::ensure!(opened == (FM_OK, FM_OK), "fm_open failed: {opened:?}");
    let msg = [7u8; ABI_PAYLOAD];
    let mut buf = Vec::with_capacity(64);
    let mut c_buf = [0u8; 64];
    let (mut rust, mut c) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        rust.push(per_call(samples, BATCH, || {
            writer.write(black_box(&msg))?;
            reader.read_into(&mut buf)?;
            black_box(&mut buf);
            Ok(())
        })?);
        c.push(per_call(samples, BATCH, || {
            let mut len = 0usize;
            // SAFETY: live handles, `msg` and `c_buf` valid for their lengths.
            let status = unsafe {
                (
                    fm_write(
                        c_writer,
                        black_box(msg.as_ptr()),
                        msg.len(),
                        std::ptr::null_mut(),
                    ),
                    fm_read(
                        c_reader,
                        c_buf.as_mut_ptr(),
                        c_buf.len(),
                        &mut len,
                        std::ptr::null_mut(),
                    ),
                )
            };
            anyhow::ensure!(status == (FM_OK, FM_OK), "C ABI call failed: {status:?}");
            black_box(&mut c_buf);
            Ok(())
        })?);
    }
    // SAFETY: the handles from fm_open above, each closed once.
    unsafe {
        fm_close(c_writer);
        fm_close(c_reader);
    }
    for (implementation, mut runs) in [("filemap", rust), ("C ABI", c)] {
        let ns_per_op = crate::stats::median_f64(&mut runs);
        eprintln!(
            "  {implementation:<9} {ABI_OP:<15} {ABI_PAYLOAD:>3} B  {:>10}/op",
            crate::units::ns(ns_per_op)
        );
        rows.push(Row {
            op: ABI_OP,
            implementation,
            payload: ABI_PAYLOAD,
            ns_per_op,
        });
    }
    Ok(())
}

pub fn run(ns: &Namespace, mode: Mode) -> Result<Vec<Row>> {
    let samples = mode.samples();
    let mut rows = Vec::new();
    abi_overhead(ns, samples, &mut rows)?;
    for payload in sizes(mode) {
        let mut row = |op, implementation, ns_per_op: f64| {
            eprintln!(
                "  {implementation:<9} {op:<10} {payload:>8} B  {:>10}/op",
                crate::units::ns(ns_per_op)
            );
            rows.push(Row {
                op,
                implementation,
                payload,
                ns_per_op,
            });
        };
        let msg = Msg::new(payload);
        let mut buf = crate::harness::buffer(payload);

        // The copy rows, alternated round by round (see ROUNDS).
        let mut storage = [Vec::new(), Vec::new()];
        let [a, b] = &mut storage;
        let mut dsts = [
            crate::timing::page_aligned(a, payload),
            crate::timing::page_aligned(b, payload),
        ];

        // filemap: a writer handle and a reader handle on one region.
        let name = ns.name("inproc");
        let writer = FileMap::builder(&name)
            .capacity(payload.max(filemap::MIN_CAPACITY))
            .create_only()
            .open()
            .with_context(|| format!("creating {name}"))?;
        let reader = FileMap::builder(&name).open_only().open()?;
        writer.write(msg.bytes())?;
        let mut timed: [Vec<f64>; 4] = Default::default();
        for _ in 0..ROUNDS {
            timed[0].push(per_call(samples, BATCH, || {
                dsts[0].copy_from_slice(black_box(msg.bytes()));
                black_box(&mut *dsts[0]);
                Ok(())
            })?);
            let mut next = 0;
            timed[1].push(per_call(samples, BATCH, || {
                let dst = &mut *dsts[next];
                next ^= 1;
                dst.copy_from_slice(black_box(msg.bytes()));
                black_box(dst);
                Ok(())
            })?);
            timed[2].push(per_call(samples, BATCH, || {
                writer.write(black_box(msg.bytes()))?;
                Ok(())
            })?);
            timed[3].push(per_call(samples, BATCH, || {
                reader.read_into(&mut buf)?;
                black_box(&mut buf);
                Ok(())
            })?);
        }
        let [t_memcpy, t_alt, t_write, t_read] = &mut timed;
        row("memcpy", "memcpy", crate::stats::median_f64(t_memcpy));
        row(MEMCPY_ALT, "memcpy", crate::stats::median_f64(t_alt));
        row("write", "filemap", crate::stats::median_f64(t_write));
        row("read", "filemap", crate::stats::median_f64(t_read));
        row(
            "write+read",
            "filemap",
            per_call(samples, BATCH, || {
                writer.write(black_box(msg.bytes()))?;
                reader.read_into(&mut buf)?;
                black_box(&mut buf);
                Ok(())
            })?,
        );
        drop((writer, reader));

        // mmap-sync: its files live on tmpfs too.
        let prefix = std::path::Path::new("/dev/shm").join(ns.name("mmapsync"));
        let mut writer = Synchronizer::new(prefix.as_os_str());
        let mut reader = Synchronizer::new(prefix.as_os_str());
        let value: Vec<u8> = msg.bytes().to_vec();
        let grace = Duration::from_secs(1);
        let ms = |e: mmap_sync::synchronizer::SynchronizerError| anyhow!("mmap-sync: {e}");
        writer.write(&value, grace).map_err(ms)?;
        row(
            "write",
            "mmap-sync",
            per_call(samples, BATCH, || {
                writer.write(black_box(&value), grace).map_err(ms)?;
                Ok(())
            })?,
        );
        row(
            "read",
            "mmap-sync",
            per_call(samples, BATCH, || {
                // SAFETY: mmap-sync's contract: the guard is dropped at
                // once, long before the writer's one-second grace period
                // could let it reuse the data file.
                let guard = unsafe { reader.read::<Vec<u8>>(false) }.map_err(ms)?;
                black_box(guard.len());
                Ok(())
            })?,
        );
        row(
            "read+copy",
            "mmap-sync",
            per_call(samples, BATCH, || {
                // SAFETY: as above; the copy ends before the guard drops.
                let guard = unsafe { reader.read::<Vec<u8>>(false) }.map_err(ms)?;
                buf.clear();
                buf.extend_from_slice(black_box(&guard[..]));
                black_box(&mut buf);
                Ok(())
            })?,
        );
        row(
            "write+read",
            "mmap-sync",
            per_call(samples, BATCH, || {
                writer.write(black_box(&value), grace).map_err(ms)?;
                // SAFETY: as above.
                let guard = unsafe { reader.read::<Vec<u8>>(false) }.map_err(ms)?;
                buf.clear();
                buf.extend_from_slice(&guard[..]);
                black_box(&mut buf);
                Ok(())
            })?,
        );
        drop((writer, reader));
        for suffix in ["_state", "_data_0", "_data_1"] {
            let mut path = prefix.clone().into_os_string();
            path.push(suffix);
            let _ = std::fs::remove_file(path);
        }
    }
    Ok(rows)
}

/// The suite: filemap against mmap-sync and memcpy, and the C ABI against Rust, in process.
pub const SUITE: Suite = Suite {
    name: "inproc",
    run: run_suite,
    children: &[],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("in-process read/write:");
    let rows = suite::rows_or_none(run(ns, args.mode), fail);
    Box::new(Measured { rows })
}

/// What the suite measured.
#[derive(Debug, Clone, Default)]
pub struct Measured {
    pub rows: Vec<Row>,
}

impl Measured {
    fn ns_of(&self, implementation: &str, op: &str, payload: usize) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.implementation == implementation && r.op == op && r.payload == payload)
            .map(|r| r.ns_per_op)
    }
}

impl Report for Measured {
    fn json(&self, rows: &mut Vec<Value>) {
        for r in &self.rows {
            rows.push(json!({
                "kind": "inproc",
                "implementation": r.implementation,
                "op": r.op,
                "payload_bytes": r.payload,
                "ns_per_op": r.ns_per_op,
                "gib_per_s": crate::timing::gib_per_s(r.payload, r.ns_per_op),
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str("### In-process cost per call (vs cloudflare mmap-sync)\n\n");
        md.push_str("| payload | filemap write | filemap read_into | filemap write+read | mmap-sync write | mmap-sync read (zero-copy) | mmap-sync read+copy | mmap-sync write+read | memcpy | memcpy, alternating destinations |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut sizes: Vec<usize> = self
            .rows
            .iter()
            .filter(|r| r.op != ABI_OP)
            .map(|r| r.payload)
            .collect();
        sizes.dedup();
        for p in sizes {
            let cell = |i, op| self.ns_of(i, op, p).map_or("–".to_owned(), ns);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                bytes(p),
                cell("filemap", "write"),
                cell("filemap", "read"),
                cell("filemap", "write+read"),
                cell("mmap-sync", "write"),
                cell("mmap-sync", "read"),
                cell("mmap-sync", "read+copy"),
                cell("mmap-sync", "write+read"),
                cell("memcpy", "memcpy"),
                cell("memcpy", MEMCPY_ALT),
            );
        }
        md.push('\n');
        if let (Some(c), Some(rust)) = (
            self.ns_of("C ABI", ABI_OP, ABI_PAYLOAD),
            self.ns_of("filemap", ABI_OP, ABI_PAYLOAD),
        ) {
            md.push_str("### C ABI per-call overhead (filemap-ffi)\n\n");
            md.push_str(
                "| payload | Rust write + read_into | C ABI fm_write + fm_read | ratio |\n",
            );
            md.push_str("|---:|---:|---:|---:|\n");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2}x |\n",
                bytes(ABI_PAYLOAD),
                ns(rust),
                ns(c),
                c / rust
            );
        }
    }

    fn targets(&self, out: &mut Vec<Target>) {
        // The copies against memcpy with the same cache footprint: a
        // publish against the alternating memcpy, a read against the plain
        // one (it copies one buffer into one private buffer every time).
        let copies = [
            ("write", MEMCPY_ALT, 1 << 20, 1.1),
            ("write", MEMCPY_ALT, 4 << 20, 1.1),
            ("read", "memcpy", 1 << 20, 1.1),
            ("read", "memcpy", 4 << 20, 1.1),
            ("read", "memcpy", 4 << 10, 1.3),
        ];
        for (op, baseline, payload, limit) in copies {
            if let (Some(ours), Some(base)) = (
                self.ns_of("filemap", op, payload),
                self.ns_of("memcpy", baseline, payload),
            ) {
                let op = if op == "read" { "read_into" } else { op };
                out.push(Target {
                    name: format!("{op} / {baseline} (same cache footprint)"),
                    payload: Some(payload),
                    ratio: ours / base,
                    limit,
                    at_least: false,
                    unit: "×",
                });
            }
        }
        if let (Some(wr), Some(mc)) = (
            self.ns_of("filemap", "write+read", 1 << 20),
            self.ns_of("memcpy", "memcpy", 1 << 20),
        ) {
            out.push(Target {
                name: "1 MiB write+read bandwidth / memcpy bandwidth".to_owned(),
                payload: Some(1 << 20),
                ratio: mc / wr,
                limit: 0.8,
                at_least: true,
                unit: "×",
            });
        }
        if let (Some(c), Some(rust)) = (
            self.ns_of("C ABI", ABI_OP, ABI_PAYLOAD),
            self.ns_of("filemap", ABI_OP, ABI_PAYLOAD),
        ) {
            out.push(Target {
                name: "C ABI fm_write+fm_read / Rust write+read_into".to_owned(),
                payload: Some(ABI_PAYLOAD),
                ratio: c / rust,
                limit: 1.1,
                at_least: false,
                unit: "×",
            });
        }
        if let (Some(ours), Some(theirs)) = (
            self.ns_of("filemap", "read", 64),
            self.ns_of("mmap-sync", "read", 64),
        ) {
            out.push(Target {
                name: "read_into 64 B / mmap-sync read 64 B".to_owned(),
                payload: Some(64),
                ratio: ours / theirs,
                limit: 1.0,
                at_least: false,
                unit: "×",
            });
        }
    }
}
