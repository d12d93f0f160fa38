//! End to end: real `filemap memo` processes in pseudo-terminals, their
//! screens parsed by `vt100`, typed into as a person would.
//!
//! Every wait polls a parsed screen (woken by each chunk of output) until a
//! deadline; nothing sleeps to synchronise. Each test uses its own region
//! name and checks the region is gone when the last memo quits.
//!
//! The latency measurement is ignored by default; run it with
//! `cargo test -p filemap-cli --test memo -- --ignored --nocapture latency`.

#![cfg(target_os = "linux")]

use filemap::TextExt;
use std::io::{Read, Write};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use filemap_testkit::{unique, RemoveFiles};
use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

const ROWS: u16 = 24;
const COLS: u16 = 100;
const DEADLINE: Duration = Duration::from_secs(15);

const F4: &str = "\x1bOS";
const F5: &str = "\x1b[15~";
const F7: &str = "\x1b[18~";
const CTRL_Q: &str = "\x11";
const CTRL_END: &str = "\x1b[1;5F";

/// What the reader thread shares with the test.
struct Shared {
    parser: vt100::Parser,
    /// The pty closed: the memo exited.
    closed: bool,
}

/// One `filemap memo` in a pseudo-terminal.
struct Memo {
    label: &'static str,
    screen: Arc<(Mutex<Shared>, Condvar)>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    // Dropping the master hangs the terminal up; keep it while the memo runs.
    _master: Box<dyn MasterPty + Send>,
}

impl Memo {
    fn spawn(label: &'static str, args: &[&str]) -> Memo {
        let pair = native_pty_system()
            .openpty(PtySize {
                rows: ROWS,
                cols: COLS,
                pixel_width: 0,
                pixel_height: 0,
            })
            .expect("open a pty");
        // Through the emulator the tests run under, if any.
        let mut argv = filemap_testkit::runner();
        argv.push(env!("CARGO_BIN_EXE_filemap").into());
        let mut cmd = CommandBuilder::from_argv(argv);
        cmd.arg("memo");
        cmd.args(args);
        cmd.env("TERM", "xterm-256color");
        let child = pair.slave.spawn_command(cmd).expect("spawn filemap memo");
        drop(pair.slave);
        let screen = Arc::new((
            Mutex::new(Shared {
                parser: vt100::Parser::new(ROWS, COLS, 0),
                closed: false,
            }),
            Condvar::new(),
        ));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let shared = Arc::clone(&screen);
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                let n = reader.read(&mut buf).unwrap_or(0);
                let (lock, wake) = &*shared;
                let mut s = lock.lock().unwrap();
                if n == 0 {
                    s.closed = true;
                } else {
                    s.parser.process(&buf[..n]);
                }
                wake.notify_all();
                if n == 0 {
                    return;
                }
            }
        });
        let writer = pair.master.take_writer().expect("pty writer");
        Memo {
            label,
            screen,
            writer,
            child,
            _master: pair.master,
        }
    }

    fn pid(&self) -> u32 {
        self.child.process_id().expect("child pid")
    }

    fn send(&mut self, keys: &str) {
        self.writer
            .write_all(keys.as_bytes())
            .expect("type into the pty");
        self.writer.flush().expect("flush the pty");
    }

    /// The screen as text, rows joined by newlines.
    fn text(&self) -> String {
        self.screen.0.lock().unwrap().parser.screen().contents()
    }

    /// Wait until the screen satisfies `done`; panic with the screen after
    /// the deadline.
    fn wait_until(&self, what: &str, done: impl Fn(&vt100::Screen) -> bool) -> String {
        self.wait_shared(what, |s| done(s.parser.screen()))
    }

    fn wait_shared(&self, what: &str, done: impl Fn(&Shared) -> bool) -> String {
        let deadline = Instant::now() + DEADLINE;
        let (lock, wake) = &*self.screen;
        let mut s = lock.lock().unwrap();
        loop {
            if done(&s) {
                return s.parser.screen().contents();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || s.closed {
                panic!(
                    "{}: no {what} within {DEADLINE:?} (closed: {}); screen:\n{}",
                    self.label,
                    s.closed,
                    s.parser.screen().contents()
                );
            }
            s = wake.wait_timeout(s, left).unwrap().0;
        }
    }

    /// Wait for the first whole frame (the help line is drawn last).
    fn wait_ready(&self) -> String {
        self.wait_for("^Q quit")
    }

    fn wait_for(&self, text: &str) -> String {
        self.wait_until(&format!("{text:?}"), |s| s.contents().contains(text))
    }

    /// Wait for the process to end and for its last output to be parsed.
    fn wait_exit(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                assert!(status.success(), "{}: exited with {status:?}", self.label);
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{}: still running:\n{}",
                self.label,
                self.text()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        self.wait_shared("end of output", |s| s.closed);
    }

    fn alternate_screen(&self) -> bool {
        self.screen
            .0
            .lock()
            .unwrap()
            .parser
            .screen()
            .alternate_screen()
    }
}

