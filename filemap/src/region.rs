//! Regions: open, create, attach, lifetime; publish and read; transactions.
//!
//! This module owns the protocol on top of the header. It validates every
//! value it reads from the mapping before using it as a length or index, and
//! touches the buffers only through raw copies. It must never make a system
//! call directly: those live in `sys`.
//!
//! Lifetime uses `flock(2)`-style locks on the backing file, which the kernel
//! holds for us and drops when a process dies, so no scribble can keep a
//! region alive or kill it: every handle holds a shared lock; a closing
//! handle that can upgrade to exclusive is the last one and removes a
//! non-persistent region's name; an opener that can take the exclusive lock
//! of a non-persistent region has found a stale one (all its users died)
//! and replaces it.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{fence, AtomicBool, AtomicU32};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::copy::{load_shared, store_shared};
use crate::error::{Error, NameRule, Result};
use crate::layout::{
    self, Header, WriterId, FLAG_PERSISTENT, HEADER_SIZE, LAYOUT_VERSION, MAGIC, SEQ_WRITING, SLOTS,
};
use crate::loan::WriteLoan;
use crate::lock::{self, LockError};
use crate::notify;
use crate::sys;
use crate::watch::Watcher;

/// Capacity of a region when the builder names none: 4096 bytes.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Smallest capacity accepted: 32 bytes.
pub const MIN_CAPACITY: usize = 32;
/// Largest capacity accepted: 1 GiB (the mapping holds two buffers).
pub const MAX_CAPACITY: usize = 1 << 30;
/// Longest region name in bytes. The backing file is `filemap.<name>`,
/// which must fit the 255-byte file-name limit.
#[cfg(not(windows))]
pub const MAX_NAME_LEN: usize = 255 - PREFIX.len();
/// Longest region name in bytes. On Windows the longest kernel object
/// name filemap makes, `Global\filemap.<name>.wake.<pid>.<slot>`, must
/// fit `MAX_PATH` (260) characters with its terminating NUL, which leaves
/// 224.
#[cfg(windows)]
pub const MAX_NAME_LEN: usize =
    259 - "Global\\".len() - PREFIX.len() - ".wake.4294967295.127".len();
/// How long blocking calls wait for the region lock by default.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);

const PREFIX: &str = "filemap.";
/// Optimistic read attempts before a reader falls back to the lock.
const READ_ATTEMPTS: u32 = 64;
/// Copies of more than a chunk spoiled by a rewrite before a reader falls
/// back to the lock.
const SPOILED_COPIES: u32 = 2;
/// A lock-free read checks between chunks of this many bytes that its
/// buffer is not being rewritten (64-byte multiple: chunks stay aligned).
const COPY_CHUNK: usize = 64 << 10;
/// Attempts to reach a stable name (each lost race to a closer or creator
/// costs one) before `open` gives up.
#[cfg(not(windows))]
const OPEN_ATTEMPTS: u32 = 100;

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

/// Path of the shared-memory object backing region `name`. On Windows
/// this is the kernel object name `Local\filemap.<name>`, not a file.
#[cfg(not(windows))]
pub fn shm_path(name: &str) -> PathBuf {
    sys::shm_dir().join(format!("{PREFIX}{name}"))
}

/// Path of the shared-memory object backing region `name`. On Windows
/// this is the kernel object name `Local\filemap.<name>`, not a file.
#[cfg(windows)]
pub fn shm_path(name: &str) -> PathBuf {
    PathBuf::from(windows::object_name(false, name))
}

#[cfg(windows)]
#[path = "region_windows.rs"]
mod windows;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OpenMode {
    CreateOrAttach,
    CreateOnly,
    OpenOnly,
}

/// Configures and opens a region; made by [`FileMap::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until `open` is called"]
pub struct Builder {
    name: String,
    capacity: Option<u64>,
    mode: OpenMode,
    permissions: u32,
    persistent: Option<bool>,
    path: Option<PathBuf>,
    lock_timeout: Duration,
    global: bool,
}

impl Builder {
    /// Capacity in bytes of a region this handle creates (default
    /// [`DEFAULT_CAPACITY`]). When attaching, the existing region's capacity
    /// wins; [`FileMap::capacity`] reports it.
    pub fn capacity(mut self, bytes: u64) -> Self {
        self.capacity = Some(bytes);
        self
    }

    /// Fail with [`Error::AlreadyExists`] instead of attaching.
    pub fn create_only(mut self) -> Self {
        self.mode = OpenMode::CreateOnly;
        self
    }

    /// Fail with [`Error::NotFound`] instead of creating.
    pub fn open_only(mut self) -> Self {
        self.mode = OpenMode::OpenOnly;
        self
    }

    /// Permission bits of a region this handle creates (default `0o600`,
    /// owner only).
    pub fn mode(mut self, permissions: u32) -> Self {
        self.permissions = permissions & 0o777;
        self
    }

    /// Keep a region this handle creates after its last handle closes,
    /// until [`FileMap::remove`]. Default: `false`, except for file-backed
    /// regions ([`Builder::path`]), which persist unless told otherwise.
    /// On Windows a file-backed region is always persistent: asking for
    /// `persistent(false)` with a path gives [`Error::UnsupportedOption`]
    /// (see `docs/platforms.md`).
    pub fn persistent(mut self, persistent: bool) -> Self {
        self.persistent = Some(persistent);
        self
    }

    /// Back the region by the regular file at `path` instead of shared
    /// memory, so it survives reboots. A symlink at `path` is refused.
    pub fn path(mut self, path: impl Into<PathBuf>) -> Self {
        self.path = Some(path.into());
        self
    }

    /// How long [`FileMap::write`], [`FileMap::lock`] and friends wait for
    /// the region lock before [`Error::Timeout`] (default
    /// [`DEFAULT_LOCK_TIMEOUT`]).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Windows: name the region's kernel objects in the `Global\`
    /// namespace (visible to every session; creating them needs the
    /// `SeCreateGlobalPrivilege`) instead of `Local\` (this session).
    /// No effect on other platforms, where names are host-wide already.
    pub fn global(mut self, global: bool) -> Self {
        self.global = global;
        self
    }

    /// Create or attach to the region.
    ///
    /// # Errors
    /// [`Error::InvalidName`], [`Error::InvalidCapacity`],
    /// [`Error::NotFound`] (with `open_only`), [`Error::AlreadyExists`]
    /// (with `create_only`), [`Error::PermissionDenied`],
    /// [`Error::OutOfSpace`], [`Error::IncompatibleVersion`],
    /// [`Error::NotARegion`], [`Error::Truncated`], [`Error::Corrupted`],
    /// [`Error::TooManyAttached`], [`Error::Io`].
    pub fn open(self) -> Result<FileMap> {
        validate_name(&self.name)?;
        let capacity = self.capacity.unwrap_or(DEFAULT_CAPACITY as u64);
        if !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&capacity) {
            return Err(Error::InvalidCapacity {
                requested: capacity,
                min: MIN_CAPACITY,
                max: MAX_CAPACITY,
            });
        }
        self.open_backend(capacity as usize)
    }
}

