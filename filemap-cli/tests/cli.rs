//! The `filemap` command, run as a real process.

use filemap::ValueExt;
use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
#[cfg(target_os = "linux")]
use std::time::{Duration, Instant};

#[cfg(not(windows))]
use filemap_testkit::{await_condition, await_exit};
use filemap_testkit::{unique, Cleanup, STEP};

fn bin() -> Command {
    filemap_testkit::program(env!("CARGO_BIN_EXE_filemap"))
}

fn filemap(args: &[&str]) -> Output {
    bin().args(args).stdin(Stdio::null()).output().unwrap()
}

fn filemap_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

fn ok(out: &Output) -> String {
    assert!(
        out.status.success(),
        "status {:?}, stderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// A failure: exit status 1 (never a signal) and one sentence on stderr.
fn fails(out: &Output) -> String {
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8(out.stderr.clone()).unwrap();
    assert!(stderr.starts_with("filemap: "), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    stderr
}

/// Wait until process `pid` is attached to region `name`.
#[cfg(not(windows))]
fn await_attached(name: &str, pid: u32) {
    await_condition(&format!("process {pid} to attach to {name}"), || {
        ::filemap::admin::inspect(name).is_ok_and(|i| i.attached.contains(&pid))
    });
}

#[test]
fn write_then_read_round_trips_bytes_through_a_pipe() {
    let name = unique("rw");
    let _cleanup = Cleanup(name.clone());
    ok(&filemap(&["write", &name, "hello ✓"]));
    assert_eq!(ok(&filemap(&["read", &name])), "hello ✓");
    // Standard input, with control bytes passed through to a pipe untouched.
    ok(&filemap_stdin(&["write", &name], b"raw\x1b[2J\nbytes\x00"));
    assert_eq!(filemap(&["read", &name]).stdout, b"raw\x1b[2J\nbytes\x00");
    ok(&filemap_stdin(&["write", &name, "-"], b"dash"));
    let json: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["read", &name, "--json"]))).unwrap();
    assert_eq!(json["content"], "dash");
    assert_eq!(json["generation"], 3);
}

#[test]
fn regions_written_by_the_cli_persist_until_rm() {
    let name = unique("persist");
    let _cleanup = Cleanup(name.clone());
    ok(&filemap(&["write", &name, "kept", "--capacity", "100"]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["info", &name, "--json"]))).unwrap();
    assert_eq!(info["capacity"], 100);
    assert_eq!(info["len"], 4);
    assert_eq!(info["persistent"], true);
    assert_eq!(info["stale"], false);
    let text = ok(&filemap(&["info", &name]));
    assert!(text.contains("capacity:    100 bytes"), "{text}");

    let listed: serde_json::Value = serde_json::from_str(&ok(&filemap(&["ls", "--json"]))).unwrap();
    assert!(listed
        .as_array()
        .unwrap()
        .iter()
        .any(|r| r["name"] == name.as_str()));
    assert!(ok(&filemap(&["ls"])).contains(&name));

    ok(&filemap(&["rm", &name]));
    let err = fails(&filemap(&["read", &name]));
    assert!(err.contains("no region named"), "{err}");
    let err = fails(&filemap(&["rm", &name]));
    assert!(err.contains("no region named"), "{err}");
}

#[test]
fn bad_input_is_one_clear_sentence_and_keeps_the_content() {
    let name = unique("bad");
    let _cleanup = Cleanup(name.clone());
    let err = fails(&filemap(&["write", "a/b", "x"]));
    assert!(err.contains("path separator"), "{err}");
    let err = fails(&filemap(&["write", &name, "x", "--capacity", "31"]));
    assert!(err.contains("between 32 and"), "{err}");
    ok(&filemap(&["write", &name, "small", "--capacity", "32"]));
    let err = fails(&filemap(&["write", &name, &"y".repeat(33)]));
    assert!(
        err.contains("33 bytes does not fit the region's capacity of 32 bytes"),
        "{err}"
    );
    assert_eq!(ok(&filemap(&["read", &name])), "small");
}