impl Drop for Memo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn assert_gone(name: &str) {
    let path = filemap::admin::shm_path(name);
    assert!(
        !path.exists(),
        "{} still exists after the last memo quit",
        path.display()
    );
}

/// The number after "gen " in the status line.
fn shown_generation(screen: &str) -> Option<u64> {
    let at = screen.find("│ gen ")? + "│ gen ".len();
    screen[at..].split_whitespace().next()?.parse().ok()
}

#[test]
fn two_memos_share_text_live() {
    let name = unique("share");
    let mut a = Memo::spawn("A", &[&name]);
    let screen = a.wait_ready();
    assert!(
        screen.contains("[ ] exists already"),
        "A created the region:\n{screen}"
    );
    assert!(screen.contains("[x] auto-sync"));
    assert!(
        screen.contains("F2 open") && screen.contains("^Q quit"),
        "help line:\n{screen}"
    );

    let mut b = Memo::spawn("B", &[&name]);
    assert!(b.wait_ready().contains("[x] exists already"));
    a.wait_for("2 attached");

    // Typing in A shows in B, non-ASCII included.
    a.send("hello 世界 🙂");
    b.wait_for("hello 世界 🙂");

    // Auto-sync off: A's edits stay local until write.
    a.send(F7);
    a.wait_for("[ ] auto-sync");
    a.send(" draft");
    a.wait_for("hello 世界 🙂 draft");
    let shared = filemap::FileMap::builder(&name).open_only().open().unwrap();
    assert_eq!(shared.read_string().unwrap().content, "hello 世界 🙂");
    let generation = shared.generation();
    drop(shared);
    let screen = b.wait_until("B up to date", |s| {
        shown_generation(&s.contents()) == Some(generation)
    });
    assert!(
        !screen.contains("draft"),
        "B must not see A's local draft:\n{screen}"
    );

    a.send(F5);
    b.wait_for("hello 世界 🙂 draft");

    // A remote change while auto-sync is off is announced, not applied.
    b.send(CTRL_END);
    b.send(" +b");
    b.wait_for("draft +b");
    let screen = a.wait_for(&format!("changed by pid {}", b.pid()));
    assert!(
        !screen.contains("+b"),
        "A keeps its text until read:\n{screen}"
    );
    a.send(F4);
    a.wait_for("draft +b");

    // A quits at once (B keeps the text); B, the last, asks first.
    a.send(CTRL_Q);
    a.wait_exit();
    assert!(!a.alternate_screen(), "A left the alternate screen");
    b.wait_for("1 attached");
    b.send(CTRL_Q);
    b.wait_for("Quit?");
    b.send(CTRL_Q);
    b.wait_exit();
    assert_gone(&name);
}

#[test]
fn init_file_starts_a_new_memo_and_loses_to_an_existing_one() {
    let name = unique("init");
    let dir = std::env::temp_dir();
    let first = dir.join(format!("{name}-first.txt"));
    let second = dir.join(format!("{name}-second.txt"));
    std::fs::write(&first, "line one\nline two").unwrap();
    std::fs::write(&second, "other file").unwrap();
    let cleanup = RemoveFiles(vec![first.clone(), second.clone()]);

    let mut a = Memo::spawn("A", &[&name, "--init", first.to_str().unwrap()]);
    a.wait_ready();
    a.wait_for("line two");
    let mut b = Memo::spawn("B", &[&name, "--init", second.to_str().unwrap()]);
    let screen = b.wait_ready();
    assert!(screen.contains("[x] exists already"), "{screen}");
    assert!(
        screen.contains("line one") && screen.contains("line two"),
        "shared text wins:\n{screen}"
    );
    assert!(!screen.contains("other file"));
    assert!(
        screen.contains("--init"),
        "B says why --init was not used:\n{screen}"
    );

    a.send(CTRL_Q);
    a.wait_exit();
    b.send(CTRL_Q);
    b.wait_for("Quit?");
    b.send(CTRL_Q);
    b.wait_exit();
    assert_gone(&name);
    drop(cleanup);
}

#[test]
fn typing_past_capacity_keeps_both_texts() {
    let name = unique("full");
    // A region that cannot grow (a memo makes its own regions growable).
    let fixed = filemap::FileMap::builder(&name)
        .capacity(32)
        .open()
        .unwrap();
    let mut a = Memo::spawn("A", &[&name, "--capacity", "32"]);
    a.wait_for("0/32 B");
    a.send("0123456789012345678901234567890");
    a.wait_for("31/32 B");
    a.send("AB");
    let screen = a.wait_for("Too large: 33 B > capacity 32 B");
    assert!(
        screen.contains("0123456789012345678901234567890AB"),
        "local text kept:\n{screen}"
    );
    assert!(screen.contains("unpublished"));
    let shared = filemap::FileMap::builder(&name).open_only().open().unwrap();
    assert_eq!(
        shared.read_string().unwrap().content,
        "0123456789012345678901234567890"
    );
    drop(shared);

    // Back under capacity: published again.
    a.send("\x7f\x7f");
    a.wait_until("the message to clear", |s| {
        !s.contents().contains("Too large")
    });
    // Not the last user (the test holds the region): no question.
    a.send(CTRL_Q);
    a.wait_exit();
    drop(fixed);
    assert_gone(&name);
}

