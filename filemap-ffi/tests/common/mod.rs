//! Shared harness for the cross-language tests: building C, C++ and Pascal
//! programs against the freshly built library, finding the `filemap` CLI,
//! Rust child processes (this test binary re-run in a role), and processes
//! whose output lines are awaited with a deadline.
//!
//! A test file with Rust children declares their entry point, ignored so
//! that it is not counted as a test (see `filemap_testkit::child`):
//! `#[test] #[ignore = "..."] fn child_role() { common::child_main() }`.

#![allow(dead_code)]

use filemap::TextExt;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use filemap::FileMap;
pub use filemap_testkit::{unique, Cleanup};

/// Generous upper bound for any single step; tests fail, not hang.
pub const STEP: Duration = Duration::from_secs(30);

/// `target/<profile>`: where cargo put this test's library and binaries.
pub fn profile_dir() -> PathBuf {
    // target/<profile>/deps/<test>-<hash>
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps")
        .to_path_buf()
}

/// The directory holding `libfilemap_ffi.so` / `.a`. `cargo test` builds
/// only the rlib a test links against, not the C libraries, so on a fresh
/// checkout they are built here, once per test binary, with the same
/// profile and target directory.
pub fn lib_dir() -> PathBuf {
    static BUILT: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    let dir = profile_dir();
    BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = std::process::Command::new(cargo);
        build.args(["build", "-p", "filemap-ffi", "--lib"]);
        if dir.file_name().is_some_and(|p| p == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("running cargo build for filemap-ffi");
        assert!(status.success(), "cargo build -p filemap-ffi failed");
    });
    assert!(
        dir.join("libfilemap_ffi.so").exists(),
        "{} lacks libfilemap_ffi.so after cargo build",
        dir.display()
    );
    dir
}

pub fn include_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("include")
}

/// Where compiled test programs go.
pub fn out_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("filemap-ffi");
    std::fs::create_dir_all(&dir).expect("creating the output dir");
    dir
}

/// Run a compiler; panic with its output when it fails.
pub fn run_compiler(cmd: &mut Command) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Compile C (`cc`) or C++ (`c++`) sources into `name`, linked against
/// the shared library, once per test run.
pub fn build_c(compiler: &str, sources: &[PathBuf], name: &str, flags: &[&str]) -> PathBuf {
    static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let exe = out_dir().join(name);
    let lib = lib_dir();
    let mut cmd = Command::new(compiler);
    cmd.args(flags)
        .arg("-I")
        .arg(include_dir())
        .args(sources)
        .arg("-L")
        .arg(&lib)
        .arg("-lfilemap_ffi")
        .arg(format!("-Wl,-rpath,{}", lib.display()))
        .arg("-pthread")
        .arg("-o")
        .arg(&exe);
    run_compiler(&mut cmd);
    built.push((name.to_owned(), exe.clone()));
    exe
}

pub fn example(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples/c")
        .join(file)
}

pub fn test_source(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join(file)
}

pub const C_FLAGS: &[&str] = &["-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic"];
pub const CXX_FLAGS: &[&str] = &["-std=c++17", "-Wall", "-Wextra", "-Werror", "-pedantic"];

/// The `filemap` CLI. `cargo test --workspace` builds it next to this test
/// (it is filemap-cli's binary); when only this crate is tested, it is
/// built once into a target dir of its own (the outer cargo holds the
/// main one's lock while tests run).
pub fn cli() -> PathBuf {
    static CLI: OnceLock<PathBuf> = OnceLock::new();
    CLI.get_or_init(|| {
        let beside = profile_dir().join(format!("filemap{}", std::env::consts::EXE_SUFFIX));
        if beside.exists() {
            return beside;
        }
        // Under Wine no cargo can run: ci/windows.sh builds the CLI first.
        #[cfg(windows)]
        panic!(
            "{} is missing: build filemap-cli for this target first",
            beside.display()
        );
        #[cfg(not(windows))]
        {
            let target = profile_dir().join("ffi-cli");
            let mut cmd = Command::new(env!("CARGO"));
            cmd.args(["build", "--locked", "-p", "filemap-cli", "--target-dir"])
                .arg(&target)
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            run_compiler(&mut cmd);
            target.join("debug/filemap")
        }
    })
    .clone()
}

