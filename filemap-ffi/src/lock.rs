//! The cross-process lock from C: `fm_lock`, `fm_unlock`, `fm_update`.
//!
//! This module owns the rule that a lock taken through a handle lives in
//! that handle's slot until the thread that took it releases it.

use std::alloc::{alloc_zeroed, Layout};
use std::cell::RefCell;
use std::ffi::c_void;

use filemap::Error;

use crate::args;
use crate::map::FmMap;
use crate::status::{boundary, Fail, FmStatus};

/// Take the region's cross-process lock through `map`, waiting up to the
/// lock timeout (10 s). Store in `*owner_died` (may be NULL) whether the
/// previous owner died holding it (its unpublished write was discarded;
/// the published content is intact).
///
/// The lock is thread-affine: it belongs to the calling thread, and only
/// that thread may `fm_unlock` it (another thread gets
/// `FM_E_WRONG_THREAD` and the lock stays held). While it is held,
/// `fm_write`, `fm_write_if` and `fm_read` on this handle from this thread
/// run under it, and no other handle (in any process) can publish.
/// `fm_close` releases a lock still held, when called on the thread that
/// took it; on Windows, `fm_close` on another thread cannot release the
/// kernel mutex, which stays held until the taking thread ends (the next
/// taker is then told `owner_died`). On Linux any thread's `fm_close`
/// releases it.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`, `FM_E_TIMEOUT`
/// (`fm_error_info.pid` names the holder), `FM_E_WOULD_DEADLOCK` (this
/// thread holds it already), `FM_E_FORKED_HANDLE`.
///
/// # Safety
/// `map` is NULL or a live handle; `owner_died` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn fm_lock(map: *const FmMap, owner_died: *mut bool) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        // Wait for the region lock outside the slot's mutex: the holder's
        // fm_unlock needs that mutex to let go.
        let guard = h.map.lock_owned()?;
        let died = guard.owner_died();
        let previous = h
            .lock
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(guard);
        // Cannot hold a live lock: this thread just took the region lock,
        // so whoever filled the slot released it already.
        drop(previous);
        // SAFETY: as this function's contract.
        unsafe { args::put(owner_died, died) };
        Ok(())
    })
}

/// Release the lock this thread took with `fm_lock` on `map`.
///
/// Returns `FM_OK`, `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`,
/// `FM_E_NOT_LOCKED` (no lock taken with `fm_lock` is held through this
/// handle; called from an `fm_update` callback on it, the message says the
/// lock belongs to that update, which releases it when the callback
/// returns), `FM_E_WRONG_THREAD` (another thread took it; it stays held),
/// `FM_E_FORKED_HANDLE` (a forked child: the lock is the parent's and
/// stays held by it).
///
/// # Safety
/// `map` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn fm_unlock(map: *const FmMap) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        let mut slot = h.lock.lock().unwrap_or_else(|p| p.into_inner());
        let Some(guard) = slot.as_mut() else {
            let name = h.map.name();
            return Err(Fail::NotLocked(if Updating::runs_on(h) {
                format!(
                    "the lock of region {name:?} belongs to the fm_update in progress on \
                     this thread: it is released when the callback returns (fm_unlock \
                     releases only a lock taken with fm_lock)"
                )
            } else {
                format!(
                    "no lock taken with fm_lock is held through this handle of region \
                     {name:?} (never taken, or already released)"
                )
            }));
        };
        guard.unlock()?;
        *slot = None;
        Ok(())
    })
}

/// The read-modify-write callback of `fm_update`.
///
/// Called once, under the region lock, with `buf` holding the current
/// content in its first `*len` bytes and room for `capacity` bytes in all
/// (zeros after the content). `capacity` is the region's maximum capacity
/// (`fm_max_capacity`), so a region that grows (`fm_open_ex`) grows to
/// the new `*len` when it is past the capacity now. It may change the
/// bytes and `*len` (at most `capacity`). Return 0 to keep the result
/// (published if it differs from the content before), or nonzero to
/// discard it (nothing is published). `buf` is owned by the library and
/// valid only during the call. It must not call `fm_lock`, `fm_update` or
/// `fm_close` on the same region, nor longjmp out. A Rust panic unwinding
/// out of it (the "C-unwind" ABI) is caught: `fm_update` returns
/// `FM_E_PANIC` and publishes nothing. A C++ exception must not escape
/// it.
pub type FmUpdateFn = Option<
    unsafe extern "C-unwind" fn(
        user_data: *mut c_void,
        buf: *mut u8,
        capacity: usize,
        len: *mut usize,
    ) -> i32,
>;

