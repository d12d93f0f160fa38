//! The bridge as real processes: `filemap-bridge` binaries on 127.0.0.1
//! (and in mount namespaces), regions written and read by this process.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use filemap::FileMap;
use filemap_testkit::{
    await_condition, await_condition_within, free_port, unique, Cleanup, RemoveFiles,
};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_filemap-bridge");
const DEADLINE: Duration = Duration::from_secs(20);

/// Removes `regions` and their bridge lock files at the end of a test.
fn cleanup<S: AsRef<str>>(regions: &[S]) -> (Vec<Cleanup>, RemoveFiles) {
    let locks = regions
        .iter()
        .map(|r| {
            let r = r.as_ref();
            filemap::admin::shm_path(r)
                .parent()
                .unwrap()
                .join(format!("filemap-bridge.{r}.lock"))
        })
        .collect();
    let regions = regions
        .iter()
        .map(|r| Cleanup(r.as_ref().to_owned()))
        .collect();
    (regions, RemoveFiles(locks))
}

/// A bridge process whose log lines are collected: JSON objects from
/// standard output with `--json`, else the human lines of standard error
/// (as `Value::String`s), with whatever it prints on standard output kept
/// apart in `stdout`.
struct Bridge {
    child: Child,
    lines: Arc<(Mutex<Vec<Value>>, Condvar)>,
    stdout: Arc<Mutex<Vec<u8>>>,
}

impl Bridge {
    fn spawn(args: &[String]) -> Bridge {
        Self::spawn_cmd(Command::new(BIN), args)
    }

    fn spawn_cmd(cmd: Command, args: &[String]) -> Bridge {
        Self::spawn_logged(cmd, args, true)
    }

    /// Without `--json`: the human log, read from standard error.
    fn spawn_human(args: &[String]) -> Bridge {
        Self::spawn_logged(Command::new(BIN), args, false)
    }

    fn spawn_logged(mut cmd: Command, args: &[String], json: bool) -> Bridge {
        cmd.args(args).stdout(Stdio::piped());
        if json {
            cmd.arg("--json").stderr(Stdio::inherit());
        } else {
            cmd.stderr(Stdio::piped());
        }
        let mut child = cmd.spawn().unwrap();
        let lines = Arc::new((Mutex::new(Vec::new()), Condvar::new()));
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let log: Box<dyn std::io::Read + Send> = if json {
            Box::new(out)
        } else {
            let s2 = Arc::clone(&stdout);
            std::thread::spawn(move || {
                let mut out = out;
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = std::io::Read::read(&mut out, &mut buf) {
                    s2.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            });
            Box::new(child.stderr.take().unwrap())
        };
        let l2 = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(log).lines() {
                let Ok(line) = line else { break };
                let v: Value = if json {
                    serde_json::from_str(&line).unwrap_or_else(|_| Value::String(line.clone()))
                } else {
                    Value::String(line)
                };
                l2.0.lock().unwrap().push(v);
                l2.1.notify_all();
            }
        });
        Bridge {
            child,
            lines,
            stdout,
        }
    }

    /// Wait for a log line matching `pred`.
    fn wait_for(&self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let end = Instant::now() + DEADLINE;
        let mut seen = self.lines.0.lock().unwrap();
        loop {
            if let Some(v) = seen.iter().find(|v| pred(v)) {
                return v.clone();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "timed out waiting for {what}; log: {seen:?}"
            );
            seen = self.lines.1.wait_timeout(seen, left).unwrap().0;
        }
    }

    fn ready(self) -> Bridge {
        self.wait_for("ready", |v| {
            v["event"] == "ready" || v.as_str().is_some_and(|l| l.starts_with("ready "))
        });
        self
    }

    fn count(&self, event: &str) -> usize {
        self.count_where(|v| v["event"] == event)
    }

    /// How many log lines so far match `pred`.
    fn count_where(&self, pred: impl Fn(&Value) -> bool) -> usize {
        let seen = self.lines.0.lock().unwrap();
        seen.iter().filter(|v| pred(v)).count()
    }

    /// SIGKILL, and wait until the process is gone (its locks released).
    fn kill9(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        self.signal("-TERM");
        let status = self.child.wait().unwrap();
        assert!(status.success(), "the bridge ended with {status}");
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill {sig} failed");
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let lines = self.lines.0.lock().unwrap_or_else(|e| e.into_inner());
            eprintln!("--- log of bridge {}:", self.child.id());
            for l in lines.iter() {
                eprintln!("{l}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// A loopback TCP endpoint on a free port.
fn loopback() -> String {
    format!("tcp/127.0.0.1:{}", free_port())
}

impl Bridge {
    /// A bridge serving `region` on `key` with the further `options`
    /// (`--listen`, `--connect`...), once it is ready.
    fn serving(region: &str, key: &str, options: &[&str]) -> Bridge {
        let map = format!("{region}={key}");
        Bridge::spawn(&args(&[&["--map", map.as_str()], options].concat())).ready()
    }
}

fn content(map: &FileMap) -> Vec<u8> {
    map.read().unwrap().content
}

fn open(region: &str, capacity: u64) -> FileMap {
    FileMap::builder(region)
        .capacity(capacity as usize)
        .open()
        .unwrap()
}

#[test]
fn two_bridges_one_key_both_ways_no_echo() {
    let (ra, rb, key) = (unique("a"), unique("b"), unique("key"));
    let _c = cleanup(&[&ra, &rb]);
    let listen = loopback();
    let a = Bridge::serving(&ra, &key, &["--listen", &listen, "--capacity", "1MiB"]);
    let b = Bridge::serving(&rb, &key, &["--connect", &listen, "--capacity", "1MiB"]);
    let (ma, mb) = (open(&ra, 1 << 20), open(&rb, 1 << 20));

    ma.write(b"from A").unwrap();
    await_condition("A's write on B", || content(&mb) == b"from A");
    let from_b = mb.write(b"from B").unwrap().generation;
    await_condition("B's write on A", || content(&ma) == b"from B");
    let again = ma.write(b"A again").unwrap().generation;
    await_condition("A's second write on B", || content(&mb) == b"A again");
    // A bridge sends its region's changes in order, and logs each send
    // after making it; its log reaches us through a pipe, later than the
    // content reaches the other region. Once the log of each bridge's last
    // send is here, anything echoed before it is too.
    let sent = |g: u64| move |v: &Value| v["event"] == "sent" && v["generation"] == g;
    a.wait_for("A's log of its second send", sent(again));
    b.wait_for("B's log of its send", sent(from_b));
    assert_eq!(a.count("sent"), 2, "A sends its two writes only");
    assert_eq!(b.count("sent"), 1, "B sends its one write only");
    assert_eq!(content(&ma), b"A again");

    // A burst from A: B's bridge applies while its watcher runs; it must
    // never take its own applies for local writes (and send them back).
    // Large contents widen the window between B's watcher reading the
    // region and taking the bridge's state.
    let mut burst = vec![0u8; 256 << 10];
    for n in 0..300u32 {
        burst[..4].copy_from_slice(&n.to_le_bytes());
        ma.write(&burst).unwrap();
    }
    await_condition("the burst's last write on B", || content(&mb) == burst);
    assert_eq!(b.count("sent"), 1, "B sent something it did not write");
    assert_eq!(b.count("conflict"), 0);
    assert_eq!(content(&ma), burst);

    // One bridge per region per host.
    let out = Command::new(BIN)
        .args(["--map", &format!("{ra}=other/{key}")])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already serves region"), "{err}");
}

#[test]
fn bad_command_lines_fail_with_one_sentence() {
    let r = unique("bad");
    let _c = cleanup(&[&r]);
    let cases: [(Vec<String>, &str); 5] = [
        (args(&["--map", &format!("{r}=a/*")]), "wildcard"),
        (
            args(&[
                "--map",
                &format!("{r}=k"),
                "--capacity",
                "8K",
                "--max-capacity",
                "4K",
            ]),
            "invalid maximum capacity 4096 bytes",
        ),
        (args(&["--map", "noequals"]), "REGION=KEY"),
        (
            args(&["--map", &format!("{r}=k"), "--capacity", "12XB"]),
            "unit",
        ),
        (
            args(&[
                "--map",
                &format!("{r}=k"),
                "--connect",
                &loopback(),
                "--connect-timeout-ms",
                "500",
            ]),
            "cannot join the network",
        ),
    ];
    for (argv, expect) in cases {
        let out = Command::new(BIN).args(&argv).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{argv:?} succeeded");
        assert!(err.contains(expect), "{argv:?}: {err}");
    }
}

#[test]
fn sizes_take_the_same_units_as_the_cli() {
    let r = unique("units");
    let _c = cleanup(std::slice::from_ref(&r));
    // Accepted: parsing passes and the bridge gets as far as the network.
    for (capacity, max_size) in [("1m", "2g"), ("64kib", "8 MiB"), ("4096B", "1G")] {
        let argv = args(&[
            "--map",
            &format!("{r}=k"),
            "--capacity",
            capacity,
            "--max-size",
            max_size,
            "--connect",
            &loopback(),
            "--connect-timeout-ms",
            "500",
        ]);
        let out = Command::new(BIN).args(&argv).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("cannot join the network"), "{argv:?}: {err}");
    }
    // Refused as a usage error naming the text (`=`: clap would take
    // `-1K` for a flag).
    for (size, why) in [("1.5M", "fraction"), ("-1K", "negative"), ("", "empty")] {
        let out = Command::new(BIN)
            .args(["--map", &format!("{r}=k"), &format!("--capacity={size}")])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{size:?}: {err}");
        assert!(err.contains(why), "{size:?}: {err}");
    }
}

#[test]
fn three_hosts_converge_after_concurrent_writes() {
    let key = unique("key3");
    let regions: Vec<String> = (0..3).map(|i| unique(&format!("h{i}"))).collect();
    let _c = cleanup(&regions);
    let (e0, e1) = (loopback(), loopback());
    let _b0 = Bridge::serving(&regions[0], &key, &["--listen", &e0]);
    let _b1 = Bridge::serving(&regions[1], &key, &["--listen", &e1, "--connect", &e0]);
    let _b2 = Bridge::serving(&regions[2], &key, &["--connect", &e0, "--connect", &e1]);
    let maps: Vec<FileMap> = regions.iter().map(|r| open(r, 4096)).collect();
    // Everyone writes at once, several times.
    std::thread::scope(|s| {
        for (i, map) in maps.iter().enumerate() {
            s.spawn(move || {
                for n in 0..20 {
                    map.write(format!("host {i} write {n}").as_bytes()).unwrap();
                }
            });
        }
    });
    await_condition("three equal regions", || {
        let c: Vec<Vec<u8>> = maps.iter().map(content).collect();
        c[0] == c[1] && c[1] == c[2]
    });
    let last = String::from_utf8(content(&maps[0])).unwrap();
    assert!(
        last.ends_with("write 19"),
        "converged on a last write: {last}"
    );
}

const BIG: u64 = 8 << 20;

fn big(fill: u8) -> Vec<u8> {
    let mut v = vec![fill; BIG as usize];
    v[..8].copy_from_slice(&u64::from(fill).to_le_bytes());
    v
}

#[test]
fn sigkill_mid_8mib_transfer_never_tears_and_restart_converges() {
    let (ra, rb, key) = (unique("ka"), unique("kb"), unique("kkey"));
    let _c = cleanup(&[&ra, &rb]);
    let listen = loopback();
    let cap = BIG.to_string();
    let a_args = args(&[
        "--map",
        &format!("{ra}={key}"),
        "--connect",
        &listen,
        "--capacity",
        &cap,
    ]);
    let _b = Bridge::serving(&rb, &key, &["--listen", &listen, "--capacity", &cap]);
    let mut a = Bridge::spawn(&a_args).ready();
    let (ma, mb) = (open(&ra, BIG), open(&rb, BIG));
    let values: Vec<Vec<u8>> = [b'o', b'1', b'2', b'3'].into_iter().map(big).collect();
    ma.write(&values[0]).unwrap();
    await_condition("first content on B", || content(&mb) == values[0]);

    // B's region is read continuously: every snapshot must be one whole value.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let checker = s.spawn(|| {
            let mut buf = Vec::new();
            let mut reads = 0u64;
            while !stop.load(Ordering::SeqCst) {
                mb.read_into(&mut buf).unwrap();
                assert!(values.contains(&buf), "torn content on B");
                reads += 1;
            }
            reads
        });
        // Whatever happens below, the checker stops.
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::SeqCst);
            }
        }
        let _stop = Stop(&stop);
        // Three kills at different points of a transfer: as soon as the
        // bridge has handed the 8 MiB to Zenoh, and 2 ms and 5 ms after the
        // write (while it reads the region or sends).
        for (round, delay) in [None, Some(2), Some(5)].into_iter().enumerate() {
            let value = &values[round + 1];
            let g = ma.write(value).unwrap().generation;
            match delay {
                None => {
                    a.wait_for("A sending", |v| {
                        v["event"] == "sent" && v["generation"] == g
                    });
                }
                Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            }
            a.kill9();
            let arrived = content(&mb) == *value;
            // Restart: the new content (unsent or half sent) must win.
            a = Bridge::spawn(&a_args).ready();
            await_condition("the latest content on B", || content(&mb) == *value);
            eprintln!("round {round}: B had the new value before the restart: {arrived}");
        }
        stop.store(true, Ordering::SeqCst);
        assert!(checker.join().unwrap() > 0);
    });
    assert_eq!(content(&ma), values[3]);
}

