//! `filemap._filemap`: the native half of the `filemap` Python package.
//!
//! This module owns the crossing between Python and the Rust library: it
//! releases the GIL around every call that can block, lets Ctrl-C and
//! `close()` end a wait at once (see `wait.rs`), reads straight into
//! Python objects (`read.rs`), and turns every library error into the
//! Python exception of `filemap._errors` named as its kind (`errors.rs`). The pure-Python package (`python/filemap`) builds
//! the public API on top: context managers, `update`, `changes()`,
//! pickling, the text view.

use pyo3::prelude::*;

mod admin;
mod convert;
mod errors;
mod lifecycle;
mod lock;
mod map;
mod read;
mod wait;
mod watch;

use admin::{clean_stale, info, list_regions, remove, validate_name};
use errors::_error_kinds;
use lifecycle::{_after_fork_in_child, _close_all};
use lock::PyLock;
use map::PyFileMap;
use watch::PyWatcher;

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
    m.add_function(wrap_pyfunction!(_error_kinds, m)?)?;
    m.add("DEFAULT_CAPACITY", filemap::DEFAULT_CAPACITY)?;
    m.add("MIN_CAPACITY", filemap::MIN_CAPACITY)?;
    m.add("MAX_CAPACITY", filemap::MAX_CAPACITY)?;
    m.add("MAX_NAME_LEN", filemap::admin::MAX_NAME_LEN)?;
    Ok(())
}
