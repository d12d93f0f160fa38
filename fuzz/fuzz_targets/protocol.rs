//! The publish protocol under a fuzzer-chosen schedule: writes, reads,
//! `read_into`, `update`, and writer processes killed (SIGKILL) at a
//! fuzzer-chosen point of a publish (holding the lock, with a loan open, part
//! of the content copied, just after the commit), all on one region per
//! input, made small (64 bytes) and growing up to 16 KiB: contents longer
//! than the capacity grow it, a killed writer's loan may have grown it
//! without publishing.
//!
//! Input: seq u16, then steps: a length byte (bit 7 clear: 0-127 bytes;
//! set: the low bits times 97, up to 12 KiB, past the first capacity), an
//! operation byte, and for a killed writer its kill point.
//!
//! Checks: every read returns a whole content that was published (never a
//! mix, never the part a dead writer copied); after a writer dies holding
//! the lock, the next write succeeds and reports the dead owner; the
//! generation never goes back; after a publish the capacity holds it, for
//! the writer and for a reader attached before the growth.
//!
//! A killed writer is this binary run again with `FILEMAP_FUZZ_CHILD` set:
//! the child role runs before libFuzzer starts (the `init` block).

#![no_main]

use std::io::Write;
use std::process::Command;
use std::time::Duration;

use filemap::FileMap;
use filemap_fuzz::{private_shm, unique, Bytes, Counting, Heap};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

const CAPACITY: usize = 64;
const MAX_CAPACITY: usize = 16 << 10;
const CHILD: &str = "FILEMAP_FUZZ_CHILD";

/// A content that names itself: `seq` in its first 4 bytes, then `len`
/// bytes derived from it. A torn read would mix two of them.
fn content(seq: u32, len: usize) -> Vec<u8> {
    let mut c = seq.to_le_bytes().to_vec();
    c.extend((0..len).map(|i| (seq as usize).wrapping_mul(31).wrapping_add(i) as u8));
    c.truncate(MAX_CAPACITY);
    c
}

/// The child role: open `name`, take the lock, loan, copy `len` bytes of
/// content `seq`, and die by SIGKILL at `point` (0: holding the lock; 1:
/// with the loan open; 2: after the copy; 3: after the commit).
fn child(spec: &str) -> ! {
    let mut it = spec.split(':');
    let name = it.next().expect("name");
    let mut num = || it.next().expect("field").parse::<usize>().expect("number");
    let (seq, len, point) = (num() as u32, num(), num());
    let map = FileMap::builder(name)
        .open_only()
        .open()
        .expect("child open");
    let die = || -> ! {
        // SAFETY: kill(2) on our own pid.
        unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
        unreachable!("SIGKILL")
    };
    let guard = map.lock().expect("child lock");
    if point == 0 {
        die();
    }
    drop(guard);
    let mut loan = map.loan().expect("child loan");
    if point == 1 {
        die();
    }
    loan.write_all(&content(seq, len)).expect("child copy");
    if point == 2 {
        die();
    }
    loan.commit().expect("child commit");
    die();
}

struct Region {
    map: FileMap,
    reader: FileMap,
}

/// A fresh region for each input (a region only grows: one kept across
/// inputs would leave each input a different start).
fn region() -> Region {
    let name = unique("fzp");
    let map = FileMap::builder(&name)
        .capacity(CAPACITY)
        .max_capacity(MAX_CAPACITY)
        .lock_timeout(Duration::from_secs(2))
        .open()
        .expect("the protocol region");
    let reader = FileMap::builder(&name)
        .open_only()
        .open()
        .expect("a reader");
    Region { map, reader }
}

/// The length a step's byte names.
fn length(byte: u8) -> usize {
    if byte & 0x80 == 0 {
        usize::from(byte)
    } else {
        usize::from(byte & 0x7f) * 97
    }
}

/// After a publish of `len` bytes, both handles see a capacity that holds
/// it.
fn holds(r: &Region, len: usize) {
    let len = len.min(MAX_CAPACITY);
    assert!(
        r.map.capacity() >= len,
        "a publish of {len} bytes left the capacity at {}",
        r.map.capacity()
    );
    assert!(
        r.reader.capacity() >= len,
        "a reader attached before a growth sees a capacity of {}",
        r.reader.capacity()
    );
    assert!(r.map.capacity() <= MAX_CAPACITY);
}

