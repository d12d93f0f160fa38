//! Child processes that re-run the test binary in a role.
//!
//! A test file that spawns children declares one entry point, ignored so
//! that a normal run does not count it as a test that passed:
//!
//! ```ignore
//! #[test]
//! #[ignore = "child-process entry point, run by the tests that spawn it"]
//! fn child_role() {
//!     filemap_testkit::child::enter();
//!     // ...do the role named in the environment, then exit...
//! }
//! ```
//!
//! [`command`] runs this binary with `--ignored --exact child_role`, so
//! libtest runs that one function and nothing else. Run directly (for
//! example by `cargo test -- --ignored`), [`enter`] fails it: it has no
//! role and tests nothing. Run the other ignored tests with
//! `-- --ignored --skip child_role`.

use std::process::Command;

/// The name of every test file's entry point.
pub const ENTRY: &str = "child_role";

/// Set by [`command`]: this process was spawned as a child.
const MARK: &str = "FILEMAP_TESTKIT_CHILD";

/// This test binary, told to run only its ignored [`ENTRY`] test, without
/// capturing its output, on one thread, through the emulator the tests run
/// under if any ([`crate::RUNNER`]). The caller adds the role (in the
/// environment) and its stdio.
pub fn command() -> Command {
    let exe = std::env::current_exe().expect("the test binary's path");
    let mut cmd = crate::program(exe);
    cmd.args([
        "--ignored",
        "--exact",
        ENTRY,
        "--nocapture",
        "--test-threads=1",
        "--quiet",
    ])
    .env(MARK, "1");
    cmd
}

/// Whether this process is a child spawned by [`command`].
pub fn is_child() -> bool {
    std::env::var_os(MARK).is_some()
}

/// The first call of an entry point: returns in a child; in any other
/// process (the entry run by hand) fails, so that it is never counted as
/// a test that passed.
pub fn enter() {
    assert!(
        is_child(),
        "`{ENTRY}` is the entry point of child processes that other tests \
         spawn; run alone it tests nothing (run ignored tests with \
         `-- --ignored --skip {ENTRY}`)"
    );
}
