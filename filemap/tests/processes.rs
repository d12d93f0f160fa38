//! Cross-process behaviour: every test here runs real OS processes.

mod common;

use filemap::TextExt;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{await_condition, region_file_exists, unique, Child, Cleanup, STEP};
use filemap::FileMap;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

#[test]
fn exactly_one_of_racing_processes_creates_the_region() {
    for round in 0..5 {
        let name = unique(&format!("race{round}"));
        let _cleanup = Cleanup(name.clone());
        let mut children = common::spawn_ready(4, "race", &name, &[]);
        common::go(&mut children);
        let created = children
            .iter()
            .map(|c| c.expect("existed="))
            .filter(|existed| existed == "false")
            .count();
        assert_eq!(created, 1, "round {round}: exactly one process creates");
        for child in children {
            assert!(child.finish().success());
        }
        assert!(!region_file_exists(&name), "last close removes the region");
    }
}

#[test]
fn second_process_sees_exists_already_and_the_existing_capacity() {
    let name = unique("exists");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(10_000).open().unwrap();
    assert!(!map.existed_already());
    let child = Child::spawn_with("open", &name, &[("FILEMAP_CHILD_CAPACITY", "64".into())]);
    assert_eq!(child.expect("existed="), "true");
    let again = FileMap::builder(&name).capacity(64).open().unwrap();
    assert_eq!(
        again.capacity(),
        10_000,
        "attaching keeps the existing capacity"
    );
    assert!(child.finish().success());
}

#[test]
fn content_written_by_one_process_is_read_by_another() {
    let name = unique("rw");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let mut writer = Child::spawn("write", &name);
    let opened = writer.expect("open pid=");
    let writer_pid: u32 = opened.split_whitespace().next().unwrap().parse().unwrap();
    writer.send("hello from the child ✓");
    let gen: u64 = writer.expect("wrote gen=").parse().unwrap();
    let snap = map.read_string().unwrap();
    assert_eq!(snap.content, "hello from the child ✓");
    assert_eq!(snap.generation, gen);
    assert_eq!(snap.writer.pid, writer_pid);
    assert!(writer.finish().success());
}

/// Contents of up to 40 bytes live in their buffer's header line, longer
/// ones in the buffer: sizes on both sides of that boundary, in an order
/// that moves each buffer from one place to the other and back, cross
/// processes whole, whichever way they were written.
#[test]
fn contents_on_both_sides_of_the_small_content_boundary_cross_whole() {
    let name = unique("sizes");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let mut writer = Child::spawn("write", &name);
    writer.expect("open pid=");
    let sizes = [
        1, 40, 41, 0, 7, 8, 9, 39, 48, 3, 64, 65, 40, 200, 2, 4000, 33, 41, 40,
    ];
    for (round, &size) in sizes.iter().enumerate() {
        // Distinct bytes per round and position, so a stale or shifted
        // word would show.
        let content: String = (0..size)
            .map(|i| char::from(b'!' + ((i * 7 + round * 13) % 90) as u8))
            .collect();
        writer.send(&content);
        let generation: u64 = writer.expect("wrote gen=").parse().unwrap();
        let snap = map.read_string().unwrap();
        assert_eq!(snap.generation, generation);
        assert_eq!(snap.content, content, "{size} bytes, written by the child");
        // The same size through a loan in this process.
        let mut loan = map.loan().unwrap();
        for piece in content.as_bytes().chunks(5) {
            loan.append(piece).unwrap();
        }
        loan.commit().unwrap();
        assert_eq!(
            map.read_string().unwrap().content,
            content,
            "{size} bytes, loaned"
        );
    }
    assert!(writer.finish().success());
}

#[test]
fn wait_change_wakes_on_another_process_write_and_times_out_otherwise() {
    let name = unique("wait");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    let start = Instant::now();
    assert_eq!(
        map.wait_change(
            seen,
            filemap::Wait::sleep().timeout(Duration::from_millis(50))
        )
        .ok(),
        None
    );
    assert!(start.elapsed() >= Duration::from_millis(50));

    let mut writer = Child::spawn("write", &name);
    writer.expect("open");
    let waiter = std::thread::spawn({
        let name = name.clone();
        move || {
            let map = FileMap::open(&name).unwrap();
            map.wait_change(seen, filemap::Wait::sleep().timeout(STEP))
                .ok()
        }
    });
    writer.send("wake up");
    let gen: u64 = writer.expect("wrote gen=").parse().unwrap();
    assert_eq!(waiter.join().unwrap(), Some(gen));
    assert!(writer.finish().success());
}

