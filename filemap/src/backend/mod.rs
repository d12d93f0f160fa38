//! The operating-system seam: one whole implementation per OS.
//!
//! Everything above this module is platform-free: the public API
//! (`region.rs`), the publish/read protocol over a validated header
//! (`protocol.rs`), the attach table (`attach.rs`), the robust lock over a
//! wait-on-address word (`lock.rs`) and the change notification
//! (`notify.rs`). What really differs between operating systems sits
//! below, behind the [`Backend`] trait: how a region is named, opened,
//! created and attached; how its lifetime ends; how the lock is taken and
//! released; how a thread sleeps and is woken; how regions are listed,
//! inspected and removed; and what a process or thread id means.
//!
//! One backend is chosen here, at a single `cfg_attr(path)`, the way
//! memmap2 picks `unix.rs` or `windows.rs`; each folder is a whole
//! implementation and adding an OS means adding one folder:
//!
//! | folder       | targets                                   | lifetime        | lock               | wait / wake                  |
//! |--------------|-------------------------------------------|-----------------|--------------------|------------------------------|
//! | `linux/`     | Linux                                     | `flock(2)`      | futex word (thread)| `futex(2)`                   |
//! | `posix/`     | macOS, FreeBSD; Linux with the cargo feature `posix-backend` | attach table + lifetime word | futex word (process) | per OS: futex, `_umtx_op`, `os_sync_wait_on_address` / `__ulock_wait` |
//! | `windows/`   | Windows                                   | kernel sections | named mutex        | named semaphore per slot     |
//! | `stub.rs`    | anything else: every call is `Unsupported`| -               | -                  | -                            |
//!
//! `unix/` holds what the Unix backends share (the mapping, `fstat`
//! checks, the fork epoch) and the Linux kernel facilities (futex, `/proc`)
//! that both `linux/` and `posix/`'s Linux build use.
//!
//! OS `cfg`s elsewhere are few, each for a reason: `lib.rs` quiets the
//! unreachable code of the stub targets; `lock.rs` is unused on Windows
//! (a kernel mutex), which it says once, and its `Failed` error is made on
//! Windows only; `copy/tests.rs` maps guard pages with Linux calls.
//! (`copy.rs` picks the x86-64 assembly copy by architecture, not OS.)
//! Tests that poke backing files or need `/proc`, `fork` or signals are
//! gated inside `filemap/tests`, and the few that check one backend's own
//! mechanism (the Linux `flock`) by the `posix-backend` feature.
//!
//! The one generic conformance suite is the library's test suite
//! (`filemap/tests`): it drives the public API only, so it runs unchanged
//! against whichever backend the build selected.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::attach::Process;
use crate::error::{Error, NameRule, Result};
use crate::info::RegionInfo;
use crate::layout::Header;
use crate::lock::LockError;
use crate::notify::Wake;
use crate::protocol::View;

#[cfg_attr(
    all(target_os = "linux", not(feature = "posix-backend")),
    path = "linux/mod.rs"
)]
#[cfg_attr(windows, path = "windows/mod.rs")]
#[cfg_attr(
    any(
        target_os = "macos",
        target_os = "freebsd",
        all(target_os = "linux", feature = "posix-backend")
    ),
    path = "posix/mod.rs"
)]
#[cfg_attr(
    not(any(
        target_os = "linux",
        target_os = "macos",
        target_os = "freebsd",
        windows
    )),
    path = "stub.rs"
)]
mod os;

#[cfg(unix)]
pub(crate) mod unix;

pub(crate) use os::Os;

/// Longest region name in bytes: what the backing object's name allows
/// (Linux: the 255-byte file-name limit less the `filemap.` prefix;
/// macOS and FreeBSD: the same limit on the registry entry
/// `filemap.<name>`; Windows: the longest kernel object name filemap
/// makes, `Global\filemap.<name>.wake.<pid>.<slot>`, within `MAX_PATH`).
pub const MAX_NAME_LEN: usize = <Os as Backend>::MAX_NAME_LEN;

