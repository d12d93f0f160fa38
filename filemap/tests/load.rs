//! Load: many processes on one region, and long open/close soaks.
//! `FILEMAP_LOAD_SECS` sets how long the writer feeds 32 watchers (default
//! 2 s; the long run uses 10 s), `FILEMAP_SOAK_SECS` the open/close soak
//! (default 3 s; the long run uses 60 s).
//!
//! The open/close soak counts `/proc/self` fds and `/dev/shm` files, so it
//! is Linux-only; the other two run on Windows too.

mod common;

use filemap::TextExt;
use std::time::{Duration, Instant};

use common::{unique, Child, Cleanup, STEP};
use filemap::FileMap;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    #[cfg(target_os = "linux")]
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("soak") {
        // Alone in this process, so process-wide counts are exact.
        println!("@@ {}", soak(&std::env::var("FILEMAP_CHILD_NAME").unwrap()));
        std::process::exit(0);
    }
    common::child_main();
}

/// The tests that load the machine, and those that time wake-ups under a
/// bound, run one at a time: on two CPUs, 33 busy processes of one would
/// delay the other's waiters past its bound (which must stay below the
/// one-second sleep slice to catch a lost wake-up).
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn load_secs(default: u64) -> u64 {
    std::env::var("FILEMAP_LOAD_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn eight_processes_times_ten_thousand_increments_end_at_eighty_thousand() {
    let _serial = serial();
    let name = unique("load-counter");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let elapsed = common::count_in_processes(&name, 8, 10_000);
    assert_eq!(map.read_string().unwrap().content, "80000");
    println!("80,000 locked increments by 8 processes in {elapsed:?}");
}

#[test]
fn thirty_two_watcher_processes_all_end_on_the_final_content() {
    let _serial = serial();
    let name = unique("load-watch");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let watchers: Vec<Child> = (0..32)
        .map(|_| Child::spawn("watch-until-end", &name))
        .collect();
    for watcher in &watchers {
        assert_eq!(watcher.line(), "watching");
    }
    let deadline = Instant::now() + Duration::from_secs(load_secs(2));
    let mut writes = 0u64;
    while Instant::now() < deadline {
        writes += 1;
        map.write(format!("update {writes}").as_bytes()).unwrap();
        if writes % 64 == 0 {
            std::thread::yield_now();
        }
    }
    let last = map.write(b"END").unwrap().generation;
    let mut delivered = Vec::new();
    for watcher in watchers {
        let report = watcher.expect("end gen=");
        let (generation, changes) = report.split_once(" changes=").unwrap();
        assert_eq!(
            generation.parse::<u64>().unwrap(),
            last,
            "every watcher ends on the final generation"
        );
        delivered.push(changes.parse::<u64>().unwrap());
        assert!(watcher.finish().success());
    }
    delivered.sort();
    println!(
        "1 writer, 32 watcher processes: {writes} writes, final generation {last}; \
         changes delivered per watcher min {} median {} max {} (bursts coalesced)",
        delivered[0], delivered[16], delivered[31]
    );
}

/// Lost wake-ups: a sleeper that misses the wake-up of the last publish
/// of a burst would still notice it after the 1 s sleep slice, which hides
/// the bug from tests that only wait for the end. Here every waiter must
/// report the end of every burst within a fraction of that slice. Bursts
/// of 1 to 32 publishes, with and without a pause before them (waiters
/// asleep, or still between waking and re-checking), and with a watcher's
/// interrupt right before the last publish, over and over.
#[test]
fn every_sleeping_waiter_wakes_for_the_last_publish_of_every_burst() {
    every_waiter_sees_the_end_of_every_burst(&[]);
}

/// The same with adaptive waiters: they spin first (at most one at a time
/// on two cores), then sleep by the same protocol.
#[test]
fn every_adaptive_waiter_sees_the_last_publish_of_every_burst() {
    every_waiter_sees_the_end_of_every_burst(&[("FILEMAP_CHILD_ADAPTIVE", "1".into())]);
}

fn every_waiter_sees_the_end_of_every_burst(env: &[(&str, String)]) {
    let _serial = serial();
    const WAITERS: usize = 8;
    const BURSTS: u64 = 150;
    let within = Duration::from_millis(500);
    let name = unique("load-wakeups");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let interrupter = FileMap::open(&name).unwrap();
    let waiters: Vec<Child> = (0..WAITERS)
        .map(|_| Child::spawn_with("wait-for-ends", &name, env))
        .collect();
    for waiter in &waiters {
        assert_eq!(waiter.line(), "waiting");
    }
    let mut rng = 0x9E37_79B9_7F4A_7C15u64;
    let mut late = Duration::ZERO;
    for burst in 0..=BURSTS {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        if rng & 1 == 0 {
            std::thread::sleep(Duration::from_micros(rng >> 54));
        }
        for i in 0..1 + (rng >> 8) % 32 {
            map.write(format!("burst {burst} publish {i}").as_bytes())
                .unwrap();
        }
        let end = if burst == BURSTS {
            "end last".to_owned()
        } else {
            format!("end {burst}")
        };
        // Half the time a watcher stops right before the end is published:
        // its interrupt moves the notify word just before the publish does
        // (they once left it at the value a waiter had read before both).
        if rng & 2 == 0 {
            drop(interrupter.watch(|_| ()).unwrap());
        }
        let published = Instant::now();
        map.write(end.as_bytes()).unwrap();
        for waiter in &waiters {
            assert_eq!(waiter.line_within(STEP), end);
        }
        late = late.max(published.elapsed());
        assert!(
            late < within,
            "burst {burst}: a waiter took {late:?} to see its end (lost wake-up?)"
        );
    }
    for waiter in waiters {
        assert!(waiter.finish().success());
    }
    println!("{WAITERS} waiters, {BURSTS} bursts: slowest to see an end {late:?}");
}

#[cfg(target_os = "linux")]
/// Open file descriptors and mappings of shared-memory files, regions of
/// this soak in /dev/shm, and resident memory (KiB).
fn resources(tag: &str) -> (usize, usize, usize, u64) {
    let fds = std::fs::read_dir("/proc/self/fd")
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with("/dev/shm"))
        .count();
    let maps = std::fs::read_to_string("/proc/self/maps")
        .unwrap()
        .lines()
        .filter(|l| l.contains("/dev/shm/"))
        .count();
    let files = std::fs::read_dir("/dev/shm")
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .is_ok_and(|e| e.file_name().to_string_lossy().contains(tag))
        })
        .count();
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let rss_pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    (fds, maps, files, rss_pages * 4)
}