// Linux only: pokes the region file in /dev/shm.
#[cfg(target_os = "linux")]
#[test]
fn a_corrupted_region_is_an_error_exit_not_a_crash() {
    let name = unique("corrupt");
    let _cleanup = Cleanup(name.clone());
    ok(&filemap(&["write", &name, "data"]));
    let path = ::filemap::admin::shm_path(&name);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[264..272].fill(0xff); // both buffer lengths (in each buffer's line)
    bytes[392..400].fill(0xff);
    std::fs::write(&path, &bytes).unwrap();
    let err = fails(&filemap(&["read", &name]));
    assert!(err.contains("corrupted") && err.contains("len"), "{err}");
    bytes[16..24].fill(0xff); // capacity
    std::fs::write(&path, &bytes).unwrap();
    for verb in ["read", "info", "write"] {
        let out = if verb == "write" {
            filemap(&[verb, &name, "x"])
        } else {
            filemap(&[verb, &name])
        };
        let err = fails(&out);
        assert!(err.contains("capacity"), "{verb}: {err}");
    }
    assert!(ok(&filemap(&["ls"])).contains("error"));
}

/// `filemap watch NAME ARGS` on a region that does not exist yet, once it
/// says it waits for it: the region's first content is then the first
/// change it prints, and every write after a printed line is printed (a
/// watch attached to an existing region may take its first look after a
/// write, and rightly never print that one). Its standard output's lines
/// come through the receiver.
fn watch_from_the_start(
    name: &str,
    args: &[&str],
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut watch = bin()
        .args(["watch", name])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            if tx.send(line.unwrap()).is_err() {
                break;
            }
        }
    });
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut waiting = String::new();
    stderr.read_line(&mut waiting).unwrap();
    assert!(waiting.contains("waiting for region"), "{waiting}");
    // Keep its standard error open: a watch that cannot print fails.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (watch, lines)
}

// Linux only: sends SIGINT with kill(1).
#[cfg(target_os = "linux")]
#[test]
fn watch_prints_each_change_escaped_and_leaves_cleanly_on_ctrl_c() {
    let name = unique("watch");
    let _cleanup = Cleanup(name.clone());
    let (mut watch, lines) = watch_from_the_start(&name, &[]);
    let writer = bin().args(["write", &name, "one"]).status().unwrap();
    assert!(writer.success());
    let line = lines.recv_timeout(STEP).unwrap();
    let fields: Vec<&str> = line.splitn(3, ' ').collect();
    assert_eq!(fields[0], "1");
    assert!(fields[1].parse::<u32>().unwrap() > 0);
    assert_eq!(fields[2], "one");

    ok(&filemap(&["write", &name, "two\nlines \x1b[31mred"]));
    let line = lines.recv_timeout(STEP).unwrap();
    assert!(line.ends_with(" two\\nlines \\u{1b}[31mred"), "{line:?}");

    let interrupted = Command::new("kill")
        .args(["-INT", &watch.id().to_string()])
        .status()
        .unwrap();
    assert!(interrupted.success());
    let status = await_exit(&mut watch, STEP).expect("watch ignored Ctrl-C");
    assert!(status.success(), "{status:?}");
    // `filemap write` made the region, so it outlives the watcher.
    assert_eq!(ok(&filemap(&["read", &name])), "two\nlines \x1b[31mred");
}

#[test]
fn watch_json_gives_one_object_per_change() {
    let name = unique("watchjson");
    let _cleanup = Cleanup(name.clone());
    let (mut watch, lines) = watch_from_the_start(&name, &["--json"]);
    let object = |line: String| serde_json::from_str::<serde_json::Value>(&line).unwrap();
    ok(&filemap(&["write", &name, "start"]));
    let first = object(lines.recv_timeout(STEP).unwrap());
    assert_eq!(
        (&first["content"], &first["generation"]),
        (&"start".into(), &1.into())
    );
    ok(&filemap(&["write", &name, "quote \" and \u{7}bell"]));
    let second = object(lines.recv_timeout(STEP).unwrap());
    assert_eq!(second["content"], "quote \" and \u{7}bell");
    assert_eq!(second["generation"], 2);
    watch.kill().unwrap();
    watch.wait().unwrap();
}

