//! The seqlock at the heart of the protocol, over any memory: the publish
//! line (`Line`) and two buffers reached through [`Buffers`].
//!
//! This file names no other module of the crate but `crate::sync`, the
//! atomics shim, so `tests/model.rs` compiles this very file against loom's
//! atomics and checks it under every interleaving loom explores, fences
//! included; the library compiles it against `core`'s, over the mapping.
//!
//! Two buffers and a seqlock per buffer. A writer (holding the region
//! lock) marks the inactive buffer as being written (`seq = SEQ_WRITING`),
//! copies the content into it, stores its length, writer and `seq = next`,
//! then the generation `next`, whose parity names the active buffer. A
//! reader loads the generation, checks that the active buffer's `seq`
//! holds it, copies, and keeps the copy only if `seq` did not move. Every
//! value read is validated before it is used as a length.

use core::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::sync::{fence, AtomicU64};

/// Optimistic read attempts before a reader falls back to the lock.
pub const READ_ATTEMPTS: u32 = 64;
/// Copies of more than a chunk spoiled by a rewrite before a reader falls
/// back to the lock.
const SPOILED_COPIES: u32 = 2;
/// A lock-free read checks between chunks of this many bytes that its
/// buffer is not being rewritten (64-byte multiple: chunks stay aligned).
pub const COPY_CHUNK: usize = 64 << 10;
/// `seq[i]` while a writer copies into buffer `i`: no generation an honest
/// region reaches (2^64 - 1 publishes).
pub const SEQ_WRITING: u64 = u64::MAX;

/// What a publish writes and a read reads: one cache line of the header.
#[repr(C)]
pub struct Line {
    /// Bumped by every publish; its parity names the active buffer.
    pub generation: AtomicU64,
    /// Content length of each buffer.
    pub len: [AtomicU64; 2],
    /// Who published each buffer (a packed writer id).
    pub writer: [AtomicU64; 2],
    /// The generation each buffer holds; [`SEQ_WRITING`] while a writer
    /// copies into it.
    pub seq: [AtomicU64; 2],
}

impl Line {
    /// Who published the current generation (packed writer id).
    pub fn last_writer(&self) -> u64 {
        self.writer[(self.generation.load(Acquire) & 1) as usize].load(Relaxed)
    }
}

/// A header field holding an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    pub field: &'static str,
    pub value: u64,
}

/// The two buffers: racy-tolerant copies in and out. Another process may
/// write a buffer while it is read; the seqlock throws such copies away.
pub trait Buffers {
    /// Bytes per buffer, validated.
    fn capacity(&self) -> usize;
    /// Append `len` bytes of buffer `index` from `offset` to `out`
    /// (`offset + len <= capacity`, `offset` a multiple of [`COPY_CHUNK`]).
    fn load(&self, index: usize, offset: usize, len: usize, out: &mut Vec<u8>);
    /// Copy `bytes` into buffer `index` at `offset` (`offset + len <=
    /// capacity`, `offset` a multiple of 8).
    fn store(&self, index: usize, offset: usize, bytes: &[u8]);
}

/// Copy buffer `index` (`len <= capacity`, checked) into `out`, in chunks
/// of [`COPY_CHUNK`] bytes. Stops early, returning `false`, as soon as
/// `intact` says the buffer is being rewritten: a doomed copy of a large
/// content then costs a chunk, not the whole.
#[inline]
pub fn copy_out(
    bufs: &impl Buffers,
    index: usize,
    len: usize,
    out: &mut Vec<u8>,
    intact: impl Fn() -> bool,
) -> bool {
    debug_assert!(index < 2 && len <= bufs.capacity());
    out.clear();
    out.reserve(len);
    let mut done = 0;
    loop {
        let chunk = (len - done).min(COPY_CHUNK);
        bufs.load(index, done, chunk, out);
        done += chunk;
        if done == len {
            return true;
        }
        if !intact() {
            return false;
        }
    }
}

