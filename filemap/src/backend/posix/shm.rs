//! The objects behind regions: POSIX shared-memory objects named by a hash
//! of the region name, or regular files (`Builder::path`).
//!
//! macOS limits shared-memory object names to 31 bytes (`PSHMNAMLEN`), so
//! an object is named `/fm.<16 hex digits>`, the FNV-1a hash of the
//! region name, and the full name is kept in the header: an object whose
//! header holds another name is a collision, reported as an error, never
//! attached to.
//!
//! On Linux, glibc's `shm_open(3)` is `open(2)` of `/dev/shm/<name>` with
//! `O_NOFOLLOW | O_CLOEXEC`: the Linux build does that itself, through the
//! same checked open the Linux backend uses (no FIFOs, sockets or
//! symlinks), so the objects it makes are the files tests look at. macOS
//! and FreeBSD use `shm_open(2)` / `shm_unlink(2)`.

#![forbid(unsafe_code)]

use std::io;
use std::path::{Path, PathBuf};

use crate::backend::seam::hash_name;
use crate::backend::unix::{self, Fd};

/// Where a region lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Object {
    /// A shared-memory object, by its `shm_open` name (`/fm.<hash>`).
    Shm(String),
    /// A regular file.
    File(PathBuf),
}

impl Object {
    /// The shared-memory object of region `name`.
    pub fn for_name(name: &str) -> Object {
        Object::Shm(format!("/fm.{:016x}", hash_name(name)))
    }

    /// What users are shown: a file path (Linux: `/dev/shm/fm.<hash>`) or
    /// the object name.
    pub fn shown(&self) -> PathBuf {
        match self {
            Object::Shm(name) => shm_shown(name),
            Object::File(path) => path.clone(),
        }
    }

    /// Identifies the object in this process (the lock's table of held
    /// regions).
    pub fn key(&self) -> u64 {
        hash_name(&self.shown().to_string_lossy())
    }

    /// Open the existing object.
    pub fn open(&self, writable: bool) -> io::Result<Fd> {
        match self {
            Object::Shm(name) => shm_open_existing(name, writable),
            Object::File(path) => unix::open_existing(path, writable),
        }
    }

    /// Remove the object's name.
    pub fn unlink(&self) -> io::Result<()> {
        match self {
            Object::Shm(name) => shm_unlink(name),
            Object::File(path) => unix::unlink(path),
        }
    }

    /// Whether the name still leads to `fd`'s object, where that can be
    /// told (`fstat(2)` against `lstat(2)`); `None` for macOS and FreeBSD
    /// shared-memory objects, which have no path to look at.
    pub fn names(&self, fd: &Fd) -> Option<bool> {
        let path = match self {
            Object::File(path) => path.clone(),
            Object::Shm(name) if cfg!(target_os = "linux") => shm_shown(name),
            Object::Shm(_) => return None,
        };
        unix::names_file(&path, fd).ok()
    }
}

#[cfg(target_os = "linux")]
fn shm_shown(name: &str) -> PathBuf {
    Path::new("/dev/shm").join(name.trim_start_matches('/'))
}

#[cfg(not(target_os = "linux"))]
fn shm_shown(name: &str) -> PathBuf {
    PathBuf::from(name)
}

/// `shm_open(3)` of an existing object (Linux: the checked `open(2)` of
/// its `/dev/shm` file).
#[cfg(target_os = "linux")]
fn shm_open_existing(name: &str, writable: bool) -> io::Result<Fd> {
    unix::open_existing(&shm_shown(name), writable)
}

/// `shm_open(2)` of an existing object, read-write or read-only.
#[cfg(not(target_os = "linux"))]
fn shm_open_existing(name: &str, writable: bool) -> io::Result<Fd> {
    use rustix::shm::{self, Mode, OFlags};
    let flags = if writable {
        OFlags::RDWR
    } else {
        OFlags::RDONLY
    };
    Ok(shm::open(name, flags, Mode::empty())?)
}

/// Create the shared-memory object `name`, failing with `AlreadyExists`
/// if it exists: `shm_open(2)` with `O_CREAT | O_EXCL` (Linux: `open(2)`
/// of the `/dev/shm` file with `O_CREAT | O_EXCL | O_NOFOLLOW`, then
/// `fchmod(2)`, since the umask may have removed bits asked for).
pub fn shm_create(name: &str, mode: u32) -> io::Result<Fd> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{self, Mode, OFlags};
        let mode = Mode::from_raw_mode(mode);
        let fd = fs::open(
            shm_shown(name),
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            mode,
        )?;
        fs::fchmod(&fd, mode)?;
        Ok(fd)
    }
    #[cfg(not(target_os = "linux"))]
    {
        use rustix::shm::{self, Mode, OFlags};
        let flags = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL;
        Ok(shm::open(name, flags, Mode::from_raw_mode(mode as _))?)
    }
}

/// `shm_unlink(3)` (Linux: `unlink(2)` of the `/dev/shm` file).
fn shm_unlink(name: &str) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        unix::unlink(&shm_shown(name))
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(rustix::shm::unlink(name)?)
    }
}

/// Create a new regular file at `path` (never following a symlink there),
/// failing with `AlreadyExists`: `open(2)` with `O_CREAT | O_EXCL |
/// O_NOFOLLOW`, then `fchmod(2)`.
pub fn file_create(path: &Path, mode: u32) -> io::Result<Fd> {
    use rustix::fs::{self, Mode, OFlags};
    let mode = Mode::from_raw_mode(mode as _);
    let fd = fs::open(
        path,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        mode,
    )?;
    fs::fchmod(&fd, mode)?;
    Ok(fd)
}

/// Give the file at `temp` the name `path` too, failing with
/// `AlreadyExists` if `path` exists: `link(2)`.
pub fn link(temp: &Path, path: &Path) -> io::Result<()> {
    Ok(rustix::fs::link(temp, path)?)
}

/// Set the file's size: `ftruncate(2)`; on Linux, also reserve the pages
/// (`fallocate(2)`), so a full `/dev/shm` is an error now and never a
/// SIGBUS later. macOS and FreeBSD shared-memory objects are given their
/// size only: their pages come from memory when touched.
pub fn set_size(fd: &Fd, size: u64) -> io::Result<()> {
    rustix::fs::ftruncate(fd, size)?;
    #[cfg(target_os = "linux")]
    match rustix::fs::fallocate(fd, rustix::fs::FallocateFlags::empty(), 0, size) {
        Ok(()) | Err(rustix::io::Errno::OPNOTSUPP) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}