/// `filemap ARGS...`, waited for.
pub fn run_cli(args: &[&str]) -> Output {
    let out = Command::new(cli())
        .args(args)
        .output()
        .expect("running the filemap CLI");
    assert!(
        out.status.success(),
        "filemap {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running process whose stdout lines arrive on a channel.
pub struct Proc {
    pub child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    what: String,
}

impl Proc {
    pub fn spawn(mut cmd: Command) -> Proc {
        let what = format!("{cmd:?}");
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {what}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // A Rust child's report shares its line with libtest's
                // "test child_role ... ": keep the report only.
                let line = match line.find("@@ ") {
                    Some(at) => line[at..].to_owned(),
                    None => line,
                };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Proc {
            stdin: child.stdin.take(),
            child,
            lines,
            what,
        }
    }

    /// The next stdout line satisfying `pred` (earlier lines are skipped).
    pub fn expect_line(&self, pred: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + STEP;
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if pred(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => panic!(
                    "{}: no line {what} within {STEP:?}; saw {seen:?}",
                    self.what
                ),
            }
        }
    }

    pub fn expect(&self, exact: &str) -> String {
        self.expect_line(|l| l == exact, &format!("{exact:?}"))
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("writing to the child");
        stdin.flush().expect("flushing the child's stdin");
    }

    /// Close stdin and wait for a successful exit.
    pub fn finish(mut self) {
        drop(self.stdin.take());
        let deadline = Instant::now() + STEP;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "{} exited with {status}", self.what);
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit after end of input",
                self.what
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Wait for exit (stdin left open) and check success.
    pub fn wait_success(mut self) {
        let deadline = Instant::now() + STEP * 2;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "{} exited with {status}", self.what);
                return;
            }
            assert!(Instant::now() < deadline, "{} did not exit", self.what);
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// This test binary in a Rust child role: `role` and its `args` go to
/// `child_main` through the environment.
pub fn rust_child(role: &str, args: &[&str]) -> Command {
    let mut cmd = filemap_testkit::child::command();
    cmd.env("FILEMAP_FFI_CHILD", role)
        .env("FILEMAP_FFI_CHILD_ARGS", args.join("\u{1f}"));
    cmd
}

/// The body of the `child_role` entry point (fails unless this process is
/// a Rust child). Roles:
/// - `write NAME TEXT`: publish TEXT, print `@@ published G`;
/// - `read NAME`: print `@@ content TEXT`;
/// - `count NAME N`: N locked increments of a decimal counter, `@@ done`.
pub fn child_main() {
    filemap_testkit::child::enter();
    let role = std::env::var("FILEMAP_FFI_CHILD").expect("FILEMAP_FFI_CHILD");
    let args = std::env::var("FILEMAP_FFI_CHILD_ARGS").unwrap_or_default();
    let args: Vec<&str> = args.split('\u{1f}').collect();
    let map = FileMap::open(args[0]).expect("child: open");
    match role.as_str() {
        "write" => {
            let published = map.write_str(args[1]).expect("child: write");
            println!("@@ published {}", published.generation);
        }
        "read" => {
            let snap = map.read_string().expect("child: read");
            println!("@@ content {}", snap.content);
        }
        "count" => {
            let n: u32 = args[1].parse().expect("child: count");
            for _ in 0..n {
                map.update(|content| {
                    let now: u64 = std::str::from_utf8(content)
                        .ok()
                        .and_then(|s| s.parse().ok())
                        .unwrap_or(0);
                    *content = (now + 1).to_string().into_bytes();
                })
                .expect("child: update");
            }
            println!("@@ done");
        }
        other => panic!("unknown child role {other}"),
    }
}
