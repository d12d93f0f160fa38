//! Write loans: serialising straight into the region.

mod common;

use filemap::TextExt;
use std::io::Write;
use std::time::Duration;

use common::{unique, Child, Cleanup, STEP};
use filemap::{Error, FileMap};
use proptest::prelude::*;

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    if std::env::var("FILEMAP_CHILD_ROLE").as_deref() == Ok("half-a-loan") {
        let name = std::env::var("FILEMAP_CHILD_NAME").unwrap();
        let map = FileMap::open(&name).unwrap();
        let mut loan = map.loan().unwrap();
        loan.write_all(&[b'x'; 100_000]).unwrap();
        common::say("half written");
        common::wait_for_stdin_eof();
        std::process::exit(0);
    }
    common::child_main();
}

#[test]
fn a_loan_publishes_what_was_written_in_pieces_of_any_size() {
    let name = unique("loan");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(1 << 20).open().unwrap();
    let other = FileMap::open(&name).unwrap();
    let seen = other.generation();
    let mut expected = Vec::new();
    let mut loan = map.loan().unwrap();
    // Small pieces, one crossing the staging chunk, then a huge one.
    for (i, size) in [1usize, 7, 64, 65_535, 3, 200_000, 0, 13]
        .into_iter()
        .enumerate()
    {
        let piece: Vec<u8> = (0..size).map(|j| (i * 31 + j) as u8).collect();
        loan.write_all(&piece).unwrap();
        expected.extend_from_slice(&piece);
    }
    assert_eq!(loan.len(), expected.len());
    // Nothing is visible before the commit.
    assert_eq!(other.read().unwrap().content, b"");
    let published = loan.commit().unwrap();
    assert_eq!(
        other
            .wait_change(seen, filemap::Wait::sleep().timeout(STEP))
            .ok(),
        Some(published.generation)
    );
    let snap = other.read().unwrap();
    assert_eq!(snap.content, expected);
    assert_eq!(snap.writer, map.writer_id());
}

#[test]
fn a_dropped_loan_publishes_nothing_and_releases_the_lock() {
    let name = unique("loandrop");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let before = map.write_str("kept").unwrap().generation;
    let mut loan = map.loan().unwrap();
    loan.write_all(b"never published").unwrap();
    drop(loan);
    assert_eq!(map.generation(), before);
    assert_eq!(map.read_string().unwrap().content, "kept");
    let other = FileMap::builder(&name)
        .lock_timeout(Duration::from_millis(200))
        .open()
        .unwrap();
    assert!(!other.write_str("free").unwrap().owner_died);
}

#[test]
fn a_loan_outgrowing_the_capacity_is_too_large_and_keeps_the_content() {
    let name = unique("loanbig");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(100).open().unwrap();
    map.write_str("kept").unwrap();
    let mut loan = map.loan().unwrap();
    loan.write_all(&[1; 60]).unwrap();
    let err = loan.write_all(&[2; 60]).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    match loan.append(b"x") {
        Err(Error::TooLarge { len, capacity, .. }) => assert_eq!((len, capacity), (121, 100)),
        other => panic!("{other:?}"),
    }
    match loan.commit() {
        Err(Error::TooLarge { capacity: 100, .. }) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(map.read_string().unwrap().content, "kept");
    // Exactly the capacity fits.
    let mut loan = map.loan().unwrap();
    loan.write_all(&[3; 100]).unwrap();
    loan.commit().unwrap();
    assert_eq!(map.read().unwrap().content, vec![3; 100]);
}

#[test]
fn a_writer_killed_mid_loan_leaves_the_published_content_intact() {
    let name = unique("loankill");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(1 << 20).open().unwrap();
    map.write_str("published").unwrap();
    let child = Child::spawn("half-a-loan", &name);
    assert_eq!(child.line(), "half written");
    // Lock-free readers see the published content meanwhile.
    assert_eq!(map.read_string().unwrap().content, "published");
    child.kill9();
    let published = map.write_str("after").unwrap();
    assert!(published.owner_died);
    assert_eq!(map.read_string().unwrap().content, "after");
}

/// A network message arrives in fragments of odd lengths (as Zenoh hands
/// over 1 MiB: about sixteen slices of a little under 64 KiB); appended to
/// a loan one by one, each straight into the region at an offset that is
/// not a multiple of 8 after the first, they publish the message whole.
#[test]
fn a_message_appended_in_odd_fragments_is_published_whole() {
    let name = unique("loanfrag");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(2 << 20).open().unwrap();
    let message: Vec<u8> = (0..(1usize << 20))
        .map(|i| (i * 7 + i / 251) as u8)
        .collect();
    for fragment in [65_517usize, 4_099, 4_096, 65_536, 1 << 20] {
        let mut loan = map.loan().unwrap();
        for piece in message.chunks(fragment) {
            loan.append(piece).unwrap();
        }
        loan.commit().unwrap();
        let got = map.read().unwrap().content;
        assert!(
            got == message,
            "fragments of {fragment} bytes: content differs"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    /// A serialiser's pattern: thousands of writes of a few bytes, through
    /// the staging chunk's growth (4 KiB doubling to 64 KiB), its flushes
    /// into the buffer, and past the capacity.
    #[test]
    fn many_tiny_writes_are_the_concatenation_of_their_bytes(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..20), 0..20_000),
        capacity in 32usize..200_000,
    ) {
        let name = unique("loantiny");
        let _cleanup = Cleanup(name.clone());
        let map = FileMap::builder(&name).capacity(capacity).open().unwrap();
        let mut loan = map.loan().unwrap();
        let mut written = 0;
        let mut refused = None;
        for piece in &pieces {
            match loan.write_all(piece) {
                Ok(()) => written += piece.len(),
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        let total: usize = pieces.iter().map(Vec::len).sum();
        prop_assert_eq!(refused.is_none(), total <= capacity);
        prop_assert_eq!(loan.len(), written);
        if total <= capacity {
            loan.commit().unwrap();
            prop_assert_eq!(map.read().unwrap().content, pieces.concat());
        } else {
            let refused_commit = matches!(loan.commit(), Err(Error::TooLarge { .. }));
            prop_assert!(refused_commit);
            prop_assert_eq!(map.read().unwrap().content, Vec::<u8>::new());
        }
    }

    #[test]
    fn a_loan_is_the_concatenation_of_its_writes(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..70_000), 0..6)
    ) {
        let name = unique("loanprop");
        let _cleanup = Cleanup(name.clone());
        let map = FileMap::builder(&name).capacity(256 << 10).open().unwrap();
        let total: usize = pieces.iter().map(Vec::len).sum();
        let mut loan = map.loan().unwrap();
        let mut fits = true;
        for piece in &pieces {
            fits &= loan.append(piece).is_ok();
        }
        prop_assert_eq!(fits, total <= 256 << 10);
        if fits {
            loan.commit().unwrap();
            prop_assert_eq!(map.read().unwrap().content, pieces.concat());
        } else {
            prop_assert!(loan.commit().is_err());
            prop_assert_eq!(map.read().unwrap().content, Vec::<u8>::new());
        }
    }
}
