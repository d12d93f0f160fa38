//! The C ABI's arguments: names without a NUL, lengths, flags, capacities,
//! buffer sizes, NULL and bogus handle pointers (within what the contract
//! lets a library check: an 8-aligned pointer to bytes that are not a
//! handle's magic, or a misaligned one).
//!
//! Names and read buffers end exactly at a page the process cannot touch,
//! so reading a byte past what the contract allows is a crash the fuzzer
//! reports (no sanitizer needed).
//!
//! Checks: every status is a documented one, never `FM_E_PANIC`; a failed
//! call leaves a message; a write that succeeds is read back whole, one
//! that fails leaves the previous content; the heap stays bounded.

#![no_main]

use std::ffi::{c_char, CStr};
use std::ptr;

use filemap_ffi::*;
use filemap_fuzz::{private_shm, wipe_private_shm, Bytes, Counting, Heap};
use libfuzzer_sys::fuzz_target;

#[global_allocator]
static ALLOC: Counting = Counting;

const PAGE: usize = 4096;
/// Two pages of room before a page that faults on any access.
const ROOM: usize = 2 * PAGE;

/// Memory followed by an inaccessible page.
struct Guarded {
    base: *mut u8,
}

impl Guarded {
    fn new() -> Guarded {
        // SAFETY: an anonymous private mapping of ROOM + PAGE bytes; its
        // last page then made inaccessible. Checked for failure.
        let base = unsafe {
            let p = libc::mmap(
                ptr::null_mut(),
                ROOM + PAGE,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            );
            assert!(p != libc::MAP_FAILED, "mmap");
            assert_eq!(
                libc::mprotect(p.cast::<u8>().add(ROOM).cast(), PAGE, libc::PROT_NONE),
                0
            );
            p.cast::<u8>()
        };
        Guarded { base }
    }

    /// `len` (at most ROOM) bytes ending at the guard page, filled with `fill`.
    fn tail(&self, len: usize, fill: u8) -> *mut u8 {
        let len = len.min(ROOM);
        // SAFETY: within the ROOM accessible bytes of the mapping.
        unsafe {
            let p = self.base.add(ROOM - len);
            ptr::write_bytes(p, fill, len);
            p
        }
    }
}

// SAFETY: only used from the fuzzing thread; the pointer is to a mapping
// that lives as long as the process.
unsafe impl Send for Guarded {}
// SAFETY: as above.
unsafe impl Sync for Guarded {}

fn arena() -> &'static Guarded {
    static A: std::sync::OnceLock<Guarded> = std::sync::OnceLock::new();
    A.get_or_init(Guarded::new)
}

fn check(status: FmStatus, call: &str) -> FmStatus {
    let name = unsafe_name(status);
    assert_ne!(name, "FM_E_?", "{call}: undocumented status {status}");
    assert_ne!(status, FM_E_PANIC, "{call}: a panic reached the C boundary");
    if status != FM_OK {
        let msg = fm_last_error();
        assert!(!msg.is_null(), "{call}: {name} without a message");
        // SAFETY: fm_last_error returns NULL or a NUL-terminated string
        // valid until the next call on this thread.
        let msg = unsafe { CStr::from_ptr(msg) };
        assert!(
            !msg.to_bytes().is_empty(),
            "{call}: {name} with an empty message"
        );
    }
    status
}

fn unsafe_name(status: FmStatus) -> String {
    // SAFETY: fm_status_name returns a static NUL-terminated string.
    unsafe { CStr::from_ptr(fm_status_name(status)) }
        .to_string_lossy()
        .into_owned()
}

/// A name from the fuzzer's bytes, laid so that its last readable byte is
/// the one before the guard page: at least `fm_max_name_len() + 1`
/// readable bytes (the contract) when it has no NUL.
fn name(b: &mut Bytes) -> *const c_char {
    let bytes = b.field();
    let with_nul = !b.u8().is_multiple_of(4);
    let readable = if with_nul {
        bytes.len() + 1
    } else {
        bytes.len().max(fm_max_name_len() + 1)
    };
    let p = arena().tail(readable, b'n');
    // SAFETY: `readable` >= bytes.len() (+1 with the NUL) bytes at `p`.
    unsafe {
        ptr::copy_nonoverlapping(bytes.as_ptr(), p, bytes.len());
        if with_nul {
            *p.add(bytes.len()) = 0;
        }
    }
    p.cast()
}

struct State {
    maps: Vec<*mut FmMap>,
    /// Fake handles: 8-aligned words that are not a handle's magic.
    fakes: Box<[u64; 4]>,
}

