//! Results: the JSON array, the markdown tables on stdout and the targets.

#![forbid(unsafe_code)]

use std::fmt::Write as _;

use serde_json::{json, Value};

use crate::cli::Mode;
use crate::mech::Mechanism;
use crate::units::{bytes, ns};
use crate::{inproc, latency, lifecycle, loan, scaling, throughput, waiting};

/// Where the numbers come from.
#[derive(Debug, Clone)]
pub struct Machine {
    pub nproc: usize,
    pub cpu: String,
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
        let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .map(|s| s.trim().to_owned())
            .unwrap_or_else(|_| "unknown".to_owned());
        Machine {
            nproc: crate::sys::cpu_count(),
            cpu,
            kernel,
        }
    }
}

/// Everything one harness run measured.
#[derive(Debug, Clone)]
pub struct Results {
    pub mode: Mode,
    pub command: String,
    pub machine: Machine,
    pub pinned: bool,
    pub latency: Vec<latency::Cell>,
    pub waiting: Vec<waiting::Row>,
    pub inproc: Vec<inproc::Row>,
    pub loan: Vec<loan::Row>,
    pub throughput: Vec<throughput::Row>,
    pub slow_reader: Vec<throughput::SlowRow>,
    pub scaling: Vec<scaling::Row>,
    pub lifecycle: Vec<lifecycle::Row>,
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
    fn median(&self, m: Mechanism, payload: usize) -> Option<f64> {
        self.latency
            .iter()
            .find(|c| c.mechanism == m && c.payload == payload)
            .and_then(|c| c.result.as_ref().ok())
            .map(|r| r.chosen.median as f64)
    }

    /// The best repetition's median: what a noisy host inflates least.
    fn best(&self, m: Mechanism, payload: usize) -> Option<f64> {
        self.latency
            .iter()
            .find(|c| c.mechanism == m && c.payload == payload)
            .and_then(|c| c.result.as_ref().ok())
            .and_then(|r| r.runs.iter().map(|s| s.median).min())
            .map(|ns| ns as f64)
    }

    fn inproc_ns(&self, implementation: &str, op: &str, payload: usize) -> Option<f64> {
        self.inproc
            .iter()
            .find(|r| r.implementation == implementation && r.op == op && r.payload == payload)
            .map(|r| r.ns_per_op)
    }

    fn payloads(&self) -> Vec<usize> {
        let mut p: Vec<usize> = self.latency.iter().map(|c| c.payload).collect();
        p.dedup();
        p
    }

    /// (loan, baseline) ns per publish of a pair of loan rows.
    fn loan_pair(&self, ours: &str, theirs: &str) -> Option<(f64, f64)> {
        let find = |op: &str| self.loan.iter().find(|r| r.op == op).map(|r| r.ns_per_op);
        Some((find(ours)?, find(theirs)?))
    }

