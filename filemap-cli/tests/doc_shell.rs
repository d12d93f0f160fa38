//! The shell sessions of the documentation run as printed: each `sh` block
//! marked `<!-- runs: filemap-cli/tests/doc_shell.rs -->` runs in `sh -eu`
//! with this build's `filemap` first on PATH, and what it prints must be
//! the `text` block that follows it. Region names the session uses are
//! replaced with unique ones, removed at the end.

#![cfg(unix)]

use std::path::Path;
use std::process::Command;

use filemap_testkit::{runner, unique, Cleanup};

const MARK: &str = "<!-- runs: filemap-cli/tests/doc_shell.rs -->";
/// The pages with marked sessions, and the region names each one uses.
const PAGES: &[(&str, &[&str])] = &[("docs/cli.md", &["greeting"])];

struct Session {
    page: &'static str,
    line: usize,
    script: String,
    expected: String,
}

/// The code of the block that starts at `lines[*at]` with "```lang", or a
/// panic naming the page and line; `*at` ends past the closing fence.
fn block(page: &str, lines: &[&str], at: &mut usize, lang: &str) -> String {
    while lines.get(*at).is_some_and(|l| l.trim().is_empty()) {
        *at += 1;
    }
    assert_eq!(
        lines.get(*at).copied(),
        Some(format!("```{lang}").as_str()),
        "{page}:{}: a ```{lang} block should be here",
        *at + 1
    );
    let mut code = String::new();
    *at += 1;
    while let Some(line) = lines.get(*at) {
        *at += 1;
        if *line == "```" {
            return code;
        }
        code.push_str(line);
        code.push('\n');
    }
    panic!("{page}: a ```{lang} block is not closed");
}

fn sessions(page: &'static str) -> Vec<Session> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let text = std::fs::read_to_string(repo.join(page)).expect("reading a documentation page");
    let lines: Vec<&str> = text.lines().collect();
    let mut found = Vec::new();
    let mut at = 0;
    while at < lines.len() {
        if lines[at] != MARK {
            at += 1;
            continue;
        }
        at += 1;
        let line = at + 2;
        let script = block(page, &lines, &mut at, "sh");
        let expected = block(page, &lines, &mut at, "text");
        found.push(Session {
            page,
            line,
            script,
            expected,
        });
    }
    found
}

/// A directory removed when dropped.
struct TempDir {
    path: std::path::PathBuf,
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where the binaries under test run through an emulator
/// ([`filemap_testkit::RUNNER`], e.g. qemu-user for aarch64), `sh` cannot
/// start them itself: a directory with a `filemap` script that does, to
/// put first on PATH. `None` when they run directly.
fn runner_wrapper(bin: &Path) -> Option<TempDir> {
    use std::os::unix::fs::PermissionsExt as _;
    let runner = runner();
    if runner.is_empty() {
        return None;
    }
    let quote = |s: &std::ffi::OsStr| format!("'{}'", s.to_string_lossy().replace('\'', "'\\''"));
    let mut line = String::from("#!/bin/sh\nexec");
    for part in runner
        .iter()
        .map(|p| p.as_os_str())
        .chain([bin.as_os_str()])
    {
        line.push(' ');
        line.push_str(&quote(part));
    }
    line.push_str(" \"$@\"\n");
    let dir = TempDir {
        path: std::env::temp_dir().join(unique("doc-shell-runner")),
    };
    std::fs::create_dir_all(&dir.path).expect("creating the wrapper's directory");
    let script = dir.path.join("filemap");
    std::fs::write(&script, line).expect("writing the wrapper");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755))
        .expect("making the wrapper executable");
    Some(dir)
}

#[test]
fn documented_shell_sessions_print_what_the_page_shows() {
    let bin = Path::new(env!("CARGO_BIN_EXE_filemap"));
    let wrapper = runner_wrapper(bin);
    let bin_dir = match &wrapper {
        Some(dir) => dir.path.clone(),
        None => bin.parent().unwrap().to_path_buf(),
    };
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for (page, names) in PAGES {
        let sessions = sessions(page);
        assert!(!sessions.is_empty(), "{page}: no marked session");
        for session in sessions {
            let mut script = session.script.clone();
            let mut cleanups = Vec::new();
            for name in *names {
                let fresh = unique(name);
                script = script.replace(name, &fresh);
                cleanups.push(Cleanup(fresh));
            }
            let out = Command::new("sh")
                .args(["-eu", "-c", &script])
                .env("PATH", &path)
                .output()
                .expect("running sh");
            assert!(
                out.status.success(),
                "{}:{}: the session failed ({}):\n{}",
                session.page,
                session.line,
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                session.expected,
                "{}:{}: the session printed something else",
                session.page,
                session.line
            );
        }
    }
}
