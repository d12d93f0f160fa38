//! Open, attach and close cost, in process, next to bare POSIX shared
//! memory doing the least: `shm_open` + `ftruncate` + `mmap` + `munmap` +
//! `close` + `shm_unlink` (create), `shm_open` + `fstat` + `mmap` +
//! `munmap` + `close` (attach). The bare mapping has the same size as the
//! region's (header + two buffers). Note that filemap's create also
//! reserves the pages (`fallocate`), so it pays for zeroing them up front
//! where the bare object pays on first touch, if ever.

#![forbid(unsafe_code)]

use std::time::Duration;

use anyhow::Result;
use filemap::FileMap;

use crate::cli::Mode;
use crate::harness::Namespace;
use crate::sys::{self, Shm};
use crate::timing::per_call;

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
