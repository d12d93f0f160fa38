//! The C example pair on Windows (under Wine in CI): writer.exe and
//! reader.exe built with mingw against filemap_ffi.dll, run as real
//! processes with a Rust process. ci/windows.sh builds them and names
//! their folder in `FILEMAP_FFI_C_BIN`; without it this test fails naming
//! that variable (it cannot compile C from inside Windows here).

#![cfg(windows)]

mod common;

use std::path::PathBuf;
use std::process::Command;

use common::*;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main()
}

fn bin_dir() -> PathBuf {
    let dir = std::env::var_os("FILEMAP_FFI_C_BIN")
        .expect("FILEMAP_FFI_C_BIN is not set: ci/windows.sh builds the C pair and sets it");
    let mut dir = dir.into_string().expect("FILEMAP_FFI_C_BIN is UTF-8");
    // A Unix path from the script: Wine shows the root as drive Z:.
    if dir.starts_with('/') {
        dir.insert_str(0, "Z:");
    }
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("writer.exe").exists() && dir.join("filemap_ffi.dll").exists(),
        "{} lacks writer.exe or filemap_ffi.dll",
        dir.display()
    );
    dir
}

#[test]
fn the_c_pair_and_rust_talk_on_windows() {
    let bin = bin_dir();
    let name = unique("win-c-pair");
    let _cleanup = Cleanup(name.clone());
    let mut cmd = Command::new(bin.join("reader.exe"));
    cmd.arg(&name);
    let reader = Proc::spawn(cmd);
    reader.expect("ready");

    // Rust writes, C's watcher fires.
    let rust = Proc::spawn(rust_child("write", &[&name, "from Rust"]));
    let rust_pid = rust.child.id();
    rust.expect("@@ published 1");
    reader.expect(&format!("generation 1 from pid {rust_pid}: from Rust"));
    rust.wait_success();

    // C writes, C's watcher fires and Rust reads.
    let mut cmd = Command::new(bin.join("writer.exe"));
    cmd.arg(&name);
    let mut writer = Proc::spawn(cmd);
    let writer_pid = writer.child.id();
    writer.send("hello from C");
    writer.expect("published generation 2");
    reader.expect(&format!("generation 2 from pid {writer_pid}: hello from C"));
    let rust = Proc::spawn(rust_child("read", &[&name]));
    rust.expect("@@ content hello from C");
    rust.wait_success();
    writer.finish();
    reader.finish();
}
