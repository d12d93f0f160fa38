//! The writer/reader example pair, run as the README says: two processes.

#![cfg(target_os = "linux")]

use std::io::{BufRead, BufReader, Lines, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

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

/// A reader example that said "ready" and a writer example, both on
/// region `name`, with the reader's lines, the writer's input and its acks.
struct Pair {
    reader: Child,
    lines: Lines<BufReader<ChildStdout>>,
    writer: Child,
    input: ChildStdin,
    acks: Lines<BufReader<ChildStdout>>,
}

/// Start `reader` (exiting after generation `last`), wait for it to be
/// ready, then start `writer`.
fn start_pair(reader: &str, writer: &str, name: &str, last: &str) -> Pair {
    let mut reader = filemap_testkit::program(example(reader))
        .args([name, last])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(reader.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "ready");
    let mut writer = filemap_testkit::program(example(writer))
        .arg(name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let input = writer.stdin.take().unwrap();
    let acks = BufReader::new(writer.stdout.take().unwrap()).lines();
    Pair {
        reader,
        lines,
        writer,
        input,
        acks,
    }
}

#[test]
fn reader_prints_what_writer_publishes() {
    let name = format!("test-examples-{}", std::process::id());
    let Pair {
        mut reader,
        lines,
        mut writer,
        mut input,
        mut acks,
    } = start_pair("reader", "writer", &name, "2");
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
        !filemap::admin::shm_path(&name).exists(),
        "the last process removed the region"
    );
}

/// The typed pair (feature `serde`, which `cargo test --workspace` turns on
/// through the CLI): a struct crosses, and other content is a typed error.
#[cfg(feature = "serde")]
#[test]
fn typed_reader_decodes_what_typed_writer_publishes() {
    let name = format!("test-typed-examples-{}", std::process::id());
    let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "-p", "filemap", "--features", "serde"])
        .args(["--example", "typed_reader", "--example", "typed_writer"])
        .status()
        .unwrap();
    assert!(built.success());
    let keep = filemap::FileMap::open(&name).unwrap();
    let Pair {
        mut reader,
        mut lines,
        mut writer,
        mut input,
        mut acks,
    } = start_pair("typed_reader", "typed_writer", &name, "3");
    writeln!(input, "1.5 -2 90 dock one").unwrap();
    assert_eq!(acks.next().unwrap().unwrap(), "published generation 1");
    let first = lines.next().unwrap().unwrap();
    assert_eq!(
        first,
        "generation 1: x=1.5 y=-2 heading=90 label=\"dock one\""
    );
    keep.write(b"not a pose").unwrap();
    let second = lines.next().unwrap().unwrap();
    assert!(second.contains("does not hold a typed value"), "{second}");
    writeln!(input, "0 0 0").unwrap();
    assert_eq!(acks.next().unwrap().unwrap(), "published generation 3");
    drop(input);
    assert!(writer.wait().unwrap().success());
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert_eq!(rest, ["generation 3: x=0 y=0 heading=0 label=\"\""]);
    assert!(reader.wait().unwrap().success());
}
