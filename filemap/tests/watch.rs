//! Regression tests for defects found in review, named after what broke.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::FileExt;
use std::time::Duration;

use common::{await_condition, unique, Child, Cleanup};
use filemap::{FileMap, TextView};

#[test]
fn child_role() {
    common::child_main();
}

fn waiters_word(name: &str) -> u32 {
    let mut word = [0u8; 4];
    std::fs::File::open(filemap::shm_path(name))
        .unwrap()
        .read_exact_at(&mut word, 516) // `waiters`
        .unwrap();
    u32::from_le_bytes(word)
}

/// A waiter that could not read /proc (no fds left) took the lock of a
/// live owner, so two writers published at once.
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

/// `open` blocked forever on a lifetime lock held exclusively by a stranger.
/// (The posix backend takes no `flock`: its lifetime word is bounded the
/// same way, see its unit tests.)
#[cfg(not(feature = "posix-backend"))]
#[test]
fn open_gives_up_on_a_lifetime_lock_held_exclusively_by_a_stranger() {
    let name = unique("flockx");
    let _cleanup = Cleanup(name.clone());
    FileMap::builder(&name)
        .persistent(true)
        .open()
        .unwrap()
        .write_str("x")
        .unwrap();
    let path = filemap::shm_path(&name);
    let mut stranger = std::process::Command::new("flock")
        .args(["--no-fork", "-x"])
        .arg(&path)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    // Wait until the stranger holds it: our own non-blocking probe fails.
    await_condition("the stranger's lock", || {
        std::process::Command::new("flock")
            .args(["-n", "-s"])
            .arg(&path)
            .arg("true")
            .status()
            .is_ok_and(|s| !s.success())
    });
    let start = std::time::Instant::now();
    let result = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(200))
        .open();
    assert!(
        matches!(result, Err(filemap::Error::Timeout { .. })),
        "{result:?}"
    );
    assert!(start.elapsed() < common::STEP);
    stranger.kill().unwrap();
    stranger.wait().unwrap();
    assert!(FileMap::open(&name).unwrap().existed_already());
}

/// A waiter killed in `wait_change` left the waiter count at 1 forever, so
/// every later publish made a futex system call.
#[test]
fn a_killed_waiters_count_is_reclaimed() {
    let name = unique("waitcount");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let waiter = Child::spawn("wait-forever", &name);
    assert_eq!(waiter.line(), "waiting");
    await_condition("the child to sleep", || waiters_word(&name) == 1);
    waiter.kill9();
    assert_eq!(waiters_word(&name), 1, "nobody has swept yet");
    let _another = FileMap::open(&name).unwrap();
    assert_eq!(
        waiters_word(&name),
        0,
        "opening sweeps dead slots and their waiters"
    );
    drop(map);
}

/// `Instant::now() + Duration::MAX` panicked.
#[test]
fn waiting_with_the_largest_timeout_does_not_panic() {
    let name = unique("maxwait");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    let waiter = std::thread::spawn({
        let name = name.clone();
        move || {
            let map = FileMap::open(&name).unwrap();
            (
                map.wait_change(seen, Some(Duration::MAX)),
                map.wait_change_spin(seen, Some(Duration::MAX)),
            )
        }
    });
    await_condition("the waiter to sleep", || waiters_word(&name) == 1);
    let published = map.write_str("wake").unwrap();
    let (blocking, spinning) = waiter.join().unwrap();
    assert_eq!(blocking, Some(published.generation));
    assert_eq!(spinning, Some(published.generation));
}

/// With auto-sync on, an edit whose write failed was thrown away by the
/// next remote change.
#[test]
fn an_unwritten_local_edit_survives_a_remote_change() {
    let name = unique("textdirty");
    let _cleanup = Cleanup(name.clone());
    let mut view = TextView::new(FileMap::builder(&name).capacity(32).open().unwrap()).unwrap();
    let long = vec!["x".repeat(40)];
    assert!(matches!(
        view.set_lines(long.clone()),
        Err(filemap::Error::TooLarge { .. })
    ));
    assert!(view.is_dirty());
    let other = FileMap::open(&name).unwrap();
    other.write_str("remote").unwrap();
    assert_eq!(
        view.sync_remote().unwrap(),
        filemap::RemoteChange::Pending(other.id())
    );
    assert_eq!(view.lines(), long, "the local edit is kept");
    view.read().unwrap();
    assert_eq!(view.lines(), ["remote"]);
}