#[test]
fn partition_by_sigstop_heals_to_one_content() {
    let (ra, rb, key) = (unique("pa"), unique("pb"), unique("pkey"));
    let _c = cleanup(&[&ra, &rb]);
    let dir = tempdir("partition");
    // A short lease so the stopped bridge is declared gone quickly.
    let config = dir.join("zenoh.json5");
    std::fs::write(
        &config,
        "{ transport: { link: { tx: { lease: 1000, keep_alive: 4 } } } }",
    )
    .unwrap();
    let config = config.to_string_lossy().into_owned();
    let listen = loopback();
    let a = Bridge::serving(&ra, &key, &["--listen", &listen, "--config", &config]);
    let b = Bridge::serving(&rb, &key, &["--connect", &listen, "--config", &config]);
    let (ma, mb) = (open(&ra, 4096), open(&rb, 4096));
    ma.write(b"before").unwrap();
    await_condition("first write on B", || content(&mb) == b"before");
    a.wait_for("A sees B", |v| v["event"] == "peer_up");

    // A short stop (under the lease): A's value waits in B's socket while a
    // local write lands on B that B's bridge has not seen. Whichever B's
    // bridge handles first after SIGCONT, the local write must not be
    // overwritten: it is the newer one and must end on both sides. (Here
    // the watcher usually runs first; the `write_if` conflict branch, for
    // the other order, is not forced by this test.)
    b.signal("-STOP");
    let g = ma.write(b"remote, queued").unwrap().generation;
    a.wait_for("A sending", |v| {
        v["event"] == "sent" && v["generation"] == g
    });
    mb.write(b"local, not yet seen").unwrap();
    b.signal("-CONT");
    await_condition("the local write on both sides", || {
        content(&ma) == b"local, not yet seen" && content(&mb) == b"local, not yet seen"
    });

    // A long stop (past the lease): a partition. A loses B now, not in
    // the short stop above, should that one have outlasted the lease.
    let downs = a.count("peer_down");
    b.signal("-STOP");
    ma.write(b"A during the partition").unwrap();
    await_condition("A losing B", || a.count("peer_down") > downs);
    mb.write(b"B during the partition").unwrap();
    b.signal("-CONT");

    await_condition("one content on both sides", || content(&ma) == content(&mb));
    // B's write was seen by its bridge last (after it resumed): it is the newest.
    assert_eq!(content(&ma), b"B during the partition");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn tempdir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(unique(tag));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl(1) is needed by the TLS test (ci/setup.sh installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A CA `name` and a certificate `name-peer` for 127.0.0.1 signed by it.
fn make_pki(dir: &Path, name: &str) {
    let (ca_key, ca_crt) = (format!("{name}-ca.key"), format!("{name}-ca.crt"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name} CA"),
            "-keyout",
            &ca_key,
            "-out",
            &ca_crt,
        ],
    );
    for peer in ["a", "b"] {
        let base = format!("{name}-{peer}");
        std::fs::write(
            dir.join(format!("{base}.ext")),
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n\
             keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n",
        )
        .unwrap();
        openssl(
            dir,
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-subj",
                "/CN=localhost",
                "-keyout",
                &format!("{base}.key"),
                "-out",
                &format!("{base}.csr"),
            ],
        );
        openssl(
            dir,
            &[
                "x509",
                "-req",
                "-in",
                &format!("{base}.csr"),
                "-CA",
                &ca_crt,
                "-CAkey",
                &ca_key,
                "-CAcreateserial",
                "-days",
                "2",
                "-extfile",
                &format!("{base}.ext"),
                "-out",
                &format!("{base}.crt"),
            ],
        );
    }
}