// Linux only: Linux stale regions keep their /dev/shm file.
#[cfg(target_os = "linux")]
#[test]
fn rm_stale_removes_regions_whose_users_died() {
    let name = unique("stale");
    let _cleanup = Cleanup(name.clone());
    // A non-persistent region whose last user, a watcher, is killed.
    let region = ::filemap::FileMap::open(&name).unwrap();
    let mut watch = bin()
        .args(["watch", &name])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    await_attached(&name, watch.id());
    drop(region);
    watch.kill().unwrap(); // SIGKILL: no clean-up
    watch.wait().unwrap();
    let info: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["info", &name, "--json"]))).unwrap();
    assert_eq!(info["stale"], true);
    assert!(ok(&filemap(&["ls"])).contains("stale"));
    let out = ok(&filemap(&["rm", "--stale"]));
    assert!(
        out.contains(&format!("removed stale region {name}")),
        "{out}"
    );
    assert!(!::filemap::admin::shm_path(&name).exists());
}

// Linux only: a Unix pseudo-terminal.
#[cfg(target_os = "linux")]
#[test]
fn read_on_a_terminal_escapes_control_characters() {
    use portable_pty::{native_pty_system, CommandBuilder, PtySize};
    let name = unique("tty");
    let _cleanup = Cleanup(name.clone());
    ok(&filemap_stdin(
        &["write", &name],
        b"clear\x1b[2J\x07 line1\nline2",
    ));
    let pair = native_pty_system()
        .openpty(PtySize {
            rows: 24,
            cols: 80,
            pixel_width: 0,
            pixel_height: 0,
        })
        .unwrap();
    // Through the emulator the tests run under, if any.
    let mut argv = filemap_testkit::runner();
    argv.push(env!("CARGO_BIN_EXE_filemap").into());
    let mut cmd = CommandBuilder::from_argv(argv);
    cmd.args(["read", &name]);
    let mut child = pair.slave.spawn_command(cmd).unwrap();
    drop(pair.slave);
    let mut reader = pair.master.try_clone_reader().unwrap();
    let collector = std::thread::spawn(move || {
        let mut out = Vec::new();
        let mut chunk = [0u8; 4096];
        // The master reads EIO once the child side closes.
        while let Ok(n) = std::io::Read::read(&mut reader, &mut chunk) {
            if n == 0 {
                break;
            }
            out.extend_from_slice(&chunk[..n]);
        }
        out
    });
    assert!(child.wait().unwrap().success());
    drop(pair.master);
    let out = collector.join().unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        !out.contains(&0x1b) && !out.contains(&0x07),
        "raw control bytes reached the terminal: {text:?}"
    );
    assert!(text.contains("clear\\u{1b}[2J\\u{7} line1"), "{text:?}");
    assert!(text.contains("line2"), "newlines are kept: {text:?}");
}