#[cfg(not(windows))]
impl Builder {
    fn open_backend(&self, capacity: usize) -> Result<FileMap> {
        let path = self.path.clone().unwrap_or_else(|| shm_path(&self.name));
        for _ in 0..OPEN_ATTEMPTS {
            let step = match sys::open_existing(&path, true) {
                Ok(fd) => self.attach(&path, fd)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    if self.mode == OpenMode::OpenOnly {
                        return Err(Error::NotFound {
                            name: self.name.clone(),
                        });
                    }
                    self.create(&path, capacity)?
                }
                Err(e) => return Err(self.open_error(&path, "open", e)),
            };
            if let Step::Done(map) = step {
                return Ok(map);
            }
        }
        Err(Error::Timeout {
            what: "a stable region name (other processes kept creating and removing it)",
            waited: Duration::ZERO,
            holder_pid: None,
        })
    }
}

impl Builder {
    fn open_error(&self, path: &Path, op: &'static str, e: std::io::Error) -> Error {
        io_error(&self.name, path, op, e)
    }

    /// Claim a slot in the mapping's attach table for this handle.
    fn claim_slot(&self, map: &sys::Mapping) -> Result<usize> {
        claim_slot(header(map)).ok_or_else(|| Error::TooManyAttached {
            name: self.name.clone(),
            max: SLOTS,
        })
    }

    /// The handle over an opened, validated region whose slot is claimed.
    #[allow(clippy::too_many_arguments)]
    fn handle(
        &self,
        path: &Path,
        fd: sys::Fd,
        map: sys::Mapping,
        capacity: usize,
        existed: bool,
        slot: usize,
        os: OsObjects,
    ) -> FileMap {
        FileMap {
            inner: Arc::new(Inner {
                name: self.name.clone(),
                path: path.to_owned(),
                fd,
                map,
                capacity,
                existed,
                slot,
                id: WriterId {
                    pid: sys::pid(),
                    handle: next_handle_number(),
                },
                lock_timeout: self.lock_timeout,
                epoch: sys::fork_epoch(),
                learner: notify::Learner::default(),
                os,
            }),
        }
    }
}

#[cfg(not(windows))]
impl Builder {
    /// Take the shared lifetime lock. Exclusive holders (a closing or
    /// replacing handle) keep it for microseconds, but any process that can
    /// open the file could hold it forever, so the wait is bounded.
    fn lock_shared(&self, path: &Path, fd: &sys::Fd) -> Result<()> {
        let start = Instant::now();
        let mut pause = Duration::from_micros(50);
        while !sys::try_lock_shared(fd).map_err(|e| self.open_error(path, "flock", e))? {
            if start.elapsed() >= self.lock_timeout {
                return Err(Error::Timeout {
                    what: "the region's lifetime lock (another process holds it exclusively)",
                    waited: start.elapsed(),
                    holder_pid: None,
                });
            }
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(10));
        }
        Ok(())
    }

    /// Attach to the existing file `fd`, or find it stale and remove it.
    fn attach(&self, path: &Path, fd: sys::Fd) -> Result<Step> {
        let err = |op, e| self.open_error(path, op, e);
        let alone = sys::try_lock_exclusive(&fd).map_err(|e| err("flock", e))?;
        if !alone {
            self.lock_shared(path, &fd)?;
        }
        // The last handle may have removed the name before we locked.
        if sys::is_unlinked(&fd).map_err(|e| err("fstat", e))? {
            return Ok(Step::Retry);
        }
        let (map, capacity) = map_existing(&self.name, path, &fd, true)?;
        let h = header(&map);
        let persistent = h.is_persistent();
        if alone && !persistent {
            // Every user of this non-persistent region died without closing:
            // it is gone in spirit. Replace it.
            unlink_if_named(path, &fd).map_err(|e| err("unlink", e))?;
            return Ok(Step::Retry);
        }
        if self.mode == OpenMode::CreateOnly {
            return Err(Error::AlreadyExists {
                name: self.name.clone(),
            });
        }
        if alone {
            self.lock_shared(path, &fd)?;
        }
        self.finish(path, fd, map, capacity, true).map(Step::Done)
    }

    /// Create a region at `path`, fully initialised before its name appears.
    fn create(&self, path: &Path, capacity: usize) -> Result<Step> {
        let err = |op, e| self.open_error(path, op, e);
        let file = sys::create_unnamed(parent_dir(path), self.permissions)
            .map_err(|e| err("create", e))?;
        let size = layout::region_size(capacity);
        sys::reserve(&file.fd, size as u64).map_err(|e| match err("fallocate", e) {
            Error::OutOfSpace { name, .. } => Error::OutOfSpace {
                name,
                needed: size as u64,
            },
            other => other,
        })?;
        let map = sys::Mapping::new(&file.fd, size, true).map_err(|e| err("mmap", e))?;
        let h = header(&map);
        let persistent = self.persistent.unwrap_or(self.path.is_some());
        h.version.store(LAYOUT_VERSION, Relaxed);
        h.flags
            .store(if persistent { FLAG_PERSISTENT } else { 0 }, Relaxed);
        h.capacity.store(capacity as u64, Relaxed);
        h.creator_pid.store(sys::pid(), Relaxed);
        h.magic.store(MAGIC, Release);
        // Nobody else can have opened a file without a name yet.
        if !sys::try_lock_shared(&file.fd).map_err(|e| err("flock", e))? {
            return Err(err(
                "flock",
                std::io::Error::other("a new file was locked by another process"),
            ));
        }
        match sys::publish_name(&file, path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => return Ok(Step::Retry),
            Err(e) => return Err(err("link", e)),
        }
        let sys::Unnamed { fd, .. } = file;
        self.finish(path, fd, map, capacity, false).map(Step::Done)
    }

    fn finish(
        &self,
        path: &Path,
        fd: sys::Fd,
        map: sys::Mapping,
        capacity: usize,
        existed: bool,
    ) -> Result<FileMap> {
        let slot = self.claim_slot(&map)?;
        Ok(self.handle(path, fd, map, capacity, existed, slot, ()))
    }
}

#[cfg(not(windows))]
enum Step {
    Done(FileMap),
    Retry,
}

fn io_error(name: &str, path: &Path, op: &'static str, e: std::io::Error) -> Error {
    use std::io::ErrorKind;
    match sys::classify(&e) {
        sys::ErrorClass::OutOfSpace => {
            return Error::OutOfSpace {
                name: name.to_owned(),
                needed: 0,
            }
        }
        // A symlink planted at the region's path was refused.
        sys::ErrorClass::Symlink => {
            return Error::NotARegion {
                path: path.display().to_string(),
                reason: "it is a symbolic link",
            }
        }
        sys::ErrorClass::NotRegular(reason) => {
            return Error::NotARegion {
                path: path.display().to_string(),
                reason,
            }
        }
        sys::ErrorClass::Other => {}
    }
    match e.kind() {
        ErrorKind::PermissionDenied => Error::PermissionDenied {
            name: name.to_owned(),
            path: path.display().to_string(),
        },
        ErrorKind::Unsupported => Error::Unsupported,
        _ => Error::Io {
            op,
            name: name.to_owned(),
            source: e,
        },
    }
}

