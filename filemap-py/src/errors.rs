//! Library errors as Python exceptions.
//!
//! One table: the exception class of an error is the class of
//! `filemap._errors` named as its kind ([`ErrorKind::name`]), so the
//! classes are listed once, in `_errors.py`. Each carries the error's
//! message, its kind's name as `kind`, and the error's fields as
//! attributes ([`details`]). `_error_kinds()` lists every kind the library
//! has, for the test suite to check that `_errors.py` has a class for each.

use filemap::{Error, ErrorKind};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3::BoundObject;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("filemap._errors")?.unbind())
        })
        .map(|m| m.bind(py))
}

/// Build `filemap._errors.<class>(message, **details)` as a `PyErr`; a
/// class `_errors.py` lacks (a kind newer than the package, which the test
/// suite rules out) falls back to the base class `Error`.
fn make_error(
    py: Python<'_>,
    class: &str,
    message: String,
    details: &[(&str, Py<PyAny>)],
) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let module = errors_module(py)?;
        let cls = match module.getattr(class) {
            Ok(cls) => cls,
            Err(_) => module.getattr("Error")?,
        };
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

/// The Python exception of a library error: the class named as its kind.
pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let kind = err.kind();
    let message = err.to_string();
    let mut details = details(py, err);
    details.push(("kind", obj(py, kind.name())));
    make_error(py, kind.name(), message, &details)
}

/// An error's fields as the exception's attributes (documented per class
/// in `_errors.py`).
fn details(py: Python<'_>, err: Error) -> Vec<(&'static str, Py<PyAny>)> {
    let name = |n: String| ("name", obj(py, n));
    match err {
        Error::InvalidName { name: n, rule } => vec![name(n), ("rule", obj(py, rule.to_string()))],
        Error::InvalidCapacity {
            requested,
            min,
            max,
        } => vec![
            ("requested", obj(py, requested)),
            ("min", obj(py, min)),
            ("max", obj(py, max)),
        ],
        Error::InvalidMaxCapacity {
            requested,
            capacity,
            max,
        } => vec![
            ("requested", obj(py, requested)),
            ("min", obj(py, capacity)),
            ("max", obj(py, max)),
        ],
        Error::TooLarge {
            len,
            capacity,
            max_capacity,
        } => vec![
            ("length", obj(py, len)),
            ("capacity", obj(py, capacity)),
            ("max_capacity", obj(py, max_capacity)),
        ],
        Error::NotFound { name: n }
        | Error::AlreadyExists { name: n }
        | Error::Cancelled { name: n }
        | Error::Interrupted { name: n }
        | Error::WouldDeadlock { name: n }
        | Error::WrongThread { name: n }
        | Error::NotLocked { name: n } => vec![name(n)],
        Error::PermissionDenied { name: n, path } => vec![name(n), ("path", obj(py, path))],
        Error::OutOfSpace { name: n, needed } => vec![name(n), ("needed", obj(py, needed))],
        Error::IncompatibleVersion {
            name: n,
            found,
            expected,
        } => vec![
            name(n),
            ("found", obj(py, found)),
            ("expected", obj(py, expected)),
        ],
        Error::NotARegion { path, reason } => {
            vec![("path", obj(py, path)), ("reason", obj(py, reason))]
        }
        Error::NameCollision { name: n, other } => vec![name(n), ("other", obj(py, other))],
        Error::Truncated {
            name: n,
            size,
            needed,
        } => vec![
            name(n),
            ("size", obj(py, size)),
            ("needed", obj(py, needed)),
        ],
        Error::Corrupted {
            name: n,
            field,
            value,
        } => vec![
            name(n),
            ("field", obj(py, field)),
            ("value", obj(py, value)),
        ],
        Error::Timeout {
            what,
            waited,
            holder_pid,
        } => vec![
            ("what", obj(py, what)),
            ("waited", obj(py, waited.as_secs_f64())),
            ("holder_pid", obj(py, holder_pid)),
        ],
        Error::BufferTooSmall {
            name: n,
            len,
            needed,
        } => vec![
            name(n),
            ("length", obj(py, len)),
            ("needed", obj(py, needed)),
        ],
        Error::Conflict {
            name: n,
            expected,
            found,
        } => vec![
            name(n),
            ("expected", obj(py, expected)),
            ("found", obj(py, found)),
        ],
        Error::ForkedHandle {
            name: n,
            opened_by,
            pid,
        } => vec![
            name(n),
            ("opened_by", obj(py, opened_by)),
            ("pid", obj(py, pid)),
        ],
        Error::NotAValue { name: n, len } => vec![name(n), ("length", obj(py, len))],
        Error::WrongType {
            name: n,
            expected,
            found,
        } => vec![
            name(n),
            ("expected", obj(py, expected)),
            ("found", obj(py, found)),
        ],
        Error::Codec {
            name: n,
            op,
            reason,
        } => vec![name(n), ("op", obj(py, op)), ("reason", obj(py, reason))],
        Error::TooManyAttached { name: n, max } => vec![name(n), ("max", obj(py, max))],
        Error::NotUtf8 { valid_up_to } => vec![("valid_up_to", obj(py, valid_up_to))],
        Error::Unsupported => vec![],
        Error::UnsupportedOption { option, reason } => {
            vec![("option", obj(py, option)), ("reason", obj(py, reason))]
        }
        Error::Io {
            op,
            name: n,
            source,
        } => vec![
            ("op", obj(py, op)),
            name(n),
            ("os_errno", obj(py, source.raw_os_error())),
        ],
        // A variant newer than this binding: its class (by kind) and
        // message still say what happened.
        _ => vec![],
    }
}

/// `Closed`: the handle was closed (a state of the binding's handle, not a
/// library error).
pub(crate) fn closed_error(py: Python<'_>, name: &str) -> PyErr {
    make_error(
        py,
        "Closed",
        format!("the handle of region {name:?} is closed"),
        &[("name", obj(py, name))],
    )
}

/// The name of every kind of library error ([`ErrorKind::ALL`]): the test
/// suite checks that `filemap._errors` has a class for each.
#[pyfunction]
pub(crate) fn _error_kinds() -> Vec<&'static str> {
    ErrorKind::ALL.iter().map(|k| k.name()).collect()
}
