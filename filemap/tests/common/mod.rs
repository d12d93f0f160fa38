//! Shared test harness: child processes that re-execute the test binary
//! in a role, and the roles themselves. Names, clean-up and deadline
//! polling come from `filemap-testkit`, re-exported here.
//!
//! A test file declares its entry point, ignored so that it is not counted
//! as a test:
//!
//! ```ignore
//! #[test]
//! #[ignore = "child-process entry point, run by the tests that spawn it"]
//! fn child_role() {
//!     common::child_main()
//! }
//! ```
//!
//! `Child::spawn(role, name)` runs the same binary with only that entry
//! and `FILEMAP_CHILD_ROLE` set; the child does its role and talks back on
//! stdout with lines starting `@@ ` (libtest's own output is skipped).

#![allow(dead_code)]

use filemap::TextExt;
use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use filemap::FileMap;
#[allow(unused_imports)] // each test file uses some of them
pub use filemap_testkit::{await_condition, unique, Cleanup, RemoveFiles, STEP};

/// Whether region `name` exists (Linux: its file in /dev/shm; Windows: its
/// live section or persistent file, a stale registry entry not counted).
#[cfg(not(windows))]
pub fn region_file_exists(name: &str) -> bool {
    filemap::admin::shm_path(name).exists()
}

/// Whether region `name` exists (Linux: its file in /dev/shm; Windows: its
/// live section or persistent file, a stale registry entry not counted).
#[cfg(windows)]
pub fn region_file_exists(name: &str) -> bool {
    filemap::admin::inspect(name).is_ok_and(|info| !info.stale)
}