/// `path` is too short to hold a filemap header.
fn too_small(path: &Path) -> Error {
    Error::NotARegion {
        path: path.display().to_string(),
        reason: "it is smaller than a filemap header",
    }
}

/// Map an existing backing file and validate its header. Returns the
/// mapping and the capacity, which is read once here and trusted from then
/// on by this handle only.
#[cfg(not(windows))]
fn map_existing(
    name: &str,
    path: &Path,
    fd: &sys::Fd,
    writable: bool,
) -> Result<(sys::Mapping, usize)> {
    let size = sys::file_size(fd).map_err(|e| io_error(name, path, "fstat", e))?;
    if size < HEADER_SIZE as u64 {
        return Err(too_small(path));
    }
    let map_len = size.min(layout::region_size(MAX_CAPACITY) as u64) as usize;
    let map =
        sys::Mapping::new(fd, map_len, writable).map_err(|e| io_error(name, path, "mmap", e))?;
    let capacity = validate_header(name, path, &map, size)?;
    Ok((map, capacity))
}

/// Validate the header of a mapping of a `size`-byte region; returns its
/// capacity, read once here and trusted from then on by this handle only.
fn validate_header(name: &str, path: &Path, map: &sys::Mapping, size: u64) -> Result<usize> {
    let shown = || path.display().to_string();
    let h = header(map);
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
    if needed > size || needed > map.len() as u64 {
        return Err(Error::Truncated {
            name: name.to_owned(),
            size,
            needed,
        });
    }
    Ok(capacity as usize)
}

fn header(map: &sys::Mapping) -> &Header {
    debug_assert!(map.len() >= HEADER_SIZE);
    // SAFETY:
    // - every mapping handed here is at least HEADER_SIZE bytes long
    //   (Linux: checked by `map_existing`, or made that size by `create`;
    //   Windows: the view's `VirtualQuery` length is checked against
    //   HEADER_SIZE before any header access, or the section was just made
    //   `region_size` long by this process; and no view is shorter than a
    //   page, which is HEADER_SIZE);
    // - views start page-aligned (`mmap`; `MapViewOfFile` even at the
    //   64 KiB allocation granularity), enough for `Header`'s alignment;
    // - every field of `Header`, padding included, is an atomic, so a shared
    //   reference stays sound while other processes write the bytes;
    // - the reference borrows `map`, so it cannot outlive the mapping.
    // SAFETY: holds by the conditions listed above.
    unsafe { &*map.as_ptr().cast::<Header>() }
}

fn next_handle_number() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Relaxed)
}

/// A slot's pid while a sweeper reclaims it; never a real pid.
const RECLAIMING: u32 = u32::MAX;

/// Whether the process recorded in a slot may still run (unknown counts
/// as alive; a start time of 0 means "not recorded yet").
fn slot_alive(pid: u32, start_time: u64) -> bool {
    match sys::liveness(pid) {
        sys::Liveness::Dead => false,
        sys::Liveness::Unknown => true,
        sys::Liveness::Alive { start_time: actual } => start_time == 0 || start_time == actual,
    }
}

/// Free the attach-table slots of processes that died without closing,
/// with the waiters they counted. A slot is first claimed for reclaiming
/// (pid -> RECLAIMING), so a slot just re-taken by a live process is never
/// cleaned under it.
fn sweep_dead_slots(h: &Header) {
    for slot in &h.slots {
        let pid = slot.pid.load(Acquire);
        if pid == 0 || pid == RECLAIMING || slot_alive(pid, slot.start_time.load(Relaxed)) {
            continue;
        }
        if slot
            .pid
            .compare_exchange(pid, RECLAIMING, Acquire, Relaxed)
            .is_ok()
        {
            notify::forget_waiters(h, slot);
            slot.start_time.store(0, Relaxed);
            slot.pid.store(0, Release);
        }
    }
}

fn claim_slot(h: &Header) -> Option<usize> {
    let pid = sys::pid();
    sweep_dead_slots(h);
    for _ in 0..2 {
        for (index, slot) in h.slots.iter().enumerate() {
            if slot.pid.load(Relaxed) == 0
                && slot.pid.compare_exchange(0, pid, Acquire, Relaxed).is_ok()
            {
                slot.waiters.store(0, Relaxed);
                slot.spinners.store(0, Relaxed);
                slot.start_time.store(sys::own_start_time(), Release);
                return Some(index);
            }
        }
    }
    None
}

