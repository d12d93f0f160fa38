//! The handle: `filemap._filemap.FileMap`, the native base class of
//! `filemap.FileMap`.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use filemap::FileMap;
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyByteArray, PyBytes, PyTuple};

use crate::convert::{duration, snapshot_object, with_content};
use crate::errors::{closed_error, forked_error, to_py};
use crate::lifecycle::{register, Slot, FORK_EPOCH};
use crate::lock::{with_lock_retry, PyLock, LOCK_SLICE};
use crate::wait::{wait_in_slices, DEFAULT_SPIN, SLICE};
use crate::watch::{deliver, PyWatcher};

/// A handle to a named shared-memory region (native base class of
/// `filemap.FileMap`).
#[pyclass(module = "filemap._filemap", name = "FileMap", subclass, frozen)]
pub(crate) struct PyFileMap {
    map: Arc<Slot>,
    name: String,
    path: String,
    capacity: usize,
    existed: bool,
    persistent: bool,
    pid: u32,
    handle: u32,
    lock_timeout: Option<Duration>,
    /// [`FORK_EPOCH`] when the handle was opened.
    epoch: u64,
    /// Reused by `read`/`read_into` so polling allocates nothing.
    scratch: Mutex<Vec<u8>>,
}

impl PyFileMap {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<FileMap>> {
        // The library refuses inherited handles in its fallible calls; this
        // covers the others (waits, generation) too.
        if FORK_EPOCH.load(Ordering::Relaxed) != self.epoch {
            return Err(forked_error(py, &self.name, self.pid, std::process::id()));
        }
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .ok_or_else(|| closed_error(py, &self.name))
    }

    /// `Closed` once the handle was closed: what blocking calls check
    /// between their slices.
    fn still_open(&self, py: Python<'_>) -> PyResult<()> {
        if self.closed() {
            return Err(closed_error(py, &self.name));
        }
        Ok(())
    }

    /// A per-call lock timeout: `None` is the handle's default, `inf` no limit.
    fn timeout_or_default(&self, timeout: Option<f64>) -> PyResult<Option<Duration>> {
        match timeout {
            None => Ok(self.lock_timeout),
            given => duration(given, "timeout"),
        }
    }

    /// Read the content into the scratch buffer, then hand it to `f`.
    fn read_scratch<R>(
        &self,
        py: Python<'_>,
        f: impl FnOnce(&[u8], filemap::Stamp) -> PyResult<R>,
    ) -> PyResult<R> {
        let map = self.get(py)?;
        let mut buf =
            std::mem::take(&mut *self.scratch.lock().unwrap_or_else(PoisonError::into_inner));
        let still_open = |py: Python<'_>| self.still_open(py);
        let stamp = with_lock_retry(py, self.lock_timeout, &still_open, || {
            map.read_into(&mut buf)
        });
        let result = stamp.and_then(|stamp| f(&buf, stamp));
        *self.scratch.lock().unwrap_or_else(PoisonError::into_inner) = buf;
        result
    }
}

#[pymethods]
impl PyFileMap {
    #[new]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    #[pyo3(signature = (name, capacity = filemap::DEFAULT_CAPACITY as u64, *, create = None, persistent = false, lock_timeout = Some(10.0), path = None, mode = 0o600))]
    fn new(
        py: Python<'_>,
        name: String,
        capacity: u64,
        create: Option<bool>,
        persistent: bool,
        lock_timeout: Option<f64>,
        path: Option<PathBuf>,
        mode: u32,
    ) -> PyResult<Self> {
        let lock_timeout = duration(lock_timeout, "lock_timeout")?;
        let mut builder = FileMap::builder(name.clone())
            .capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
            .lock_timeout(LOCK_SLICE)
            .permissions(mode);
        if persistent {
            builder = builder.persistent(true);
        }
        if let Some(path) = path {
            builder = builder.path(path);
        }
        builder = match create {
            None => builder,
            Some(true) => builder.create_only(),
            Some(false) => builder.open_only(),
        };
        let map = py.detach(|| builder.open()).map_err(|e| to_py(py, e))?;
        let id = map.writer_id();
        let info = map.info();
        let handle = PyFileMap {
            name,
            path: info.path.to_string_lossy().into_owned(),
            capacity: map.capacity(),
            existed: map.existed_already(),
            persistent: info.persistent,
            pid: id.pid,
            handle: id.handle,
            lock_timeout,
            epoch: FORK_EPOCH.load(Ordering::Relaxed),
            map: Arc::new(RwLock::new(Some(Arc::new(map)))),
            scratch: Mutex::new(Vec::new()),
        };
        register(&handle.map);
        Ok(handle)
    }

