//! The shared header: field offsets, magic and version, validation.
//!
//! This module owns the wire format of a region. Everything in it is read
//! by processes we do not trust, so every field is an atomic and every value
//! read back is validated before use. It must never hand out a `&`/`&mut`
//! to plain data inside the mapping.
//!
//! ```text
//! offset  size  field
//!      0     8  magic            b"FILEMAP\x01" as little-endian u64
//!      8     4  version          LAYOUT_VERSION
//!     12     4  flags            FLAG_PERSISTENT
//!     16     8  capacity         bytes each buffer holds now (MIN_CAPACITY..=
//!                                max_capacity); raised by a growing writer
//!                                under the lock, once the space exists
//!     24     4  creator_pid
//!     28     4  name_len         `posix` backend: length of `name`
//!     32     8  life             `posix` backend: lifetime lock word
//!                                (owner pid + start time; 0: free)
//!     40     8  max_capacity     the most `capacity` may grow to
//!                                (capacity..=MAX_CAPACITY); fixed at creation,
//!                                it places the buffers
//!     64     8  lock             owner's start time (low 32 bits) << 32 | flags |
//!                                owner tid; its low half is the futex word
//!     72     4  lock_pid         owner's process id (informational)
//!     76     4  lock_tid         thread the `lock_pid` record is for
//!    128     8  generation       bumped by every publish; parity = active buffer
//!                                (alone in its 128-byte block: waiters poll it)
//!    256    64  buffers[0]       buffer 0's line: `seq` (the generation it
//!                                holds; SEQ_WRITING while a writer copies
//!                                into it), `len`, `writer` (pid << 32 |
//!                                handle), then up to 40 bytes of content
//!                                (a content that small lives here)
//!    384    64  buffers[1]       the same for buffer 1
//!                                (generation..buffers are `protocol::seqlock::Line`)
//!    512     4  notify           futex word: an event counter (+2 per publish
//!                                or interrupt), bit 0 set by a waiter about
//!                                to sleep
//!    516     4  waiters          number of threads in `wait_once`
//!    640     4  spinners         number of threads busy-polling in an
//!                                adaptive wait (bounded by the CPU count)
//!    768  3072  slots[128]       attach table: (pid, waiters, start time,
//!                                spinners)
//!   3840   256  name             `posix` backend: the full region name
//!                                (objects are named by its hash)
//!
//! Hot fields (written by one process while another polls them) each have
//! a 128-byte block to themselves, the unit x86 CPUs fetch lines in.
//!   4096        buffer 0, then buffer 1 (each `stride(max_capacity)` bytes,
//!               of which the first `stride(capacity)` are backed; see
//!               `backed_ranges`)
//! ```

use core::ptr::NonNull;
use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use core::sync::atomic::{AtomicU32, AtomicU64};
use std::path::Path;

use crate::error::{Error, Result};

use crate::protocol::seqlock::Line;

/// Capacity of a region when the builder names none: 4096 bytes.
pub const DEFAULT_CAPACITY: usize = 4096;
/// Smallest capacity accepted: 32 bytes.
pub const MIN_CAPACITY: usize = 32;
/// Largest capacity accepted: 1 GiB (the mapping holds two buffers).
pub const MAX_CAPACITY: usize = 1 << 30;

/// `b"FILEMAP\x01"` read as a little-endian `u64`.
pub const MAGIC: u64 = u64::from_le_bytes(*b"FILEMAP\x01");
/// Bumped whenever the layout changes incompatibly. 2: per-buffer `seq`
/// and `writer` (so a reader is disturbed only by a rewrite of its own
/// buffer) instead of one `last_writer`, the sleepers bit in `notify`, and
/// the fields of a publish in one cache line. 3: the lock word holds the
/// owner's whole identity (thread id and start time) in one `u64`, and
/// the notify word counts events instead of copying the generation. 4: the
/// generation alone in its line, each buffer's `seq`, `len` and `writer`
/// in a line of its own with contents of up to 40 bytes (a small publish
/// moves two cache lines between CPUs, not three), and every hot field in
/// a 128-byte block of its own. 5: `max_capacity`, and the buffers placed
/// by it (`stride(max_capacity)` apart), so that a region can grow without
/// moving them.
pub const LAYOUT_VERSION: u32 = 5;
/// Size of the header; buffers start here (page aligned).
pub const HEADER_SIZE: usize = 4096;
/// The generation a handle reads once the file under its mapping shrank:
/// the mapping then holds zero pages of the process's own with this value
/// stored as the generation (`backend/unix/fault.rs`), so that every wait
/// on the handle ends at once and its next call reports the loss. No
/// region reaches it by publishing (one publish a nanosecond would take
/// 584 years); a peer that scribbles it only ends waits early.
#[cfg_attr(not(unix), allow(dead_code))]
pub const GONE: u64 = u64::MAX;
/// Number of attach-table slots.
pub const SLOTS: usize = 128;

