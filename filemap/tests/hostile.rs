//! A hostile peer: another process writes random bytes into a live region
//! while readers, writers, watchers and openers run. Every call must return
//! correct data or a typed error, in bounded time; nothing may panic or
//! crash. `FILEMAP_HOSTILE_SECS` sets the duration (default 2 s).
//!
//! Plus a fuzz harness over header bytes, run by proptest in CI: any header
//! at all must give typed errors from every entry point; and a stranger
//! holding a region's lifetime lock.
//!
//! The peer writes through the region's file: on Linux its file in
//! `/dev/shm`, on Windows the persistent region's file under the live
//! section (views of a file are coherent with writes to it).

mod common;

use filemap::TextExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{unique, Child, Cleanup, RemoveFiles};
use filemap::{Error, FileMap};
use proptest::prelude::*;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("scribble") {
        scribble();
    }
    common::child_main();
}

/// Write `bytes` at `offset` of `file`.
#[cfg(unix)]
fn write_at(file: &std::fs::File, bytes: &[u8], offset: u64) {
    std::os::unix::fs::FileExt::write_all_at(file, bytes, offset).unwrap();
}

/// Write `bytes` at `offset` of `file`.
#[cfg(windows)]
fn write_at(file: &std::fs::File, mut bytes: &[u8], mut offset: u64) {
    while !bytes.is_empty() {
        let n = std::os::windows::fs::FileExt::seek_write(file, bytes, offset).unwrap();
        bytes = &bytes[n..];
        offset += n as u64;
    }
}

/// Overwrite random bytes of the region's file forever, mostly in the header.
fn scribble() -> ! {
    let path = std::env::var("FILEMAP_CHILD_PATH").unwrap();
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let size = file.metadata().unwrap().len();
    let mut rng = std::process::id() as u64 | 1;
    let mut next = move || {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng
    };
    println!("@@ scribbling");
    let mut rounds = 0u64;
    loop {
        let r = next();
        let offset = match r % 4 {
            0 | 1 => next() % 256, // the hot header fields
            2 => next() % 4096,    // anywhere in the header
            _ => next() % size,    // anywhere
        };
        let len = (1 + next() % 16).min(size - offset) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        write_at(&file, &bytes, offset);
        rounds += 1;
        if rounds % 100_000 == 0 {
            println!("@@ rounds {rounds}");
        }
        if r % 64 == 0 {
            std::thread::yield_now();
        }
    }
}

/// Errors a hostile peer may legitimately cause.
fn tolerated(e: &Error) -> bool {
    matches!(
        e,
        Error::Corrupted { .. }
            | Error::Timeout { .. }
            | Error::WouldDeadlock { .. }
            | Error::NotARegion { .. }
            | Error::IncompatibleVersion { .. }
            | Error::Truncated { .. }
            | Error::TooManyAttached { .. }
            // The posix backend keeps the region name in the header: bytes
            // copied from another region's file belong to that region.
            | Error::NameCollision { .. }
    )
}

/// One kind of call, run in a loop by its own thread.
type Job = Box<dyn Fn(&FileMap, &Tally) + Send>;

struct Tally {
    ok: AtomicU64,
    errors: AtomicU64,
    slowest_ms: AtomicU64,
}

impl Tally {
    fn record<T>(&self, start: Instant, result: filemap::Result<T>, what: &str) {
        self.slowest_ms
            .fetch_max(start.elapsed().as_millis() as u64, Ordering::Relaxed);
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err(e) if tolerated(&e) => self.errors.fetch_add(1, Ordering::Relaxed),
            Err(e) => panic!("{what}: untyped or unexpected error under scribbling: {e:?}"),
        };
    }
}

