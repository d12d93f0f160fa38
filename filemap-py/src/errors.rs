//! Library errors as Python exceptions (the classes of `filemap._errors`).

use std::time::Duration;

use filemap::Error;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::PyDict;
use pyo3::BoundObject;

static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

pub(crate) fn errors_module(py: Python<'_>) -> PyResult<&Bound<'_, PyModule>> {
    ERRORS
        .get_or_try_init(py, || {
            Ok::<_, PyErr>(py.import("filemap._errors")?.unbind())
        })
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

pub(crate) fn timeout_error(
    py: Python<'_>,
    what: &str,
    waited: Duration,
    holder_pid: Option<u32>,
) -> PyErr {
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

pub(crate) fn forked_error(py: Python<'_>, name: &str, opened_by: u32, pid: u32) -> PyErr {
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

pub(crate) fn closed_error(py: Python<'_>, name: &str) -> PyErr {
    make_error(
        py,
        "Closed",
        format!("the handle of region {name:?} is closed"),
        &[("name", obj(py, name))],
    )
}