/// Set in `flags` when the region outlives its last handle.
pub const FLAG_PERSISTENT: u32 = 1;
// Bit 2 of `flags` is the `posix` backend's `FLAG_REMOVED`.
/// Bytes of the full region name kept in the header (`posix` backend).
pub const NAME_BYTES: usize = 256;

/// One attach-table entry. `pid == 0` means free.
#[repr(C)]
pub struct Slot {
    pub pid: AtomicU32,
    /// Threads of this slot's handle sleeping in `wait_change`.
    pub waiters: AtomicU32,
    /// Start time of `pid` in clock ticks since boot, 0 until recorded.
    pub start_time: AtomicU64,
    /// Threads of this slot's handle busy-polling in an adaptive wait.
    pub spinners: AtomicU32,
    _pad: AtomicU32,
}

/// The region header. Lives at offset 0 of the mapping.
///
/// Every field, padding included, is an atomic, so a `&Header` into memory
/// that other processes write is sound: it asserts nothing about the bytes.
#[repr(C, align(64))]
pub struct Header {
    pub magic: AtomicU64,
    pub version: AtomicU32,
    pub flags: AtomicU32,
    pub capacity: AtomicU64,
    pub creator_pid: AtomicU32,
    // `name_len` and `life` are used by the `posix` backend only; zero
    // elsewhere. Touched at open and close only, like this whole line.
    pub name_len: AtomicU32,
    pub life: AtomicU64,
    /// The most `capacity` may grow to; fixed at creation.
    pub max_capacity: AtomicU64,
    _pad0: [AtomicU64; 2],

    pub lock: AtomicU64,
    pub lock_pid: AtomicU32,
    pub lock_tid: AtomicU32,
    _pad1: [AtomicU64; 6],

    // What a publish writes and a read reads: the generation's block and
    // one block per buffer. From here on, every field that processes write
    // while others poll has a 128-byte block to itself: x86 CPUs fetch
    // cache lines in aligned pairs (the adjacent-line prefetcher), so a
    // neighbour in the same pair would move with it.
    pub line: Line,
    // A publish adds to `notify`, a waiter about to sleep sets its bit; a
    // polling waiter touches neither.
    pub notify: AtomicU32,
    pub waiters: AtomicU32,
    _pad2: [AtomicU32; 30],
    // Only adaptive waiters touch it.
    pub spinners: AtomicU32,
    _pad3: [AtomicU32; 31],

    pub slots: [Slot; SLOTS],

    // The `posix` backend's full region name; zero elsewhere.
    pub name: [AtomicU64; NAME_BYTES / 8],
}

impl Header {
    /// Whether the region outlives its last handle (a scribble can flip it;
    /// that changes lifetime only).
    pub fn is_persistent(&self) -> bool {
        self.flags.load(core::sync::atomic::Ordering::Relaxed) & FLAG_PERSISTENT != 0
    }

    /// The header at `base`.
    ///
    /// # Safety
    /// `base` must point to at least [`HEADER_SIZE`] bytes, aligned to 64,
    /// that stay mapped (readable, and writable if the caller writes) for
    /// `'a`. Their contents may be anything: every field is an atomic.
    pub unsafe fn at<'a>(base: NonNull<u8>) -> &'a Header {
        // SAFETY: the caller vouches for size, alignment and lifetime; any
        // bytes are valid atomics.
        unsafe { &*base.as_ptr().cast::<Header>() }
    }