/// Live process ids in the attach table, without duplicates.
fn attached_pids(h: &Header) -> Vec<u32> {
    let mut pids: Vec<u32> = h
        .slots
        .iter()
        .map(|s| (s.pid.load(Acquire), s.start_time.load(Relaxed)))
        .filter(|&(pid, start)| pid != 0 && pid != RECLAIMING && slot_alive(pid, start))
        .map(|(pid, _)| pid)
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

pub(crate) struct Inner {
    /// Windows: the named mutex, wake semaphores and registry marker.
    /// First, so it drops first: the wake registration is keyed by the
    /// view's address and must be gone before the view is unmapped, or a
    /// view mapped meanwhile at the same address would find our wakers.
    #[cfg_attr(not(windows), allow(dead_code))]
    os: OsObjects,
    name: String,
    path: PathBuf,
    /// The backing object (Windows: the section, only held open).
    #[cfg_attr(windows, allow(dead_code))]
    fd: sys::Fd,
    map: sys::Mapping,
    capacity: usize,
    existed: bool,
    slot: usize,
    id: WriterId,
    lock_timeout: Duration,
    /// The fork epoch the handle was opened at: another epoch means this
    /// is a forked child's copy, which must not be used.
    epoch: u32,
    /// How soon changes have been arriving, for adaptive waits.
    learner: notify::Learner,
}

/// A handle's OS objects besides the backing file and the mapping.
#[cfg(not(windows))]
type OsObjects = ();
#[cfg(windows)]
type OsObjects = windows::Objects;

impl Inner {
    fn header(&self) -> &Header {
        header(&self.map)
    }

    /// `Err(ForkedHandle)` in a forked child: the parent may close the
    /// handle, and with it a non-persistent region, at any time, and the
    /// lifetime lock and attach slot are the parent's.
    #[inline]
    pub(crate) fn usable(&self) -> Result<()> {
        if sys::fork_epoch() == self.epoch {
            Ok(())
        } else {
            Err(self.forked())
        }
    }

    #[cold]
    fn forked(&self) -> Error {
        Error::ForkedHandle {
            name: self.name.clone(),
            opened_by: self.id.pid,
            pid: sys::pid(),
        }
    }

    /// Whether this is a forked child's copy of the handle.
    pub(crate) fn in_forked_child(&self) -> bool {
        sys::fork_epoch() != self.epoch
    }

    fn corrupted(&self, field: &'static str, value: u64) -> Error {
        Error::Corrupted {
            name: self.name.clone(),
            field,
            value,
        }
    }

    /// Copy buffer `index` (`len <= capacity`, checked) into `out`, in
    /// chunks of [`COPY_CHUNK`] bytes. Stops early, returning `false` with
    /// `out` empty, as soon as `intact` says the buffer is being rewritten:
    /// a doomed copy of a large content then costs a chunk, not the whole.
    #[inline]
    fn copy_out(
        &self,
        index: usize,
        len: usize,
        out: &mut Vec<u8>,
        intact: impl Fn() -> bool,
    ) -> bool {
        debug_assert!(index < 2 && len <= self.capacity);
        out.clear();
        out.reserve(len);
        let mut done = 0;
        loop {
            let chunk = (len - done).min(COPY_CHUNK);
            // SAFETY:
            // - the source lies inside the mapping: `done + chunk <= len <=
            //   capacity`, and the mapping holds `region_size(capacity)`
            //   bytes (checked at open);
            // - the destination has room for `len` bytes (reserved above)
            //   and does not overlap the mapping;
            // - buffers start 64-byte aligned (layout::buffer_offset) and
            //   `done` is a multiple of COPY_CHUNK, as `load_shared` needs;
            // - other processes may write the source concurrently: the copy
            //   is made of atomic or asm loads (copy.rs), and the caller
            //   either holds the lock (no writer touches the active buffer)
            //   or discards the bytes unless the buffer's `seq` proves them
            //   untouched (seqlock).
            // SAFETY: holds by the conditions listed above.
            unsafe {
                let src = self
                    .map
                    .as_ptr()
                    .add(layout::buffer_offset(self.capacity, index) + done);
                load_shared(src, out.as_mut_ptr().add(done), chunk);
            }
            done += chunk;
            if done == len {
                break;
            }
            if !intact() {
                return false;
            }
        }
        // SAFETY: the `len` bytes were written above; `u8` has no invalid
        // values, so `set_len` exposes initialised bytes only.
        unsafe { out.set_len(len) };
        true
    }

    /// Optimistic lock-free read; `None` when writers kept moving.
    ///
    /// A seqlock per buffer: the copy of buffer `generation & 1` stands if
    /// that buffer still holds `generation` after it (`seq`). The next
    /// publish writes the other buffer, so only the one after it can spoil
    /// a copy; a reader as slow as a writer still gets through (checking
    /// the global generation instead starved readers of large contents,
    /// benches/PERFORMANCE.md finding 3).
    #[inline]
    pub(crate) fn try_read(&self, out: &mut Vec<u8>) -> Result<Option<Stamp>> {
        let h = self.header();
        let mut spoiled = 0;
        for _ in 0..READ_ATTEMPTS {
            let generation = h.generation.load(Acquire);
            let index = (generation & 1) as usize;
            // Acquire: pairs with the writer's release store of `seq`, so
            // `len` and `writer` below are the ones published with it.
            if h.seq[index].load(Acquire) != generation {
                // A publish after this generation is under way in it.
                std::hint::spin_loop();
                continue;
            }
            let len = h.len[index].load(Relaxed);
            let writer = h.writer[index].load(Relaxed);
            if len > self.capacity as u64 {
                fence(Acquire);
                if h.seq[index].load(Relaxed) == generation {
                    return Err(self.corrupted("len", len));
                }
                continue;
            }
            // A relaxed look suffices to give up early; accepting the copy
            // takes the fence below.
            let intact = || h.seq[index].load(Relaxed) == generation;
            let copied = self.copy_out(index, len as usize, out, intact);
            fence(Acquire);
            if copied && h.seq[index].load(Relaxed) == generation {
                return Ok(Some(Stamp {
                    generation,
                    writer: WriterId::unpack(writer),
                }));
            }
            // A copy of several chunks spoiled twice: this reader is slower
            // than a writer publishing back to back, and will stay so. The
            // caller reads under the lock, which a starving waiter is
            // handed within one publish (lock.rs, fairness).
            if len as usize > COPY_CHUNK {
                spoiled += 1;
                if spoiled == SPOILED_COPIES {
                    return Ok(None);
                }
            }
            std::hint::spin_loop();
        }
        Ok(None)
    }

    /// Read the published content while holding the lock (it cannot move).
    fn read_locked(&self, out: &mut Vec<u8>) -> Result<Stamp> {
        let h = self.header();
        let generation = h.generation.load(Acquire);
        let index = (generation & 1) as usize;
        let len = h.len[index].load(Relaxed);
        if len > self.capacity as u64 {
            return Err(self.corrupted("len", len));
        }
        self.copy_out(index, len as usize, out, || true);
        Ok(Stamp {
            generation,
            writer: WriterId::unpack(h.writer[index].load(Relaxed)),
        })
    }

    fn lock(&self) -> Result<bool> {
        let owner_died = self.acquire_lock().map_err(|e| match e {
            LockError::Timeout { waited, holder_pid } => Error::Timeout {
                what: "the region lock",
                waited,
                holder_pid,
            },
            LockError::WouldDeadlock => Error::WouldDeadlock {
                name: self.name.clone(),
            },
            #[cfg(windows)]
            LockError::Failed { code } => Error::Io {
                op: "WaitForSingleObject",
                name: self.name.clone(),
                source: std::io::Error::from_raw_os_error(code),
            },
        })?;
        if owner_died {
            // The dead owner may have published without waking anyone.
            let h = self.header();
            notify::published(h);
        }
        Ok(owner_died)
    }

    /// Publish `content` as the next generation. The caller holds the lock
    /// and has checked `content.len() <= capacity`.
    fn publish_locked(&self, content: &[u8]) -> u64 {
        let (next, index) = self.begin_publish();
        self.store_at(index, 0, content);
        self.finish_publish(next, index, content.len())
    }

    /// Start publishing the next generation: mark the inactive buffer as
    /// being written and return (next generation, its buffer). The caller
    /// holds the lock. Abandoning a publish after this is harmless: the
    /// published buffer is untouched, and the marked one is not read.
    pub(crate) fn begin_publish(&self) -> (u64, usize) {
        let h = self.header();
        // Acquire: after a takeover, nothing orders us after the dead
        // owner's last publish but this load.
        let next = h.generation.load(Acquire).wrapping_add(1);
        let index = (next & 1) as usize;
        // Readers that still copy this (formerly active) buffer must see it
        // marked before they can see our bytes: a reader whose copy saw any
        // of them then sees the mark or a later value (fence to fence).
        h.seq[index].store(SEQ_WRITING, Relaxed);
        fence(Release);
        (next, index)
    }

    /// Copy `bytes` into buffer `index` at `offset`, during a publish begun
    /// by [`Inner::begin_publish`] (the caller holds the lock, checked that
    /// `offset + bytes.len() <= capacity`, and keeps `offset` a multiple
    /// of 8).
    pub(crate) fn store_at(&self, index: usize, offset: usize, bytes: &[u8]) {
        assert!(index < 2 && offset % 8 == 0 && offset + bytes.len() <= self.capacity);
        // SAFETY:
        // - the destination is `bytes.len()` bytes of buffer `index` from
        //   `offset`, inside the mapping (asserted above against the
        //   capacity, and the mapping holds `region_size(capacity)` bytes);
        // - buffers start 64-byte aligned (layout::buffer_offset) and
        //   `offset` is a multiple of 8, as `store_shared` requires;
        // - the caller holds the lock, so no other writer copies into it;
        //   readers that copy it concurrently discard what they read
        //   because its `seq` is marked as being written.
        unsafe {
            let dst = self
                .map
                .as_ptr()
                .add(layout::buffer_offset(self.capacity, index) + offset);
            store_shared(bytes, dst);
        }
    }

    /// Publish buffer `index`, filled with `len` bytes, as generation
    /// `next` (from [`Inner::begin_publish`]), and wake the waiters.
    pub(crate) fn finish_publish(&self, next: u64, index: usize, len: usize) -> u64 {
        debug_assert!(len <= self.capacity);
        let h = self.header();
        h.len[index].store(len as u64, Relaxed);
        h.writer[index].store(self.id.pack(), Relaxed);
        h.seq[index].store(next, Release);
        h.generation.store(next, Release);
        notify::published(h);
        next
    }

    /// Release the lock taken by this thread (for the loan's drop).
    pub(crate) fn unlock_public(&self) {
        self.unlock();
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.in_forked_child() {
            // A forked child's copy: the slot and the lifetime lock (shared
            // through the inherited open file) are the parent's.
            return;
        }
        let h = self.header();
        let slot = &h.slots[self.slot];
        slot.start_time.store(0, Relaxed);
        let _ = slot.pid.compare_exchange(self.id.pid, 0, Release, Relaxed);
        // No sweep here: opening sweeps, and a close that checked every
        // slot's liveness made attach + close 4x slower (bench harness).
        self.after_close();
    }
}

#[cfg(not(windows))]
impl Inner {
    fn acquire_lock(&self) -> std::result::Result<bool, LockError> {
        lock::acquire(self.header(), self.lock_timeout)
    }

    fn unlock(&self) {
        lock::release(self.header());
    }

    /// Release the lock held by thread `tid` of this process, from another
    /// thread (an [`OwnedGuard`] dropped elsewhere).
    fn unlock_for(&self, tid: u32) {
        lock::release_for(self.header(), tid);
    }

    fn is_removed(&self) -> bool {
        !sys::names_file(&self.path, &self.fd).unwrap_or(true)
    }

    /// The last handle takes the exclusive lock and removes the name.
    fn after_close(&self) {
        if !self.header().is_persistent() && sys::try_lock_exclusive(&self.fd).unwrap_or(false) {
            let _ = unlink_if_named(&self.path, &self.fd);
        }
    }
}

/// Remove `path` if it still names `fd`'s file. All filemap unlinks run
/// under an exclusive lock on the directory, so this check-then-unlink
/// cannot remove a name another handle just gave to a new region.
#[cfg(not(windows))]
fn unlink_if_named(path: &Path, fd: &sys::Fd) -> std::io::Result<()> {
    let _dir = lock_dir_of(path)?;
    if sys::names_file(path, fd)? {
        sys::unlink(path)?;
    }
    Ok(())
}

/// The directory holding `path` (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Lock the directory holding `path` for a name change; waits at most a
/// second (the lock is held for microseconds), then goes ahead without.
#[cfg(not(windows))]
fn lock_dir_of(path: &Path) -> std::io::Result<Option<sys::DirLock>> {
    let dir = parent_dir(path);
    let start = Instant::now();
    loop {
        if let Some(lock) = sys::try_lock_dir(dir)? {
            return Ok(Some(lock));
        }
        if start.elapsed() > Duration::from_secs(1) {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// A generation and who published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The generation: 0 for a new region, bumped by every publish.
    pub generation: u64,
    /// Who published it (`pid` 0 for a region nobody wrote yet).
    pub writer: WriterId,
}

impl Stamp {
    /// `content` with this stamp.
    pub(crate) fn with<T>(self, content: T) -> Snapshot<T> {
        Snapshot {
            content,
            generation: self.generation,
            writer: self.writer,
        }
    }
}

/// Content read from a region with its generation and writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<T = Vec<u8>> {
    /// The content.
    pub content: T,
    /// The generation it was published as.
    pub generation: u64,
    /// Who published it.
    pub writer: WriterId,
}

impl<T> Snapshot<T> {
    /// The generation and writer, without the content.
    pub fn stamp(&self) -> Stamp {
        Stamp {
            generation: self.generation,
            writer: self.writer,
        }
    }
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The new generation.
    pub generation: u64,
    /// The lock's previous owner died holding it; its unpublished write
    /// was discarded and the published content is intact.
    pub owner_died: bool,
}

/// What [`FileMap::update`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated<R> {
    /// The closure's return value.
    pub value: R,
    /// The generation after the update (unchanged if nothing was published).
    pub generation: u64,
    /// Whether the content changed and was published.
    pub published: bool,
    /// The lock's previous owner died holding it.
    pub owner_died: bool,
}

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
    /// The next open replaces it; [`FileMap::clean_stale`] removes it.
    pub stale: bool,
}

