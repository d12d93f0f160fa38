//! Results: the JSON array, the markdown tables on stdout and the
//! targets, put together from each suite's [`Report`].

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::cli::Mode;
use crate::suite::Report;
use crate::units::bytes;

/// Where the numbers come from.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
    /// The CPU's feature flags as the kernel lists them (`flags` on x86,
    /// `Features` on aarch64), so that runs on different hosts can be told
    /// apart (the copies choose their path by them).
    pub cpu_flags: Vec<String>,
    /// The copy path filemap chose on this CPU for large contents.
    pub copy_path: String,
    pub kernel: String,
}

impl Machine {
    pub fn detect() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find_map(|l| {
                l.strip_prefix("model name")
                    .and_then(|r| r.split_once(':'))
                    .map(|(_, v)| v.trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".to_owned());
        let cpu_flags = cpuinfo
            .lines()
            .find_map(|l| {
                let (key, value) = l.split_once(':')?;
                matches!(key.trim(), "flags" | "Features")
                    .then(|| value.split_whitespace().map(str::to_owned).collect())
            })
            .unwrap_or_default();
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            nproc: crate::sys::cpu_count(),
            cpu,
            cpu_flags,
            copy_path: filemap::copy_path(1 << 20).to_owned(),
            kernel,
        }
    }
}

/// Everything one harness run measured.
#[derive(Debug)]
pub struct Results {
    pub mode: Mode,
    pub command: String,
    pub machine: Machine,
    pub pinned: bool,
    /// What each suite that ran measured, in the order of `SUITES`.
    pub suites: Vec<Box<dyn Report>>,
    /// Benchmarks that failed as a whole, with their error.
    pub failures: Vec<(String, String)>,
    pub seconds: f64,
}

/// A performance target and where we stand.
#[derive(Debug, Clone)]
pub struct Target {
    pub name: String,
    pub payload: Option<usize>,
    pub ratio: f64,
    /// `ratio <= limit` (or `>=` when `at_least`) meets it.
    pub limit: f64,
    pub at_least: bool,
    /// `×` for a ratio, ` pp` for a difference of percentages.
    pub unit: &'static str,
}

impl Target {
    pub fn met(&self) -> bool {
        if self.at_least {
            self.ratio >= self.limit
        } else {
            self.ratio <= self.limit
        }
    }
}

impl Results {
    /// Every suite's targets, suite by suite.
    pub fn targets(&self) -> Vec<Target> {
        let mut out = Vec::new();
        for s in &self.suites {
            s.targets(&mut out);
        }
        out
    }

    /// Whether something other than a peer failed.
    pub fn failed(&self) -> bool {
        !self.failures.is_empty() || self.suites.iter().any(|s| s.failed())
    }

    /// The JSON array: the suites' objects (the latency ones without a
    /// `kind`), then the targets, the failures and the run.
    pub fn json(&self) -> Value {
        let mut rows = Vec::new();
        for s in &self.suites {
            s.json(&mut rows);
        }
        for t in self.targets() {
            rows.push(json!({
                "kind": "target",
                "target": t.name,
                "payload_bytes": t.payload,
                "ratio": t.ratio,
                "limit": t.limit,
                "at_least": t.at_least,
                "unit": t.unit.trim(),
                "met": t.met(),
            }));
        }
        for (what, error) in &self.failures {
            rows.push(json!({ "kind": "error", "benchmark": what, "error": error }));
        }
        rows.push(json!({
            "kind": "run",
            "mode": self.mode.name(),
            "command": self.command,
            "nproc": self.machine.nproc,
            "cpu": self.machine.cpu,
            "cpu_flags": self.machine.cpu_flags,
            "copy_path_1mib": self.machine.copy_path,
            "kernel": self.machine.kernel,
            "pinned": self.pinned,
            "seconds": self.seconds,
        }));
        Value::Array(rows)
    }