/// serde_json escapes only C0 controls: DEL, C1 controls (U+009B is a CSI
/// to terminals that decode C1 from UTF-8) and bidi overrides must not reach
/// a terminal from `--json` output either.
#[test]
fn json_output_escapes_del_c1_and_bidi_controls() {
    let name = unique("jsonc1");
    let _cleanup = Cleanup(name.clone());
    let hostile = "a\u{7f}b\u{9b}2Jc\u{9d}0;title\u{7}d\u{202e}e";
    ok(&filemap_stdin(&["write", &name], hostile.as_bytes()));
    let out = ok(&filemap(&["read", &name, "--json"]));
    let raw = |s: &str| s.chars().any(|c| c.is_control() || c == '\u{202e}');
    assert!(!raw(out.trim_end()), "raw control in {out:?}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["content"], hostile, "the same JSON value");
    assert!(
        out.contains(r"b\u009b2Jc\u009d0;title\u0007d\u202ee"),
        "{out}"
    );
}

/// Region names may hold bidi overrides (not control characters, so the
/// library accepts them): listings show them escaped, so a name cannot
/// show as another.
#[test]
fn listings_escape_bidi_overrides_in_names() {
    let name = format!("{}-\u{202e}txt.exe", unique("bidi"));
    let _cleanup = Cleanup(name.clone());
    ok(&filemap(&["write", &name, "x"]));
    let escaped = name.replace('\u{202e}', r"\u{202e}");
    let listing = ok(&filemap(&["ls"]));
    assert!(!listing.contains('\u{202e}'), "{listing}");
    assert!(listing.contains(&escaped), "{listing}");
    let info = ok(&filemap(&["info", &name]));
    assert!(!info.contains('\u{202e}'), "{info}");
    assert!(info.contains(&escaped), "{info}");
}

/// Run the CLI, failing the test (not hanging it) if it takes over `STEP`.
#[cfg(target_os = "linux")]
fn filemap_within_step(args: &[&str]) -> Output {
    let mut child = bin()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if await_exit(&mut child, STEP).is_none() {
        panic!("filemap {args:?} hung");
    }
    child.wait_with_output().unwrap()
}

// Linux only: /dev/shm is where a stranger can plant things.
#[cfg(target_os = "linux")]
#[test]
fn a_fifo_socket_or_directory_in_place_of_a_region_never_hangs_ls_info_or_rm() {
    let fifo = unique("fifo");
    let socket = unique("socket");
    let dir = unique("dir");
    let made = Command::new("mkfifo")
        .arg(::filemap::admin::shm_path(&fifo))
        .status()
        .unwrap();
    assert!(made.success());
    let _listener =
        std::os::unix::net::UnixListener::bind(::filemap::admin::shm_path(&socket)).unwrap();
    std::fs::create_dir(::filemap::admin::shm_path(&dir)).unwrap();
    let cleanup = || {
        let _ = std::fs::remove_file(::filemap::admin::shm_path(&fifo));
        let _ = std::fs::remove_file(::filemap::admin::shm_path(&socket));
        let _ = std::fs::remove_dir(::filemap::admin::shm_path(&dir));
    };
    let listing = ok(&filemap_within_step(&["ls"]));
    assert!(
        listing.contains(&fifo) && listing.contains("FIFO"),
        "{listing}"
    );
    for (name, what) in [(&fifo, "FIFO"), (&socket, "socket"), (&dir, "directory")] {
        let err = fails(&filemap_within_step(&["info", name]));
        assert!(
            err.contains("not a filemap region") && err.contains(what),
            "{err}"
        );
        let err = fails(&filemap_within_step(&["write", name, "x"]));
        assert!(err.contains(what), "{err}");
        let err = fails(&filemap_within_step(&["read", name]));
        assert!(err.contains(what), "{err}");
    }
    let out = ok(&filemap_within_step(&["rm", "--stale"]));
    assert!(!out.contains(&fifo), "{out}");
    assert!(
        ::filemap::admin::shm_path(&fifo).exists(),
        "not ours to remove"
    );
    cleanup();
}

#[test]
fn oversized_standard_input_is_refused_reading_little_and_creating_nothing() {
    let name = unique("bigin");
    let _cleanup = Cleanup(name.clone());
    let mut child = bin()
        .args(["write", &name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Feed up to 100 MB; the command must stop reading long before.
    let mut stdin = child.stdin.take().unwrap();
    let feeder = std::thread::spawn(move || {
        let chunk = vec![0u8; 64 << 10];
        let mut sent = 0usize;
        while sent < 100_000_000 {
            match stdin.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break, // the command closed its end
            }
        }
        sent
    });
    let out = child.wait_with_output().unwrap();
    let sent = feeder.join().unwrap();
    let err = fails(&out);
    assert!(err.contains("more than the 4096 bytes"), "{err}");
    assert!(err.contains("nothing was written"), "{err}");
    assert!(
        sent < 8 << 20,
        "the whole input was swallowed: {sent} bytes"
    );
    assert!(
        matches!(
            ::filemap::admin::inspect(&name),
            Err(::filemap::Error::NotFound { .. })
        ),
        "a failed write left a region behind"
    );

    // Into an existing region, the old content stays.
    ok(&filemap(&["write", &name, "kept", "--capacity", "64"]));
    let out = filemap_stdin(&["write", &name], &[b'x'; 65]);
    assert!(fails(&out).contains("more than the 64 bytes"));
    assert_eq!(ok(&filemap(&["read", &name])), "kept");
}

#[test]
fn sizes_take_units_on_every_command() {
    let name = unique("units");
    let _cleanup = Cleanup(name.clone());
    ok(&filemap(&["write", &name, "x", "--capacity", "64K"]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["info", &name, "--json"]))).unwrap();
    assert_eq!(info["capacity"], 65536);
    // Any case, as the bridge takes them.
    let other = unique("units-m");
    let _cleanup_other = Cleanup(other.clone());
    ok(&filemap(&["write", &other, "x", "--capacity", "1m"]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["info", &other, "--json"]))).unwrap();
    assert_eq!(info["capacity"], 1 << 20);
    // A fraction is a usage error that says so, and creates nothing.
    let third = unique("units-frac");
    let out = filemap(&["write", &third, "x", "--capacity", "1.5M"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"1.5M\" has a fraction"), "{err}");
    assert!(matches!(
        ::filemap::admin::inspect(&third),
        Err(::filemap::Error::NotFound { .. })
    ));
}

