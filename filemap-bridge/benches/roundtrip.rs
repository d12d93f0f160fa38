//! Bridge round trip against Zenoh's own pub/sub round trip, on loopback,
//! in the same run. `cargo bench -p filemap-bridge --bench roundtrip`.
//!
//! - **zenoh**: process P puts N bytes on `ping`; process Q, subscribed,
//!   puts them back on `pong`; P's subscriber gets them.
//! - **bridge**: P writes N bytes into region `ping-a`; bridge A sends them
//!   to bridge B, which writes region `ping-b`; Q, waiting on `ping-b`,
//!   writes them into `pong-b`; bridges B and A carry them to `pong-a`,
//!   where P is waiting.
//!
//! Also the 1 MiB throughput: distinct 1 MiB contents delivered per second
//! to the other side, the writer offering 2,000 per second (the
//! comparison: each side's writer costs the same CPU), then publishing as
//! fast as it can (Zenoh's publisher is then held back by its congestion
//! control; a region's writer never blocks and keeps one core busy).
//!
//! `BENCH_BRIDGE=path` measures another bridge build; `BENCH_BRIDGE_B=path`
//! adds a second one, alternated with the first and with Zenoh, so that two
//! builds are compared in one run on a noisy host. `BENCH_ONLY=bridge:8`
//! (or `zenoh:65536`...) runs one mechanism alone, long enough to profile.

use std::ffi::{OsStr, OsString};
use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use filemap::FileMap;
use filemap_testkit::free_port;
use zenoh::qos::CongestionControl;
use zenoh::Wait as _;

/// The bridge builds measured: this build's (or `BENCH_BRIDGE=path`),
/// and `BENCH_BRIDGE_B=path` if set, so that two builds are compared with
/// each other and with Zenoh in one run, their repetitions alternated.
fn builds() -> Vec<OsString> {
    let first = std::env::var_os("BENCH_BRIDGE")
        .unwrap_or_else(|| env!("CARGO_BIN_EXE_filemap-bridge").into());
    std::iter::once(first)
        .chain(std::env::var_os("BENCH_BRIDGE_B"))
        .collect()
}
/// (size, round trips per repetition).
const SIZES: [(usize, usize); 3] = [(8, 1000), (64 << 10, 300), (1 << 20, 80)];
/// Repetitions, zenoh and bridge alternated so that a busy host hurts both.
const REPS: usize = 5;
const CAP: u64 = 2 << 20;

fn zenoh_session(listen: Option<&str>, connect: Option<&str>) -> zenoh::Session {
    let mut c = zenoh::Config::default();
    c.insert_json5("mode", "\"peer\"").unwrap();
    c.insert_json5("scouting/multicast/enabled", "false")
        .unwrap();
    // The receive buffers the bridges get for CAP-sized regions (three
    // contents' worth, see filemap-bridge's size_rx_buffers): the same
    // transport settings on both sides of the comparison.
    c.insert_json5("transport/link/rx/buffer_size", &(3 * CAP).to_string())
        .unwrap();
    if let Some(l) = listen {
        c.insert_json5("listen/endpoints", &format!("[\"{l}\"]"))
            .unwrap();
    }
    if let Some(e) = connect {
        c.insert_json5("connect/endpoints", &format!("[\"{e}\"]"))
            .unwrap();
    }
    zenoh::open(c).wait().unwrap()
}

fn median<T: Copy + PartialOrd>(v: &mut [T]) -> T {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    v[v.len() / 2]
}

/// The name of the `i`th build measured: A, B.
fn build_label(i: usize) -> char {
    char::from(b'A' + i as u8)
}

