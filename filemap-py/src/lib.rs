//! `filemap._filemap`: the native half of the `filemap` Python package.
//!
//! This module owns the crossing between Python and the Rust library: it
//! releases the GIL around every call that can block, waits in short
//! slices so that Ctrl-C (a pending signal) interrupts any wait within
//! [`SLICE`], and turns every library error into the Python exception of
//! `filemap._errors`. The pure-Python package (`python/filemap`) builds
//! the public API on top: context managers, `update`, `changes()`,
//! pickling, the text view.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock, Weak};
use std::time::{Duration, Instant};

use filemap::{Error, FileMap, RegionInfo, Snapshot};
use pyo3::buffer::PyBuffer;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyString, PyTuple};
use pyo3::BoundObject;

mod guard;

use guard::PyLock;

/// Longest time spent in the library with the GIL released before pending
/// signals are checked (Ctrl-C must interrupt a wait within 100 ms).
const SLICE: Duration = Duration::from_millis(50);

/// How long `wait_change` busy-polls before it sleeps by default: not at
/// all. Spinning first catches a prompt peer without a sleep and a
/// wake-up, but on a loaded machine it steals the peer's core (measured:
/// 5.8 µs round trips sleeping at once, 125 µs spinning 50 µs first, at a
/// load of 14 on 2 cores); callers who own their cores pass `spin=`.
const DEFAULT_SPIN: Duration = Duration::ZERO;

/// The library lock timeout the binding opens every handle with: lock
/// waits run in slices this long, so the binding can honour its own
/// timeout (any length, or none) to a few milliseconds and check signals
/// between slices.
const LOCK_SLICE: Duration = Duration::from_millis(5);

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();
static TYPES: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("filemap._errors")?.unbind())
        })
        .map(|m| m.bind(py))
}

fn types_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    TYPES
        .get_or_try_init(py, || Ok::<_, PyErr>(py.import("filemap._types")?.unbind()))
        .map(|m| m.bind(py))
}

/// Build `filemap._errors.<class>(message, **details)` as a `PyErr`.
pub(crate) fn make_error(
    py: Python<'_>,
    class: &str,
    message: String,
    details: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = errors_module(py)?.getattr(class)?;
        let kwargs = PyDict::new(py);
        for (key, value) in details {
            kwargs.set_item(key, value)?;
        }
        Ok(PyErr::from_value(
            cls.call((message.clone(),), Some(&kwargs))?,
        ))
    };
    build().unwrap_or_else(|e| e)
}

pub(crate) fn obj<'py, T: IntoPyObject<'py>>(py: Python<'py>, value: T) -> Py<PyAny> {
    match value.into_pyobject(py) {
        Ok(v) => v.into_any().unbind(),
        Err(_) => py.None(),
    }
}

