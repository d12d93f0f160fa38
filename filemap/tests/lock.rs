//! Who holds the lock: an owned guard (the one the bindings use) on its
//! own thread and another, a live owner stopped or unreadable that keeps
//! its lock, and a slow reader that gets through a back-to-back writer.

mod common;

use filemap::TextExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[cfg(target_os = "linux")]
use common::Child;
use common::{await_condition, unique, Cleanup};
use filemap::{Error, FileMap};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    #[cfg(target_os = "linux")]
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("update-on-fresh-threads") {
        linux::update_on_fresh_threads();
    }
    common::child_main();
}

#[cfg(target_os = "linux")]
fn counter(map: &FileMap) -> u64 {
    map.read_string().unwrap().content.parse().unwrap_or(0)
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

/// A reader slower than a writer publishing back to back gets every read
/// through: lock-free while it can, else by the lock, which the writer
/// hands over to it (a reader that only retried starved for seconds).
#[test]
fn a_reader_slower_than_a_back_to_back_writer_always_gets_through() {
    let name = unique("slowreader");
    let _cleanup = Cleanup(name.clone());
    let len = 8 << 20;
    let map = Arc::new(FileMap::builder(&name).capacity(len).open().unwrap());
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
        std::hint::black_box(buf.iter().fold(0u8, |a, &b| a.wrapping_add(b)));
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.join().unwrap() > 0);
}

#[cfg(target_os = "linux")]
mod linux {
    use super::*;

    /// Increment the counter under the lock, each time on a new thread (a
    /// thread's first acquisition is where an owner whose identity went
    /// into the lock word only after taking it could be stopped unnamed),
    /// until stdin closes; then report.
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
            // Let it run 3 to 7 ms, then stop it wherever it is (with the
            // identity written after taking the lock, 11 of 60 such trials
            // took a live owner's lock).
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
}

/// A waiter that cannot read the owner's liveness (no fds left for /proc)
/// must not take a live owner's lock: two writers would publish at once.
#[cfg(target_os = "linux")]
#[test]
fn unreadable_liveness_never_counts_as_death() {
    let name = unique("nofds");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    map.write_str("owner's").unwrap();
    let mut thief = Child::spawn("write-without-fds", &name);
    assert_eq!(thief.line(), "ready");
    let guard = map.lock().unwrap();
    thief.send("go");
    let result = thief.line();
    assert!(
        result.starts_with("Err(Timeout"),
        "a live owner's lock was taken: {result}"
    );
    drop(guard);
    assert_eq!(map.read_string().unwrap().content, "owner's");
}