/// A handle to a named shared-memory region.
///
/// Dropping the last handle of a non-persistent region (in any process)
/// removes the region. A `FileMap` is `Send + Sync`; share it between
/// threads by reference or `Arc`.
pub struct FileMap {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for FileMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileMap")
            .field("name", &self.inner.name)
            .field("path", &self.inner.path)
            .field("capacity", &self.inner.capacity)
            .field("existed_already", &self.inner.existed)
            .field("id", &self.inner.id)
            .finish()
    }
}

impl FileMap {
    /// Start configuring region `name`.
    pub fn builder(name: impl Into<String>) -> Builder {
        Builder {
            name: name.into(),
            capacity: None,
            mode: OpenMode::CreateOrAttach,
            permissions: 0o600,
            persistent: None,
            path: None,
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
            global: false,
        }
    }

    /// Create or attach to region `name` with the default settings.
    ///
    /// # Errors
    /// As [`Builder::open`].
    pub fn open(name: impl Into<String>) -> Result<FileMap> {
        Self::builder(name).open()
    }

    /// The region name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The backing file's path.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Capacity in bytes: the most content a publish may carry.
    pub fn capacity(&self) -> usize {
        self.inner.capacity
    }

    /// Whether this handle attached to a region that existed before.
    pub fn existed_already(&self) -> bool {
        self.inner.existed
    }

    /// Whether the region outlives its last handle.
    pub fn is_persistent(&self) -> bool {
        self.inner.header().is_persistent()
    }

    /// This handle's writer id, as recorded with its publishes.
    pub fn id(&self) -> WriterId {
        self.inner.id
    }

    /// Who published the current generation (one atomic load; it may
    /// already be stale when it returns, like any unlocked read).
    #[inline]
    pub fn last_writer(&self) -> WriterId {
        WriterId::unpack(self.inner.header().last_writer())
    }