// Not Windows: there a removed region stays reachable by name while handles
// to it are open, so a watch goes on watching it (`FileMap::is_removed`).
#[cfg(not(windows))]
#[test]
fn watch_says_so_when_its_region_is_removed() {
    let name = unique("watchrm");
    let _cleanup = Cleanup(name.clone());
    ok(&filemap(&["write", &name, "here"]));
    let mut watch = bin()
        .args(["watch", &name])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    await_attached(&name, watch.id());
    ok(&filemap(&["rm", &name]));
    let status = await_exit(&mut watch, STEP).expect("watch stayed silent after rm");
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.contains("was removed"), "{err}");
}

/// A typed content (the format of filemap's value.rs) of `codec` (1:
/// MessagePack, 2: JSON) holding `payload` under tag "deep".
fn typed_content(codec: u8, payload: &[u8]) -> Vec<u8> {
    let mut content = b"FMV\x01".to_vec();
    content.push(codec);
    content.extend_from_slice(&4u16.to_le_bytes());
    content.extend_from_slice(b"deep");
    content.extend_from_slice(payload);
    content
}

/// MessagePack for `levels` arrays of one element around a nil.
fn nested_msgpack(levels: usize) -> Vec<u8> {
    let mut payload = vec![0x91; levels]; // fixarray of 1
    payload.push(0xc0); // nil
    payload
}

#[test]
fn read_json_refuses_a_typed_value_nested_past_what_json_readers_take() {
    let name = unique("deep");
    let _cleanup = Cleanup(name.clone());
    let map = ::filemap::FileMap::builder(&name)
        .persistent(true)
        .open()
        .unwrap();
    // The limit is where serde_json's default reader stops: 127 levels.
    let brackets = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    assert!(serde_json::from_str::<serde_json::Value>(&brackets(127)).is_ok());
    assert!(serde_json::from_str::<serde_json::Value>(&brackets(128)).is_err());

    // 126 levels print, inside the object: 127 in all, which reads back.
    map.write(&typed_content(1, &nested_msgpack(126))).unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["read", &name, "--json"]))).unwrap();
    assert_eq!(shown["type"], "deep");
    let mut inner = &shown["value"];
    for _ in 0..126 {
        inner = &inner[0];
    }
    assert!(inner.is_null(), "{inner}");

    // One more level, or the 1,023 rmp-serde itself decodes, in either
    // codec: an error naming the limit, nothing printed.
    for (codec, payload) in [
        (1, nested_msgpack(127)),
        (1, nested_msgpack(129)),
        (1, nested_msgpack(1023)),
        (2, brackets(127).into_bytes()),
    ] {
        map.write(&typed_content(codec, &payload)).unwrap();
        let out = filemap(&["read", &name, "--json"]);
        let err = fails(&out);
        assert!(out.stdout.is_empty(), "{out:?}");
        assert!(
            err.contains("nested deeper than 126 levels of arrays and maps"),
            "{err}"
        );
        assert!(err.contains(&format!("{name:?}")), "{err}");
    }
}

#[test]
fn read_json_shows_a_typed_value_decoded() {
    let name = unique("typed");
    let _cleanup = Cleanup(name.clone());
    let map = ::filemap::FileMap::builder(&name)
        .persistent(true)
        .open()
        .unwrap();
    let value = std::collections::BTreeMap::from([("speed", 12.5), ("heading", 271.0)]);
    map.write_value_as(::filemap::Codec::MessagePack, "cli.Telemetry", &value)
        .unwrap();
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["read", &name, "--json"]))).unwrap();
    assert_eq!(shown["type"], "cli.Telemetry");
    assert_eq!(shown["value"]["speed"], 12.5);
    assert_eq!(shown["value"]["heading"], 271.0);
    // Plain content has no "type".
    ok(&filemap(&["write", &name, "plain"]));
    let shown: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["read", &name, "--json"]))).unwrap();
    assert!(shown.get("type").is_none());
    assert_eq!(shown["content"], "plain");
}

