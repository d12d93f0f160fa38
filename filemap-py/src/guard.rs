//! The region lock as a Python object (`filemap.Lock`).
//!
//! This module owns a held lock between Python calls. The lock belongs to
//! the thread that took it (the library records its thread id), so the
//! object is `unsendable`: PyO3 refuses to use it from another thread, and
//! dropping it from another thread leaks the guard rather than releasing a
//! lock that thread does not hold.

use std::sync::Arc;
use std::time::Duration;

use filemap::{FileMap, Guard};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyTuple};

use crate::{make_error, obj, snapshot_to_py, to_py, with_content, with_lock_retry};

/// A guard and the handle it borrows, kept together.
struct Held {
    // Declared first: dropped (the lock released) before `_map`.
    guard: Guard<'static>,
    _map: Arc<FileMap>,
}

/// Carries a value out of `Python::detach`, which requires `Send` only to
/// keep GIL-bound references out; it runs its closure on the calling
/// thread, so the value never changes threads.
struct SameThread<T>(T);

// SAFETY: a `SameThread` is only made inside a `Python::detach` closure and
// unwrapped right after it returns, on the same thread (`detach` runs the
// closure on the calling thread); no other thread ever sees the value.
unsafe impl<T> Send for SameThread<T> {}

/// The region lock, held. A context manager: leaving the ``with`` block
/// releases it. Made by ``FileMap.lock()``.
#[pyclass(module = "filemap._filemap", name = "Lock", unsendable)]
pub(crate) struct PyLock {
    held: Option<Held>,
    name: String,
    owner_died: bool,
}

impl PyLock {
    pub(crate) fn acquire(
        py: Python<'_>,
        map: Arc<FileMap>,
        name: String,
        timeout: Option<Duration>,
    ) -> PyResult<PyLock> {
        let guard = with_lock_retry(py, timeout, || {
            let guard = map.lock()?;
            // SAFETY: the guard borrows the `FileMap` inside `map`'s Arc
            // allocation. `Held` below keeps a clone of that Arc (moving an
            // Arc does not move the allocation) and drops the guard before
            // it, so the borrow never outlives the `FileMap`.
            let guard = unsafe { std::mem::transmute::<Guard<'_>, Guard<'static>>(guard) };
            Ok(SameThread(guard))
        })?
        .0;
        let owner_died = guard.owner_died();
        Ok(PyLock {
            held: Some(Held { guard, _map: map }),
            name,
            owner_died,
        })
    }

    fn held(&mut self, py: Python<'_>) -> PyResult<&mut Held> {
        let name = &self.name;
        self.held.as_mut().ok_or_else(|| {
            make_error(
                py,
                "NotLocked",
                format!("the lock of region {name:?} was released already"),
                &[("name", obj(py, name.as_str()))],
            )
        })
    }
}

#[pymethods]
impl PyLock {
    /// Whether the previous holder died holding the lock (its last write,
    /// if any, is intact: a publish is atomic).
    #[getter]
    fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Whether the lock is still held.
    #[getter]
    fn locked(&self) -> bool {
        self.held.is_some()
    }

    /// The published content as a ``Snapshot``; stable while the lock is held.
    fn read(&mut self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let snap = self.held(py)?.guard.read().map_err(|e| to_py(py, e))?;
        snapshot_to_py(py, &snap)
    }

    /// Publish ``content``; the lock stays held. Returns the new generation.
    fn publish(&mut self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        let held = self.held(py)?;
        with_content(content, |bytes| {
            held.guard
                .publish(bytes)
                .map(|p| p.generation)
                .map_err(|e| to_py(py, e))
        })
    }

    /// Release the lock. Raises ``NotLocked`` if it was released already.
    fn unlock(&mut self, py: Python<'_>) -> PyResult<()> {
        self.held(py)?;
        self.held = None;
        Ok(())
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, _args: &Bound<'_, PyTuple>) {
        self.held = None;
    }

    fn __repr__(&self) -> String {
        format!(
            "<filemap.Lock region={:?} {}>",
            self.name,
            if self.held.is_some() {
                "held"
            } else {
                "released"
            }
        )
    }
}
