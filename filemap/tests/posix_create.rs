//! The posix backend makes a region's shared-memory object under its own
//! name (`shm_open(2)` with `O_CREAT | O_EXCL`) and marks it ready last
//! (the magic): a creator killed in between leaves a half-made object.
//! The next opener replaces it once its creator is proven gone, and never
//! while the creator lives (it may be stopped, or slow). Each test stops
//! a creator at one point with the debug-build hook `FILEMAP_TEST_STALL`
//! (`filemap/src/stall.rs`) and kills it there, or leaves it alive. Run
//! with `cargo test -p filemap --features posix-backend --test posix_create`.

#![cfg(all(target_os = "linux", feature = "posix-backend", debug_assertions))]

mod common;

use std::io::Read;
use std::time::{Duration, Instant};

use common::{await_condition, unique, Child, Cleanup};
use filemap::{Error, FileMap};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

/// Offset of the attach table in the header, and the size of a slot (see
/// `layout.rs`).
const SLOTS_AT: usize = 768;
const SLOT_SIZE: usize = 24;
const SLOTS: usize = 128;
/// How long an opener waits for a creator (`INIT_WAIT` in the backend).
const INIT_WAIT: Duration = Duration::from_secs(1);

/// The first page of region `name`'s object, as far as it goes.
fn head(name: &str) -> Option<Vec<u8>> {
    let mut file = std::fs::File::open(filemap::admin::shm_path(name)).ok()?;
    let mut bytes = vec![0; 4096];
    let mut got = 0;
    while got < bytes.len() {
        match file.read(&mut bytes[got..]).ok()? {
            0 => break,
            n => got += n,
        }
    }
    bytes.truncate(got);
    Some(bytes)
}

fn a_slot_is_claimed(page: &[u8]) -> bool {
    (0..SLOTS).any(|i| {
        let at = SLOTS_AT + i * SLOT_SIZE;
        page[at..at + 4] != [0; 4]
    })
}

/// Whether a creator stopped at `point` got there, by what its object
/// shows (a kill between that state and the hook leaves the same state).
fn reached(name: &str, point: &str) -> bool {
    let Some(page) = head(name) else {
        return false;
    };
    match point {
        "created" => true,
        "sized" => page.len() == 4096,
        "claimed" => page.len() == 4096 && a_slot_is_claimed(&page),
        _ => unreachable!("{point}"),
    }
}

/// A child creating region `name` that stops for good at `point`.
fn stalled_creator(name: &str, point: &str) -> Child {
    let child = Child::spawn_with("open", name, &[("FILEMAP_TEST_STALL", point.to_owned())]);
    await_condition(&format!("the creator to stop at {point:?}"), || {
        reached(name, point)
    });
    let page = head(name).unwrap();
    assert!(
        page.len() < 8 || page[..8] == [0; 8],
        "not ready: no magic yet"
    );
    child
}

fn open(name: &str) -> filemap::Result<FileMap> {
    FileMap::builder(name).open()
}

/// A creator killed at `point`: the next opener creates the region
/// afresh, and a second opener racing it (a child) attaches to that new
/// region and removes nothing.
fn killed_creator_is_replaced(point: &str) {
    let name = unique(&format!("killed-{point}"));
    let _cleanup = Cleanup(name.clone());
    stalled_creator(&name, point).kill9();
    assert!(reached(&name, point), "the half-made object stays");

    let mut racer = Child::spawn("race", &name);
    assert_eq!(racer.line(), "ready");
    racer.send("go");
    let map = open(&name).unwrap_or_else(|e| panic!("open after a kill at {point:?}: {e}"));
    let racer_existed = racer.expect("existed=");
    assert_ne!(
        map.existed_already().to_string(),
        racer_existed,
        "exactly one of the two made the region"
    );

    // Both hold the same, live region: neither removed the other's.
    let again = FileMap::builder(&name).open_only().open().unwrap();
    assert!(again.existed_already());
    map.write(b"after the kill").unwrap();
    assert_eq!(&again.read().unwrap().content[..], b"after the kill");
    let info = filemap::admin::inspect(&name).unwrap();
    assert!(info.attached.contains(&racer.pid()), "{:?}", info.attached);
    assert!(info.attached.contains(&std::process::id()));
    assert!(racer.finish().success());
}

#[test]
fn a_creator_killed_right_after_shm_open_leaves_an_empty_object_that_is_replaced() {
    killed_creator_is_replaced("created");
}

#[test]
fn a_creator_killed_after_sizing_before_its_claim_leaves_an_object_that_is_replaced() {
    killed_creator_is_replaced("sized");
}

#[test]
fn a_creator_killed_after_its_claim_before_the_magic_leaves_an_object_that_is_replaced() {
    killed_creator_is_replaced("claimed");
}

/// A creator stopped (alive) at `point` is never replaced: an opener
/// waits for it a bounded time and fails as it always did, and the
/// half-made object stays.
fn stalled_creator_is_not_replaced(point: &str) {
    let name = unique(&format!("stalled-{point}"));
    let _cleanup = Cleanup(name.clone());
    let creator = stalled_creator(&name, point);
    let start = Instant::now();
    match open(&name) {
        Err(Error::NotARegion { .. }) => {}
        Err(e) => panic!("open beside a creator stopped at {point:?}: {e:?}"),
        Ok(_) => panic!("open beside a creator stopped at {point:?} succeeded"),
    }
    assert!(start.elapsed() >= INIT_WAIT, "waited for the creator first");
    assert!(reached(&name, point), "its object stays");
    drop(creator);
}

#[test]
fn a_creator_stopped_right_after_shm_open_is_not_replaced() {
    stalled_creator_is_not_replaced("created");
}

#[test]
fn a_creator_stopped_after_sizing_is_not_replaced() {
    stalled_creator_is_not_replaced("sized");
}

#[test]
fn a_creator_stopped_after_its_claim_is_not_replaced() {
    stalled_creator_is_not_replaced("claimed");
}

/// A region that was ready, whose users all died, and whose magic a peer
/// then zeroed, is not half made: its creator wrote the header, and the
/// content is still there. It stays refused (`NotARegion`), as on Linux,
/// and is never removed and replaced by the next opener.
#[test]
fn a_ready_region_whose_magic_was_zeroed_is_refused_not_replaced() {
    let name = unique("zeroed-magic");
    let _cleanup = Cleanup(name.clone());
    {
        let map = FileMap::builder(&name).persistent(true).open().unwrap();
        map.write(b"keep me").unwrap();
    }
    // A user that dies without closing: its slot stays, naming it.
    let user = Child::spawn("open", &name);
    assert_eq!(user.expect("existed="), "true");
    user.kill9();
    let path = filemap::admin::shm_path(&name);
    std::os::unix::fs::FileExt::write_all_at(
        &std::fs::OpenOptions::new().write(true).open(&path).unwrap(),
        &[0; 8],
        0,
    )
    .unwrap();

    match open(&name) {
        Err(Error::NotARegion { .. }) => {}
        other => panic!("an open of a region whose magic was zeroed: {other:?}"),
    }
    let file = std::fs::read(&path).expect("the object stays");
    assert!(
        file.windows(7).any(|w| w == b"keep me"),
        "the content stays"
    );
}