/// How many times `pid`'s main thread went to sleep and woke up
/// (`voluntary_ctxt_switches` in procfs).
#[cfg(target_os = "linux")]
fn main_thread_wake_ups(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// Wake-ups of `pid`'s main thread over a second in which nothing happens
/// to its region. A poll every 100 ms makes ten; the region's wait may
/// wake once a second (its slice), the wait for a missing region never.
#[cfg(target_os = "linux")]
fn idle_wake_ups(pid: u32) -> u64 {
    let before = main_thread_wake_ups(pid);
    std::thread::sleep(Duration::from_secs(1));
    main_thread_wake_ups(pid) - before
}

// Linux only: the name is watched with inotify (elsewhere it is polled),
// and wake-ups are counted in procfs.
#[cfg(target_os = "linux")]
#[test]
fn an_idle_watch_sleeps_until_its_region_appears_and_ends_at_once_when_removed() {
    let name = unique("idlewatch");
    let _cleanup = Cleanup(name.clone());
    let mut watch = bin()
        .args(["watch", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(watch.stderr.take().unwrap());
    let mut waiting = String::new();
    stderr.read_line(&mut waiting).unwrap();
    assert!(waiting.contains("waiting for region"), "{waiting}");
    let missing = idle_wake_ups(watch.id());
    assert!(
        missing <= 1,
        "waiting for the region woke {missing} times in 1 s"
    );

    ok(&filemap(&["write", &name, "here"]));
    let mut stdout = BufReader::new(watch.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.ends_with(" here\n"), "{line:?}");
    let watching = idle_wake_ups(watch.id());
    assert!(watching <= 2, "watching woke {watching} times in 1 s");

    let removed = Instant::now();
    ::filemap::admin::remove(&name).unwrap();
    let status = loop {
        if let Some(status) = watch.try_wait().unwrap() {
            break status;
        }
        assert!(
            removed.elapsed() < Duration::from_secs(1),
            "watch still running 1 s after its region was removed"
        );
        std::thread::sleep(Duration::from_millis(1));
    };
    eprintln!("watch ended {:?} after the removal", removed.elapsed());
    assert_eq!(status.code(), Some(1));
    let mut err = String::new();
    std::io::Read::read_to_string(&mut stderr, &mut err).unwrap();
    assert!(err.contains("was removed"), "{err}");
}

#[test]
fn write_with_a_maximum_capacity_makes_a_region_that_grows_and_info_shows_both() {
    let name = unique("growcli");
    let _cleanup = Cleanup(name.clone());
    let big = "x".repeat(10_000);
    ok(&filemap(&[
        "write",
        &name,
        &big,
        "--capacity",
        "4K",
        "--max-capacity",
        "64K",
    ]));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["info", &name, "--json"]))).unwrap();
    assert_eq!(info["len"], 10_000);
    assert_eq!(info["capacity"], 12_288, "grown to whole pages");
    assert_eq!(info["max_capacity"], 65_536);
    let text = ok(&filemap(&["info", &name]));
    assert!(text.contains("max:         65536 bytes"), "{text}");
    // The existing region's maximum wins, and grows it further. (Larger
    // contents go through standard input: a Windows command line holds
    // at most 32,767 characters.)
    ok(&filemap_stdin(
        &["write", &name],
        "y".repeat(40_000).as_bytes(),
    ));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&filemap(&["info", &name, "--json"]))).unwrap();
    assert_eq!(
        (info["len"].clone(), info["capacity"].clone()),
        (40_000.into(), 40_960.into())
    );
    // One byte past the maximum: all of it is read (the command reads up
    // to one byte past the maximum), so the pipe never breaks.
    let err = fails(&filemap_stdin(
        &["write", &name],
        "z".repeat(65_537).as_bytes(),
    ));
    assert!(err.contains("65536"), "{err}");
    ok(&filemap(&["rm", &name]));
}
