//! The region lock: waiting for it ([`with_lock_retry`]) and holding it
//! as a Python object (`filemap.Lock`).
//!
//! This module owns a held lock between Python calls, as the library's
//! [`OwnedGuard`]. The lock belongs to the thread that took it: used from
//! another thread, every method raises `WrongThread` and the lock stays
//! held; garbage-collected on another thread, it is released there.

use std::sync::Arc;
use std::time::{Duration, Instant};

use filemap::{Error, FileMap, OwnedGuard};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyTuple};

use crate::convert::{snapshot_to_py, with_content};
use crate::errors::to_py;

/// The library lock timeout the binding opens every handle with: lock
/// waits run in slices this long, so the binding can honour its own
/// timeout (any length, or none) to a few milliseconds and check signals
/// between slices.
pub(crate) const LOCK_SLICE: Duration = Duration::from_millis(5);

/// Retry `op` (which takes the region lock with the library timeout
/// [`LOCK_SLICE`]) until it gets the lock or `timeout` passes, releasing
/// the GIL meanwhile and checking signals, and with `still_open` that the
/// handle was not closed, between attempts.
pub(crate) fn with_lock_retry<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    still_open: &dyn Fn(Python<'_>) -> PyResult<()>,
    mut op: impl FnMut() -> filemap::Result<T> + Send,
) -> PyResult<T> {
    let start = Instant::now();
    loop {
        match py.detach(&mut op) {
            Err(Error::Timeout {
                what, holder_pid, ..
            }) => {
                py.check_signals()?;
                still_open(py)?;
                let waited = start.elapsed();
                if timeout.is_some_and(|t| waited >= t) {
                    return Err(to_py(
                        py,
                        Error::Timeout {
                            what,
                            waited,
                            holder_pid,
                        },
                    ));
                }
            }
            other => return other.map_err(|e| to_py(py, e)),
        }
    }
}

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