#[test]
fn every_call_survives_a_peer_scribbling_on_the_region() {
    let secs: u64 = std::env::var("FILEMAP_HOSTILE_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let name = unique("hostile");
    let _cleanup = Cleanup(name.clone());
    let map = Arc::new(
        FileMap::builder(&name)
            .capacity(4096)
            .persistent(true)
            .lock_timeout(Duration::from_secs(2))
            .open()
            .unwrap(),
    );
    map.write_str("seed").unwrap();
    let path = map.info().path.display().to_string();
    let scribbler = Child::spawn_with("scribble", &name, &[("FILEMAP_CHILD_PATH", path)]);
    assert_eq!(scribbler.line(), "scribbling");

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally {
        ok: AtomicU64::new(0),
        errors: AtomicU64::new(0),
        slowest_ms: AtomicU64::new(0),
    });
    let mut threads = Vec::new();
    let spawn = |threads: &mut Vec<std::thread::JoinHandle<()>>, body: Job| {
        let (map, stop, tally) = (map.clone(), stop.clone(), tally.clone());
        threads.push(std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                body(&map, &tally);
            }
        }));
    };
    for _ in 0..2 {
        spawn(
            &mut threads,
            Box::new(|map, tally| {
                let mut buf = Vec::new();
                let start = Instant::now();
                let result = map.read_into(&mut buf);
                if let Ok(stamp) = &result {
                    assert!(
                        buf.len() <= map.max_capacity(),
                        "read beyond capacity at {stamp:?}"
                    );
                }
                tally.record(start, result, "read_into");
            }),
        );
    }
    // Into a slice shorter than many lengths a scribble leaves: a content
    // that fits, or the length it needs, within the maximum; the bytes
    // past a content that fits are left alone.
    spawn(
        &mut threads,
        Box::new(|map, tally| {
            let mut buf = [0xAB; 48];
            let start = Instant::now();
            let result = map.read_into(&mut buf[..32]);
            match &result {
                Ok(stamp) => assert!(stamp.len <= 32, "{stamp:?}"),
                Err(Error::BufferTooSmall { len, needed, .. }) => {
                    assert_eq!(*len, 32);
                    assert!(*needed > 32 && *needed <= map.max_capacity(), "{needed}");
                }
                Err(_) => {}
            }
            assert_eq!(buf[32..], [0xAB; 16], "a read wrote past its slice");
            let result = result.map(|_| ()).or_else(|e| match e {
                Error::BufferTooSmall { .. } => Ok(()),
                e => Err(e),
            });
            tally.record(start, result, "read_into a slice");
        }),
    );
    spawn(
        &mut threads,
        Box::new(|map, tally| {
            let start = Instant::now();
            tally.record(start, map.write(b"writer"), "write");
        }),
    );
    spawn(
        &mut threads,
        Box::new(|map, tally| {
            let start = Instant::now();
            let result = map.update(|c| {
                c.truncate(100);
                c.push(b'+');
            });
            tally.record(start, result, "update");
        }),
    );
    spawn(
        &mut threads,
        Box::new(|map, tally| {
            let start = Instant::now();
            let seen = map.generation();
            map.wait_change(
                seen,
                filemap::Wait::sleep().timeout(Duration::from_millis(20)),
            )
            .ok();
            map.wait_change(
                seen,
                filemap::Wait::spin().timeout(Duration::from_millis(1)),
            )
            .ok();
            tally.record(start, Ok(()), "wait_change");
            let start = Instant::now();
            tally.record(start, FileMap::open(map.name()), "open");
            let start = Instant::now();
            tally.record(start, filemap::admin::inspect(map.name()), "inspect");
        }),
    );
    let watched = Arc::new(AtomicU64::new(0));
    let watcher = map
        .watch({
            let watched = watched.clone();
            let tally = tally.clone();
            move |change| {
                watched.fetch_add(1, Ordering::Relaxed);
                tally.record(Instant::now(), change, "watch");
            }
        })
        .unwrap();

    std::thread::sleep(Duration::from_secs(secs));
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        thread.join().expect("no call panicked");
    }
    let stopping = Instant::now();
    drop(watcher);
    assert!(
        stopping.elapsed() < Duration::from_secs(2),
        "the watcher stops promptly"
    );
    scribbler.kill9();

    let (ok, errors) = (
        tally.ok.load(Ordering::Relaxed),
        tally.errors.load(Ordering::Relaxed),
    );
    let slowest = tally.slowest_ms.load(Ordering::Relaxed);
    println!(
        "hostile peer for {secs} s: {ok} calls answered with data, {errors} with typed errors, \
         {} watch callbacks, slowest call {slowest} ms",
        watched.load(Ordering::Relaxed)
    );
    assert!(ok > 0);
    assert!(slowest < 15_000, "every call returned in bounded time");
}

/// A valid region file's bytes, to mutate.
fn valid_region_bytes() -> Vec<u8> {
    valid_growable_region_bytes(64)
}

/// A valid region file's bytes, of a region of capacity 64 that may grow
/// to `max_capacity`, to mutate.
fn valid_growable_region_bytes(max_capacity: usize) -> Vec<u8> {
    let name = unique("fuzzseed");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name)
        .capacity(64)
        .max_capacity(max_capacity)
        .persistent(true)
        .open()
        .unwrap();
    map.write_str("seed content").unwrap();
    std::fs::read(map.info().path).unwrap()
}

