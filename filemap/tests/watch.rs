//! Waiting for and watching changes: the waiter count a killed waiter
//! leaves, the longest timeout, and a watch callback that panics.

mod common;

#[cfg(target_os = "linux")]
use std::os::unix::fs::FileExt;
use std::sync::mpsc;
#[cfg(target_os = "linux")]
use std::time::Duration;

#[cfg(target_os = "linux")]
use common::Child;
use common::{await_condition, unique, Cleanup, STEP};
use filemap::{FileMap, TextExt};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

/// The region's count of sleeping waiters, read from its file.
#[cfg(target_os = "linux")]
fn waiters_word(name: &str) -> u32 {
    let mut word = [0u8; 4];
    std::fs::File::open(filemap::admin::shm_path(name))
        .unwrap()
        .read_exact_at(&mut word, 516) // `waiters`
        .unwrap();
    u32::from_le_bytes(word)
}

/// A waiter killed in `wait_change` must not leave the waiter count at 1
/// forever (every later publish would make a futex system call).
#[cfg(target_os = "linux")]
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

/// A deadline past what `Instant` can hold (`Instant::now() +
/// Duration::MAX` panics) waits without one.
#[cfg(target_os = "linux")]
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
                map.wait_change(seen, filemap::Wait::sleep().timeout(Duration::MAX))
                    .ok(),
                map.wait_change(seen, filemap::Wait::spin().timeout(Duration::MAX))
                    .ok(),
            )
        }
    });
    await_condition("the waiter to sleep", || waiters_word(&name) == 1);
    let published = map.write_str("wake").unwrap();
    let (blocking, spinning) = waiter.join().unwrap();
    assert_eq!(blocking, Some(published.generation));
    assert_eq!(spinning, Some(published.generation));
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
