//! The region lock as a Python object (`filemap.Lock`).
//!
//! This module owns a held lock between Python calls, as the library's
//! [`OwnedGuard`]. The lock belongs to the thread that took it: used from
//! another thread, every method raises `WrongThread` and the lock stays
//! held; garbage-collected on another thread, it is released there.

use std::sync::Arc;
use std::time::Duration;

use filemap::{FileMap, OwnedGuard};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyTuple};

use crate::{snapshot_to_py, to_py, with_content, with_lock_retry};

/// The region lock, held. A context manager: leaving the ``with`` block
/// releases it. Made by ``FileMap.lock()``.
#[pyclass(module = "filemap._filemap", name = "Lock")]
pub(crate) struct PyLock {
    guard: OwnedGuard,
    name: String,
}

impl PyLock {
    pub(crate) fn acquire(
        py: Python<'_>,
        map: Arc<FileMap>,
        name: String,
        timeout: Option<Duration>,
        still_open: &dyn Fn(Python<'_>) -> PyResult<()>,
    ) -> PyResult<PyLock> {
        let guard = with_lock_retry(py, timeout, still_open, || map.lock_owned())?;
        Ok(PyLock { guard, name })
    }
}

#[pymethods]
impl PyLock {
    /// Whether the previous holder died holding the lock (its last write,
    /// if any, is intact: a publish is atomic).
    #[getter]
    fn owner_died(&self) -> bool {
        self.guard.owner_died()
    }

    /// Whether the lock is still held.
    #[getter]
    fn locked(&self) -> bool {
        self.guard.is_held()
    }

    /// The published content as a ``Snapshot``; stable while the lock is held.
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let snap = self.guard.read().map_err(|e| to_py(py, e))?;
        snapshot_to_py(py, &snap)
    }

    /// Publish ``content``; the lock stays held. Returns the new generation.
    fn publish(&mut self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        let guard = &mut self.guard;
        with_content(content, |bytes| {
            guard
                .publish(bytes)
                .map(|p| p.generation)
                .map_err(|e| to_py(py, e))
        })
    }

    /// Release the lock. Raises ``NotLocked`` if it was released already,
    /// ``WrongThread`` (and the lock stays held) from another thread.
    fn unlock(&mut self, py: Python<'_>) -> PyResult<()> {
        self.guard.unlock().map_err(|e| to_py(py, e))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&mut self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        if self.guard.is_held() {
            self.unlock(py)?;
        }
        Ok(())
    }

    fn __repr__(&self) -> String {
        format!(
            "<filemap.Lock region={:?} {}>",
            self.name,
            if self.guard.is_held() {
                "held"
            } else {
                "released"
            }
        )
    }
}