// Windows regression: the threads of one handle share its wake semaphore
// (one leader waits on it, the others on the leader); one publish must
// wake them all and the handle's watcher too, none left to its 1 s slice.
#[test]
fn one_publish_wakes_every_thread_waiting_on_one_handle() {
    let name = unique("threads");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    let (changes, watched) = mpsc::channel();
    let _watcher = map
        .watch(move |change| {
            let _ = changes.send(change.map(|c| c.generation));
        })
        .unwrap();
    let mut writer = Child::spawn("write", &name);
    writer.expect("open");
    std::thread::scope(|scope| {
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let map = &map;
                scope.spawn(move || {
                    let found = map
                        .wait_change(seen, filemap::Wait::sleep().timeout(STEP))
                        .ok();
                    (found, Instant::now())
                })
            })
            .collect();
        writer.send("wake, all threads");
        let gen: u64 = writer.expect("wrote gen=").parse().unwrap();
        let published = Instant::now();
        for waiter in waiters {
            let (found, woke) = waiter.join().unwrap();
            assert_eq!(found, Some(gen));
            let late = woke.saturating_duration_since(published);
            assert!(late < Duration::from_millis(900), "woke {late:?} late");
        }
        assert_eq!(
            watched
                .recv_timeout(Duration::from_millis(900))
                .unwrap()
                .unwrap(),
            gen
        );
    });
    assert!(writer.finish().success());
}

#[test]
fn one_publish_wakes_every_waiting_process() {
    let name = unique("waiters");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let waiters: Vec<Child> = (0..4).map(|_| Child::spawn("wait-change", &name)).collect();
    for waiter in &waiters {
        assert_eq!(waiter.expect("waiting gen="), "0");
    }
    let published = map.write_str("wake, all of you").unwrap();
    // Timed from the publish, here: a waiter's own clock would also count
    // the time the others took to start.
    let at = Instant::now();
    for waiter in waiters {
        assert_eq!(waiter.expect("woke gen="), published.generation.to_string());
        // A lost wake-up would sleep a whole slice (1 s) before rechecking.
        let late = at.elapsed();
        assert!(
            late < Duration::from_millis(1000),
            "woken by the publish, not a timeout: {late:?} after it"
        );
        assert!(waiter.finish().success());
    }
}

#[test]
fn watch_reports_other_processes_writes_and_skips_its_own() {
    let name = unique("watch");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let (tx, rx) = mpsc::channel();
    let watcher = map
        .watch(move |change| {
            let snap = change.expect("watch read");
            tx.send((String::from_utf8(snap.content).unwrap(), snap.writer))
                .unwrap();
        })
        .unwrap();

    let mut writer = Child::spawn("write", &name);
    writer.expect("open");
    map.write_str("my own write").unwrap();
    writer.send("from the child");
    writer.expect("wrote");
    let (content, who) = rx.recv_timeout(STEP).expect("a change");
    assert_eq!(content, "from the child");
    assert_eq!(who.pid, writer.pid());

    // Our own write after that is skipped; the child's next one arrives.
    map.write_str("mine again").unwrap();
    writer.send("second");
    writer.expect("wrote");
    let (content, _) = rx.recv_timeout(STEP).expect("a change");
    assert_eq!(content, "second", "own writes are never reported");
    drop(watcher);
    assert!(writer.finish().success());
}

#[test]
fn watcher_coalesces_a_burst_and_ends_on_the_latest_content() {
    let name = unique("burst");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let (tx, rx) = mpsc::channel();
    let _watcher = map
        .watch(move |change| tx.send(change.unwrap().content).unwrap())
        .unwrap();
    let mut writer = Child::spawn("write", &name);
    writer.expect("open");
    for i in 0..200 {
        writer.send(&format!("burst {i}"));
    }
    for _ in 0..200 {
        writer.expect("wrote");
    }
    let mut last = Vec::new();
    while last != b"burst 199" {
        last = rx
            .recv_timeout(STEP)
            .expect("the latest content is delivered");
    }
    assert!(writer.finish().success());
}

#[test]
fn processes_incrementing_under_the_lock_never_lose_an_update() {
    let name = unique("counter");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    common::count_in_processes(&name, 4, 500);
    assert_eq!(map.read_string().unwrap().content, "2000");
}

#[test]
fn last_close_removes_the_region_and_persistent_regions_stay() {
    let name = unique("lastclose");
    let _cleanup = Cleanup(name.clone());
    let child = Child::spawn("open", &name);
    assert_eq!(child.expect("existed="), "false");
    let map = FileMap::open(&name).unwrap();
    assert!(child.finish().success());
    assert!(region_file_exists(&name), "still open here");
    drop(map);
    assert!(!region_file_exists(&name), "the last close removed it");

    let persistent = FileMap::builder(&name).persistent(true).open().unwrap();
    persistent.write_str("kept").unwrap();
    drop(persistent);
    assert!(region_file_exists(&name));
    let again = FileMap::open(&name).unwrap();
    assert!(again.existed_already());
    assert_eq!(again.read_string().unwrap().content, "kept");
    drop(again);
    filemap::admin::remove(&name).unwrap();
    assert!(!region_file_exists(&name));
    assert!(matches!(
        filemap::admin::remove(&name),
        Err(filemap::Error::NotFound { .. })
    ));
}

