//! What the Unix backends share: the mapping (`mmap(2)`), opening an
//! existing backing file safely, `fstat(2)` checks, the fork epoch, the
//! process id, and the Unix process facts (`process.rs`). Linux
//! kernel facilities are beside this file: futexes (`futex.rs`) and
//! thread ids and `/proc` liveness (`tasks.rs`).
//!
//! Every function names the system call it wraps (its manual page).

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;

use rustix::fs::{self, Mode, OFlags};
use rustix::io::Errno;
use rustix::mm::{self, MapFlags, ProtFlags};

use super::seam::{ErrorClass, Map};
use crate::layout::{Header, HEADER_SIZE};

mod fault;
#[cfg(target_os = "linux")]
pub(crate) mod futex;
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
mod process;
#[cfg(target_os = "linux")]
pub(crate) mod tasks;

#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub(crate) use process::Unix;

/// An open backing file.
pub type Fd = OwnedFd;

/// `open(2)` an existing backing file read-write (or read-only), never
/// following a symlink at `path`, never blocking (a FIFO opened read-only
/// would wait for a writer) and never taking a controlling terminal.
/// Anything but a regular file (FIFO, socket, device, directory) is
/// refused with [`NotRegular`], checked by `fstat(2)` on what was opened.
pub fn open_existing(path: &Path, writable: bool) -> io::Result<Fd> {
    let access = if writable {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    open_regular(path, access, Mode::empty())
}

/// Open `path` read-write, creating it empty with `mode` (less the umask)
/// when it is missing, with the care of [`open_existing`]: a symlink at
/// `path` is refused (`ELOOP`), never followed, a FIFO does not block, and
/// anything but a regular file is refused with [`NotRegular`]. For marker
/// files such as the posix backend's registry entries (whose creator
/// locks them and writes its name in them while it creates the region).
#[cfg_attr(
    all(target_os = "linux", not(feature = "posix-backend")),
    allow(dead_code)
)]
pub fn open_or_create_regular(path: &Path, mode: Mode) -> io::Result<Fd> {
    open_regular(path, OFlags::RDWR | OFlags::CREATE, mode)
}

/// `open(2)` with `flags` plus `O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK |
/// O_NOCTTY`, then `fstat(2)`: only a regular file is returned.
fn open_regular(path: &Path, flags: OFlags, mode: Mode) -> io::Result<Fd> {
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match fs::open(path, flags, mode) {
        Ok(fd) => fd,
        // A directory opened for writing, or a socket: not a region.
        Err(Errno::ISDIR | Errno::NXIO) => {
            return Err(not_regular("it is a directory or a socket"))
        }
        Err(e) => return Err(e.into()),
    };
    let kind = fs::FileType::from_raw_mode(fs::fstat(&fd)?.st_mode);
    match kind {
        fs::FileType::RegularFile => Ok(fd),
        fs::FileType::Fifo => Err(not_regular("it is a FIFO (named pipe)")),
        fs::FileType::Directory => Err(not_regular("it is a directory")),
        fs::FileType::Socket => Err(not_regular("it is a socket")),
        fs::FileType::CharacterDevice | fs::FileType::BlockDevice => {
            Err(not_regular("it is a device"))
        }
        _ => Err(not_regular("it is not a regular file")),
    }
}

