//! Compare-and-publish: `write_if` publishes only on top of the generation
//! the writer last saw.

mod common;

use filemap::TextExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use common::{unique, Cleanup};
use filemap::{Error, FileMap};

fn counter(map: &FileMap) -> u64 {
    map.read_string().unwrap().content.parse().unwrap_or(0)
}

#[test]
fn write_if_publishes_only_on_the_expected_generation() {
    let name = unique("writeif");
    let _cleanup = Cleanup(name.clone());
    let a = FileMap::open(&name).unwrap();
    let b = FileMap::open(&name).unwrap();
    let seen = a.write_str("first").unwrap().generation;
    let moved = b.write_str("b's edit").unwrap().generation;
    match a.write_if(seen, b"a's stale edit") {
        Err(Error::Conflict {
            expected, found, ..
        }) => assert_eq!((expected, found), (seen, moved)),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.read_string().unwrap().content, "b's edit");
    let done = a.write_if(moved, b"a's edit on top").unwrap();
    assert_eq!(done.generation, moved + 1);
    assert!(matches!(
        a.write_if(done.generation, &[0; 5000]),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(b.read_string().unwrap().content, "a's edit on top");
}

#[test]
fn write_if_lets_exactly_one_of_racing_writers_win_each_generation() {
    let name = unique("writeifrace");
    let _cleanup = Cleanup(name.clone());
    let map = Arc::new(FileMap::open(&name).unwrap());
    map.write_str("0").unwrap();
    let wins = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let (map, wins) = (Arc::clone(&map), Arc::clone(&wins));
            std::thread::spawn(move || {
                for _ in 0..500 {
                    let snap = map.read_string().unwrap();
                    let next = snap.content.parse::<u64>().unwrap() + 1;
                    match map.write_if(snap.generation, next.to_string().as_bytes()) {
                        Ok(_) => {
                            wins.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(Error::Conflict { .. }) => {}
                        Err(e) => panic!("{e}"),
                    }
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    // Every successful compare-and-publish added exactly one.
    assert_eq!(counter(&map), wins.load(Ordering::Relaxed));
}