    /// The current generation (one atomic load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.inner.header().generation.load(Acquire)
    }

    /// Publish `content` as the region's whole new content.
    ///
    /// Readers see either the previous content or this one, never a mix.
    /// Takes the cross-process lock for the copy.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing written), [`Error::Timeout`] when the
    /// lock stays held past the lock timeout, [`Error::WouldDeadlock`].
    pub fn write(&self, content: &[u8]) -> Result<Published> {
        self.check_fits(content.len())?;
        let owner_died = self.inner.lock()?;
        let generation = self.inner.publish_locked(content);
        self.inner.unlock();
        Ok(Published {
            generation,
            owner_died,
        })
    }

    /// Publish `content` only if the region is still at generation
    /// `expected` (compare-and-publish): a write made after reading
    /// generation `expected` never overwrites a change it has not seen.
    ///
    /// # Errors
    /// [`Error::Conflict`] with the generation found when the region moved
    /// (nothing written); otherwise as [`FileMap::write`].
    pub fn write_if(&self, expected: u64, content: &[u8]) -> Result<Published> {
        self.check_fits(content.len())?;
        let owner_died = self.inner.lock()?;
        let found = self.inner.header().generation.load(Acquire);
        if found != expected {
            self.inner.unlock();
            return Err(Error::Conflict {
                name: self.inner.name.clone(),
                expected,
                found,
            });
        }
        let generation = self.inner.publish_locked(content);
        self.inner.unlock();
        Ok(Published {
            generation,
            owner_died,
        })
    }

    /// Publish a string. See [`FileMap::write`].
    ///
    /// # Errors
    /// As [`FileMap::write`].
    pub fn write_str(&self, text: &str) -> Result<Published> {
        self.write(text.as_bytes())
    }

    /// Publish lines joined by `'\n'` (no trailing newline). See
    /// [`FileMap::write`]; [`FileMap::read_lines`] gives them back.
    ///
    /// # Errors
    /// As [`FileMap::write`].
    pub fn write_lines<I, S>(&self, lines: I) -> Result<Published>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.write(join_lines(lines).as_bytes())
    }

    fn check_fits(&self, len: usize) -> Result<()> {
        self.inner.usable()?;
        if len > self.inner.capacity {
            return Err(Error::TooLarge {
                len,
                capacity: self.inner.capacity,
            });
        }
        Ok(())
    }

    /// Read the published content into `buf` (replacing what it held) and
    /// return its stamp. Lock-free; allocates nothing once `buf` has room.
    ///
    /// # Errors
    /// [`Error::Corrupted`] when the header holds an impossible length;
    /// [`Error::Timeout`] only if writers keep the content moving so fast
    /// that the reader falls back to the lock and cannot get it.
    #[inline]
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<Stamp> {
        self.inner.usable()?;
        if let Some(stamp) = self.inner.try_read(buf)? {
            return Ok(stamp);
        }
        self.read_slow(buf)
    }

    #[cold]
    fn read_slow(&self, buf: &mut Vec<u8>) -> Result<Stamp> {
        self.inner.lock()?;
        let stamp = self.inner.read_locked(buf);
        self.inner.unlock();
        stamp
    }

    /// Read the published content. See [`FileMap::read_into`].
    ///
    /// # Errors
    /// As [`FileMap::read_into`].
    pub fn read(&self) -> Result<Snapshot> {
        let mut content = Vec::new();
        Ok(self.read_into(&mut content)?.with(content))
    }

    /// Read the content as UTF-8 text.
    ///
    /// # Errors
    /// As [`FileMap::read_into`], and [`Error::NotUtf8`].
    pub fn read_string(&self) -> Result<Snapshot<String>> {
        let snap = self.read()?;
        let stamp = snap.stamp();
        let content = String::from_utf8(snap.content).map_err(|e| Error::NotUtf8 {
            valid_up_to: e.utf8_error().valid_up_to(),
        })?;
        Ok(stamp.with(content))
    }

    /// Read the content as lines (split at `'\n'`; empty content is no
    /// lines).
    ///
    /// # Errors
    /// As [`FileMap::read_string`].
    pub fn read_lines(&self) -> Result<Snapshot<Vec<String>>> {
        let snap = self.read_string()?;
        Ok(snap.stamp().with(split_lines(&snap.content)))
    }

    /// Take the cross-process lock for a read-modify-write.
    ///
    /// While the guard lives, no other handle publishes. If the previous
    /// owner died holding the lock, [`Guard::owner_died`] says so.
    ///
    /// # Errors
    /// [`Error::Timeout`] naming the holding process after the lock
    /// timeout; [`Error::WouldDeadlock`] when this thread holds it already.
    pub fn lock(&self) -> Result<Guard<'_>> {
        self.inner.usable()?;
        let owner_died = self.inner.lock()?;
        Ok(Guard {
            map: self,
            owner_died,
            _not_send: PhantomData,
        })
    }

    /// Take the cross-process lock with a guard that owns its share of the
    /// handle instead of borrowing it, for callers that keep the guard in
    /// a structure of their own (language bindings, state machines).
    ///
    /// The lock still belongs to the thread that took it: the guard may
    /// move, but [`OwnedGuard::read`], [`OwnedGuard::publish`] and
    /// [`OwnedGuard::unlock`] called from another thread return
    /// [`Error::WrongThread`] and leave it held.
    ///
    /// # Errors
    /// As [`FileMap::lock`].
    pub fn lock_owned(&self) -> Result<OwnedGuard> {
        self.inner.usable()?;
        let owner_died = self.inner.lock()?;
        Ok(OwnedGuard {
            inner: Arc::clone(&self.inner),
            owner_died,
            thread: std::thread::current().id(),
            tid: sys::tid(),
            held: true,
        })
    }

    /// Lend the inactive buffer, under the lock, to be filled in place
    /// through [`std::io::Write`] and published by [`WriteLoan::commit`]:
    /// a serialiser writes straight into the region, with no intermediate
    /// `Vec` of the whole content. Readers see nothing until the commit; a
    /// loan dropped uncommitted, or grown past the capacity
    /// ([`Error::TooLarge`]), leaves the published content as it was.
    ///
    /// ```
    /// # fn main() -> filemap::Result<()> {
    /// # let name = format!("doc-loan-{}", std::process::id());
    /// use std::io::Write;
    /// let map = filemap::FileMap::open(&name)?;
    /// let mut loan = map.loan()?;
    /// write!(loan, "{} {}", "speed", 12.5).unwrap();
    /// let published = loan.commit()?;
    /// assert_eq!(map.read()?.content, b"speed 12.5");
    /// assert_eq!(map.generation(), published.generation);
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`FileMap::lock`].
    pub fn loan(&self) -> Result<WriteLoan<'_>> {
        self.inner.usable()?;
        let owner_died = self.inner.lock()?;
        Ok(WriteLoan::new(self, owner_died))
    }

    pub(crate) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// Whether the region's name no longer leads to this region: it was
    /// removed ([`FileMap::remove`], `filemap rm`), or removed and made
    /// anew. This handle still works, but no process that opens the name
    /// from now on will see its changes. Windows: always `false` (a
    /// section stays reachable by name while handles to it are open).
    pub fn is_removed(&self) -> bool {
        self.inner.is_removed()
    }

    /// Read-modify-write under the lock: `f` gets the current content and
    /// may change it; a changed content is published when `f` returns.
    /// N processes incrementing a counter this way never lose an update.
    ///
    /// # Errors
    /// As [`FileMap::lock`]; [`Error::TooLarge`] if `f` grew the content
    /// past the capacity (nothing is published); [`Error::Corrupted`].
    pub fn update<R>(&self, f: impl FnOnce(&mut Vec<u8>) -> R) -> Result<Updated<R>> {
        let mut guard = self.lock()?;
        let current = guard.read()?;
        let mut content = current.content.clone();
        let value = f(&mut content);
        let owner_died = guard.owner_died();
        if content == current.content {
            return Ok(Updated {
                value,
                generation: current.generation,
                published: false,
                owner_died,
            });
        }
        let published = guard.publish(&content)?;
        Ok(Updated {
            value,
            generation: published.generation,
            published: true,
            owner_died,
        })
    }

    /// Block until the generation differs from `seen` and return the new
    /// one, or `None` when `timeout` passes first (`None` timeout: wait as
    /// long as it takes). Sleeps in the kernel (futex); wakes within
    /// microseconds of a publish.
    pub fn wait_change(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        let h = self.inner.header();
        let slot = &h.slots[self.inner.slot];
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        loop {
            let generation = h.generation.load(Acquire);
            if generation != seen {
                return Some(generation);
            }
            let remaining = match deadline {
                Some(d) => d
                    .checked_duration_since(Instant::now())
                    .filter(|r| !r.is_zero())?,
                None => notify::SLICE,
            };
            notify::wait_once(h, slot, seen, remaining, None);
        }
    }

    /// Like [`FileMap::wait_change`], but busy-polls for a short while
    /// first when that has recently paid off: latency close to
    /// [`FileMap::wait_change_spin`]'s when the peer answers promptly, and
    /// close to no CPU when changes come rarely.
    ///
    /// The handle learns how soon changes arrive after a wait begins (a
    /// moving average). While that is within a few tens of microseconds,
    /// a wait spins (with the CPU's pause instruction) for about twice as
    /// long before it sleeps; once changes come later, it sleeps at once,
    /// and a fast change seen after a sleep teaches it to spin again. At
    /// most one thread fewer than the machine has cores spin on a region at
    /// once, across all processes, so spinners never starve the writer
    /// they wait for. Sleeping is exactly [`FileMap::wait_change`]'s.
    pub fn wait_change_adaptive(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        let h = self.inner.header();
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        notify::adaptive(
            h,
            &h.slots[self.inner.slot],
            seen,
            deadline,
            &self.inner.learner,
        )
    }

    /// Like [`FileMap::wait_change`], but busy-polls the generation instead
    /// of sleeping: lowest latency, one core kept busy.
    pub fn wait_change_spin(&self, seen: u64, timeout: Option<Duration>) -> Option<u64> {
        let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
        notify::spin(self.inner.header(), seen, deadline)
    }

    /// Call `callback` from a background thread with every change published
    /// by another handle (in this or another process), skipping this
    /// handle's own writes. Bursts are coalesced: the callback may skip
    /// intermediate generations but always gets the latest content. The
    /// thread waits as [`FileMap::wait_change_adaptive`] does: promptly
    /// when changes come fast, at no CPU cost when they come rarely.
    /// Dropping the returned [`Watcher`] stops the thread. The watcher
    /// keeps the region attached (and so alive) until it is dropped, even
    /// after every `FileMap` handle is gone.
    ///
    /// # Errors
    /// [`Error::Io`] if the thread cannot be spawned.
    pub fn watch<F>(&self, callback: F) -> Result<Watcher>
    where
        F: FnMut(Result<Snapshot>) + Send + 'static,
    {
        self.inner.usable()?;
        crate::watch::spawn(Arc::clone(&self.inner), callback)
    }

    /// Introspect this region.
    pub fn info(&self) -> RegionInfo {
        let inner = &self.inner;
        region_info(&inner.name, &inner.path, inner.header(), inner.capacity)
    }

    /// Introspect region `name` without attaching to it.
    ///
    /// # Errors
    /// As [`Builder::open`] with `open_only`.
    pub fn inspect(name: &str) -> Result<RegionInfo> {
        validate_name(name)?;
        inspect_named(name)
    }

    /// Every shared-memory region on this host, each with its info or the
    /// error that prevented reading it (permissions, corruption...).
    ///
    /// Windows cannot enumerate kernel object names cheaply, so there this
    /// lists a registry kept by filemap in `%LOCALAPPDATA%\filemap`
    /// (persistent regions' files and a marker per live region; best
    /// effort, `Local\` namespace only); a marker whose section is gone
    /// is reported stale.
    ///
    /// # Errors
    /// [`Error::Io`] when the shared-memory directory cannot be listed.
    pub fn list() -> Result<Vec<(String, Result<RegionInfo>)>> {
        list_regions()
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
    /// [`Error::InvalidName`], [`Error::NotFound`],
    /// [`Error::PermissionDenied`], [`Error::Io`].
    pub fn remove(name: &str) -> Result<()> {
        validate_name(name)?;
        remove_named(name)
    }

    /// Remove every stale region (non-persistent, no live process attached)
    /// and return their names. (Windows: the registry entries of regions
    /// whose users all died; the kernel removed the regions themselves.)
    ///
    /// # Errors
    /// As [`FileMap::list`].
    pub fn clean_stale() -> Result<Vec<String>> {
        clean_stale_regions()
    }
}

