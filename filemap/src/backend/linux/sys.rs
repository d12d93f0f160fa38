//! The Linux backend's own system calls: creating a file unnamed
//! (`O_TMPFILE`) and naming it complete (`linkat(2)`), reserving its
//! storage (`fallocate(2)`), and `flock(2)` for lifetime.

#![forbid(unsafe_code)]

use std::io;
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self, AtFlags, FallocateFlags, FlockOperation, Mode, OFlags, CWD};
use rustix::io::Errno;

use crate::attach::Process;
use crate::backend::unix::{pid, Fd, Unix};

/// Directory that holds POSIX shared memory objects.
pub fn shm_dir() -> &'static Path {
    Path::new("/dev/shm")
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
            // The process's start time too: a creator that died here left
            // its temporary file behind, and process ids are reused.
            let temp = dir.join(format!(
                ".filemap-init.{}.{}.{n}",
                pid(),
                Unix::own_start_time()
            ));
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

/// Try to take a shared `flock(2)` on `fd` without waiting; `false` while
/// another open file holds it exclusively.
pub fn try_lock_shared(fd: &Fd) -> io::Result<bool> {
    try_flock(fd, FlockOperation::NonBlockingLockShared)
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
    let locked = try_flock(&fd, FlockOperation::NonBlockingLockExclusive)?;
    Ok(locked.then_some(DirLock(fd)))
}

/// Try to take an exclusive `flock(2)` on `fd` without waiting; `false` if
/// another open file holds a lock. Replaces a shared lock held through `fd`.
pub fn try_lock_exclusive(fd: &Fd) -> io::Result<bool> {
    try_flock(fd, FlockOperation::NonBlockingLockExclusive)
}

/// `flock(2)` with a non-blocking `operation`: `false` when another open
/// file's lock is in the way (`EWOULDBLOCK`).
fn try_flock(fd: impl AsFd, operation: FlockOperation) -> io::Result<bool> {
    match fs::flock(fd, operation) {
        Ok(()) => Ok(true),
        Err(Errno::WOULDBLOCK) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Whether the file has lost its last name: `fstat(2)` link count.
pub fn is_unlinked(fd: &Fd) -> io::Result<bool> {
    Ok(fs::fstat(fd)?.st_nlink == 0)
}

/// The file's size and link count (0: it lost its last name): one
/// `fstat(2)`.
pub fn size_and_links(fd: &Fd) -> io::Result<(u64, u64)> {
    let stat = fs::fstat(fd)?;
    Ok((stat.st_size as u64, stat.st_nlink as u64))
}