    /// A header in ordinary memory, every field zero, for unit tests.
    #[cfg(test)]
    pub fn zeroed() -> Box<Header> {
        // SAFETY: every field of `Header`, padding included, is an atomic
        // integer, for which all-zero bytes are a valid value; the layout
        // is `Header`'s own, so the allocation fits it.
        unsafe { Box::new(core::mem::zeroed()) }
    }

    /// Who published the current generation (packed [`WriterId`]).
    pub fn last_writer(&self) -> u64 {
        self.line.last_writer()
    }
}

const _: () = {
    assert!(core::mem::size_of::<Slot>() == 24);
    assert!(core::mem::offset_of!(Header, lock) == 64);
    assert!(core::mem::offset_of!(Header, lock_pid) == 72);
    assert!(core::mem::offset_of!(Header, lock_tid) == 76);
    assert!(core::mem::offset_of!(Header, name_len) == 28);
    assert!(core::mem::offset_of!(Header, life) == 32);
    assert!(core::mem::offset_of!(Header, max_capacity) == 40);
    assert!(core::mem::offset_of!(Header, line) == 128);
    assert!(core::mem::offset_of!(Line, buffers) == 128);
    assert!(core::mem::size_of::<crate::protocol::seqlock::BufferLine>() == 128);
    assert!(core::mem::offset_of!(crate::protocol::seqlock::BufferLine, len) == 8);
    assert!(core::mem::offset_of!(crate::protocol::seqlock::BufferLine, writer) == 16);
    assert!(core::mem::offset_of!(crate::protocol::seqlock::BufferLine, inline) == 24);
    assert!(core::mem::offset_of!(Header, notify) == 512);
    assert!(core::mem::offset_of!(Header, waiters) == 516);
    assert!(core::mem::offset_of!(Header, spinners) == 640);
    assert!(core::mem::offset_of!(Header, slots) == 768);
    assert!(core::mem::offset_of!(Header, name) == 3840);
    assert!(core::mem::size_of::<Header>() <= HEADER_SIZE);
    assert!(HEADER_SIZE % 4096 == 0);
};

/// Bytes between the start of buffer 0 and buffer 1 for a (maximum)
/// capacity.
pub const fn stride(capacity: usize) -> usize {
    (capacity + 63) & !63
}

/// Total size of a region's mapping (and backing file) for a maximum
/// capacity: the header and two buffers of `max_capacity` bytes each.
pub const fn region_size(max_capacity: usize) -> usize {
    HEADER_SIZE + 2 * stride(max_capacity)
}

/// Offset of buffer `index` (0 or 1) from the start of the mapping, in a
/// region whose maximum capacity is `max_capacity`: it never moves while
/// the region grows.
pub const fn buffer_offset(max_capacity: usize, index: usize) -> usize {
    HEADER_SIZE + index * stride(max_capacity)
}

/// Bytes of a region's backing store in use at capacity `capacity`: the
/// header and the first `stride(capacity)` bytes of each buffer (what
/// `OutOfSpace` reports as needed).
pub const fn backed_size(capacity: usize) -> usize {
    region_size(capacity)
}

/// The byte ranges `(offset, len)` of the mapping that growing a region
/// of maximum `max_capacity` from capacity `from` to `to` must back with
/// storage: each buffer's bytes from `stride(from)` to `stride(to)`. With
/// `from == 0` (creation) the first range starts at 0 and takes the
/// header too. Backing a range twice is harmless, so a growth that died
/// half-way is redone whole by the next writer.
pub const fn backed_ranges(max_capacity: usize, from: usize, to: usize) -> [(usize, usize); 2] {
    let grown = stride(to) - stride(from);
    if from == 0 {
        [
            (0, HEADER_SIZE + grown),
            (buffer_offset(max_capacity, 1), grown),
        ]
    } else {
        [
            (buffer_offset(max_capacity, 0) + stride(from), grown),
            (buffer_offset(max_capacity, 1) + stride(from), grown),
        ]
    }
}

/// The capacity a region grows to for a content of `len` bytes: `len`
/// rounded up to whole 4 KiB pages (a page is what the backing store
/// allocates), at most `max_capacity`.
pub const fn grown_capacity(len: usize, max_capacity: usize) -> usize {
    let pages = (len + 4095) & !4095;
    if pages < max_capacity {
        pages
    } else {
        max_capacity
    }
}

