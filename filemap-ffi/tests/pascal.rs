//! The Pascal `TFileMap` unit (bindings/pascal), compiled with Free Pascal
//! and run as real processes against the `filemap` CLI and Rust processes.
//!
//! They need Free Pascal, so they are ignored by default: run them with
//! `cargo test -p filemap-ffi --test pascal -- --ignored --skip child_role`
//! (ci/test.sh does; ci/setup.sh installs fp-compiler and fp-units-rtl).
//! Run without `fpc`, they fail saying so.
//!
//! On Windows (Wine in CI) the same tests run the programs ci/windows.sh
//! compiled for win64 against filemap_ffi.dll, from the folder named in
//! `FILEMAP_PASCAL_BIN` (Free Pascal cannot run inside Windows here);
//! without it they fail naming that variable. Windows adds
//! `onchange_arrives_through_a_windows_message_loop`.

#![cfg(any(target_os = "linux", windows))]

mod common;

use filemap::TextExt;
use std::path::{Path, PathBuf};
use std::process::Command;
#[cfg(not(windows))]
use std::sync::{Mutex, OnceLock};

use common::*;
use filemap::FileMap;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main()
}

fn pascal_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../bindings/pascal")
}

/// `fpc`; fails the test, naming the packages, when it is not installed.
#[cfg(windows)]
fn fpc() -> &'static str {
    ""
}

/// `fpc`; fails the test, naming the packages, when it is not installed.
#[cfg(not(windows))]
fn fpc() -> &'static str {
    static FOUND: OnceLock<bool> = OnceLock::new();
    let found = *FOUND.get_or_init(|| Command::new("fpc").arg("-iV").output().is_ok());
    assert!(
        found,
        "fpc (Free Pascal) is missing: install fp-compiler and fp-units-rtl"
    );
    "fpc"
}

/// The program ci/windows.sh compiled for win64.
#[cfg(windows)]
fn build_pascal(_fpc: &str, source: &Path) -> PathBuf {
    let dir = std::env::var("FILEMAP_PASCAL_BIN").expect(
        "FILEMAP_PASCAL_BIN is not set: ci/windows.sh builds the Pascal programs and sets it",
    );
    // A Unix path from the script: Wine shows the root as drive Z:.
    let dir = if dir.starts_with('/') {
        format!("Z:{dir}")
    } else {
        dir
    };
    let exe = Path::new(&dir)
        .join(source.file_stem().unwrap())
        .with_extension("exe");
    assert!(exe.exists(), "{} is missing", exe.display());
    exe
}

/// Compile a Pascal program (once per run) against the unit and library.
#[cfg(not(windows))]
fn build_pascal(fpc: &str, source: &Path) -> PathBuf {
    static LOCK: Mutex<()> = Mutex::new(());
    let _one_at_a_time = LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let out = out_dir().join("pascal");
    let units = out.join("units");
    std::fs::create_dir_all(&units).unwrap();
    let exe = out.join(source.file_stem().unwrap());
    static BUILT: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if built.contains(&exe) {
        return exe;
    }
    let lib = lib_dir();
    let mut cmd = Command::new(fpc);
    cmd.arg("-vw")
        .arg("-Sew")
        .arg(format!("-Fu{}", pascal_dir().display()))
        .arg(format!("-FU{}", units.display()))
        .arg(format!("-FE{}", out.display()))
        .arg(format!("-Fl{}", lib.display()))
        .arg(format!("-k-rpath={}", lib.display()))
        .arg(source);
    run_compiler(&mut cmd);
    built.push(exe.clone());
    exe
}