    /// The region name.
    #[getter]
    fn name(&self) -> &str {
        &self.name
    }

    /// The backing object's path (`/dev/shm/filemap.<name>` on Linux).
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// Capacity in bytes: the most content a write may carry.
    #[getter]
    fn capacity(&self) -> usize {
        self.capacity
    }

    /// Whether this handle attached to a region that existed before.
    #[getter]
    fn existed_already(&self) -> bool {
        self.existed
    }

    /// Whether the region outlives its last handle.
    #[getter]
    fn persistent(&self) -> bool {
        self.persistent
    }

    /// This handle's writer id, ``(pid, handle)``, as recorded with its writes.
    #[getter]
    fn id(&self) -> (u32, u32) {
        (self.pid, self.handle)
    }

    /// The default lock timeout in seconds (``None``: wait as long as it takes).
    #[getter]
    fn lock_timeout(&self) -> Option<f64> {
        self.lock_timeout.map(|d| d.as_secs_f64())
    }

    /// The current generation (one atomic load).
    #[getter]
    fn generation(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(self.get(py)?.generation())
    }

    /// Whether :meth:`close` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.map
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_none()
    }

    /// Close the handle (idempotent). The region goes away with its last
    /// handle, in any process, unless it is persistent. Waits in progress
    /// on other threads (``wait_change``, a lock wait) raise ``Closed``
    /// within 50 ms; other calls in progress finish first. Interpreter exit
    /// closes every handle still open.
    fn close(&self, py: Python<'_>) {
        let map = self
            .map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        py.detach(move || drop(map));
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) {
        self.close(py);
    }

    /// Publish ``content`` (bytes-like or str, UTF-8) as the region's whole
    /// new content and return the new generation.
    fn write(&self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        let map = self.get(py)?;
        with_content(content, |bytes| {
            with_lock_retry(py, self.lock_timeout, &|py| self.still_open(py), || {
                map.write(bytes)
            })
            .map(|p| p.generation)
        })
    }

    /// Publish ``content`` only if the generation is still ``expected``;
    /// else raise ``Conflict`` (nothing written). Returns the new generation.
    fn write_if(&self, py: Python<'_>, expected: u64, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        let map = self.get(py)?;
        with_content(content, |bytes| {
            with_lock_retry(py, self.lock_timeout, &|py| self.still_open(py), || {
                map.write_if(expected, bytes)
            })
            .map(|p| p.generation)
        })
    }

    /// Read the published content as a :class:`Snapshot`.
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        self.read_scratch(py, |buf, stamp| {
            snapshot_object(py, buf, stamp.generation, stamp.writer)
        })
    }

    /// Read the content into ``buffer`` (a bytearray, resized to the
    /// content's length) and return its generation. Allocates nothing once
    /// the buffer and the handle's scratch space have room.
    fn read_into(&self, py: Python<'_>, buffer: &Bound<'_, PyByteArray>) -> PyResult<u64> {
        self.read_scratch(py, |buf, stamp| {
            buffer.resize(buf.len())?;
            // SAFETY: the GIL is held and no Python code runs between the
            // resize above and this copy, so nothing else can resize or
            // read `buffer` meanwhile; its length is `buf.len()` now.
            unsafe { buffer.as_bytes_mut() }.copy_from_slice(buf);
            Ok(stamp.generation)
        })
    }

    /// Block until the generation differs from ``seen``; return the new one,
    /// or ``None`` when ``timeout`` seconds pass first. Sleeps in the
    /// kernel; with ``spin`` (seconds, at most 0.05), busy-polls that long
    /// first, which catches a prompt peer without a sleep and a wake-up.
    #[pyo3(signature = (seen, timeout = None, *, spin = DEFAULT_SPIN.as_secs_f64()))]
    fn wait_change(
        &self,
        py: Python<'_>,
        seen: u64,
        timeout: Option<f64>,
        spin: f64,
    ) -> PyResult<Option<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let spin = duration(Some(spin), "spin")?.unwrap_or(SLICE).min(SLICE);
        let map = self.get(py)?;
        let start = Instant::now();
        if !spin.is_zero() {
            let spin = timeout.map_or(spin, |t| t.min(spin));
            if let Some(generation) = py.detach(|| {
                map.wait_change(seen, filemap::Wait::spin().timeout(spin))
                    .ok()
            }) {
                return Ok(Some(generation));
            }
        }
        let rest = timeout.map(|t| t.saturating_sub(start.elapsed()));
        wait_in_slices(
            py,
            map,
            seen,
            rest,
            &|py| self.still_open(py),
            |m, seen, t| {
                m.wait_change(seen, filemap::Wait::sleep().timeout(t.unwrap_or(SLICE)))
                    .ok()
            },
        )
    }

    /// Like :meth:`wait_change`, but spins first while spinning has been
    /// catching changes (learnt per handle from its spins; at most 50 µs),
    /// and sleeps at once while it has not, probing now and then. Never
    /// more spinners on a region than the machine has cores, less one.
    #[pyo3(signature = (seen, timeout = None))]
    fn wait_change_adaptive(
        &self,
        py: Python<'_>,
        seen: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let map = self.get(py)?;
        wait_in_slices(
            py,
            map,
            seen,
            timeout,
            &|py| self.still_open(py),
            |m, seen, t| {
                m.wait_change(seen, filemap::Wait::adaptive().timeout(t.unwrap_or(SLICE)))
                    .ok()
            },
        )
    }

    /// Like :meth:`wait_change` but busy-polls: lowest latency, one core busy.
    #[pyo3(signature = (seen, timeout = None))]
    fn wait_change_spin(
        &self,
        py: Python<'_>,
        seen: u64,
        timeout: Option<f64>,
    ) -> PyResult<Option<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let map = self.get(py)?;
        wait_in_slices(
            py,
            map,
            seen,
            timeout,
            &|py| self.still_open(py),
            |m, seen, t| {
                m.wait_change(seen, filemap::Wait::spin().timeout(t.unwrap_or(SLICE)))
                    .ok()
            },
        )
    }

    /// Take the region lock (see ``filemap.FileMap.lock``).
    #[pyo3(signature = (timeout = None))]
    fn _lock(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLock> {
        let timeout = self.timeout_or_default(timeout)?;
        let map = self.get(py)?;
        PyLock::acquire(py, map, self.name.clone(), timeout, &|py| {
            self.still_open(py)
        })
    }

    /// Read-modify-write under the lock (see ``filemap.FileMap.update``).
    /// Returns ``(generation, published, owner_died)``.
    #[pyo3(signature = (function, timeout = None))]
    fn _update(
        &self,
        py: Python<'_>,
        function: Py<PyAny>,
        timeout: Option<f64>,
    ) -> PyResult<(u64, bool, bool)> {
        let timeout = self.timeout_or_default(timeout)?;
        let map = self.get(py)?;
        let updated = with_lock_retry(py, timeout, &|py| self.still_open(py), || {
            map.update(|content: &mut Vec<u8>| call_update(&function, content))
        })?;
        updated.value?;
        Ok((updated.generation, updated.changed, updated.owner_died))
    }

    /// Start a watcher thread calling ``callback(snapshot)`` (see
    /// ``filemap.FileMap.watch``).
    #[pyo3(signature = (callback, on_error = None))]
    fn _watch(
        &self,
        py: Python<'_>,
        callback: Py<PyAny>,
        on_error: Option<Py<PyAny>>,
    ) -> PyResult<PyWatcher> {
        let map = self.get(py)?;
        let watcher = py
            .detach(|| {
                map.watch(move |result| {
                    Python::attach(|py| deliver(py, &callback, on_error.as_ref(), result));
                })
            })
            .map_err(|e| to_py(py, e))?;
        Ok(PyWatcher {
            watcher: Mutex::new(Some(watcher)),
        })
    }

    fn __repr__(&self) -> String {
        format!(
            "<filemap.FileMap name={:?} capacity={}{}>",
            self.name,
            self.capacity,
            if self.closed() { " closed" } else { "" }
        )
    }
}

/// Call the Python update function on `content`; its return value
/// (bytes-like or str; `None` = unchanged) replaces the content. If it
/// raises, the content is left alone, so nothing is published.
fn call_update(function: &Py<PyAny>, content: &mut Vec<u8>) -> PyResult<()> {
    Python::attach(|py| {
        let result = function.call1(py, (PyBytes::new(py, content),))?;
        let result = result.bind(py);
        if result.is_none() {
            return Ok(());
        }
        with_content(result, |bytes| {
            content.clear();
            content.extend_from_slice(bytes);
            Ok(())
        })
    })
}