/// Read-modify-write under the lock: `callback` gets the current content
/// and may change it; a changed content is published when it returns 0.
/// N processes incrementing a counter this way never lose an update.
/// `user_data` is passed through untouched. Stores the generation after
/// the call in `*generation` and whether it published in `*published`
/// (both may be NULL).
///
/// The callback's room is the maximum capacity: on a region that grows,
/// a result longer than the capacity grows the region, as `fm_write`
/// does. The room is a zeroed buffer of that size made for each call, so
/// an update costs up to zeroing that many bytes, as on a region of that
/// fixed capacity (the allocator may hand large blocks over as fresh
/// pages, which cost only as they are touched). For frequent small
/// updates of a region with a large maximum, `fm_lock`, `fm_read` and
/// `fm_write` cost only the content.
///
/// Returns `FM_OK` (also when the callback returned nonzero: nothing
/// published, `*published` false), `FM_E_NULL`, `FM_E_INVALID_ARGUMENT`,
/// `FM_E_TOO_LARGE` (the callback set `*len` past the maximum capacity;
/// nothing published), `FM_E_OUT_OF_SPACE` (a growth the system cannot
/// back; nothing published), `FM_E_IO` (no memory for the room),
/// `FM_E_TIMEOUT`, `FM_E_WOULD_DEADLOCK` (this thread holds the lock: use
/// `fm_read`/`fm_write` under `fm_lock` instead), `FM_E_FORKED_HANDLE`.
///
/// # Safety
/// `map` is NULL or a live handle; `callback` is NULL or a function as
/// `FmUpdateFn` describes; `generation` and `published` are NULL or
/// writable.
#[no_mangle]
pub unsafe extern "C" fn fm_update(
    map: *const FmMap,
    callback: FmUpdateFn,
    user_data: *mut c_void,
    generation: *mut u64,
    published: *mut bool,
) -> FmStatus {
    boundary(|| {
        // SAFETY: as this function's contract.
        let h = unsafe { args::handle(map) }?;
        let callback = callback.ok_or(Fail::Null("callback"))?;
        let room = h.map.max_capacity();
        let updated = h.map.update(|content| {
            let mut buf = zeroed(room, h.map.name())?;
            let mut len = content.len();
            // The core bounds every content by the maximum; checked all
            // the same, as nothing here may panic on a region's say-so.
            let Some(start) = buf.get_mut(..len) else {
                return Err(Error::TooLarge {
                    len,
                    capacity: h.map.capacity(),
                    max_capacity: room,
                });
            };
            start.copy_from_slice(content);
            // An fm_unlock from the callback is told whose lock it is.
            let updating = Updating::enter(h);
            // SAFETY:
            // - `buf` holds `room` initialised bytes, and `len` is a live
            //   local: both valid for the call;
            // - the callback's own contract is the caller's to keep.
            let rc = unsafe { callback(user_data, buf.as_mut_ptr(), room, &mut len) };
            drop(updating);
            if rc != 0 {
                return Ok(());
            }
            if len > room {
                return Err(Error::TooLarge {
                    len,
                    capacity: h.map.capacity(),
                    max_capacity: room,
                });
            }
            buf.truncate(len);
            *content = buf;
            Ok(())
        })?;
        updated.value?;
        // SAFETY: as this function's contract.
        unsafe {
            args::put(generation, updated.generation);
        }
        // SAFETY: as this function's contract.
        unsafe { args::put(published, updated.changed) };
        Ok(())
    })
}

/// `len` zero bytes, from the allocator's zeroed memory (which the system
/// may hand over lazily) rather than written one by one; an allocation
/// refused is an error, not an abort.
fn zeroed(len: usize, name: &str) -> Result<Vec<u8>, Error> {
    let no_memory = || Error::Io {
        op: "allocating the room of fm_update's callback",
        name: name.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::OutOfMemory,
            format!("no memory for {len} bytes (the maximum capacity)"),
        ),
    };
    if len == 0 {
        return Ok(Vec::new());
    }
    let layout = Layout::array::<u8>(len).map_err(|_| no_memory())?;
    // SAFETY: `layout` has a nonzero size (`len` > 0).
    let ptr = unsafe { alloc_zeroed(layout) };
    if ptr.is_null() {
        return Err(no_memory());
    }
    // SAFETY: `ptr` was allocated by the global allocator with the layout
    // of `[u8; len]` (size `len`, align 1), which is what a `Vec<u8>` of
    // capacity `len` frees; its `len` bytes are initialised (zeroed).
    Ok(unsafe { Vec::from_raw_parts(ptr, len, len) })
}

thread_local! {
    /// The handles whose `fm_update` callback is running on this thread
    /// (innermost last: a callback may update another region).
    static UPDATING: RefCell<Vec<usize>> = const { RefCell::new(Vec::new()) };
}

/// Marks a handle's `fm_update` callback as running on this thread, so
/// that an `fm_unlock` from inside it is told whose lock it is. Unmarked
/// on drop, also when the callback panics.
struct Updating(usize);

impl Updating {
    fn enter(h: &FmMap) -> Updating {
        let key = std::ptr::from_ref(h) as usize;
        let _ = UPDATING.try_with(|u| u.borrow_mut().push(key));
        Updating(key)
    }

    /// Whether an `fm_update` callback on `h` runs on this thread.
    fn runs_on(h: &FmMap) -> bool {
        let key = std::ptr::from_ref(h) as usize;
        UPDATING
            .try_with(|u| u.borrow().contains(&key))
            .unwrap_or(false)
    }
}

impl Drop for Updating {
    fn drop(&mut self) {
        let _ = UPDATING.try_with(|u| {
            let mut u = u.borrow_mut();
            if let Some(at) = u.iter().rposition(|&k| k == self.0) {
                u.remove(at);
            }
        });
    }
}
