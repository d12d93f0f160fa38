//! `read_into`: into a `Vec` (resized, its allocation reused) or a
//! caller's slice (which must hold the content: else `BufferTooSmall`
//! with the length needed, and nothing copied), from the handle and from
//! both guards, while another process publishes contents of varying
//! lengths.

mod common;

use std::time::{Duration, Instant};

use common::{check_payload, unique, Child, Cleanup};
use filemap::{Error, FileMap};

#[test]
#[ignore = "child-process entry point, run by the tests that spawn it"]
fn child_role() {
    common::child_main();
}

#[test]
fn a_slice_gets_the_content_or_the_length_it_needs_and_keeps_its_bytes() {
    let name = unique("read-into");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    // An empty region reads as nothing, even into an empty slice.
    let stamp = map.read_into(&mut [0u8; 0][..]).unwrap();
    assert_eq!((stamp.len, stamp.generation), (0, 0));

    for content in [&b"small, inline"[..], &[7u8; 300][..], &[9u8; 4096][..]] {
        let published = map.write(content).unwrap();
        let mut exact = vec![0xAA; content.len()];
        let stamp = map.read_into(&mut exact[..]).unwrap();
        assert_eq!(
            (stamp.len, stamp.generation),
            (content.len(), published.generation)
        );
        assert_eq!(stamp.writer, map.writer_id());
        assert_eq!(exact, content);

        let mut roomy = vec![0xAA; content.len() + 10];
        let stamp = map.read_into(&mut roomy[..]).unwrap();
        assert_eq!(&roomy[..stamp.len], content);
        assert_eq!(
            &roomy[stamp.len..],
            &[0xAA; 10],
            "bytes past the content stay"
        );

        let mut short = vec![0xAA; content.len() - 1];
        match map.read_into(&mut short[..]) {
            Err(Error::BufferTooSmall { len, needed, .. }) => {
                assert_eq!((len, needed), (content.len() - 1, content.len()));
            }
            other => panic!("{} bytes into one fewer: {other:?}", content.len()),
        }
        assert!(short.iter().all(|&b| b == 0xAA), "nothing copied");
    }
}

/// Every length from empty through the bytes kept in a buffer's line
/// (40) and the first vector blocks reads back byte for byte, through
/// `read_into` into a `Vec` and into a slice, and through `read`: after a
/// longer content of other bytes, and with the slice's bytes past the
/// content left alone.
#[test]
fn every_length_to_300_reads_back_byte_for_byte() {
    let name = unique("read-into-lengths");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::builder(&name).capacity(4096).open().unwrap();
    let mut vec = Vec::new();
    for len in 0..=300usize {
        let content: Vec<u8> = (0..len).map(|i| (i * 31 + len) as u8 | 1).collect();
        map.write(&[0u8; 320]).unwrap();
        map.write(&content).unwrap();

        let stamp = map.read_into(&mut vec).unwrap();
        assert_eq!((stamp.len, &vec[..]), (len, &content[..]), "Vec, {len} B");

        let mut slice = [0xAB; 320];
        let stamp = map.read_into(&mut slice[..]).unwrap();
        assert_eq!(&slice[..stamp.len], &content[..], "slice, {len} B");
        assert!(slice[len..].iter().all(|&b| b == 0xAB), "past {len} B");

        assert_eq!(map.read().unwrap().content, content, "read, {len} B");
    }
}

#[test]
fn a_vec_is_resized_to_the_content_and_keeps_its_allocation() {
    let name = unique("read-vec");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let mut buf = Vec::with_capacity(map.capacity());
    let start = buf.as_ptr();
    for len in [4000, 3, 0, 4096, 41] {
        map.write(&vec![len as u8; len]).unwrap();
        let stamp = map.read_into(&mut buf).unwrap();
        assert_eq!(stamp.len, len);
        assert_eq!(buf, vec![len as u8; len]);
        assert_eq!(buf.as_ptr(), start, "no reallocation");
    }
}