fn fmtest(fpc: &str) -> Proc {
    Proc::spawn(Command::new(build_pascal(
        fpc,
        &pascal_dir().join("tests/fmtest.pas"),
    )))
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn pascal_writes_and_the_cli_reads_the_lines() {
    let fpc = fpc();
    let name = unique("pas-writes");
    let _cleanup = Cleanup(name.clone());
    let mut pas = fmtest(fpc);
    pas.send(&format!("open {name}"));
    pas.expect("opened existed=0");
    pas.send("write first line|second line|third");
    pas.expect_line(|l| l.starts_with("written "), "written");
    let out = run_cli(&["read", &name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "first line\nsecond line\nthird"
    );
    // A Rust process sees the same.
    let rust = Proc::spawn(rust_child("read", &[&name]));
    rust.expect("@@ content first line");
    rust.wait_success();
    pas.finish();
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn cli_write_fires_onchange_but_own_writes_do_not() {
    let fpc = fpc();
    let name = unique("pas-onchange");
    let _cleanup = Cleanup(name.clone());
    let mut a = fmtest(fpc);
    a.send(&format!("open {name}"));
    a.expect("opened existed=0");
    let mut b = fmtest(fpc);
    b.send(&format!("open {name}"));
    b.expect("opened existed=1");

    run_cli(&["write", &name, "from\nthe CLI"]);
    for p in [&mut a, &mut b] {
        p.send("wait");
        p.expect("changed from|the CLI");
        p.send("read");
        p.expect("lines from|the CLI");
    }

    // B writes: A's OnChange fires with B's lines.
    b.send("write b's own");
    b.expect_line(|l| l.starts_with("written "), "written");
    a.send("wait");
    a.expect("changed b's own");
    // B's own write fired nothing in B: the next change B reports is the
    // CLI's, not its own.
    run_cli(&["write", &name, "after"]);
    b.send("wait");
    let first = b.expect_line(|l| l.starts_with("changed ") || l == "timeout", "a change");
    assert_eq!(first, "changed after");
    a.finish();
    b.finish();
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn closemap_cancels_the_watch_threads_wait_at_once() {
    let fpc = fpc();
    let name = unique("pas-close");
    let _cleanup = Cleanup(name.clone());
    let mut pas = fmtest(fpc);
    // The median of nine: a watch thread that only looked for Terminate
    // between waits of 100 ms would take 50 ms on average.
    let mut took: Vec<u64> = (0..9)
        .map(|_| {
            pas.send(&format!("open {name}"));
            pas.expect_line(|l| l.starts_with("opened "), "opened");
            pas.send("close");
            let line = pas.expect_line(|l| l.starts_with("closed "), "closed");
            line["closed ".len()..].parse().expect("milliseconds")
        })
        .collect();
    took.sort_unstable();
    assert!(took[4] < 20, "CloseMap took {took:?} ms");
    pas.finish();
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn too_large_writemap_raises_and_keeps_the_content() {
    let fpc = fpc();
    let name = unique("pas-toolarge");
    let _cleanup = Cleanup(name.clone());
    let mut pas = fmtest(fpc);
    pas.send(&format!("open {name} 64"));
    pas.expect("opened existed=0");
    pas.send("write small|content");
    pas.expect_line(|l| l.starts_with("written "), "written");
    pas.send(&format!("write {}", "x".repeat(100)));
    let raised = pas.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(raised.starts_with("raised -12 "), "{raised}");
    assert!(raised.contains("100") && raised.contains("64"), "{raised}");
    let out = run_cli(&["read", &name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "small\ncontent"
    );

    // An over-long name raises too, and Size below the minimum.
    let mut other = fmtest(fpc);
    other.send(&format!("open {}", "n".repeat(300)));
    let raised = other.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(raised.starts_with("raised -10 "), "{raised}");
    other.send(&format!("open {name}-small 16"));
    let raised = other.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(raised.starts_with("raised -11 "), "{raised}");
    other.finish();
    pas.finish();
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn an_error_the_unit_raises_itself_carries_no_stale_library_message() {
    let fpc = fpc();
    let name = unique("pas-local");
    let _cleanup = Cleanup(name.clone());
    let mut pas = fmtest(fpc);
    // A library error first: its message is the library's.
    pas.send(&format!("open {}", "n".repeat(300)));
    let library = pas.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(library.starts_with("raised -10 "), "{library}");
    assert!(library.contains("region name has no NUL"), "{library}");
    // Then errors the unit raises without calling the library: Size below
    // the minimum, ReadMap while closed. Neither repeats the library's
    // message from before.
    pas.send(&format!("open {name} 16"));
    let local = pas.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(local.starts_with("raised -11 "), "{local}");
    assert!(local.contains("below the minimum"), "{local}");
    assert!(
        !local.contains("region name") && !local.contains("nnnn"),
        "{local}"
    );
    pas.send("read");
    let local = pas.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(local.starts_with("raised -1 "), "{local}");
    assert!(local.contains("the map is not open"), "{local}");
    assert!(!local.contains("region name"), "{local}");
    pas.finish();
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn lines_past_size_grow_the_map_within_maxcapacity_for_a_process_attached_before() {
    let fpc = fpc();
    let name = unique("pas-grow");
    let _cleanup = Cleanup(name.clone());
    let mut writer = fmtest(fpc);
    writer.send(&format!("open {name} 64 8192"));
    writer.expect("opened existed=0");
    writer.send("caps");
    writer.expect("capacity 64 max 8192");
    // Attached before the growth: another Pascal process, with the
    // unit's defaults (its Size and MaxCapacity do not matter).
    let mut reader = fmtest(fpc);
    reader.send(&format!("open {name}"));
    reader.expect("opened existed=1");
    reader.send("caps");
    reader.expect("capacity 64 max 8192");

    // 20 lines of 49 bytes and their LFs: 999 bytes, past Size.
    let lines: Vec<String> = (0..20)
        .map(|i| format!("{i:02}{}", "g".repeat(47)))
        .collect();
    writer.send(&format!("write {}", lines.join("|")));
    writer.expect_line(|l| l.starts_with("written "), "written");
    writer.send("caps");
    let caps = writer.expect_line(|l| l.starts_with("capacity "), "caps");
    let grown: usize = caps
        .strip_prefix("capacity ")
        .and_then(|c| c.strip_suffix(" max 8192"))
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("{caps:?}"));
    assert!((999..=8192).contains(&grown), "{caps}");
    reader.send("wait");
    reader.expect(&format!("changed {}", lines.join("|")));
    reader.send("caps");
    reader.expect(&caps);
    let out = run_cli(&["read", &name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        lines.join("\n")
    );

    // Past MaxCapacity: EFileMapError with both numbers, the lines kept.
    writer.send(&format!("write {}", "x".repeat(9000)));
    let raised = writer.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(raised.starts_with("raised -12 "), "{raised}");
    assert!(
        raised.contains("9000") && raised.contains("8192"),
        "{raised}"
    );
    assert_eq!(run_cli(&["read", &name]).stdout, out.stdout);
    reader.send("read");
    reader.expect(&format!("lines {}", lines.join("|")));

    // A maximum below Size is refused, naming both.
    let mut other = fmtest(fpc);
    other.send(&format!("open {name}-below 4096 100"));
    let raised = other.expect_line(|l| l.starts_with("raised "), "an exception");
    assert!(raised.starts_with("raised -11 "), "{raised}");
    assert!(
        raised.contains("100") && raised.contains("4096"),
        "{raised}"
    );
    other.finish();
    reader.finish();
    writer.finish();
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn two_pascal_and_one_rust_process_count_exactly() {
    let fpc = fpc();
    let name = unique("pas-count");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(64).open().unwrap();
    map.write_str("0").unwrap();
    const N: u32 = 300;
    let mut pascals: Vec<Proc> = (0..2).map(|_| fmtest(fpc)).collect();
    for p in &mut pascals {
        p.send(&format!("open {name}"));
        p.expect("opened existed=1");
    }
    for p in &mut pascals {
        p.send(&format!("count {N}"));
    }
    let rust = Proc::spawn(rust_child("count", &[&name, &N.to_string()]));
    for p in pascals {
        p.expect("counted");
        p.finish();
    }
    rust.expect("@@ done");
    rust.wait_success();
    assert_eq!(map.read_string().unwrap().content, (3 * N).to_string());
}

#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn memo_demo_shares_typed_lines_and_loads_its_initial_file() {
    let fpc = fpc();
    let exe = build_pascal(fpc, &pascal_dir().join("memo.pas"));
    let name = unique("pas-memo");
    let _cleanup = Cleanup(name.clone());
    let initial = out_dir().join(format!("{name}.txt"));
    std::fs::write(&initial, "loaded one\nloaded two\n").unwrap();
    let mut cmd = Command::new(&exe);
    cmd.arg(&name).arg(&initial);
    let mut first = Proc::spawn(cmd);
    first.expect_line(|l| l.starts_with("--- created "), "created");
    first.expect("loaded two");
    let mut cmd = Command::new(&exe);
    cmd.arg(&name).arg("/nonexistent");
    let second = Proc::spawn(cmd);
    second.expect_line(|l| l.starts_with("--- attached to "), "attached");
    second.expect("loaded two");
    first.send("typed in the first");
    second.expect_line(
        |l| l.starts_with("--- changed by another instance"),
        "the change",
    );
    second.expect("typed in the first");
    let out = run_cli(&["read", &name]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end(),
        "loaded one\nloaded two\ntyped in the first"
    );
    first.finish();
    second.finish();
    let _ = std::fs::remove_file(initial);
}

/// A GUI program's path: OnChange queued by the unit's watch thread
/// reaches the main thread through a hidden window's message loop
/// (WakeMainThread posts to it, its window procedure runs
/// CheckSynchronize), not through a console loop.
#[cfg(windows)]
#[test]
#[ignore = "needs fpc (Free Pascal)"]
fn onchange_arrives_through_a_windows_message_loop() {
    let fpc = fpc();
    let exe = build_pascal(fpc, &pascal_dir().join("tests/fmgui.pas"));
    let name = unique("pas-gui");
    let _cleanup = Cleanup(name.clone());
    let mut cmd = Command::new(exe);
    cmd.arg(&name).arg("3");
    let gui = Proc::spawn(cmd);
    gui.expect("opened existed=0");
    for text in ["one", "two\nlines", "three"] {
        run_cli(&["write", &name, text]);
        gui.expect(&format!("changed main=1 {}", text.replace('\n', "|")));
    }
    gui.expect("done");
    gui.wait_success();
}
