//! The Pascal examples of the documentation build and run: each `pascal`
//! block of the README, `docs/pascal.md` and `docs/growth.md`, compiled
//! with `fpc` (warnings as errors) against the unit and the freshly built
//! library, its map "demo" renamed, must leave the text it writes in the
//! region ("hello from Pascal"), or, for a block that writes something
//! else, print what [`PRINTS`] lists for its page.
//!
//! They need Free Pascal, so they are ignored by default, like
//! `tests/pascal.rs`: `cargo test -p filemap-ffi --test pascal_docs --
//! --ignored`. Run without `fpc`, they fail saying so.

#![cfg(target_os = "linux")]

mod common;

use common::*;
use filemap::{FileMap, TextExt};
use std::path::Path;
use std::process::Command;

const PAGES: &[&str] = &["README.md", "docs/pascal.md", "docs/growth.md"];

/// What each block of a page that does not write "hello from Pascal" must
/// print. Such a block makes its own map (one held open by this test
/// would fix its sizes, as attaching does), which is gone when it ends, so
/// its output is what is checked.
const PRINTS: &[(&str, &[&str])] = &[(
    "docs/growth.md",
    // The capacity grown, of the maximum; the refusal past it.
    &[" of 1048576\n", "(FM_E_TOO_LARGE)"],
)];

/// (page, line of the block's first code line, code) for each `pascal` block.
fn pascal_blocks() -> Vec<(&'static str, usize, String)> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let mut blocks = Vec::new();
    for page in PAGES {
        let text = std::fs::read_to_string(repo.join(page)).expect("reading a documentation page");
        let mut code: Option<(usize, String)> = None;
        for (i, line) in text.lines().enumerate() {
            match &mut code {
                None if line == "```pascal" => code = Some((i + 2, String::new())),
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
    }
    blocks
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn every_documented_pascal_example_builds_and_writes_its_text() {
    assert!(
        Command::new("fpc").arg("-iV").output().is_ok(),
        "fpc (Free Pascal) is missing: install fp-compiler and fp-units-rtl"
    );
    let blocks = pascal_blocks();
    for page in PAGES {
        assert!(
            blocks.iter().any(|(p, _, _)| p == page),
            "{page} has no pascal example"
        );
    }
    let pascal_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/pascal");
    let lib = lib_dir();
    for (page, line, code) in blocks {
        assert!(
            code.contains("'demo'"),
            "{page}:{line}: the example should open map 'demo'"
        );
        let name = unique("pas-doc");
        let _cleanup = Cleanup(name.clone());
        let writes_hello = code.contains("'hello from Pascal'");
        // Held open here so that the region outlives the program's Free.
        let map = writes_hello.then(|| FileMap::open(&name).unwrap());
        let dir = out_dir().join(format!(
            "pascal-doc-{}-{line}",
            page.replace(['/', '.'], "-")
        ));
        let units = dir.join("units");
        std::fs::create_dir_all(&units).unwrap();
        let source = dir.join("example.pas");
        std::fs::write(&source, code.replace("'demo'", &format!("'{name}'"))).unwrap();
        let mut fpc = Command::new("fpc");
        fpc.arg("-vw")
            .arg("-Sew")
            .arg(format!("-Fu{}", pascal_dir.display()))
            .arg(format!("-FU{}", units.display()))
            .arg(format!("-FE{}", dir.display()))
            .arg(format!("-Fl{}", lib.display()))
            .arg(format!("-k-rpath={}", lib.display()))
            .arg(&source);
        run_compiler(&mut fpc);
        let out = Command::new(dir.join("example"))
            .output()
            .expect("running a documented example");
        assert!(
            out.status.success(),
            "{page}:{line}: the example exited with {}:\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        if let Some(map) = map {
            assert_eq!(
                map.read_string().unwrap().content.trim_end(),
                "hello from Pascal",
                "{page}:{line}"
            );
            continue;
        }
        let stdout = String::from_utf8_lossy(&out.stdout);
        let prints = PRINTS
            .iter()
            .find(|(p, _)| *p == page)
            .unwrap_or_else(|| {
                panic!("{page}:{line}: writes no 'hello from Pascal' and PRINTS has no entry")
            })
            .1;
        for needle in prints {
            assert!(
                stdout.contains(needle),
                "{page}:{line}: the output lacks {needle:?}:\n{stdout}"
            );
        }
    }
}
