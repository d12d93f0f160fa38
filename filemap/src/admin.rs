//! Functions on regions by name, without a handle: what a management
//! tool does (`filemap ls`, `rm`, `clean`), the rules a name must
//! follow, the sizes tools accept ([`parse_size`]), and being told when
//! a region's name appears or goes away ([`NameWatch`], [`Alarm`]). A
//! region's own handle is [`FileMap`](crate::FileMap).

#![forbid(unsafe_code)]

use std::path::PathBuf;

use crate::backend::{Backend, Os};
use crate::error::Result;
use crate::info::RegionInfo;

pub use crate::backend::{validate_name, MAX_NAME_LEN};
pub use crate::names::{Alarm, NameWatch};
pub use crate::size::{parse_size, ParseSizeError};

/// Path of the shared-memory object backing region `name`. On Windows
/// this is the kernel object name `Local\filemap.<name>`, not a file.
pub fn shm_path(name: &str) -> PathBuf {
    Os::shm_path(name)
}

/// Introspect region `name` without attaching to it.
///
/// # Errors
/// As [`Builder::open`](crate::Builder::open) with `open_only`.
pub fn inspect(name: &str) -> Result<RegionInfo> {
    validate_name(name)?;
    Os::inspect(name)
}

/// Every shared-memory region on this host, each with its info or the
/// error that prevented reading it (permissions, corruption...).
///
/// Windows cannot enumerate kernel object names cheaply, so there this
/// lists a registry kept by filemap in `%LOCALAPPDATA%\filemap`
/// (persistent regions' files and a marker per live region; best effort,
/// `Local\` namespace only); a marker whose section is gone is reported
/// stale. macOS and FreeBSD (the `posix` backend) cannot list their
/// shared-memory objects either: there this lists the per-user registry
/// `$TMPDIR/filemap-<uid>` in the same way.
///
/// # Errors
/// [`Error::Io`](crate::Error::Io) when the shared-memory directory cannot
/// be listed.
pub fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
    Os::list()
}

/// Remove region `name`'s name now. Processes attached keep their
/// mapping; new opens create a new region.
///
/// Windows: deletes a persistent region's file (and a stale registry
/// entry). The section itself stays reachable by name until its last
/// handle closes, so opens meanwhile attach to the old region; a live
/// non-persistent region cannot be removed, it goes with its last handle.
///
/// # Errors
/// [`Error::InvalidName`](crate::Error::InvalidName),
/// [`Error::NotFound`](crate::Error::NotFound),
/// [`Error::PermissionDenied`](crate::Error::PermissionDenied),
/// [`Error::Io`](crate::Error::Io).
pub fn remove(name: &str) -> Result<()> {
    validate_name(name)?;
    Os::remove(name)
}

/// Remove every stale region (non-persistent, no live process attached)
/// and return their names. (Windows: the registry entries of regions
/// whose users all died; the kernel removed the regions themselves.)
///
/// # Errors
/// As [`list`].
pub fn clean_stale() -> Result<Vec<String>> {
    Os::clean_stale()
}