/// A child process running one role.
pub struct Child {
    process: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Child {
    pub fn spawn(role: &str, name: &str) -> Child {
        Self::spawn_with(role, name, &[])
    }

    pub fn spawn_with(role: &str, name: &str, env: &[(&str, String)]) -> Child {
        let mut cmd = filemap_testkit::child::command();
        cmd.env("FILEMAP_CHILD_ROLE", role)
            .env("FILEMAP_CHILD_NAME", name)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped());
        for (key, value) in env {
            cmd.env(key, value);
        }
        let mut process = spawn_retrying(&mut cmd);
        let stdout = process.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(msg) = line.strip_prefix("@@ ") {
                    if tx.send(msg.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        let stdin = process.stdin.take();
        Child {
            process,
            stdin,
            lines,
        }
    }

    /// The next protocol line from the child.
    pub fn line(&self) -> String {
        self.line_within(STEP)
    }

    /// The next protocol line, waiting at most `limit`.
    pub fn line_within(&self, limit: Duration) -> String {
        self.lines
            .recv_timeout(limit)
            .expect("child said nothing in time (or died)")
    }

    /// Wait for a line starting with `prefix`; returns the rest.
    pub fn expect(&self, prefix: &str) -> String {
        let line = self.line();
        line.strip_prefix(prefix)
            .unwrap_or_else(|| panic!("expected {prefix:?} from child, got {line:?}"))
            .to_owned()
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to child");
        stdin.flush().unwrap();
    }

    /// Close the child's stdin (its signal to finish), keeping its output.
    pub fn close_stdin(&mut self) {
        drop(self.stdin.take());
    }

    /// Close the child's stdin (its signal to finish) and wait for it.
    pub fn finish(mut self) -> std::process::ExitStatus {
        drop(self.stdin.take());
        self.wait()
    }

    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.process.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "child did not exit in time");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// SIGKILL, then reap.
    pub fn kill9(mut self) {
        self.process.kill().unwrap();
        self.process.wait().unwrap();
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// `cmd.spawn()`. Under Wine, `CreateProcess` now and then fails with
/// ERROR_INTERNAL_ERROR (1359) while other children are being killed (seen
/// once in about ten runs of crash.rs); that one error is retried a few
/// times there.
fn spawn_retrying(cmd: &mut Command) -> std::process::Child {
    let mut attempts = 0;
    loop {
        match cmd.spawn() {
            Ok(child) => return child,
            Err(e) if cfg!(windows) && e.raw_os_error() == Some(1359) && attempts < 5 => {
                attempts += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("spawn child: {e:?}"),
        }
    }
}

/// Spawn `count` children in `role` that each say "ready" and then wait
/// for "go"; returns them all ready, so the caller can start them at once.
pub fn spawn_ready(count: usize, role: &str, name: &str, env: &[(&str, String)]) -> Vec<Child> {
    let children: Vec<Child> = (0..count)
        .map(|_| Child::spawn_with(role, name, env))
        .collect();
    for child in &children {
        assert_eq!(child.line(), "ready");
    }
    children
}

/// Release children made by [`spawn_ready`].
pub fn go(children: &mut [Child]) {
    for child in children {
        child.send("go");
    }
}

/// `processes` children each add 1 to the decimal counter in region `name`
/// `each` times under the lock, all started at once; returns how long
/// they took.
pub fn count_in_processes(name: &str, processes: usize, each: u64) -> Duration {
    let env = [("FILEMAP_CHILD_COUNT", each.to_string())];
    let mut children = spawn_ready(processes, "increment", name, &env);
    let start = Instant::now();
    go(&mut children);
    for child in children {
        assert_eq!(child.line(), "done");
        assert!(child.finish().success());
    }
    start.elapsed()
}

pub fn say(msg: impl std::fmt::Display) {
    println!("@@ {msg}");
    std::io::stdout().flush().unwrap();
}

pub fn stdin_line() -> Option<String> {
    let mut line = String::new();
    match std::io::stdin().read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
    }
}

pub fn wait_for_stdin_eof() {
    while stdin_line().is_some() {}
}

fn env_u64(key: &str, default: u64) -> u64 {
    std::env::var(key)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The payload a crash-test writer publishes for sequence number `seq`:
/// `len` bytes all equal to `seq as u8`, then `seq` and `len` as trailers.
pub fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut bytes = vec![seq as u8; len];
    bytes.extend_from_slice(&seq.to_le_bytes());
    bytes.extend_from_slice(&(len as u64).to_le_bytes());
    bytes
}

/// Check a payload made by [`payload`]; returns its sequence number.
pub fn check_payload(bytes: &[u8]) -> Result<u64, String> {
    if bytes.len() < 16 {
        return Err(format!("payload of {} bytes is too short", bytes.len()));
    }
    let (body, trailer) = bytes.split_at(bytes.len() - 16);
    let seq = u64::from_le_bytes(trailer[..8].try_into().unwrap());
    let len = u64::from_le_bytes(trailer[8..].try_into().unwrap());
    if len as usize != body.len() {
        return Err(format!("length trailer {len} but body of {}", body.len()));
    }
    if let Some(i) = body.iter().position(|&b| b != seq as u8) {
        return Err(format!("torn payload {seq}: byte {i} is {}", body[i]));
    }
    Ok(seq)
}

/// Entry point of a child process: does the role in `FILEMAP_CHILD_ROLE`
/// and exits. Fails when not run as a child (see `filemap_testkit::child`).
pub fn child_main() {
    filemap_testkit::child::enter();
    let role = std::env::var("FILEMAP_CHILD_ROLE").expect("FILEMAP_CHILD_ROLE");
    let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
    let capacity = env_u64("FILEMAP_CHILD_CAPACITY", filemap::DEFAULT_CAPACITY as u64);
    let persistent = std::env::var_os("FILEMAP_CHILD_PERSISTENT").is_some();
    let open = || {
        FileMap::builder(&name)
            .capacity(capacity as usize)
            .persistent(persistent)
            .open()
            .expect("child open")
    };
    match role.as_str() {
        // Open, report, hold the region until stdin closes.
        "open" => {
            let map = open();
            say(format!("existed={}", map.existed_already()));
            wait_for_stdin_eof();
        }
        // Wait for "go", race to open, report, hold until stdin closes.
        "race" => {
            say("ready");
            assert_eq!(stdin_line().as_deref(), Some("go"));
            let map = open();
            say(format!("existed={}", map.existed_already()));
            wait_for_stdin_eof();
        }
        // Write each stdin line as the whole content; report generations.
        "write" => {
            let map = open();
            say(format!(
                "open pid={} handle={}",
                map.writer_id().pid,
                map.writer_id().handle
            ));
            while let Some(line) = stdin_line() {
                let published = map.write_str(&line).expect("child write");
                say(format!("wrote gen={}", published.generation));
            }
        }
        // Increment a decimal counter N times under the lock.
        "increment" => {
            let map = open();
            say("ready");
            assert_eq!(stdin_line().as_deref(), Some("go"));
            for _ in 0..env_u64("FILEMAP_CHILD_COUNT", 100) {
                map.update(|content| {
                    let n: u64 = std::str::from_utf8(content)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    *content = (n + 1).to_string().into_bytes();
                })
                .expect("child update");
            }
            say("done");
        }
        // Take the lock and exit without releasing it (no destructors run).
        "lock-and-exit" => {
            let map = open();
            let guard = map.lock().expect("child lock");
            say(format!("locked owner_died={}", guard.owner_died()));
            std::process::exit(0);
        }
        // Take the lock and never give it back.
        "hold-lock" => {
            let map = open();
            let guard = map.lock().expect("child lock");
            say(format!("locked owner_died={}", guard.owner_died()));
            loop {
                std::thread::park();
            }
        }
        // Publish self-checking payloads as fast as possible, forever.
        "writer-loop" => {
            let map = open();
            let len = env_u64("FILEMAP_CHILD_LEN", 1024) as usize;
            let first = map.write(&payload(1_000_000, len)).expect("first write");
            say(format!("started owner_died={}", first.owner_died));
            let mut seq = 0u64;
            loop {
                seq += 1;
                map.write(&payload(seq, len - (seq as usize % 64)))
                    .expect("child write");
            }
        }
        // Sleep in `wait_change` (the futex), report every content that
        // starts with "end ", stop after "end last".
        "wait-for-ends" => {
            let map = open();
            let mut seen = map.generation();
            let adaptive = std::env::var_os("FILEMAP_CHILD_ADAPTIVE").is_some();
            say("waiting");
            loop {
                if adaptive {
                    map.wait_change(seen, filemap::Wait::adaptive().timeout(STEP))
                        .ok()
                } else {
                    map.wait_change(seen, filemap::Wait::sleep().timeout(STEP))
                        .ok()
                }
                .expect("a change in time");
                let snap = map.read_string().expect("read");
                seen = snap.generation;
                if snap.content.starts_with("end ") {
                    say(&snap.content);
                    if snap.content == "end last" {
                        break;
                    }
                }
            }
        }
        // Watch until the content is "END"; report what was seen last.
        "watch-until-end" => {
            let map = open();
            let (tx, rx) = std::sync::mpsc::channel();
            let _watcher = map
                .watch(move |change| {
                    let snap = change.expect("watch");
                    tx.send((snap.generation, snap.content)).unwrap();
                })
                .unwrap();
            say("watching");
            let mut changes = 0u64;
            loop {
                let (generation, content) = rx.recv().unwrap();
                changes += 1;
                if content == b"END" {
                    say(format!("end gen={generation} changes={changes}"));
                    break;
                }
            }
        }
        // Use up every file descriptor, then write: the lock holder's
        // liveness cannot be read, which must not count as death.
        "write-without-fds" => {
            let map = FileMap::builder(&name)
                .lock_timeout(Duration::from_millis(300))
                .open()
                .expect("child open");
            say("ready");
            assert_eq!(stdin_line().as_deref(), Some("go"));
            let mut hoard = Vec::new();
            while let Ok(file) = std::fs::File::open("/dev/null") {
                hoard.push(file);
            }
            let result = map.write_str("stolen?");
            drop(hoard);
            say(format!("{result:?}"));
        }
        // Say "waiting", wait once for a change; report it.
        "wait-change" => {
            let map = open();
            let seen = map.generation();
            say(format!("waiting gen={seen}"));
            let woke = map
                .wait_change(seen, filemap::Wait::sleep().timeout(STEP))
                .ok();
            say(format!("woke gen={}", woke.map_or(-1, |g| g as i64)));
            wait_for_stdin_eof();
        }
        // Sleep in wait_change until killed.
        "wait-forever" => {
            let map = open();
            let seen = map.generation();
            std::thread::spawn(move || map.wait_change(seen, filemap::Wait::sleep()).ok());
            say("waiting");
            loop {
                std::thread::park();
            }
        }
        other => panic!("unknown child role {other}"),
    }
    std::process::exit(0);
}

/// Cut the file at `path` to `len` bytes, as a hostile process would
/// (`ftruncate`), under the handles that map it.
pub fn cut_file(path: &std::path::Path, len: u64) {
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}