// Linux: a killed process leaves the name in /dev/shm behind.
#[cfg(not(windows))]
#[test]
fn a_region_whose_users_were_killed_is_stale_and_replaced() {
    let name = unique("stale");
    let _cleanup = Cleanup(name.clone());
    let mut writer = Child::spawn("write", &name);
    writer.expect("open");
    writer.send("left behind");
    writer.expect("wrote");
    let pid = writer.pid();
    let info = filemap::admin::inspect(&name).unwrap();
    assert_eq!(info.attached, vec![pid]);
    assert!(!info.stale);
    writer.kill9();

    assert!(region_file_exists(&name), "kill -9 cannot remove the name");
    let info = filemap::admin::inspect(&name).unwrap();
    assert!(info.stale, "{info:?}");
    assert!(info.attached.is_empty());

    let fresh = FileMap::open(&name).unwrap();
    assert!(
        !fresh.existed_already(),
        "a stale region is replaced, not attached to"
    );
    assert_eq!(fresh.read().unwrap().content, b"");
    drop(fresh);
    assert!(!region_file_exists(&name));

    // clean_stale removes a stale region without opening it.
    let child = Child::spawn("open", &name);
    child.expect("existed=");
    child.kill9();
    assert!(filemap::admin::clean_stale().unwrap().contains(&name));
    assert!(!region_file_exists(&name));
}

#[test]
fn list_shows_regions_with_their_attached_processes() {
    let name = unique("list");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(100).open().unwrap();
    let child = Child::spawn("open", &name);
    child.expect("existed=");
    let listed = filemap::admin::list().unwrap();
    let (_, info) = listed.iter().find(|(n, _)| *n == name).expect("listed");
    let info = info.as_ref().unwrap();
    assert_eq!(info.capacity, 100);
    assert!(info.attached.contains(&std::process::id()));
    assert!(info.attached.contains(&child.pid()));
    assert!(!info.stale);
    assert!(child.finish().success());
    await_condition("the child to detach", || {
        map.info().attached == vec![std::process::id()]
    });
}

