//! Checking what C hands over: names, byte ranges, handles, out-pointers.
//!
//! This module owns every conversion from a raw C argument to a Rust value.
//! Each function states what it relies on from the caller (the contract the
//! header documents) and turns everything it can check into a [`Fail`].

use std::ffi::c_char;
use std::mem::MaybeUninit;

use crate::status::{Fail, FfiResult};

/// The longest byte range accepted from C. Rust slices cannot exceed
/// `isize::MAX` bytes; anything longer is a caller bug, not content.
const MAX_SLICE: usize = isize::MAX as usize;

/// A region name from a NUL-terminated C string.
///
/// Reads at most `MAX_NAME_LEN + 1` bytes, so a string missing its NUL is
/// refused instead of read past.
///
/// # Safety
/// `name` is NULL or readable up to its NUL or `MAX_NAME_LEN + 1` bytes,
/// whichever comes first.
pub(crate) unsafe fn name(name: *const c_char) -> FfiResult<String> {
    if name.is_null() {
        return Err(Fail::Null("name"));
    }
    let limit = filemap::admin::MAX_NAME_LEN + 1;
    let mut bytes = Vec::new();
    loop {
        if bytes.len() == limit {
            return Err(Fail::Name {
                message: format!(
                    "region name has no NUL within {limit} bytes (the maximum length is {} bytes)",
                    filemap::admin::MAX_NAME_LEN
                ),
                scanned: limit,
            });
        }
        // SAFETY: the caller guarantees `name` is readable up to its NUL or
        // `limit` bytes; `bytes.len() < limit` and no NUL was seen before.
        let byte = unsafe { name.add(bytes.len()).cast::<u8>().read() };
        if byte == 0 {
            break;
        }
        bytes.push(byte);
    }
    let scanned = bytes.len();
    String::from_utf8(bytes).map_err(|e| Fail::Name {
        message: format!(
            "region name is not UTF-8 (valid up to byte {})",
            e.utf8_error().valid_up_to()
        ),
        scanned,
    })
}

/// `len` bytes at `data` as a slice; NULL is fine for zero bytes.
///
/// # Safety
/// When `len > 0` and `data` is not NULL, `data` is readable for `len`
/// bytes that nobody writes during the call.
pub(crate) unsafe fn bytes<'a>(
    data: *const u8,
    len: usize,
    what: &'static str,
) -> FfiResult<&'a [u8]> {
    if len == 0 {
        return Ok(&[]);
    }
    if data.is_null() {
        return Err(Fail::Null(what));
    }
    // fm_write and fm_write_if refuse a length past the maximum capacity
    // (1 GiB at most) before they get here, so this never fires from
    // them; it stays because the slice below is sound only with it.
    if len > MAX_SLICE {
        return Err(Fail::Invalid(format!(
            "{what} length {len} is larger than any buffer can be"
        )));
    }
    // SAFETY:
    // - `data` is not NULL and `len` is in 1..=isize::MAX (checked above);
    // - the caller guarantees `len` readable bytes, unchanged during the call.
    Ok(unsafe { std::slice::from_raw_parts(data, len) })
}

/// The caller's buffer of `cap` bytes at `buf` as a slice of bytes that
/// may be uninitialised (C callers pass fresh arrays); NULL is fine for
/// zero bytes. Only ever written through, never read.
///
/// A `cap` beyond `isize::MAX` (which no buffer can have) is cut to it:
/// the slice stays within what the caller vouched for.
///
/// # Safety
/// When `cap > 0` and `buf` is not NULL, `buf` is writable for `cap`
/// bytes (initialised or not) that nothing else reads or writes during
/// the call.
#[inline]
pub(crate) unsafe fn buffer<'a>(
    buf: *mut u8,
    cap: usize,
    what: &'static str,
) -> FfiResult<&'a mut [MaybeUninit<u8>]> {
    if cap == 0 {
        return Ok(&mut []);
    }
    if buf.is_null() {
        return Err(Fail::Null(what));
    }
    // SAFETY:
    // - `buf` is not NULL, `MaybeUninit<u8>` has the size and alignment
    //   of `u8`, and the length is in 1..=isize::MAX;
    // - `MaybeUninit<u8>` is valid for any byte, initialised or not, so
    //   the caller's bytes need not be initialised;
    // - the caller guarantees `cap` (and so at least that many) writable
    //   bytes, used by nobody else during the call.
    Ok(
        unsafe {
            std::slice::from_raw_parts_mut(buf.cast::<MaybeUninit<u8>>(), cap.min(MAX_SLICE))
        },
    )
}

/// Store `value` through `out` when `out` is not NULL.
///
/// # Safety
/// `out` is NULL or valid for writing a `T`.
#[inline]
pub(crate) unsafe fn put<T>(out: *mut T, value: T) {
    if !out.is_null() {
        // SAFETY: not NULL, and the caller guarantees it is writable.
        unsafe { out.write(value) };
    }
}

/// Like [`put`], but `out` is required.
///
/// # Safety
/// As [`put`].
#[inline]
pub(crate) unsafe fn put_required<T>(out: *mut T, value: T, what: &'static str) -> FfiResult {
    if out.is_null() {
        return Err(Fail::Null(what));
    }
    // SAFETY: as this function's contract.
    unsafe { put(out, value) };
    Ok(())
}

/// A handle that starts with a magic word, so that a pointer to a handle
/// of another kind, or to one closed whose memory nothing reused yet, is
/// refused rather than used. Only that: a closed handle whose memory now
/// holds a new handle of the same kind (a later `fm_open` may get the same
/// address) passes, and a pointer to unreadable memory faults. Using a
/// handle after closing it is the caller's error, as with `FILE*`.
pub(crate) trait Tagged {
    const MAGIC: u64;
    const WHAT: &'static str;
    fn magic(&self) -> u64;
}

/// The handle behind `ptr`.
///
/// Refuses NULL, a misaligned pointer and 8 bytes that do not hold
/// `T::MAGIC`. That catches a handle of another kind and (until its memory
/// is reused) a freed one, but it cannot tell a live `T` from freed memory
/// that still or again holds the tag: the contract below is the caller's
/// to keep, not something this function checks.
///
/// # Safety
/// `ptr` is NULL, misaligned, or points to at least 8 readable bytes; when
/// they hold `T::MAGIC`, `ptr` is a live `T` made by this library and not
/// freed for the call's duration.
#[inline]
pub(crate) unsafe fn handle<'a, T: Tagged>(ptr: *const T) -> FfiResult<&'a T> {
    if ptr.is_null() {
        return Err(Fail::Null(T::WHAT));
    }
    if ptr.align_offset(std::mem::align_of::<u64>()) != 0 {
        return Err(not_a_handle::<T>());
    }
    // SAFETY: not NULL, aligned (checked), readable for 8 bytes (contract).
    let magic = unsafe { ptr.cast::<u64>().read() };
    if magic != T::MAGIC {
        return Err(not_a_handle::<T>());
    }
    // SAFETY: the magic matches, so by the contract `ptr` is a live `T`.
    let value = unsafe { &*ptr };
    debug_assert_eq!(value.magic(), T::MAGIC);
    Ok(value)
}

#[cold]
fn not_a_handle<T: Tagged>() -> Fail {
    Fail::Invalid(format!(
        "{} does not point to a live {} (closed already, or another kind of pointer)",
        T::WHAT,
        T::WHAT
    ))
}