#[test]
fn both_guards_read_into_slices_as_the_handle_does() {
    let name = unique("read-guards");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    map.write(b"under the lock").unwrap();
    let mut buf = [0u8; 32];
    {
        let guard = map.lock().unwrap();
        let stamp = guard.read_into(&mut buf[..]).unwrap();
        assert_eq!(&buf[..stamp.len], b"under the lock");
        let short = guard.read_into(&mut buf[..3]).unwrap_err();
        assert!(matches!(
            short,
            Error::BufferTooSmall {
                len: 3,
                needed: 14,
                ..
            }
        ));
    }
    let mut owned = map.lock_owned().unwrap();
    let stamp = owned.read_into(&mut buf[..]).unwrap();
    assert_eq!(&buf[..stamp.len], b"under the lock");
    std::thread::scope(|s| {
        let elsewhere = s.spawn(|| owned.read_into(&mut [0u8; 32][..]).unwrap_err());
        assert!(matches!(
            elsewhere.join().unwrap(),
            Error::WrongThread { .. }
        ));
    });
    owned.unlock().unwrap();
    assert!(matches!(
        owned.read_into(&mut buf[..]),
        Err(Error::NotLocked { .. })
    ));
}

/// Another process publishes payloads of 961 to 1024 bytes back to back;
/// a reader with a 1000-byte slice gets whole payloads that fit, and for
/// the others the true length of a payload that does not: never a torn
/// one, never a length that was not published.
#[test]
fn a_slice_reader_racing_a_writer_gets_whole_contents_or_true_lengths() {
    let name = unique("read-race");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    let writer = Child::spawn_with(
        "writer-loop",
        &name,
        &[("FILEMAP_CHILD_LEN", "1008".into())],
    );
    writer.expect("started");
    let mut buf = [0u8; 1000];
    let (mut fitted, mut refused) = (0u32, 0u32);
    let until = Instant::now() + Duration::from_millis(500);
    while Instant::now() < until || fitted == 0 || refused == 0 {
        match map.read_into(&mut buf[..]) {
            Ok(stamp) => {
                check_payload(&buf[..stamp.len]).unwrap();
                fitted += 1;
            }
            Err(Error::BufferTooSmall {
                len: 1000, needed, ..
            }) => {
                // The writer's lengths: 1008 - (seq % 64) + 16 trailer bytes.
                assert!((1001..=1024).contains(&needed), "needed {needed}");
                refused += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
        assert!(
            Instant::now() < until + common::STEP,
            "no mix of fits and refusals"
        );
    }
    writer.kill9();
}

/// A buffer nobody initialised (as a C caller's array) gets the content
/// in its first `len` bytes, or the length it needs and no write.
#[test]
fn an_uninitialised_slice_gets_the_content_or_the_length_it_needs() {
    use std::mem::MaybeUninit;
    let name = unique("read-into-uninit");
    let _cleanup = Cleanup(name.clone());
    let map = FileMap::open(&name).unwrap();
    for content in [&b"small, inline"[..], &[7u8; 300][..], &[9u8; 4096][..]] {
        let published = map.write(content).unwrap();
        let mut buf = vec![MaybeUninit::<u8>::uninit(); 8192];
        let stamp = map.read_into(&mut buf[..]).unwrap();
        assert_eq!(
            (stamp.len, stamp.generation),
            (content.len(), published.generation)
        );
        // SAFETY: a successful read wrote the first `stamp.len` bytes.
        let read: Vec<u8> = buf[..stamp.len]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect();
        assert_eq!(read, content);

        let mut short = vec![MaybeUninit::<u8>::uninit(); content.len() - 1];
        match map.read_into(&mut short[..]) {
            Err(filemap::Error::BufferTooSmall { needed, len, .. }) => {
                assert_eq!((needed, len), (content.len(), content.len() - 1));
            }
            other => panic!("a short uninitialised buffer: {other:?}"),
        }
    }
}
