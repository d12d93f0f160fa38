//! Named shared-memory regions for inter-process communication on one host.
//!
//! Processes open a region by name, publish whole contents into it and
//! hear at once when another process published. Readers never block and
//! never see a half-written content; a writer killed mid-write loses nothing
//! that was published; a region scribbled over by a buggy peer gives errors,
//! never crashes.
//!
//! ```
//! use std::time::Duration;
//! use filemap::prelude::*;
//!
//! # fn main() -> filemap::Result<()> {
//! # let name = format!("doc-{}", std::process::id());
//! // Process A creates the region (or attaches if it exists).
//! let a = FileMap::builder(&name).capacity(4096).open()?;
//! assert!(!a.existed_already());
//!
//! // Process B (here: another handle) attaches to it.
//! let b = FileMap::open(&name)?;
//! assert!(b.existed_already());
//!
//! let seen = b.generation();
//! a.write_lines(["hello", "world"])?;
//!
//! // B sleeps until the content changes, then reads it.
//! let now = b.wait_change(seen, Wait::sleep().timeout(Duration::from_secs(5)))?;
//! let snap = b.read_lines()?;
//! assert_eq!(snap.content, ["hello", "world"]);
//! assert_eq!(snap.generation, now);
//! assert_eq!(snap.writer, a.writer_id());
//!
//! // Read-modify-write under the cross-process lock.
//! a.update(|text| text.extend_from_slice(b"!"))?;
//! assert_eq!(b.read_string()?.content, "hello\nworld!");
//! # Ok(()) }
//! // The region goes away when its last handle, in any process, closes.
//! ```
//!
//! Run `examples/writer.rs` and `examples/reader.rs` in two terminals to see
//! it across processes, or `filemap memo` for the shared notepad.
//!
//! # Guarantees
//!
//! A write replaces the whole content, and readers, which take no lock, see
//! the old or the new content, never a mix. A lock holder's death is
//! reported to the next taker ([`Published::owner_died`]) with the
//! published content intact. Impossible values in the region give errors
//! such as [`Error::Corrupted`], never a panic, an out-of-bounds read or an
//! endless wait. A region goes with its last handle unless it is
//! [persistent](Builder::persistent); one whose users all died is replaced
//! on the next open ([`admin::clean_stale`] removes it at once). How each
//! of these is kept, what it costs, and the known limits (`fork`,
//! truncation by another process, pid namespaces, threads) are written
//! once, in `docs/guarantees.md` of the repository.
//!
//! # Platforms
//!
//! Linux: all processes sharing a region must share a pid namespace (the
//! lock recognises dead owners by thread id).
//!
//! Windows (tested under Wine): regions are paging-file sections named
//! `Local\filemap.<name>` ([`Builder::global`] for `Global\`), the lock
//! is a named mutex, wake-ups go through a named semaphore per attached
//! handle. A section disappears with its last handle; persistent regions
//! keep their bytes in `%LOCALAPPDATA%\filemap`, where a registry of names
//! also serves [`admin::list`]. [`admin::remove`] deletes a persistent
//! region's file, but the region stays reachable by name while handles to
//! it are open. See `docs/platforms.md` in the repository.
//!
//! macOS and FreeBSD (the `posix` backend): regions are `shm_open` objects
//! named by a hash of the region name, whose header keeps the full name (a
//! different name there is [`Error::NameCollision`]); a per-user registry
//! of names serves [`admin::list`]. Built and lint-checked in CI, its
//! shared logic tested on Linux (cargo feature `posix-backend`), never run
//! on those systems. See `docs/platforms.md`.
//!
//! Other targets compile and return [`Error::Unsupported`].

// Every public item is documented; docs.rs shows which feature each needs.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]
// Targets without a backend get the stub, whose `open` always fails: the
// rest of the crate is unreachable there.
#![cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        windows
    )),
    allow(dead_code, unreachable_code)
)]

pub mod admin;
mod attach;
mod backend;
mod copy;
pub mod error;
mod handle;
mod info;
mod layout;
mod loan;
mod lock;
mod names;
mod notify;
mod protocol;
mod region;
mod size;
mod snapshot;
mod stall;
mod sync;
mod text;
#[cfg(feature = "serde")]
mod value;
mod wait;
mod watch;

pub use error::{Error, ErrorKind, NameRule, Result};
pub use info::RegionInfo;
pub use layout::{DEFAULT_CAPACITY, MAX_CAPACITY, MIN_CAPACITY};
pub use loan::WriteLoan;
pub use lock::DEFAULT_LOCK_TIMEOUT;
pub use region::{Builder, FileMap, Guard, OwnedGuard, ReadBuffer};
pub use snapshot::{Published, Snapshot, Stamp, Updated, WriterId};
pub use text::{RemoteChange, TextExt, TextView};
#[cfg(feature = "serde")]
pub use value::{
    default_tag, value_parts, Codec, ValueExt, ValueParts, MAX_JSON_DEPTH, VALUE_MAGIC,
};
pub use wait::{CancelToken, Strategy, Wait};

/// The copy path this process uses for contents of `len` bytes (`"sse2"`,
/// `"avx2"`, `"movsb"`, `"nt"`, `"neon"` or `"words"`), chosen once per
/// process from the CPU's features and cache size, or forced by the
/// `FILEMAP_COPY` environment variable. For benchmarks and diagnostics.
pub fn copy_path(len: usize) -> &'static str {
    copy::path_for(len).name()
}
pub use watch::Watcher;

/// What most programs use: `use filemap::prelude::*;` brings the handle,
/// its waits and the text (and, with `serde`, typed value) methods.
pub mod prelude {
    pub use crate::text::TextExt;
    #[cfg(feature = "serde")]
    pub use crate::value::ValueExt;
    pub use crate::wait::{CancelToken, Strategy, Wait};
    pub use crate::{Error, ErrorKind, FileMap, Result};
}

/// The Rust examples of the README and the guides, compiled and run as
/// doctests (`cargo test -p filemap --doc --features serde`), so that no
/// page shows code that does not build.
#[cfg(doctest)]
mod doc_examples {
    #[doc = include_str!("../../README.md")]
    mod readme {}
    #[doc = include_str!("../README.md")]
    mod crate_readme {}
    #[doc = include_str!("../../docs/growth.md")]
    mod growth {}
    #[cfg(feature = "serde")]
    #[doc = include_str!("../../docs/rust.md")]
    mod rust_guide {}
}