#[test]
fn tls_mutual_auth_refuses_a_wrong_certificate() {
    let (ra, rb, rr, key) = (unique("ta"), unique("tb"), unique("tr"), unique("tkey"));
    let _c = cleanup(&[&ra, &rb, &rr]);
    let dir = tempdir("pki");
    make_pki(&dir, "good");
    make_pki(&dir, "rogue");
    let f = |n: &str| dir.join(n).to_string_lossy().into_owned();
    let tls = |ca: &str, who: &str| {
        args(&[
            "--tls-ca",
            &f(&format!("{ca}-ca.crt")),
            "--tls-cert",
            &f(&format!("{who}.crt")),
            "--tls-key",
            &f(&format!("{who}.key")),
        ])
    };
    let listen = format!("tls/127.0.0.1:{}", free_port());
    let mut a_args = args(&["--map", &format!("{ra}={key}"), "--listen", &listen]);
    a_args.extend(tls("good", "good-a"));
    let _a = Bridge::spawn(&a_args).ready();
    let mut b_args = args(&["--map", &format!("{rb}={key}"), "--connect", &listen]);
    b_args.extend(tls("good", "good-b"));
    let _b = Bridge::spawn(&b_args).ready();
    let (ma, mb) = (open(&ra, 4096), open(&rb, 4096));
    ma.write(b"over TLS").unwrap();
    await_condition("TLS propagation", || content(&mb) == b"over TLS");

    // The rogue trusts the good CA (so it would accept A's certificate) but
    // its own certificate is signed by another CA: A must refuse it.
    let mut r_args = args(&[
        "--map",
        &format!("{rr}={key}"),
        "--connect",
        &listen,
        "--connect-timeout-ms",
        "2000",
    ]);
    r_args.extend(args(&[
        "--tls-ca",
        &f("good-ca.crt"),
        "--tls-cert",
        &f("rogue-a.crt"),
        "--tls-key",
        &f("rogue-a.key"),
    ]));
    let out = Command::new(BIN).args(&r_args).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "a wrong certificate was accepted");
    assert!(err.contains("cannot join the network"), "{err}");
    assert_eq!(content(&ma), b"over TLS");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn malformed_samples_are_logged_and_dropped() {
    use filemap::WriterId;
    use filemap_bridge::wire::{Meta, Version};
    use zenoh::Wait as _;

    let (ra, key) = (unique("ma"), unique("mkey"));
    let _c = cleanup(&[&ra]);
    let listen = loopback();
    let (a, ma, before) = guarded(&ra, &key, &listen);

    // A rogue Zenoh session (this process).
    let rogue = rogue_session(&listen);
    let meta = |len: usize| Meta {
        version: Version {
            time: u64::MAX - 1, // centuries ahead
            host: [0xee; 16],
        },
        generation: 1,
        writer: WriterId { pid: 1, handle: 1 },
        len: len as u64,
    };
    let mut wrong_version = meta(3).encode();
    wrong_version[4] = 99;
    let now = {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
    };
    let valid = |len: usize| {
        let mut m = meta(len);
        m.version.time = now;
        m.encode().to_vec()
    };
    let cases: Vec<(Vec<u8>, Option<Vec<u8>>)> = vec![
        (b"no attachment".to_vec(), None),
        (b"short".to_vec(), Some(b"FMBR".to_vec())),
        (b"bad".to_vec(), Some(wrong_version.to_vec())),
        (b"abcd".to_vec(), Some(valid(3))),    // length mismatch
        (vec![b'x'; 3000], Some(valid(3000))), // over --max-size
        (vec![b'y'; 5000], Some(valid(5000))), // over the capacity
        (b"future".to_vec(), Some(meta(6).encode().to_vec())), // from the far future
    ];
    let n = cases.len();
    // Wait until the rogue's puts can reach A's subscriber.
    await_condition("A's subscriber visible to the rogue", || {
        rogue
            .get(key.as_str())
            .timeout(Duration::from_millis(500))
            .wait()
            .unwrap()
            .recv()
            .is_ok()
    });
    for (payload, attachment) in cases {
        let mut put = rogue.put(key.as_str(), payload);
        if let Some(att) = attachment {
            put = put.attachment(att);
        }
        put.wait().unwrap();
    }
    // The same session's valid put lands after them (one ordered stream).
    rogue
        .put(key.as_str(), b"valid".to_vec())
        .attachment(valid(5))
        .wait()
        .unwrap();
    await_condition("the valid sample applied", || content(&ma) == b"valid");
    // A logs each refusal before it applies the next sample: once the log
    // of this apply is here (through a pipe, later than the content), so
    // are the refusals.
    a.wait_for("A's log of the valid sample", |v| {
        v["event"] == "applied" && v["bytes"] == 5
    });
    assert_eq!(a.count("refused"), n, "each malformed sample is refused");
    let refusals: Vec<String> = a
        .lines
        .0
        .lock()
        .unwrap()
        .iter()
        .filter(|v| v["event"] == "refused")
        .map(|v| v["reason"].as_str().unwrap_or("").to_string())
        .collect();
    for expect in [
        "no attachment",
        "56",
        "format version 99",
        "declares 3 bytes",
        "--max-size",
        "capacity 4096",
        "future",
    ] {
        assert!(
            refusals.iter().any(|r| r.contains(expect)),
            "{expect}: {refusals:?}"
        );
    }
    // Nothing but the valid sample touched the region: one generation more.
    assert_eq!(ma.generation(), before.generation + 1);
    rogue.close().wait().unwrap();
}