#[cfg(not(windows))]
fn inspect_named(name: &str) -> Result<RegionInfo> {
    inspect_path(name, &shm_path(name))
}

#[cfg(not(windows))]
fn list_regions() -> Result<Vec<(String, Result<RegionInfo>)>> {
    let dir = sys::shm_dir();
    let entries = sys::list_dir(dir).map_err(|e| io_error("*", dir, "readdir", e))?;
    let mut regions: Vec<_> = entries
        .into_iter()
        .filter_map(sys::name_to_string)
        .filter_map(|file| file.strip_prefix(PREFIX).map(str::to_owned))
        .filter(|name| validate_name(name).is_ok())
        .map(|name| {
            let info = inspect_path(&name, &shm_path(&name));
            (name, info)
        })
        .collect();
    regions.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(regions)
}

#[cfg(not(windows))]
fn remove_named(name: &str) -> Result<()> {
    let path = shm_path(name);
    let _dir = lock_dir_of(&path).map_err(|e| io_error(name, &path, "flock", e))?;
    sys::unlink(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            name: name.to_owned(),
        },
        _ => io_error(name, &path, "unlink", e),
    })
}

#[cfg(not(windows))]
fn clean_stale_regions() -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for (name, info) in list_regions()? {
        if !info.is_ok_and(|i| i.stale) {
            continue;
        }
        let path = shm_path(&name);
        let Ok(fd) = sys::open_existing(&path, false) else {
            continue;
        };
        // Only a region nobody holds open can be taken exclusively.
        if sys::try_lock_exclusive(&fd).unwrap_or(false)
            && !sys::is_unlinked(&fd).unwrap_or(true)
            && unlink_if_named(&path, &fd).is_ok()
            && sys::is_unlinked(&fd).unwrap_or(false)
        {
            removed.push(name);
        }
    }
    Ok(removed)
}

