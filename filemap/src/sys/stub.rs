//! Stub backend for targets filemap does not support yet: every call that
//! would touch the OS fails with `Unsupported`, so `cargo check` passes and
//! users get a clear error at run time.

#![forbid(unsafe_code)]

use std::ffi::OsString;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU32, AtomicU64};
use std::time::Duration;

use super::ErrorClass;

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "filemap has no backend for this platform",
    )
}

/// An open backing file (never constructed here).
pub struct Fd(());

pub fn shm_dir() -> &'static Path {
    Path::new("")
}

pub fn open_existing(_path: &Path, _writable: bool) -> io::Result<Fd> {
    Err(unsupported())
}

pub struct Unnamed {
    pub fd: Fd,
}

pub fn create_unnamed(_dir: &Path, _mode: u32) -> io::Result<Unnamed> {
    Err(unsupported())
}

pub fn publish_name(_file: &Unnamed, _path: &Path) -> io::Result<()> {
    Err(unsupported())
}

pub fn reserve(_fd: &Fd, _len: u64) -> io::Result<()> {
    Err(unsupported())
}

pub fn file_size(_fd: &Fd) -> io::Result<u64> {
    Err(unsupported())
}

pub fn is_unlinked(_fd: &Fd) -> io::Result<bool> {
    Err(unsupported())
}

pub fn names_file(_path: &Path, _fd: &Fd) -> io::Result<bool> {
    Err(unsupported())
}

pub fn try_lock_shared(_fd: &Fd) -> io::Result<bool> {
    Err(unsupported())
}

pub struct DirLock(());

pub fn try_lock_dir(_dir: &Path) -> io::Result<Option<DirLock>> {
    Err(unsupported())
}

pub fn try_lock_exclusive(_fd: &Fd) -> io::Result<bool> {
    Err(unsupported())
}

pub fn unlink(_path: &Path) -> io::Result<()> {
    Err(unsupported())
}

pub fn list_dir(_dir: &Path) -> io::Result<Vec<OsString>> {
    Err(unsupported())
}

/// A mapping (never constructed here).
pub struct Mapping(());

impl Mapping {
    pub fn new(_fd: &Fd, _len: usize, _writable: bool) -> io::Result<Mapping> {
        Err(unsupported())
    }

    pub fn as_ptr(&self) -> *mut u8 {
        std::ptr::null_mut()
    }

    pub fn len(&self) -> usize {
        0
    }
}

pub fn futex_wait(_word: &AtomicU32, _expected: u32, timeout: Duration) {
    std::thread::sleep(timeout);
}

pub fn futex_wake(_word: &AtomicU32, _count: u32) -> usize {
    0
}

pub fn futex_wait_low(_word: &AtomicU64, _expected: u32, timeout: Duration) {
    std::thread::sleep(timeout);
}

pub fn futex_wake_low(_word: &AtomicU64, _count: u32) -> usize {
    0
}

pub fn process_of_thread(_tid: u32) -> Option<u32> {
    None
}

pub fn fork_epoch() -> u32 {
    0
}

pub fn pid() -> u32 {
    std::process::id()
}

pub fn tid() -> u32 {
    0
}

pub fn own_start_time() -> u64 {
    0
}

pub fn own_thread_start_time() -> u64 {
    0
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code)] // constructed by real backends only
pub enum Liveness {
    Alive { start_time: u64 },
    Dead,
    Unknown,
}

pub fn liveness(_id: u32) -> Liveness {
    Liveness::Unknown
}

pub fn name_to_string(name: OsString) -> Option<String> {
    name.into_string().ok()
}

pub fn classify(_e: &io::Error) -> ErrorClass {
    ErrorClass::Other
}
