//! Introspection: [`RegionInfo`], what a region's header says of it.
//!
//! Read from memory any process may write: every value is bounded here
//! (a length by the validated capacity), never trusted.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::attach::{self, Process};
use crate::layout::Header;
use crate::snapshot::WriterId;

/// A snapshot of a region's header, for introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region name.
    pub name: String,
    /// The backing file.
    pub path: PathBuf,
    /// Capacity in bytes.
    pub capacity: usize,
    /// Length of the published content in bytes.
    pub len: usize,
    /// Current generation.
    pub generation: u64,
    /// Who published the current generation.
    pub last_writer: WriterId,
    /// Whether the region outlives its last handle.
    pub persistent: bool,
    /// Live processes attached (from the attach table).
    pub attached: Vec<u32>,
    /// Non-persistent and nobody attached: its users died without closing.
    /// The next open replaces it; [`admin::clean_stale`](crate::admin::clean_stale) removes it.
    pub stale: bool,
}

/// What [`FileMap::info`](crate::FileMap::info) and the backends'
/// `inspect` report of a region whose header was validated with capacity
/// `capacity`, its attached processes judged by `P`.
pub(crate) fn region_info<P: Process>(
    name: &str,
    path: &Path,
    h: &Header,
    capacity: usize,
) -> RegionInfo {
    let generation = h.line.generation.load(Acquire);
    let buffer = &h.line.buffers[(generation & 1) as usize];
    let len = buffer.len.load(Relaxed).min(capacity as u64) as usize;
    let persistent = h.is_persistent();
    let attached = attach::attached_pids::<P>(h);
    RegionInfo {
        name: name.to_owned(),
        path: path.to_owned(),
        capacity,
        len,
        generation,
        last_writer: WriterId::unpack(buffer.writer.load(Relaxed)),
        persistent,
        stale: !persistent && attached.is_empty(),
        attached,
    }
}
