//! Tests only (debug builds): a process started with `FILEMAP_TEST_STALL`
//! naming one of the points below stops for good when it gets there, so
//! that a test can kill it (SIGKILL) at exactly that point, or find it
//! still alive there. Release builds compile this away. The points:
//!
//! - `growth`: a growing writer, between backing the new bytes and
//!   raising the capacity (`handle.rs`);
//! - `created`: a posix creator, right after `shm_open(2)` made the
//!   object, before it is sized (the object is empty);
//! - `sized`: a posix creator, after sizing the object, before it claims
//!   its attach slot;
//! - `claimed`: a posix creator, after claiming its slot, before it
//!   stores the magic.

#![forbid(unsafe_code)]

/// Stop here for good if `FILEMAP_TEST_STALL` names `point` (debug builds
/// only).
#[inline]
pub(crate) fn stall_at(point: &str) {
    #[cfg(debug_assertions)]
    if std::env::var_os("FILEMAP_TEST_STALL").is_some_and(|v| v == point) {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
    #[cfg(not(debug_assertions))]
    let _ = point;
}
