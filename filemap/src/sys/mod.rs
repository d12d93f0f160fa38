//! The only place with operating-system calls.
//!
//! One backend module is chosen here; each exports the same items, and
//! everything above this seam is platform-free. Targets without a backend
//! get `stub.rs`, whose every call fails with `Unsupported`, so the crate
//! still type-checks there.

#[cfg_attr(target_os = "linux", path = "linux.rs")]
#[cfg_attr(windows, path = "windows.rs")]
#[cfg_attr(not(any(target_os = "linux", windows)), path = "stub.rs")]
mod os;

pub use os::*;

/// How an OS error maps onto `filemap::Error` beyond its `ErrorKind`;
/// each backend's `classify` decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(target_os = "linux", windows)), allow(dead_code))]
pub enum ErrorClass {
    /// No room in the backing store.
    OutOfSpace,
    /// A symbolic link (or other reparse point) was refused.
    Symlink,
    /// Not a regular file: a FIFO, socket, device or directory (what it is).
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    NotRegular(&'static str),
    Other,
}
