//! Values crossing between Python and the library: durations, contents,
//! snapshots and region infos.

use std::time::Duration;

use filemap::{RegionInfo, Snapshot};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyString, PyTuple};

use crate::errors::obj;

static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub(crate) fn types_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    TYPES
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("filemap._types")?.unbind()))
        .map(|m| m.bind(py))
}

/// Seconds (a non-negative float, or `None` for no limit) as a duration.
/// More seconds than a `Duration` holds (about 5.8e11 years, `math.inf`
/// included) is no limit: no wait could tell the difference.
pub(crate) fn duration(seconds: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s >= Duration::MAX.as_secs_f64() => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            // `{:?}`: -1e300 as "-1e300", not as 301 digits.
            PyValueError::new_err(format!(
                "{what} must be a non-negative number of seconds or None, not {s:?}"
            ))
        }),
    }
}

/// Run `f` with `content`'s bytes: borrowed for `bytes` and `str`, copied
/// for mutable buffers (`bytearray`, `memoryview`...), which another thread
/// could resize while the GIL is released.
pub(crate) fn with_content<R>(
    data: &Bound<'_, PyAny>,
    f: impl FnOnce(&[u8]) -> PyResult<R>,
) -> PyResult<R> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return f(bytes.as_bytes());
    }
    if let Ok(text) = data.cast::<PyString>() {
        return f(text.to_str()?.as_bytes());
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return f(&array.to_vec());
    }
    let py = data.py();
    let buffer = PyBuffer::<u8>::get(data).map_err(|e| {
        // A buffer that cannot be read now (a released memoryview: its
        // ValueError) says so; a wrong type gets this TypeError, caused
        // by the buffer protocol's own.
        if !e.is_instance_of::<PyTypeError>(py) {
            return e;
        }
        let err = PyTypeError::new_err(format!(
            "content must be bytes, bytearray, memoryview (of bytes) or str, not {}",
            data.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ));
        err.set_cause(py, Some(e));
        err
    })?;
    f(&buffer.to_vec(py)?)
}

/// Make a `filemap.Snapshot` (a named tuple defined in `_types.py`).
pub(crate) fn snapshot_object(
    py: Python<'_>,
    content: Bound<'_, PyBytes>,
    generation: u64,
    writer: filemap::WriterId,
) -> PyResult<Py<PyAny>> {
    let cls = types_module(py)?.getattr("Snapshot")?;
    Ok(cls
        .call1((content, generation, writer.pid, writer.handle))?
        .unbind())
}

pub(crate) fn snapshot_to_py(py: Python<'_>, snap: &Snapshot) -> PyResult<Py<PyAny>> {
    snapshot_object(
        py,
        PyBytes::new(py, &snap.content),
        snap.generation,
        snap.writer,
    )
}

pub(crate) fn region_info_to_py(py: Python<'_>, info: &RegionInfo) -> PyResult<Py<PyAny>> {
    let cls = types_module(py)?.getattr("RegionInfo")?;
    let args = PyTuple::new(
        py,
        [
            obj(py, &info.name),
            obj(py, info.path.to_string_lossy().as_ref()),
            obj(py, info.capacity),
            obj(py, info.len),
            obj(py, info.generation),
            obj(py, info.last_writer.pid),
            obj(py, info.last_writer.handle),
            obj(py, info.persistent),
            obj(py, info.attached.clone()),
            obj(py, info.stale),
        ],
    )?;
    Ok(cls.call1(args)?.unbind())
}
