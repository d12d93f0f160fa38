//! The handle: `filemap._filemap.FileMap`, the native base class of
//! `filemap.FileMap`.

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use filemap::{Error, FileMap};
use pyo3::prelude::*;
use pyo3::types::{PyAny, PyByteArray, PyBytes, PyTuple};

use crate::convert::{duration, snapshot_object, with_content};
use crate::errors::{closed_error, to_py};
use crate::lifecycle::{parks_if_cut_by_exit, Slot, FORK_EPOCH};
use crate::lock::{with_lock_retry, PyLock, LOCK_SLICE};
use crate::read::{read_bytearray, read_bytes};
use crate::wait::{self, DEFAULT_SPIN};
use crate::watch::{deliver, PyWatcher};

/// A handle to a named shared-memory region (native base class of
/// `filemap.FileMap`).
#[pyclass(module = "filemap._filemap", name = "FileMap", subclass, frozen)]
pub(crate) struct PyFileMap {
    slot: Arc<Slot>,
    name: String,
    path: String,
    /// The capacity at open (it grows: [`PyFileMap::capacity`] reads it
    /// again while the handle is open) and the maximum.
    capacity: usize,
    max_capacity: usize,
    existed: bool,
    persistent: bool,
    pid: u32,
    handle: u32,
    lock_timeout: Option<Duration>,
    /// [`FORK_EPOCH`] when the handle was opened.
    epoch: u64,
    /// The content's length at the last read: what the next read sizes
    /// its `bytes` (or `bytearray`) for.
    last_len: AtomicUsize,
}

impl PyFileMap {
    fn get(&self, py: Python<'_>) -> PyResult<Arc<FileMap>> {
        // The library refuses inherited handles in its fallible calls; this
        // covers the others (waits, generation) too.
        if FORK_EPOCH.load(Ordering::Relaxed) != self.epoch {
            let forked = Error::ForkedHandle {
                name: self.name.clone(),
                opened_by: self.pid,
                pid: std::process::id(),
            };
            return Err(to_py(py, forked));
        }
        self.slot.get().ok_or_else(|| closed_error(py, &self.name))
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
}

#[pymethods]
impl PyFileMap {
    #[new]
    #[allow(clippy::too_many_arguments)] // Python keyword arguments
    #[pyo3(signature = (name, capacity = filemap::DEFAULT_CAPACITY as u64, *, max_capacity = None, create = None, persistent = None, lock_timeout = Some(10.0), path = None, mode = 0o600))]
    fn new(
        py: Python<'_>,
        name: String,
        capacity: u64,
        max_capacity: Option<u64>,
        create: Option<bool>,
        persistent: Option<bool>,
        lock_timeout: Option<f64>,
        path: Option<PathBuf>,
        mode: u32,
    ) -> PyResult<Self> {
        let lock_timeout = duration(lock_timeout, "lock_timeout")?;
        let mut builder = FileMap::builder(name.clone())
            .capacity(usize::try_from(capacity).unwrap_or(usize::MAX))
            .lock_timeout(LOCK_SLICE)
            .permissions(mode);
        if let Some(max) = max_capacity {
            builder = builder.max_capacity(usize::try_from(max).unwrap_or(usize::MAX));
        }
        // `None` keeps the library's default, which differs by backing:
        // shared memory goes with its last handle, a file (`path=`) stays.
        if let Some(persistent) = persistent {
            builder = builder.persistent(persistent);
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
            max_capacity: map.max_capacity(),
            existed: map.existed_already(),
            persistent: info.persistent,
            pid: id.pid,
            handle: id.handle,
            lock_timeout,
            epoch: FORK_EPOCH.load(Ordering::Relaxed),
            slot: Slot::open(map),
            last_len: AtomicUsize::new(0),
        };
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

    /// Capacity in bytes now: the most content a write carries without
    /// growing the region (it grows up to `max_capacity`).
    #[getter]
    fn capacity(&self) -> usize {
        self.slot.get().map_or(self.capacity, |map| map.capacity())
    }

    /// The most the capacity may grow to, in bytes: the most content a
    /// write may carry.
    #[getter]
    fn max_capacity(&self) -> usize {
        self.max_capacity
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
        self.slot.is_closed()
    }

    /// Close the handle (idempotent). The region goes away with its last
    /// handle, in any process, unless it is persistent. ``wait_change``
    /// calls in progress on other threads raise ``Closed`` at once, lock
    /// waits within 5 ms; other calls in progress finish first.
    /// Interpreter exit closes every handle still open.
    fn close(&self, py: Python<'_>) {
        let map = self.slot.close();
        py.detach(move || drop(map));
    }

    /// Entering a closed handle raises ``Closed`` (as a closed file does),
    /// a forked child's ``ForkedHandle``.
    fn __enter__(slf: Bound<'_, Self>) -> PyResult<Bound<'_, Self>> {
        slf.get().get(slf.py())?;
        Ok(slf)
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, PyTuple>) {
        self.close(py);
    }

    /// Publish ``content`` (bytes-like or str, UTF-8) as the region's whole
    /// new content and return the new generation.
    fn write(&self, py: Python<'_>, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        parks_if_cut_by_exit(py, || {
            let map = self.get(py)?;
            with_content(content, |bytes| {
                with_lock_retry(py, self.lock_timeout, &|py| self.still_open(py), || {
                    map.write(bytes)
                })
                .map(|p| p.generation)
            })
        })
    }

