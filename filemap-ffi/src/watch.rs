//! Change callbacks from C: `fm_watch`, `fm_watch_stop`.
//!
//! This module owns `fm_watcher` and the rule that a panic in the Rust
//! frame around a C callback never unwinds out of the watcher thread.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use filemap::{Snapshot, Watcher};

use crate::args::{self, Tagged};
use crate::map::{FmMap, FmStamp};
use crate::status::{self, boundary, Fail, FmStatus, FM_OK};

/// A running watch; opaque to C. Made by `fm_watch`, freed by
/// `fm_watch_stop`.
#[repr(C)]
pub struct FmWatcher {
    magic: u64,
    watcher: Option<Watcher>,
}

impl Tagged for FmWatcher {
    const MAGIC: u64 = u64::from_le_bytes(*b"fm_watch");
    const WHAT: &'static str = "watcher";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// The change callback of `fm_watch`.
///
/// Called on the watcher's own thread with `status` `FM_OK`, the new
/// content (`data`, `len` bytes) and its `stamp`; or, when reading failed,
/// with an error status, `stamp` and `data` NULL (`fm_last_error` on that
/// thread describes it). `data` and `stamp` are owned by the library and
/// valid only during the call: copy what you keep. Bursts are coalesced:
/// intermediate generations may be skipped, the latest content always
/// arrives. A Rust panic unwinding out of it (the "C-unwind" ABI) is
/// caught, and the callback is called once more with `FM_E_PANIC`. A C++
/// exception must not escape it, nor a longjmp.
pub type FmWatchFn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        status: FmStatus,
        stamp: *const FmStamp,
        data: *const u8,
        len: usize,
    ),
>;

/// `user_data`, moved to the watcher thread.
struct UserData(*mut c_void);

// SAFETY: fm_watch's contract makes the caller vouch that `user_data` may
// be used from the watcher thread; the library only passes it back.
unsafe impl Send for UserData {}

/// Call `callback(user_data, ...)` from a background thread after every
/// change published by another handle (in this or another process); this
/// handle's own writes are skipped. Store the watcher in `*out`; the
/// caller owns it and must free it with `fm_watch_stop`. The watcher keeps
/// the region alive until then, even after `fm_close(map)`.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`, `FM_E_IO` (no
/// thread), `FM_E_FORKED_HANDLE`.
///
/// # Safety
/// `map` is NULL or a live handle; `callback` is NULL or a function as
/// `FmWatchFn` describes; `user_data` may be used from another thread
/// until `fm_watch_stop` returns; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_watch(
    map: *const FmMap,
    callback: FmWatchFn,
    user_data: *mut c_void,
    out: *mut *mut FmWatcher,
) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        let callback = callback.ok_or(Fail::Null("callback"))?;
        if out.is_null() {
            return Err(Fail::Null("out"));
        }
        let user_data = UserData(user_data);
        let watcher = h.map.watch(move |change: filemap::Result<Snapshot>| {
            let user_data = &user_data;
            let delivered = catch_unwind(AssertUnwindSafe(|| match change {
                Ok(snap) => {
                    let stamp = FmStamp::from(filemap::Stamp {
                        generation: snap.generation,
                        writer: snap.writer,
                        len: snap.content.len(),
                    });
                    // SAFETY:
                    // - `stamp` and `snap.content` live across the call;
                    // - the callback and `user_data` are as fm_watch's
                    //   contract says.
                    unsafe {
                        callback(
                            user_data.0,
                            FM_OK,
                            &stamp,
                            snap.content.as_ptr(),
                            snap.content.len(),
                        )
                    };
                }
                Err(e) => {
                    let code = status::record(Fail::Core(e));
                    // SAFETY: NULL stamp and data are what the callback's
                    // contract announces for an error.
                    unsafe { callback(user_data.0, code, std::ptr::null(), std::ptr::null(), 0) };
                }
            }));
            if let Err(payload) = delivered {
                let code = status::record_panic(payload.as_ref());
                // A second panic is dropped: the thread must live on.
                let _ = catch_unwind(AssertUnwindSafe(|| {
                    // SAFETY: as above, the error form of the call.
                    unsafe { callback(user_data.0, code, std::ptr::null(), std::ptr::null(), 0) };
                }));
            }
        })?;
        let handle = Box::new(FmWatcher {
            magic: FmWatcher::MAGIC,
            watcher: Some(watcher),
        });
        // SAFETY: `out` is not NULL (checked) and writable (contract).
        unsafe { out.write(Box::into_raw(handle)) };
        Ok(())
    })
}

/// Stop a watcher and free it. Returns once no callback is running and
/// none will run again. Called from inside the callback, it stops the
/// watcher after that callback returns (and does not wait for itself).
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT` (the memory does
/// not hold a watcher's tag: another kind of handle, or a watcher stopped
/// already whose memory was not reused). Stopping twice is the caller's
/// error: the memory may hold another watcher by then.
///
/// # Safety
/// `watcher` is NULL or a watcher from `fm_watch` not stopped yet, and no
/// other thread uses it during or after this call.
#[no_mangle]
pub unsafe extern "C" fn fm_watch_stop(watcher: *mut FmWatcher) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        unsafe { args::handle(watcher) }?;
        // SAFETY: by this function's contract a live watcher from
        // `Box::into_raw` in `fm_watch` (the tag check above refuses some
        // breaches of that contract, not all), and the caller gives up
        // every other use of it.
        let mut handle = unsafe { Box::from_raw(watcher) };
        handle.magic = 0;
        drop(handle.watcher.take());
        Ok(())
    })
}