fn p99(v: &[Duration]) -> Duration {
    v[(v.len() * 99 / 100).min(v.len() - 1)]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Child roles, run as `roundtrip <role> ...`.
fn child(role: &str, rest: &[String]) {
    match role {
        "zenoh-pong" => {
            let s = zenoh_session(None, Some(&rest[0]));
            let s2 = s.clone();
            let _sub = s
                .declare_subscriber("bench/zping")
                .callback(move |sample| {
                    s2.put("bench/zpong", sample.payload().clone())
                        .congestion_control(CongestionControl::Block)
                        .wait()
                        .unwrap();
                })
                .wait()
                .unwrap();
            println!("ready");
            // Until the parent closes stdin.
            let _ = std::io::stdin().read_line(&mut String::new());
        }
        "zenoh-count" => {
            let s = zenoh_session(None, Some(&rest[0]));
            let (tx, rx) = mpsc::channel::<()>();
            let _sub = s
                .declare_subscriber("bench/zthroughput")
                .callback(move |_| {
                    let _ = tx.send(());
                })
                .wait()
                .unwrap();
            println!("ready");
            count_until_stdin_closes(|| rx.recv_timeout(Duration::from_millis(50)).is_ok());
        }
        "region-pong" => {
            let ping = FileMap::builder(&rest[0])
                .capacity(CAP as usize)
                .open()
                .unwrap();
            let pong = FileMap::builder(&rest[1])
                .capacity(CAP as usize)
                .open()
                .unwrap();
            // Before "ready": a ping sent right after it must not be missed.
            let mut seen = ping.generation();
            println!("ready");
            let mut buf = Vec::new();
            loop {
                let Some(g) = ping
                    .wait_change(
                        seen,
                        filemap::Wait::sleep().timeout(Duration::from_secs(30)),
                    )
                    .ok()
                else {
                    return;
                };
                seen = g;
                ping.read_into(&mut buf).unwrap();
                pong.write(&buf).unwrap();
            }
        }
        _ => panic!("unknown role {role}"),
    }
}

/// Print how many events `next` reports until stdin closes.
fn count_until_stdin_closes(mut next: impl FnMut() -> bool) {
    let (done_tx, done_rx) = mpsc::channel::<()>();
    std::thread::spawn(move || {
        let _ = std::io::stdin().read_line(&mut String::new());
        let _ = done_tx.send(());
    });
    let mut n = 0u64;
    while done_rx.try_recv().is_err() {
        if next() {
            n += 1;
        }
    }
    println!("{n}");
}

struct Proc {
    child: Child,
    out: Option<BufReader<std::process::ChildStdout>>,
}

impl Proc {
    fn spawn(cmd: &mut Command, ready: &str) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(out.read_line(&mut line).unwrap() > 0, "child ended early");
            if line.contains(ready) {
                break;
            }
        }
        Proc {
            child,
            out: Some(out),
        }
    }

    /// A bridge: it logs (`ready` included) to standard error.
    fn spawn_bridge(cmd: &mut Command) -> Proc {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        loop {
            line.clear();
            assert!(err.read_line(&mut line).unwrap() > 0, "bridge ended early");
            if line.starts_with("ready") {
                break;
            }
        }
        // Keep reading (and dropping) its log, so it never blocks on a
        // full pipe; BENCH_LOG=1 shows it.
        if std::env::var_os("BENCH_LOG").is_some() {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::stderr()));
        } else {
            std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        }
        Proc { child, out: None }
    }

    fn finish(mut self) -> String {
        drop(self.child.stdin.take());
        let mut line = String::new();
        if let Some(out) = self.out.as_mut() {
            out.read_line(&mut line).unwrap();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        line.trim().to_string()
    }
}

impl Proc {
    /// Kill it and reap it (again: harmless).
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

fn me(role: &str) -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.arg(role);
    c
}

