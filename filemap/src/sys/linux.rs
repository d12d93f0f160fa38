//! Linux backend: POSIX shared memory under `/dev/shm`, `flock` for
//! lifetime, futexes for waiting, `/proc` for process liveness.
//!
//! Every function names the system call it wraps. glibc's `shm_open(3)` is
//! `open(2)` on `/dev/shm/<name>`; we open that path ourselves so the
//! same code serves shared memory and file-backed regions, and so creation
//! can use `O_TMPFILE` + `linkat(2)` to publish a fully initialised region
//! under its name in one atomic step.

use std::ffi::OsString;
use std::io;
use std::os::fd::{AsFd, OwnedFd};

/// An open backing file.
pub type Fd = OwnedFd;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::fs::{self, AtFlags, FallocateFlags, FlockOperation, Mode, OFlags, CWD};
use rustix::io::Errno;
use rustix::mm::{self, MapFlags, ProtFlags};
use rustix::thread::futex;

use super::ErrorClass;

/// Directory that holds POSIX shared memory objects.
pub fn shm_dir() -> &'static Path {
    Path::new("/dev/shm")
}

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
    let flags = access | OFlags::NOFOLLOW | OFlags::CLOEXEC | OFlags::NONBLOCK | OFlags::NOCTTY;
    let fd = match fs::open(path, flags, Mode::empty()) {
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

/// A file being prepared for creation, not yet visible under its name.
pub struct Unnamed {
    pub fd: Fd,
    temp: TempName,
}

/// A temporary name, on filesystems without `O_TMPFILE`; removed on drop
/// (after `publish_name` gave the file its real name, or on failure).
struct TempName(Option<PathBuf>);

impl Drop for TempName {
    fn drop(&mut self) {
        if let Some(temp) = &self.0 {
            let _ = fs::unlink(temp);
        }
    }
}

/// Create an anonymous file in `dir` with permissions `mode`:
/// `open(2)` with `O_TMPFILE`, or with `O_CREAT | O_EXCL` on a temporary
/// name where the filesystem lacks `O_TMPFILE`.
pub fn create_unnamed(dir: &Path, mode: u32) -> io::Result<Unnamed> {
    let mode = Mode::from_raw_mode(mode);
    let flags = OFlags::RDWR | OFlags::CLOEXEC;
    let unnamed = match fs::open(dir, flags | OFlags::TMPFILE, mode) {
        Ok(fd) => Unnamed {
            fd,
            temp: TempName(None),
        },
        Err(Errno::OPNOTSUPP | Errno::ISDIR | Errno::INVAL) => {
            static COUNTER: AtomicU64 = AtomicU64::new(0);
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let temp = dir.join(format!(".filemap-init.{}.{n}", pid()));
            let fd = fs::open(
                &temp,
                flags | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW,
                mode,
            )?;
            Unnamed {
                fd,
                temp: TempName(Some(temp)),
            }
        }
        Err(e) => return Err(e.into()),
    };
    // The umask may have removed bits the caller asked for: `fchmod(2)`.
    fs::fchmod(&unnamed.fd, mode)?;
    Ok(unnamed)
}

/// Give `file` the name `path`, failing with `AlreadyExists` if the name is
/// taken: `linkat(2)`. Never replaces an existing file.
pub fn publish_name(file: &Unnamed, path: &Path) -> io::Result<()> {
    match &file.temp.0 {
        Some(temp) => fs::linkat(CWD, temp, CWD, path, AtFlags::empty())?,
        None => {
            // `AT_EMPTY_PATH` needs CAP_DAC_READ_SEARCH on older kernels;
            // the /proc link works for everyone.
            let proc_link = format!("/proc/self/fd/{}", raw_fd(&file.fd));
            fs::linkat(CWD, proc_link.as_str(), CWD, path, AtFlags::SYMLINK_FOLLOW)?
        }
    }
    Ok(())
}

fn raw_fd(fd: &Fd) -> i32 {
    use std::os::fd::AsRawFd;
    fd.as_raw_fd()
}

/// Reserve `len` bytes of backing store so later page faults cannot fail:
/// `fallocate(2)`. On tmpfs this allocates the pages now, so a full
/// `/dev/shm` is an error here and never a SIGBUS later.
pub fn reserve(fd: &Fd, len: u64) -> io::Result<()> {
    match fs::fallocate(fd, FallocateFlags::empty(), 0, len) {
        Ok(()) => Ok(()),
        // Filesystems without fallocate: at least give the file its size.
        Err(Errno::OPNOTSUPP) => Ok(fs::ftruncate(fd, len)?),
        Err(e) => Err(e.into()),
    }
}

/// Size of the file in bytes: `fstat(2)`.
pub fn file_size(fd: &Fd) -> io::Result<u64> {
    Ok(fs::fstat(fd)?.st_size as u64)
}

/// Whether the file has lost its last name: `fstat(2)` link count.
pub fn is_unlinked(fd: &Fd) -> io::Result<bool> {
    Ok(fs::fstat(fd)?.st_nlink == 0)
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

/// Try to take a shared `flock(2)` on `fd` without waiting; `false` while
/// another open file holds it exclusively.
pub fn try_lock_shared(fd: &Fd) -> io::Result<bool> {
    match fs::flock(fd, FlockOperation::NonBlockingLockShared) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// An exclusive `flock(2)` on a directory, serialising the name changes
/// (unlinks) made in it by filemap. Released on drop (`close(2)`).
pub struct DirLock(#[allow(dead_code)] OwnedFd);

/// Try once to lock directory `dir` exclusively: `open(2)` + `flock(2)`.
pub fn try_lock_dir(dir: &Path) -> io::Result<Option<DirLock>> {
    let fd = fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    match fs::flock(&fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(Some(DirLock(fd))),
        Err(Errno::WOULDBLOCK) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Try to take an exclusive `flock(2)` on `fd` without waiting; `false` if
/// another open file holds a lock. Replaces a shared lock held through `fd`.
pub fn try_lock_exclusive(fd: &Fd) -> io::Result<bool> {
    match fs::flock(fd, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
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

/// A shared mapping of a whole file, unmapped on drop.
pub struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
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
    pub fn new(fd: &Fd, len: usize, writable: bool) -> io::Result<Mapping> {
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
        // SAFETY: holds by the conditions listed above.
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
        Ok(Mapping { ptr, len })
    }

    pub fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn len(&self) -> usize {
        self.len
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: `ptr`/`len` are exactly what `mmap` returned, and this is
        // the only unmap: `Mapping` is not `Clone`. `munmap(2)`.
        unsafe {
            let _ = mm::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Sleep while `*word == expected`, at most `timeout`: `futex(2)`
/// `FUTEX_WAIT` (shared, since the word lives in a shared mapping).
/// Returns on wake, timeout, signal or a changed word alike.
pub fn futex_wait(word: &AtomicU32, expected: u32, timeout: Duration) {
    let ts = rustix::time::Timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as i64,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    let _ = futex::wait(word, futex::Flags::empty(), expected, Some(&ts));
}

/// Wake up to `count` threads sleeping on `word`: `futex(2)` `FUTEX_WAKE`.
pub fn futex_wake(word: &AtomicU32, count: u32) -> usize {
    futex::wake(word, futex::Flags::empty(), count).unwrap_or(0)
}

/// The address of the low 32 bits of a 64-bit word: the futex word of the
/// region lock, whose high half holds the owner's start time.
fn low_half(word: &AtomicU64) -> *mut u32 {
    let base = word.as_ptr().cast::<u32>();
    if cfg!(target_endian = "little") {
        base
    } else {
        base.wrapping_add(1)
    }
}

/// Sleep while the low 32 bits of `word` equal `expected`, at most
/// `timeout`: `futex(2)` `FUTEX_WAIT` on the word's low half (shared).
/// Returns on wake, timeout, signal or a changed word alike.
pub fn futex_wait_low(word: &AtomicU64, expected: u32, timeout: Duration) {
    let ts = libc::timespec {
        tv_sec: timeout.as_secs().min(i64::MAX as u64) as libc::time_t,
        tv_nsec: timeout.subsec_nanos() as _,
    };
    // SAFETY:
    // - the address is 4-byte aligned and inside `word` (half of an 8-byte
    //   aligned atomic), which outlives the call;
    // - the kernel only reads the 32 bits (comparing them with `expected`
    //   atomically with queueing); Rust code never accesses them as a
    //   32-bit value, so no mixed-size access happens on our side;
    // - `ts` is a valid timespec for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_futex,
            low_half(word),
            libc::FUTEX_WAIT,
            expected,
            &ts as *const libc::timespec,
        );
    }
}

/// Wake up to `count` threads sleeping on the low half of `word`:
/// `futex(2)` `FUTEX_WAKE`. Returns how many were woken.
pub fn futex_wake_low(word: &AtomicU64, count: u32) -> usize {
    // SAFETY: the address is a 4-byte aligned half of `word`, alive for the
    // call; FUTEX_WAKE does not access the memory, it only keys the queue.
    let woken = unsafe { libc::syscall(libc::SYS_futex, low_half(word), libc::FUTEX_WAKE, count) };
    usize::try_from(woken).unwrap_or(0)
}

/// Bumped in the child after every `fork(2)`, so per-thread caches made
/// before the fork (the parent's thread id) are not trusted after it.
static FORK_EPOCH: AtomicU32 = AtomicU32::new(0);

extern "C" fn after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

/// How many `fork(2)`s this process descends through since filemap was
/// first used in it: a handle made at one epoch and used at another is
/// in a forked child.
pub fn fork_epoch() -> u32 {
    static REGISTERED: OnceLock<()> = OnceLock::new();
    REGISTERED.get_or_init(|| {
        // SAFETY: `pthread_atfork(3)` with only a child handler, which is
        // async-signal-safe (one atomic add) as handlers run after fork.
        unsafe {
            libc::pthread_atfork(None, None, Some(after_fork_in_child));
        }
    });
    FORK_EPOCH.load(Ordering::Relaxed)
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

/// This thread's id: `gettid(2)`, cached per thread (and per fork). Thread
/// ids are unique host-wide within one pid namespace and at most 2^22, so
/// they fit the lock word.
pub fn tid() -> u32 {
    thread_local! {
        static CACHE: std::cell::Cell<(u32, u32)> = const { std::cell::Cell::new((u32::MAX, 0)) };
    }
    let epoch = fork_epoch();
    CACHE.with(|cache| {
        let (cached_epoch, tid) = cache.get();
        if cached_epoch == epoch {
            return tid;
        }
        let tid = rustix::thread::gettid().as_raw_nonzero().get() as u32;
        cache.set((epoch, tid));
        tid
    })
}

/// Start time of this process in clock ticks since boot; 0 if unknown.
pub fn own_start_time() -> u64 {
    static CACHE: std::sync::Mutex<(u32, u64)> = std::sync::Mutex::new((u32::MAX, 0));
    let epoch = fork_epoch();
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.0 != epoch {
        *cache = (epoch, known_start_time(pid()));
    }
    cache.1
}

/// Start time of this thread in clock ticks since boot; 0 if unknown.
pub fn own_thread_start_time() -> u64 {
    thread_local! {
        static CACHE: std::cell::Cell<(u32, u64)> = const { std::cell::Cell::new((u32::MAX, 0)) };
    }
    let epoch = fork_epoch();
    CACHE.with(|cache| {
        let (cached_epoch, start) = cache.get();
        if cached_epoch == epoch {
            return start;
        }
        let start = known_start_time(tid());
        cache.set((epoch, start));
        start
    })
}

fn known_start_time(id: u32) -> u64 {
    match liveness(id) {
        Liveness::Alive { start_time } => start_time,
        _ => 0,
    }
}

/// What is known of a process or thread id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Liveness {
    /// It runs; started at `start_time` clock ticks after boot.
    Alive { start_time: u64 },
    /// No such task, or a zombie: proven gone.
    Dead,
    /// Could not tell (out of file descriptors, `/proc` hidden...): treat
    /// as alive, so nobody's lock is ever taken on a guess.
    Unknown,
}

/// Whether task `id` runs: `kill(2)` with signal 0 (`ESRCH` proves it is
/// gone), then field 3 (state) and 22 (start time) of `/proc/<id>/stat`.
pub fn liveness(id: u32) -> Liveness {
    // Ids come from shared memory: anything outside 1..=i32::MAX is no task
    // (and must not reach `Pid::from_raw`, which asserts on negatives).
    let Some(pid) = i32::try_from(id)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return Liveness::Dead;
    };
    if let Err(Errno::SRCH) = rustix::process::test_kill_process(pid) {
        return Liveness::Dead;
    }
    match std::fs::read(format!("/proc/{id}/stat")) {
        Ok(stat) => parse_stat(&stat),
        Err(_) => Liveness::Unknown,
    }
}

/// The process a thread belongs to: `Tgid` in `/proc/<tid>/status`.
pub fn process_of_thread(tid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))
        .and_then(|pid| pid.trim().parse().ok())
}

/// Parse state and start time out of a `/proc/<id>/stat` line. The command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from the last `)`.
fn parse_stat(stat: &[u8]) -> Liveness {
    let parsed = (|| {
        let close = stat.iter().rposition(|&b| b == b')')?;
        let rest = std::str::from_utf8(&stat[close + 1..]).ok()?;
        let mut fields = rest.split_ascii_whitespace();
        let state = fields.next()?; // field 3
        if state == "Z" || state == "X" {
            return Some(Liveness::Dead);
        }
        let start_time = fields.nth(18)?.parse().ok()?; // field 22
        Some(Liveness::Alive { start_time })
    })();
    parsed.unwrap_or(Liveness::Unknown)
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
    fn parses_start_time_past_a_hostile_command_name() {
        let line = b"42 (a) b (c) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(line), Liveness::Alive { start_time: 987654 });
        let zombie = b"42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 10";
        assert_eq!(parse_stat(zombie), Liveness::Dead);
        assert_eq!(parse_stat(b"42 (x) S 1"), Liveness::Unknown);
    }

    #[test]
    fn own_start_time_is_known_and_stable() {
        assert!(own_start_time() > 0);
        assert_eq!(
            liveness(pid()),
            Liveness::Alive {
                start_time: own_start_time()
            }
        );
        assert_eq!(liveness(0), Liveness::Dead);
        assert_eq!(liveness(u32::MAX), Liveness::Dead);
    }

    #[test]
    fn a_forked_child_sees_its_own_thread_id() {
        let parent = tid();
        let _ = pid(); // fill the cache the child must not trust
                       // SAFETY: the child only makes async-signal-safe calls (gettid via
                       // our cache, write to a pipe) and leaves with `_exit`.
        let child = unsafe { libc::fork() };
        if child == 0 {
            let ok =
                tid() != parent && tid() == rustix::thread::gettid().as_raw_nonzero().get() as u32;
            // SAFETY: `_exit(2)` ends the forked child without running the
            // parent's destructors or test harness.
            unsafe { libc::_exit(if ok { 0 } else { 1 }) };
        }
        let mut status = 0;
        // SAFETY: waits for the child forked above; `status` is a valid pointer.
        unsafe { libc::waitpid(child, &mut status, 0) };
        assert!(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0);
    }
}