#[cfg(target_os = "linux")]
fn soak_secs() -> u64 {
    std::env::var("FILEMAP_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3)
}

#[cfg(target_os = "linux")]
fn soak(tag: &str) -> String {
    let secs = soak_secs();
    let cycle = |i: u64| {
        let name = format!("{tag}-{}", i % 4);
        let a = FileMap::builder(&name).capacity(64 * 1024).open().unwrap();
        let b = FileMap::open(&name).unwrap();
        a.write(&vec![i as u8; 1000]).unwrap();
        assert_eq!(b.read().unwrap().content.len(), 1000);
        let watcher = b.watch(|_| {}).unwrap();
        drop(watcher);
    };
    for i in 0..200 {
        cycle(i);
    }
    let before = resources(tag);
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut cycles = 0;
    while Instant::now() < deadline {
        cycle(cycles);
        cycles += 1;
    }
    let after = resources(tag);
    format!("{cycles} {secs} {before:?} {after:?}")
}

#[cfg(target_os = "linux")]
#[test]
fn open_close_soak_leaks_no_fds_mappings_files_or_memory() {
    let tag = unique("soak");
    let child = Child::spawn("soak", &tag);
    let report = child.line_within(Duration::from_secs(soak_secs() + 60));
    let parse = |t: &str| -> Vec<u64> {
        t.trim_matches(|c| c == '(' || c == ')')
            .split(", ")
            .map(|n| n.parse().unwrap())
            .collect()
    };
    let (cycles, rest) = report.split_once(' ').unwrap();
    let (secs, rest) = rest.split_once(' ').unwrap();
    let (before, after) = rest.split_once(") (").unwrap();
    let (before, after) = (parse(before), parse(after));
    println!(
        "{cycles} open/write/read/watch/close cycles in {secs} s: \
         (shm fds, shm mappings, shm files, RSS KiB) {before:?} -> {after:?}"
    );
    assert_eq!(
        &after[..3],
        &[0, 0, 0],
        "no fd, mapping or region file left"
    );
    assert_eq!(&before[..3], &[0, 0, 0]);
    assert!(
        after[3] < before[3] + 4096,
        "RSS grew from {} to {} KiB",
        before[3],
        after[3]
    );
    assert!(child.finish().success());
}
