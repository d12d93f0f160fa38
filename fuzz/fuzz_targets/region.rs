//! A region file anyone with write access to /dev/shm can craft: header and
//! buffers, as open/attach, read, read_into, info, inspect, list,
//! clean_stale, the lock, the notify word and a growing writer see them,
//! before and after a handle attached (layout version 5: a capacity that
//! grows up to a `max_capacity` fixed at creation, buffers placed by it).
//!
//! Input: a mode byte, then
//! - mode even ("patch"): a capacity (u16), a maximum (u16: even, the
//!   capacity; odd, the capacity plus the value's upper 15 bits), an
//!   initial content (length byte + bytes; it grows the region if longer
//!   than the capacity), a growth length (u16, reduced into the room
//!   between the capacity and the maximum), then patches (offset u16,
//!   kind, ...) laid over the region's file, which the library made (so
//!   the fuzzer starts from a valid header). Kind bits 0-1 choose the
//!   bytes; with bit 2 set the patch is laid only once a handle is open
//!   (a peer scribbling on a region in use), else before it opens;
//! - mode odd ("raw"): the whole file.
//!
//! Then it checks: every call ends with a typed error or a valid result
//! within the time limit (libFuzzer's -timeout); the heap grows by a
//! bounded amount; a handle's maximum is within the limits, the file holds
//! all of it, the handle's mapping of the file is that long, and it never
//! changes whatever the header says later; its capacity never exceeds it;
//! every content read is at most the maximum and is exactly the file's
//! bytes where the layout puts the active buffer's content (so no header
//! value made the reader copy from anywhere else, inside its mapping or
//! out); a write past the maximum is `TooLarge` naming both numbers and
//! loses nothing; a write that grows the region raises the capacity to
//! hold it and is read back whole, also by a handle opened after it; a
//! failed write leaves the previous content readable; a write that
//! succeeds is read back whole.

#![no_main]

use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::Duration;

use filemap::{admin, Error, FileMap, RegionInfo, Wait};
use filemap_fuzz::layout::{self, region_size};
use filemap_fuzz::{private_shm, unique, Bytes, Counting, Heap};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

/// A lock held by a live process other than ours must not hold an input
/// up for the default 10 s.
const LOCK_TIMEOUT: Duration = Duration::from_millis(20);

/// Keeps files (and the heap bound, a multiple of them) small: at most
/// `4096 + 2 * (2079 + 32767)` bytes.
const MAX_EXTRA: usize = 0x7fff;

/// A patch: where, and the bytes.
type Patch = (u64, Vec<u8>);

