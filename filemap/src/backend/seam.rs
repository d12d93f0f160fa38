//! The seam itself: the [`Backend`] contract every OS implements, and what
//! the backends share so that none of it is written twice: the open-retry
//! loop ([`open_retrying`]), the header and protocol view of a mapping
//! ([`Mapped`]), the process facts ([`Host`]), and the mapping of OS errors
//! onto [`Error`].
//!
//! This file names no backend: the backends build on it, and
//! `backend/mod.rs`, which picks one, sits above them.

use std::io;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use crate::attach::{Liveness, Process};
use crate::error::{Error, NameRule, Result};
use crate::info::RegionInfo;
use crate::layout::Header;
use crate::lock::LockError;
use crate::notify::Wake;
use crate::protocol::{Reach, View};

/// Check `name` against the naming rules, for a backend whose longest name
/// is `max` bytes.
///
/// # Errors
/// [`Error::InvalidName`] naming the rule the name breaks.
pub(crate) fn check_name(name: &str, max: usize) -> Result<()> {
    let rule = if name.is_empty() {
        Some(NameRule::Empty)
    } else if name.len() > max {
        Some(NameRule::TooLong {
            len: name.len(),
            max,
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
/// each backend's host's [`Host::classify`] decides.
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

/// What the caller of [`Backend::open`] asks for (a validated name,
/// capacity and maximum capacity; the rest as the builder was configured).
#[derive(Debug)]
pub(crate) struct Request<'a> {
    pub name: &'a str,
    pub capacity: usize,
    /// The most a created region may grow to (`capacity..=MAX_CAPACITY`).
    pub max_capacity: usize,
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
    /// The validated maximum capacity, trusted by this handle from now
    /// on: the mapping holds `region_size` of it.
    pub max_capacity: usize,
    pub existed: bool,
    /// The claimed attach-table slot.
    pub slot: usize,
}

/// What an OS says about processes, and how its errors read: one
/// implementation per OS family (`unix::Unix`, Windows' `sys::Windows`),
/// which a backend names as its [`Backend::Host`]. The rest of the crate
/// reaches these facts through the backend alone: every backend is a
/// [`Process`] by its host (the blanket implementation below), and
/// [`Backend::fork_epoch`], [`Backend::online_cpus`] and
/// [`Backend::classify`] ask the host.
pub(crate) trait Host: Process {
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

    /// Threads runnable or running on the whole machine right now (this
    /// one included), if the OS tells it cheaply; `None` otherwise. The
    /// adaptive wait does not spin while this exceeds
    /// [`Host::online_cpus`]: the spin would take a CPU from a thread
    /// that is ready to run, perhaps the peer it waits for.
    fn runnable_threads() -> Option<usize> {
        None
    }

    /// How an OS error maps onto [`Error`] beyond its kind.
    fn classify(e: &io::Error) -> ErrorClass;
}

/// Every backend knows processes as its host does.
impl<B: Backend> Process for B {
    #[inline]
    fn pid() -> u32 {
        B::Host::pid()
    }

    fn own_start_time() -> u64 {
        B::Host::own_start_time()
    }

    fn liveness(pid: u32) -> Liveness {
        B::Host::liveness(pid)
    }
}

/// A backend's mapping of a region, as [`Mapped`] reads it.
pub(crate) trait Map: Send + Sync {
    /// The start of the mapping.
    fn base(&self) -> NonNull<u8>;

    /// The header at the start of the mapping.
    fn header(&self) -> &Header;

    /// What makes more of the buffers safe to touch, for a mapping whose
    /// pages past the capacity fault until given storage, with how many
    /// bytes of each buffer are ready now; `None` (the default) when the
    /// mapping's every page is there to touch.
    fn reach(&self) -> Option<(usize, &dyn Reach)> {
        None
    }
}

/// A handle's mapping with the maximum capacity its header was validated
/// with: what [`Backend::header`] and [`Backend::view`] read through.
pub(crate) struct Mapped<M> {
    map: M,
    max_capacity: usize,
}

impl<M: Map> Mapped<M> {
    /// `map`, holding a region of maximum capacity `max_capacity`.
    ///
    /// # Safety
    /// The mapping must start 64-byte aligned, hold at least
    /// `layout::region_size(max_capacity)` bytes, readable and writable,
    /// for as long as `map` lives, and `max_capacity` must be the validated
    /// maximum (at most `MAX_CAPACITY`); its header must be backed, and so
    /// must every byte of it if [`Map::reach`] names no [`Reach`], else
    /// the bytes of each buffer it says are ready (and those its `Reach`
    /// says it made so): what [`View::new`] asks.
    pub unsafe fn new(map: M, max_capacity: usize) -> Mapped<M> {
        Mapped { map, max_capacity }
    }

    /// The region's protocol view.
    #[inline]
    pub fn view(&self) -> View<'_> {
        let (ready, reach) = match self.map.reach() {
            Some((ready, reach)) => (ready, Some(reach)),
            None => (usize::MAX, None),
        };
        // SAFETY: `new`'s contract: the mapping holds
        // `region_size(max_capacity)` aligned, writable bytes while
        // `self.map` lives, and the view borrows `self`, which owns the
        // mapping; its header and `ready` bytes of each buffer are backed
        // (`Map::reach`'s contract), all of it when it names no `Reach`.
        unsafe { View::new(self.map.base(), self.max_capacity, ready, reach) }
    }
}

impl<M> std::ops::Deref for Mapped<M> {
    type Target = M;

    fn deref(&self) -> &M {
        &self.map
    }
}

/// One operating system's whole implementation of a region.
///
/// A value is one open handle: the mapping and whatever OS objects the
/// handle keeps (a file descriptor, a kernel mutex, wake semaphores).
pub(crate) trait Backend: Wake + Sized + Send + Sync + 'static {
    /// Longest region name in bytes.
    const MAX_NAME_LEN: usize;

    /// What this backend's OS says about processes.
    type Host: Host;

    /// The mapping a handle holds.
    type Map: Map;

    /// The backing file (or kernel object name) of region `name`.
    fn shm_path(name: &str) -> PathBuf;

    /// Create or attach to a region; the returned handle's header is
    /// validated and its attach-table slot claimed.
    fn open(req: &Request<'_>) -> Result<Opened<Self>>;

    /// The handle's mapping and validated maximum capacity.
    fn mapped(&self) -> &Mapped<Self::Map>;

    /// The region's header (the start of the mapping).
    #[inline]
    fn header(&self) -> &Header {
        self.mapped().header()
    }

    /// The region's protocol view: the mapping with its validated
    /// capacity.
    #[inline]
    fn view(&self) -> View<'_> {
        self.mapped().view()
    }

    /// The system call [`Backend::back`] makes, for its errors.
    const BACK_OP: &'static str = "fallocate";

    /// Give the bytes `offset .. offset + len` of the mapping backing
    /// store, before a growing writer publishes into them, so that no
    /// later access to them can fail: `Err` (an OS error, `ENOSPC` or the
    /// commit limit for a full store) leaves the region as it was. Backing
    /// a range twice is harmless. The default does nothing, for systems
    /// whose shared memory takes its pages from memory when touched.
    fn back(&self, offset: usize, len: usize) -> io::Result<()> {
        let _ = (offset, len);
        Ok(())
    }

    /// Give back the storage of `offset .. offset + len`, bytes beyond
    /// the region's capacity that a growth backed and could not use (the
    /// store ran out before it got all it needed). Best effort; the
    /// default does nothing.
    fn unback(&self, offset: usize, len: usize) {
        let _ = (offset, len);
    }

    /// Take the region lock for the calling thread. `Ok(true)` when the
    /// previous owner died holding it.
    fn lock(&self, timeout: Duration) -> std::result::Result<bool, LockError>;

    /// Release the lock the calling thread took; `false` if it was not
    /// ours any more.
    fn unlock(&self) -> bool;

    /// Release the lock the calling thread took, on a handle whose
    /// mapping was lost under it ([`Backend::is_lost`]: it faulted while
    /// the thread held the lock, and now holds zero pages of its own):
    /// the lock word is in the region itself, which may well be intact
    /// (a fault on a full store), and left there it would name a live
    /// thread for ever. Best effort; the default does nothing (Windows
    /// sections cannot be lost).
    fn unlock_lost(&self) {}

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

    /// This thread's id, as [`Backend::unlock_for`] takes it: whatever
    /// names a thread in this backend's lock.
    fn tid() -> u32;

    /// See [`Host::fork_epoch`].
    #[inline]
    fn fork_epoch() -> u32 {
        Self::Host::fork_epoch()
    }

    /// See [`Host::online_cpus`].
    fn online_cpus() -> usize {
        Self::Host::online_cpus()
    }

    /// See [`Host::runnable_threads`].
    fn runnable_threads() -> Option<usize> {
        Self::Host::runnable_threads()
    }

    /// See [`Host::classify`].
    fn classify(e: &io::Error) -> ErrorClass {
        Self::Host::classify(e)
    }

    /// Whether `name` is a valid region name here (listings skip the
    /// entries that are not).
    fn is_valid_name(name: &str) -> bool {
        check_name(name, Self::MAX_NAME_LEN).is_ok()
    }

    /// Turn an OS error from operation `op` on region `name` (at `path`)
    /// into an [`Error`].
    fn io_error(name: &str, path: &Path, op: &'static str, e: io::Error) -> Error {
        use std::io::ErrorKind;
        let shown = || path.display().to_string();
        match Self::classify(&e) {
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

    /// As [`Backend::io_error`], with the size that did not fit in an
    /// out-of-space error.
    fn space_error(name: &str, path: &Path, op: &'static str, e: io::Error, needed: u64) -> Error {
        match Self::io_error(name, path, op, e) {
            Error::OutOfSpace { name, .. } => Error::OutOfSpace { name, needed },
            other => other,
        }
    }
}

/// What one open attempt came to.
pub(crate) enum Step<B> {
    Done(Opened<B>),
    /// Lost a race (to a closer, a creator, a remover, a creator that died
    /// mid-way): look again.
    Retry,
}

/// One backend's open, attempt by attempt, for [`open_retrying`]: find
/// the region, attach to what was found or create what was not.
pub(crate) trait Attempts {
    type Backend;
    /// What [`Attempts::find`] found (an opened descriptor, section...).
    type Found;

    /// Attempts before the open gives up.
    const ATTEMPTS: u32;
    /// What the open could not reach, for the timeout error.
    const UNSTABLE: &'static str;

    /// Look for the region: `None` if there is none.
    fn find(&self) -> Result<Option<Self::Found>>;

    /// Attach to the region found (or find it stale and remove it, and
    /// retry). Refuses with `AlreadyExists` when the request is
    /// [`OpenMode::CreateOnly`] and the region is live.
    fn attach(&self, found: Self::Found) -> Result<Step<Self::Backend>>;

    /// Create the region (a creator that loses the race retries).
    fn create(&self) -> Result<Step<Self::Backend>>;
}

/// The open-retry loop every backend runs: open an existing region, or
/// create a missing one (unless the request is open-only); a lost race
/// costs an attempt; after `A::ATTEMPTS` the open gives up with a timeout.
pub(crate) fn open_retrying<A: Attempts>(
    req: &Request<'_>,
    steps: &A,
) -> Result<Opened<A::Backend>> {
    let start = Instant::now();
    for _ in 0..A::ATTEMPTS {
        let step = match steps.find()? {
            Some(found) => steps.attach(found)?,
            None if req.mode == OpenMode::OpenOnly => {
                return Err(Error::NotFound {
                    name: req.name.to_owned(),
                })
            }
            None => steps.create()?,
        };
        if let Step::Done(opened) = step {
            return Ok(opened);
        }
    }
    Err(Error::Timeout {
        what: A::UNSTABLE,
        waited: start.elapsed(),
        holder_pid: None,
    })
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