/// Optimistic lock-free read into `out`; `(generation, writer)`, or
/// `None` when writers kept moving.
///
/// A seqlock per buffer: the copy of buffer `generation & 1` stands if
/// that buffer still holds `generation` after it (`seq`). The next publish
/// writes the other buffer, so only the one after it can spoil a copy; a
/// reader as slow as a writer still gets through (checking the global
/// generation instead would starve readers of large contents under a
/// steady writer).
#[inline]
pub fn try_read(
    line: &Line,
    bufs: &impl Buffers,
    out: &mut Vec<u8>,
) -> Result<Option<(u64, u64)>, Corrupt> {
    let mut spoiled = 0;
    for _ in 0..READ_ATTEMPTS {
        let generation = line.generation.load(Acquire);
        let index = (generation & 1) as usize;
        // Acquire: pairs with the writer's release store of `seq`, so
        // `len` and `writer` below are the ones published with it.
        if line.seq[index].load(Acquire) != generation {
            // A publish after this generation is under way in it.
            core::hint::spin_loop();
            continue;
        }
        let len = line.len[index].load(Relaxed);
        let writer = line.writer[index].load(Relaxed);
        if len > bufs.capacity() as u64 {
            fence(Acquire);
            if line.seq[index].load(Relaxed) == generation {
                return Err(Corrupt {
                    field: "len",
                    value: len,
                });
            }
            continue;
        }
        // A relaxed look suffices to give up early; accepting the copy
        // takes the fence below.
        let intact = || line.seq[index].load(Relaxed) == generation;
        let copied = copy_out(bufs, index, len as usize, out, intact);
        fence(Acquire);
        if copied && line.seq[index].load(Relaxed) == generation {
            return Ok(Some((generation, writer)));
        }
        // A copy of several chunks spoiled twice: this reader is slower
        // than a writer publishing back to back, and will stay so. The
        // caller reads under the lock, which a starving waiter is handed
        // within one publish (lock.rs, fairness).
        if len as usize > COPY_CHUNK {
            spoiled += 1;
            if spoiled == SPOILED_COPIES {
                return Ok(None);
            }
        }
        core::hint::spin_loop();
    }
    Ok(None)
}

/// Read the published content while holding the lock (it cannot move);
/// `(generation, writer)`.
pub fn read_locked(
    line: &Line,
    bufs: &impl Buffers,
    out: &mut Vec<u8>,
) -> Result<(u64, u64), Corrupt> {
    let generation = line.generation.load(Acquire);
    let index = (generation & 1) as usize;
    let len = line.len[index].load(Relaxed);
    if len > bufs.capacity() as u64 {
        return Err(Corrupt {
            field: "len",
            value: len,
        });
    }
    copy_out(bufs, index, len as usize, out, || true);
    Ok((generation, line.writer[index].load(Relaxed)))
}

/// Start publishing the next generation: mark the inactive buffer as being
/// written and return (next generation, its buffer). The caller holds the
/// lock. Abandoning a publish after this is harmless: the published buffer
/// is untouched, and the marked one is not read.
pub fn begin_publish(line: &Line) -> (u64, usize) {
    // Acquire: after a takeover, nothing orders us after the dead owner's
    // last publish but this load.
    let next = line.generation.load(Acquire).wrapping_add(1);
    let index = (next & 1) as usize;
    // Readers that still copy this (formerly active) buffer must see it
    // marked before they can see our bytes: a reader whose copy saw any of
    // them then sees the mark or a later value (fence to fence).
    line.seq[index].store(SEQ_WRITING, Relaxed);
    fence(Release);
    (next, index)
}

/// Copy `bytes` into buffer `index` at `offset`, during a publish begun by
/// [`begin_publish`] (the caller holds the lock, and keeps `offset` a
/// multiple of 8).
pub fn store_at(bufs: &impl Buffers, index: usize, offset: usize, bytes: &[u8]) {
    assert!(index < 2 && offset % 8 == 0 && offset + bytes.len() <= bufs.capacity());
    bufs.store(index, offset, bytes);
}

/// Publish buffer `index`, filled with `len` bytes, as generation `next`
/// (from [`begin_publish`]), written by `writer` (packed). The caller then
/// wakes the waiters.
pub fn finish_publish(line: &Line, next: u64, index: usize, len: usize, writer: u64) -> u64 {
    line.len[index].store(len as u64, Relaxed);
    line.writer[index].store(writer, Relaxed);
    line.seq[index].store(next, Release);
    line.generation.store(next, Release);
    next
}
