//! A region file anyone with write access to /dev/shm can craft: header and
//! buffers, as open/attach, read, read_into, info, inspect, list,
//! clean_stale, the lock and the notify word see them.
//!
//! Input: a mode byte, then
//! - mode even ("patch"): a capacity, an initial content, then patches
//!   (offset, kind, bytes) laid over a region the library made, so the
//!   fuzzer starts from a valid header (offsets come from the library, not
//!   from constants copied here);
//! - mode odd ("raw"): the whole file.
//!
//! Then it checks: every call ends with a typed error or a valid result
//! within the time limit (libFuzzer's -timeout); the heap grows by a
//! bounded amount; a read is at most the capacity; a write that fails
//! leaves the previous content readable; a write that succeeds is read
//! back whole.

#![no_main]

use std::os::unix::fs::FileExt;
use std::time::Duration;

use filemap::{admin, Error, FileMap, Wait};
use filemap_fuzz::{private_shm, unique, Bytes, Counting, Heap};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

/// A lock held by a live process other than ours must not hold an input
/// up for the default 10 s.
const LOCK_TIMEOUT: Duration = Duration::from_millis(20);

fuzz_target!(|data: &[u8]| {
    let private = private_shm();
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let name = unique("fz");
    let path = admin::shm_path(&name);
    let heap = Heap::start();
    let file_len;
    if mode % 2 == 0 {
        // A valid region, then patched.
        let capacity = filemap::MIN_CAPACITY + usize::from(b.u16() % 2048);
        let initial = b.field();
        {
            let map = FileMap::builder(&name)
                .capacity(capacity)
                .persistent(true)
                .create_only()
                .open()
                .expect("a fresh region");
            if initial.len() <= capacity {
                map.write(initial).expect("a first write");
            }
        }
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .expect("the region's file");
        file_len = file.metadata().expect("metadata").len();
        while !b.is_empty() {
            let offset = u64::from(b.u16()) % file_len;
            let patch: Vec<u8> = match b.u8() % 4 {
                // Our own pid: a lock or slot owner that is alive and is us.
                0 => std::process::id().to_le_bytes().to_vec(),
                // pid 1: alive, never ours.
                1 => 1u32.to_le_bytes().to_vec(),
                // A count of bytes to fill with one value (a run of 0xff...).
                2 => {
                    let n = usize::from(b.u8());
                    vec![b.u8(); n]
                }
                _ => b.field().to_vec(),
            };
            let room = (file_len - offset) as usize;
            file.write_all_at(&patch[..patch.len().min(room)], offset)
                .expect("patch");
        }
    } else {
        let content = b.rest();
        std::fs::write(&path, content).expect("a raw region file");
        file_len = content.len() as u64;
    }

    exercise(&name, private);

    if path.exists() {
        let _ = std::fs::remove_file(&path);
    }
    // Bounded by the file: a few copies of it (reads, read_into, the
    // content written), plus fixed costs.
    heap.check(4 * file_len as usize + (256 << 10), "region");
});

fn exercise(name: &str, private: bool) {
    let inspected = admin::inspect(name);
    if let Ok(info) = &inspected {
        assert!(info.len <= info.capacity, "inspect: {info:?}");
    }
    let map = match FileMap::builder(name)
        .open_only()
        .lock_timeout(LOCK_TIMEOUT)
        .open()
    {
        Ok(map) => map,
        Err(e) => {
            let _ = e.to_string();
            lists(name, private);
            return;
        }
    };
    let capacity = map.capacity();
    assert!(
        (filemap::MIN_CAPACITY..=filemap::MAX_CAPACITY).contains(&capacity),
        "an attached region's capacity {capacity} out of bounds"
    );
    let info = map.info();
    assert!(info.len <= info.capacity, "info: {info:?}");
    let _ = map.generation();

    let before = map.read();
    if let Ok(snap) = &before {
        assert!(snap.content.len() <= capacity, "read past the capacity");
    }
    let mut v = Vec::new();
    if let Ok(stamp) = map.read_into(&mut v) {
        assert!(v.len() <= capacity);
        if let Ok(snap) = &before {
            if stamp.generation == snap.generation {
                assert_eq!(
                    v, snap.content,
                    "read_into and read of one generation differ"
                );
            }
        }
    }
    let mut small = [0u8; 16];
    match map.read_into(&mut small[..]) {
        Ok(_) | Err(Error::BufferTooSmall { .. }) => {}
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = map.wait_change(map.generation(), Wait::default().timeout(Duration::ZERO));

    // A write too large is refused and loses nothing.
    let too_large = vec![b'x'; capacity + 1];
    match map.write(&too_large) {
        Err(Error::TooLarge { len, capacity: c }) => {
            assert_eq!((len, c), (capacity + 1, capacity));
        }
        other => panic!("a write past the capacity gave {other:?}"),
    }
    let generation = map.generation();
    if let (Ok(snap), Ok(again)) = (&before, map.read()) {
        if again.generation == snap.generation {
            assert_eq!(
                again.content, snap.content,
                "a refused write changed the content"
            );
        }
    }
    // A write that fits: either published whole or refused, and then the
    // previous content is still what a read returns.
    let content = b"fuzz".repeat(capacity.min(64) / 4);
    match map.write(&content) {
        Ok(p) => {
            let snap = map.read().expect("a read right after a write");
            if snap.generation == p.generation {
                assert_eq!(snap.content, content, "a write not read back whole");
            }
        }
        Err(e) => {
            let _ = e.to_string();
            if let (Ok(snap), Ok(again)) = (&before, map.read()) {
                if again.generation == snap.generation && map.generation() == generation {
                    assert_eq!(
                        again.content, snap.content,
                        "a failed write changed the content"
                    );
                }
            }
        }
    }
    match map.lock() {
        Ok(mut guard) => {
            let _ = guard.read();
            let _ = guard.publish(b"guarded");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    drop(map);
    lists(name, private);
}

/// `list` and `clean_stale` walk the whole directory: only in a private one.
fn lists(name: &str, private: bool) {
    if !private {
        return;
    }
    if let Ok(all) = admin::list() {
        for (n, info) in all {
            if let Ok(info) = info {
                assert!(info.len <= info.capacity, "list: {n}: {info:?}");
            }
        }
    }
    let _ = admin::clean_stale();
    let _ = admin::remove(name);
}
