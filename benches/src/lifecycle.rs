//! Open, attach and close cost, in process, next to bare POSIX shared
//! memory doing the least: `shm_open` + `ftruncate` + `mmap` + `munmap` +
//! `close` + `shm_unlink` (create), `shm_open` + `fstat` + `mmap` +
//! `munmap` + `close` (attach). The bare mapping has the same size as the
//! region's (header + two buffers). Note that filemap's create also
//! reserves the pages (`fallocate`), so it pays for zeroing them up front
//! where the bare object pays on first touch, if ever.

#![forbid(unsafe_code)]

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Result;
use filemap::FileMap;
use serde_json::{json, Value};

use crate::cli::{Args, Mode};
use crate::harness::Namespace;
use crate::suite::{self, Report, Suite};
use crate::sys::{self, Shm};
use crate::timing::per_call;
use crate::units::{bytes, ns};

#[derive(Debug, Clone)]
pub struct Row {
    /// `create+close` or `attach+close`.
    pub op: &'static str,
    /// `filemap` or `bare-shm`.
    pub implementation: &'static str,
    pub capacity: usize,
    pub ns_per_op: f64,
}

pub fn run(ns: &Namespace, mode: Mode) -> Result<Vec<Row>> {
    let samples = (mode.samples() / 2).max(3);
    let batch = Duration::from_millis(2);
    let mut rows = Vec::new();
    for capacity in [4096usize, 1 << 20] {
        let size = 4096 + 2 * capacity;
        let mut row = |op, implementation, ns_per_op: f64| {
            eprintln!(
                "  {implementation:<9} {op:<13} capacity {capacity:>8} B  {:>10}/op",
                crate::units::ns(ns_per_op)
            );
            rows.push(Row {
                op,
                implementation,
                capacity,
                ns_per_op,
            });
        };
        let name = ns.name("life");
        row(
            "create+close",
            "filemap",
            per_call(samples, batch, || {
                drop(
                    FileMap::builder(&name)
                        .capacity(capacity)
                        .create_only()
                        .open()?,
                );
                Ok(())
            })?,
        );
        let holder = FileMap::builder(&name)
            .capacity(capacity)
            .create_only()
            .open()?;
        row(
            "attach+close",
            "filemap",
            per_call(samples, batch, || {
                drop(FileMap::builder(&name).open_only().open()?);
                Ok(())
            })?,
        );
        drop(holder);

        let bare = ns.name("bare");
        row(
            "create+close",
            "bare-shm",
            per_call(samples, batch, || Ok(sys::bare_cycle(&bare, size, true)?))?,
        );
        let holder = Shm::create(&bare, size)?;
        row(
            "attach+close",
            "bare-shm",
            per_call(samples, batch, || Ok(sys::bare_cycle(&bare, size, false)?))?,
        );
        drop(holder);
    }
    Ok(rows)
}

/// The suite: create, attach and close, filemap against a bare shared-memory object.
pub const SUITE: Suite = Suite {
    name: "lifecycle",
    run: run_suite,
    children: &[],
};

fn run_suite(ns: &Namespace, args: &Args, fail: &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report> {
    eprintln!("open/attach/close:");
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
                "kind": "lifecycle",
                "implementation": r.implementation,
                "op": r.op,
                "capacity_bytes": r.capacity,
                "ns_per_op": r.ns_per_op,
            }));
        }
    }

    fn markdown(&self, md: &mut String) {
        if self.rows.is_empty() {
            return;
        }
        md.push_str("### Open / attach / close (in process)\n\n");
        md.push_str("| capacity | filemap create+close | bare shm create+close | filemap attach+close | bare shm attach+close |\n");
        md.push_str("|---:|---:|---:|---:|---:|\n");
        let mut caps: Vec<usize> = self.rows.iter().map(|r| r.capacity).collect();
        caps.dedup();
        for c in caps {
            let cell = |i: &str, op: &str| {
                self.rows
                    .iter()
                    .find(|r| r.capacity == c && r.implementation == i && r.op == op)
                    .map_or("–".to_owned(), |r| ns(r.ns_per_op))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                bytes(c),
                cell("filemap", "create+close"),
                cell("bare-shm", "create+close"),
                cell("filemap", "attach+close"),
                cell("bare-shm", "attach+close"),
            );
        }
        md.push('\n');
    }
}