fuzz_target!(|data: &[u8]| {
    let private = private_shm();
    let mut b = Bytes::new(data);
    let mode = b.u8();
    let name = unique("fz");
    let path = admin::shm_path(&name);
    let heap = Heap::start();
    let file_len;
    let mut live = Vec::new();
    let mut grow = 0;
    if mode.is_multiple_of(2) {
        // A valid region, then patched.
        let capacity = filemap::MIN_CAPACITY + usize::from(b.u16() % 2048);
        let extra = b.u16();
        let max_capacity = if extra.is_multiple_of(2) {
            capacity
        } else {
            capacity + usize::from(extra >> 1).min(MAX_EXTRA)
        };
        let initial = b.field();
        grow = usize::from(b.u16());
        {
            let map = FileMap::builder(&name)
                .capacity(capacity)
                .max_capacity(max_capacity)
                .persistent(true)
                .create_only()
                .open()
                .expect("a fresh region");
            assert_eq!(
                (map.capacity(), map.max_capacity()),
                (capacity, max_capacity)
            );
            layout::check_against(
                &std::fs::read(&path).expect("the file"),
                capacity,
                max_capacity,
            );
            if initial.len() <= max_capacity {
                map.write(initial).expect("a first write");
                assert!(map.capacity() >= initial.len(), "a growth too small");
                // The layout this target checks reads are against.
                let bytes = std::fs::read(&path).expect("the file");
                let at = layout::content_range(&bytes, max_capacity).expect("a valid length");
                assert_eq!(
                    &bytes[at], initial,
                    "the content is not where the layout puts it"
                );
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
            let kind = b.u8();
            let patch: Vec<u8> = match kind % 4 {
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
            if kind & 4 == 0 {
                lay(&file, file_len, &(offset, patch));
            } else {
                live.push((offset, patch));
            }
        }
    } else {
        let content = b.rest();
        std::fs::write(&path, content).expect("a raw region file");
        file_len = content.len() as u64;
    }

    exercise(&name, &path, private, &live, grow);

    if path.exists() {
        let _ = std::fs::remove_file(&path);
    }
    // Bounded by the file: a few copies of it (reads, read_into, the
    // contents written, the file read back to check them), plus fixed
    // costs.
    heap.check(8 * file_len as usize + (256 << 10), "region");
});

/// Lay `patch` on the file (`file_len` bytes: nothing is appended).
fn lay(file: &std::fs::File, file_len: u64, (offset, bytes): &Patch) {
    let room = (file_len - offset) as usize;
    file.write_all_at(&bytes[..bytes.len().min(room)], *offset)
        .expect("patch");
}

/// What a region's info may say, whatever its header holds.
fn check_info(info: &RegionInfo, what: &str) {
    assert!(
        (filemap::MIN_CAPACITY..=filemap::MAX_CAPACITY).contains(&info.max_capacity),
        "{what}: {info:?}"
    );
    assert!(info.capacity <= info.max_capacity, "{what}: {info:?}");
    assert!(info.len <= info.max_capacity, "{what}: {info:?}");
}

/// Bytes of this process's mappings of `path`.
fn mapped_bytes(path: &Path) -> usize {
    let maps = std::fs::read_to_string("/proc/self/maps").expect("/proc/self/maps");
    let path = path.to_str().expect("a UTF-8 path");
    maps.lines()
        .filter(|l| {
            let l = l.strip_suffix(" (deleted)").unwrap_or(l);
            l.ends_with(path)
        })
        .map(|l| {
            let range = l.split(' ').next().expect("a range");
            let (a, b) = range.split_once('-').expect("start-end");
            let a = usize::from_str_radix(a, 16).expect("hex");
            let b = usize::from_str_radix(b, 16).expect("hex");
            b - a
        })
        .sum()
}

/// A content read through a handle of maximum `max` is what the file
/// holds where the layout puts it: read from nowhere else. The file does
/// not change while this process alone uses it.
fn check_read(path: &Path, max: usize, content: &[u8], what: &str) {
    assert!(
        content.len() <= max,
        "{what}: {} bytes read, past the maximum {max}",
        content.len()
    );
    let bytes = std::fs::read(path).expect("the file");
    let at = layout::content_range(&bytes, max)
        .unwrap_or_else(|| panic!("{what}: a read accepted a length past the maximum {max}"));
    assert!(
        at.end <= bytes.len(),
        "{what}: a read of {at:?} past the file's {} bytes succeeded",
        bytes.len()
    );
    assert!(
        bytes[at.clone()] == *content,
        "{what}: the content read is not the file's bytes at {at:?}"
    );
}

fn exercise(name: &str, path: &Path, private: bool, live: &[Patch], grow: usize) {
    if let Ok(info) = admin::inspect(name) {
        check_info(&info, "inspect");
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
    let max = map.max_capacity();
    assert!(
        (filemap::MIN_CAPACITY..=filemap::MAX_CAPACITY).contains(&max),
        "an attached region's maximum {max} out of bounds"
    );
    let file_len = std::fs::metadata(path).expect("metadata").len() as usize;
    assert!(
        region_size(max) <= file_len,
        "a handle of maximum {max} attached to a file of {file_len} bytes"
    );
    let mapped = mapped_bytes(path);
    assert!(
        mapped >= region_size(max),
        "a handle of maximum {max} maps {mapped} bytes of its file"
    );

    // A peer scribbles on the region in use.
    if !live.is_empty() {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(path)
            .expect("the region's file");
        for patch in live {
            lay(&file, file_len as u64, patch);
        }
    }

    let capacity = map.capacity();
    // Bounded by the maximum the handle trusts, whatever the header says
    // now (below the minimum too: that only makes writes grow it).
    assert!(
        capacity <= max,
        "an attached region's capacity {capacity} past its maximum {max}"
    );
    check_info(&map.info(), "info");
    assert_eq!(map.info().max_capacity, max, "info's maximum");
    let _ = map.generation();

    let before = map.read();
    if let Ok(snap) = &before {
        check_read(path, max, &snap.content, "read");
    }
    let mut v = Vec::new();
    if let Ok(stamp) = map.read_into(&mut v) {
        check_read(path, max, &v, "read_into");
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
        Ok(stamp) => check_read(path, max, &small[..stamp.len], "read_into 16"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    let _ = map.wait_change(map.generation(), Wait::default().timeout(Duration::ZERO));

    // A write past the maximum is refused and loses nothing.
    let too_large = vec![b'x'; max + 1];
    match map.write(&too_large) {
        Err(Error::TooLarge {
            len,
            max_capacity,
            capacity: _,
        }) => {
            assert_eq!((len, max_capacity), (max + 1, max));
        }
        other => panic!("a write past the maximum gave {other:?}"),
    }
    let generation = map.generation();
    if let (Ok(snap), Ok(again)) = (&before, map.read()) {
        check_read(path, max, &again.content, "read after TooLarge");
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
    published_or_kept(&map, path, &content, before.as_ref().ok(), generation);

    // A write that grows the region, when it may.
    let capacity = map.capacity();
    if capacity < max {
        let len = capacity + 1 + grow % (max - capacity);
        let content: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let before = map.read();
        let generation = map.generation();
        if published_or_kept(&map, path, &content, before.as_ref().ok(), generation) {
            assert!(
                map.capacity() >= len,
                "a write of {len} bytes left the capacity at {}",
                map.capacity()
            );
            assert!(map.capacity() <= max);
            // A handle opened after the growth sees it (or a typed error
            // when the header, scribbled, is no longer valid; a scribbled
            // maximum that is valid places the buffers elsewhere for it).
            let header = std::fs::read(path).expect("the file");
            let same_max = layout::u64_at(&header, layout::MAX_CAPACITY_AT) == max as u64;
            let reopened = FileMap::builder(name)
                .open_only()
                .lock_timeout(LOCK_TIMEOUT)
                .open();
            if let (Ok(other), true) = (reopened, same_max) {
                assert_eq!(other.max_capacity(), max, "a reopened maximum");
                assert!(other.capacity() >= len, "a reopened capacity");
                if let (Ok(a), Ok(b)) = (map.read(), other.read()) {
                    if a.generation == b.generation {
                        assert_eq!(
                            a.content, b.content,
                            "two handles read one generation differently"
                        );
                    }
                }
            }
        }
    }

    match map.lock() {
        Ok(mut guard) => {
            if let Ok(snap) = guard.read() {
                check_read(path, max, &snap.content, "read under the lock");
            }
            let _ = guard.publish(b"guarded");
        }
        Err(e) => {
            let _ = e.to_string();
        }
    }
    assert_eq!(map.max_capacity(), max, "a handle's maximum moved");
    drop(map);
    lists(name, private);
}

/// Write `content`: true when it was published and read back whole; when
/// refused, the content `before` (of generation `generation`) is still
/// what a read returns.
fn published_or_kept(
    map: &FileMap,
    path: &Path,
    content: &[u8],
    before: Option<&filemap::Snapshot>,
    generation: u64,
) -> bool {
    let max = map.max_capacity();
    match map.write(content) {
        Ok(p) => {
            let snap = map.read().expect("a read right after a write");
            check_read(path, max, &snap.content, "read after a write");
            if snap.generation == p.generation {
                assert_eq!(snap.content, content, "a write not read back whole");
            }
            true
        }
        Err(e) => {
            let _ = e.to_string();
            if let (Some(snap), Ok(again)) = (before, map.read()) {
                check_read(path, max, &again.content, "read after a failed write");
                if again.generation == snap.generation && map.generation() == generation {
                    assert_eq!(
                        again.content, snap.content,
                        "a failed write changed the content"
                    );
                }
            }
            false
        }
    }
}

/// `list` and `clean_stale` walk the whole directory: only in a private one.
fn lists(name: &str, private: bool) {
    if !private {
        return;
    }
    if let Ok(all) = admin::list() {
        for (n, info) in all {
            if let Ok(info) = info {
                check_info(&info, &format!("list: {n}"));
            }
        }
    }
    let _ = admin::clean_stale();
    let _ = admin::remove(name);
}
