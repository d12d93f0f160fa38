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
//! The contract is `seam.rs`: the [`Backend`] trait and what the backends
//! share (the open-retry loop, the header and view of a mapping, the
//! process facts, the mapping of OS errors). This file picks the backend
//! and sits above the ones it picks; `seam.rs` sits below them, and names
//! none. `unix/` holds what the Unix backends share (the mapping, `fstat`
//! checks, the Unix process facts) and the Linux kernel facilities
//! (futexes, thread ids, `/proc`) that both `linux/` and `posix/`'s Linux
//! build use.
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
mod seam;

#[cfg(unix)]
pub(crate) mod unix;

use crate::error::Result;

pub(crate) use os::Os;
pub(crate) use seam::{Backend, OpenMode, Opened, Request};

/// Longest region name in bytes: what the backing object's name allows
/// (Linux: the 255-byte file-name limit less the `filemap.` prefix;
/// macOS and FreeBSD: the same limit on the registry entry
/// `filemap.<name>`; Windows: the longest kernel object name filemap
/// makes, `Global\filemap.<name>.wake.<pid>.<slot>`, within `MAX_PATH`).
pub const MAX_NAME_LEN: usize = <Os as Backend>::MAX_NAME_LEN;

/// Check a region name against the naming rules.
///
/// # Errors
/// [`Error::InvalidName`](crate::Error::InvalidName) naming the rule the
/// name breaks.
pub fn validate_name(name: &str) -> Result<()> {
    seam::check_name(name, MAX_NAME_LEN)
}
