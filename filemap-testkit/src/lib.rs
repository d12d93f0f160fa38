//! Helpers the workspace's test suites share. A dev-dependency only: never
//! published, never linked into a library or binary.
//!
//! - [`unique`] and [`Cleanup`]: a region name no other test or run uses,
//!   removed when the test ends, pass or fail.
//! - [`await_condition`]: poll a condition until a deadline instead of
//!   sleeping for a guessed time.
//! - [`await_exit`]: a child process's exit, or its end by kill at a
//!   deadline.
//! - [`free_port`]: a TCP port on 127.0.0.1 that was free a moment ago.
//! - [`child`]: child processes that re-run the test binary in a role.
//! - [`program`] and [`RUNNER`]: a command for a program built by cargo,
//!   run through an emulator when the tests run under one (aarch64 under
//!   qemu-user in CI).

#![warn(missing_docs)]

use std::ffi::OsString;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub mod child;

/// The environment variable naming the emulator (with its arguments,
/// separated by spaces) that runs the binaries under test, e.g.
/// `qemu-aarch64 -L /usr/aarch64-linux-gnu`: cargo's
/// `CARGO_TARGET_<triple>_RUNNER` starts the test binaries through it, and
/// the processes the tests start themselves (the test binary again, the
/// CLI) are started through it by [`program`]. Without it (the normal
/// case) programs are run directly. Where binfmt_misc would make the
/// kernel do this, CI containers usually may not register it.
pub const RUNNER: &str = "FILEMAP_TEST_RUNNER";

/// The emulator and its arguments from [`RUNNER`]; empty if unset.
pub fn runner() -> Vec<OsString> {
    std::env::var(RUNNER)
        .map(|r| r.split_whitespace().map(OsString::from).collect())
        .unwrap_or_default()
}

/// A command that runs `path`, through the emulator of [`RUNNER`] if set.
pub fn program(path: impl AsRef<Path>) -> Command {
    let mut runner = runner().into_iter();
    match runner.next() {
        Some(emulator) => {
            let mut cmd = Command::new(emulator);
            cmd.args(runner).arg(path.as_ref());
            cmd
        }
        None => Command::new(path.as_ref()),
    }
}

/// Generous upper bound for any single step of a test: tests fail, not hang.
pub const STEP: Duration = Duration::from_secs(20);

/// A region name no other test (or test run) uses: `test-{tag}-{pid}-{n}`.
pub fn unique(tag: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    format!(
        "test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// Removes region `.0` when the test ends, pass or fail (a region that is
/// already gone is fine).
pub struct Cleanup(pub String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = filemap::admin::remove(&self.0);
    }
}

/// Removes the files `.0` when the test ends, pass or fail (a file that
/// is already gone is fine): temporary files, and region files written
/// whole, which `filemap::admin::remove` may rightly refuse (on the posix
/// backend, an object whose header names another region).
pub struct RemoveFiles(pub Vec<std::path::PathBuf>);

impl Drop for RemoveFiles {
    fn drop(&mut self) {
        for file in &self.0 {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// Poll `condition` until it holds; panic naming `what` after [`STEP`].
pub fn await_condition(what: &str, condition: impl FnMut() -> bool) {
    await_condition_within(what, STEP, condition);
}

/// Poll `condition` until it holds; panic naming `what` after `limit`.
pub fn await_condition_within(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wait for `child` to exit, polling; after `limit` kill it, reap it and
/// return `None`.
pub fn await_exit(child: &mut Child, limit: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("polling a child process") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// A TCP port on 127.0.0.1 that the OS just handed out and released.
/// Another process may take it before the caller binds it; tests that
/// bind at once rarely lose that race.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    listener.local_addr().expect("the bound address").port()
}