impl State {
    fn handle(&mut self, b: &mut Bytes) -> *const FmMap {
        let pick = b.u8();
        match pick % 8 {
            0 => ptr::null(),
            1 => {
                let mut word = b.u64();
                // The contract: an 8-aligned pointer holding the magic is a
                // live handle. Never hand over one that is not.
                if word == u64::from_le_bytes(*b"fm_map\x01\x00") {
                    word ^= 1;
                }
                self.fakes[0] = word;
                ptr::from_ref(&self.fakes[0]).cast()
            }
            2 => {
                // Misaligned: never read.
                // SAFETY: one byte into the fakes array, within it.
                unsafe {
                    ptr::from_ref(&self.fakes[1])
                        .cast::<u8>()
                        .add(1 + usize::from(pick >> 5))
                }
                .cast()
            }
            _ if self.maps.is_empty() => ptr::null(),
            _ => self.maps[usize::from(pick >> 3) % self.maps.len()],
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if !private_shm() {
        // fm_remove and fm_clean_stale with any name: never on the machine's /dev/shm.
        eprintln!("the ffi target needs a private /dev/shm (run it as root)");
        std::process::exit(2);
    }
    wipe_private_shm();
    let heap = Heap::start();
    let mut b = Bytes::new(data);
    let mut st = State {
        maps: Vec::new(),
        fakes: Box::new([0; 4]),
    };
    let mut steps = 0;
    while !b.is_empty() && steps < 64 {
        steps += 1;
        step(&mut st, &mut b);
    }
    for m in st.maps.drain(..) {
        // SAFETY: a live handle from fm_open, closed once.
        assert_eq!(check(unsafe { fm_close(m) }, "fm_close"), FM_OK);
    }
    wipe_private_shm();
    heap.check(8 * data.len() + (1 << 20), "ffi");
});

fn step(st: &mut State, b: &mut Bytes) {
    match b.u8() % 10 {
        0 => {
            let name = name(b);
            let capacity = match b.u8() % 4 {
                0 => b.u64(),
                1 => FM_MIN_CAPACITY + u64::from(b.u16()),
                2 => 0,
                _ => FM_DEFAULT_CAPACITY,
            };
            let flags = match b.u8() % 3 {
                0 => b.u32(),
                _ => u32::from(b.u8() & 7),
            };
            let mut out: *mut FmMap = ptr::null_mut();
            let want_out = !b.u8().is_multiple_of(8);
            let out_ptr = if want_out {
                &raw mut out
            } else {
                ptr::null_mut()
            };
            // SAFETY: `name` readable as laid out by `name`; `out_ptr` NULL
            // or a local.
            let s = check(
                unsafe { fm_open(name, capacity, flags, out_ptr) },
                "fm_open",
            );
            if s == FM_OK {
                assert!(
                    want_out && !out.is_null(),
                    "fm_open: FM_OK without a handle"
                );
                if st.maps.len() < 4 {
                    st.maps.push(out);
                } else {
                    // SAFETY: just made, closed once.
                    check(unsafe { fm_close(out) }, "fm_close");
                }
            } else {
                assert!(out.is_null(), "fm_open: a handle stored on failure");
            }
        }
        1 => {
            let pick = b.u8();
            if !st.maps.is_empty() && pick.is_multiple_of(2) {
                let m = st.maps.remove(usize::from(pick >> 1) % st.maps.len());
                // SAFETY: a live handle, removed from the state: closed once.
                assert_eq!(check(unsafe { fm_close(m) }, "fm_close"), FM_OK);
            } else {
                let h = st.handle(b);
                if !st.maps.contains(&h.cast_mut()) {
                    // SAFETY: NULL or not a handle (checked by the library).
                    let s = check(unsafe { fm_close(h.cast_mut()) }, "fm_close");
                    assert_ne!(s, FM_OK, "fm_close of something not a handle");
                }
            }
        }
        2 | 3 => {
            let conditional = b.u8() % 2 == 1;
            let h = st.handle(b);
            let expected = b.u64();
            let content = b.field();
            let null_data = b.u8().is_multiple_of(16);
            let data = if null_data {
                ptr::null()
            } else {
                content.as_ptr()
            };
            let prev = read_all(h);
            let mut generation = 0u64;
            let s = if conditional {
                // SAFETY: `h` NULL, a live handle or not a handle; `data`
                // NULL or readable for `content.len()` bytes.
                unsafe { fm_write_if(h, expected, data, content.len(), &raw mut generation) }
            } else {
                // SAFETY: as above.
                unsafe { fm_write(h, data, content.len(), &raw mut generation) }
            };
            let s = check(s, "fm_write");
            let after = read_all(h);
            if s == FM_OK {
                // None: a region over 1 MiB, left unread.
                let Some((g, bytes)) = after else { return };
                assert!(!null_data || content.is_empty());
                if g == generation {
                    assert_eq!(bytes, content, "a write not read back whole");
                }
            } else if let (Some((g0, c0)), Some((g1, c1))) = (prev, after) {
                if g0 == g1 {
                    assert_eq!(c0, c1, "a failed write changed the content");
                }
            }
        }
        4 => {
            let h = st.handle(b);
            let cap = usize::from(b.u16()) % (ROOM + 1);
            let buf = if cap == 0 && b.u8().is_multiple_of(2) {
                ptr::null_mut()
            } else {
                arena().tail(cap, 0xa5)
            };
            let mut len = usize::MAX;
            let mut stamp = FmStamp::default();
            let outs = b.u8();
            let len_ptr = if outs & 1 == 0 {
                &raw mut len
            } else {
                ptr::null_mut()
            };
            let stamp_ptr = if outs & 2 == 0 {
                &raw mut stamp
            } else {
                ptr::null_mut()
            };
            // SAFETY: `buf` NULL (cap 0) or writable for `cap` bytes;
            // `len`/`stamp` NULL or locals.
            let s = check(
                unsafe { fm_read(h, buf, cap, len_ptr, stamp_ptr) },
                "fm_read",
            );
            if s == FM_OK && !len_ptr.is_null() {
                assert!(len <= cap, "fm_read: {len} bytes into a buffer of {cap}");
            }
            if s == FM_E_BUFFER_TOO_SMALL && !len_ptr.is_null() {
                assert!(len > cap, "fm_read: too small for {len} bytes with {cap}");
            }
        }
        5 => {
            let h = st.handle(b);
            let null = b.u8().is_multiple_of(4);
            let mut info = FmInfo::default();
            let mut g = 0u64;
            let mut c = 0usize;
            let mut id = FmWriter::default();
            let mut e = false;
            // SAFETY: each out is NULL or a local; `h` as above.
            unsafe {
                let s = check(
                    fm_info(h, if null { ptr::null_mut() } else { &raw mut info }),
                    "fm_info",
                );
                if s == FM_OK {
                    assert!(info.len <= info.capacity, "fm_info: {info:?}");
                }
                check(
                    fm_generation(h, if null { ptr::null_mut() } else { &raw mut g }),
                    "fm_generation",
                );
                check(
                    fm_capacity(h, if null { ptr::null_mut() } else { &raw mut c }),
                    "fm_capacity",
                );
                check(
                    fm_id(h, if null { ptr::null_mut() } else { &raw mut id }),
                    "fm_id",
                );
                check(
                    fm_existed_already(h, if null { ptr::null_mut() } else { &raw mut e }),
                    "fm_existed_already",
                );
            }
        }
        6 => {
            let name = name(b);
            // SAFETY: `name` laid out by `name`.
            check(unsafe { fm_remove(name) }, "fm_remove");
        }
        7 => {
            let mut n = 0usize;
            let null = b.u8().is_multiple_of(2);
            // SAFETY: NULL or a local.
            check(
                unsafe { fm_clean_stale(if null { ptr::null_mut() } else { &raw mut n }) },
                "fm_clean_stale",
            );
        }
        8 => {
            let h = st.handle(b);
            let mut died = false;
            if b.u8().is_multiple_of(2) {
                // SAFETY: `h` as above; `died` a local.
                check(unsafe { fm_lock(h, &raw mut died) }, "fm_lock");
            } else {
                // SAFETY: `h` as above.
                check(unsafe { fm_unlock(h) }, "fm_unlock");
            }
        }
        _ => {
            let h = st.handle(b);
            let seen = b.u64();
            let strategy = match b.u8() % 2 {
                0 => b.u32(),
                _ => u32::from(b.u8() % 3),
            };
            // At most a millisecond: an input never waits long.
            let timeout = i64::from(b.u16() % 1000) * 1000;
            let mut g = 0u64;
            // SAFETY: `h` as above; no token; `g` a local.
            check(
                unsafe { fm_wait(h, seen, strategy, timeout, ptr::null(), &raw mut g) },
                "fm_wait",
            );
        }
    }
}

/// The content through `h` (a buffer of its capacity), if `h` is a handle.
fn read_all(h: *const FmMap) -> Option<(u64, Vec<u8>)> {
    let mut cap = 0usize;
    // SAFETY: `h` NULL, live or not a handle; `cap` a local.
    if unsafe { fm_capacity(h, &raw mut cap) } != FM_OK {
        return None;
    }
    if cap > 1 << 20 {
        return None; // a large region: left unread, the heap bound is per input
    }
    let mut buf = vec![0u8; cap];
    let mut len = 0usize;
    let mut stamp = FmStamp::default();
    // SAFETY: `buf` writable for `cap` bytes; outs are locals.
    let s = unsafe { fm_read(h, buf.as_mut_ptr(), cap, &raw mut len, &raw mut stamp) };
    if s != FM_OK {
        return None;
    }
    buf.truncate(len);
    Some((stamp.generation, buf))
}