fn zenoh_round_trips(n: usize, iters: usize) -> Vec<Duration> {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let s = zenoh_session(Some(&ep), None);
    let (tx, rx) = mpsc::sync_channel::<()>(16);
    let _sub = s
        .declare_subscriber("bench/zpong")
        .callback(move |_| {
            let _ = tx.send(());
        })
        .wait()
        .unwrap();
    let _pong = Proc::spawn(me("zenoh-pong").arg(&ep), "ready");
    let payload = vec![7u8; n];
    let mut times = Vec::with_capacity(iters);
    // Warm up until the route exists.
    loop {
        s.put("bench/zping", payload.clone()).wait().unwrap();
        if rx.recv_timeout(Duration::from_millis(200)).is_ok() {
            break;
        }
    }
    for i in 0..iters + iters / 10 {
        let t = Instant::now();
        s.put("bench/zping", payload.clone())
            .congestion_control(CongestionControl::Block)
            .wait()
            .unwrap();
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        if i >= iters / 10 {
            times.push(t.elapsed());
        }
    }
    times
}

struct Bridges {
    a: Proc,
    b: Proc,
    regions: Vec<String>,
}

impl Drop for Bridges {
    fn drop(&mut self) {
        // The bridges first: a running bridge makes a removed region anew
        // at once, which would leave it behind in /dev/shm.
        self.a.kill();
        self.b.kill();
        for r in &self.regions {
            let _ = filemap::admin::remove(r);
            let lock = filemap::admin::shm_path(r)
                .parent()
                .unwrap()
                .join(format!("filemap-bridge.{r}.lock"));
            let _ = std::fs::remove_file(lock);
        }
    }
}

/// Two bridges; A maps `{tag}-X-a`, B maps `{tag}-X-b`, for each X in `names`.
fn bridges(bin: &OsStr, tag: &str, names: &[&str]) -> Bridges {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let mut regions = Vec::new();
    let mut args_a = vec!["--capacity".to_string(), CAP.to_string()];
    if std::env::var_os("BENCH_LOG").is_some() {
        args_a.push("--verbose".into());
    }
    let mut args_b = args_a.clone();
    for n in names {
        let (ra, rb) = (format!("{tag}-{n}-a"), format!("{tag}-{n}-b"));
        args_a.extend(["--map".into(), format!("{ra}=bench/{tag}/{n}")]);
        args_b.extend(["--map".into(), format!("{rb}=bench/{tag}/{n}")]);
        regions.extend([ra, rb]);
    }
    let a = Proc::spawn_bridge(Command::new(bin).args(&args_a).args(["--listen", &ep]));
    let b = Proc::spawn_bridge(Command::new(bin).args(&args_b).args(["--connect", &ep]));
    Bridges { a, b, regions }
}

fn bridge_round_trips(bin: &OsStr, n: usize, iters: usize) -> Vec<Duration> {
    let tag = format!("rt{}-{n}", std::process::id());
    let br = bridges(bin, &tag, &["ping", "pong"]);
    let ping = FileMap::open(&br.regions[0]).unwrap();
    let pong = FileMap::open(&br.regions[2]).unwrap();
    let _q = Proc::spawn(
        me("region-pong").args([&br.regions[1], &br.regions[3]]),
        "ready",
    );
    let mut payload = vec![7u8; n];
    let mut times = Vec::with_capacity(iters);
    let mut seen = pong.generation();
    let mut buf = Vec::new();
    for i in 0..iters + iters / 10 {
        // A distinct content each time (the first bytes count).
        let tagb = (i as u64).to_le_bytes();
        let k = tagb.len().min(n);
        payload[..k].copy_from_slice(&tagb[..k]);
        let t = Instant::now();
        ping.write(&payload).unwrap();
        loop {
            seen = pong
                .wait_change(
                    seen,
                    filemap::Wait::sleep().timeout(Duration::from_secs(10)),
                )
                .expect("no answer within 10 s");
            pong.read_into(&mut buf).unwrap();
            if buf == payload {
                break;
            }
        }
        if i >= iters / 10 {
            times.push(t.elapsed());
        }
    }
    times
}

const WINDOW: Duration = Duration::from_secs(3);
/// The offered load of the paced throughput runs: well above what either
/// delivers (about 1,000 per second here), far below what a writer can
/// publish (over 20,000 per second).
const PACE: f64 = 2000.0;
/// Throughput windows per mechanism and offered load.
const TP_REPS: usize = 3;