/// The error payload of an `open_existing` that found something other
/// than a regular file; [`classify`] reports it as [`ErrorClass::NotRegular`].
#[derive(Debug)]
pub struct NotRegular(pub &'static str);

impl std::fmt::Display for NotRegular {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl std::error::Error for NotRegular {}

fn not_regular(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, NotRegular(what))
}

/// Size of the file in bytes: `fstat(2)`.
pub fn file_size(fd: &Fd) -> io::Result<u64> {
    Ok(fs::fstat(fd)?.st_size as u64)
}

/// Give the bytes `offset .. offset + len` of `fd` storage now.
///
/// Linux: `fallocate(2)` with `FALLOC_FL_KEEP_SIZE`, so the file's size
/// never changes: a range past the end of a file someone cut short is not
/// brought back into it (mode 0 would extend the file, and a growing
/// writer would then publish into a region whose cut nobody noticed); the
/// access past the end then faults as any other (`fault.rs`). On tmpfs (`/dev/shm`) this allocates the pages at once, so
/// a full store is `ENOSPC` here, before anything is written, and never a
/// `SIGBUS` at a later page fault; pages already allocated are left as
/// they are, with their contents. A filesystem without `fallocate`
/// (`EOPNOTSUPP`) leaves it to the page faults, as it always did.
///
/// macOS and FreeBSD: nothing. Their shared-memory objects take pages
/// from memory (and swap) when they are first touched, and have no call
/// that reserves them ahead.
pub fn back(fd: &Fd, offset: u64, len: u64) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    if len > 0 {
        match fs::fallocate(fd, fs::FallocateFlags::KEEP_SIZE, offset, len) {
            Ok(()) | Err(Errno::OPNOTSUPP) => {}
            Err(e) => return Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, offset, len);
    Ok(())
}

/// Give back the storage of `offset .. offset + len` of `fd`, after a
/// growth that could not get all it needed: `fallocate(2)` with
/// `FALLOC_FL_PUNCH_HOLE` on Linux (the file keeps its size), so a failed
/// growth leaves no half of itself using the store. Best effort; nothing
/// elsewhere.
pub fn unback(fd: &Fd, offset: u64, len: u64) {
    #[cfg(target_os = "linux")]
    if len > 0 {
        let punch = fs::FallocateFlags::PUNCH_HOLE | fs::FallocateFlags::KEEP_SIZE;
        let _ = fs::fallocate(fd, punch, offset, len);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = (fd, offset, len);
}

/// Size a new region's file `fd` for growth up to `max_capacity`
/// (`ftruncate(2)`: on tmpfs a sparse file, which costs nothing until its
/// pages are allocated) and back the header and the first `capacity`
/// bytes of each buffer ([`back`]). A region that cannot grow is not
/// given this way: its caller sizes and backs it in one call, as before.
pub fn size_for_growth(fd: &Fd, capacity: usize, max_capacity: usize) -> io::Result<()> {
    fs::ftruncate(fd, crate::layout::region_size(max_capacity) as u64)?;
    for (offset, len) in crate::layout::backed_ranges(max_capacity, 0, capacity) {
        back(fd, offset as u64, len as u64)?;
    }
    Ok(())
}

/// Whether `path` names the same file as `fd`: `fstat(2)` and `lstat(2)`.
pub fn names_file(path: &Path, fd: &Fd) -> io::Result<bool> {
    let ours = fs::fstat(fd)?;
    match fs::lstat(path) {
        Ok(named) => Ok(named.st_dev == ours.st_dev && named.st_ino == ours.st_ino),
        Err(Errno::NOENT) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Remove the name `path`: `unlink(2)`.
pub fn unlink(path: &Path) -> io::Result<()> {
    Ok(fs::unlink(path)?)
}

/// File names in `dir`: `getdents64(2)` through `std::fs`.
pub fn list_dir(dir: &Path) -> io::Result<Vec<OsString>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        names.push(entry?.file_name());
    }
    Ok(names)
}

/// A shared mapping of a whole file, unmapped on drop. It survives the
/// file shrinking under it: the access that faults gets zero pages of our
/// own instead of `SIGBUS`, and [`Mapping::is_lost`] turns true (see
/// `fault.rs`).
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    watched: &'static fault::Watched,
}

// SAFETY: the mapping is plain memory owned by this value; all access to
// its contents goes through atomics or raw copies whose callers uphold
// their own synchronisation, so moving or sharing the owner across threads
// is sound.
unsafe impl Send for Mapping {}
// SAFETY: as for `Send`: `&Mapping` only exposes the base pointer and length.
unsafe impl Sync for Mapping {}

impl Mapping {
    /// Map `len` bytes of `fd` shared: `mmap(2)` with `MAP_SHARED`.
    /// Fails with `InvalidInput` for less than a header: every mapping
    /// holds one, which [`Mapping::header`] relies on.
    pub fn new(fd: &Fd, len: usize, writable: bool) -> io::Result<Mapping> {
        if len < HEADER_SIZE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a mapping must hold a filemap header",
            ));
        }
        let prot = if writable {
            ProtFlags::READ | ProtFlags::WRITE
        } else {
            ProtFlags::READ
        };
        // SAFETY:
        // - a null hint lets the kernel choose an address, so no existing
        //   mapping is replaced;
        // - the caller checked that the file is at least `len` bytes long;
        // - the returned memory is only used through `Mapping`, which unmaps
        //   it exactly once in `drop`.
        let ptr = unsafe {
            mm::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                MapFlags::SHARED,
                fd.as_fd(),
                0,
            )?
        };
        let ptr =
            NonNull::new(ptr.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave null"))?;
        let watched = fault::watch(ptr.as_ptr(), len);
        Ok(Mapping { ptr, len, watched })
    }

    /// The header of `fd` mapped afresh, if the file still holds it
    /// (`fstat(2)`, then `mmap(2)`): for a handle whose own mapping was
    /// lost, to release the lock it holds in the region. A cut racing the
    /// look is caught like any other (the mapping is watched: `fault.rs`).
    pub fn header_again(fd: &Fd) -> Option<Mapping> {
        match file_size(fd) {
            Ok(size) if size >= HEADER_SIZE as u64 => Mapping::new(fd, HEADER_SIZE, true).ok(),
            _ => None,
        }
    }

    /// Whether the file shrank under the mapping, which then holds zero
    /// pages of this process's own: the handle must not be used any more.
    #[inline]
    pub fn is_lost(&self) -> bool {
        self.watched.is_lost()
    }

    /// Check that `fd`, the file mapped, still covers the whole mapping
    /// (`fstat(2)`); if it shrank, give up the mapping as a fault on it
    /// would (see `fault.rs`). For threads that only touch pages the
    /// file still holds, such as a waiter polling the header: they call
    /// this when they have seen nothing change for a while.
    pub fn verify(&self, fd: &Fd) {
        if self.is_lost() || file_size(fd).map_or(true, |size| size >= self.len as u64) {
            return;
        }
        // SAFETY: the range is this live mapping, which `watched` watches.
        unsafe { fault::abandon(self.watched, self.ptr.as_ptr() as usize, self.len) };
    }

    /// The start of the mapping.
    pub fn base(&self) -> NonNull<u8> {
        self.ptr
    }

    /// The header at the start of the mapping.
    pub fn header(&self) -> &Header {
        // SAFETY: `new` refused mappings shorter than a header, and `mmap`
        // returns page-aligned memory (alignment enough for `Header`); the
        // reference borrows `self`, so it cannot outlive the mapping.
        unsafe { Header::at(self.ptr) }
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Map for Mapping {
    fn base(&self) -> NonNull<u8> {
        Mapping::base(self)
    }

    fn header(&self) -> &Header {
        Mapping::header(self)
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // Unwatched first: once unmapped, the range may be mapped again by
        // anyone, and the fault handler must not touch it then.
        self.watched.release();
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, and this is
        // the only unmap: `Mapping` is not `Clone`. `munmap(2)`.
        unsafe {
            let _ = mm::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Bumped in the child after every `fork(2)`, so per-thread caches made
/// before the fork (the parent's thread id) are not trusted after it.
/// 0 until the child handler is registered: [`fork_epoch`] never returns
/// it, so one load tells both facts.
static FORK_EPOCH: AtomicU32 = AtomicU32::new(0);

extern "C" fn after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// How many `fork(2)`s this process descends through since filemap was
/// first used in it, plus one: a handle made at one epoch and used at
/// another is in a forked child. Inlined: every operation on a handle
/// asks, so the common case is one load.
#[inline]
pub fn fork_epoch() -> u32 {
    match FORK_EPOCH.load(Ordering::Relaxed) {
        0 => register_fork_handler(),
        epoch => epoch,
    }
}

/// Register the child handler, once, then leave the unregistered epoch 0.
/// A fork between the two gives the child epoch 1 as well as the parent:
/// harmless, since no epoch was handed out before this returns.
#[cold]
fn register_fork_handler() -> u32 {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: `pthread_atfork(3)` with only a child handler, which is
        // async-signal-safe (one atomic add) as handlers run after fork.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    let _ = FORK_EPOCH.compare_exchange(0, 1, Ordering::Relaxed, Ordering::Relaxed);
    FORK_EPOCH.load(Ordering::Relaxed)
}

/// CPUs online on the machine (`sysconf(_SC_NPROCESSORS_ONLN)`), cached;
/// at least 1.
pub fn online_cpus() -> usize {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let cached = CACHE.load(Ordering::Relaxed);
    if cached != 0 {
        return cached as usize;
    }
    // SAFETY: sysconf reads a system constant; it has no preconditions.
    let cpus = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    let cpus = u64::try_from(cpus).unwrap_or(1).max(1);
    CACHE.store(cpus, Ordering::Relaxed);
    cpus as usize
}

/// Threads runnable or running on the machine now: the fourth field of
/// Linux's `/proc/loadavg` (`running/total`), which the kernel counts at
/// the read (one small read, a few microseconds). `None` elsewhere, or
/// when the file is missing or says something else.
pub fn runnable_threads() -> Option<usize> {
    #[cfg(target_os = "linux")]
    {
        use std::io::Read as _;
        let mut text = [0u8; 128];
        let mut file = std::fs::File::open("/proc/loadavg").ok()?;
        let n = file.read(&mut text).ok()?;
        parse_loadavg_running(text.get(..n)?)
    }
    #[cfg(not(target_os = "linux"))]
    {
        None
    }
}

/// The address of the low 32 bits of a 64-bit word: the half of the
/// region lock word that threads sleep on (its high half holds the
/// owner's start time), for `futex(2)` on Linux and the posix backend's
/// wait-on-address elsewhere. Only the kernel reads through it (comparing
/// atomically).
#[cfg(any(target_os = "linux", target_os = "macos", target_os = "freebsd"))]
pub(crate) fn low_half(word: &AtomicU64) -> *mut u32 {
    let base = word.as_ptr().cast::<u32>();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// The running count in a `/proc/loadavg` line
/// (`0.20 0.18 0.12 2/180 1234`), or `None` if it is not one. Only Linux
/// has the file; the parser is tested on every Unix.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub fn parse_loadavg_running(text: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(text).ok()?;
    let field = text.split_ascii_whitespace().nth(3)?;
    let (running, _total) = field.split_once('/')?;
    running.parse().ok()
}

/// This process's id: `getpid(2)`, cached per fork (the lock records it on
/// every acquisition, and `getpid` is a real system call).
pub fn pid() -> u32 {
    static CACHE: AtomicU64 = AtomicU64::new(0);
    let epoch = u64::from(fork_epoch()) + 1; // 0 in the cache means "empty"
    let cached = CACHE.load(Ordering::Relaxed);
    if cached >> 32 == epoch {
        return cached as u32;
    }
    let pid = rustix::process::getpid().as_raw_nonzero().get() as u32;
    CACHE.store(epoch << 32 | u64::from(pid), Ordering::Relaxed);
    pid
}

/// Classify an OS error: `ENOSPC` is out of space, `ELOOP` (from
/// `O_NOFOLLOW`) a refused symbolic link, [`NotRegular`] a file of the
/// wrong kind.
pub fn classify(e: &io::Error) -> ErrorClass {
    if let Some(NotRegular(what)) = e.get_ref().and_then(|inner| inner.downcast_ref()) {
        return ErrorClass::NotRegular(what);
    }
    match e.raw_os_error() {
        Some(code) if code == Errno::NOSPC.raw_os_error() => ErrorClass::OutOfSpace,
        Some(code) if code == Errno::LOOP.raw_os_error() => ErrorClass::Symlink,
        _ => ErrorClass::Other,
    }
}

/// Text for a raw name read from a directory.
pub fn name_to_string(name: OsString) -> Option<String> {
    String::from_utf8(name.into_vec()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_running_count_is_the_fourth_field_of_loadavg() {
        assert_eq!(
            parse_loadavg_running(b"0.20 0.18 0.12 3/180 1234\n"),
            Some(3)
        );
        assert_eq!(parse_loadavg_running(b"0.20 0.18 0.12"), None);
        assert_eq!(parse_loadavg_running(b"a b c d/e f"), None);
        assert_eq!(parse_loadavg_running(b"\xff\xfe"), None);
    }

    /// As many busy threads as the machine has CPUs, and this one: the
    /// kernel counts more runnable threads than CPUs, which is what stops
    /// an adaptive wait from spinning.
    #[cfg(target_os = "linux")]
    #[test]
    fn busy_threads_beyond_the_cpus_are_counted_runnable() {
        use std::sync::atomic::AtomicBool;
        let cpus = online_cpus();
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for _ in 0..cpus {
                s.spawn(|| {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                });
            }
            // The threads take a moment to be scheduled: look until they
            // are (a quiet machine: at once), at most 10 s.
            let start = std::time::Instant::now();
            let mut seen = None;
            while start.elapsed() < std::time::Duration::from_secs(10) {
                seen = runnable_threads();
                if seen.is_some_and(|r| r > cpus) {
                    break;
                }
                std::hint::spin_loop();
            }
            stop.store(true, Ordering::Relaxed);
            assert!(
                seen.is_some_and(|r| r > cpus),
                "{seen:?} runnable with {cpus} busy threads and this one on {cpus} CPUs"
            );
        });
    }
}
