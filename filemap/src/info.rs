//! Introspection: [`RegionInfo`], what a region's header says of it.
//!
//! Read from memory any process may write: every value is bounded here
//! (a length by the validated capacity), never trusted.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed};

use crate::attach::{self, Process};
use crate::layout::{current_capacity, Header};
use crate::snapshot::WriterId;

/// A snapshot of a region's header, for introspection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region name.
    pub name: String,
    /// The backing file.
    pub path: PathBuf,
    /// Capacity in bytes: the most content a publish carries without
    /// growing the region.
    pub capacity: usize,
    /// The most the capacity may grow to, in bytes (equal to `capacity`
    /// for a region that cannot grow).
    pub max_capacity: usize,
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
/// `inspect` report of a region whose header was validated with maximum
/// capacity `max_capacity`, its attached processes judged by `P`.
pub(crate) fn region_info<P: Process>(
    name: &str,
    path: &Path,
    h: &Header,
    max_capacity: usize,
) -> RegionInfo {
    let generation = h.line.generation.load(Acquire);
    let buffer = &h.line.buffers[(generation & 1) as usize];
    let capacity = current_capacity(h, max_capacity);
    let len = buffer.len.load(Relaxed).min(max_capacity as u64) as usize;
    let persistent = h.is_persistent();
    let attached = attach::attached_pids::<P>(h);
    RegionInfo {
        name: name.to_owned(),
        path: path.to_owned(),
        capacity,
        max_capacity,
        len,
        generation,
        last_writer: WriterId::unpack(buffer.writer.load(Relaxed)),
        persistent,
        stale: !persistent && attached.is_empty(),
        attached,
    }
}