/// Calls `publish` until `WINDOW` has passed: back to back, or at `rate`
/// per second (sleeping between publishes; a late one goes at once, with no
/// catching up). Returns the publishes made and the time taken.
fn publish_for_window(rate: Option<f64>, mut publish: impl FnMut(u64)) -> (u64, Duration) {
    let t = Instant::now();
    let mut k = 0u64;
    while t.elapsed() < WINDOW {
        if let Some(rate) = rate {
            let due = t + Duration::from_secs_f64(k as f64 / rate);
            let now = Instant::now();
            if due > now {
                std::thread::sleep(due - now);
            }
        }
        publish(k);
        k += 1;
    }
    (k, t.elapsed())
}

/// Distinct 1 MiB contents received per second by another process, the
/// publisher putting them at `rate` (or as fast as Zenoh's congestion
/// control lets it).
fn zenoh_throughput(rate: Option<f64>) -> f64 {
    let ep = format!("tcp/127.0.0.1:{}", free_port());
    let s = zenoh_session(Some(&ep), None);
    let counter = Proc::spawn(me("zenoh-count").arg(&ep), "ready");
    let payload = vec![1u8; 1 << 20];
    // Let the subscription reach us.
    std::thread::sleep(Duration::from_millis(500));
    let (_, elapsed) = publish_for_window(rate, |_| {
        s.put("bench/zthroughput", payload.clone())
            .congestion_control(CongestionControl::Block)
            .wait()
            .unwrap();
    });
    let got: f64 = counter.finish().parse().unwrap();
    got / elapsed.as_secs_f64()
}

/// Distinct 1 MiB contents arriving per second in the far region, and the
/// writer's publishes per second, the writer publishing at `rate` (or back
/// to back: it never blocks, so it then keeps one core busy).
fn bridge_throughput(bin: &OsStr, rate: Option<f64>) -> (f64, f64) {
    let tag = format!("tp{}", std::process::id());
    let br = bridges(bin, &tag, &["data"]);
    let a = FileMap::open(&br.regions[0]).unwrap();
    let b = FileMap::open(&br.regions[1]).unwrap();
    let mut payload = vec![1u8; 1 << 20];
    let (stop_tx, stop_rx) = mpsc::channel::<()>();
    let counter = std::thread::spawn(move || {
        let mut seen = b.generation();
        let mut n = 0u64;
        while stop_rx.try_recv().is_err() {
            if let Ok(g) = b.wait_change(
                seen,
                filemap::Wait::sleep().timeout(Duration::from_millis(50)),
            ) {
                seen = g;
                n += 1;
            }
        }
        n
    });
    let (writes, elapsed) = publish_for_window(rate, |k| {
        payload[..8].copy_from_slice(&k.to_le_bytes());
        a.write(&payload).unwrap();
    });
    // Contents still in flight at the end of the window are not counted.
    let _ = stop_tx.send(());
    let got = counter.join().unwrap() as f64;
    (
        got / elapsed.as_secs_f64(),
        writes as f64 / elapsed.as_secs_f64(),
    )
}

fn size_label(n: usize) -> String {
    if n >= 1 << 20 {
        format!("{} MiB", n >> 20)
    } else if n >= 1 << 10 {
        format!("{} KiB", n >> 10)
    } else {
        format!("{n} B")
    }
}