    /// The performance targets, each at every payload size measured.
    pub fn targets(&self) -> Vec<Target> {
        use Mechanism::*;
        let mut out = Vec::new();
        let pairs = [
            (FilemapBlocking, FutexFloor, 1.2),
            (FilemapBlocking, UnixSocket, 0.5),
            (FilemapSpin, SpinFloor, 1.3),
            (FilemapSpin, Iceoryx2Spin, 0.5),
        ];
        for (ours, theirs, limit) in pairs {
            for payload in self.payloads() {
                if let (Some(a), Some(b)) =
                    (self.median(ours, payload), self.median(theirs, payload))
                {
                    out.push(Target {
                        name: format!("{} / {} median", ours.name(), theirs.name()),
                        payload: Some(payload),
                        ratio: a / b,
                        limit,
                        at_least: false,
                        unit: "×",
                    });
                }
            }
        }
        // Small contents, by best repetitions: the floor without the
        // scheduling noise of a shared host.
        if let (Some(a), Some(b)) = (self.best(FilemapSpin, 8), self.best(SpinFloor, 8)) {
            out.push(Target {
                name: "filemap-spin / spin-floor, best repetitions".to_owned(),
                payload: Some(8),
                ratio: a / b,
                limit: 1.3,
                at_least: false,
                unit: "×",
            });
        }
        // The adaptive wait with a prompt peer at 8 B: near spinning
        // latency, far below blocking.
        for (theirs, limit) in [(FilemapSpin, 1.5), (FilemapBlocking, 0.2)] {
            if let (Some(a), Some(b)) = (self.median(FilemapAdaptive, 8), self.median(theirs, 8)) {
                out.push(Target {
                    name: format!("filemap-adaptive / {} median", theirs.name()),
                    payload: Some(8),
                    ratio: a / b,
                    limit,
                    at_least: false,
                    unit: "×",
                });
            }
        }
        // Rare changes: the adaptive waiter's CPU against the blocking one's.
        let rare = |k| {
            self.waiting
                .iter()
                .find(|r| r.kind == k && matches!(r.scenario, waiting::Scenario::Rare { .. }))
                .map(waiting::Row::cpu_percent)
        };
        if let (Some(a), Some(b)) = (rare(waiting::Kind::Adaptive), rare(waiting::Kind::Blocking)) {
            out.push(Target {
                name: "one change per 10 ms: adaptive waiter CPU % − blocking waiter CPU %"
                    .to_owned(),
                payload: None,
                ratio: a - b,
                limit: 2.0,
                at_least: false,
                unit: " pp",
            });
        }
        // More waiting processes than cores: 1 writer + 8 watchers.
        let scale = |k| {
            self.scaling
                .iter()
                .find(|r| r.kind == k && r.watchers == 8)
                .map(|r| r.summary.median as f64)
        };
        if let (Some(a), Some(b)) = (
            scale(scaling::Kind::FilemapAdaptive),
            scale(scaling::Kind::Filemap),
        ) {
            out.push(Target {
                name: "1 writer + 8 watcher processes on 2 cores: adaptive / blocking median (last watcher)".to_owned(),
                payload: None,
                ratio: a / b,
                limit: 1.2,
                at_least: false,
                unit: "×",
            });
        }
        // The loan: serialise-and-publish ~1 MiB.
        if let Some((a, b)) = self.loan_pair(loan::OP_VALUE, loan::OP_VEC_VALUE) {
            out.push(Target {
                name: "to_vec_named + write time / write_value (loan) time, ~1 MiB struct"
                    .to_owned(),
                payload: self.loan.first().map(|r| r.bytes),
                ratio: b / a,
                limit: 1.3,
                at_least: true,
                unit: "×",
            });
        }
        if let (Some(wr), Some(mc)) = (
            self.inproc_ns("filemap", "write+read", 1 << 20),
            self.inproc_ns("memcpy", "memcpy", 1 << 20),
        ) {
            out.push(Target {
                name: "1 MiB write+read bandwidth / memcpy bandwidth".to_owned(),
                payload: Some(1 << 20),
                ratio: mc / wr,
                limit: 0.8,
                at_least: true,
                unit: "×",
            });
        }
        if let (Some(c), Some(rust)) = (
            self.inproc_ns("C ABI", inproc::ABI_OP, inproc::ABI_PAYLOAD),
            self.inproc_ns("filemap", inproc::ABI_OP, inproc::ABI_PAYLOAD),
        ) {
            out.push(Target {
                name: "C ABI fm_write+fm_read / Rust write+read_into".to_owned(),
                payload: Some(inproc::ABI_PAYLOAD),
                ratio: c / rust,
                limit: 1.1,
                at_least: false,
                unit: "×",
            });
        }
        if let (Some(ours), Some(theirs)) = (
            self.inproc_ns("filemap", "read", 64),
            self.inproc_ns("mmap-sync", "read", 64),
        ) {
            out.push(Target {
                name: "read_into 64 B / mmap-sync read 64 B".to_owned(),
                payload: Some(64),
                ratio: ours / theirs,
                limit: 1.0,
                at_least: false,
                unit: "×",
            });
        }
        out
    }