#[cfg(windows)]
use windows::{clean_stale_regions, inspect_named, list_regions, remove_named};

impl Inner {
    /// One adaptive wait of a watcher: spin while that pays (see
    /// [`FileMap::wait_change_adaptive`]), then sleep once, at most
    /// `timeout`, unless `cancel` is set. Returns the generation found.
    pub(crate) fn wait_once(&self, seen: u64, timeout: Duration, cancel: &AtomicBool) -> u64 {
        let h = self.header();
        let slot = &h.slots[self.slot];
        let start = Instant::now();
        if let Some(generation) = notify::spin_phase(h, slot, seen, None, &self.learner, start) {
            return generation;
        }
        notify::wait_once(h, slot, seen, timeout, Some(cancel))
    }

    pub(crate) fn interrupt_waits(&self) {
        notify::interrupt(self.header());
    }

    pub(crate) fn current_generation(&self) -> u64 {
        self.header().generation.load(Acquire)
    }

    pub(crate) fn id(&self) -> WriterId {
        self.id
    }
}

#[cfg(not(windows))]
fn inspect_path(name: &str, path: &Path) -> Result<RegionInfo> {
    let fd = sys::open_existing(path, false).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => Error::NotFound {
            name: name.to_owned(),
        },
        _ => io_error(name, path, "open", e),
    })?;
    let (map, capacity) = map_existing(name, path, &fd, false)?;
    Ok(region_info(name, path, header(&map), capacity))
}

fn region_info(name: &str, path: &Path, h: &Header, capacity: usize) -> RegionInfo {
    let generation = h.generation.load(Acquire);
    let len = h.len[(generation & 1) as usize]
        .load(Relaxed)
        .min(capacity as u64) as usize;
    let persistent = h.is_persistent();
    let attached = attached_pids(h);
    RegionInfo {
        name: name.to_owned(),
        path: path.to_owned(),
        capacity,
        len,
        generation,
        last_writer: WriterId::unpack(h.writer[(generation & 1) as usize].load(Relaxed)),
        persistent,
        stale: !persistent && attached.is_empty(),
        attached,
    }
}

/// Holds the region lock; see [`FileMap::lock`]. Released on drop.
///
/// The lock belongs to the thread that took it, so a guard cannot move to
/// another thread:
///
/// ```compile_fail
/// fn is_send<T: Send>() {}
/// is_send::<filemap::Guard<'static>>();
/// ```
pub struct Guard<'a> {
    map: &'a FileMap,
    owner_died: bool,
    /// The lock belongs to the thread that took it (its id is the lock
    /// word): a guard must not move to another thread.
    _not_send: PhantomData<*const ()>,
}

impl Guard<'_> {
    /// Whether the previous owner died holding the lock.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// The published content; stable while the guard lives.
    ///
    /// # Errors
    /// [`Error::Corrupted`].
    pub fn read(&self) -> Result<Snapshot> {
        let mut content = Vec::new();
        Ok(self.map.inner.read_locked(&mut content)?.with(content))
    }

    /// The published content into `buf` (replacing what it held).
    ///
    /// # Errors
    /// [`Error::Corrupted`].
    pub fn read_into(&self, buf: &mut Vec<u8>) -> Result<Stamp> {
        self.map.inner.read_locked(buf)
    }

    /// Publish `content`; the lock stays held.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (nothing written).
    pub fn publish(&mut self, content: &[u8]) -> Result<Published> {
        self.map.check_fits(content.len())?;
        Ok(Published {
            generation: self.map.inner.publish_locked(content),
            owner_died: self.owner_died,
        })
    }
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.map.inner.unlock();
    }
}

/// Holds the region lock, owning its share of the handle; see
/// [`FileMap::lock_owned`]. Released by [`OwnedGuard::unlock`] or on drop.
///
/// The guard is `Send` so that it can live in any structure, but the lock
/// belongs to the thread that took it: used from another thread, every
/// method returns [`Error::WrongThread`] and the lock stays held. Dropped
/// on another thread, it is released there on Linux (the lock word names
/// the thread, which any thread of the process can clear); on Windows the
/// kernel mutex can only be released by its owner thread, so it stays held
/// until that thread ends, and the next taker is then told `owner_died`.
pub struct OwnedGuard {
    inner: Arc<Inner>,
    owner_died: bool,
    thread: std::thread::ThreadId,
    /// The OS id of the thread that took the lock.
    tid: u32,
    held: bool,
}

impl std::fmt::Debug for OwnedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OwnedGuard")
            .field("name", &self.inner.name)
            .field("owner_died", &self.owner_died)
            .field("held", &self.held)
            .finish()
    }
}

impl OwnedGuard {
    /// Whether the previous owner died holding the lock.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Whether the guard still holds the lock (it has not been unlocked).
    pub fn is_held(&self) -> bool {
        self.held
    }

    /// `Ok` when the lock is held and this is the thread that took it.
    fn check(&self) -> Result<()> {
        let name = || self.inner.name.clone();
        if !self.held {
            return Err(Error::NotLocked { name: name() });
        }
        if std::thread::current().id() != self.thread {
            return Err(Error::WrongThread { name: name() });
        }
        Ok(())
    }

    /// The published content; stable while the lock is held.
    ///
    /// # Errors
    /// [`Error::WrongThread`], [`Error::NotLocked`], [`Error::Corrupted`].
    pub fn read(&self) -> Result<Snapshot> {
        self.check()?;
        let mut content = Vec::new();
        Ok(self.inner.read_locked(&mut content)?.with(content))
    }

    /// Publish `content`; the lock stays held.
    ///
    /// # Errors
    /// [`Error::WrongThread`], [`Error::NotLocked`], [`Error::TooLarge`]
    /// (nothing written).
    pub fn publish(&mut self, content: &[u8]) -> Result<Published> {
        self.check()?;
        if content.len() > self.inner.capacity {
            return Err(Error::TooLarge {
                len: content.len(),
                capacity: self.inner.capacity,
            });
        }
        Ok(Published {
            generation: self.inner.publish_locked(content),
            owner_died: self.owner_died,
        })
    }

    /// Release the lock now.
    ///
    /// # Errors
    /// [`Error::WrongThread`] (the lock stays held), [`Error::NotLocked`]
    /// when it was released already.
    pub fn unlock(&mut self) -> Result<()> {
        self.check()?;
        self.held = false;
        self.inner.unlock();
        Ok(())
    }
}

impl Drop for OwnedGuard {
    fn drop(&mut self) {
        if !self.held || self.inner.in_forked_child() {
            return;
        }
        if std::thread::current().id() == self.thread {
            self.inner.unlock();
        } else {
            self.inner.unlock_for(self.tid);
        }
    }
}

/// Join lines with `'\n'`.
pub(crate) fn join_lines<I, S>(lines: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut text = String::new();
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(line.as_ref());
    }
    text
}

/// Split text at `'\n'`; empty text is no lines.
pub(crate) fn split_lines(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    }
}