/// `unshare(1)` can give a process its own mount namespace with a private
/// tmpfs on /dev/shm: a second "host" for regions, sharing loopback. The
/// test that needs it is ignored by default (it needs root, or user
/// namespaces, and util-linux); ci/test.sh runs it with `--ignored`, and
/// there it fails naming what is missing.
fn require_namespaces(test: &str) {
    let unshare = Command::new("unshare")
        .args(["--mount", "--fork", "--", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /dev/shm")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    assert!(
        unshare.as_ref().is_ok_and(|s| s.success()),
        "{test} cannot run: `unshare --mount` and a tmpfs mount on /dev/shm failed ({unshare:?}); \
         it needs root (or user namespaces) and util-linux's unshare(1)"
    );
    let nsenter = Command::new("nsenter")
        .arg("--version")
        .stdout(Stdio::null())
        .status();
    assert!(
        nsenter.as_ref().is_ok_and(|s| s.success()),
        "{test} cannot run: nsenter(1) is missing ({nsenter:?}); install util-linux"
    );
}

/// A bridge in its own mount namespace with an empty /dev/shm.
fn spawn_in_namespace(bridge_args: &[String]) -> Bridge {
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--fork", "--kill-child", "--", "sh", "-c"])
        .arg("mount -t tmpfs tmpfs /dev/shm && exec \"$0\" \"$@\"")
        .arg(BIN);
    Bridge::spawn_cmd(cmd, bridge_args)
}

/// Run this test binary's `child_role` as a helper inside `pid`'s mount
/// namespace: `op` is `write` or `wait` on `region` with `text`.
fn in_namespace(pid: u64, op: &str, region: &str, text: &str) {
    // The testkit's child command, its program run through nsenter.
    let child = filemap_testkit::child::command();
    let out = Command::new("nsenter")
        .args(["-t", &pid.to_string(), "-m", "--"])
        .arg(child.get_program())
        .args(child.get_args())
        .envs(child.get_envs().filter_map(|(k, v)| Some((k, v?))))
        .env("FMB_NS_HELPER", format!("{op}\n{region}\n{text}"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{op} {text:?} in namespace of {pid}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ns_helper(spec: &str) {
    let mut parts = spec.splitn(3, '\n');
    let (op, region, text) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    let map = FileMap::open(region).unwrap();
    match op {
        "write" => {
            map.write(text.as_bytes()).unwrap();
        }
        "wait" => await_condition(text, || content(&map) == text.as_bytes()),
        _ => panic!("unknown helper op {op}"),
    }
}

/// The entry point of [`in_namespace`]'s helpers.
#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    filemap_testkit::child::enter();
    if let Ok(spec) = std::env::var("FMB_QUERY_FLOOD") {
        return query_flood(&spec);
    }
    ns_helper(&std::env::var("FMB_NS_HELPER").expect("FMB_NS_HELPER"));
}

#[test]
#[ignore = "needs root (or user namespaces) and util-linux: unshare --mount, nsenter"]
fn two_mount_namespaces_same_region_name() {
    require_namespaces("two_mount_namespaces_same_region_name");
    let (region, key) = (unique("ns"), unique("nskey"));
    let listen = loopback();
    let map = format!("{region}={key}");
    let a = spawn_in_namespace(&args(&["--map", &map, "--listen", &listen]));
    let b = spawn_in_namespace(&args(&["--map", &map, "--connect", &listen]));
    let pid = |br: &Bridge| {
        br.wait_for("ready", |v| v["event"] == "ready")["pid"]
            .as_u64()
            .unwrap()
    };
    let (pa, pb) = (pid(&a), pid(&b));
    // The same name on this "host" is a third, unrelated region.
    assert!(FileMap::builder(&region).open_only().open().is_err());
    in_namespace(pa, "write", &region, "typed on host A");
    in_namespace(pb, "wait", &region, "typed on host A");
    in_namespace(pb, "write", &region, "typed on host B");
    in_namespace(pa, "wait", &region, "typed on host B");
}

/// The `filemap` command: `$FILEMAP_CLI`, or the one cargo built beside
/// this test (`cargo test --workspace` builds it; alone, run
/// `cargo build -p filemap-cli` first).
fn filemap_cli() -> PathBuf {
    if let Some(path) = std::env::var_os("FILEMAP_CLI") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/bridge-<hash> -> target/<profile>/filemap
    let path = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join(format!("filemap{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "{} is missing: build it with `cargo build -p filemap-cli` (or set FILEMAP_CLI)",
        path.display()
    );
    path
}

/// A terminal program in a pseudo-terminal, its screen parsed by `vt100`.
struct Pty {
    label: &'static str,
    screen: Arc<(Mutex<(vt100::Parser, bool)>, Condvar)>,
    writer: Box<dyn std::io::Write + Send>,
    child: Box<dyn portable_pty::Child + Send + Sync>,
    // Dropping the master hangs the terminal up; keep it while the program runs.
    _master: Box<dyn portable_pty::MasterPty + Send>,
}

const PTY_ROWS: u16 = 24;
const PTY_COLS: u16 = 100;

impl Pty {
    fn spawn(label: &'static str, cmd: portable_pty::CommandBuilder) -> Pty {
        use portable_pty::{native_pty_system, PtySize};
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: PTY_ROWS,
                cols: PTY_COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        let child = pair.slave.spawn_command(cmd).expect("spawn in the pty");
        drop(pair.slave);
        let screen = Arc::new((
            Mutex::new((vt100::Parser::new(PTY_ROWS, PTY_COLS, 0), false)),
            Condvar::new(),
        ));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let shared = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = std::io::Read::read(&mut reader, &mut buf).unwrap_or(0);
                // A test that failed holding the lock poisons it; keep reading.
                let mut s = shared.0.lock().unwrap_or_else(|e| e.into_inner());
                if n == 0 {
                    s.1 = true;
                } else {
                    s.0.process(&buf[..n]);
                }
                shared.1.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        let writer = pair.master.take_writer().expect("pty writer");
        Pty {
            label,
            screen,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn send(&mut self, keys: &str) {
        use std::io::Write as _;
        self.writer.write_all(keys.as_bytes()).unwrap();
        self.writer.flush().unwrap();
    }

    /// Wait until the screen satisfies `done`; panic with it after the deadline.
    fn wait_until(&self, what: &str, done: impl Fn(&vt100::Screen) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        let mut s = self.screen.0.lock().unwrap();
        loop {
            if done(s.0.screen()) {
                return s.0.screen().contents();
            }
            let left = end.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero() && !s.1,
                "{}: no {what} within {DEADLINE:?} (closed: {}); screen:\n{}",
                self.label,
                s.1,
                s.0.screen().contents()
            );
            s = self.screen.1.wait_timeout(s, left).unwrap().0;
        }
    }

    fn screen(&self) -> String {
        self.screen.0.lock().unwrap().0.screen().contents()
    }
}

impl Drop for Pty {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The memo's text as its screen shows it: the rows inside the editor's
/// border (the screen minus the status, message and help lines), trailing
/// blanks dropped.
fn memo_text(screen: &vt100::Screen) -> String {
    let rows: Vec<String> = screen.rows(1, PTY_COLS - 2).collect();
    let body = &rows[1..usize::from(PTY_ROWS) - 4];
    body.iter()
        .map(|r| r.trim_end())
        .collect::<Vec<_>>()
        .join("\n")
        .trim_end()
        .to_string()
}

/// Kills the recipe's background bridges (their pids in files) at the end.
struct KillPids(Vec<PathBuf>);

impl Drop for KillPids {
    fn drop(&mut self) {
        for f in &self.0 {
            if let Ok(pid) = std::fs::read_to_string(f) {
                let _ = Command::new("kill").args(["-9", pid.trim()]).status();
            }
        }
    }
}

/// The two-host memo recipe of docs/bridge.md, word for word but for the names: each
/// "host" is a mount namespace with its own /dev/shm, its bridge started in
/// the background of the memo's terminal, logs to a file.
#[test]
fn readme_two_host_memo_recipe_shows_each_region_and_no_log_lines() {
    const TEST: &str = "readme_two_host_memo_recipe_shows_each_region_and_no_log_lines";
    require_namespaces(TEST);
    let (region, key) = (unique("notes"), unique("demo/notes"));
    let dir = tempdir("recipe");
    let port = free_port().to_string();
    let cli = filemap_cli();
    let pidfiles = KillPids(vec![dir.join("a.pid"), dir.join("b.pid")]);
    let host = |label: &'static str, role: &str, log: &Path, pidfile: &Path| {
        // The recipe's line, plus `echo $!` so the test can end the bridge.
        let script = format!(
            "mount -t tmpfs tmpfs /dev/shm &&
  {{ \"$0\" --map {region}={key} --capacity 64KiB --{role} tcp/127.0.0.1:$P 2>{log} & echo $! >{pid}; }} &&
  until grep -q ^ready {log}; do kill -0 $! || exit 1; sleep 0.1; done && exec \"$1\" memo {region}",
            log = log.display(),
            pid = pidfile.display(),
        );
        let mut cmd = portable_pty::CommandBuilder::new("unshare");
        cmd.args(["--mount", "--fork", "--kill-child", "--", "sh", "-c"]);
        cmd.arg(script);
        cmd.arg(BIN);
        cmd.arg(&cli);
        cmd.env("P", &port);
        cmd.env("TERM", "xterm-256color");
        Pty::spawn(label, cmd)
    };
    let (log_a, log_b) = (dir.join("bridge-a.log"), dir.join("bridge-b.log"));
    let mut a = host("host A", "listen", &log_a, &pidfiles.0[0]);
    a.wait_until("A's memo", |s| s.contents().contains("^Q quit"));
    let mut b = host("host B", "connect", &log_b, &pidfiles.0[1]);
    b.wait_until("B's memo", |s| s.contents().contains("^Q quit"));
    let pid_of = |f: &Path| -> u64 { std::fs::read_to_string(f).unwrap().trim().parse().unwrap() };
    let (pa, pb) = (pid_of(&pidfiles.0[0]), pid_of(&pidfiles.0[1]));
    // A has seen B (its bridge logs a peer line now, after its memo started).
    await_condition("A's bridge seeing B", || {
        std::fs::read_to_string(&log_a).is_ok_and(|l| l.contains("peer_up"))
    });

    let typed = "typed on host A";
    a.send(typed);
    in_namespace(pb, "wait", &region, typed);
    in_namespace(pa, "wait", &region, typed);
    for memo in [&a, &b] {
        let screen = memo.wait_until("the region's text", |s| memo_text(s) == typed);
        // Every log line is `event field=value ...`.
        for log_word in ["ready host=", "peer_up", "peer=", "region=", "key="] {
            assert!(
                !screen.contains(log_word),
                "{}: a log line on the memo's screen:\n{screen}",
                memo.label
            );
        }
    }
    // And the other way.
    b.send("\x1b[1;5F"); // Ctrl-End
    b.send("\rand on host B"); // Enter, then text
    let both = format!("{typed}\nand on host B");
    in_namespace(pa, "wait", &region, &both);
    for memo in [&a, &b] {
        memo.wait_until("the region's text", |s| memo_text(s) == both);
    }
    let logs = std::fs::read_to_string(&log_a).unwrap();
    assert!(logs.contains("ready "), "the log file has the logs: {logs}");
    drop(pidfiles);
    let _ = (a.screen(), b.screen());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_region_removed_and_made_anew_is_reopened_and_both_sides_converge() {
    let (ra, rb, key) = (unique("ra"), unique("rb"), unique("rkey"));
    let _c = cleanup(&[&ra, &rb]);
    let listen = loopback();
    let _a = Bridge::serving(&ra, &key, &["--listen", &listen]);
    let b = Bridge::serving(&rb, &key, &["--connect", &listen]);
    let ma = open(&ra, 4096);
    ma.write(b"before").unwrap();
    {
        let mb = open(&rb, 4096);
        await_condition("A's write on B", || content(&mb) == b"before");
    }

    // `filemap rm` on B, and the name made anew with other content.
    filemap::admin::remove(&rb).unwrap();
    let mb = open(&rb, 4096);
    mb.write(b"made anew on B").unwrap();
    let reopened = b.wait_for("B reopening its region", |v| v["event"] == "reopened");
    assert_eq!(reopened["region"], rb.as_str(), "{reopened}");
    await_condition("B's new content on A", || content(&ma) == b"made anew on B");
    ma.write(b"A after").unwrap();
    await_condition("A's next write in B's new region", || {
        content(&mb) == b"A after"
    });

    // Removed and not made anew: the bridge makes it anew, with the newest
    // content it knows.
    drop(mb);
    filemap::admin::remove(&rb).unwrap();
    await_condition("B's region back with the newest content", || {
        FileMap::builder(&rb)
            .open_only()
            .open()
            .is_ok_and(|m| content(&m) == b"A after")
    });
    let mb = open(&rb, 4096);
    ma.write(b"A once more").unwrap();
    await_condition("A's write in the region B's bridge made", || {
        content(&mb) == b"A once more"
    });
    assert_eq!(content(&ma), b"A once more");
}

#[test]
fn a_content_too_large_for_the_peer_is_reported_to_the_sender() {
    let (ra, rb, key) = (unique("ca"), unique("cb"), unique("ckey"));
    let _c = cleanup(&[&ra, &rb]);
    let listen = loopback();
    // A logs as a person reads it (standard error); B in JSON.
    let a = Bridge::spawn_human(&args(&[
        "--map",
        &format!("{ra}={key}"),
        "--listen",
        &listen,
        "--capacity",
        "64KiB",
    ]))
    .ready();
    let b = Bridge::serving(&rb, &key, &["--connect", &listen, "--capacity", "1KiB"]);
    let b_host = b.wait_for("B ready", |v| v["event"] == "ready")["host"]
        .as_str()
        .unwrap()
        .to_string();
    let (ma, mb) = (open(&ra, 64 << 10), open(&rb, 1024));
    ma.write(b"fits both").unwrap();
    await_condition("a small write on B", || content(&mb) == b"fits both");

    ma.write(&[b'z'; 2000]).unwrap();
    let refused = b.wait_for("B refusing", |v| v["event"] == "refused");
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains("2000") && reason.contains("1024"),
        "{refused}"
    );
    // The sender hears it, with both numbers and the peer.
    let told = a.wait_for("A told of the refusal", |v| {
        v.as_str()
            .is_some_and(|l| l.starts_with("refused_by_peer "))
    });
    let told = told.as_str().unwrap();
    for expect in [
        format!("region={ra}"),
        format!("peer={b_host}"),
        "bytes=2000".to_string(),
        "peer_capacity=1024".to_string(),
    ] {
        assert!(told.contains(&expect), "{expect} in {told}");
    }
    assert_eq!(content(&mb), b"fits both", "B's region untouched");
    assert!(
        a.stdout.lock().unwrap().is_empty(),
        "human logs go to standard error only: {:?}",
        String::from_utf8_lossy(&a.stdout.lock().unwrap())
    );
}

/// `len` bytes whose every position shows: a content torn, shifted or
/// holding zero pages never equals another.
fn patterned(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ (i >> 12) as u8 ^ seed)
        .collect()
}

#[test]
fn a_peer_content_past_the_capacity_grows_the_local_region_and_past_the_maximum_is_refused() {
    let (ra, rb, key) = (unique("ga"), unique("gb"), unique("gkey"));
    let _c = cleanup(&[&ra, &rb]);
    let listen = loopback();
    let a = Bridge::serving(&ra, &key, &["--listen", &listen, "--capacity", "4MiB"]);
    // B creates its region at 4 KiB, allowed to grow to 1 MiB.
    let b = Bridge::serving(
        &rb,
        &key,
        &[
            "--connect",
            &listen,
            "--capacity",
            "4KiB",
            "--max-capacity",
            "1MiB",
        ],
    );
    // A sees B come and, after a settle, resyncs: it asks B for its value
    // and announces its own. Let that pass before writing, or A may
    // announce the 2 MiB content again and B refuse it twice.
    a.wait_for("A's resync with B", |v| {
        v["event"] == "synced" && v["why"].as_str().is_some_and(|w| w.starts_with("peer "))
    });
    let ma = open(&ra, 4 << 20);
    // Attached before the growth: this handle sees it without reopening.
    let mb = FileMap::builder(&rb).open_only().open().unwrap();
    assert_eq!((mb.capacity(), mb.max_capacity()), (4096, 1 << 20));

    let grown = patterned(200 << 10, 1);
    ma.write(&grown).unwrap();
    await_condition("200 KiB on B", || content(&mb) == grown);
    assert!(
        (200 << 10..=1 << 20).contains(&mb.capacity()),
        "B's capacity {} after 200 KiB",
        mb.capacity()
    );
    let applied = b.wait_for("B applying 200 KiB", |v| {
        v["event"] == "applied" && v["bytes"] == 200 << 10
    });
    let grown_gen = applied["generation"].as_u64().unwrap();
    assert_eq!(b.count("refused"), 0, "nothing refused within the maximum");

    // Past B's maximum: refused there, B's content kept, A told with
    // B's maximum.
    ma.write(&patterned(2 << 20, 2)).unwrap();
    let refused = b.wait_for("B refusing 2 MiB", |v| v["event"] == "refused");
    let reason = refused["reason"].as_str().unwrap();
    assert!(
        reason.contains(&format!("{}", 2 << 20)) && reason.contains("maximum capacity 1048576"),
        "{refused}"
    );
    let told = a.wait_for("A told of the refusal", |v| v["event"] == "refused_by_peer");
    assert_eq!(told["bytes"], 2 << 20, "{told}");
    assert_eq!(told["peer_max_capacity"], 1 << 20, "{told}");
    assert_eq!(content(&mb), grown, "B's region keeps its content");
    assert_eq!(mb.generation(), grown_gen, "nothing written on B");
    assert!(mb.capacity() <= 1 << 20);

    // B's region is as usable as before: the next content that fits arrives.
    let after = patterned(900 << 10, 3);
    ma.write(&after).unwrap();
    await_condition("900 KiB on B", || content(&mb) == after);
    assert_eq!(b.count("refused"), 1);
    assert_eq!(b.count("error"), 0);
}

#[test]
fn a_region_the_bridge_created_outlives_it_with_what_filemap_write_put_there() {
    let (r, key) = (unique("keep"), unique("keepkey"));
    let _c = cleanup(&[&r]);
    assert!(FileMap::builder(&r).open_only().open().is_err());
    let listen = loopback();
    let mut bridge = Bridge::serving(&r, &key, &["--listen", &listen]);
    let out = Command::new(filemap_cli())
        .args(["write", &r, "kept after the bridge"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "filemap write: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bridge.stop();
    // Nobody holds the region now.
    let map = FileMap::builder(&r)
        .open_only()
        .open()
        .expect("the region outlives the bridge that created it");
    assert!(map.info().persistent);
    assert_eq!(content(&map), b"kept after the bridge");
}

/// Wake-ups (voluntary context switches) so far of `pid`'s threads whose
/// name starts with one of `prefixes`.
fn thread_wake_ups(pid: u32, prefixes: &[&str]) -> u64 {
    let mut total = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        if !prefixes.iter().any(|p| comm.starts_with(p)) {
            continue;
        }
        let Ok(status) = std::fs::read_to_string(dir.join("status")) else {
            continue;
        };
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap();
    }
    total
}

/// Signal `bridge` and return how long it took to exit (successfully). A
/// bridge still running 10 s later is killed and the test fails (rather
/// than hanging).
fn stop_timed(bridge: &mut Bridge, sig: &str) -> Duration {
    let start = Instant::now();
    bridge.signal(sig);
    let status = loop {
        if let Some(status) = bridge.child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = bridge.child.kill();
            panic!("the bridge still runs 10 s after {sig}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let took = start.elapsed();
    assert!(
        status.success(),
        "the bridge ended with {status} after {sig}"
    );
    took
}

#[test]
fn an_idle_bridge_sleeps_and_stops_at_once_sending_a_write_made_just_before() {
    let (ra, rb, key) = (unique("ia"), unique("ib"), unique("ikey"));
    let _c = cleanup(&[ra.clone(), rb.clone()]);
    let listen = loopback();
    let mut a = Bridge::serving(&ra, &key, &["--listen", &listen]);
    let mut b = Bridge::serving(&rb, &key, &["--connect", &listen]);
    let (ma, mb) = (open(&ra, 4096), open(&rb, 4096));
    ma.write(b"first").unwrap();
    await_condition("A's first write on B", || content(&mb) == b"first");

    // A resynchronised with B when B came, then re-announced its value (B
    // synchronised at its start): from now on nothing happens.
    a.wait_for("the re-announcement after B came", |v| {
        v["event"] == "announced" && v["why"].as_str().is_some_and(|w| w.starts_with("peer "))
    });

    // Idle: the region watcher and the resync thread sleep until there is
    // work. (A 200 ms timeout in each woke them ten times a second; the
    // region's wait may wake once a second, its slice.)
    let ours = ["watch ", "resync"];
    let before = thread_wake_ups(a.child.id(), &ours);
    std::thread::sleep(Duration::from_secs(1));
    let woke = thread_wake_ups(a.child.id(), &ours) - before;
    assert!(
        woke <= 2,
        "an idle bridge's threads woke {woke} times in 1 s"
    );

    // A write, and SIGTERM right after it: the bridge ends promptly, and
    // the write is not lost.
    ma.write(b"last words").unwrap();
    let took = stop_timed(&mut a, "-TERM");
    eprintln!("SIGTERM ended the bridge in {took:?}");
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
    await_condition("the write made just before SIGTERM on B", || {
        content(&mb) == b"last words"
    });

    // SIGINT (Ctrl-C) too, with the peer gone.
    let took = stop_timed(&mut b, "-INT");
    eprintln!("SIGINT ended the bridge in {took:?}");
    assert!(took < Duration::from_secs(2), "SIGINT took {took:?}");
}

/// The watcher sends contents as long as the region has moved since the
/// last one it sent; a writer that never pauses keeps it at that, and the
/// shutdown must still end it at once (a stop ends the watcher's round,
/// not only its wait). No peer: the sends are cheap and leave the writer
/// a core of its own, so that the region has nearly always moved. On two
/// cores the writer is still preempted now and then, which ends the round
/// too: there this test passes without the stop check in the round (it
/// was tried), and it catches an unbounded round on larger machines.
#[test]
fn a_bridge_stops_at_once_while_a_local_writer_publishes_back_to_back() {
    let (ra, key) = (unique("ba"), unique("bkey"));
    let _c = cleanup(std::slice::from_ref(&ra));
    let listen = loopback();
    let mut a = Bridge::serving(&ra, &key, &["--listen", &listen]);
    let ma = open(&ra, 4096);

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                ma.write(&n.to_le_bytes()).unwrap();
            }
            n
        })
    };
    let sent = |v: &Value| v["event"] == "sent";
    a.wait_for("A sending the writer's contents", |v| {
        sent(v) && v["generation"].as_u64().is_some_and(|g| g > 100)
    });

    let took = stop_timed(&mut a, "-TERM");
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    eprintln!("SIGTERM ended the bridge in {took:?} ({written} contents written)");
    assert!(took < Duration::from_secs(2), "SIGTERM took {took:?}");
}

// ---- A rogue Zenoh session (this process) against real bridges ----

/// Now as the bridges date writes (NTP64: seconds << 32 + fraction).
fn ntp64_now() -> u64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    (d.as_secs() << 32) + ((u64::from(d.subsec_nanos()) << 32) / 1_000_000_000)
}

/// A Zenoh peer in this process, connected to `endpoint`, that speaks the
/// bridges' protocol (or not) as each test needs.
fn rogue_session(endpoint: &str) -> zenoh::Session {
    use zenoh::Wait as _;
    let mut config = zenoh::Config::default();
    config.insert_json5("mode", "\"peer\"").unwrap();
    config
        .insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    config
        .insert_json5("connect/endpoints", &format!("[\"{endpoint}\"]"))
        .unwrap();
    zenoh::open(config).wait().unwrap()
}

/// The attachment a bridge of host `host` puts with a `len`-byte content
/// dated `time`.
fn attachment(host: [u8; 16], time: u64, len: usize) -> Vec<u8> {
    use filemap::WriterId;
    use filemap_bridge::wire::{Meta, Version};
    Meta {
        version: Version { time, host },
        generation: 1,
        writer: WriterId { pid: 1, handle: 1 },
        len: len as u64,
    }
    .encode()
    .to_vec()
}

/// Wait until a put of the rogue on `key` reaches a subscriber.
fn await_subscriber(rogue: &zenoh::Session, key: &str) {
    use zenoh::Wait as _;
    let publisher = rogue.declare_publisher(key.to_string()).wait().unwrap();
    await_condition(
        &format!("a subscriber on {key} visible to the rogue"),
        || publisher.matching_status().wait().unwrap().matching(),
    );
}

/// The most resident memory process `pid` has had (VmHWM), in bytes.
fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM in /proc/PID/status");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib << 10
}

#[test]
fn a_sample_far_over_the_limit_is_dropped_on_arrival_without_its_memory() {
    use zenoh::Wait as _;
    let (ra, key) = (unique("huge"), unique("hugekey"));
    let _c = cleanup(&[&ra]);
    let listen = loopback();
    let (a, ma, before) = guarded(&ra, &key, &listen);
    let pid = a.child.id();
    let rogue = rogue_session(&listen);
    await_subscriber(&rogue, &key);
    let at_start = peak_rss(pid);

    const HUGE: usize = 256 << 20;
    rogue
        .put(key.as_str(), vec![7u8; HUGE])
        .attachment(attachment([0xee; 16], ntp64_now(), HUGE))
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    // Just over --max-size: it still arrives, is refused and logged. The
    // rogue's puts reach A in order, so once this refusal is logged the
    // huge sample has come and gone.
    rogue
        .put(key.as_str(), vec![8u8; 3000])
        .attachment(attachment([0xee; 16], ntp64_now(), 3000))
        .wait()
        .unwrap();
    a.wait_for("A refusing 3000 bytes", |v| {
        v["event"] == "refused"
            && v["reason"]
                .as_str()
                .is_some_and(|r| r.contains("content of 3000 bytes"))
    });
    let peak = peak_rss(pid);
    eprintln!(
        "A's peak RSS: {} MiB at start, {} MiB after",
        at_start >> 20,
        peak >> 20
    );
    assert!(
        peak < 64 << 20,
        "a {HUGE}-byte sample raised A's peak RSS to {peak} bytes (from {at_start})"
    );
    assert_eq!(
        a.count("refused"),
        1,
        "the huge sample is dropped by Zenoh as it arrives, unseen by the bridge"
    );
    assert_eq!(content(&ma), b"precious");
    assert_eq!(ma.generation(), before.generation, "nothing written");
    // A works on: a sample that fits is applied.
    rogue
        .put(key.as_str(), b"fits".to_vec())
        .attachment(attachment([0xee; 16], ntp64_now(), 4))
        .wait()
        .unwrap();
    await_condition("the sample that fits on A", || content(&ma) == b"fits");
    rogue.close().wait().unwrap();
}

#[test]
fn a_large_refusal_notice_is_dropped_unparsed() {
    use zenoh::Wait as _;
    let (ra, key) = (unique("notice"), unique("noticekey"));
    let _c = cleanup(&[&ra]);
    let listen = loopback();
    // A region of 32 MiB: the bridge receives messages that large.
    let a = Bridge::serving(&ra, &key, &["--listen", &listen, "--capacity", "32MiB"]);
    let host = a.wait_for("ready", |v| v["event"] == "ready")["host"]
        .as_str()
        .unwrap()
        .to_string();
    let pid = a.child.id();
    let rogue = rogue_session(&listen);
    let notices = format!("filemap-bridge-refused/{key}");
    await_subscriber(&rogue, &notices);
    let at_start = peak_rss(pid);

    // 24 MiB of JSON: an array of twelve million zeros.
    let mut bomb = b"[".to_vec();
    bomb.extend(b"0,".repeat(12 << 20));
    bomb.extend(b"0]");
    let bomb_len = bomb.len();
    rogue
        .put(notices.as_str(), bomb)
        .congestion_control(zenoh::qos::CongestionControl::Block)
        .wait()
        .unwrap();
    // A real notice of a refusal of A's value, after it (in order): A is
    // still told.
    let notice = serde_json::json!({
        "origin": host, "peer": "p1", "bytes": 9000, "limit": "capacity",
        "max": 4096, "time": 1,
    });
    rogue
        .put(notices.as_str(), notice.to_string())
        .wait()
        .unwrap();
    let told = a.wait_for("A told of the refusal", |v| v["event"] == "refused_by_peer");
    assert_eq!(told["peer"], "p1", "{told}");
    assert_eq!(told["bytes"], 9000, "{told}");
    let dropped = a.wait_for("A dropping the large notice", |v| {
        v["event"] == "refused" && v["via"] == "notice"
    });
    let peak = peak_rss(pid);
    eprintln!(
        "A's peak RSS: {} MiB at start, {} MiB after",
        at_start >> 20,
        peak >> 20
    );
    assert!(
        peak < at_start + (96 << 20),
        "a {bomb_len}-byte notice raised A's peak RSS to {peak} bytes (from {at_start})"
    );
    assert!(
        dropped["reason"]
            .as_str()
            .is_some_and(|r| r.contains(&bomb_len.to_string())),
        "{dropped}"
    );
    rogue.close().wait().unwrap();
}

#[test]
fn peer_supplied_strings_cannot_forge_human_log_lines() {
    use zenoh::Wait as _;
    let (ra, key) = (unique("inject"), unique("injectkey"));
    let _c = cleanup(&[&ra]);
    let listen = loopback();
    let map = format!("{ra}={key}");
    let a = Bridge::spawn_human(&args(&["--map", &map, "--listen", &listen])).ready();
    let ready = a.wait_for("ready", |v| {
        v.as_str().is_some_and(|l| l.starts_with("ready "))
    });
    let host = ready.as_str().unwrap().split("host=").nth(1).unwrap();
    let host = host.split(' ').next().unwrap().to_string();
    let rogue = rogue_session(&listen);
    // A peer id with a line of its own and a terminal escape in it.
    let _token = rogue
        .liveliness()
        .declare_token("filemap-bridge-peers/x\nready forged=1\u{1b}[2J")
        .wait()
        .unwrap();
    let notices = format!("filemap-bridge-refused/{key}");
    await_subscriber(&rogue, &notices);
    let notice = serde_json::json!({
        "origin": host, "peer": format!("p\nerror forged=2\u{1b}[31m{}", "y".repeat(600)),
        "bytes": 9000, "limit": "capacity", "max": 4096, "time": 1,
    });
    rogue
        .put(notices.as_str(), notice.to_string())
        .wait()
        .unwrap();
    let starts =
        |prefix: &'static str| move |v: &Value| v.as_str().is_some_and(|l| l.starts_with(prefix));
    a.wait_for("A's peer_up", starts("peer_up "));
    let told = a.wait_for("A told of the refusal", starts("refused_by_peer "));
    let lines: Vec<String> = a
        .lines
        .0
        .lock()
        .unwrap()
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    for line in &lines {
        assert!(
            !line.starts_with("ready forged") && !line.starts_with("error forged"),
            "a forged line: {line:?} in {lines:#?}"
        );
        assert!(!line.contains('\u{1b}'), "an escape in {line:?}");
    }
    assert_eq!(lines.iter().filter(|l| l.starts_with("ready ")).count(), 1);
    let told = told.as_str().unwrap();
    assert!(told.contains(r"p\nerror forged=2"), "{told}");
    assert!(
        !told.contains(&"y".repeat(100)),
        "the peer's string is cut: {told}"
    );
    rogue.close().wait().unwrap();
}

/// The host id bytes a log's `origin` (`Version::host_hex`) names.
fn host_of(hex: &str) -> [u8; 16] {
    u128::from_str_radix(hex, 16).unwrap().to_le_bytes()
}

#[test]
fn a_sample_impersonating_a_bridge_does_not_outdate_its_next_write() {
    use zenoh::Wait as _;
    let (ra, rb, key) = (unique("ia"), unique("ib"), unique("ikey"));
    let _c = cleanup(&[&ra, &rb]);
    let pair = Impersonated::new(&ra, &rb, &key);
    let (a, ma, mb, rogue) = (&pair.a, &pair.ma, &pair.mb, &pair.rogue);
    let a_host = pair.a_host;
    // A's host id, dated 3 s ahead (within the skew bridges accept).
    rogue
        .put(key.as_str(), b"rogue!".to_vec())
        .attachment(attachment(a_host, ntp64_now() + (3 << 32), 6))
        .wait()
        .unwrap();
    // Then a sample both refuse and log: once it is logged, each has had
    // the first one too. (B applies that one, or not if A's answer to it
    // came first.)
    pair.marker_seen(&key);
    // A puts its own value again, dated after the rogue's: B takes it back.
    await_condition("A's value back on B", || content(mb) == b"first");
    // A's next write is the newest value everywhere.
    ma.write(b"mine").unwrap();
    await_condition("A's write on B", || content(mb) == b"mine");
    assert_eq!(content(ma), b"mine");
    let refused = a.wait_for("A refusing the impersonation", |v| {
        v["event"] == "refused" && names_impersonation(v)
    });
    assert_eq!(refused["via"], "sample", "{refused}");
    rogue.close().wait().unwrap();
}

#[test]
fn tokens_coming_and_going_fast_cost_a_bounded_log_and_resyncs() {
    use zenoh::Wait as _;
    let (ra, rb, key) = (unique("flap"), unique("flapb"), unique("flapkey"));
    let _c = cleanup(&[&ra, &rb]);
    let listen = loopback();
    let a = Bridge::serving(&ra, &key, &["--listen", &listen, "--capacity", "1MiB"]);
    let ma = open(&ra, 1 << 20);
    ma.write(&patterned(1 << 20, 5)).unwrap();
    a.wait_for("A sending", |v| v["event"] == "sent");
    let rogue = rogue_session(&listen);
    // For 3 s, a bridge's token under a fresh id every 20 ms, each gone
    // 20 ms later (the pace is the stimulus, not a wait for anything).
    let flood = Instant::now();
    let mut toggles = 0;
    while flood.elapsed() < Duration::from_secs(3) {
        let token = rogue
            .liveliness()
            .declare_token(format!("filemap-bridge-peers/r{toggles}"))
            .wait()
            .unwrap();
        std::thread::sleep(Duration::from_millis(20));
        token.undeclare().wait().unwrap();
        std::thread::sleep(Duration::from_millis(20));
        toggles += 1;
    }
    // A genuine peer after it is still synced with.
    let b = Bridge::serving(&rb, &key, &["--connect", &listen, "--capacity", "1MiB"]);
    b.wait_for("B ready", |v| v["event"] == "ready");
    // B's arrival may be served with the flood's last tokens: B is the
    // only peer that answers A's query.
    a.wait_for("A's resync with B", |v| {
        v["event"] == "synced"
            && v["replies"] == 1
            && v["why"].as_str().is_some_and(|w| w.starts_with("peer "))
    });
    let mb = open(&rb, 1 << 20);
    await_condition("A's content on B", || content(&mb) == patterned(1 << 20, 5));
    let resyncs = a.count_where(|v| {
        v["event"] == "synced" && v["why"].as_str().is_some_and(|w| w.starts_with("peer "))
    });
    let peer_lines = a.count("peer_up") + a.count("peer_down");
    let took = flood.elapsed().as_secs() as usize;
    eprintln!("{toggles} toggles: {resyncs} resyncs, {peer_lines} peer lines in {took} s");
    assert!(toggles > 20, "only {toggles} toggles");
    assert!(
        resyncs <= took + 2,
        "{resyncs} resyncs in {took} s for {toggles} toggles"
    );
    assert!(
        peer_lines <= 20,
        "{peer_lines} peer lines for {toggles} toggles"
    );
    rogue.close().wait().unwrap();
}

/// A rogue querier (a child process, `child_role`): `spec` is the
/// endpoint, the key and a number of queries. It sends them all at once,
/// and once the bridge is replying stops itself (SIGSTOP), so the replies
/// still to come fill its link and stay there.
fn query_flood(spec: &str) {
    use std::sync::atomic::AtomicUsize;
    use zenoh::Wait as _;
    let mut parts = spec.splitn(3, '\n');
    let (endpoint, key, queries) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap().parse::<usize>().unwrap(),
    );
    let rogue = rogue_session(endpoint);
    await_condition("the bridge's queryable", || {
        let replies = rogue
            .get(key)
            .timeout(Duration::from_millis(500))
            .wait()
            .unwrap();
        replies.recv().is_ok()
    });
    let replies = Arc::new(AtomicUsize::new(0));
    for _ in 0..queries {
        let r = Arc::clone(&replies);
        rogue
            .get(key)
            .callback(move |_| {
                r.fetch_add(1, Ordering::Relaxed);
            })
            .wait()
            .unwrap();
    }
    // The queries went out before the replies came back.
    await_condition("replies to the flood", || {
        replies.load(Ordering::Relaxed) >= 5
    });
    use rustix::process::{getpid, kill_process, Signal};
    kill_process(getpid(), Signal::STOP).unwrap();
    // Resumed only to be killed.
    std::thread::sleep(Duration::from_secs(60));
}

/// Child processes that are killed (resumed first) when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        use rustix::process::{kill_process, Pid, Signal};
        for child in &mut self.0 {
            if let Some(pid) = Pid::from_raw(child.id() as i32) {
                let _ = kill_process(pid, Signal::CONT);
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Whether process `pid` is stopped (by a signal).
fn is_stopped(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s[s.rfind(')')? + 2..].starts_with('T')))
        .unwrap_or(false)
}

#[test]
fn queriers_that_stop_reading_do_not_delay_samples() {
    use zenoh::Wait as _;
    let (ra, key) = (unique("qstall"), unique("qstallkey"));
    let _c = cleanup(&[&ra]);
    let listen = loopback();
    let a = Bridge::serving(&ra, &key, &["--listen", &listen, "--capacity", "1MiB"]);
    let ma = open(&ra, 1 << 20);
    let held = patterned(1 << 20, 9);
    ma.write(&held).unwrap();
    a.wait_for("A sending", |v| v["event"] == "sent");
    // Two rogue queriers (Zenoh receives on two threads by default), each
    // asking 2000 times for A's 1 MiB and then stopping.
    let mut rogues = Children(Vec::new());
    for _ in 0..2 {
        rogues.0.push(
            filemap_testkit::child::command()
                .env("FMB_QUERY_FLOOD", format!("{listen}\n{key}\n2000"))
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let honest = rogue_session(&listen);
    await_subscriber(&honest, &key);
    await_condition_within("both rogues stopped", DEADLINE, || {
        rogues.0.iter().all(|c| is_stopped(c.id()))
    });
    // A's replies to them now fill their links, and Zenoh blocks a reply
    // to a link that does not drain for up to 5 s. An honest sample is
    // applied at once all the same, again and again.
    let mut took = Vec::new();
    for i in 0..5u8 {
        let body = vec![b'a' + i; 16];
        let seen = ma.generation();
        let put = Instant::now();
        honest
            .put(key.as_str(), body.clone())
            .attachment(attachment([0xaa; 16], ntp64_now(), body.len()))
            .wait()
            .unwrap();
        while content(&ma) != body && put.elapsed() < Duration::from_secs(20) {
            let _ = ma.wait_change(
                seen,
                filemap::Wait::sleep().timeout(Duration::from_millis(100)),
            );
        }
        took.push(put.elapsed());
    }
    eprintln!("honest samples applied after {took:?}");
    for (i, t) in took.iter().enumerate() {
        assert!(
            *t < Duration::from_secs(2),
            "honest sample {i} applied after {t:?} (all: {took:?})"
        );
    }
    assert!(
        rogues.0.iter().all(|c| is_stopped(c.id())),
        "the rogues stayed stopped"
    );
    // The queries A dropped are logged, a few lines only.
    let dropped = a.count_where(|v| v["event"] == "refused" && v["via"] == "query");
    eprintln!("{dropped} lines of dropped queries");
    assert!(
        (1..=3).contains(&dropped),
        "{dropped} lines of dropped queries"
    );
    // Replies to the rogues wait, until Zenoh gives up on their links
    // (5 s), or are dropped; then A answers queries again.
    let stopped = Instant::now();
    await_condition_within("A answering a query", DEADLINE, || {
        let replies = honest
            .get(key.as_str())
            .timeout(Duration::from_millis(500))
            .wait()
            .unwrap();
        replies.recv().is_ok()
    });
    eprintln!(
        "A answered a query {:?} after the samples",
        stopped.elapsed()
    );
    drop(rogues);
    honest.close().wait().unwrap();
}

/// A bridge whose Zenoh id is fixed (in a `--config` file) keeps its host
/// id across a restart. Restarted with nothing local (its host rebooted:
/// region and lock record gone), it finds its own last value at its peers:
/// it takes it back as any remote value, instead of refusing it as an
/// impersonation of itself.
#[test]
fn a_bridge_restarted_with_its_id_and_nothing_local_takes_back_its_own_value() {
    let (ra, rb, key) = (unique("fixid"), unique("fixidb"), unique("fixidkey"));
    let _c = cleanup(&[&ra, &rb]);
    let dir = tempdir("fixed-id");
    let config = dir.join("zenoh.json5");
    // An odd number of digits: the id's top byte, 0x0f, has a leading
    // zero, which Zenoh's form leaves out (and the logs must too).
    std::fs::write(&config, "{ id: \"f1f2f3f4f5f6f7f\" }").unwrap();
    let config = config.to_string_lossy().into_owned();
    let listen = loopback();
    let a_args = ["--listen", listen.as_str(), "--config", config.as_str()];
    let mut a = Bridge::serving(&ra, &key, &a_args);
    let b = Bridge::serving(&rb, &key, &["--connect", &listen]);
    let mb = open(&rb, 4096);
    {
        let ma = open(&ra, 4096);
        ma.write(b"made by A").unwrap();
        await_condition("A's value on B", || content(&mb) == b"made by A");
    }
    // A's ready line names it as B's log names the value's origin.
    let ready = a.wait_for("A ready", |v| v["event"] == "ready");
    let applied = b.wait_for("B applying A's value", |v| v["event"] == "applied");
    assert_eq!(ready["host"], "f1f2f3f4f5f6f7f", "{ready}");
    assert_eq!(ready["host"], applied["origin"], "{ready} {applied}");
    a.stop();
    filemap::admin::remove(&ra).unwrap();
    let a = Bridge::serving(&ra, &key, &a_args);
    let ma = open(&ra, 4096);
    await_condition("A's own value back on A", || content(&ma) == b"made by A");
    assert_eq!(
        a.count_where(names_impersonation),
        0,
        "A took its own value for an impersonation"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Whether a log line's reason names an impersonation.
fn names_impersonation(v: &Value) -> bool {
    v["reason"]
        .as_str()
        .is_some_and(|r| r.contains("impersonat"))
}

/// Bridges A (listening) and B on one key, A's first write on both, and a
/// rogue session both answer, which knows A's host id.
struct Impersonated {
    a: Bridge,
    b: Bridge,
    ma: FileMap,
    mb: FileMap,
    rogue: zenoh::Session,
    a_host: [u8; 16],
}

impl Impersonated {
    fn new(ra: &str, rb: &str, key: &str) -> Impersonated {
        use zenoh::Wait as _;
        let listen = loopback();
        let a = Bridge::serving(ra, key, &["--listen", &listen]);
        let b = Bridge::serving(rb, key, &["--connect", &listen]);
        let (ma, mb) = (open(ra, 4096), open(rb, 4096));
        ma.write(b"first").unwrap();
        await_condition("A's first write on B", || content(&mb) == b"first");
        let applied = b.wait_for("B applying it", |v| v["event"] == "applied");
        let a_host = host_of(applied["origin"].as_str().unwrap());
        let rogue = rogue_session(&listen);
        // Both bridges answer the rogue's query: its puts reach both.
        await_condition("both bridges visible to the rogue", || {
            let replies = rogue
                .get(key)
                .consolidation(zenoh::query::ConsolidationMode::None)
                .timeout(Duration::from_millis(500))
                .wait()
                .unwrap();
            std::iter::from_fn(|| replies.recv().ok()).count() == 2
        });
        Impersonated {
            a,
            b,
            ma,
            mb,
            rogue,
            a_host,
        }
    }

    /// A sample both bridges refuse and log, put after others: once both
    /// logged it, each has had those before it.
    fn marker_seen(&self, key: &str) {
        use zenoh::Wait as _;
        self.rogue.put(key, b"marker".to_vec()).wait().unwrap();
        let marker = |v: &Value| {
            v["event"] == "refused"
                && v["reason"]
                    .as_str()
                    .is_some_and(|r| r.contains("no attachment"))
        };
        self.a.wait_for("A refusing the marker", marker);
        self.b.wait_for("B refusing the marker", marker);
    }
}

/// Many samples impersonating A, each newer than the last: A re-dates its
/// value for each (a lock, no send) and puts it again once, not once per
/// sample, and logs a few lines, not one per sample.
#[test]
fn a_flood_of_impersonating_samples_costs_one_announcement_not_one_each() {
    use zenoh::Wait as _;
    let (ra, rb, key) = (unique("fa"), unique("fb"), unique("fkey"));
    let _c = cleanup(&[&ra, &rb]);
    let pair = Impersonated::new(&ra, &rb, &key);
    let start = ntp64_now() + (2 << 32);
    for i in 0..50u64 {
        pair.rogue
            .put(key.as_str(), b"rogue!".to_vec())
            .attachment(attachment(pair.a_host, start + (i << 20), 6))
            .wait()
            .unwrap();
    }
    pair.marker_seen(&key);
    // A's value again, dated after the flood (its `why` may name a peer
    // whose resync it joined). The old code put it once per sample.
    let last = start + (49 << 20);
    let after_flood =
        |v: &Value| v["event"] == "announced" && v["time"].as_u64().is_some_and(|t| t > last);
    pair.a.wait_for("A announcing its value again", after_flood);
    await_condition("A's value back on B", || content(&pair.mb) == b"first");
    let announced = pair.a.count_where(|v| {
        v["event"] == "announced" && v["time"].as_u64().is_some_and(|t| t > start)
    });
    // One announcement, perhaps a second a second later: not fifty.
    assert!((1..=2).contains(&announced), "{announced} announcements");
    let refusals = pair.a.count_where(names_impersonation);
    assert!(
        (1..=3).contains(&refusals),
        "{refusals} impersonation lines"
    );
    pair.ma.write(b"mine").unwrap();
    await_condition("A's write on B", || content(&pair.mb) == b"mine");
}

/// A bridge listening on `listen` with `--max-size 2048`, serving a
/// 4096-byte region `ra` that holds "precious", already sent: the content
/// a rogue's samples must leave as it was (returned, as read).
fn guarded(ra: &str, key: &str, listen: &str) -> (Bridge, FileMap, filemap::Snapshot) {
    let a = Bridge::serving(
        ra,
        key,
        &[
            "--listen",
            listen,
            "--max-size",
            "2048",
            "--capacity",
            "4096",
        ],
    );
    let ma = open(ra, 4096);
    ma.write(b"precious").unwrap();
    a.wait_for("A sending", |v| v["event"] == "sent");
    let before = ma.read().unwrap();
    (a, ma, before)
}