#[test]
fn sigterm_restores_the_terminal_and_removes_the_region() {
    let name = unique("term");
    let mut a = Memo::spawn("A", &[&name]);
    a.wait_until("the alternate screen", |s| {
        s.alternate_screen() && s.contents().contains("[x] open")
    });
    a.send("unsaved work");
    a.wait_for("unsaved work");
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &a.pid().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    a.wait_exit();
    assert!(!a.alternate_screen(), "terminal restored");
    assert_gone(&name);
}

/// Keystroke in A to character on B's screen, through two terminals and the
/// region: prints the median of 60 samples.
#[test]
#[ignore = "measurement; run with --ignored --nocapture"]
fn latency_keystroke_to_other_screen() {
    const SAMPLES: usize = 60;
    let name = unique("latency");
    let mut a = Memo::spawn("A", &[&name]);
    a.wait_ready();
    let mut b = Memo::spawn("B", &[&name]);
    assert!(b.wait_ready().contains("[x] exists already"));
    let mut typed = String::new();
    let mut samples = Vec::with_capacity(SAMPLES);
    for i in 0..SAMPLES {
        let c = char::from(b'a' + (i % 26) as u8);
        typed.push(c);
        let started = Instant::now();
        a.send(c.encode_utf8(&mut [0; 4]));
        // The first text row, exactly: a lone "a" is all over the screen.
        let row = format!("│{typed} ");
        b.wait_until(&format!("{row:?}"), |s| {
            s.rows(0, COLS).nth(1).is_some_and(|r| r.starts_with(&row))
        });
        samples.push(started.elapsed());
    }
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let median = samples[SAMPLES / 2];
    println!(
        "keystroke in A -> shown in B, {SAMPLES} samples: median {:.2} ms, p90 {:.2} ms, min {:.2} ms, max {:.2} ms",
        ms(median),
        ms(samples[SAMPLES * 9 / 10]),
        ms(samples[0]),
        ms(samples[SAMPLES - 1]),
    );
    assert!(
        median < Duration::from_millis(50),
        "median {median:?} over the 50 ms target"
    );
    a.send(CTRL_Q);
    a.wait_exit();
    b.send(CTRL_Q);
    b.wait_for("Quit?");
    b.send(CTRL_Q);
    b.wait_exit();
    assert_gone(&name);
}

#[test]
fn a_memo_grows_its_region_as_its_text_does() {
    let name = unique("memogrow");
    let mut a = Memo::spawn("A", &[&name, "--capacity", "32"]);
    a.wait_for("0/16777216 B");
    a.send("0123456789012345678901234567890123456789");
    a.wait_for("40/16777216 B");
    let shared = filemap::FileMap::builder(&name).open_only().open().unwrap();
    a_wait_content(&shared, "0123456789012345678901234567890123456789");
    assert!(shared.capacity() >= 40);
    drop(shared);
    a.send(CTRL_Q);
    a.wait_for("Quit?");
    a.send(CTRL_Q);
    a.wait_exit();
    assert_gone(&name);
}

/// Wait until `map` holds `text`.
fn a_wait_content(map: &filemap::FileMap, text: &str) {
    filemap_testkit::await_condition("the memo to publish", || {
        map.read_string().is_ok_and(|s| s.content == text)
    });
}

/// Bytes that are not UTF-8, from another process, show as U+FFFD; typing
/// must not publish the U+FFFD over them (lossy decoding would silently
/// rewrite a line nobody edited).
#[test]
fn undecodable_bytes_are_not_rewritten_by_an_edit() {
    let name = unique("badutf8");
    let hostile: &[u8] = b"kept \xff\xfe bytes\nsecond";
    let shared = filemap::FileMap::builder(&name).open().unwrap();
    shared.write(hostile).unwrap();
    let mut a = Memo::spawn("A", &[&name]);
    a.wait_ready();
    let screen = a.wait_for("Not valid UTF-8");
    assert!(screen.contains("[ ] auto-sync"), "{screen}");
    a.send(CTRL_END);
    a.send("Z");
    a.wait_for("secondZ");
    assert_eq!(&shared.read().unwrap().content[..], hostile);

    // The same for bad bytes published while the memo runs with auto-sync.
    a.send(F4);
    a.send(F7);
    a.wait_for("[x] auto-sync");
    shared.write(b"fine now").unwrap();
    a.wait_for("fine now");
    let later: &[u8] = b"late \xc3 byte";
    shared.write(later).unwrap();
    a.wait_for("Not valid UTF-8");
    a.send("Y");
    a.wait_for("Y byte");
    assert_eq!(&shared.read().unwrap().content[..], later);

    // F5 publishes by choice.
    a.send(F5);
    let expected = "late \u{fffd}Y byte";
    a_wait_content(&shared, expected);
    a.send(CTRL_Q);
    a.wait_exit();
    drop(shared);
    assert_gone(&name);
}