#[test]
fn file_backed_region_persists_in_its_file() {
    let dir = std::env::temp_dir().join(unique("filebacked"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("region");
    let map = FileMap::builder("fb").path(&path).open().unwrap();
    assert!(!map.existed_already());
    map.write_str("on disk").unwrap();
    drop(map);
    assert!(path.exists(), "file-backed regions persist by default");
    let again = FileMap::builder("fb").path(&path).open().unwrap();
    assert!(again.existed_already());
    assert_eq!(again.read_string().unwrap().content, "on disk");
    drop(again);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Windows cannot remove a file race-free when its last user closes, so a
/// non-persistent file-backed region is refused there, with a clear error,
/// before any file is made.
#[cfg(windows)]
#[test]
fn a_non_persistent_file_backed_region_is_refused_on_windows() {
    let dir = std::env::temp_dir().join(unique("filebacked-transient"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("region");
    match FileMap::builder("fbt").path(&path).persistent(false).open() {
        Err(filemap::Error::UnsupportedOption { option, .. }) => {
            assert!(option.contains("persistent(false)"), "{option}")
        }
        other => panic!("expected UnsupportedOption, got {other:?}"),
    }
    assert!(!path.exists(), "nothing was created");
    std::fs::remove_dir_all(&dir).unwrap();
}

// Windows: the kernel removes a section with its last handle however the
// process ended; only the registry entry is left behind, as a stale one.
#[cfg(windows)]
#[test]
fn a_region_whose_users_were_killed_is_gone_and_its_registry_entry_stale() {
    let name = unique("stale");
    let _cleanup = Cleanup(name.clone());
    let mut writer = Child::spawn("write", &name);
    writer.expect("open");
    writer.send("left behind");
    writer.expect("wrote");
    let pid = writer.pid();
    let info = filemap::admin::inspect(&name).unwrap();
    assert_eq!(info.attached, vec![pid]);
    assert!(!info.stale);
    writer.kill9();

    assert!(
        !region_file_exists(&name),
        "the section went with its process"
    );
    let info = filemap::admin::inspect(&name).unwrap();
    assert!(info.stale, "{info:?}");
    let listed = filemap::admin::list().unwrap();
    assert!(listed
        .iter()
        .any(|(n, info)| *n == name && info.as_ref().is_ok_and(|i| i.stale)));
    assert!(filemap::admin::clean_stale().unwrap().contains(&name));
    assert!(matches!(
        filemap::admin::inspect(&name),
        Err(filemap::Error::NotFound { .. })
    ));

    let fresh = FileMap::open(&name).unwrap();
    assert!(!fresh.existed_already());
    assert_eq!(fresh.read().unwrap().content, b"");
}

#[test]
fn a_persistent_region_outlives_its_writer_process_until_removed() {
    let name = unique("persist");
    let _cleanup = Cleanup(name.clone());
    let mut writer = Child::spawn_with("write", &name, &[("FILEMAP_CHILD_PERSISTENT", "1".into())]);
    writer.expect("open");
    writer.send("survives");
    writer.expect("wrote");
    assert!(writer.finish().success());
    assert!(region_file_exists(&name));
    let info = filemap::admin::inspect(&name).unwrap();
    assert!(info.persistent && !info.stale, "{info:?}");
    assert!(filemap::admin::list()
        .unwrap()
        .iter()
        .any(|(n, _)| *n == name));
    let again = FileMap::builder(&name).open_only().open().unwrap();
    assert!(again.existed_already());
    assert_eq!(again.read_string().unwrap().content, "survives");
    drop(again);
    filemap::admin::remove(&name).unwrap();
    assert!(!region_file_exists(&name));
    assert!(matches!(
        FileMap::builder(&name).open_only().open(),
        Err(filemap::Error::NotFound { .. })
    ));
}

#[cfg(windows)]
#[test]
fn global_and_local_names_are_separate_namespaces_on_windows() {
    let name = unique("global");
    let _cleanup = Cleanup(name.clone());
    let global = FileMap::builder(&name).global(true).open().unwrap();
    assert!(!global.existed_already());
    assert!(global.info().path.to_string_lossy().starts_with("Global\\"));
    let child = Child::spawn("open", &name);
    assert_eq!(
        child.expect("existed="),
        "false",
        "Local\\ is another namespace"
    );
    let again = FileMap::builder(&name).global(true).open().unwrap();
    assert!(again.existed_already());
    global.write_str("g").unwrap();
    assert_eq!(again.read_string().unwrap().content, "g");
    assert!(child.finish().success());
}

// Regression: a Global region wrote the Local registry's marker, so its
// last closer deleted a live Local region's marker (list missed it), and
// list/clean_stale took the live Global region's marker for a stale one.
#[cfg(windows)]
#[test]
fn a_global_region_leaves_the_local_registry_alone() {
    let name = unique("global-registry");
    let _cleanup = Cleanup(name.clone());
    let listed_as = |name: &str| {
        filemap::admin::list()
            .unwrap()
            .into_iter()
            .find(|(n, _)| n == name)
            .map(|(_, info)| info.unwrap().stale)
    };
    let local = FileMap::open(&name).unwrap();
    drop(FileMap::builder(&name).global(true).open().unwrap());
    assert_eq!(listed_as(&name), Some(false), "the live Local region");
    drop(local);
    let _global = FileMap::builder(&name).global(true).open().unwrap();
    assert_eq!(listed_as(&name), None, "a Global region is not listed");
    assert!(!filemap::admin::clean_stale().unwrap().contains(&name));
}

#[cfg(not(windows))]
#[test]
fn global_changes_nothing_off_windows() {
    let name = unique("global");
    let _cleanup = Cleanup(name.clone());
    let plain = FileMap::open(&name).unwrap();
    let global = FileMap::builder(&name).global(true).open().unwrap();
    assert!(global.existed_already());
    assert_eq!(global.info().path, plain.info().path);
}

/// Threads of one process, each with its own handle or sharing one, never
/// hold the lock together: on the posix backend the lock word names the
/// process, so only its per-process gate keeps them apart.
#[test]
fn threads_of_one_process_never_lose_an_increment() {
    let name = unique("threads");
    let _cleanup = Cleanup(name.clone());
    let shared = std::sync::Arc::new(FileMap::open(&name).unwrap());
    shared.write_str("0").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let name = name.clone();
            let shared = std::sync::Arc::clone(&shared);
            std::thread::spawn(move || {
                let own = FileMap::open(&name).unwrap();
                let map = if i % 2 == 0 { &own } else { &*shared };
                for _ in 0..250 {
                    map.update(|text| {
                        let n: u64 = std::str::from_utf8(text).unwrap().parse().unwrap();
                        *text = (n + 1).to_string().into_bytes();
                    })
                    .unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    assert_eq!(shared.read_string().unwrap().content, "1000");
}
