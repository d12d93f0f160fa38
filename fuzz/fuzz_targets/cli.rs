//! The `filemap` command's arguments and standard input, in-process: its
//! own clap definitions and verbs (compiled from filemap-cli's source
//! files; `memo`, `watch` and `legacy`, which run until stopped, are
//! parsed only).
//!
//! Input: arguments (NUL-separated) `0xff` the content of region `v` (so
//! `read --json` decodes what the fuzzer chose) `0xff` standard input.
//! Before each input the private /dev/shm holds region `a` ("previous",
//! capacity 64) and region `v`.
//!
//! Checks: clap's refusal or the verb's result, never a panic; what
//! `--json` prints is JSON; `write` either publishes the whole content or
//! leaves the previous content (and creates no region on failure).

#![no_main]
#![allow(dead_code)]

#[path = "../../filemap-cli/src/cli.rs"]
mod cli;

#[path = "cli_command.rs"]
mod command;

use std::ffi::OsString;
use std::io::{BufRead, Read, Seek, Write};
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use cli::{Cli, Command};
use filemap::{admin, FileMap};
use filemap_fuzz::{private_shm, wipe_private_shm, Counting, Heap};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

const PREVIOUS: &[u8] = b"previous";

fn memfd() -> std::fs::File {
    // SAFETY: a valid NUL-terminated name; the fd is owned by the File.
    unsafe {
        let fd = libc::memfd_create(c"fuzz".as_ptr(), 0);
        assert!(fd >= 0, "memfd_create");
        std::fs::File::from_raw_fd(fd)
    }
}

fn redirect(file: &std::fs::File, to: i32) {
    // SAFETY: both descriptors are open; dup2 replaces `to`.
    assert!(unsafe { libc::dup2(file.as_raw_fd(), to) } >= 0, "dup2");
}

fuzz_target!(|data: &[u8]| {
    if !private_shm() {
        eprintln!(
            "the cli target needs a private /dev/shm (run it as root): `rm --stale` cleans it"
        );
        std::process::exit(2);
    }
    wipe_private_shm();
    let mut parts = data.splitn(3, |b| *b == 0xff);
    let args = parts.next().unwrap_or_default();
    let v_content = parts.next().unwrap_or_default();
    let stdin = parts.next().unwrap_or_default();

    {
        let a = FileMap::builder("a")
            .capacity(64)
            .persistent(true)
            .open()
            .expect("a");
        a.write(PREVIOUS).expect("a's content");
        let v = FileMap::builder("v")
            .capacity(4096)
            .persistent(true)
            .open()
            .expect("v");
        if v_content.len() <= 4096 {
            v.write(v_content).expect("v's content");
        }
    }

    // Standard input: the rest of the input. Whatever std buffered from
    // the previous one is drained first.
    {
        let mut lock = std::io::stdin().lock();
        loop {
            let n = lock.fill_buf().map_or(0, <[u8]>::len);
            if n == 0 {
                break;
            }
            lock.consume(n);
        }
    }
    let mut input = memfd();
    input.write_all(stdin).expect("stdin");
    input.rewind().expect("rewind");
    redirect(&input, 0);
    let mut output = memfd();
    redirect(&output, 1);

    let argv: Vec<OsString> = std::iter::once(OsString::from("filemap"))
        .chain(
            args.split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .take(16)
                .map(|a| OsString::from_vec(a.to_vec())),
        )
        .collect();

    let heap = Heap::start();
    let cli = match Cli::try_parse_from(&argv) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.render().to_string();
            return;
        }
    };
    match cli.command {
        Command::Write(args) => {
            let name = args.region.name.clone();
            let existed = admin::shm_path(&name).exists();
            let before = if existed { read_content(&name) } else { None };
            let expected = match args.text.as_deref() {
                None | Some("-") => stdin.to_vec(),
                Some(t) => t.as_bytes().to_vec(),
            };
            // A region this command creates `--transient` goes with its
            // handle: nothing is left to read back.
            let transient = args.transient && !existed;
            match command::write::run(args) {
                Ok(()) if transient => {}
                Ok(()) => {
                    assert_eq!(
                        read_content(&name).as_deref(),
                        Some(&expected[..]),
                        "`write` succeeded but {name:?} does not hold the content"
                    );
                }
                Err(e) => {
                    let _ = format!("{e:#}");
                    if existed {
                        assert_eq!(
                            read_content(&name),
                            before,
                            "a failed `write` changed {name:?}"
                        );
                    } else if admin::validate_name(&name).is_ok() {
                        assert!(
                            !admin::shm_path(&name).exists(),
                            "a failed `write` left region {name:?} behind: {e:#}"
                        );
                    }
                }
            }
        }
        Command::Read(args) => {
            let json = args.json;
            if command::read::run(args).is_ok() && json {
                json_lines(&mut output, "read --json");
            }
        }
        Command::Info(args) => {
            let json = args.json;
            if command::info::run(args).is_ok() && json {
                json_lines(&mut output, "info --json");
            }
        }
        Command::Ls(args) => {
            let json = args.json;
            if command::ls::run(args).is_ok() && json {
                json_lines(&mut output, "ls --json");
            }
        }
        Command::Rm(args) => {
            let _ = command::rm::run(args);
        }
        // Run until stopped (`legacy` is Windows only): parsed only.
        Command::Memo(_) | Command::Watch(_) | Command::Legacy(_) => {}
    }
    heap.check(16 * data.len() + (2 << 20), "cli");
});

fn read_content(name: &str) -> Option<Vec<u8>> {
    let map = FileMap::builder(name).open_only().open().ok()?;
    map.read().ok().map(|s| s.content)
}

/// Every line printed is JSON serde_json reads.
fn json_lines(output: &mut std::fs::File, what: &str) {
    std::io::stdout().flush().expect("flush");
    let mut printed = String::new();
    output.rewind().expect("rewind");
    output.read_to_string(&mut printed).expect("UTF-8 output");
    for line in printed.lines() {
        if let Err(e) = serde_json::from_str::<serde_json::Value>(line) {
            panic!("`{what}` printed what serde_json cannot read ({e}): {line}");
        }
    }
}