fuzz_target!(
    init: {
        if let Ok(spec) = std::env::var(CHILD) {
            child(&spec);
        }
    },
    |data: &[u8]| {
        private_shm();
        let r = region();
        let heap = Heap::start();
        let mut b = Bytes::new(data);
        // What a read may return: every content published in this input
        // (and the one the region held when it began).
        let start = r.map.read().expect("read");
        let mut allowed: Vec<Vec<u8>> = vec![start.content.clone()];
        let mut last = start.generation;
        let mut seq = u32::from(b.u16()) << 8;
        let mut kills = 0;
        while !b.is_empty() && allowed.len() < 64 {
            seq = seq.wrapping_add(1);
            let len = length(b.u8());
            match b.u8() % 6 {
                0 => {
                    let c = content(seq, len);
                    let p = r.map.write(&c).expect("write");
                    assert!(p.generation > last, "the generation went back");
                    last = p.generation;
                    holds(&r, c.len());
                    allowed.push(c);
                }
                1 => {
                    let c = content(seq, len);
                    let mut loan = r.map.loan().expect("loan");
                    loan.write_all(&c).expect("loan copy");
                    if len.is_multiple_of(2) {
                        let p = loan.commit().expect("commit");
                        last = p.generation;
                        holds(&r, c.len());
                        allowed.push(c);
                    } // else dropped: nothing published
                }
                2 => {
                    let c = content(seq, len);
                    let u = r
                        .map
                        .update(|v| {
                            assert!(allowed.contains(v), "update saw a content never published");
                            v.clear();
                            v.extend_from_slice(&c);
                        })
                        .expect("update");
                    last = u.generation;
                    holds(&r, c.len());
                    allowed.push(c);
                }
                3 if kills < 2 => {
                    kills += 1;
                    let point = usize::from(b.u8() % 4);
                    let status = Command::new(std::env::current_exe().expect("exe"))
                        .env(CHILD, format!("{}:{seq}:{len}:{point}", r.map.name()))
                        .stdin(std::process::Stdio::null())
                        .stdout(std::process::Stdio::null())
                        .status()
                        .expect("spawn a writer");
                    assert_eq!(
                        std::os::unix::process::ExitStatusExt::signal(&status),
                        Some(libc::SIGKILL),
                        "the writer did not reach its kill point: {status}"
                    );
                    if point == 3 {
                        allowed.push(content(seq, len));
                    }
                    // The next write takes over the dead writer's lock.
                    let c = content(seq.wrapping_add(1 << 20), len / 2);
                    let p = r.map.write(&c).expect("a write after a writer died");
                    assert!(
                        p.owner_died || point == 3,
                        "a writer killed holding the lock was not reported"
                    );
                    last = p.generation;
                    holds(&r, c.len());
                    allowed.push(c);
                }
                4 => {
                    let mut buf = vec![0u8; len];
                    match r.reader.read_into(&mut buf[..]) {
                        Ok(stamp) => {
                            let n = r.reader.read().map(|s| s.content.len()).unwrap_or(0);
                            let _ = (stamp, n);
                        }
                        Err(filemap::Error::BufferTooSmall { .. }) => {}
                        Err(e) => panic!("read_into: {e}"),
                    }
                }
                _ => {
                    let s = r.reader.read().expect("read");
                    assert!(
                        allowed.contains(&s.content),
                        "a read returned a content never published whole ({} bytes)",
                        s.content.len()
                    );
                    assert!(s.generation <= r.map.generation());
                }
            }
        }
        let s = r.reader.read().expect("read");
        assert!(allowed.contains(&s.content), "the final content was never published whole");
        let name = r.map.name().to_owned();
        drop(r);
        let _ = filemap::admin::remove(&name);
        // The contents allowed (at most 64 of at most 12 KiB) and a few
        // reads of them.
        heap.check(64 * MAX_CAPACITY * 2 + (1 << 20), "protocol");
    }
);
