//! C and C++ programs built with the system compilers against the freshly
//! built library, run as real processes against Rust processes and the
//! `filemap` CLI, both ways.

#![cfg(target_os = "linux")]

mod common;

use filemap::TextExt;
use std::process::Command;

use common::*;
use filemap::FileMap;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main()
}

fn writer() -> std::path::PathBuf {
    build_c("cc", &[example("writer.c")], "writer", C_FLAGS)
}

fn reader() -> std::path::PathBuf {
    build_c("cc", &[example("reader.c")], "reader", C_FLAGS)
}

#[test]
fn boundary_cases_from_c() {
    let exe = build_c("cc", &[test_source("c/boundary.c")], "boundary", C_FLAGS);
    let name = unique("c-boundary");
    let _cleanup = Cleanup(name.clone());
    let out = Command::new(exe)
        .arg(&name)
        .output()
        .expect("running boundary");
    assert!(
        out.status.success(),
        "boundary.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

#[test]
fn a_c_thread_cancels_another_threads_wait_with_every_strategy() {
    let exe = build_c("cc", &[test_source("c/wait.c")], "wait", C_FLAGS);
    let name = unique("c-wait");
    let _cleanup = Cleanup(name.clone());
    let out = Command::new(exe).arg(&name).output().expect("running wait");
    assert!(
        out.status.success(),
        "wait.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}

/// The number after `prefix` in `line`.
fn number_after(line: &str, prefix: &str) -> usize {
    line.strip_prefix(prefix)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{line:?} is not {prefix:?} and a number"))
}

#[test]
fn a_c_region_grows_to_its_maximum_and_a_process_attached_before_reads_it() {
    let exe = build_c("cc", &[test_source("c/grow.c")], "grow", C_FLAGS);
    let name = unique("c-grow");
    let _cleanup = Cleanup(name.clone());
    let mut cmd = Command::new(&exe);
    cmd.arg("grow").arg(&name);
    let mut grower = Proc::spawn(cmd);
    grower.expect("created 4096 1048576");
    let mut cmd = Command::new(&exe);
    cmd.arg("attach").arg(&name);
    let attached = Proc::spawn(cmd);
    attached.expect("attached 4096 1048576");

    // Past the capacity: the region grows; the process attached before
    // reads the whole content and sees the same capacity.
    grower.send("write");
    let capacity = number_after(
        &grower.expect_line(|l| l.starts_with("grown "), "grown"),
        "grown ",
    );
    assert!((100_000..1 << 20).contains(&capacity), "{capacity}");
    attached.expect(&format!("read 100000 {capacity}"));
    let cli = run_cli(&["read", &name]);
    assert_eq!(cli.stdout.len(), 100_000);
    assert!(cli.stdout.starts_with(b"abcdefghijklmnopqrstuvwxyzabc"));

    // Past the maximum: refused with both numbers, the content kept (the
    // program checks it, and so does the CLI).
    grower.send("too large");
    grower.expect("refused 1048577 1048576");
    assert_eq!(run_cli(&["read", &name]).stdout, cli.stdout);

    // fm_update grows too.
    grower.send("update");
    let capacity = number_after(
        &grower.expect_line(|l| l.starts_with("updated "), "updated"),
        "updated ",
    );
    assert!((300_000..=1 << 20).contains(&capacity), "{capacity}");
    attached.expect(&format!("read 300000 {capacity}"));
    attached.wait_success();
    let map = FileMap::open(&name).unwrap();
    assert_eq!((map.capacity(), map.max_capacity()), (capacity, 1 << 20));
    assert_eq!(map.read().unwrap().content.len(), 300_000);
    grower.finish();
}

#[test]
fn c_writes_and_rust_and_the_cli_read() {
    let name = unique("c-writes");
    let _cleanup = Cleanup(name.clone());
    let mut cmd = Command::new(writer());
    cmd.arg(&name);
    let mut writer = Proc::spawn(cmd);
    writer.send("hello from C");
    writer.expect("published generation 1");

    let cli = run_cli(&["read", &name]);
    assert_eq!(
        String::from_utf8_lossy(&cli.stdout).trim_end(),
        "hello from C"
    );
    let rust = Proc::spawn(rust_child("read", &[&name]));
    rust.expect("@@ content hello from C");
    rust.wait_success();

    // Too large for the region: refused, and the old content stays.
    writer.send(&"x".repeat(5000));
    writer.send("second");
    writer.expect("published generation 2");
    let map = FileMap::open(&name).unwrap();
    let snap = map.read_string().unwrap();
    assert_eq!((snap.content.as_str(), snap.generation), ("second", 2));
    writer.finish();
}

#[test]
fn rust_and_the_cli_write_and_cs_watcher_fires() {
    let name = unique("c-watches");
    let _cleanup = Cleanup(name.clone());
    let mut cmd = Command::new(reader());
    cmd.arg(&name);
    let reader = Proc::spawn(cmd);
    reader.expect("ready");

    let rust = Proc::spawn(rust_child("write", &[&name, "from Rust"]));
    let pid = rust.child.id();
    rust.expect("@@ published 1");
    reader.expect(&format!("generation 1 from pid {pid}: from Rust"));
    rust.wait_success();

    run_cli(&["write", &name, "from the CLI"]);
    reader.expect_line(
        |l| l.starts_with("generation 2 from pid ") && l.ends_with(": from the CLI"),
        "for the CLI's write",
    );
    reader.finish();
}

#[test]
fn the_c_pair_talks() {
    let name = unique("c-pair");
    let _cleanup = Cleanup(name.clone());
    let mut cmd = Command::new(reader());
    cmd.arg(&name);
    let reader = Proc::spawn(cmd);
    reader.expect("ready");
    let mut cmd = Command::new(writer());
    cmd.arg(&name);
    let mut writer = Proc::spawn(cmd);
    let writer_pid = writer.child.id();
    for (i, line) in ["one", "two", "three"].iter().enumerate() {
        writer.send(line);
        writer.expect(&format!("published generation {}", i + 1));
        reader.expect(&format!(
            "generation {} from pid {writer_pid}: {line}",
            i + 1
        ));
    }
    writer.finish();
    reader.finish();
}

#[test]
fn cpp_and_rust_processes_count_without_losing_an_update() {
    let exe = build_c(
        "c++",
        &[test_source("cpp/counter.cpp")],
        "counter",
        CXX_FLAGS,
    );
    let name = unique("cpp-count");
    let _cleanup = Cleanup(name.clone());
    // Keep the region alive across the racers.
    let map = FileMap::builder(&name).capacity(64).open().unwrap();
    const N: u32 = 200;
    let racers: Vec<Proc> = (0..2)
        .map(|_| {
            let mut cmd = Command::new(&exe);
            cmd.arg(&name).arg(N.to_string());
            Proc::spawn(cmd)
        })
        .chain(std::iter::once(Proc::spawn(rust_child(
            "count",
            &[&name, &N.to_string()],
        ))))
        .collect();
    for racer in racers {
        racer.expect_line(|l| l == "done" || l == "@@ done", "done");
        racer.wait_success();
    }
    let snap = map.read_string().unwrap();
    assert_eq!(snap.content, (3 * N).to_string());
}

#[test]
fn pkg_config_file_gives_working_flags() {
    let pc_dir = out_dir().join("pkgconfig");
    std::fs::create_dir_all(&pc_dir).unwrap();
    let template =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/filemap.pc.in")).unwrap();
    std::fs::write(
        pc_dir.join("filemap.pc"),
        template
            .replace("@prefix@", "/nonexistent")
            .replace("@version@", env!("CARGO_PKG_VERSION")),
    )
    .unwrap();
    let out = Command::new("pkg-config")
        .env("PKG_CONFIG_PATH", &pc_dir)
        .arg(format!(
            "--define-variable=includedir={}",
            include_dir().display()
        ))
        .arg(format!("--define-variable=libdir={}", lib_dir().display()))
        .args(["--cflags", "--libs", "filemap"])
        .output()
        .expect("running pkg-config");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let flags = String::from_utf8(out.stdout).unwrap();
    assert!(flags.contains("-lfilemap_ffi"), "{flags}");
    // Link the boundary program statically through the flags.
    let exe = out_dir().join("boundary-static");
    let mut cmd = Command::new("cc");
    cmd.args(C_FLAGS)
        .arg(test_source("c/boundary.c"))
        .arg("-o")
        .arg(&exe)
        .args(flags.split_whitespace().map(|f| {
            // Static: the archive instead of the shared object.
            if f == "-lfilemap_ffi" {
                lib_dir().join("libfilemap_ffi.a").display().to_string()
            } else {
                f.to_owned()
            }
        }))
        .args(["-lpthread", "-ldl", "-lm"]);
    run_compiler(&mut cmd);
    let name = unique("c-static");
    let _cleanup = Cleanup(name.clone());
    let out = Command::new(&exe).arg(&name).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
}
