//! Every C example of the documentation compiles without a warning and
//! runs: the `c` blocks of the README, `docs/c.md`, `docs/growth.md` and
//! this crate's README, each a whole program, built with the flags of the other C tests
//! (`-Wall -Wextra -Werror -pedantic`) against the freshly built library,
//! its region "demo" renamed to a unique one.

#![cfg(target_os = "linux")]

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

const PAGES: &[&str] = &[
    "README.md",
    "docs/c.md",
    "docs/growth.md",
    "filemap-ffi/README.md",
];

/// (page, line of the block's first code line, code) for each `c` block.
fn c_blocks() -> Vec<(&'static str, usize, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut blocks = Vec::new();
    for page in PAGES {
        let text = std::fs::read_to_string(repo.join(page)).expect("reading a documentation page");
        let mut code: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            match &mut code {
                None if line == "```c" => code = Some((i + 2, String::new())),
                Some((start, body)) if line == "```" => {
                    blocks.push((*page, *start, std::mem::take(body)));
                    code = None;
                }
                Some((_, body)) => {
                    body.push_str(line);
                    body.push('\n');
                }
                None => {}
            }
        }
        assert!(code.is_none(), "{page}: a c block is not closed");
    }
    blocks
}

#[test]
fn every_documented_c_example_compiles_with_warnings_as_errors_and_runs() {
    let blocks = c_blocks();
    for page in PAGES {
        assert!(
            blocks.iter().any(|(p, _, _)| p == page),
            "{page} has no c example"
        );
    }
    for (page, line, code) in blocks {
        assert!(
            code.contains("\"demo\""),
            "{page}:{line}: the example should open region \"demo\""
        );
        let name = unique("c-doc");
        let _cleanup = Cleanup(name.clone());
        let label = format!("{}-{line}", page.replace(['/', '.'], "-"));
        let source = out_dir().join(format!("{label}.c"));
        std::fs::write(&source, code.replace("\"demo\"", &format!("\"{name}\""))).unwrap();
        let exe = build_c("cc", &[source], &label, C_FLAGS);
        let out = Command::new(&exe)
            .output()
            .expect("running a documented example");
        assert!(
            out.status.success(),
            "{page}:{line}: the example exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