/// Check a region name against the naming rules.
///
/// # Errors
/// [`Error::InvalidName`] naming the rule the name breaks.
pub fn validate_name(name: &str) -> Result<()> {
    let rule = if name.is_empty() {
        Some(NameRule::Empty)
    } else if name.len() > MAX_NAME_LEN {
        Some(NameRule::TooLong {
            len: name.len(),
            max: MAX_NAME_LEN,
        })
    } else if name.contains(['/', '\\']) {
        Some(NameRule::Separator)
    } else if name.chars().any(char::is_control) {
        Some(NameRule::ControlCharacter)
    } else if name == "." || name == ".." {
        Some(NameRule::Dots)
    } else {
        None
    };
    match rule {
        Some(rule) => Err(Error::InvalidName {
            name: name.to_owned(),
            rule,
        }),
        None => Ok(()),
    }
}

/// What an open may do with an existing or missing region.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OpenMode {
    CreateOrAttach,
    CreateOnly,
    OpenOnly,
}

/// How an OS error maps onto `filemap::Error` beyond its `ErrorKind`;
/// each backend's `classify` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub(crate) enum ErrorClass {
    /// No room in the backing store.
    OutOfSpace,
    /// A symbolic link (or other reparse point) was refused.
    Symlink,
    /// Not a regular file: a FIFO, socket, device or directory (what it is).
    #[cfg_attr(not(unix), allow(dead_code))]
    NotRegular(&'static str),
    Other,
}

/// What the caller of [`Backend::open`] asks for (a validated name and
/// capacity; the rest as the builder was configured).
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub name: &'a str,
    pub capacity: usize,
    pub mode: OpenMode,
    /// Unix permission bits (Windows gives its objects the default ACL).
    #[allow(dead_code)]
    pub permissions: u32,
    pub persistent: Option<bool>,
    pub path: Option<&'a Path>,
    /// Bounds waits for other processes during the open (the Unix
    /// lifetime locks).
    #[allow(dead_code)]
    pub lock_timeout: Duration,
    /// Windows' `Global\` namespace; other systems have one namespace.
    #[allow(dead_code)]
    pub global: bool,
}

/// An opened region: the backend's handle (mapping and OS objects), with
/// its header validated and an attach-table slot claimed.
pub(crate) struct Opened<B> {
    pub os: B,
    /// The backing file or object name shown to users.
    pub path: PathBuf,
    /// The validated capacity, trusted by this handle from now on.
    pub capacity: usize,
    pub existed: bool,
    /// The claimed attach-table slot.
    pub slot: usize,
}

