//! `filemap-bench`: filemap against the alternatives, in one run, with
//! real processes.
//!
//! The binary re-executes itself (`current_exe() __child <role> ...`) for
//! the other side of every measurement; `main` dispatches those roles
//! before anything else. See `--help` and `PERFORMANCE.md`.

mod cli;
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
mod sys;
mod throughput;
mod timing;
mod units;
mod waiting;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};

use crate::cli::{Args, Suite};
use crate::harness::{ChildArgs, Namespace};
use crate::mech::Mechanism;
use crate::report::{Machine, Results};

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
        match role.as_str() {
            "echo" => mech::echo_main(&args),
            "watch" => throughput::watch_main(&args),
            "slowreader" => throughput::slow_reader_main(&args),
            "watcher" => scaling::watcher_main(&args),
            other => bail!("unknown child role {other}"),
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
    let args = Args::parse(argv)?;
    if args.help {
        print!("{}", cli::USAGE);
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
        latency: Vec::new(),
        waiting: Vec::new(),
        inproc: Vec::new(),
        loan: Vec::new(),
        throughput: Vec::new(),
        slow_reader: Vec::new(),
        scaling: Vec::new(),
        lifecycle: Vec::new(),
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
    let mut failures = Vec::new();
    let mut record = |what: Suite, e: anyhow::Error| {
        eprintln!("  {} FAILED: {e:#}", what.name());
        failures.push((what.name().to_owned(), format!("{e:#}")));
    };
    if args.wants(Suite::Latency) {
        eprintln!("round-trip latency:");
        results.latency = latency::run(&ns, &args, mode);
    }
    if args.wants(Suite::Waiting) {
        eprintln!("waiting with little traffic (CPU of one waiter):");
        match waiting::run(&ns, mode) {
            Ok(rows) => results.waiting = rows,
            Err(e) => record(Suite::Waiting, e),
        }
        ns.clean();
    }
    if args.wants(Suite::Inproc) {
        eprintln!("in-process read/write:");
        match inproc::run(&ns, mode) {
            Ok(rows) => results.inproc = rows,
            Err(e) => record(Suite::Inproc, e),
        }
        ns.clean();
    }
    if args.wants(Suite::Loan) {
        eprintln!("serialise and publish ~1 MiB (loan vs Vec + write):");
        match loan::run(&ns, mode) {
            Ok(rows) => results.loan = rows,
            Err(e) => record(Suite::Loan, e),
        }
        ns.clean();
    }
    if args.wants(Suite::Throughput) {
        eprintln!("throughput:");
        match throughput::run(&ns, mode, args.pin) {
            Ok(rows) => results.throughput = rows,
            Err(e) => record(Suite::Throughput, e),
        }
        ns.clean();
        eprintln!("slow reader (read_into + as long again processing, writer back to back):");
        match throughput::slow_reader(&ns, mode, args.pin) {
            Ok(rows) => results.slow_reader = rows,
            Err(e) => record(Suite::Throughput, e),
        }
        ns.clean();
    }
    if args.wants(Suite::Scaling) {
        eprintln!("scaling with watchers:");
        match scaling::run(&ns, mode) {
            Ok(rows) => results.scaling = rows,
            Err(e) => record(Suite::Scaling, e),
        }
        ns.clean();
    }
    if args.wants(Suite::Lifecycle) {
        eprintln!("open/attach/close:");
        match lifecycle::run(&ns, mode) {
            Ok(rows) => results.lifecycle = rows,
            Err(e) => record(Suite::Lifecycle, e),
        }
        ns.clean();
    }
    results.failures = failures;
    results.seconds = started.elapsed().as_secs_f64();
    print!("{}", results.markdown());
    if let Some(path) = &args.json {
        write_outputs(&results, path)?;
    }
    drop(ns);

    // Peers may fail here (reported above and in the JSON); filemap, the
    // floors, the OS mechanisms and the other benchmarks may not.
    let ours_failed = results.latency.iter().any(|c| {
        c.result.is_err()
            && !matches!(
                c.mechanism,
                Mechanism::Iceoryx2Spin | Mechanism::Iceoryx2Event | Mechanism::SharedMemoryRawSync
            )
    });
    if ours_failed || !results.failures.is_empty() {
        eprintln!("filemap-bench: some benchmarks failed (see above)");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

/// `FILE` (the JSON) and `FILE`'s stem + `-latency.svg` / `-watchers.svg`.
fn write_outputs(results: &Results, json: &Path) -> Result<()> {
    if let Some(dir) = json.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let text = serde_json::to_string_pretty(&results.json())?;
    std::fs::write(json, text + "\n").with_context(|| format!("writing {}", json.display()))?;
    let sibling = |suffix: &str| -> PathBuf {
        let stem = json
            .file_stem()
            .map_or_else(|| "results".into(), |s| s.to_string_lossy().into_owned());
        json.with_file_name(format!("{stem}-{suffix}.svg"))
    };
    let mut written = vec![json.to_path_buf()];
    if !results.latency.is_empty() {
        let path = sibling("latency");
        plot::latency_vs_payload(results, &path)?;
        written.push(path);
    }
    if !results.scaling.is_empty() {
        let path = sibling("watchers");
        plot::latency_vs_watchers(results, &path)?;
        written.push(path);
    }
    for path in written {
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