    /// The JSON array: one object per mechanism and payload (no `kind`),
    /// then objects with a `kind` for everything else.
    pub fn json(&self) -> Value {
        let mut rows = Vec::new();
        for cell in &self.latency {
            match &cell.result {
                Ok(r) => {
                    let (lo, hi) = r.median_spread();
                    let (p99_lo, p99_hi) = r.p99_spread();
                    rows.push(json!({
                        "mechanism": cell.mechanism.name(),
                        "payload_bytes": cell.payload,
                        "median_ns": r.chosen.median,
                        "p99_ns": r.chosen.p99,
                        "p999_ns": r.chosen.p999,
                        "runs": r.runs.len(),
                        "round_trips": r.chosen.count,
                        "min_ns": r.chosen.min,
                        "max_ns": r.chosen.max,
                        "mean_ns": r.chosen.mean,
                        "median_ns_min": lo,
                        "median_ns_max": hi,
                        "p99_ns_min": p99_lo,
                        "p99_ns_max": p99_hi,
                        "run_medians_ns": r.runs.iter().map(|s| s.median).collect::<Vec<_>>(),
                        "run_p99_ns": r.runs.iter().map(|s| s.p99).collect::<Vec<_>>(),
                        "run_p999_ns": r.runs.iter().map(|s| s.p999).collect::<Vec<_>>(),
                        "cpu_ns_per_rt": cell.cpu_ns_per_rt(),
                        "cpu_ns_per_rt_parent": cell.cpu_median(|c| c.parent_ns),
                        "cpu_ns_per_rt_child": cell.cpu_median(|c| c.child_ns),
                        "run_cpu_ns_per_rt": cell.cpu.iter().map(|c| c.total_ns()).collect::<Vec<_>>(),
                    }));
                }
                Err(e) => rows.push(json!({
                    "kind": "error",
                    "mechanism": cell.mechanism.name(),
                    "payload_bytes": cell.payload,
                    "error": e,
                })),
            }
        }
        for r in &self.waiting {
            rows.push(json!({
                "kind": "waiting",
                "mechanism": r.kind.name(),
                "scenario": r.scenario.name(),
                "interval_ns": r.scenario.interval_ns(),
                "wall_ns": r.wall_ns,
                "cpu_ns": r.cpu_ns,
                "cpu_percent": r.cpu_percent(),
                "changes": r.changes,
                "wake_median_ns": r.wake.map(|w| w.median),
                "wake_p99_ns": r.wake.map(|w| w.p99),
            }));
        }
        for r in &self.loan {
            rows.push(json!({
                "kind": "loan",
                "op": r.op,
                "payload_bytes": r.bytes,
                "ns_per_op": r.ns_per_op,
                "wall_ns_per_op": r.wall_ns_per_op,
                "gib_per_s": crate::timing::gib_per_s(r.bytes, r.ns_per_op),
            }));
        }
        for r in &self.inproc {
            rows.push(json!({
                "kind": "inproc",
                "implementation": r.implementation,
                "op": r.op,
                "payload_bytes": r.payload,
                "ns_per_op": r.ns_per_op,
                "gib_per_s": crate::timing::gib_per_s(r.payload, r.ns_per_op),
            }));
        }
        for r in &self.throughput {
            rows.push(json!({
                "kind": "throughput",
                "mechanism": "filemap-blocking",
                "payload_bytes": r.payload,
                "seconds": r.seconds,
                "writes": r.writes,
                "reads": r.reads,
                "writes_per_s": r.writes_per_s(),
                "reads_per_s": r.reads_per_s(),
                "seen_fraction": r.seen_fraction(),
                "write_gib_per_s": r.write_gib_per_s(),
                "read_gib_per_s": r.read_gib_per_s(),
                "memcpy_gib_per_s": r.memcpy_gib_per_s(),
            }));
        }
        for r in &self.slow_reader {
            rows.push(json!({
                "kind": "slow_reader",
                "mechanism": "filemap",
                "payload_bytes": r.payload,
                "reads": r.read.count,
                "read_alone_ns": r.copy_ns,
                "read_median_ns": r.read.median,
                "read_p99_ns": r.read.p99,
                "read_max_ns": r.read.max,
                "read_min_ns": r.read.min,
                "publishes": r.publish.count,
                "publish_median_ns": r.publish.median,
                "publish_p99_ns": r.publish.p99,
                "publish_max_ns": r.publish.max,
                "read_over_publish": r.ratio(),
                "read_max_over_publish": r.max_ratio(),
                "bound_ns": r.bound_ns(),
                "reads_over_bound": r.over_bound(),
                "read_ns": r.reads_ns,
            }));
        }
        for r in &self.scaling {
            rows.push(json!({
                "kind": "scaling",
                "mechanism": r.kind.name(),
                "watchers": r.watchers,
                "publishes": r.summary.count,
                "median_ns": r.summary.median,
                "p99_ns": r.summary.p99,
                "p999_ns": r.summary.p999,
                "max_ns": r.summary.max,
            }));
        }
        for r in &self.lifecycle {
            rows.push(json!({
                "kind": "lifecycle",
                "implementation": r.implementation,
                "op": r.op,
                "capacity_bytes": r.capacity,
                "ns_per_op": r.ns_per_op,
            }));
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
            "kernel": self.machine.kernel,
            "pinned": self.pinned,
            "seconds": self.seconds,
        }));
        Value::Array(rows)
    }

    /// Markdown: machine, latency tables with ratios, the other
    /// benchmarks, the targets.
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let m = &self.machine;
        let _ = writeln!(
            md,
            "Machine: {} CPUs ({}), Linux {}; mode `{}`; processes {}pinned; `{}`; {:.0} s.\n",
            m.nproc,
            m.cpu,
            m.kernel,
            self.mode.name(),
            if self.pinned { "" } else { "not " },
            self.command,
            self.seconds
        );
        if self.mode == Mode::Smoke {
            md.push_str("**Smoke mode: a few hundred round trips, no timing claims.**\n\n");
        }
        self.latency_md(&mut md);
        self.waiting_md(&mut md);
        self.inproc_md(&mut md);
        self.loan_md(&mut md);
        self.throughput_md(&mut md);
        self.slow_reader_md(&mut md);
        self.scaling_md(&mut md);
        self.lifecycle_md(&mut md);
        self.targets_md(&mut md);
        for (what, error) in &self.failures {
            let _ = writeln!(md, "**{what} failed:** {error}\n");
        }
        md
    }

    fn latency_md(&self, md: &mut String) {
        if self.latency.is_empty() {
            return;
        }
        md.push_str("### Round-trip latency (two processes, ping-pong)\n\n");
        md.push_str(
            "Median repetition shown; spread = lowest–highest median over the repetitions. \
             Ratios are of medians (lower is better for filemap when > 1). \
             CPU / rt = user + system CPU time of both processes per measured round trip \
             (median over the repetitions); a round trip lasting the median with both \
             processes busy throughout would cost 2 × median.\n\n",
        );
        for payload in self.payloads() {
            let _ = writeln!(md, "**{}**\n", bytes(payload));
            md.push_str("| mechanism | median | p99 | p99.9 | CPU / rt | round trips × runs | median spread | × filemap-blocking | × filemap-spin |\n");
            md.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            let blocking = self.median(Mechanism::FilemapBlocking, payload);
            let spin = self.median(Mechanism::FilemapSpin, payload);
            for cell in self.latency.iter().filter(|c| c.payload == payload) {
                match &cell.result {
                    Ok(r) => {
                        let (lo, hi) = r.median_spread();
                        let med = r.chosen.median as f64;
                        let ratio = |base: Option<f64>| {
                            base.map_or("–".to_owned(), |b| format!("{:.2}×", med / b))
                        };
                        let _ = writeln!(
                            md,
                            "| {} | {} | {} | {} | {} | {} × {} | {}–{} | {} | {} |",
                            cell.mechanism.name(),
                            ns(med),
                            ns(r.chosen.p99 as f64),
                            ns(r.chosen.p999 as f64),
                            cell.cpu_ns_per_rt().map_or("–".to_owned(), ns),
                            r.chosen.count,
                            r.runs.len(),
                            ns(lo as f64),
                            ns(hi as f64),
                            ratio(blocking),
                            ratio(spin),
                        );
                    }
                    Err(e) => {
                        let _ = writeln!(
                            md,
                            "| {} | failed: {} | | | | | | | |",
                            cell.mechanism.name(),
                            e.replace('|', "\\|").replace('\n', " ")
                        );
                    }
                }
            }
            md.push('\n');
        }
    }

    fn waiting_md(&self, md: &mut String) {
        if self.waiting.is_empty() {
            return;
        }
        md.push_str("### Waiting with little traffic (one waiter thread, its CPU time)\n\n");
        md.push_str(
            "idle = one wait with no change at all; rare = one change per 10 ms, each read \
             (wake = publish → content read). CPU = user + system time of the waiter thread; \
             % = of one core over the run.\n\n",
        );
        md.push_str(
            "| waiter | scenario | run | CPU | CPU % | changes seen | wake median | wake p99 |\n",
        );
        md.push_str("|---|---|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.waiting {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {:.2}% | {} | {} | {} |",
                r.kind.name(),
                r.scenario.name(),
                ns(r.wall_ns as f64),
                ns(r.cpu_ns as f64),
                r.cpu_percent(),
                r.changes,
                r.wake.map_or("–".to_owned(), |w| ns(w.median as f64)),
                r.wake.map_or("–".to_owned(), |w| ns(w.p99 as f64)),
            );
        }
        md.push('\n');
    }

    fn loan_md(&self, md: &mut String) {
        if self.loan.is_empty() {
            return;
        }
        md.push_str(
            "### Serialise and publish (the loan vs a private Vec + write, in process)\n\n",
        );
        md.push_str(
            "Per publish: the thread's CPU time (what the host's other processes took is left \
             out), and wall-clock time. Ratio of CPU times.\n\n",
        );
        md.push_str("| way | bytes published | per publish (CPU) | wall | GiB/s (CPU) | baseline | baseline time / loan time |\n");
        md.push_str("|---|---:|---:|---:|---:|---|---:|\n");
        let mut shown = Vec::new();
        for (ours, theirs) in loan::pairs() {
            for (op, base) in [(&ours, Some(&theirs)), (&theirs, None)] {
                let Some(r) = self.loan.iter().find(|r| &r.op == op) else {
                    continue;
                };
                if base.is_none() && shown.contains(op) {
                    continue;
                }
                shown.push(op.clone());
                let vs = base
                    .and_then(|b| self.loan_pair(op, b))
                    .map_or(String::new(), |(a, b)| format!("{:.2}×", b / a));
                let _ = writeln!(
                    md,
                    "| {} | {} | {} | {} | {:.2} | {} | {} |",
                    r.op,
                    r.bytes,
                    ns(r.ns_per_op),
                    ns(r.wall_ns_per_op),
                    crate::timing::gib_per_s(r.bytes, r.ns_per_op),
                    base.map_or("", |b| b.as_str()),
                    vs,
                );
            }
        }
        md.push('\n');
    }

    fn inproc_md(&self, md: &mut String) {
        if self.inproc.is_empty() {
            return;
        }
        md.push_str("### In-process cost per call (vs cloudflare mmap-sync)\n\n");
        md.push_str("| payload | filemap write | filemap read_into | filemap write+read | mmap-sync write | mmap-sync read (zero-copy) | mmap-sync read+copy | mmap-sync write+read | memcpy |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut sizes: Vec<usize> = self
            .inproc
            .iter()
            .filter(|r| r.op != inproc::ABI_OP)
            .map(|r| r.payload)
            .collect();
        sizes.dedup();
        for p in sizes {
            let cell = |i, op| self.inproc_ns(i, op, p).map_or("–".to_owned(), ns);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                bytes(p),
                cell("filemap", "write"),
                cell("filemap", "read"),
                cell("filemap", "write+read"),
                cell("mmap-sync", "write"),
                cell("mmap-sync", "read"),
                cell("mmap-sync", "read+copy"),
                cell("mmap-sync", "write+read"),
                cell("memcpy", "memcpy"),
            );
        }
        md.push('\n');
        if let (Some(c), Some(rust)) = (
            self.inproc_ns("C ABI", inproc::ABI_OP, inproc::ABI_PAYLOAD),
            self.inproc_ns("filemap", inproc::ABI_OP, inproc::ABI_PAYLOAD),
        ) {
            md.push_str("### C ABI per-call overhead (filemap-ffi)\n\n");
            md.push_str(
                "| payload | Rust write + read_into | C ABI fm_write + fm_read | ratio |\n",
            );
            md.push_str("|---:|---:|---:|---:|\n");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {:.2}x |\n",
                bytes(inproc::ABI_PAYLOAD),
                ns(rust),
                ns(c),
                c / rust
            );
        }
    }

    fn throughput_md(&self, md: &mut String) {
        if self.throughput.is_empty() {
            return;
        }
        md.push_str(
            "### Throughput (free-running writer, one blocking watcher, two processes)\n\n",
        );
        md.push_str("| payload | writes/s | watcher reads/s | seen | write GiB/s | read GiB/s | memcpy GiB/s |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.throughput {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {:.0} | {:.0}% | {:.2} | {:.2} | {:.2} |",
                bytes(r.payload),
                r.writes_per_s(),
                r.reads_per_s(),
                100.0 * r.seen_fraction(),
                r.write_gib_per_s(),
                r.read_gib_per_s(),
                r.memcpy_gib_per_s(),
            );
        }
        md.push('\n');
    }

    fn slow_reader_md(&self, md: &mut String) {
        if self.slow_reader.is_empty() {
            return;
        }
        md.push_str("### Slow reader (writer publishing back to back; reader: `read_into`, then as long again processing)\n\n");
        md.push_str(
            "Read = one `read_into` under the writer; alone = the same reader's fastest of five \
             `read_into` with no writer (its processing after each read lasts as long). \
             Ratios are to the median publish. Bound = 3 × alone + median publish: two spoiled \
             copies, one publish to wait out and its own copy.\n\n",
        );
        md.push_str("| payload | reads | read median | read p99 | read max | read alone | publishes | publish median | publish p99 | read / publish | max read / publish | reads over bound |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in &self.slow_reader {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2}× | {:.2}× | {} of {} |",
                bytes(r.payload),
                r.read.count,
                ns(r.read.median as f64),
                ns(r.read.p99 as f64),
                ns(r.read.max as f64),
                ns(r.copy_ns),
                r.publish.count,
                ns(r.publish.median as f64),
                ns(r.publish.p99 as f64),
                r.ratio(),
                r.max_ratio(),
                r.over_bound(),
                r.read.count,
            );
        }
        md.push('\n');
    }

    fn scaling_md(&self, md: &mut String) {
        if self.scaling.is_empty() {
            return;
        }
        md.push_str(
            "### Notification latency to the last of N watchers (publish → content read)\n\n",
        );
        md.push_str("| watchers | filemap-blocking median | p99 | filemap-adaptive median | p99 | futex-floor median | p99 | blocking / floor | adaptive / blocking |\n");
        md.push_str("|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        let mut counts: Vec<usize> = self.scaling.iter().map(|r| r.watchers).collect();
        counts.dedup();
        for n in counts {
            let find = |k| self.scaling.iter().find(|r| r.watchers == n && r.kind == k);
            let (f, a, b) = (
                find(scaling::Kind::Filemap),
                find(scaling::Kind::FilemapAdaptive),
                find(scaling::Kind::FutexFloor),
            );
            let med = |r: Option<&scaling::Row>| {
                r.map_or("–".to_owned(), |r| ns(r.summary.median as f64))
            };
            let p99 =
                |r: Option<&scaling::Row>| r.map_or("–".to_owned(), |r| ns(r.summary.p99 as f64));
            let ratio = |x: Option<&scaling::Row>, y: Option<&scaling::Row>| match (x, y) {
                (Some(x), Some(y)) => {
                    format!("{:.2}×", x.summary.median as f64 / y.summary.median as f64)
                }
                _ => "–".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {n} | {} | {} | {} | {} | {} | {} | {} | {} |",
                med(f),
                p99(f),
                med(a),
                p99(a),
                med(b),
                p99(b),
                ratio(f, b),
                ratio(a, f),
            );
        }
        md.push('\n');
    }

    fn lifecycle_md(&self, md: &mut String) {
        if self.lifecycle.is_empty() {
            return;
        }
        md.push_str("### Open / attach / close (in process)\n\n");
        md.push_str("| capacity | filemap create+close | bare shm create+close | filemap attach+close | bare shm attach+close |\n");
        md.push_str("|---:|---:|---:|---:|---:|\n");
        let mut caps: Vec<usize> = self.lifecycle.iter().map(|r| r.capacity).collect();
        caps.dedup();
        for c in caps {
            let cell = |i: &str, op: &str| {
                self.lifecycle
                    .iter()
                    .find(|r| r.capacity == c && r.implementation == i && r.op == op)
                    .map_or("–".to_owned(), |r| ns(r.ns_per_op))
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                bytes(c),
                cell("filemap", "create+close"),
                cell("bare-shm", "create+close"),
                cell("filemap", "attach+close"),
                cell("bare-shm", "attach+close"),
            );
        }
        md.push('\n');
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
    use crate::stats::{Repeated, Summary};

    fn cell(m: Mechanism, payload: usize, median: u64) -> latency::Cell {
        let s = Summary {
            count: 1000,
            min: median / 2,
            median,
            p99: median * 2,
            p999: median * 3,
            max: median * 10,
            mean: median as f64,
        };
        latency::Cell {
            mechanism: m,
            payload,
            result: Ok(Repeated::new(vec![s, s, s]).unwrap()),
            cpu: vec![latency::CpuPerRt {
                parent_ns: median as f64,
                child_ns: median as f64 / 2.0,
            }],
        }
    }

    fn results() -> Results {
        Results {
            mode: Mode::Quick,
            command: "test".into(),
            machine: Machine {
                nproc: 2,
                cpu: "cpu".into(),
                kernel: "k".into(),
            },
            pinned: true,
            waiting: Vec::new(),
            loan: Vec::new(),
            latency: vec![
                cell(Mechanism::FilemapBlocking, 8, 1100),
                cell(Mechanism::FutexFloor, 8, 1000),
                cell(Mechanism::UnixSocket, 8, 4000),
                latency::Cell {
                    mechanism: Mechanism::Iceoryx2Spin,
                    payload: 8,
                    result: Err("did not build".into()),
                    cpu: Vec::new(),
                },
            ],
            inproc: Vec::new(),
            throughput: Vec::new(),
            slow_reader: Vec::new(),
            scaling: Vec::new(),
            lifecycle: Vec::new(),
            failures: Vec::new(),
            seconds: 1.0,
        }
    }

    #[test]
    fn json_rows_have_the_required_fields() {
        let v = results().json();
        let rows = v.as_array().unwrap();
        let latency: Vec<_> = rows.iter().filter(|r| r.get("kind").is_none()).collect();
        assert_eq!(latency.len(), 3);
        for r in latency {
            for key in [
                "mechanism",
                "payload_bytes",
                "median_ns",
                "p99_ns",
                "p999_ns",
                "runs",
            ] {
                assert!(r.get(key).is_some(), "{key} missing in {r}");
            }
        }
        assert!(rows
            .iter()
            .any(|r| r["kind"] == "error" && r["mechanism"] == "iceoryx2-spin"));
    }

    #[test]
    fn targets_compare_medians() {
        let t = results().targets();
        let floor = t.iter().find(|t| t.name.contains("futex-floor")).unwrap();
        assert!((floor.ratio - 1.1).abs() < 1e-9 && floor.met());
        let sock = t.iter().find(|t| t.name.contains("unix-socket")).unwrap();
        assert!((sock.ratio - 0.275).abs() < 1e-9 && sock.met());
        assert!(!t.iter().any(|t| t.name.contains("iceoryx2")));
    }

    #[test]
    fn markdown_shows_ratios_and_failures() {
        let md = results().markdown();
        assert!(md.contains("| futex-floor | 1.00 µs |"), "{md}");
        assert!(md.contains("0.91×"), "{md}");
        assert!(md.contains("failed: did not build"), "{md}");
    }

    #[test]
    fn slow_reader_rows_show_latency_against_publish_time() {
        let summary = |median: u64, max: u64| crate::stats::Summary {
            count: 10,
            min: median / 2,
            median,
            p99: max,
            p999: max,
            max,
            mean: median as f64,
        };
        let mut r = results();
        r.slow_reader.push(throughput::SlowRow {
            payload: 64 << 20,
            copy_ns: 12e6,
            read: summary(30_000_000, 45_000_000),
            reads_ns: vec![30_000_000; 9]
                .into_iter()
                .chain([52_000_000])
                .collect(),
            publish: summary(15_000_000, 16_000_000),
        });
        let md = r.markdown();
        assert!(
            md.contains("| 64 MiB | 10 | 30.00 ms | 45.00 ms | 45.00 ms | 12.00 ms | 10 | 15.00 ms | 16.00 ms | 2.00× | 3.00× | 1 of 10 |"),
            "{md}"
        );
        let v = r.json();
        let row = v
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["kind"] == "slow_reader")
            .unwrap();
        assert_eq!(row["read_median_ns"], 30_000_000);
        assert_eq!(row["publish_median_ns"], 15_000_000);
        assert_eq!(row["read_over_publish"], 2.0);
        assert_eq!(row["bound_ns"], 51e6);
        assert_eq!(row["reads_over_bound"], 1);
        assert_eq!(row["read_ns"].as_array().unwrap().len(), 10);
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
