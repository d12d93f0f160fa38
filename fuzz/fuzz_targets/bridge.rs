//! A bridge sample as a network peer sends it: the 56-byte attachment
//! (magic, version, HLC time, host id, generation, writer, length) and the
//! payload, through filemap-bridge's decoder, then applied to a region the
//! way the bridge applies a remote value (`write_if` against the
//! generation it knows, refused when larger than the capacity).
//!
//! The decoder is compiled from filemap-bridge's own source file
//! (`src/wire.rs`, which depends on nothing but `filemap`), so the fuzzer
//! does not build Zenoh.
//!
//! Input: a flags byte (bit 0: an attachment is present; bit 1: it is the
//! exact 56 bytes that follow, otherwise a length byte says how many), the
//! attachment, then the payload.
//!
//! Checks: the decoder returns a `WireError` or a `Meta` whose fields
//! re-encode to the bytes received; a refused sample leaves the region's
//! content and generation untouched; an applied one is read back whole.

#![no_main]

#[path = "../../filemap-bridge/src/wire.rs"]
#[allow(dead_code)]
mod wire;

use std::sync::OnceLock;

use filemap::FileMap;
use filemap_fuzz::{private_shm, unique, Bytes, Counting, Heap};
use libfuzzer_sys::fuzz_target;
use wire::{Meta, WireError, META_LEN};

#[global_allocator]
static ALLOC: Counting = Counting;

const CAPACITY: usize = 1024;

fn region() -> &'static FileMap {
    static MAP: OnceLock<FileMap> = OnceLock::new();
    MAP.get_or_init(|| {
        private_shm();
        let map = FileMap::builder(unique("fzb"))
            .capacity(CAPACITY)
            .open()
            .expect("the bridge region");
        map.write(b"previous").expect("a first content");
        map
    })
}

fuzz_target!(|data: &[u8]| {
    let map = region();
    let heap = Heap::start();
    let mut b = Bytes::new(data);
    let flags = b.u8();
    let attachment = if flags & 1 == 0 {
        None
    } else if flags & 2 != 0 {
        Some(b.take(META_LEN))
    } else {
        Some(b.field())
    };
    let payload = b.rest();

    let decoded = Meta::decode(attachment, payload.len());
    let before = map.read().expect("a read");
    let applied = match decoded {
        Ok(meta) => {
            let bytes = attachment.expect("decoded from an attachment");
            let mut expected = [0u8; META_LEN];
            expected.copy_from_slice(bytes);
            // Bytes 5..8 are reserved: written as zero, not checked.
            expected[5..8].fill(0);
            assert_eq!(meta.encode(), expected, "a field lost in decoding");
            assert_eq!(meta.len, payload.len() as u64);
            if meta.len > CAPACITY as u64 {
                // The bridge refuses it before writing; the region would too.
                match map.write_if(before.generation, payload) {
                    Err(filemap::Error::TooLarge { .. }) => {}
                    other => panic!("a sample past the capacity gave {other:?}"),
                }
                false
            } else {
                let p = map
                    .write_if(before.generation, payload)
                    .expect("nobody else writes this region");
                let after = map.read().expect("a read");
                assert_eq!(after.generation, p.generation);
                assert_eq!(after.content, payload, "a sample applied in part");
                true
            }
        }
        Err(e) => {
            let _ = e.to_string();
            match (&e, attachment) {
                (WireError::Missing, None) => {}
                (WireError::Missing, Some(_)) => panic!("an attachment reported missing"),
                (WireError::Length(n), Some(a)) => assert_eq!(*n, a.len()),
                (WireError::LengthMismatch { actual, .. }, Some(_)) => {
                    assert_eq!(*actual, payload.len() as u64);
                }
                (_, Some(a)) => assert_eq!(a.len(), META_LEN),
                (e, None) => panic!("no attachment, yet {e:?}"),
            }
            false
        }
    };
    if !applied {
        let after = map.read().expect("a read");
        assert_eq!(
            after.generation, before.generation,
            "a refused sample wrote"
        );
        assert_eq!(
            after.content, before.content,
            "a refused sample changed the content"
        );
    }
    heap.check(4 * data.len() + (64 << 10), "bridge");
});
