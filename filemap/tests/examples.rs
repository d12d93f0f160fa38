//! The writer/reader example pair, run as the README says: two processes.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

fn example(name: &str) -> PathBuf {
    // target/<profile>/deps/examples-<hash> -> target/<profile>/examples/<name>
    let deps = std::env::current_exe().unwrap();
    let path = deps
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples")
        .join(name);
    if !path.exists() {
        // `cargo test` builds examples, but not when one test target is picked.
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args([
                "build",
                "-p",
                "filemap",
                "--example",
                "reader",
                "--example",
                "writer",
            ])
            .status()
            .unwrap();
        assert!(built.success());
    }
    path
}

#[test]
fn reader_prints_what_writer_publishes() {
    let name = format!("test-examples-{}", std::process::id());
    let mut reader = Command::new(example("reader"))
        .args([&name, "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");

    let mut writer = Command::new(example("writer"))
        .arg(&name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut input = writer.stdin.take().unwrap();
    let mut acks = BufReader::new(writer.stdout.take().unwrap()).lines();
    writeln!(input, "first line").unwrap();
    assert_eq!(acks.next().unwrap().unwrap(), "published generation 1");
    writeln!(input, "second line").unwrap();
    assert_eq!(acks.next().unwrap().unwrap(), "published generation 2");

    // The reader may coalesce the two changes into one; it ends on the last.
    let printed: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(!printed.is_empty() && printed.len() <= 2, "{printed:?}");
    assert!(
        printed
            .last()
            .unwrap()
            .starts_with("generation 2 from pid "),
        "{printed:?}"
    );
    assert!(
        printed.last().unwrap().ends_with(": second line"),
        "{printed:?}"
    );
    drop(input);
    assert!(writer.wait().unwrap().success());
    assert!(reader.wait().unwrap().success());
    assert!(
        !filemap::shm_path(&name).exists(),
        "the last process removed the region"
    );
}
