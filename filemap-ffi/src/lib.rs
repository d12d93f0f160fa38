//! The C ABI of filemap: `libfilemap_ffi` (shared and static) with the
//! header `include/filemap.h`.
//!
//! Every entry point returns an `fm_status` and never unwinds: a panic is
//! caught at the boundary and becomes `FM_E_PANIC`. Pointers from C are
//! checked for NULL, names for UTF-8 and a NUL within the longest name,
//! lengths against the capacity before any slice is made. The message and
//! the numbers of the last failure on a thread come from `fm_last_error`
//! and `fm_last_error_info`.
//!
//! The header is generated from this crate by cbindgen (`tests/header.rs`
//! checks the committed copy; `FILEMAP_BLESS=1` rewrites it).

#![warn(missing_docs)]

mod args;
mod lock;
mod map;
mod status;
mod wait;
mod watch;

use std::ffi::c_char;

pub use lock::{fm_lock, fm_unlock, fm_update, FmUpdateFn};
pub use map::{
    fm_abi_version, fm_capacity, fm_clean_stale, fm_close, fm_existed_already, fm_generation,
    fm_id, fm_info, fm_max_capacity, fm_open, fm_open_ex, fm_read, fm_remove, fm_write,
    fm_write_if, FmInfo, FmMap, FmOpenOptions, FmStamp, FmWriter, FM_ABI_VERSION, FM_CREATE_ONLY,
    FM_DEFAULT_CAPACITY, FM_MAX_CAPACITY, FM_MIN_CAPACITY, FM_OPEN_ONLY, FM_OPEN_OPTIONS_SIZE,
    FM_PERSISTENT,
};
pub use status::*;
pub use wait::{
    fm_cancel, fm_cancel_free, fm_cancel_new, fm_wait, FmCancelToken, FM_WAIT_ADAPTIVE,
    FM_WAIT_SLEEP, FM_WAIT_SPIN,
};
pub use watch::{fm_watch, fm_watch_stop, FmWatchFn, FmWatcher};

/// The longest region name in bytes on this platform (247 on Linux, 224
/// on Windows).
#[no_mangle]
pub extern "C" fn fm_max_name_len() -> usize {
    filemap::admin::MAX_NAME_LEN
}

/// The message of the last failed `fm_*` call on this thread (UTF-8,
/// NUL-terminated; "" when none failed yet). It names the region and
/// carries the numbers (e.g. the length and capacity for
/// `FM_E_TOO_LARGE`). Successful calls leave it unchanged, like errno.
///
/// The string is owned by the library and stays valid until the next
/// failing `fm_*` call on this thread; copy it to keep it. Never NULL.
#[no_mangle]
pub extern "C" fn fm_last_error() -> *const c_char {
    status::last_message_ptr()
}

/// Store the status and numbers of the last failed `fm_*` call on this
/// thread in `*out` (see `fm_error_info` for which fields each status
/// fills).
///
/// Returns `FM_OK`, or `FM_E_NULL` when `out` is NULL, which becomes the
/// last error as every failure does (the one before is lost).
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_last_error_info(out: *mut FmErrorInfo) -> FmStatus {
    status::boundary(|| {
        let info = status::last_info();
        // SAFETY: as this function's contract.
        unsafe { args::put_required(out, info, "out") }
    })
}

/// A short constant name for a status, e.g. "FM_E_TOO_LARGE"; "FM_E_?"
/// for a code this library does not know. Static storage: never freed,
/// never NULL.
#[no_mangle]
pub extern "C" fn fm_status_name(status: FmStatus) -> *const c_char {
    status::name_of(status).as_ptr()
}