fn main() {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if let Some(role) = argv.first().filter(|r| !r.starts_with('-')) {
        return child(role, &argv[1..]);
    }
    let builds = builds();
    if let Some(only) = std::env::var_os("BENCH_ONLY") {
        return profile_load(&only.to_string_lossy(), &builds[0]);
    }
    for (i, b) in builds.iter().enumerate() {
        println!("bridge {}: {}", build_label(i), b.to_string_lossy());
    }
    println!(
        "round trip on loopback in µs: median of {REPS} alternated repetitions' medians \
         [best repetition's median] (p99 of all); ratio: bridge / zenoh"
    );
    for (n, iters) in SIZES {
        let mut z = Series::default();
        let mut bs: Vec<Series> = builds.iter().map(|_| Series::default()).collect();
        for rep in 0..REPS {
            // zenoh, A, B, then B, A, zenoh: none always runs first.
            let mut order: Vec<Option<usize>> = std::iter::once(None)
                .chain((0..builds.len()).map(Some))
                .collect();
            if rep % 2 == 1 {
                order.reverse();
            }
            for m in order {
                match m {
                    None => z.add(zenoh_round_trips(n, iters)),
                    Some(i) => bs[i].add(bridge_round_trips(&builds[i], n, iters)),
                }
            }
        }
        let zm = z.median();
        print!("{:>7}  zenoh {}", size_label(n), z.show());
        for (i, b) in bs.iter().enumerate() {
            print!(
                "  bridge {} {} {:.2}x",
                build_label(i),
                b.show(),
                b.median().as_secs_f64() / zm.as_secs_f64()
            );
        }
        println!();
    }
    println!(
        "1 MiB throughput, median of {TP_REPS} alternated windows of {WINDOW:?}: \
         distinct contents delivered per second"
    );
    for rate in [Some(PACE), None] {
        let offered = match rate {
            Some(r) => format!("offered {r:.0}/s"),
            None => "back to back".to_string(),
        };
        let mut z = Vec::new();
        let mut bs: Vec<(Vec<f64>, Vec<f64>)> = builds.iter().map(|_| Default::default()).collect();
        for _ in 0..TP_REPS {
            z.push(zenoh_throughput(rate));
            for (b, (got, writes)) in builds.iter().zip(&mut bs) {
                let (g, w) = bridge_throughput(b, rate);
                got.push(g);
                writes.push(w);
            }
        }
        let z = median(&mut z);
        print!("  {offered:>16}: zenoh {z:.0}/s");
        for (i, (got, writes)) in bs.iter_mut().enumerate() {
            let (g, w) = (median(got), median(writes));
            print!(
                "  bridge {} {g:.0}/s (zenoh / bridge {:.2}x; writer {w:.0}/s)",
                build_label(i),
                z / g
            );
        }
        println!();
    }
}

/// `BENCH_ONLY=zenoh:SIZE` or `bridge:SIZE`: 20,000 round trips of that
/// mechanism alone, then their median: a steady load to look at with a
/// profiler or `/proc` (which threads run, how often they switch).
fn profile_load(only: &str, bin: &OsStr) {
    let parsed = only
        .split_once(':')
        .and_then(|(m, n)| Some((m, n.parse::<usize>().ok()?)));
    let mut times = match parsed {
        Some(("zenoh", n)) => zenoh_round_trips(n, 20_000),
        Some(("bridge", n)) => bridge_round_trips(bin, n, 20_000),
        _ => {
            eprintln!("BENCH_ONLY: zenoh:SIZE or bridge:SIZE (bytes), not {only:?}");
            std::process::exit(2);
        }
    };
    println!("{only}: median round trip {:.1} µs", us(median(&mut times)));
}

/// One mechanism's round trips over the repetitions.
#[derive(Default)]
struct Series {
    medians: Vec<Duration>,
    all: Vec<Duration>,
}

impl Series {
    fn add(&mut self, mut times: Vec<Duration>) {
        self.medians.push(median(&mut times));
        self.all.extend(times);
    }

    fn median(&self) -> Duration {
        median(&mut self.medians.clone())
    }

    fn show(&self) -> String {
        let mut all = self.all.clone();
        all.sort();
        let best = self.medians.iter().min().copied().unwrap_or_default();
        format!(
            "{:>7.1} [{:>7.1}] ({:>6.0})",
            us(self.median()),
            us(best),
            us(p99(&all))
        )
    }
}
