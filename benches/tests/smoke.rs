//! Runs `filemap-bench --smoke --json FILE` as CI does and checks what it
//! leaves: the JSON array with a row per mechanism and payload, the two
//! SVG plots, and no shared-memory object or directory of its own.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

const MECHANISMS: [&str; 11] = [
    "filemap-blocking",
    "filemap-spin",
    "filemap-adaptive",
    "futex-floor",
    "spin-floor",
    "unix-socket",
    "pipe",
    "tcp-loopback",
    "iceoryx2-spin",
    "iceoryx2-event",
    "shared_memory-raw_sync",
];

/// Peers whose failure the harness reports instead of failing.
const PEERS: [&str; 3] = ["iceoryx2-spin", "iceoryx2-event", "shared_memory-raw_sync"];

fn out_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("filemap-bench-smoke-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn smoke_run_writes_json_and_plots_and_cleans_up() {
    let dir = out_dir();
    let json = dir.join("results.json");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_filemap-bench"))
        .args(["--smoke", "--json"])
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn filemap-bench");
    let pid = child.id();
    // Bounded wait: a hung harness fails the test instead of CI.
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > Duration::from_secs(300) {
            let _ = child.kill();
            panic!("filemap-bench --smoke still running after 300 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert!(
        status.success(),
        "filemap-bench --smoke failed: {status}\n{stdout}"
    );

    // The markdown table went to stdout, with the ratio columns.
    assert!(stdout.contains("| filemap-blocking |"), "{stdout}");
    assert!(stdout.contains("× filemap-spin"), "{stdout}");

    let rows: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let rows = rows.as_array().expect("a JSON array");
    for mechanism in MECHANISMS {
        for payload in [8u64, 4096, 65536, 1 << 20] {
            let ok = rows.iter().find(|r| {
                r.get("kind").is_none()
                    && r["mechanism"] == mechanism
                    && r["payload_bytes"] == payload
            });
            match ok {
                Some(r) => {
                    for key in ["median_ns", "p99_ns", "p999_ns", "runs"] {
                        assert!(r[key].as_u64().is_some(), "{key} of {r}");
                    }
                    // CPU of both processes beside every latency. The
                    // parent reads its own clock exactly, so some is
                    // spent; the child's clock, read from another process,
                    // lags by up to a scheduler tick while the child runs,
                    // more than a whole smoke window of 200 round trips.
                    let cpu = r["cpu_ns_per_rt"].as_f64();
                    assert!(cpu.is_some_and(|c| c > 0.0), "cpu_ns_per_rt of {r}");
                    let parent = r["cpu_ns_per_rt_parent"].as_f64();
                    assert!(parent.is_some_and(|c| c > 0.0), "{r}");
                    let child = r["cpu_ns_per_rt_child"].as_f64();
                    assert!(child.is_some_and(|c| c >= 0.0), "{r}");
                    assert!(r["median_ns"].as_u64() <= r["p99_ns"].as_u64(), "{r}");
                    assert!(r["p99_ns"].as_u64() <= r["p999_ns"].as_u64(), "{r}");
                }
                None => {
                    let err = rows.iter().find(|r| {
                        r["kind"] == "error"
                            && r["mechanism"] == mechanism
                            && r["payload_bytes"] == payload
                    });
                    assert!(
                        PEERS.contains(&mechanism) && err.is_some(),
                        "no result and no reported error for {mechanism} at {payload} B"
                    );
                }
            }
        }
    }
    for kind in [
        "waiting",
        "loan",
        "inproc",
        "throughput",
        "slow_reader",
        "scaling",
        "lifecycle",
        "growth",
        "target",
        "run",
    ] {
        assert!(rows.iter().any(|r| r["kind"] == kind), "no {kind} rows");
    }
    // The slow reader read what it was told to, each read timed, and the
    // writer published meanwhile.
    let slow: Vec<_> = rows.iter().filter(|r| r["kind"] == "slow_reader").collect();
    assert!(!slow.is_empty());
    for r in slow {
        assert!(r["reads"].as_u64() >= Some(10), "{r}");
        assert!(r["publishes"].as_u64() >= Some(1), "{r}");
        let read = |k: &str| r[k].as_u64().unwrap_or_else(|| panic!("{k} of {r}"));
        assert!(read("read_min_ns") > 0, "{r}");
        assert!(read("read_median_ns") <= read("read_p99_ns"), "{r}");
        assert!(read("read_p99_ns") <= read("read_max_ns"), "{r}");
        assert!(read("publish_median_ns") > 0, "{r}");
        assert!(
            r["read_over_publish"].as_f64().is_some_and(|x| x > 0.0),
            "{r}"
        );
        let each = r["read_ns"].as_array().expect("read_ns");
        assert_eq!(Some(each.len() as u64), r["reads"].as_u64(), "{r}");
        assert!(r["reads_over_bound"].as_u64() <= r["reads"].as_u64(), "{r}");
    }
    assert!(stdout.contains("### Slow reader"), "{stdout}");
    assert!(stdout.contains("| CPU / rt |"), "{stdout}");

    // Waiting: every kind, idle and rare; a spinning waiter burns far more
    // CPU than a sleeping one, and the rare-change waiters saw changes.
    let waiting: Vec<_> = rows.iter().filter(|r| r["kind"] == "waiting").collect();
    let cpu = |m: &str, s: &str| {
        let r = waiting
            .iter()
            .find(|r| r["mechanism"] == m && r["scenario"] == s)
            .unwrap_or_else(|| panic!("no waiting row {m} {s}"));
        if s == "rare" {
            assert!(r["changes"].as_u64() > Some(0), "{r}");
            assert!(r["wake_median_ns"].as_u64() > Some(0), "{r}");
        }
        r["cpu_ns"].as_u64().unwrap()
    };
    for s in ["idle", "rare"] {
        let spin = cpu("filemap-spin", s);
        assert!(spin > 10 * cpu("filemap-blocking", s), "{s}: spin {spin}");
        cpu("filemap-adaptive", s);
    }

    // The loan: serde and raw rows, ~1 MiB each, with a time.
    let loan: Vec<_> = rows.iter().filter(|r| r["kind"] == "loan").collect();
    for op in ["write_value", "to_vec_named+write"] {
        let r = loan
            .iter()
            .find(|r| r["op"] == op)
            .unwrap_or_else(|| panic!("no loan row {op}"));
        assert!(r["payload_bytes"].as_u64() > Some(900 << 10), "{r}");
        assert!(r["ns_per_op"].as_f64().is_some_and(|t| t > 0.0), "{r}");
    }
    assert!(loan.len() >= 6, "{loan:?}");
    assert!(rows
        .iter()
        .any(|r| r["kind"] == "scaling" && r["mechanism"] == "filemap-adaptive"));
    // Growth: each case, the grown region against the created one, timed.
    for case in ["first_publish", "steady"] {
        for region in ["grown", "created"] {
            let r = rows
                .iter()
                .find(|r| r["kind"] == "growth" && r["case"] == case && r["region"] == region)
                .unwrap_or_else(|| panic!("no growth row {case} {region}"));
            assert!(r["publish_ns"].as_f64().is_some_and(|t| t > 0.0), "{r}");
            assert!(
                r["capacity_bytes"].as_u64() <= r["payload_bytes"].as_u64(),
                "{r}"
            );
        }
    }
    assert!(stdout.contains("### Regions that grow"), "{stdout}");
    for plot in ["results-latency.svg", "results-watchers.svg"] {
        let svg = std::fs::read_to_string(dir.join(plot)).unwrap();
        assert!(
            svg.starts_with("<svg") && svg.contains("filemap-blocking"),
            "{plot}"
        );
    }

    // Nothing of the run is left behind.
    let needle = format!("fmbench-{pid}-");
    let left: Vec<_> = std::fs::read_dir("/dev/shm")
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(&needle))
        .collect();
    assert!(left.is_empty(), "left in /dev/shm: {left:?}");
    assert!(!std::env::temp_dir().join(format!("fmbench-{pid}")).exists());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn unknown_arguments_fail_and_help_succeeds() {
    let bad = Command::new(env!("CARGO_BIN_EXE_filemap-bench"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert!(!bad.status.success());
    let help = Command::new(env!("CARGO_BIN_EXE_filemap-bench"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(help.status.success());
    assert!(String::from_utf8_lossy(&help.stdout).contains("--smoke"));
}
