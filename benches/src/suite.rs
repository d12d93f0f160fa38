//! What a benchmark family is to the harness: a name, a run, the child
//! roles it re-executes the binary for, and a [`Report`] of what it
//! measured (its JSON rows, its markdown tables, its targets, its plots).
//!
//! Each family lives in one module (`latency.rs`, `waiting.rs`, ...),
//! measurements and report together, and exports one [`Suite`] constant;
//! `main.rs` lists them in [`crate::SUITES`]. Adding a family is its module
//! and one line there.

#![forbid(unsafe_code)]

use std::path::{Path, PathBuf};

use anyhow::Result;
use serde_json::Value;

use crate::cli::Args;
use crate::harness::{ChildArgs, Namespace};
use crate::report::Target;

/// A benchmark family.
pub struct Suite {
    /// Its name for `--suites`, for failures and in the JSON.
    pub name: &'static str,
    /// Measure. A part that failed as a whole goes to `fail` (reported and
    /// recorded under this suite's name, failing the run); what it did
    /// measure is returned.
    pub run: Run,
    /// The `__child <role>` processes it spawns.
    pub children: &'static [Child],
}

/// A suite's run: `fail` takes what failed as a whole.
pub type Run = fn(&Namespace, &Args, &mut dyn FnMut(anyhow::Error)) -> Box<dyn Report>;

/// The other side of a measurement: `filemap-bench __child <role> key=value...`.
pub struct Child {
    pub role: &'static str,
    pub main: fn(&ChildArgs) -> Result<()>,
}

/// What one suite measured, and how it is shown.
pub trait Report: std::fmt::Debug {
    /// Its objects of the JSON array (each with a `kind`, but for the
    /// latency rows).
    fn json(&self, rows: &mut Vec<Value>);
    /// Its markdown tables; nothing when it measured nothing.
    fn markdown(&self, md: &mut String);
    /// The targets it is judged by, where it measured both sides.
    fn targets(&self, _out: &mut Vec<Target>) {}
    /// Its plot, if it draws one: written to `sibling(suffix)`, whose path
    /// is returned.
    fn plot(&self, _sibling: &dyn Fn(&str) -> PathBuf) -> Result<Option<PathBuf>> {
        Ok(None)
    }
    /// Whether something that must not fail did (peers may).
    fn failed(&self) -> bool {
        false
    }
}

/// The suite named `name`.
pub fn find(suites: &'static [Suite], name: &str) -> Option<&'static Suite> {
    suites.iter().find(|s| s.name == name)
}

/// The child role `role` of any suite.
pub fn child(suites: &'static [Suite], role: &str) -> Option<&'static Child> {
    suites
        .iter()
        .flat_map(|s| s.children.iter())
        .find(|c| c.role == role)
}

/// `sibling` for [`Report::plot`]: `FILE`'s stem + `-<suffix>.svg`.
pub fn sibling_svg(json: &Path, suffix: &str) -> PathBuf {
    let stem = json
        .file_stem()
        .map_or_else(|| "results".into(), |s| s.to_string_lossy().into_owned());
    json.with_file_name(format!("{stem}-{suffix}.svg"))
}

/// The rows a suite measured, or none once its error is handed to `fail`:
/// a suite that failed still reports (empty tables), and the run goes on.
pub fn rows_or_none<R>(
    measured: anyhow::Result<Vec<R>>,
    fail: &mut dyn FnMut(anyhow::Error),
) -> Vec<R> {
    measured.unwrap_or_else(|e| {
        fail(e);
        Vec::new()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suite_names_and_child_roles_are_unique() {
        let suites = crate::SUITES;
        for (i, s) in suites.iter().enumerate() {
            assert!(
                suites[..i].iter().all(|t| t.name != s.name),
                "two suites named {}",
                s.name
            );
            assert!(std::ptr::eq(find(suites, s.name).unwrap(), s));
        }
        let roles: Vec<&str> = suites
            .iter()
            .flat_map(|s| s.children.iter().map(|c| c.role))
            .collect();
        for (i, r) in roles.iter().enumerate() {
            assert!(!roles[..i].contains(r), "two child roles named {r}");
            assert_eq!(child(suites, r).unwrap().role, *r);
        }
        assert_eq!(roles, ["echo", "watch", "slowreader", "watcher"]);
        assert!(find(suites, "bogus").is_none() && child(suites, "bogus").is_none());
    }
}
