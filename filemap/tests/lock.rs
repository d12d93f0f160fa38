//! Regression tests for the defects found by adversarial testing (issue
//! 14): a live owner's lock taken, handles and watchers used after
//! `fork`, files of the wrong kind where a region should be, a watch
//! callback that panics, the starving reader of a large region, and the
//! owned guard and compare-and-publish built for the bindings.

mod common;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::Duration;

use common::{await_condition, unique, Cleanup, STEP};
use filemap::{Error, FileMap};

#[test]
fn child_role() {
    #[cfg(target_os = "linux")]
    match std::env::var("FILEMAP_CHILD_ROLE").as_deref() {
        Ok("update-on-fresh-threads") => linux::update_on_fresh_threads(),
        Ok("fork-handle") => linux::fork_handle(),
        Ok("fork-watcher") => linux::fork_watcher(),
        _ => {}
    }
    common::child_main();
}

fn counter(map: &FileMap) -> u64 {
    map.read_string().unwrap().content.parse().unwrap_or(0)
}

#[test]
fn write_if_publishes_only_on_the_expected_generation() {
    let name = unique("writeif");
    let _cleanup = Cleanup(name.clone());
    let a = FileMap::open(&name).unwrap();
    let b = FileMap::open(&name).unwrap();
    let seen = a.write_str("first").unwrap().generation;
    let moved = b.write_str("b's edit").unwrap().generation;
    match a.write_if(seen, b"a's stale edit") {
        Err(Error::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (seen, moved)),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.read_string().unwrap().content, "b's edit");
    let done = a.write_if(moved, b"a's edit on top").unwrap();
    assert_eq!(done.generation, moved + 1);
    assert!(matches!(
        a.write_if(done.generation, &[0; 5000]),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(b.read_string().unwrap().content, "a's edit on top");
}

#[test]
fn write_if_lets_exactly_one_of_racing_writers_win_each_generation() {
    let name = unique("writeifrace");
    let _cleanup = Cleanup(name.clone());
    let map = Arc::new(FileMap::open(&name).unwrap());
    map.write_str("0").unwrap();
    let wins = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (map, wins) = (Arc::clone(&map), Arc::clone(&wins));
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let snap = map.read_string().unwrap();
                    let next = snap.content.parse::<u64>().unwrap() + 1;
                    match map.write_if(snap.generation, next.to_string().as_bytes()) {
                        Ok(_) => {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Every successful compare-and-publish added exactly one.
    assert_eq!(counter(&map), wins.load(Ordering::Relaxed));
}

#[test]
fn an_owned_guard_reads_publishes_and_unlocks_like_a_guard() {
    let name = unique("owned");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let other = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(50))
        .open()
        .unwrap();
    map.write_str("1").unwrap();
    let mut guard = map.lock_owned().unwrap();
    drop(map); // the guard keeps the handle's state
    assert!(!guard.owner_died());
    assert_eq!(guard.read().unwrap().content, b"1");
    assert!(matches!(
        std::thread::scope(|s| s.spawn(|| other.write_str("x")).join().unwrap()),
        Err(Error::Timeout { .. })
    ));
    let published = guard.publish(b"2").unwrap();
    assert!(matches!(
        guard.publish(&[0; 5000]),
        Err(Error::TooLarge { .. })
    ));
    guard.unlock().unwrap();
    assert!(!guard.is_held());
    assert!(matches!(guard.unlock(), Err(Error::NotLocked { .. })));
    assert!(matches!(guard.publish(b"3"), Err(Error::NotLocked { .. })));
    assert!(matches!(guard.read(), Err(Error::NotLocked { .. })));
    let snap = other.read_string().unwrap();
    assert_eq!(
        (snap.content.as_str(), snap.generation),
        ("2", published.generation)
    );
    other.write_str("free").unwrap();
}

#[test]
fn an_owned_guard_used_from_another_thread_is_an_error_and_stays_locked() {
    let name = unique("ownedthread");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let other = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(50))
        .open()
        .unwrap();
    map.write_str("kept").unwrap();
    let guard = map.lock_owned().unwrap();
    let guard = std::thread::spawn(move || {
        let mut guard = guard;
        assert!(matches!(guard.read(), Err(Error::WrongThread { .. })));
        assert!(matches!(
            guard.publish(b"stolen"),
            Err(Error::WrongThread { .. })
        ));
        assert!(matches!(guard.unlock(), Err(Error::WrongThread { .. })));
        guard
    })
    .join()
    .unwrap();
    assert!(guard.is_held());
    assert!(matches!(
        std::thread::scope(|s| s.spawn(|| other.write_str("x")).join().unwrap()),
        Err(Error::Timeout { .. })
    ));
    assert_eq!(other.read_string().unwrap().content, "kept");
    drop(guard);
    other.write_str("free again").unwrap();
}

// Linux: the lock word names the thread, so any thread may clear it for
// the owner (Windows mutexes stay with their thread; see OwnedGuard).
#[cfg(target_os = "linux")]
#[test]
fn an_owned_guard_dropped_on_another_thread_releases_the_lock() {
    let name = unique("owneddrop");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let guard = map.lock_owned().unwrap();
    std::thread::spawn(move || drop(guard)).join().unwrap();
    let other = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(200))
        .open()
        .unwrap();
    assert!(!other.write_str("after").unwrap().owner_died);
    // The taking thread can lock again: nothing thinks it still holds it.
    assert!(!map.write_str("again").unwrap().owner_died);
}

#[test]
fn a_panicking_watch_callback_is_counted_and_watching_goes_on() {
    let name = unique("panicwatch");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let writer = FileMap::open(&name).unwrap();
    let (tx, rx) = mpsc::channel();
    let watcher = map
        .watch(move |change| {
            let content = change.unwrap().content;
            if content == b"boom" {
                panic!("callback panics on purpose");
            }
            tx.send(content).unwrap();
        })
        .unwrap();
    writer.write_str("boom").unwrap();
    await_condition("the panic to be counted", || watcher.panics() == 1);
    writer.write_str("after").unwrap();
    assert_eq!(rx.recv_timeout(STEP).unwrap(), b"after");
    assert_eq!(watcher.panics(), 1);
}

/// A reader slower than a writer publishing back to back gets every read
/// through: lock-free while it can, else by the lock, which the writer
/// hands over to it (before, it starved for seconds behind the writer).
#[test]
fn a_reader_slower_than_a_back_to_back_writer_always_gets_through() {
    let name = unique("slowreader");
    let _cleanup = Cleanup(name.clone());
    let len = 8 << 20;
    let map = Arc::new(FileMap::builder(&name).capacity(len as u64).open().unwrap());
    let stop = Arc::new(AtomicBool::new(false));
    let writer = std::thread::spawn({
        let (map, stop) = (Arc::clone(&map), Arc::clone(&stop));
        move || {
            let mut seq = 0u64;
            while !stop.load(Ordering::Relaxed) {
                seq += 1;
                map.write(&common::payload(seq, len - 16)).unwrap();
            }
            seq
        }
    });
    await_condition("a first publish", || map.generation() > 0);
    let mut buf = Vec::new();
    let mut last = 0;
    for _ in 0..20 {
        // Slower than the writer: read, then dawdle over the copy.
        let stamp = map.read_into(&mut buf).unwrap();
        let seq = common::check_payload(&buf).unwrap();
        assert!(stamp.generation >= last);
        last = stamp.generation;
        assert!(seq > 0);
        let _ = buf.iter().fold(0u8, |a, &b| a.wrapping_add(b));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;
    use common::Child;
    use std::time::Instant;

    /// Increment the counter under the lock, each time on a new thread (a
    /// thread's first acquisition is the one that used to record its
    /// identity after taking the lock), until stdin closes; then report.
    pub fn update_on_fresh_threads() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = Arc::new(FileMap::open(&name).unwrap());
        let done = Arc::new(AtomicBool::new(false));
        std::thread::spawn({
            let done = Arc::clone(&done);
            move || {
                common::wait_for_stdin_eof();
                done.store(true, Ordering::SeqCst);
            }
        });
        common::say("ready");
        let mut count = 0u64;
        while !done.load(Ordering::SeqCst) {
            let map = Arc::clone(&map);
            std::thread::spawn(move || {
                map.update(|c| {
                    let n: u64 = std::str::from_utf8(c).unwrap().parse().unwrap();
                    *c = (n + 1).to_string().into_bytes();
                })
                .unwrap()
            })
            .join()
            .unwrap();
            count += 1;
        }
        common::say(format!("count={count}"));
        std::process::exit(0);
    }

    fn signal(pid: u32, signal: i32) {
        // SAFETY: kill(2) with a child's pid; no memory is involved.
        assert_eq!(unsafe { libc::kill(pid as i32, signal) }, 0);
    }

    fn state_of(pid: u32) -> char {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        stat[stat.rfind(')').unwrap() + 2..].chars().next().unwrap()
    }

    /// A live owner stopped (SIGSTOP) at any moment, the instant after
    /// taking the lock included, keeps its lock: a waiter gets `Timeout`
    /// naming it, never the lock with `owner_died` (11 of 60 trials took
    /// it before the owner's identity went into the lock word itself).
    #[test]
    fn a_stopped_owner_keeps_its_lock_whenever_it_was_stopped() {
        let name = unique("sigstop");
        let _cleanup = Cleanup(name.clone());
        let map = FileMap::builder(&name)
            .lock_timeout(Duration::from_millis(1200))
            .open()
            .unwrap();
        map.write_str("0").unwrap();
        let child = Child::spawn("update-on-fresh-threads", &name);
        assert_eq!(child.line(), "ready");
        let (mut ours, mut timeouts) = (0u64, 0u32);
        await_condition("the child to count", || counter(&map) > 0);
        for trial in 0..60u64 {
            // Let it run 3 to 7 ms, then stop it wherever it is (the
            // issue's reproduction: 11 of 60 trials stole the lock).
            std::thread::sleep(Duration::from_micros(3000 + 700 * (trial % 7)));
            signal(child.pid(), libc::SIGSTOP);
            await_condition("the child to stop", || state_of(child.pid()) == 'T');
            match map.lock() {
                Ok(mut guard) => {
                    assert!(
                        !guard.owner_died(),
                        "trial {trial}: a stopped, live owner's lock was taken"
                    );
                    let n: u64 = String::from_utf8(guard.read().unwrap().content)
                        .unwrap()
                        .parse()
                        .unwrap();
                    guard.publish((n + 1).to_string().as_bytes()).unwrap();
                    ours += 1;
                }
                Err(Error::Timeout { holder_pid, .. }) => {
                    assert_eq!(holder_pid, Some(child.pid()), "the holder is named");
                    timeouts += 1;
                }
                Err(e) => panic!("{e}"),
            }
            signal(child.pid(), libc::SIGCONT);
        }
        let mut child = child;
        child.close_stdin();
        let count: u64 = child.expect("count=").parse().unwrap();
        assert_eq!(counter(&map), count + ours, "no increment lost");
        eprintln!("{ours} locked by us, {timeouts} timeouts on a stopped holder");
    }

    /// Open, fork; the child tries the inherited handle (refused), opens
    /// its own, and writes through it after the parent closed.
    pub fn fork_handle() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        map.write_str("parent").unwrap();
        let mut pipe = [0i32; 2];
        // SAFETY: pipe(2) fills the two-element array.
        assert_eq!(unsafe { libc::pipe(pipe.as_mut_ptr()) }, 0);
        // SAFETY: this role process runs no other thread of its own that
        // the child would miss (libtest's runs `child_role` alone); the
        // child exits with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            let refused = |r: Result<(), Error>| matches!(r, Err(Error::ForkedHandle { .. }));
            let all_refused = refused(map.write_str("orphan").map(drop))
                && refused(map.read().map(drop))
                && refused(map.lock().map(drop))
                && refused(map.lock_owned().map(drop))
                && refused(map.update(|_| ()).map(drop))
                && refused(map.write_if(1, b"x").map(drop))
                && refused(map.watch(|_| ()).map(drop));
            common::say(format!("child refused={all_refused}"));
            let own = FileMap::open(&name).unwrap();
            common::say(format!("child existed={}", own.existed_already()));
            let mut byte = [0u8];
            // SAFETY: read(2) into a one-byte buffer from our pipe end.
            unsafe { libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) };
            own.write_str("from child").unwrap();
            common::say("child wrote");
            // SAFETY: as above: wait for the parent's second byte.
            unsafe { libc::read(pipe[0], byte.as_mut_ptr().cast(), 1) };
            drop(map); // the inherited handle: closing it does nothing
            drop(own);
            // SAFETY: leave the forked child without running the test
            // harness's exit path.
            unsafe { libc::_exit(0) };
        }
        // Parent: on "close", close our handle, then let the child write.
        assert_eq!(common::stdin_line().as_deref(), Some("close"));
        drop(map);
        common::say("parent closed");
        // SAFETY: write(2) of one byte to our pipe end.
        unsafe { libc::write(pipe[1], b"g".as_ptr().cast(), 1) };
        assert_eq!(common::stdin_line().as_deref(), Some("done"));
        // SAFETY: as above.
        unsafe { libc::write(pipe[1], b"g".as_ptr().cast(), 1) };
        let mut status = 0;
        // SAFETY: waits for the child forked above.
        unsafe { libc::waitpid(pid, &mut status, 0) };
        common::say(format!("child exit={}", libc::WEXITSTATUS(status)));
        std::process::exit(0);
    }

    /// A forked child that uses its inherited handle is refused (before:
    /// its writes went to an orphan the parent's close had unlinked); the
    /// region it opens anew lives on after the parent closes.
    #[test]
    fn a_handle_inherited_through_fork_is_refused_and_the_child_can_reopen() {
        let name = unique("fork");
        let _cleanup = Cleanup(name.clone());
        let mut role = Child::spawn("fork-handle", &name);
        assert_eq!(role.line(), "child refused=true");
        assert_eq!(role.line(), "child existed=true");
        role.send("close");
        assert_eq!(role.line(), "parent closed");
        assert_eq!(role.line(), "child wrote");
        // The parent closed first, yet the child's own handle kept the
        // region: a newcomer sees the child's write.
        let newcomer = FileMap::builder(&name).open_only().open().unwrap();
        assert_eq!(newcomer.read_string().unwrap().content, "from child");
        role.send("done");
        assert_eq!(role.line(), "child exit=0");
    }

    /// Watch, fork, and drop the watcher in the child.
    pub fn fork_watcher() {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let watcher = map.watch(|_| ()).unwrap();
        // SAFETY: the child only drops values and leaves with `_exit`.
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            drop(watcher);
            drop(map);
            // SAFETY: leave the forked child at once.
            unsafe { libc::_exit(7) };
        }
        let start = Instant::now();
        let mut status = 0;
        loop {
            // SAFETY: polls the child forked above.
            let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
            if done == pid {
                common::say(format!("child exit={}", libc::WEXITSTATUS(status)));
                break;
            }
            if start.elapsed() > Duration::from_secs(5) {
                common::say("child hung");
                // SAFETY: kill(2) our own child.
                unsafe { libc::kill(pid, libc::SIGKILL) };
                break;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        drop(watcher); // the parent's watcher still stops normally
        common::say("parent stopped its watcher");
        std::process::exit(0);
    }

    #[test]
    fn a_forked_child_dropping_an_inherited_watcher_returns() {
        let name = unique("forkwatch");
        let _cleanup = Cleanup(name.clone());
        let role = Child::spawn("fork-watcher", &name);
        assert_eq!(role.line(), "child exit=7");
        assert_eq!(role.line(), "parent stopped its watcher");
    }

    /// A stranger's FIFO, socket or directory where a region should be is
    /// a typed error at once, and `list`/`clean_stale` pass over it: none
    /// of them may block (a FIFO opened read-only waits for a writer).
    #[test]
    fn files_of_the_wrong_kind_are_not_regions_and_block_nothing() {
        let fifo = unique("fifo");
        let socket = unique("sock");
        let dir = unique("dir");
        let path = filemap::shm_path;
        let fifo_path = std::ffi::CString::new(path(&fifo).to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(fifo_path.as_ptr(), 0o666) }, 0);
        let _listener = std::os::unix::net::UnixListener::bind(path(&socket)).unwrap();
        std::fs::create_dir(path(&dir)).unwrap();
        let (tx, rx) = mpsc::channel();
        let (f, s, d) = (fifo.clone(), socket.clone(), dir.clone());
        std::thread::spawn(move || {
            let mut seen = Vec::new();
            for (name, what) in [(&f, "FIFO"), (&s, "socket"), (&d, "directory")] {
                for result in [
                    FileMap::open(name).map(drop),
                    FileMap::inspect(name).map(drop),
                    FileMap::builder(name.as_str()).open_only().open().map(drop),
                ] {
                    match result {
                        Err(Error::NotARegion { reason, .. }) if reason.contains(what) => {}
                        other => seen.push(format!("{name}: {other:?}")),
                    }
                }
            }
            let listed = FileMap::list().unwrap();
            let entry = listed.iter().find(|(n, _)| *n == f);
            // The posix backend lists its registry of names, where no
            // stranger's file appears.
            let passed_over = cfg!(feature = "posix-backend") && entry.is_none();
            if !passed_over && !matches!(entry, Some((_, Err(Error::NotARegion { .. })))) {
                seen.push(format!("list: {entry:?}"));
            }
            let cleaned = FileMap::clean_stale().unwrap();
            if cleaned.contains(&f) {
                seen.push("clean_stale removed a stranger's FIFO".into());
            }
            tx.send(seen).unwrap();
        });
        let problems = rx.recv_timeout(STEP).expect("a call blocked");
        let _ = std::fs::remove_file(path(&fifo));
        let _ = std::fs::remove_file(path(&socket));
        let _ = std::fs::remove_dir(path(&dir));
        assert!(problems.is_empty(), "{problems:#?}");
    }
}
