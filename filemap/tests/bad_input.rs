//! Bad input and hostile memory: every case gives a typed error carrying
//! the numbers, and the content that was there before is still there.

mod common;

use filemap::TextExt;
use std::fs::OpenOptions;
#[cfg(target_os = "linux")]
use std::os::unix::fs::{FileExt, PermissionsExt};
use std::time::Duration;
#[cfg(target_os = "linux")]
use std::time::Instant;

use common::{unique, Cleanup};
#[cfg(target_os = "linux")]
use common::{Child, STEP};
use filemap::admin::MAX_NAME_LEN;
use filemap::{Error, FileMap, NameRule, MAX_CAPACITY, MIN_CAPACITY};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("open-report-error") {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        match FileMap::open_only_for_test(&name) {
            Ok(_) => println!("@@ opened"),
            Err(e) => println!("@@ error {e:?}"),
        }
        std::process::exit(0);
    }
    common::child_main();
}

trait OpenOnly {
    fn open_only_for_test(name: &str) -> filemap::Result<FileMap>;
}

impl OpenOnly for FileMap {
    fn open_only_for_test(name: &str) -> filemap::Result<FileMap> {
        FileMap::builder(name).open_only().open()
    }
}

fn name_rule(name: &str) -> Option<NameRule> {
    match FileMap::open(name) {
        Err(Error::InvalidName { rule, .. }) => Some(rule),
        Err(other) => panic!("{name:?}: unexpected {other:?}"),
        Ok(map) => {
            drop(map);
            None
        }
    }
}

#[test]
fn names_are_checked_rule_by_rule() {
    assert_eq!(name_rule(""), Some(NameRule::Empty));
    let long = "x".repeat(MAX_NAME_LEN + 1);
    assert_eq!(
        name_rule(&long),
        Some(NameRule::TooLong {
            len: MAX_NAME_LEN + 1,
            max: MAX_NAME_LEN
        })
    );
    assert_eq!(name_rule("a/b"), Some(NameRule::Separator));
    assert_eq!(name_rule("a\\b"), Some(NameRule::Separator));
    assert_eq!(name_rule("a\0b"), Some(NameRule::ControlCharacter));
    assert_eq!(name_rule("tab\there"), Some(NameRule::ControlCharacter));
    assert_eq!(name_rule("."), Some(NameRule::Dots));
    assert_eq!(name_rule(".."), Some(NameRule::Dots));

    let pid = std::process::id();
    for ok in [
        "a".to_string(),
        format!(".leading-dot-{pid}"),
        format!("名前-🦀-{pid}"),
        format!("{pid}{}", "y".repeat(MAX_NAME_LEN - pid.to_string().len())),
    ] {
        let _cleanup = Cleanup(ok.clone());
        assert_eq!(name_rule(&ok), None, "{ok:?} is a valid name");
    }
    let message = FileMap::open(&long).unwrap_err().to_string();
    assert!(
        message.contains(&format!(
            "{} bytes long and the maximum is {MAX_NAME_LEN}",
            MAX_NAME_LEN + 1
        )),
        "{message}"
    );
}

#[test]
fn the_longest_name_works_for_every_object_it_names() {
    let name = format!("{}-", unique("long"));
    let name = format!("{name}{}", "n".repeat(MAX_NAME_LEN - name.len()));
    assert_eq!(name.len(), MAX_NAME_LEN);
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).persistent(true).open().unwrap();
    // A sleep makes the handle's wake semaphore (Windows), the longest name.
    // A failure to make it would only degrade to polling, invisible here:
    // region_windows.rs has the unit test that looks at the semaphore.
    let seen = map.generation();
    assert_eq!(
        map.wait_change(
            seen,
            filemap::Wait::sleep().timeout(Duration::from_millis(1))
        )
        .ok(),
        None
    );
    map.write_str("long names work").unwrap();
    drop(map);
    let again = FileMap::builder(&name).open_only().open().unwrap();
    assert_eq!(again.read_string().unwrap().content, "long names work");
    drop(again);
    filemap::admin::remove(&name).unwrap();
}