    /// Publish ``content`` only if the generation is still ``expected``;
    /// else raise ``Conflict`` (nothing written). Returns the new generation.
    fn write_if(&self, py: Python<'_>, expected: u64, content: &Bound<'_, PyAny>) -> PyResult<u64> {
        parks_if_cut_by_exit(py, || {
            let map = self.get(py)?;
            with_content(content, |bytes| {
                with_lock_retry(py, self.lock_timeout, &|py| self.still_open(py), || {
                    map.write_if(expected, bytes)
                })
                .map(|p| p.generation)
            })
        })
    }

    /// Read the published content as a :class:`Snapshot`.
    fn read(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        parks_if_cut_by_exit(py, || {
            let map = self.get(py)?;
            let still_open = |py: Python<'_>| self.still_open(py);
            let (content, stamp) =
                read_bytes(py, &map, &self.last_len, self.lock_timeout, &still_open)?;
            snapshot_object(py, content, stamp.generation, stamp.writer)
        })
    }

    /// Read the content into ``buffer`` (a bytearray, resized to the
    /// content's length) and return its generation. Copies the content
    /// straight into the bytearray, and allocates nothing once it has room.
    fn read_into(&self, py: Python<'_>, buffer: &Bound<'_, PyByteArray>) -> PyResult<u64> {
        parks_if_cut_by_exit(py, || {
            let map = self.get(py)?;
            let still_open = |py: Python<'_>| self.still_open(py);
            let stamp = read_bytearray(
                py,
                &map,
                buffer,
                &self.last_len,
                self.lock_timeout,
                &still_open,
            )?;
            Ok(stamp.generation)
        })
    }

    /// Block until the generation differs from ``seen``; return the new one,
    /// or ``None`` when ``timeout`` seconds pass first.
    ///
    /// ``strategy``: ``"adaptive"`` (the default) spins first while
    /// spinning has been catching changes (learnt per handle from its
    /// spins; at most 50 µs) and the machine has a CPU to spare (no more
    /// threads ready to run than CPUs), else sleeps at once: about a
    /// microsecond per wake-up for a prompt peer on a quiet machine, and
    /// the blocking wait's cost on a loaded one. ``"sleep"`` always sleeps
    /// in the kernel; ``"spin"`` busy-polls (lowest latency, one core
    /// busy). With ``spin`` (seconds, at most 0.05), the wait busy-polls
    /// that long first, whatever the load.
    ///
    /// ``close()`` from another thread ends the wait at once (``Closed``).
    /// Ctrl-C raises ``KeyboardInterrupt`` at once from a sleep, within
    /// 20 ms from ``"spin"``, and after the ``spin`` prefix.
    #[pyo3(signature = (seen, timeout = None, *, strategy = "adaptive", spin = DEFAULT_SPIN.as_secs_f64()))]
    fn wait_change(
        &self,
        py: Python<'_>,
        seen: u64,
        timeout: Option<f64>,
        strategy: &str,
        spin: f64,
    ) -> PyResult<Option<u64>> {
        let timeout = duration(timeout, "timeout")?;
        let strategy = wait::strategy(strategy)?;
        let spin = duration(Some(spin), "spin")?.unwrap_or(wait::MAX_SPIN_FIRST);
        let map = self.get(py)?;
        wait::wait_change(
            py,
            map,
            self.slot.cancel_token(),
            seen,
            timeout,
            strategy,
            spin,
            &|py| closed_error(py, &self.name),
        )
    }

    /// Take the region lock (see ``filemap.FileMap.lock``).
    #[pyo3(signature = (timeout = None))]
    fn _lock(&self, py: Python<'_>, timeout: Option<f64>) -> PyResult<PyLock> {
        let timeout = self.timeout_or_default(timeout)?;
        parks_if_cut_by_exit(py, || {
            let map = self.get(py)?;
            PyLock::acquire(py, map, self.name.clone(), timeout, &|py| {
                self.still_open(py)
            })
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
        parks_if_cut_by_exit(py, || {
            let map = self.get(py)?;
            let updated = with_lock_retry(py, timeout, &|py| self.still_open(py), || {
                map.update(|content: &mut Vec<u8>| call_update(&function, content))
            })?;
            updated.value?;
            Ok((updated.generation, updated.changed, updated.owner_died))
        })
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
