//! Module-level functions over regions by name (`filemap::admin`).

use pyo3::prelude::*;

use crate::convert::region_info_to_py;
use crate::errors::to_py;

/// Every region on this host: a list of ``(name, RegionInfo | Error)``.
#[pyfunction]
pub(crate) fn list_regions(py: Python<'_>) -> PyResult<Vec<(String, Py<PyAny>)>> {
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
pub(crate) fn info(py: Python<'_>, name: String) -> PyResult<Py<PyAny>> {
    let info = py
        .detach(|| filemap::admin::inspect(&name))
        .map_err(|e| to_py(py, e))?;
    region_info_to_py(py, &info)
}

/// Remove region ``name``'s name now; attached processes keep their mapping.
#[pyfunction]
pub(crate) fn remove(py: Python<'_>, name: String) -> PyResult<()> {
    py.detach(|| filemap::admin::remove(&name))
        .map_err(|e| to_py(py, e))
}

/// Remove every stale region and return their names.
#[pyfunction]
pub(crate) fn clean_stale(py: Python<'_>) -> PyResult<Vec<String>> {
    py.detach(filemap::admin::clean_stale)
        .map_err(|e| to_py(py, e))
}

/// Check a region name; raises ``InvalidName``.
#[pyfunction]
pub(crate) fn validate_name(py: Python<'_>, name: &str) -> PyResult<()> {
    filemap::admin::validate_name(name).map_err(|e| to_py(py, e))
}
