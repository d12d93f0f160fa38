//! Crash paths: processes killed with SIGKILL while holding the lock or
//! while publishing. Nothing published may be lost, and the lock recovers.
//!
//! `FILEMAP_CRASH_KILLS` sets the number of kills (default 50; the long run
//! in CONTRIBUTING.md uses 1000) and `FILEMAP_CRASH_LEN` the payload size
//! (default 256 KiB; the long run uses 4 MiB).

mod common;

use filemap::TextExt;
use std::time::{Duration, Instant};

use common::{check_payload, payload, unique, Child, Cleanup};
use filemap::FileMap;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

#[test]
fn killed_lock_holder_is_reported_and_published_content_survives() {
    let name = unique("holder");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    map.write_str("published before the crash").unwrap();

    let holder = Child::spawn("hold-lock", &name);
    assert_eq!(holder.line(), "locked owner_died=false");
    holder.kill9();

    let start = Instant::now();
    let published = map.write_str("after the crash").unwrap();
    let recovery = start.elapsed();
    assert!(published.owner_died, "the dead owner is reported");
    assert_eq!(map.read_string().unwrap().content, "after the crash");
    println!("lock recovery after kill -9 took {recovery:?}");

    // The lock works normally afterwards.
    assert!(!map.write_str("again").unwrap().owner_died);
}

#[test]
fn a_lock_holder_that_exits_without_releasing_is_reported() {
    let name = unique("abandon");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    map.write_str("published before").unwrap();
    let mut holder = Child::spawn("lock-and-exit", &name);
    assert_eq!(holder.line(), "locked owner_died=false");
    assert!(holder.wait().success());
    assert_eq!(map.read_string().unwrap().content, "published before");
    let published = map.write_str("after").unwrap();
    assert!(published.owner_died, "the abandoned lock is reported");
    assert_eq!(map.read_string().unwrap().content, "after");
    assert!(!map.write_str("again").unwrap().owner_died);
}

#[test]
fn a_lock_held_by_a_live_process_times_out_naming_the_holder() {
    let name = unique("timeout");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(100))
        .open()
        .unwrap();
    map.write_str("kept").unwrap();
    let holder = Child::spawn("hold-lock", &name);
    holder.line();
    match map.write_str("blocked") {
        Err(filemap::Error::Timeout {
            holder_pid: Some(pid),
            ..
        }) => assert_eq!(pid, holder.pid()),
        other => panic!("expected a lock timeout, got {other:?}"),
    }
    assert_eq!(
        map.read_string().unwrap().content,
        "kept",
        "lock-free reads still work"
    );
    holder.kill9();
}

#[test]
fn writers_killed_mid_publish_never_expose_a_torn_payload() {
    let kills: u32 = std::env::var("FILEMAP_CRASH_KILLS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let len: usize = std::env::var("FILEMAP_CRASH_LEN")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(256 * 1024);
    let name = unique("crash");
    let _cleanup = Cleanup(name.clone());
    let capacity = len + 16;
    let map = FileMap::builder(&name).capacity(capacity).open().unwrap();
    let env = [
        ("FILEMAP_CHILD_CAPACITY", capacity.to_string()),
        ("FILEMAP_CHILD_LEN", len.to_string()),
    ];

    // A reader thread checks every content it sees while writers die.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = std::thread::spawn({
        let name = name.clone();
        let stop = stop.clone();
        move || {
            let map = FileMap::open(&name).unwrap();
            let mut buf = Vec::new();
            let mut reads = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                map.read_into(&mut buf).unwrap();
                if !buf.is_empty() {
                    check_payload(&buf).unwrap();
                }
                reads += 1;
            }
            reads
        }
    });

    let mut recoveries = Vec::new();
    let mut owner_died_seen = 0;
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    for _ in 0..kills {
        let child = Child::spawn_with("writer-loop", &name, &env);
        let started = child.expect("started owner_died=");
        owner_died_seen += u32::from(started == "true");
        // Let it publish for a random 0-5 ms, then kill it mid-stream.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_micros(rng % 5000));
        child.kill9();
        let content = map.read().unwrap().content;
        check_payload(&content).expect("the published payload is intact after a kill");
        let start = Instant::now();
        let mut guard = map.lock().unwrap();
        recoveries.push((start.elapsed(), guard.owner_died()));
        let current = guard.read().unwrap().content;
        check_payload(&current).unwrap();
        guard.publish(&current).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let reads = reader.join().unwrap();

    let mut died: Vec<Duration> = recoveries.iter().filter(|r| r.1).map(|r| r.0).collect();
    died.sort();
    println!(
        "{kills} kills, {reads} concurrent reads all intact; {} kills landed while the lock was held \
         (+{owner_died_seen} seen by the next writer), median recovery {:?}",
        died.len(),
        died.get(died.len() / 2)
    );
    assert!(reads > 0);
}

#[test]
fn payload_checker_catches_torn_content() {
    let mut p = payload(7, 100);
    assert_eq!(check_payload(&p), Ok(7));
    p[50] = 8;
    assert!(check_payload(&p).is_err());
    let mut q = payload(7, 100);
    q.truncate(90);
    assert!(check_payload(&q).is_err());
}
