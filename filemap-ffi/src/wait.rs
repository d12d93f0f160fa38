//! Waiting for a change from C: `fm_wait`, and the cancel token another
//! thread ends it with (`fm_cancel_new`, `fm_cancel`, `fm_cancel_free`).
//!
//! This module owns `fm_cancel_token` and the mapping of the C wait's
//! arguments to the library's one [`Wait`].

use std::time::Duration;

use filemap::{CancelToken, Strategy, Wait};

use crate::args::{self, Tagged};
use crate::map::FmMap;
use crate::status::{boundary, Fail, FmStatus};

/// `fm_wait` sleeps in the kernel (a futex; a semaphore on Windows): no
/// CPU while waiting, woken within microseconds of a publish.
pub const FM_WAIT_SLEEP: u32 = 0;
/// `fm_wait` busy-polls the generation: the lowest latency, one core kept
/// busy.
pub const FM_WAIT_SPIN: u32 = 1;
/// `fm_wait` busy-polls briefly when that has recently paid off, then
/// sleeps: close to `FM_WAIT_SPIN`'s latency with a prompt peer, close to
/// no CPU when changes come rarely.
pub const FM_WAIT_ADAPTIVE: u32 = 2;

/// A cancel token; opaque to C. Made by `fm_cancel_new`, freed by
/// `fm_cancel_free`.
#[repr(C)]
pub struct FmCancelToken {
    magic: u64,
    token: CancelToken,
}

impl Tagged for FmCancelToken {
    const MAGIC: u64 = u64::from_le_bytes(*b"fm_cncl\x01");
    const WHAT: &'static str = "cancel token";
    fn magic(&self) -> u64 {
        self.magic
    }
}

/// Make a cancel token, not cancelled, and store it in `*out`. The caller
/// owns it and frees it with `fm_cancel_free`. One token may be given to
/// any number of waits, on any regions and threads.
///
/// Returns `FM_OK`, `FM_E_NULL`.
///
/// # Safety
/// `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_cancel_new(out: *mut *mut FmCancelToken) -> FmStatus {
    boundary(|| {
        if out.is_null() {
            return Err(Fail::Null("out"));
        }
        let token = Box::new(FmCancelToken {
            magic: FmCancelToken::MAGIC,
            token: CancelToken::new(),
        });
        // SAFETY: `out` is not NULL (checked) and writable (contract).
        unsafe { out.write(Box::into_raw(token)) };
        Ok(())
    })
}

/// Cancel `token`: every `fm_wait` given it, on any thread, returns
/// `FM_E_CANCELLED` within microseconds, and so does every later one (a
/// token stays cancelled). Call it from any thread, but not from a signal
/// handler: it takes a lock (a signal-handling thread may call it).
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT` (the memory does
/// not hold a token's tag; see `FM_E_INVALID_ARGUMENT` for what that
/// catches).
///
/// # Safety
/// `token` is NULL or a token from `fm_cancel_new` not freed yet.
#[no_mangle]
pub unsafe extern "C" fn fm_cancel(token: *const FmCancelToken) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let t = unsafe { args::handle(token) }?;
        t.token.cancel();
        Ok(())
    })
}

/// Free a token made by `fm_cancel_new`. Freeing does not cancel: end the
/// waits given it first (`fm_cancel`, then let them return).
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT` (the memory does
/// not hold a token's tag: another kind of handle, or a token freed
/// already whose memory was not reused). Freeing twice is the caller's
/// error, as with `free`: the memory may hold another token by then.
///
/// # Safety
/// `token` is NULL or a token from `fm_cancel_new` not freed yet, and no
/// call given it (an `fm_wait`, an `fm_cancel`) runs during or after this
/// one.
#[no_mangle]
pub unsafe extern "C" fn fm_cancel_free(token: *mut FmCancelToken) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        unsafe { args::handle(token) }?;
        // SAFETY: by this function's contract a live token from
        // `Box::into_raw` in `fm_cancel_new` (the tag check above refuses
        // some breaches of that contract, not all), and the caller gives
        // up every other use of it.
        let mut t = unsafe { Box::from_raw(token) };
        t.magic = 0;
        drop(t);
        Ok(())
    })
}

/// Block until the region's generation differs from `seen`, then store the
/// new generation in `*generation` (may be NULL).
///
/// - `strategy`: `FM_WAIT_SLEEP`, `FM_WAIT_SPIN` or `FM_WAIT_ADAPTIVE`
///   (other values give `FM_E_INVALID_ARGUMENT`).
/// - `timeout_ns`: give up with `FM_E_TIMEOUT` after this many
///   nanoseconds; 0 only looks once; a negative value waits as long as it
///   takes.
/// - `cancel`: NULL for none, or a token from `fm_cancel_new`: once another
///   thread cancels it (`fm_cancel`), the wait returns `FM_E_CANCELLED`.
///
/// Returns `FM_OK`, `FM_E_TIMEOUT` (nothing changed in time;
/// `fm_error_info.waited_ms` says how long it waited), `FM_E_CANCELLED`,
/// `FM_E_FORKED_HANDLE`, `FM_E_TRUNCATED` (the handle is unusable, also
/// when it becomes so during the wait), `FM_E_NULL`,
/// `FM_E_INVALID_ARGUMENT`.
///
/// # Safety
/// `map` is NULL or a live handle not closed during the wait; `cancel` is
/// NULL or a live token not freed during the wait; `generation` is NULL
/// or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_wait(
    map: *const FmMap,
    seen: u64,
    strategy: u32,
    timeout_ns: i64,
    cancel: *const FmCancelToken,
    generation: *mut u64,
) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        let strategy = match strategy {
            FM_WAIT_SLEEP => Strategy::Sleep,
            FM_WAIT_SPIN => Strategy::Spin,
            FM_WAIT_ADAPTIVE => Strategy::Adaptive,
            other => {
                return Err(Fail::Invalid(format!(
                    "unknown wait strategy {other} (FM_WAIT_SLEEP, FM_WAIT_SPIN or \
                     FM_WAIT_ADAPTIVE)"
                )))
            }
        };
        let mut wait = Wait::new(strategy);
        if let Ok(ns) = u64::try_from(timeout_ns) {
            wait = wait.timeout(Duration::from_nanos(ns));
        }
        let token = if cancel.is_null() {
            None
        } else {
            // SAFETY: as this function's contract.
            Some(unsafe { args::handle(cancel) }?)
        };
        if let Some(t) = token {
            wait = wait.cancel(&t.token);
        }
        let now = h.map.wait_change(seen, wait)?;
        // SAFETY: as this function's contract.
        unsafe { args::put(generation, now) };
        Ok(())
    })
}
