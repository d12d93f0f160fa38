//! Reads straight into Python objects: the library's
//! [`FileMap::read_into`] fills the memory of the `bytes` (or
//! `bytearray`) handed to Python, with no buffer in between.
//!
//! The object is sized by the length the handle read last (`last_len`);
//! when the content has grown since, the library says how long it is
//! ([`Error::BufferTooSmall`], nothing copied) and the read is made again
//! at that length. A content that has shrunk is copied once more into a
//! `bytes` of its length (a `bytes` cannot shrink in place).

use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

use filemap::{Error, FileMap, Stamp};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes};

use crate::errors::to_py;
use crate::lock::with_lock_retry;

/// A read into a slice: the stamp, or `Err(needed)` when the slice is too
/// short for the content.
pub(crate) fn fitted(read: filemap::Result<Stamp>) -> filemap::Result<Result<Stamp, usize>> {
    match read {
        Ok(stamp) => Ok(Ok(stamp)),
        Err(Error::BufferTooSmall { needed, .. }) => Ok(Err(needed)),
        Err(e) => Err(e),
    }
}

/// Read the content into a new `bytes` object. The library call runs
/// without the GIL (it may fall back to the region lock), which is safe
/// here: nothing but this call can reach the object before it is returned.
pub(crate) fn read_bytes<'py>(
    py: Python<'py>,
    map: &FileMap,
    last_len: &AtomicUsize,
    lock_timeout: Option<Duration>,
    still_open: &dyn Fn(Python<'_>) -> PyResult<()>,
) -> PyResult<(Bound<'py, PyBytes>, Stamp)> {
    new_bytes(py, last_len.load(Relaxed), |buf| {
        let read = with_lock_retry(py, lock_timeout, still_open, || {
            fitted(map.read_into(&mut *buf))
        })?;
        last_len.store(
            read.map_or_else(|needed| needed, |stamp| stamp.len),
            Relaxed,
        );
        Ok(read)
    })
}

/// A new `bytes` object holding what `read` copies into it: made `len`
/// bytes long (a guess: the last length seen), made again at the length
/// `read` says it needs, and cut to the content's length. Only this call
/// can reach the object before it is returned, so `read` may copy into it
/// without the GIL.
pub(crate) fn new_bytes<'py>(
    py: Python<'py>,
    mut len: usize,
    mut read: impl FnMut(&mut [u8]) -> PyResult<Result<Stamp, usize>>,
) -> PyResult<(Bound<'py, PyBytes>, Stamp)> {
    loop {
        let mut got = None;
        let bytes = PyBytes::new_with(py, len, |buf| {
            got = Some(read(buf)?);
            Ok(())
        })?;
        match got {
            Some(Ok(stamp)) if stamp.len == len => return Ok((bytes, stamp)),
            Some(Ok(stamp)) => {
                let shorter = PyBytes::new(py, &bytes.as_bytes()[..stamp.len]);
                return Ok((shorter, stamp));
            }
            Some(Err(needed)) => len = needed,
            None => return Err(PyRuntimeError::new_err("bytes initialiser did not run")),
        }
    }
}

/// Read the content into `buffer`, resized to its length, and return its
/// stamp.
///
/// The library reads into the bytearray's own memory with the GIL held:
/// another thread could resize the bytearray (and free that memory) the
/// moment the GIL is released. A lock-free read holds it for a copy; only
/// when writers keep the content moving too fast for one does the read
/// fall back to the region lock, waiting at most the binding's lock slice
/// ([`LOCK_SLICE`](crate::lock::LOCK_SLICE)) with the GIL held before it
/// goes on without the GIL, through a buffer of its own.
pub(crate) fn read_bytearray(
    py: Python<'_>,
    map: &FileMap,
    buffer: &Bound<'_, PyByteArray>,
    last_len: &AtomicUsize,
    lock_timeout: Option<Duration>,
    still_open: &dyn Fn(Python<'_>) -> PyResult<()>,
) -> PyResult<Stamp> {
    let mut len = last_len.load(Relaxed);
    loop {
        buffer.resize(len)?;
        // SAFETY: the GIL is held from the resize above to the resize
        // below and no Python code runs in between (the library call runs
        // no Python), so nothing else can resize, read or free `buffer`'s
        // memory while the slice lives; it is `len` bytes long.
        let read = fitted(map.read_into(unsafe { buffer.as_bytes_mut() }));
        match read {
            Ok(Ok(stamp)) => {
                last_len.store(stamp.len, Relaxed);
                buffer.resize(stamp.len)?;
                return Ok(stamp);
            }
            Ok(Err(needed)) => {
                last_len.store(needed, Relaxed);
                len = needed;
            }
            Err(Error::Timeout { .. }) => break,
            Err(e) => return Err(to_py(py, e)),
        }
    }
    // Writers kept the content moving and another thread held the lock:
    // wait for the lock without the GIL, reading into a buffer of our own.
    let mut content = Vec::new();
    let stamp = with_lock_retry(py, lock_timeout, still_open, || map.read_into(&mut content))?;
    last_len.store(stamp.len, Relaxed);
    buffer.resize(content.len())?;
    // SAFETY: as above: the GIL is held and no Python code runs between
    // the resize and this copy; `buffer` is `content.len()` bytes long.
    unsafe { buffer.as_bytes_mut() }.copy_from_slice(&content);
    Ok(stamp)
}