/// Initialise a zeroed header for a region of `capacity` growing up to
/// `max_capacity`, made by process `creator_pid`; the magic is stored last
/// (Release), so an opener that sees it sees the rest.
pub fn init_header(
    h: &Header,
    capacity: usize,
    max_capacity: usize,
    persistent: bool,
    creator_pid: u32,
) {
    h.version.store(LAYOUT_VERSION, Relaxed);
    h.flags
        .store(if persistent { FLAG_PERSISTENT } else { 0 }, Relaxed);
    h.capacity.store(capacity as u64, Relaxed);
    h.max_capacity.store(max_capacity as u64, Relaxed);
    h.creator_pid.store(creator_pid, Relaxed);
    h.magic.store(MAGIC, Release);
}

/// Validate the header of a mapping `mapped` bytes long of a region
/// `size` bytes long; returns its maximum capacity, read once here and
/// trusted from then on by this handle only (the mapping holds
/// `region_size` of it). The current capacity is checked too, but it
/// moves: a handle reads it again whenever it needs it, and bounds it by
/// the maximum it trusts.
pub fn validate_header(
    name: &str,
    path: &Path,
    h: &Header,
    mapped: usize,
    size: u64,
) -> Result<usize> {
    let shown = || path.display().to_string();
    if h.magic.load(Acquire) != MAGIC {
        return Err(Error::NotARegion {
            path: shown(),
            reason: "it does not start with the filemap magic number",
        });
    }
    let version = h.version.load(Relaxed);
    if version != LAYOUT_VERSION {
        return Err(Error::IncompatibleVersion {
            name: name.to_owned(),
            found: version,
            expected: LAYOUT_VERSION,
        });
    }
    let max = h.max_capacity.load(Relaxed);
    if !(MIN_CAPACITY as u64..=MAX_CAPACITY as u64).contains(&max) {
        return Err(Error::Corrupted {
            name: name.to_owned(),
            field: "max_capacity",
            value: max,
        });
    }
    let capacity = h.capacity.load(Relaxed);
    if !(MIN_CAPACITY as u64..=max).contains(&capacity) {
        return Err(Error::Corrupted {
            name: name.to_owned(),
            field: "capacity",
            value: capacity,
        });
    }
    let needed = region_size(max as usize) as u64;
    if needed > size || needed > mapped as u64 {
        return Err(Error::Truncated {
            name: name.to_owned(),
            size,
            needed,
        });
    }
    Ok(max as usize)
}

/// The current capacity in the header, bounded by the maximum this handle
/// trusts (a scribbled value beyond it reads as the maximum: the mapping
/// holds that much, whatever the header says).
pub fn current_capacity(h: &Header, max_capacity: usize) -> usize {
    (h.capacity.load(Acquire).min(max_capacity as u64)) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_are_cache_line_aligned_and_do_not_overlap() {
        for cap in [32, 33, 4096, 4097, 1 << 20] {
            let b0 = buffer_offset(cap, 0);
            let b1 = buffer_offset(cap, 1);
            assert_eq!(b0 % 64, 0);
            assert_eq!(b1 % 64, 0);
            assert!(b0 + cap <= b1);
            assert!(b1 + cap <= region_size(cap));
        }
    }

    #[test]
    fn growth_backs_each_buffer_from_where_it_stopped_without_moving_it() {
        let max = 64 << 20;
        let [a, b] = backed_ranges(max, 0, 4096);
        assert_eq!(a, (0, HEADER_SIZE + 4096));
        assert_eq!(b, (buffer_offset(max, 1), 4096));
        let [a, b] = backed_ranges(max, 4096, 1 << 20);
        assert_eq!(a, (HEADER_SIZE + 4096, (1 << 20) - 4096));
        assert_eq!(b, (buffer_offset(max, 1) + 4096, (1 << 20) - 4096));
        // A region that never grows backs exactly what it always did.
        let [a, b] = backed_ranges(4096, 0, 4096);
        assert_eq!(a.1 + b.1, region_size(4096));
        assert_eq!(grown_capacity(4097, max), 8192);
        assert_eq!(grown_capacity(max - 1, max), max);
        assert_eq!(grown_capacity(100, 64), 64);
    }
}
