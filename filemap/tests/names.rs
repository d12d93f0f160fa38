//! `filemap::admin::NameWatch` and `Alarm`: a watch rings a name's alarm
//! when another process creates the region or `admin::remove` removes it,
//! and not for other names (Linux, where inotify tells; elsewhere it rings
//! every `POLL_INTERVAL`); a wait given the alarm's token ends at the
//! ring; stopping the alarm ends its waiters and stopping the watch ends
//! its thread.

mod common;

use std::sync::mpsc;
use std::sync::Arc;

use common::{await_condition, Child, Cleanup, STEP};
use filemap::admin::{Alarm, NameWatch};
use filemap::{Error, FileMap, Wait};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

/// The alarm's ring count, or `None` once stopped.
fn rings(alarm: &Alarm) -> Option<u64> {
    alarm.arm().map(|(_, rings)| rings)
}

/// Where inotify can tell, the watch must not fall back to polling: the
/// tests below would then pass by the poll's rings.
fn assert_told_by_the_os(watch: &NameWatch) {
    if cfg!(all(target_os = "linux", not(feature = "posix-backend"))) {
        assert!(!watch.polls(), "the name watch fell back to polling");
    }
}

#[test]
fn a_name_watch_rings_when_another_process_creates_the_region() {
    let name = common::unique("names-create");
    let _cleanup = Cleanup(name.clone());
    let alarm = Arc::new(Alarm::new());
    let watch = NameWatch::start(&name, Arc::clone(&alarm)).unwrap();
    assert_told_by_the_os(&watch);
    let before = rings(&alarm).unwrap();
    assert!(!common::region_file_exists(&name));

    let mut child = Child::spawn("open", &name);
    assert_eq!(child.line(), "existed=false");
    await_condition("the alarm to ring for the creation", || {
        rings(&alarm) != Some(before)
    });
    child.close_stdin();
    assert!(child.finish().success());
}

#[test]
fn a_name_watch_rings_when_the_region_is_removed() {
    let name = common::unique("names-remove");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).open().unwrap();
    let alarm = Arc::new(Alarm::new());
    let watch = NameWatch::start(&name, Arc::clone(&alarm)).unwrap();
    assert_told_by_the_os(&watch);
    let before = rings(&alarm).unwrap();

    filemap::admin::remove(&name).unwrap();
    await_condition("the alarm to ring for the removal", || {
        rings(&alarm) != Some(before)
    });
    // Windows: a section stays reachable by name while handles to it are
    // open, so `is_removed` is always false there (see its docs).
    assert_eq!(map.is_removed(), !cfg!(windows));
}

#[test]
fn a_wait_given_the_alarms_token_ends_when_the_region_is_removed() {
    let name = common::unique("names-token");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).open().unwrap();
    let alarm = Arc::new(Alarm::new());
    let watch = NameWatch::start(&name, Arc::clone(&alarm)).unwrap();
    assert_told_by_the_os(&watch);
    let (token, _) = alarm.arm().unwrap();
    let seen = map.generation();

    let waiter = std::thread::spawn(move || {
        // Bounded: no ring means a timeout, and the test fails.
        map.wait_change(seen, Wait::sleep().timeout(STEP).cancel(&token))
    });
    filemap::admin::remove(&name).unwrap();
    let ended = waiter.join().unwrap();
    assert!(
        matches!(ended, Err(Error::Cancelled { .. })),
        "the wait ended with {ended:?}, not cancelled"
    );
    // The alarm gave a fresh token for the next wait.
    let (next, _) = alarm.arm().unwrap();
    assert!(!next.is_cancelled());
}

#[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
#[test]
fn a_name_watch_does_not_ring_for_other_names() {
    let watched = common::unique("names-watched");
    let other = common::unique("names-other");
    let last = common::unique("names-last");
    let _cleanup = [
        Cleanup(watched.clone()),
        Cleanup(other.clone()),
        Cleanup(last.clone()),
    ];
    let (watched_alarm, last_alarm) = (Arc::new(Alarm::new()), Arc::new(Alarm::new()));
    let watch = NameWatch::start_many([
        (watched.as_str(), Arc::clone(&watched_alarm)),
        (last.as_str(), Arc::clone(&last_alarm)),
    ])
    .unwrap();
    assert_told_by_the_os(&watch);

    // Another name made and removed, by another process and by us; then
    // the second watched name made. One thread reads the events in order,
    // so once the last one has rung, the others have been seen.
    let mut child = Child::spawn("open", &other);
    assert_eq!(child.line(), "existed=false");
    child.close_stdin();
    assert!(child.finish().success());
    let _ = filemap::admin::remove(&other); // if the child's exit did not
    let map = FileMap::builder(&other).open().unwrap();
    filemap::admin::remove(&other).unwrap();
    drop(map);
    drop(FileMap::builder(&last).open().unwrap());
    await_condition("the last name's alarm to ring", || {
        rings(&last_alarm) != Some(0)
    });
    assert_eq!(
        rings(&watched_alarm),
        Some(0),
        "the watched name's alarm rang for another name"
    );
}

#[test]
fn stopping_the_alarm_ends_its_waiters_and_stopping_the_watch_ends_its_thread() {
    let name = common::unique("names-stop");
    let _cleanup = Cleanup(name.clone());
    let alarm = Arc::new(Alarm::new());
    let mut watch = NameWatch::start(&name, Arc::clone(&alarm)).unwrap();
    let before = rings(&alarm).unwrap();

    let (tx, rx) = mpsc::channel();
    for _ in 0..2 {
        let (alarm, tx) = (Arc::clone(&alarm), tx.clone());
        std::thread::spawn(move || tx.send(alarm.wait(before)).unwrap());
    }
    alarm.stop();
    for _ in 0..2 {
        assert_eq!(
            rx.recv_timeout(STEP),
            Ok(false),
            "a waiter did not end at the stop"
        );
    }
    assert!(alarm.is_stopped());
    assert!(alarm.arm().is_none());
    assert!(!alarm.wait(before), "a wait after the stop blocked or rang");

    // The watch's thread ends and is joined, though no name changes.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        watch.stop();
        tx.send(()).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(STEP),
        Ok(()),
        "NameWatch::stop did not return"
    );
}

#[test]
fn a_name_watch_refuses_an_invalid_name() {
    let alarm = Arc::new(Alarm::new());
    let err = NameWatch::start("no/slashes", alarm).unwrap_err();
    assert!(
        matches!(err, Error::InvalidName { .. }),
        "an invalid name gave {err:?}"
    );
}