/// Map a library error to its Python exception (see `filemap/_errors.py`).
pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err.to_string();
    let o = |v: &str| obj(py, v);
    match err {
        Error::InvalidName { name, rule } => make_error(
            py,
            "InvalidName",
            message,
            &[("name", o(&name)), ("rule", o(&rule.to_string()))],
        ),
        Error::InvalidCapacity {
            requested,
            min,
            max,
        } => make_error(
            py,
            "InvalidCapacity",
            message,
            &[
                ("requested", obj(py, requested)),
                ("min", obj(py, min)),
                ("max", obj(py, max)),
            ],
        ),
        Error::TooLarge { len, capacity } => make_error(
            py,
            "TooLarge",
            message,
            &[("length", obj(py, len)), ("capacity", obj(py, capacity))],
        ),
        Error::NotUtf8 { valid_up_to } => make_error(
            py,
            "NotUtf8",
            message,
            &[("valid_up_to", obj(py, valid_up_to))],
        ),
        Error::NotFound { name } => make_error(py, "NotFound", message, &[("name", o(&name))]),
        Error::AlreadyExists { name } => {
            make_error(py, "AlreadyExists", message, &[("name", o(&name))])
        }
        Error::PermissionDenied { name, path } => make_error(
            py,
            "PermissionDenied",
            message,
            &[("name", o(&name)), ("path", o(&path))],
        ),
        Error::OutOfSpace { name, needed } => make_error(
            py,
            "OutOfSpace",
            message,
            &[("name", o(&name)), ("needed", obj(py, needed))],
        ),
        Error::IncompatibleVersion {
            name,
            found,
            expected,
        } => make_error(
            py,
            "IncompatibleVersion",
            message,
            &[
                ("name", o(&name)),
                ("found", obj(py, found)),
                ("expected", obj(py, expected)),
            ],
        ),
        Error::NotARegion { path, reason } => make_error(
            py,
            "NotARegion",
            message,
            &[("path", o(&path)), ("reason", o(reason))],
        ),
        Error::NameCollision { name, other } => make_error(
            py,
            "NameCollision",
            message,
            &[("name", o(&name)), ("other", o(&other))],
        ),
        Error::Truncated { name, size, needed } => make_error(
            py,
            "Truncated",
            message,
            &[
                ("name", o(&name)),
                ("size", obj(py, size)),
                ("needed", obj(py, needed)),
            ],
        ),
        Error::Corrupted { name, field, value } => make_error(
            py,
            "Corrupted",
            message,
            &[
                ("name", o(&name)),
                ("field", o(field)),
                ("value", obj(py, value)),
            ],
        ),
        Error::Timeout {
            what,
            waited,
            holder_pid,
        } => timeout_error(py, what, waited, holder_pid),
        Error::WouldDeadlock { name } => {
            make_error(py, "WouldDeadlock", message, &[("name", o(&name))])
        }
        Error::TooManyAttached { name, max } => make_error(
            py,
            "TooManyAttached",
            message,
            &[("name", o(&name)), ("max", obj(py, max))],
        ),
        Error::Unsupported => make_error(py, "Unsupported", message, &[]),
        Error::UnsupportedOption { option, reason } => make_error(
            py,
            "Unsupported",
            message,
            &[("option", o(option)), ("reason", o(reason))],
        ),
        Error::Io { op, name, source } => make_error(
            py,
            "Io",
            message,
            &[
                ("op", o(op)),
                ("name", o(&name)),
                ("os_errno", obj(py, source.raw_os_error())),
            ],
        ),
        Error::Conflict {
            name,
            expected,
            found,
        } => make_error(
            py,
            "Conflict",
            message,
            &[
                ("name", o(&name)),
                ("expected", obj(py, expected)),
                ("found", obj(py, found)),
            ],
        ),
        Error::WrongThread { name } => {
            make_error(py, "WrongThread", message, &[("name", o(&name))])
        }
        Error::NotLocked { name } => make_error(py, "NotLocked", message, &[("name", o(&name))]),
        Error::ForkedHandle {
            name,
            opened_by,
            pid,
        } => forked_error(py, &name, opened_by, pid),
        _ => make_error(py, "Error", message, &[]),
    }
}

fn timeout_error(py: Python<'_>, what: &str, waited: Duration, holder_pid: Option<u32>) -> PyErr {
    let message = Error::Timeout {
        what: "",
        waited,
        holder_pid,
    }
    .to_string()
    .replacen("waiting for ", &format!("waiting for {what}"), 1);
    make_error(
        py,
        "Timeout",
        message,
        &[
            ("what", obj(py, what)),
            ("waited", obj(py, waited.as_secs_f64())),
            ("holder_pid", obj(py, holder_pid)),
        ],
    )
}

fn forked_error(py: Python<'_>, name: &str, opened_by: u32, pid: u32) -> PyErr {
    let message = Error::ForkedHandle {
        name: name.to_owned(),
        opened_by,
        pid,
    }
    .to_string();
    make_error(
        py,
        "ForkedHandle",
        message,
        &[
            ("name", obj(py, name)),
            ("opened_by", obj(py, opened_by)),
            ("pid", obj(py, pid)),
        ],
    )
}

/// Bumped in a child after `os.fork()` (through `os.register_at_fork`, set
/// up by the package): a handle opened in an older epoch was inherited.
static FORK_EPOCH: AtomicU64 = AtomicU64::new(0);

/// Called by the package in a child process right after `fork()`.
#[pyfunction]
fn _after_fork_in_child() {
    FORK_EPOCH.fetch_add(1, Ordering::Relaxed);
}

fn closed_error(py: Python<'_>, name: &str) -> PyErr {
    make_error(
        py,
        "Closed",
        format!("the handle of region {name:?} is closed"),
        &[("name", obj(py, name))],
    )
}

