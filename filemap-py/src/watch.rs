//! Watchers: a library watcher thread calling into Python.

use std::sync::{Mutex, PoisonError};

use filemap::Snapshot;
use pyo3::prelude::*;

use crate::convert::snapshot_to_py;
use crate::errors::to_py;

/// Give the watcher's result to Python: the callback with a snapshot, or
/// `on_error` (else `sys.unraisablehook`) with the error. An exception in
/// either goes to `sys.unraisablehook`; the watcher keeps watching.
pub(crate) fn deliver(
    py: Python<'_>,
    callback: &Py<PyAny>,
    on_error: Option<&Py<PyAny>>,
    result: filemap::Result<Snapshot>,
) {
    let outcome = match result {
        Ok(snap) => snapshot_to_py(py, &snap).and_then(|s| callback.call1(py, (s,)).map(drop)),
        Err(e) => {
            let err = to_py(py, e);
            match on_error {
                Some(handler) => handler.call1(py, (err.into_value(py),)).map(drop),
                None => Err(err),
            }
        }
    };
    if let Err(e) = outcome {
        e.write_unraisable(py, Some(callback.bind(py)));
    }
}

/// A running watcher (native; ``filemap.Watcher`` wraps it).
#[pyclass(module = "filemap._filemap", name = "Watcher", frozen)]
pub(crate) struct PyWatcher {
    pub(crate) watcher: Mutex<Option<filemap::Watcher>>,
}

#[pymethods]
impl PyWatcher {
    /// Stop the watcher thread and wait for it (idempotent). From inside a
    /// callback it stops after the callback returns.
    fn stop(&self, py: Python<'_>) {
        let watcher = self
            .watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        // The thread may be waiting for the GIL to run a callback.
        py.detach(move || drop(watcher));
    }

    /// Whether the watcher still runs.
    #[getter]
    fn running(&self) -> bool {
        self.watcher
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }
}

impl Drop for PyWatcher {
    fn drop(&mut self) {
        let watcher = self
            .watcher
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(watcher) = watcher {
            // Dropped with the GIL held, and the watcher thread may need the
            // GIL to finish a callback: let another thread wait for it.
            let _ = std::thread::Builder::new()
                .name("filemap-watch-stop".into())
                .spawn(move || drop(watcher));
        }
    }
}