/// One operating system's whole implementation of a region.
///
/// A value is one open handle: the mapping and whatever OS objects the
/// handle keeps (a file descriptor, a kernel mutex, wake semaphores).
pub(crate) trait Backend: Wake + Process + Sized + Send + Sync + 'static {
    /// Longest region name in bytes.
    const MAX_NAME_LEN: usize;

    /// The backing file (or kernel object name) of region `name`.
    fn shm_path(name: &str) -> PathBuf;

    /// Create or attach to a region; the returned handle's header is
    /// validated and its attach-table slot claimed.
    fn open(req: &Request<'_>) -> Result<Opened<Self>>;

    /// The region's header (the start of the mapping).
    fn header(&self) -> &Header;

    /// The region's protocol view: the mapping with its validated
    /// capacity.
    fn view(&self) -> View<'_>;

    /// Take the region lock for the calling thread. `Ok(true)` when the
    /// previous owner died holding it.
    fn lock(&self, timeout: Duration) -> std::result::Result<bool, LockError>;

    /// Release the lock the calling thread took; `false` if it was not
    /// ours any more.
    fn unlock(&self) -> bool;

    /// Release the lock taken by thread `tid` of this process, from
    /// another thread (an owned guard dropped elsewhere), where the OS
    /// allows it.
    fn unlock_for(&self, tid: u32);

    /// Whether the region's name no longer leads to this region.
    fn is_removed(&self) -> bool;

    /// Whether the backing file shrank under the mapping, which then holds
    /// zero pages of this process's own (`unix/fault.rs`): the handle must
    /// not be used again. Windows sections cannot shrink.
    #[inline]
    fn is_lost(&self) -> bool {
        false
    }

    /// The backing file's size now (0 if unknown), for the error that
    /// reports a lost mapping.
    fn backing_size(&self) -> u64 {
        0
    }

    /// The handle is closing and its attach slot is already free: end the
    /// region's life if this was its last user and it is not persistent.
    fn close(&self);

    /// Introspect region `name` without attaching.
    fn inspect(name: &str) -> Result<RegionInfo>;

    /// Every region on the host this backend can find.
    fn list() -> Result<Vec<(String, Result<RegionInfo>)>>;

    /// Remove region `name`'s name.
    fn remove(name: &str) -> Result<()>;

    /// Remove every stale region; their names.
    fn clean_stale() -> Result<Vec<String>>;

    /// This thread's id, as [`Backend::unlock_for`] takes it.
    fn tid() -> u32;

    /// Bumped in a child by every `fork`: a handle opened at another epoch
    /// is a forked copy.
    fn fork_epoch() -> u32;

    /// CPUs the machine has online, whatever this thread's affinity. The
    /// adaptive wait's spinner limit is about the machine's cores: a
    /// process pinned to one core (as latency-sensitive programs often
    /// are) must still be allowed to spin on it. `available_parallelism`
    /// counts the affinity mask on Unix (1 for a pinned process), and the
    /// system's processors on Windows.
    fn online_cpus() -> usize {
        std::thread::available_parallelism().map_or(1, |n| n.get())
    }

    /// How an OS error maps onto [`Error`] beyond its kind.
    fn classify(e: &io::Error) -> ErrorClass;
}

/// Turn an OS error from operation `op` on region `name` (at `path`) into
/// an [`Error`].
pub(crate) fn io_error(name: &str, path: &Path, op: &'static str, e: io::Error) -> Error {
    use std::io::ErrorKind;
    let shown = || path.display().to_string();
    match Os::classify(&e) {
        ErrorClass::OutOfSpace => {
            return Error::OutOfSpace {
                name: name.to_owned(),
                needed: 0,
            }
        }
        // A symlink planted at the region's path was refused.
        ErrorClass::Symlink => {
            return Error::NotARegion {
                path: shown(),
                reason: "it is a symbolic link",
            }
        }
        ErrorClass::NotRegular(reason) => {
            return Error::NotARegion {
                path: shown(),
                reason,
            }
        }
        ErrorClass::Other => {}
    }
    match e.kind() {
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            name: name.to_owned(),
            path: shown(),
        },
        ErrorKind::Unsupported => Error::Unsupported,
        _ => Error::Io {
            op,
            name: name.to_owned(),
            source: e,
        },
    }
}

/// As [`io_error`], with the size that did not fit in an out-of-space error.
pub(crate) fn space_error(
    name: &str,
    path: &Path,
    op: &'static str,
    e: io::Error,
    needed: u64,
) -> Error {
    match io_error(name, path, op, e) {
        Error::OutOfSpace { name, .. } => Error::OutOfSpace { name, needed },
        other => other,
    }
}

/// `path` is too short to hold a filemap header.
pub(crate) fn too_small(path: &Path) -> Error {
    Error::NotARegion {
        path: path.display().to_string(),
        reason: "it is smaller than a filemap header",
    }
}

/// A stable 64-bit hash (for object names derived from region names or
/// file paths):
/// FNV-1a over the UTF-8 bytes. Every process must compute the same name
/// for the same file, whatever toolchain built it, so this is a fixed
/// algorithm, not `DefaultHasher` (whose output the standard library may
/// change between releases: processes built by two Rust versions would
/// then use two different lock mutexes for one file).
#[cfg_attr(target_os = "linux", allow(dead_code))]
pub(crate) fn hash_name(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The directory holding `path` (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}
