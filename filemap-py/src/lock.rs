//! The region lock: waiting for it ([`with_lock_retry`]) and holding it
//! as a Python object (`filemap.Lock`).
//!
//! This module owns a held lock between Python calls, as the library's
//! [`OwnedGuard`]. The lock belongs to the thread that took it: used from
//! another thread, every method raises `WrongThread` and the lock stays
//! held; garbage-collected on another thread, it is released there.

use std::sync::{Arc, Mutex, TryLockError};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use filemap::{Error, FileMap, OwnedGuard};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyTuple};

use crate::convert::{snapshot_object, with_content};
use crate::errors::to_py;
use crate::lifecycle;
use crate::read::{fitted, new_bytes};

/// The library lock timeout the binding opens every handle with: lock
/// waits run in slices this long, so the binding can honour its own
/// timeout (any length, or none) to a few milliseconds and check signals
/// between slices.
pub(crate) const LOCK_SLICE: Duration = Duration::from_millis(5);

/// Retry `op` (which takes the region lock with the library timeout
/// [`LOCK_SLICE`]) until it gets the lock or `timeout` passes, releasing
/// the GIL meanwhile and checking signals, and with `still_open` that the
/// handle was not closed, between attempts. A close by interpreter exit
/// marks the thread to park (see
/// [`parks_if_cut_by_exit`](crate::lifecycle::parks_if_cut_by_exit)).
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
                if let Err(closed) = still_open(py) {
                    lifecycle::lock_wait_closed();
                    return Err(closed);
                }
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
///
/// Its guard is dropped with the release: a released `Lock` keeps nothing
/// of the region (the region goes with its last handle, whatever `Lock`
/// objects outlive it). Publishing and reading copy the content with the
/// GIL released; the owner thread is then inside the guard's mutex, and
/// another thread's call (which `WrongThread` refuses anyway) finds it
/// busy instead of waiting for it with the GIL held.
#[pyclass(module = "filemap._filemap", name = "Lock", frozen)]
pub(crate) struct PyLock {
    /// `None` once released.
    guard: Mutex<Option<OwnedGuard>>,
    owner_died: bool,
    /// The thread that took the lock: the only one that may use it.
    thread: ThreadId,
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
        Ok(PyLock {
            owner_died: guard.owner_died(),
            guard: Mutex::new(Some(guard)),
            thread: std::thread::current().id(),
            name,
        })
    }

    fn not_locked(&self, py: Python<'_>) -> PyErr {
        to_py(
            py,
            Error::NotLocked {
                name: self.name.clone(),
            },
        )
    }

    fn wrong_thread(&self, py: Python<'_>) -> PyErr {
        to_py(
            py,
            Error::WrongThread {
                name: self.name.clone(),
            },
        )
    }

    /// Without waiting: whether the lock is held. Busy means the owner
    /// thread is publishing or reading without the GIL: held.
    fn held(&self) -> bool {
        match self.guard.try_lock() {
            Ok(slot) => slot.is_some(),
            Err(TryLockError::Poisoned(p)) => p.get_ref().is_some(),
            Err(TryLockError::WouldBlock) => true,
        }
    }

    /// Run `f` with the guard, on the thread that took the lock (else
    /// `WrongThread`, or `NotLocked` when released). Only that thread ever
    /// holds the mutex across a release of the GIL, so from it the mutex
    /// is free (its calls do not nest: no Python code runs inside).
    fn with_guard<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&mut Option<OwnedGuard>) -> PyResult<R>,
    ) -> PyResult<R> {
        if std::thread::current().id() != self.thread {
            return Err(if self.held() {
                self.wrong_thread(py)
            } else {
                self.not_locked(py)
            });
        }
        let mut slot = match self.guard.try_lock() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => return Err(self.wrong_thread(py)),
        };
        f(&mut slot)
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
        self.held()
    }

    /// The published content as a ``Snapshot``; stable while the lock is held.
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.with_guard(py, |slot| {
            let guard = slot.as_mut().ok_or_else(|| self.not_locked(py))?;
            // Under the lock the length cannot change between the reads.
            let (content, stamp) = new_bytes(py, 0, |buf| {
                py.detach(|| fitted(guard.read_into(buf)))
                    .map_err(|e| to_py(py, e))
            })?;
            snapshot_object(py, content, stamp.generation, stamp.writer)
        })
    }

    /// Publish ``content``; the lock stays held. Returns the new generation.
    fn publish(&self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        // The content first: a buffer's export may run Python code.
        with_content(content, |bytes| {
            self.with_guard(py, |slot| {
                let guard = slot.as_mut().ok_or_else(|| self.not_locked(py))?;
                py.detach(|| guard.publish(bytes))
                    .map(|p| p.generation)
                    .map_err(|e| to_py(py, e))
            })
        })
    }

    /// Release the lock. Raises ``NotLocked`` if it was released already,
    /// ``WrongThread`` (and the lock stays held) from another thread.
    fn unlock(&self, py: Python<'_>) -> PyResult<()> {
        let released = self.with_guard(py, |slot| {
            let guard = slot.as_mut().ok_or_else(|| self.not_locked(py))?;
            guard.unlock().map_err(|e| to_py(py, e))?;
            Ok(slot.take())
        })?;
        // The guard's reference to the region goes: when it was the last,
        // this unmaps (and may remove) the region.
        py.detach(move || drop(released));
        Ok(())
    }

    /// Entering a released lock raises ``NotLocked``.
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        if !slf.get().held() {
            return Err(slf.get().not_locked(slf.py()));
        }
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) -> PyResult<()> {
        // Released in the block already: nothing to do (only the owner
        // thread releases, so this cannot race with a release).
        if self.held() {
            self.unlock(py)
        } else {
            Ok(())
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<filemap.Lock region={:?} {}>",
            self.name,
            if self.held() { "held" } else { "released" }
        )
    }
}