/// Seconds (a non-negative float, or `None` for no limit) as a duration.
fn duration(seconds: Option<f64>, what: &str) -> PyResult<Option<Duration>> {
    match seconds {
        None => Ok(None),
        Some(s) if s.is_infinite() && s > 0.0 => Ok(None),
        Some(s) => Duration::try_from_secs_f64(s).map(Some).map_err(|_| {
            PyValueError::new_err(format!(
                "{what} must be a non-negative number of seconds or None, not {s}"
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
    let buffer = PyBuffer::<u8>::get(data).map_err(|_| {
        PyTypeError::new_err(format!(
            "content must be bytes, bytearray, memoryview (of bytes) or str, not {}",
            data.get_type()
                .name()
                .map(|n| n.to_string())
                .unwrap_or_default()
        ))
    })?;
    f(&buffer.to_vec(data.py())?)
}

/// Make a `filemap.Snapshot` (a named tuple defined in `_types.py`).
fn snapshot_object(
    py: Python<'_>,
    content: &[u8],
    generation: u64,
    writer: filemap::WriterId,
) -> PyResult<Py<PyAny>> {
    let cls = types_module(py)?.getattr("Snapshot")?;
    Ok(cls
        .call1((
            PyBytes::new(py, content),
            generation,
            writer.pid,
            writer.handle,
        ))?
        .unbind())
}

pub(crate) fn snapshot_to_py(py: Python<'_>, snap: &Snapshot) -> PyResult<Py<PyAny>> {
    snapshot_object(py, &snap.content, snap.generation, snap.writer)
}

fn region_info_to_py(py: Python<'_>, info: &RegionInfo) -> PyResult<Py<PyAny>> {
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
                    return Err(timeout_error(py, what, waited, holder_pid));
                }
            }
            other => return other.map_err(|e| to_py(py, e)),
        }
    }
}

/// Wait for the generation to leave `seen` with `wait` (one bounded
/// library wait), in slices, releasing the GIL and checking signals, and
/// with `still_open` that the handle was not closed, between slices.
///
/// Closed by another thread, the wait raises `Closed`. Closed at
/// interpreter exit ([`_close_all`]), it lets go of the region and then
/// stays blocked, as every daemon thread in a blocking call is until the
/// process ends: returning would run the thread's Python code on during
/// finalisation, and print a `Closed` traceback for a wait that was
/// simply cut short by the exit.
fn wait_in_slices(
    py: Python<'_>,
    map: Arc<FileMap>,
    seen: u64,
    timeout: Option<Duration>,
    still_open: &dyn Fn(Python<'_>) -> PyResult<()>,
    wait: fn(&FileMap, u64, Option<Duration>) -> Option<u64>,
) -> PyResult<Option<u64>> {
    let deadline = timeout.and_then(|t| Instant::now().checked_add(t));
    loop {
        let slice = match deadline {
            None => SLICE,
            Some(d) => {
                let remaining = d.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    let now = map.generation();
                    return Ok((now != seen).then_some(now));
                }
                remaining.min(SLICE)
            }
        };
        if let Some(generation) = py.detach(|| wait(&map, seen, Some(slice))) {
            return Ok(Some(generation));
        }
        py.check_signals()?;
        if let Err(closed) = still_open(py) {
            if EXITING.load(Ordering::Acquire) {
                drop(map);
                let () = py.detach(|| loop {
                    std::thread::park();
                });
            }
            return Err(closed);
        }
    }
}

/// Set by [`_close_all`]: the interpreter is exiting.
static EXITING: AtomicBool = AtomicBool::new(false);

/// A handle's region, shared by the handle and its calls in progress
/// (each holds a clone of the `Arc` while it runs); `None` once closed.
type Slot = RwLock<Option<Arc<FileMap>>>;

/// Every handle opened in this process, by its slot, for
/// [`_close_all`] at interpreter exit. Entries of handles gone are
/// dropped as the list grows.
static OPEN: Mutex<Vec<Weak<Slot>>> = Mutex::new(Vec::new());

fn register(slot: &Arc<Slot>) {
    let mut open = OPEN.lock().unwrap_or_else(PoisonError::into_inner);
    if open.len() == open.capacity() {
        // Amortised: only when the list would grow.
        open.retain(|w| w.strong_count() > 0);
    }
    open.push(Arc::downgrade(slot));
}

/// Close every handle open in this process, whatever thread uses it, and
/// wait up to `grace` seconds for the calls in progress on them to let go
/// of their regions (a wait notices within [`SLICE`] and lets go, staying
/// blocked; a lock wait notices within [`LOCK_SLICE`] and raises
/// `Closed`). Run by the package at
/// interpreter exit, before daemon threads are frozen mid-call holding a
/// region: every region this process attached to is released (removed
/// when it was the last user of a non-persistent one). Returns how many
/// regions were still held by a call when `grace` ran out (a `Lock` held
/// across the exit, or a callback that does not return).
#[pyfunction]
fn _close_all(py: Python<'_>, grace: f64) -> PyResult<usize> {
    let grace = duration(Some(grace), "grace")?.unwrap_or(Duration::ZERO);
    EXITING.store(true, Ordering::Release);
    let slots: Vec<Arc<Slot>> =
        std::mem::take(&mut *OPEN.lock().unwrap_or_else(PoisonError::into_inner))
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
    let maps: Vec<Arc<FileMap>> = slots
        .iter()
        .filter_map(|slot| slot.write().unwrap_or_else(PoisonError::into_inner).take())
        .collect();
    // Without the GIL: the threads inside a call need it to notice the
    // close and return.
    Ok(py.detach(move || {
        let deadline = Instant::now() + grace;
        let mut held = 0;
        for mut map in maps {
            loop {
                match Arc::try_unwrap(map) {
                    // The last reference: dropping it closes the handle.
                    Ok(map) => break drop(map),
                    Err(shared) if Instant::now() >= deadline => {
                        held += 1;
                        break drop(shared);
                    }
                    Err(shared) => {
                        map = shared;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
            }
        }
        held
    }))
}

/// A handle to a named shared-memory region (native base class of
/// `filemap.FileMap`).
#[pyclass(module = "filemap._filemap", name = "FileMap", subclass, frozen)]
struct PyFileMap {
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

/// Give the watcher's result to Python: the callback with a snapshot, or
/// `on_error` (else `sys.unraisablehook`) with the error. An exception in
/// either goes to `sys.unraisablehook`; the watcher keeps watching.
fn deliver(
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

/// A running watcher (native; ``filemap.Watcher`` wraps it).
#[pyclass(module = "filemap._filemap", name = "Watcher", frozen)]
struct PyWatcher {
    watcher: Mutex<Option<filemap::Watcher>>,
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

/// Every region on this host: a list of ``(name, RegionInfo | Error)``.
#[pyfunction]
fn list_regions(py: Python<'_>) -> PyResult<Vec<(String, Py<PyAny>)>> {
    let regions = py.detach(filemap::admin::list).map_err(|e| to_py(py, e))?;
    regions
        .into_iter()
        .map(|(name, info)| {
            let value = match info {
                Ok(info) => region_info_to_py(py, &info)?,
                Err(e) => to_py(py, e).into_value(py).into_any(),
            };
            Ok((name, value))
        })
        .collect()
}

/// Introspect region ``name`` without attaching to it.
#[pyfunction]
fn info(py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
    let info = py
        .detach(|| filemap::admin::inspect(&name))
        .map_err(|e| to_py(py, e))?;
    region_info_to_py(py, &info)
}

/// Remove region ``name``'s name now; attached processes keep their mapping.
#[pyfunction]
fn remove(py: Python<'_>, name: String) -> PyResult<()> {
    py.detach(|| filemap::admin::remove(&name))
        .map_err(|e| to_py(py, e))
}

/// Remove every stale region and return their names.
#[pyfunction]
fn clean_stale(py: Python<'_>) -> PyResult<Vec<String>> {
    py.detach(filemap::admin::clean_stale)
        .map_err(|e| to_py(py, e))
}

/// Check a region name; raises ``InvalidName``.
#[pyfunction]
fn validate_name(py: Python<'_>, name: &str) -> PyResult<()> {
    filemap::admin::validate_name(name).map_err(|e| to_py(py, e))
}

#[pymodule]
fn _filemap(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyFileMap>()?;
    m.add_class::<PyLock>()?;
    m.add_class::<PyWatcher>()?;
    m.add_function(wrap_pyfunction!(list_regions, m)?)?;
    m.add_function(wrap_pyfunction!(info, m)?)?;
    m.add_function(wrap_pyfunction!(remove, m)?)?;
    m.add_function(wrap_pyfunction!(clean_stale, m)?)?;
    m.add_function(wrap_pyfunction!(validate_name, m)?)?;
    m.add_function(wrap_pyfunction!(_after_fork_in_child, m)?)?;
    m.add_function(wrap_pyfunction!(_close_all, m)?)?;
    m.add("DEFAULT_CAPACITY", filemap::DEFAULT_CAPACITY)?;
    m.add("MIN_CAPACITY", filemap::MIN_CAPACITY)?;
    m.add("MAX_CAPACITY", filemap::MAX_CAPACITY)?;
    m.add("MAX_NAME_LEN", filemap::admin::MAX_NAME_LEN)?;
    Ok(())
}