#[test]
fn capacities_outside_the_range_are_refused() {
    let name = unique("cap");
    let _cleanup = Cleanup(name.clone());
    for bad in [0, 1, MIN_CAPACITY - 1, MAX_CAPACITY + 1, usize::MAX] {
        match FileMap::builder(&name).capacity(bad).open() {
            Err(Error::InvalidCapacity {
                requested,
                min,
                max,
            }) => {
                assert_eq!(
                    (requested, min, max),
                    (bad as u64, MIN_CAPACITY, MAX_CAPACITY)
                );
            }
            other => panic!("capacity {bad}: {other:?}"),
        }
    }
    let smallest = FileMap::builder(&name)
        .capacity(MIN_CAPACITY)
        .open()
        .unwrap();
    assert_eq!(smallest.capacity(), MIN_CAPACITY);
    assert!(!common::region_file_exists(&unique("never-created")));
}

#[test]
fn the_largest_capacity_works() {
    let name = unique("maxcap");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name)
        .capacity(MAX_CAPACITY)
        .open()
        .unwrap();
    assert_eq!(map.capacity(), MAX_CAPACITY);
    map.write(b"tail").unwrap();
    assert_eq!(map.read().unwrap().content, b"tail");
}

#[test]
fn oversized_writes_are_refused_and_keep_the_previous_content() {
    let name = unique("toolarge");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(64).open().unwrap();
    map.write(&[1; 63]).unwrap();
    let full = map.write(&[2; 64]).unwrap();
    match map.write(&[3; 65]) {
        Err(Error::TooLarge {
            len: 65,
            capacity: 64,
            max_capacity: 64,
        }) => {}
        other => panic!("{other:?}"),
    }
    let snap = map.read().unwrap();
    assert_eq!(snap.content, vec![2; 64]);
    assert_eq!(snap.generation, full.generation, "nothing was published");
    match map.update(|c| c.push(0)) {
        Err(Error::TooLarge {
            len: 65,
            capacity: 64,
            max_capacity: 64,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(map.read().unwrap().content, vec![2; 64]);
    assert!(map.write_lines(["x".repeat(40), "y".repeat(40)]).is_err());
    assert_eq!(map.read().unwrap().content, vec![2; 64]);
}

#[test]
fn open_modes_report_missing_and_existing_regions() {
    let name = unique("modes");
    let _cleanup = Cleanup(name.clone());
    assert!(matches!(
        FileMap::builder(&name).open_only().open(),
        Err(Error::NotFound { .. })
    ));
    let map = FileMap::builder(&name).create_only().open().unwrap();
    assert!(matches!(
        FileMap::builder(&name).create_only().open(),
        Err(Error::AlreadyExists { .. })
    ));
    let attached = FileMap::builder(&name).open_only().open().unwrap();
    assert!(attached.existed_already());
    drop((map, attached));
}

/// Make a persistent region holding `content`, closed, and return its file.
fn closed_region(tag: &str, content: &[u8]) -> (String, std::path::PathBuf, Cleanup) {
    let name = unique(tag);
    let map = FileMap::builder(&name).persistent(true).open().unwrap();
    map.write(content).unwrap();
    // Linux: the file in /dev/shm; Windows: the persistent region's file.
    let path = map.info().path;
    (name.clone(), path, Cleanup(name))
}

fn poke(path: &std::path::Path, offset: u64, bytes: &[u8]) -> Vec<u8> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
        .unwrap();
    let mut old = vec![0; bytes.len()];
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.read_exact(&mut old).unwrap();
    file.seek(SeekFrom::Start(offset)).unwrap();
    file.write_all(bytes).unwrap();
    old
}

#[test]
fn corrupted_headers_are_typed_errors_and_the_content_survives_repair() {
    let (name, path, _cleanup) = closed_region("corrupt", b"precious");

    let old = poke(&path, 0, b"NOTMAGIC");
    assert!(matches!(
        FileMap::open(&name),
        Err(Error::NotARegion { .. })
    ));
    poke(&path, 0, &old);

    let old = poke(&path, 8, &99u32.to_le_bytes());
    match FileMap::open(&name) {
        Err(Error::IncompatibleVersion {
            found: 99,
            expected: 5,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    poke(&path, 8, &old);

    for bad in [0u64, 31, u64::MAX] {
        let old = poke(&path, 16, &bad.to_le_bytes());
        match FileMap::open(&name) {
            Err(Error::Corrupted {
                field: "capacity",
                value,
                ..
            }) => assert_eq!(value, bad),
            other => panic!("{other:?}"),
        }
        poke(&path, 16, &old);
    }

    // A capacity past the maximum is corrupt; a maximum past the file's
    // end is a truncated region.
    let old = poke(&path, 16, &(1u64 << 20).to_le_bytes());
    assert!(matches!(
        FileMap::open(&name),
        Err(Error::Corrupted {
            field: "capacity",
            ..
        })
    ));
    poke(&path, 16, &old);
    let old = poke(&path, 40, &(1u64 << 20).to_le_bytes());
    assert!(matches!(FileMap::open(&name), Err(Error::Truncated { .. })));
    poke(&path, 40, &old);
    for bad in [0u64, 31, u64::MAX] {
        let old = poke(&path, 40, &bad.to_le_bytes());
        match FileMap::open(&name) {
            Err(Error::Corrupted {
                field: "max_capacity",
                value,
                ..
            }) => assert_eq!(value, bad),
            other => panic!("{other:?}"),
        }
        poke(&path, 40, &old);
    }

    // Every repair restores the region with its content.
    let map = FileMap::open(&name).unwrap();
    assert_eq!(map.read().unwrap().content, b"precious");
}

#[test]
fn a_length_scribbled_while_open_is_reported_not_followed() {
    let (name, path, _cleanup) = closed_region("len", b"before");
    let map = FileMap::open(&name).unwrap();
    let generation = map.generation();
    // `len` is the second word of each buffer's line (256, 384).
    let len_offset = 256 + 128 * (generation & 1) + 8;
    poke(&path, len_offset, &u64::MAX.to_le_bytes());
    match map.read() {
        Err(Error::Corrupted {
            field: "len",
            value: u64::MAX,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    // A writer publishes into the other buffer; reading works again.
    map.write_str("after").unwrap();
    assert_eq!(map.read_string().unwrap().content, "after");
    // A scribbled generation just selects a buffer; lengths stay checked:
    // this one selects the buffer whose length was scribbled above.
    let scribbled = 0xdead_beef_u64;
    assert_eq!(scribbled & 1, generation & 1);
    poke(&path, 128, &scribbled.to_le_bytes());
    match map.read() {
        Err(Error::Corrupted {
            field: "len",
            value: u64::MAX,
            ..
        }) => {}
        other => panic!("{other:?}"),
    }
    map.write_str("healed").unwrap();
    assert_eq!(map.read_string().unwrap().content, "healed");
}

#[test]
fn truncated_and_foreign_files_are_not_regions() {
    let (name, path, _cleanup) = closed_region("trunc", b"x");
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(5000).unwrap();
    match FileMap::open(&name) {
        Err(Error::Truncated {
            size: 5000, needed, ..
        }) => assert!(needed > 5000),
        other => panic!("{other:?}"),
    }
    file.set_len(100).unwrap();
    assert!(matches!(
        FileMap::open(&name),
        Err(Error::NotARegion { .. })
    ));
    file.set_len(0).unwrap();
    // Windows regression: an empty persistent file was retried as if its
    // creator were still at work, then reported as a Timeout.
    #[cfg(windows)]
    assert!(matches!(
        FileMap::open(&name),
        Err(Error::NotARegion { .. })
    ));
    // Windows regression: inspecting an empty persistent file was an I/O
    // error (ERROR_FILE_INVALID from CreateFileMapping), found by the fuzz
    // harness in hostile.rs.
    assert!(matches!(
        filemap::admin::inspect(&name),
        Err(Error::NotARegion { .. })
    ));
    std::fs::write(&path, vec![b'z'; 10_000]).unwrap();
    match FileMap::open(&name) {
        Err(Error::NotARegion { reason, .. }) => assert!(reason.contains("magic"), "{reason}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read(&path).unwrap(),
        vec![b'z'; 10_000],
        "a foreign file is left alone"
    );
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn regions_are_owner_only_by_default_and_symlinks_are_not_followed() {
    let name = unique("perm");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let mode = std::fs::metadata(map.info().path)
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    drop(map);

    let shared = FileMap::builder(&name).permissions(0o644).open().unwrap();
    assert_eq!(
        std::fs::metadata(shared.info().path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    drop(shared);

    let planted = unique("planted");
    let _cleanup2 = Cleanup(planted.clone());
    let target = std::env::temp_dir().join(unique("target"));
    std::fs::write(&target, b"not yours").unwrap();
    let link = filemap::admin::shm_path(&planted);
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let opened = FileMap::open(&planted);
    // The link goes whatever the open said: `remove` (the cleanup) does not
    // follow it, and on the posix backend, which these tests also run on
    // Linux, it cannot open the link to remove it.
    std::fs::remove_file(&link).unwrap();
    match opened {
        Err(Error::NotARegion { reason, .. }) => assert!(reason.contains("symbolic link")),
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read(&target).unwrap(), b"not yours");
    std::fs::remove_file(&target).unwrap();
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (runs a child as another uid)"]
fn another_user_cannot_open_an_owner_only_region() {
    require_root("to run a child as another uid");
    let name = unique("otheruid");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    map.write_str("secret").unwrap();
    let mut cmd = filemap_testkit::child::command();
    cmd.env("FILEMAP_CHILD_ROLE", "open-report-error")
        .env("FILEMAP_CHILD_NAME", &name);
    std::os::unix::process::CommandExt::uid(&mut cmd, 65534);
    std::os::unix::process::CommandExt::gid(&mut cmd, 65534);
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("@@ error PermissionDenied"), "{stdout}");
    assert_eq!(map.read_string().unwrap().content, "secret");
}

/// Fail the test, saying `why` it needs root, unless it runs as root.
/// The tests that call it are ignored by default; ci/test.sh runs them
/// (as root) with `--ignored`.
#[cfg(target_os = "linux")]
fn require_root(why: &str) {
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    assert!(root, "this test needs root {why}");
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn a_lock_word_scribbled_to_a_dead_thread_is_taken_over() {
    let (name, path, _cleanup) = closed_region("deadword", b"intact");
    let map = FileMap::open(&name).unwrap();
    // A thread id that is certainly not running: a reaped child's.
    let child = Child::spawn("open", &name);
    child.expect("existed=");
    let dead = child.pid();
    child.kill9();
    poke(&path, 64, &(dead | 1 << 31).to_le_bytes());
    let published = map.write_str("recovered").unwrap();
    assert!(published.owner_died);
    assert_eq!(map.read_string().unwrap().content, "recovered");
}

/// Start time of process 1 in clock ticks (field 22 of /proc/1/stat).
#[cfg(target_os = "linux")]
fn init_start_time() -> u64 {
    let stat = std::fs::read_to_string("/proc/1/stat").unwrap();
    let rest = &stat[stat.rfind(')').unwrap() + 1..];
    rest.split_whitespace().nth(19).unwrap().parse().unwrap()
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn a_lock_word_naming_a_live_thread_with_another_start_time_is_taken_over_at_once() {
    let (name, path, _cleanup) = closed_region("liveword", b"intact");
    let map = FileMap::open(&name).unwrap();
    // pid 1 lives for ever, but it did not start at this time: the word is
    // not its (a reused id, or garbage).
    let wrong_start = (init_start_time() as u32).wrapping_add(1);
    poke(&path, 64, &(u64::from(wrong_start) << 32 | 1).to_le_bytes());
    let start = Instant::now();
    let published = map.write_str("recovered").unwrap();
    assert!(published.owner_died);
    assert!(
        start.elapsed() < Duration::from_millis(500),
        "no grace needed"
    );
    assert_eq!(map.read_string().unwrap().content, "recovered");
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn a_lock_word_naming_a_live_thread_is_never_taken_without_proof() {
    let (name, path, _cleanup) = closed_region("liveword0", b"intact");
    let map = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(1500))
        .open()
        .unwrap();
    // pid 1 with its true start time, and pid 1 with "start unknown": both
    // could be a live owner, so both are waited on until the timeout, which
    // names the holder. (Before the fix an unrecorded live owner's lock was
    // taken after a one-second grace.)
    for start in [init_start_time() as u32, 0] {
        poke(&path, 64, &(u64::from(start) << 32 | 1).to_le_bytes());
        match map.write_str("thief") {
            Err(Error::Timeout {
                holder_pid: Some(1),
                waited,
                ..
            }) => assert!(waited >= Duration::from_millis(1500)),
            other => panic!("a live owner's lock was taken: {other:?}"),
        }
        assert_eq!(map.read_string().unwrap().content, "intact");
    }
    poke(&path, 64, &0u64.to_le_bytes());
    assert!(!map.write_str("free").unwrap().owner_died);
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn a_waiter_count_scribbled_to_zero_delays_a_wake_by_at_most_a_slice() {
    let (name, path, _cleanup) = closed_region("waiters", b"");
    let map = FileMap::open(&name).unwrap();
    let seen = map.generation();
    let waiter = std::thread::spawn({
        let name = name.clone();
        move || {
            FileMap::open(&name)
                .unwrap()
                .wait_change(seen, filemap::Wait::sleep().timeout(STEP))
                .ok()
        }
    });
    common::await_condition("the waiter to sleep", || {
        let mut word = [0u8; 4];
        let file = std::fs::File::open(&path).unwrap();
        file.read_exact_at(&mut word, 516).unwrap(); // `waiters`
        u32::from_le_bytes(word) == 1
    });
    poke(&path, 516, &0u32.to_le_bytes());
    let start = Instant::now();
    let published = map.write_str("wake").unwrap();
    assert_eq!(waiter.join().unwrap(), Some(published.generation));
    assert!(start.elapsed() < Duration::from_millis(1500));
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root (mounts a small tmpfs)"]
fn a_full_filesystem_is_out_of_space_at_open_and_leaves_nothing_behind() {
    require_root("to mount a small tmpfs");
    let dir = std::env::temp_dir().join(unique("smallfs"));
    std::fs::create_dir_all(&dir).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&dir)
        .status()
        .is_ok_and(|s| s.success());
    assert!(mounted, "mount -t tmpfs on {} failed", dir.display());
    let path = dir.join("region");
    let result = FileMap::builder("full")
        .path(&path)
        .capacity(4 << 20)
        .open();
    let small = FileMap::builder("small")
        .path(dir.join("small"))
        .capacity(1024)
        .open();
    let listing: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    drop(small.as_ref().map(|m| m.write_str("fits")));
    let small_ok = small.is_ok();
    drop(small);
    let unmounted = std::process::Command::new("umount")
        .arg(&dir)
        .status()
        .unwrap();
    assert!(unmounted.success());
    std::fs::remove_dir(&dir).unwrap();
    match result {
        Err(Error::OutOfSpace { needed, .. }) => assert_eq!(needed, 4096 + 2 * (4 << 20)),
        other => panic!("{other:?}"),
    }
    assert!(small_ok, "a region that fits still opens");
    assert_eq!(
        listing,
        vec![std::ffi::OsString::from("small")],
        "nothing left of the failed one"
    );
}

#[test]
fn taking_the_lock_twice_in_one_thread_is_an_error_not_a_hang() {
    let name = unique("reenter");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let other = FileMap::open(&name).unwrap();
    map.write_str("kept").unwrap();
    let guard = map.lock().unwrap();
    assert!(matches!(
        map.write_str("x"),
        Err(Error::WouldDeadlock { .. })
    ));
    assert!(matches!(
        other.update(|c| c.push(b'!')),
        Err(Error::WouldDeadlock { .. })
    ));
    drop(guard);
    assert_eq!(map.read_string().unwrap().content, "kept");
    assert!(!other.write_str("free again").unwrap().owner_died);
}

// Pokes the backing file, uses /proc, mounts or uids: Linux only.
#[cfg(target_os = "linux")]
#[test]
fn a_lock_word_scribbled_to_this_very_thread_is_taken_over() {
    let (name, path, _cleanup) = closed_region("selfword", b"intact");
    let map = FileMap::open(&name).unwrap();
    let link = std::fs::read_link("/proc/thread-self").unwrap();
    let tid: u32 = link.file_name().unwrap().to_str().unwrap().parse().unwrap();
    // The posix backend's lock word names the owning process, not thread.
    let me = if cfg!(feature = "posix-backend") {
        std::process::id()
    } else {
        tid
    };
    poke(&path, 64, &me.to_le_bytes());
    let published = map.write_str("recovered").unwrap();
    assert!(published.owner_died, "garbage naming us is not a re-entry");
    assert_eq!(map.read_string().unwrap().content, "recovered");
}

#[test]
fn a_full_attach_table_is_a_clear_error() {
    let name = unique("slots");
    let _cleanup = Cleanup(name.clone());
    let first = FileMap::open(&name).unwrap();
    let handles: Vec<FileMap> = (1..128).map(|_| FileMap::open(&name).unwrap()).collect();
    match FileMap::open(&name) {
        Err(Error::TooManyAttached { max: 128, .. }) => {}
        other => panic!("{other:?}"),
    }
    drop(handles);
    let again = FileMap::open(&name).unwrap();
    assert!(again.existed_already());
    drop(first);
}

#[cfg(target_os = "linux")]
/// A stranger's FIFO, socket or directory where a region should be is
/// a typed error at once, and `list`/`clean_stale` pass over it: none
/// of them may block (a FIFO opened read-only waits for a writer).
#[test]
fn files_of_the_wrong_kind_are_not_regions_and_block_nothing() {
    let fifo = unique("fifo");
    let socket = unique("sock");
    let dir = unique("dir");
    let path = filemap::admin::shm_path;
    let fifo_path = std::ffi::CString::new(path(&fifo).to_str().unwrap()).unwrap();
    // SAFETY: mkfifo(3) with a NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(fifo_path.as_ptr(), 0o666) }, 0);
    let _listener = std::os::unix::net::UnixListener::bind(path(&socket)).unwrap();
    std::fs::create_dir(path(&dir)).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let (f, s, d) = (fifo.clone(), socket.clone(), dir.clone());
    std::thread::spawn(move || {
        let mut seen = Vec::new();
        for (name, what) in [(&f, "FIFO"), (&s, "socket"), (&d, "directory")] {
            for result in [
                FileMap::open(name).map(drop),
                filemap::admin::inspect(name).map(drop),
                FileMap::builder(name.as_str()).open_only().open().map(drop),
            ] {
                match result {
                    Err(Error::NotARegion { reason, .. }) if reason.contains(what) => {}
                    other => seen.push(format!("{name}: {other:?}")),
                }
            }
        }
        let listed = filemap::admin::list().unwrap();
        let entry = listed.iter().find(|(n, _)| *n == f);
        // The posix backend lists its registry of names, where no
        // stranger's file appears.
        let passed_over = cfg!(feature = "posix-backend") && entry.is_none();
        if !passed_over && !matches!(entry, Some((_, Err(Error::NotARegion { .. })))) {
            seen.push(format!("list: {entry:?}"));
        }
        let cleaned = filemap::admin::clean_stale().unwrap();
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