    /// Markdown: machine, each suite's tables, the targets, the failures.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {} CPUs ({}; copies of 1 MiB: {}), Linux {}; mode `{}`; processes {}pinned; `{}`; {:.0} s.\n",
            m.nproc,
            m.cpu,
            m.copy_path,
            m.kernel,
            self.mode.name(),
            if self.pinned { "" } else { "not " },
            self.command,
            self.seconds
        );
        if self.mode == Mode::Smoke {
            md.push_str("**Smoke mode: a few hundred round trips, no timing claims.**\n\n");
        }
        for s in &self.suites {
            s.markdown(&mut md);
        }
        self.targets_md(&mut md);
        for (what, error) in &self.failures {
            let _ = writeln!(md, "**{what} failed:** {error}\n");
        }
        md
    }

    fn targets_md(&self, md: &mut String) {
        let targets = self.targets();
        if targets.is_empty() {
            return;
        }
        md.push_str("### Targets\n\n| target | payload | measured | goal | met |\n|---|---:|---:|---:|:---:|\n");
        for t in targets {
            let _ = writeln!(
                md,
                "| {} | {} | {:.2}{} | {} {:.1}{} | {} |",
                t.name,
                t.payload.map_or(String::new(), bytes),
                t.ratio,
                t.unit,
                if t.at_least { "≥" } else { "≤" },
                t.limit,
                t.unit,
                if t.met() { "yes" } else { "**no**" }
            );
        }
        md.push('\n');
        if self.mode == Mode::Smoke {
            md.push_str("(Smoke mode: these ratios are not measurements.)\n\n");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::units::ns;

    #[derive(Debug)]
    struct Fixed(f64);

    impl Report for Fixed {
        fn json(&self, rows: &mut Vec<Value>) {
            rows.push(json!({ "kind": "fixed", "value": self.0 }));
        }
        fn markdown(&self, md: &mut String) {
            let _ = writeln!(md, "fixed {}\n", self.0);
        }
        fn targets(&self, out: &mut Vec<Target>) {
            out.push(Target {
                name: format!("fixed {}", self.0),
                payload: Some(8),
                ratio: self.0,
                limit: 1.0,
                at_least: false,
                unit: "×",
            });
        }
    }

    fn results(mode: Mode) -> Results {
        Results {
            mode,
            command: "test".into(),
            machine: Machine {
                nproc: 2,
                cpu: "cpu".into(),
                cpu_flags: vec!["sse2".into()],
                copy_path: "sse2".into(),
                kernel: "k".into(),
            },
            pinned: true,
            suites: vec![Box::new(Fixed(0.5)), Box::new(Fixed(2.0))],
            failures: vec![("loan".into(), "no memory".into())],
            seconds: 1.0,
        }
    }

    #[test]
    fn json_is_the_suites_rows_then_targets_failures_and_the_run() {
        let v = results(Mode::Quick).json();
        let kinds: Vec<&str> = v
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["fixed", "fixed", "target", "target", "error", "run"]
        );
        let rows = v.as_array().unwrap();
        assert_eq!(rows[2]["met"], true);
        assert_eq!(rows[3]["met"], false);
        assert_eq!(rows[3]["unit"], "×");
        assert_eq!(rows[4]["benchmark"], "loan");
        assert_eq!(rows[5]["mode"], "quick");
    }

    #[test]
    fn markdown_has_each_suite_then_targets_then_failures() {
        let md = results(Mode::Smoke).markdown();
        let at = |s: &str| md.find(s).unwrap_or_else(|| panic!("{s} missing: {md}"));
        assert!(at("Machine: 2 CPUs") < at("**Smoke mode"));
        assert!(at("fixed 0.5") < at("fixed 2\n"));
        assert!(at("fixed 2\n") < at("### Targets"));
        assert!(
            md.contains("| fixed 0.5 | 8 B | 0.50× | ≤ 1.0× | yes |"),
            "{md}"
        );
        assert!(
            md.contains("| fixed 2 | 8 B | 2.00× | ≤ 1.0× | **no** |"),
            "{md}"
        );
        assert!(at("(Smoke mode: these ratios") < at("**loan failed:** no memory"));
    }

    #[test]
    fn human_units() {
        assert_eq!(ns(950.0), "950 ns");
        assert_eq!(ns(1500.0), "1.50 µs");
        assert_eq!(bytes(8), "8 B");
        assert_eq!(bytes(4096), "4 KiB");
        assert_eq!(bytes(1 << 20), "1 MiB");
    }
}
