//! `filemap legacy`, the gateway to legacy TFileMap programs, run as a real
//! process under Windows (Wine in CI) against a legacy peer: a Free Pascal
//! program speaking the old component's protocol exactly
//! (filemap-legacy/tests/peer/legacypeer.pas). ci/windows.sh builds it
//! with a win64 RTL built from fpc-source and names it in
//! `FILEMAP_LEGACY_PEER`, and its win32 build in `FILEMAP_LEGACY_PEER32`;
//! without them these tests fail naming the variable (Free Pascal cannot
//! run from inside Windows here).
//!
//! Off Windows only the refusal is checked.

use std::process::{Command, Stdio};

/// The CLI under test, through the emulator of `FILEMAP_TEST_RUNNER` if
/// one is set (the aarch64 leg).
fn bin() -> Command {
    filemap_testkit::program(env!("CARGO_BIN_EXE_filemap"))
}

#[cfg(not(windows))]
#[test]
fn off_windows_the_gateway_says_windows_only() {
    let out = bin()
        .args(["legacy", "x"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Windows only"), "{err}");
}

#[cfg(windows)]
mod windows {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::process::{Child, ChildStdin};
    use std::sync::mpsc::{self, Receiver};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    use filemap::{FileMap, TextExt};
    use filemap_testkit::{await_condition, unique, Cleanup};

    /// Generous bound for one step under Wine; tests fail, not hang.
    const STEP: Duration = Duration::from_secs(30);

    /// The legacy peer built for win64 (ci/windows.sh names it in
    /// `FILEMAP_LEGACY_PEER`).
    fn peer_exe() -> String {
        exe_from("FILEMAP_LEGACY_PEER")
    }

    /// The same peer built for win32, as most Delphi programs are
    /// (`FILEMAP_LEGACY_PEER32`); Wine runs it in its WoW64 mode, as 64-bit
    /// Windows does. Checked to be a 32-bit program.
    fn peer32_exe() -> String {
        let path = exe_from("FILEMAP_LEGACY_PEER32");
        let pe = std::fs::read(&path).unwrap();
        let at = u32::from_le_bytes(pe[0x3c..0x40].try_into().unwrap()) as usize;
        assert_eq!(&pe[at..at + 4], b"PE\0\0", "{path} is not a PE file");
        let machine = u16::from_le_bytes([pe[at + 4], pe[at + 5]]);
        assert_eq!(machine, 0x14c, "{path} is not an i386 program");
        path
    }

    fn exe_from(var: &str) -> String {
        let path = std::env::var(var).unwrap_or_else(|_| {
            panic!("{var} is not set: ci/windows.sh builds the legacy peer and sets it")
        });
        // A Unix path from the script: Wine shows the root as drive Z:.
        let path = if path.starts_with('/') {
            format!("Z:{path}")
        } else {
            path
        };
        assert!(
            std::path::Path::new(&path).exists(),
            "legacy peer {path} missing"
        );
        path
    }

    /// A process whose output lines are awaited with a deadline.
    struct Proc {
        child: Child,
        stdin: Option<ChildStdin>,
        lines: Receiver<String>,
        seen: Arc<Mutex<Vec<String>>>,
        what: String,
    }

    impl Proc {
        fn spawn(mut cmd: Command, what: &str, stderr: bool) -> Proc {
            cmd.stdin(Stdio::piped());
            if stderr {
                cmd.stdout(Stdio::null()).stderr(Stdio::piped());
            } else {
                cmd.stdout(Stdio::piped()).stderr(Stdio::inherit());
            }
            let mut child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {what}: {e}"));
            let out: Box<dyn std::io::Read + Send> = if stderr {
                Box::new(child.stderr.take().unwrap())
            } else {
                Box::new(child.stdout.take().unwrap())
            };
            let (tx, rx) = mpsc::channel();
            let seen = Arc::new(Mutex::new(Vec::new()));
            let seen2 = Arc::clone(&seen);
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    seen2.lock().unwrap().push(line.clone());
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
            Proc {
                stdin: child.stdin.take(),
                child,
                lines: rx,
                seen,
                what: what.to_owned(),
            }
        }

        fn send(&mut self, line: &str) {
            let stdin = self.stdin.as_mut().expect("stdin open");
            writeln!(stdin, "{line}").unwrap();
            stdin.flush().unwrap();
        }

        /// The next line satisfying `want`, within `limit`.
        fn expect_within(
            &self,
            limit: Duration,
            want: impl Fn(&str) -> bool,
            desc: &str,
        ) -> String {
            let deadline = Instant::now() + limit;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.lines.recv_timeout(left) {
                    Ok(line) if want(&line) => return line,
                    Ok(_) => {}
                    Err(_) => panic!(
                        "{}: no line {desc} within {limit:?}; lines so far: {:?}",
                        self.what,
                        self.seen.lock().unwrap()
                    ),
                }
            }
        }

        fn expect(&self, exact: &str) -> String {
            self.expect_within(STEP, |l| l == exact, &format!("{exact:?}"))
        }

        fn expect_prefix(&self, prefix: &str) -> String {
            self.expect_within(STEP, |l| l.starts_with(prefix), &format!("{prefix:?}..."))
        }

        fn seen(&self) -> Vec<String> {
            self.seen.lock().unwrap().clone()
        }
    }

    impl Drop for Proc {
        fn drop(&mut self) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }

    /// A legacy peer with the map open: `open NAME SIZE ENCODING CODEPAGE`.
    fn peer(name: &str, size: usize, encoding: &str, codepage: u32, existed: bool) -> Proc {
        peer_of(&peer_exe(), name, size, encoding, codepage, existed)
    }

    /// A legacy peer from `exe` with the map open.
    fn peer_of(
        exe: &str,
        name: &str,
        size: usize,
        encoding: &str,
        codepage: u32,
        existed: bool,
    ) -> Proc {
        let mut p = Proc::spawn(Command::new(exe), "legacy peer", false);
        p.expect("ready");
        p.send(&format!("open {name} {size} {encoding} {codepage}"));
        p.expect(&format!("opened existed={}", u8::from(existed)));
        p
    }

    /// `filemap legacy NAME ARGS...`, once its window listens.
    fn gateway(name: &str, args: &[&str]) -> Proc {
        let mut cmd = bin();
        cmd.arg("legacy").arg(name).args(args);
        let p = Proc::spawn(cmd, "filemap legacy", true);
        p.expect_prefix("filemap legacy: ready:");
        p
    }

    fn cli(args: &[&str]) -> String {
        let out = bin().args(args).stdin(Stdio::null()).output().unwrap();
        assert!(
            out.status.success(),
            "filemap {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn await_region(name: &str, want: &str) {
        let map = FileMap::builder(name).open_only().open().unwrap();
        await_condition(&format!("region {name} holds {want:?}"), || {
            map.read_string()
                .map(|s| s.content == want)
                .unwrap_or(false)
        });
    }

    #[test]
    fn legacy_writes_and_filemap_read_sees_the_lines() {
        legacy_writes_and_filemap_read_sees_the_lines_with(&peer_exe());
    }

    #[test]
    fn a_32_bit_legacy_program_writes_and_filemap_read_sees_the_lines() {
        legacy_writes_and_filemap_read_sees_the_lines_with(&peer32_exe());
    }

    fn legacy_writes_and_filemap_read_sees_the_lines_with(exe: &str) {
        let name = unique("lg-read");
        let _c = Cleanup(name.clone());
        let _gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer_of(exe, &name, 4096, "ansi", 1252, true);
        p.send("write first line|second|third");
        p.expect_prefix("written ");
        await_region(&name, "first line\nsecond\nthird");
        assert_eq!(
            cli(&["read", &name]).trim_end(),
            "first line\nsecond\nthird"
        );
    }

    #[test]
    fn filemap_write_reaches_the_legacy_window_and_no_echo() {
        filemap_write_reaches_the_legacy_window_and_no_echo_with(&peer_exe());
    }

    #[test]
    fn filemap_write_reaches_a_32_bit_legacy_window_and_no_echo() {
        filemap_write_reaches_the_legacy_window_and_no_echo_with(&peer32_exe());
    }

    fn filemap_write_reaches_the_legacy_window_and_no_echo_with(exe: &str) {
        let name = unique("lg-write");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer_of(exe, &name, 4096, "ansi", 1252, true);
        cli(&["write", &name, "from\nthe CLI"]);
        p.expect("changed from|the CLI");
        p.send("read");
        p.expect("text from|the CLI");
        // The peer's own write is not echoed back to it, and the region
        // gets exactly one publish for it.
        let map = FileMap::builder(&name).open_only().open().unwrap();
        let before = map.generation();
        p.send("write mine");
        p.expect_prefix("written ");
        await_region(&name, "mine");
        // A later CLI write is the next thing the peer hears: nothing
        // came back for its own write in between.
        cli(&["write", &name, "later"]);
        p.expect_prefix("changed ");
        let changes: Vec<_> = p
            .seen()
            .into_iter()
            .filter(|l| l.starts_with("changed "))
            .collect();
        assert_eq!(changes, ["changed from|the CLI", "changed later"]);
        assert_eq!(map.generation(), before + 2, "one publish per change");
        // The gateway logs each copy after posting it: wait for both lines
        // (the CLI's two writes) rather than count what has come so far.
        for _ in 0..2 {
            gw.expect_within(STEP, |l| l.contains("copied"), "copied ...");
        }
    }

    #[test]
    fn ansi_text_in_a_code_page_both_ways() {
        let name = unique("lg-cp");
        let _c = Cleanup(name.clone());
        let _gw = gateway(&name, &["--encoding", "ansi", "--codepage", "1251"]);
        let mut p = peer(&name, 4096, "ansi", 1251, true);
        p.send("write Привет|мир");
        p.expect_prefix("written ");
        await_region(&name, "Привет\nмир");
        cli(&["write", &name, "ёлка\nзима"]);
        p.expect("changed ёлка|зима");
    }

    #[test]
    fn utf16_text_both_ways() {
        utf16_text_both_ways_with(&peer_exe());
    }

    /// A Delphi 2009+ program built for 32 bits: the commonest legacy kind.
    #[test]
    fn utf16_text_both_ways_with_a_32_bit_legacy_program() {
        utf16_text_both_ways_with(&peer32_exe());
    }

    fn utf16_text_both_ways_with(exe: &str) {
        let name = unique("lg-u16");
        let _c = Cleanup(name.clone());
        let _gw = gateway(&name, &["--encoding", "utf16"]);
        let mut p = peer_of(exe, &name, 4096, "utf16", 0, true);
        p.send("write 日本語|naïve €");
        p.expect_prefix("written ");
        await_region(&name, "日本語\nnaïve €");
        cli(&["write", &name, "ψ\n😀 wide"]);
        p.expect("changed ψ|😀 wide");
    }

    #[test]
    fn the_components_half_copy_in_utf16_is_tolerated() {
        let name = unique("lg-quirk");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--encoding", "auto"]);
        // The unchanged component in a UTF-16 build copies StrLen+1 bytes:
        // "abcdef\r\n" is 8 characters, so 9 bytes, 4 characters and the
        // low byte of the fifth, on a fresh (zeroed) map.
        let mut p = peer(&name, 4096, "utf16quirk", 0, true);
        p.send("write abcdef");
        p.expect("written 9");
        await_region(&name, "abcde");
        // The gateway goes on, and writes whole UTF-16 text back.
        cli(&["write", &name, "whole"]);
        p.expect("changed whole");
        assert!(
            !gw.seen().iter().any(|l| l.contains("error")),
            "{:?}",
            gw.seen()
        );
    }

    #[test]
    fn auto_detects_ansi_and_utf16() {
        let ansi = unique("lg-auto-a");
        let _c1 = Cleanup(ansi.clone());
        let _g1 = gateway(&ansi, &["--encoding", "auto", "--codepage", "1252"]);
        let mut a = peer(&ansi, 4096, "ansi", 1252, true);
        a.send("write café|crème");
        a.expect_prefix("written ");
        await_region(&ansi, "café\ncrème");
        // Written back in the encoding it read: ANSI.
        cli(&["write", &ansi, "déjà vu"]);
        a.expect("changed déjà vu");

        let wide = unique("lg-auto-w");
        let _c2 = Cleanup(wide.clone());
        let _g2 = gateway(&wide, &["--encoding", "auto", "--codepage", "1252"]);
        let mut w = peer(&wide, 4096, "utf16", 0, true);
        w.send("write café|日本");
        w.expect_prefix("written ");
        await_region(&wide, "café\n日本");
        cli(&["write", &wide, "déjà 日本"]);
        w.expect("changed déjà 日本");
    }

    #[test]
    fn a_hung_legacy_peer_does_not_stall_the_gateway() {
        let name = unique("lg-hung");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--codepage", "1252"]);
        // Owns a top-level window and stops pumping its messages.
        let mut hung = peer(&name, 4096, "ansi", 1252, true);
        hung.send("hang 60000");
        hung.expect("hanging");
        let mut live = peer(&name, 4096, "ansi", 1252, true);
        // A hung window blocks a plain SendMessage broadcast for ~20 s
        // under Wine; the gateway's copies must all come through at once.
        // Timed from each write's end: starting a program under Wine takes
        // seconds on a loaded machine, and is not what is measured.
        let mut slowest = Duration::ZERO;
        for i in 0..5 {
            cli(&["write", &name, &format!("change {i}")]);
            let written = Instant::now();
            live.expect(&format!("changed change {i}"));
            slowest = slowest.max(written.elapsed());
        }
        assert!(
            slowest < Duration::from_secs(5),
            "a copy past a hung peer took {slowest:?}"
        );
        // A legacy writer's own SendMessage broadcast waits for the hung
        // window (the old protocol's flaw, not the gateway's): once that
        // peer is gone, legacy writes come through again.
        drop(hung);
        live.send("write after");
        live.expect_prefix("written ");
        await_region(&name, "after");
        assert!(
            !gw.seen().iter().any(|l| l.contains("error")),
            "{:?}",
            gw.seen()
        );
    }

    #[test]
    fn legacy_started_after_the_gateway_gets_the_text() {
        let name = unique("lg-after");
        let _c = Cleanup(name.clone());
        cli(&["write", &name, "already\nhere"]);
        let gw = gateway(&name, &["--codepage", "1252"]);
        assert!(
            gw.seen()[0].contains("(created, 4096 bytes used)"),
            "{:?}",
            gw.seen()
        );
        let mut p = peer(&name, 4096, "ansi", 1252, true);
        p.send("read");
        p.expect("text already|here");
        p.send("write and|back");
        p.expect_prefix("written ");
        await_region(&name, "and\nback");
    }

    #[test]
    fn gateway_started_after_legacy_takes_its_text() {
        let name = unique("lg-before");
        let _c = Cleanup(name.clone());
        let mut p = peer(&name, 4096, "ansi", 1252, false);
        p.send("write legacy|first");
        p.expect_prefix("written ");
        let gw = gateway(&name, &["--codepage", "1252"]);
        assert!(
            gw.seen()[0].contains("(found, 4096 bytes used)"),
            "{:?}",
            gw.seen()
        );
        await_region(&name, "legacy\nfirst");
        cli(&["write", &name, "then\nfilemap"]);
        p.expect("changed then|filemap");
    }

    #[test]
    fn oversized_text_is_refused_on_both_sides_and_content_kept() {
        // filemap -> legacy: a 64-byte legacy map.
        let name = unique("lg-big");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--size", "64", "--codepage", "1252"]);
        let mut p = peer(&name, 64, "ansi", 1252, true);
        p.send("write small");
        p.expect_prefix("written ");
        await_region(&name, "small");
        let big = "x".repeat(100);
        cli(&["write", &name, &big]);
        let refused = gw.expect_prefix("filemap legacy: refused");
        assert!(
            refused.contains("needs 103 bytes in the legacy map, which has 64"),
            "{refused}"
        );
        p.send("read");
        p.expect("text small");
        assert_eq!(cli(&["read", &name]).trim_end(), big);

        // legacy -> filemap: a region smaller than the legacy text.
        let name = unique("lg-big2");
        let _c2 = Cleanup(name.clone());
        cli(&["write", &name, "--capacity", "64", "tiny"]);
        let gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer(&name, 4096, "ansi", 1252, true);
        p.send("read");
        p.expect("text tiny");
        let long = "y".repeat(200);
        p.send(&format!("write {long}"));
        p.expect_prefix("written ");
        let refused = gw.expect_prefix("filemap legacy: refused");
        assert!(
            refused.contains("needs 200 bytes in the region"),
            "{refused}"
        );
        assert_eq!(cli(&["read", &name]).trim_end(), "tiny");
        p.send("read");
        p.expect(&format!("text {long}"));
    }

    #[test]
    fn at_start_a_held_legacy_mutex_does_not_let_the_region_overwrite_the_maps_text() {
        let name = unique("lg-held");
        let _c = Cleanup(name.clone());
        cli(&["write", &name, "region\ntext"]);
        let mut p = peer(&name, 4096, "ansi", 1252, false);
        p.send("write legacy|text");
        p.expect_prefix("written ");
        p.send("hold");
        p.expect("holding");
        // The gateway's first read of the map times out; the map's text
        // must still win once the mutex is free.
        let gw = gateway(&name, &["--codepage", "1252"]);
        gw.expect_prefix("filemap legacy: the legacy mutex stayed held");
        p.send("release");
        p.expect("released");
        await_region(&name, "legacy\ntext");
        p.send("read");
        p.expect("text legacy|text");
    }

    #[test]
    fn long_ansi_text_in_a_two_byte_code_page_fits_the_region_the_gateway_creates() {
        // 3,200 Cyrillic letters: 3,203 bytes in cp1251 with CR LF and the
        // terminator, within the 4096-byte map; 6,400 bytes in UTF-8, more
        // than 1.5 times the map.
        let name = unique("lg-cyr");
        let _c = Cleanup(name.clone());
        let _gw = gateway(&name, &["--encoding", "ansi", "--codepage", "1251"]);
        let mut p = peer(&name, 4096, "ansi", 1251, true);
        let long = "ж".repeat(3200);
        p.send(&format!("write {long}"));
        p.expect("written 3203");
        await_region(&name, &long);
    }

    #[test]
    fn a_region_that_may_grow_takes_legacy_text_past_its_capacity() {
        let name = unique("lg-grow");
        let _c = Cleanup(name.clone());
        cli(&[
            "write",
            &name,
            "--capacity",
            "64",
            "--max-capacity",
            "8K",
            "tiny",
        ]);
        let gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer(&name, 4096, "ansi", 1252, true);
        p.send("read");
        p.expect("text tiny");
        let long = "g".repeat(2000);
        p.send(&format!("write {long}"));
        p.expect_prefix("written ");
        await_region(&name, &long);
        let map = FileMap::builder(&name).open_only().open().unwrap();
        assert!(map.capacity() >= 2000, "capacity {}", map.capacity());
        assert!(
            !gw.seen().iter().any(|l| l.contains("refused")),
            "{:?}",
            gw.seen()
        );
    }

    #[test]
    fn region_text_with_a_nul_is_refused_and_the_map_keeps_its_text() {
        let name = unique("lg-nul");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer(&name, 4096, "ansi", 1252, true);
        p.send("write kept");
        p.expect_prefix("written ");
        await_region(&name, "kept");
        let map = FileMap::builder(&name).open_only().open().unwrap();
        map.write(b"a\0b\nc").unwrap();
        let line = gw.expect_prefix("filemap legacy: the region's text has a NUL");
        assert!(line.contains("at byte 1"), "{line}");
        p.send("read");
        p.expect("text kept");
        // The gateway goes on: the next text gets through.
        map.write(b"after").unwrap();
        p.expect("changed after");
    }

    #[test]
    fn a_publish_that_times_out_on_the_region_lock_is_tried_again() {
        let name = unique("lg-retry");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer(&name, 4096, "ansi", 1252, true);
        let map = FileMap::builder(&name).open_only().open().unwrap();
        // Held past the gateway's region lock timeout (1 s): its publish
        // fails, and is said to be retried once however many tries fail.
        let guard = map.lock().unwrap();
        p.send("write while|locked");
        p.expect_prefix("written ");
        gw.expect_within(
            STEP,
            |l| l.contains("publishing to the region") && l.contains("retrying"),
            "a failed publish, retried",
        );
        // Held on for 3 s more (the stimulus, not a wait for anything): the
        // gateway tries again about every 1.2 s meanwhile.
        std::thread::sleep(Duration::from_secs(3));
        drop(guard);
        await_region(&name, "while\nlocked");
        let retrying = gw.seen().iter().filter(|l| l.contains("retrying")).count();
        assert_eq!(retrying, 1, "{:?}", gw.seen());
    }

    #[test]
    fn a_code_page_windows_does_not_have_is_refused_at_start() {
        let name = unique("lg-cp0");
        let _c = Cleanup(name.clone());
        let mut gw = Proc::spawn(
            {
                let mut cmd = bin();
                cmd.args(["legacy", &name, "--codepage", "12345"]);
                cmd
            },
            "filemap legacy",
            true,
        );
        gw.expect_within(
            STEP,
            |l| l.contains("code page 12345 is not installed"),
            "the code page refused",
        );
        // Bounded, so that a gateway that starts anyway fails the test
        // instead of hanging it.
        let deadline = Instant::now() + STEP;
        let status = loop {
            if let Some(status) = gw.child.try_wait().unwrap() {
                break status;
            }
            assert!(Instant::now() < deadline, "the gateway did not exit");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(!status.success());
    }

    #[test]
    fn a_legacy_writer_sending_while_it_holds_the_mutex_is_answered_at_once() {
        // Some variants of the component broadcast with SendMessage before
        // they release the mutex: the gateway, waiting for that mutex to
        // copy a region change, must still answer, or the legacy program
        // hangs until the gateway's wait times out.
        let name = unique("lg-send");
        let _c = Cleanup(name.clone());
        let gw = gateway(&name, &["--codepage", "1252"]);
        let mut p = peer(&name, 4096, "ansi", 1252, true);
        p.send("hold");
        p.expect("holding");
        cli(&["write", &name, "while\nheld"]);
        // The gateway now waits for the mutex in 1 s spells, 200 ms apart:
        // 1.5 s of sends meets at least one spell.
        gw.expect_prefix("filemap legacy: the legacy mutex stayed held");
        p.send("sendgw 30 50");
        let line = p.expect_prefix("sent max=");
        let longest: u64 = line["sent max=".len()..].parse().unwrap();
        assert!(longest < 400, "a send waited {longest} ms for the gateway");
        p.send("release");
        p.expect("released");
        p.expect("changed while|held");
    }
}