/// Where region `name`'s file goes: its file in /dev/shm.
#[cfg(not(windows))]
fn region_file(name: &str) -> std::path::PathBuf {
    filemap::admin::shm_path(name)
}

/// Where region `name`'s file goes: the file of a persistent region,
/// found by making one (and closing it, so the file is all that is left).
#[cfg(windows)]
fn region_file(name: &str) -> std::path::PathBuf {
    let map = FileMap::builder(name).persistent(true).open().unwrap();
    map.info().path
}

/// Every entry point on a region whose file holds `bytes`.
fn exercise(bytes: &[u8]) {
    let name = unique("fuzz");
    let _cleanup = Cleanup(name.clone());
    let path = region_file(&name);
    // Removed by its path as well: the bytes may name another region (the
    // seed's, or garbage), and the posix backend rightly refuses to remove
    // an object whose header names another region under this name.
    let _file = RemoveFiles(vec![path.clone()]);
    std::fs::write(&path, bytes).unwrap();
    let check = |result: filemap::Result<()>| {
        if let Err(e) = result {
            assert!(
                tolerated(&e) || matches!(e, Error::TooLarge { .. }),
                "{e:?}"
            );
        }
    };
    check(filemap::admin::inspect(&name).map(|_| ()));
    let opened = FileMap::builder(&name)
        .open_only()
        .lock_timeout(Duration::from_millis(50))
        .open();
    match opened {
        Ok(map) => {
            check(
                map.read()
                    .map(|s| assert!(s.content.len() <= map.max_capacity())),
            );
            check(map.write(b"fuzz").map(|_| ()));
            // A content that may need a growth.
            check(map.write(&[7; 5000]).map(|_| ()));
            check(map.read_string().map(|_| ()).or_else(|e| match e {
                Error::NotUtf8 { .. } => Ok(()),
                e => Err(e),
            }));
            check(map.update(|c| c.push(1)).map(|_| ()));
            map.wait_change(
                map.generation(),
                filemap::Wait::sleep().timeout(Duration::ZERO),
            )
            .ok();
            // Whatever the file holds, the handle describes itself.
            let info = map.info();
            assert_eq!(
                (info.name.as_str(), info.capacity),
                (name.as_str(), map.capacity())
            );
            assert!(info.len <= info.max_capacity, "{info:?}");
            assert!(info.capacity <= info.max_capacity, "{info:?}");
        }
        // A non-persistent region with nobody attached is stale: replaced.
        Err(Error::NotFound { .. }) => {}
        Err(e) => check(Err(e)),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn any_header_mutation_gives_data_or_typed_errors(
        patches in proptest::collection::vec((0usize..4096, any::<u64>()), 1..8),
        truncate in proptest::option::of(0usize..8192),
    ) {
        let mut bytes = valid_region_bytes();
        for (offset, value) in patches {
            let offset = offset.min(bytes.len() - 8);
            bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        }
        if let Some(len) = truncate {
            bytes.truncate(len);
        }
        exercise(&bytes);
    }

    /// The sizes a growable region's header names (capacity, maximum,
    /// each buffer's length) set to anything, among other patches.
    #[test]
    fn any_size_in_a_growable_regions_header_gives_data_or_typed_errors(
        sizes in proptest::collection::vec((proptest::sample::select(vec![16usize, 40, 264, 392]), any::<u64>()), 1..4),
        patches in proptest::collection::vec((0usize..4096, any::<u64>()), 0..3),
    ) {
        let mut bytes = valid_growable_region_bytes(16 << 10);
        for (offset, value) in sizes.into_iter().chain(patches) {
            let offset = offset.min(bytes.len() - 8);
            bytes[offset..offset + 8].copy_from_slice(&value.to_le_bytes());
        }
        exercise(&bytes);
    }

    #[test]
    fn random_files_are_never_taken_for_regions(bytes in proptest::collection::vec(any::<u8>(), 0..8192)) {
        exercise(&bytes);
    }
}

/// `open` gives up, in bounded time, on a lifetime lock a stranger holds
/// exclusively instead of blocking forever. (The posix backend takes no `flock`: its lifetime word is bounded the
/// same way, see its unit tests.)
#[cfg(all(target_os = "linux", not(feature = "posix-backend")))]
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
    let path = filemap::admin::shm_path(&name);
    let mut stranger = std::process::Command::new("flock")
        .args(["--no-fork", "-x"])
        .arg(&path)
        .args(["sleep", "30"])
        .spawn()
        .unwrap();
    // Wait until the stranger holds it: our own non-blocking probe fails.
    common::await_condition("the stranger's lock", || {
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
