//! `filemap-bench`: filemap against the alternatives, in one run, with
//! real processes.
//!
//! The binary re-executes itself (`current_exe() __child <role> ...`) for
//! the other side of every measurement; `main` dispatches those roles
//! before anything else. See `--help` and `docs/performance.md`.

mod cli;
mod growth;
mod harness;
mod inproc;
mod latency;
mod lifecycle;
mod loan;
mod mech;
mod plot;
mod report;
mod scaling;
mod stats;
mod suite;
mod sys;
mod throughput;
mod timing;
mod units;
mod waiting;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::Args;
use crate::harness::{ChildArgs, Namespace};
use crate::report::{Machine, Results};
use crate::suite::Suite;

/// Every benchmark family, in the order they run and are reported.
/// Adding one: its module (measurements, rows, tables, targets, child
/// roles and a `SUITE`), its `mod` line above and a line here.
pub const SUITES: &[Suite] = &[
    latency::SUITE,
    waiting::SUITE,
    inproc::SUITE,
    loan::SUITE,
    throughput::SUITE,
    scaling::SUITE,
    lifecycle::SUITE,
    growth::SUITE,
];

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().map(String::as_str) == Some("__child") {
        return child_main(&argv[1..]);
    }
    match run(&argv) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("filemap-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A child role: `__child <role> key=value...`.
fn child_main(argv: &[String]) -> ExitCode {
    let _ = sys::die_with_parent();
    let result = (|| -> Result<()> {
        let Some((role, rest)) = argv.split_first() else {
            bail!("child role missing");
        };
        let args = ChildArgs::parse(rest)?;
        match suite::child(SUITES, role) {
            Some(child) => (child.main)(&args),
            None => bail!("unknown child role {role}"),
        }
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filemap-bench child {}: {e:#}", argv.join(" "));
            ExitCode::FAILURE
        }
    }
}

fn run(argv: &[String]) -> Result<ExitCode> {
    let args = Args::parse(argv, SUITES)?;
    if args.help {
        print!("{}", cli::usage(SUITES));
        return Ok(ExitCode::SUCCESS);
    }
    let started = Instant::now();
    let mode = args.mode;
    let ns = Namespace::create()?;
    let mut results = Results {
        mode,
        command: std::iter::once("filemap-bench".to_owned())
            .chain(argv.iter().cloned())
            .collect::<Vec<_>>()
            .join(" "),
        machine: Machine::detect(),
        pinned: args.pin && sys::cpu_count() >= 2,
        suites: Vec::new(),
        failures: Vec::new(),
        seconds: 0.0,
    };
    eprintln!(
        "filemap-bench: mode {}, {} CPUs ({}), Linux {}",
        mode.name(),
        results.machine.nproc,
        results.machine.cpu,
        results.machine.kernel
    );
    for suite in SUITES.iter().filter(|s| args.wants(s)) {
        let mut fail = |e: anyhow::Error| {
            eprintln!("  {} FAILED: {e:#}", suite.name);
            results
                .failures
                .push((suite.name.to_owned(), format!("{e:#}")));
        };
        let measured = (suite.run)(&ns, &args, &mut fail);
        results.suites.push(measured);
        ns.clean();
    }
    results.seconds = started.elapsed().as_secs_f64();
    print!("{}", results.markdown());
    if let Some(path) = &args.json {
        write_outputs(&results, path)?;
    }
    drop(ns);

    if results.failed() {
        eprintln!("filemap-bench: some benchmarks failed (see above)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `FILE` (the JSON) and the suites' plots beside it (`FILE`'s stem +
/// `-latency.svg` / `-watchers.svg`).
fn write_outputs(results: &Results, json: &Path) -> Result<()> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&results.json())?;
    std::fs::write(json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
    let mut written = vec![json.to_path_buf()];
    for s in &results.suites {
        written.extend(s.plot(&|suffix| suite::sibling_svg(json, suffix))?);
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
