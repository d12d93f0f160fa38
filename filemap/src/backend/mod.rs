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
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::time::Duration;

use crate::error::{Error, Result};
use crate::layout::{self, Header, FLAG_PERSISTENT, LAYOUT_VERSION, MAGIC};
use crate::lock::LockError;
use crate::protocol::View;
use crate::region::{OpenMode, RegionInfo, MAX_CAPACITY, MIN_CAPACITY};

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

/// What is known of a process (or thread) id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub(crate) enum Liveness {
    /// It runs; started at `start_time` (in the backend's own unit).
    Alive { start_time: u64 },
    /// No such process, or it has ended: proven gone.
    Dead,
    /// Could not tell (out of file descriptors, access denied...): treat
    /// as alive, so nobody's lock or slot is ever taken on a guess.
    Unknown,
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

/// Sleeping and waking on a region's notify word (see `notify.rs` for
/// the protocol these serve).
pub(crate) trait Wake {
    /// Before a thread first counts itself as a waiter: make what a
    /// publisher needs to wake it. `false` if that failed (the thread then
    /// polls).
    fn prepare(&self) -> bool {
        true
    }

    /// Taken after counting itself as a waiter and before re-checking the
    /// generation; handed to [`Wake::sleep`].
    fn token(&self) -> u64 {
        0
    }

    /// Sleep at most `timeout` while the notify word is `asleep` (or until
    /// a wake-up that came after `token` was taken).
    fn sleep(&self, h: &Header, asleep: u32, token: u64, prepared: bool, timeout: Duration);

    /// Wake every thread sleeping on the region, in every process.
    fn wake_all(&self, h: &Header);

    /// Called by a waiter that has seen nothing change for a while (a
    /// sleep slice, or a long spin): a waiter touches only the header, so
    /// this is where a backend whose file can shrink checks that it still
    /// covers the mapping, and gives the mapping up if not (its generation
    /// then reads `layout::GONE`, which ends the wait).
    fn idle(&self) {}

    /// Wake this handle's own sleepers (an interrupt); by default everyone.
    fn interrupt(&self, h: &Header) {
        self.wake_all(h);
    }
}

/// One operating system's whole implementation of a region.
///
/// A value is one open handle: the mapping and whatever OS objects the
/// handle keeps (a file descriptor, a kernel mutex, wake semaphores).
pub(crate) trait Backend: Wake + Sized + Send + Sync + 'static {
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

    /// This process's id.
    fn pid() -> u32;

    /// This thread's id, as [`Backend::unlock_for`] takes it.
    fn tid() -> u32;

    /// Bumped in a child by every `fork`: a handle opened at another epoch
    /// is a forked copy.
    fn fork_epoch() -> u32;

    /// This process's start time (0 if unknown), as [`Backend::liveness`]
    /// reports start times.
    fn own_start_time() -> u64;

    /// Whether process `pid` runs, and since when.
    fn liveness(pid: u32) -> Liveness;

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

/// Initialise a zeroed header; the magic is stored last (Release), so an
/// opener that sees it sees the rest.
pub(crate) fn init_header(h: &Header, capacity: usize, persistent: bool) {
    h.version.store(LAYOUT_VERSION, Relaxed);
    h.flags
        .store(if persistent { FLAG_PERSISTENT } else { 0 }, Relaxed);
    h.capacity.store(capacity as u64, Relaxed);
    h.creator_pid.store(Os::pid(), Relaxed);
    h.magic.store(MAGIC, Release);
}

/// Validate the header of a mapping `mapped` bytes long of a region
/// `size` bytes long; returns its capacity, read once here and trusted
/// from then on by this handle only.
pub(crate) fn validate_header(
    name: &str,
    path: &Path,
    h: &Header,
    mapped: usize,
    size: u64,
) -> Result<usize> {
    let shown = || path.display().to_string();
    if h.magic.load(Acquire) != MAGIC {
        return Err(Error::NotARegion {
            path: shown(),
            reason: "it does not start with the filemap magic number",
        });
    }
    let version = h.version.load(Relaxed);
    if version != LAYOUT_VERSION {
        return Err(Error::IncompatibleVersion {
            name: name.to_owned(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let capacity = h.capacity.load(Relaxed);
    if !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity) {
        return Err(Error::Corrupted {
            name: name.to_owned(),
            field: "capacity",
            value: capacity,
        });
    }
    let needed = layout::region_size(capacity as usize) as u64;
    if needed > size || needed > mapped as u64 {
        return Err(Error::Truncated {
            name: name.to_owned(),
            size,
            needed,
        });
    }
    Ok(capacity as usize)
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
