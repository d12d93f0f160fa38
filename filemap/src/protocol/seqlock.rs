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
//! holds it, copies, and keeps the copy only if `seq` did not move (nor
//! the length and writer it read). Every value read is validated before
//! it is used as a length.
//!
//! A content of at most [`INLINE`] bytes lives in its buffer's line and is
//! published without the mark; a reader of such a content keeps its copy
//! only if the *generation* did not move. Why that holds: any writer that
//! touches buffer `i` after generation `g` publishes `g + 2` or later, so
//! it begins after `g + 1` was published, and it issues a release fence
//! before its first store. A reader whose copy saw any of its stores then
//! sees, after its own acquire fence, a generation of at least `g + 1`
//! (fence to fence), and retries. Such a writer leaves the buffer's bytes
//! alone; its new length and writer are what a concurrent reader of an
//! older, larger content would see change, so that reader checks them
//! again after its copy (the writer id is stored with release, after the
//! length, so whoever saw the new id sees the new length). The generation
//! check would spoil a long copy at every publish, which is why larger
//! contents keep their per-buffer mark; a small copy is over in
//! nanoseconds.
//!
//! Cache lines: the generation has a line of its own, the one waiters
//! poll, and a publish writes it once, last. Each buffer's `seq`, length
//! and writer share a line ([`BufferLine`]) with the first [`INLINE`]
//! bytes a content may hold there: a content that small lives in that line
//! instead of the buffer. So a small publish moves two lines between the
//! writer's and the reader's CPUs (the generation's and the buffer's),
//! like the bare floor (a sequence word and a payload line); with the
//! `seq`s in the generation's line, the writer's early mark pulled that
//! line away from a polling reader and back, one transfer more.

use core::mem::MaybeUninit;
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

/// Bytes of content that live in their buffer's line instead of the
/// buffer: a content of at most this many bytes is published there.
pub const INLINE: usize = 40;

/// What a publish writes: the generation, in a 128-byte block of its own
/// (x86 CPUs fetch lines in aligned pairs), then one block per buffer.
#[repr(C)]
pub struct Line {
    /// Bumped by every publish; its parity names the active buffer.
    pub generation: AtomicU64,
    _pad: [AtomicU64; 15],
    /// Each buffer's seqlock, length, writer and small content.
    pub buffers: [BufferLine; 2],
}

/// One buffer's line (in a 128-byte block of its own): its seqlock, what
/// it holds, and, for a content of at most [`INLINE`] bytes, the content
/// itself.
#[repr(C, align(64))]
pub struct BufferLine {
    /// The generation the buffer holds; [`SEQ_WRITING`] while a writer
    /// copies into it.
    pub seq: AtomicU64,
    /// Content length.
    pub len: AtomicU64,
    /// Who published it (a packed writer id).
    pub writer: AtomicU64,
    /// A content of at most [`INLINE`] bytes, little-endian words.
    pub inline: [AtomicU64; INLINE / 8],
    /// The rest of the 128-byte block: nothing else moves with this line.
    _pad: [AtomicU64; 8],
}

impl Line {
    /// A line whose every field is zero (for models and tests; the
    /// library's lives in the mapping).
    pub fn new() -> Line {
        let zero = || AtomicU64::new(0);
        let buffer = || BufferLine {
            seq: zero(),
            len: zero(),
            writer: zero(),
            inline: core::array::from_fn(|_| zero()),
            _pad: core::array::from_fn(|_| zero()),
        };
        Line {
            generation: zero(),
            _pad: core::array::from_fn(|_| zero()),
            buffers: [buffer(), buffer()],
        }
    }

    /// Who published the current generation (packed writer id).
    pub fn last_writer(&self) -> u64 {
        let index = (self.generation.load(Acquire) & 1) as usize;
        self.buffers[index].writer.load(Relaxed)
    }
}

impl Default for Line {
    fn default() -> Line {
        Line::new()
    }
}

/// A header field holding an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    pub field: &'static str,
    pub value: u64,
}

/// Why a read delivered nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The header holds an impossible value.
    Corrupt(Corrupt),
    /// The content (`needed` bytes, a length that stood) does not fit the
    /// sink, which holds `available`.
    TooSmall { needed: usize, available: usize },
}

impl From<Corrupt> for Refused {
    fn from(c: Corrupt) -> Refused {
        Refused::Corrupt(c)
    }
}

/// Where a read puts the content: a `Vec` (sized to it) or a caller's
/// slice (which must hold it).
pub trait Sink {
    /// Room for exactly `len` bytes, or `None` when they do not fit.
    /// Reading into the room may be abandoned, and the room asked for
    /// again.
    fn room(&mut self, len: usize) -> Option<&mut [MaybeUninit<u8>]>;

    /// The most bytes [`Sink::room`] can give.
    fn available(&self) -> usize;

    /// Keep the `len` bytes just written into the room.
    ///
    /// # Safety
    /// The last [`Sink::room`] call was for `len` bytes, and all of them
    /// were written since.
    unsafe fn filled(&mut self, len: usize);
}

impl Sink for Vec<u8> {
    #[inline]
    fn room(&mut self, len: usize) -> Option<&mut [MaybeUninit<u8>]> {
        self.clear();
        self.reserve(len);
        Some(&mut self.spare_capacity_mut()[..len])
    }

    fn available(&self) -> usize {
        usize::MAX
    }

    #[inline]
    unsafe fn filled(&mut self, len: usize) {
        // SAFETY: the caller wrote all `len` bytes of the room, which is
        // the start of the spare capacity of this (cleared) vector.
        unsafe { self.set_len(len) };
    }
}

impl Sink for [u8] {
    #[inline]
    fn room(&mut self, len: usize) -> Option<&mut [MaybeUninit<u8>]> {
        let bytes = self.get_mut(..len)?;
        // SAFETY: `MaybeUninit<u8>` has the layout of `u8`; a read only
        // ever writes initialised bytes through the room, so the slice
        // stays initialised.
        Some(unsafe { &mut *(bytes as *mut [u8] as *mut [MaybeUninit<u8>]) })
    }

    fn available(&self) -> usize {
        self.len()
    }

    #[inline]
    unsafe fn filled(&mut self, _len: usize) {}
}

/// A buffer that may not be initialised (the C ABI's `fm_read` gets one
/// from its caller): a read only writes the room, never reads it, and after
/// a read the first `len` bytes are the content.
impl Sink for [MaybeUninit<u8>] {
    #[inline]
    fn room(&mut self, len: usize) -> Option<&mut [MaybeUninit<u8>]> {
        self.get_mut(..len)
    }

    fn available(&self) -> usize {
        self.len()
    }

    #[inline]
    unsafe fn filled(&mut self, _len: usize) {}
}

/// The two buffers: racy-tolerant copies in and out. Another process may
/// write a buffer while it is read; the seqlock throws such copies away.
pub trait Buffers {
    /// Bytes per buffer, validated.
    fn capacity(&self) -> usize;
    /// Contents of at most this many bytes (at most [`INLINE`]) live in
    /// their buffer's line. The library's is [`INLINE`]; a model takes
    /// less (0: every content goes through the buffers).
    fn inline_max(&self) -> usize {
        INLINE
    }
    /// Make the first `len` bytes (`len <= capacity`) of both buffers safe
    /// to load: a system whose growing regions get their pages on demand
    /// (Windows commits them) gets them now. `false` if it cannot: an
    /// honest length only names bytes a writer made ready before
    /// publishing it, so the reader reports the length as corrupt. By
    /// default every byte up to the capacity is there.
    fn reach(&self, len: usize) -> bool {
        let _ = len;
        true
    }
    /// Fill `out` with the `out.len()` bytes of buffer `index` from
    /// `offset` (`offset + out.len() <= capacity`, within what
    /// [`Buffers::reach`] made ready, `offset` a multiple of
    /// [`COPY_CHUNK`]).
    fn load(&self, index: usize, offset: usize, out: &mut [MaybeUninit<u8>]);
    /// Copy `bytes` into buffer `index` at `offset` (`offset + len <=
    /// capacity`, `offset` a multiple of 8).
    fn store(&self, index: usize, offset: usize, bytes: &[u8]);
}

/// Copy the content of buffer `index` (`out.len() <= capacity`, checked)
/// into `out`, whole: from its line if it is small, else in chunks of
/// [`COPY_CHUNK`] bytes. Stops early, returning `false`, as soon as
/// `intact` says the buffer is being rewritten: a doomed copy of a large
/// content then costs a chunk, not the whole.
#[inline]
pub fn copy_out(
    line: &Line,
    bufs: &impl Buffers,
    index: usize,
    out: &mut [MaybeUninit<u8>],
    intact: impl Fn() -> bool,
) -> bool {
    let len = out.len();
    debug_assert!(index < 2 && len <= bufs.capacity());
    if len <= inline_max(bufs) {
        load_inline(&line.buffers[index], out);
        return true;
    }
    let mut done = 0;
    loop {
        let chunk = (len - done).min(COPY_CHUNK);
        bufs.load(index, done, &mut out[done..done + chunk]);
        done += chunk;
        if done == len {
            return true;
        }
        if !intact() {
            return false;
        }
    }
}

fn inline_max(bufs: &impl Buffers) -> usize {
    bufs.inline_max().min(INLINE)
}

/// Fill `out` (at most [`INLINE`] bytes) with the bytes held in `line`:
/// a word per 8 bytes, then the last word's first bytes, each piece a
/// store of fixed size (no staging array, no call to `memcpy` for a few
/// bytes).
#[inline]
fn load_inline(line: &BufferLine, out: &mut [MaybeUninit<u8>]) {
    let len = out.len().min(INLINE);
    let mut chunks = out[..len].chunks_exact_mut(8);
    for (chunk, word) in chunks.by_ref().zip(&line.inline) {
        put(chunk, &word.load(Relaxed).to_le_bytes());
    }
    let tail = chunks.into_remainder();
    if let (false, Some(word)) = (tail.is_empty(), line.inline.get(len / 8)) {
        let bytes = word.load(Relaxed).to_le_bytes();
        let mut at = 0;
        for piece in [4, 2, 1] {
            if tail.len() & piece != 0 {
                put(&mut tail[at..at + piece], &bytes[at..at + piece]);
                at += piece;
            }
        }
    }
}

/// `out.write` of `bytes`, as many as both hold.
#[inline(always)]
fn put(out: &mut [MaybeUninit<u8>], bytes: &[u8]) {
    for (slot, byte) in out.iter_mut().zip(bytes) {
        slot.write(*byte);
    }
}

/// Store `bytes` (at most [`INLINE`]) in `line`, the last word
/// zero-padded.
#[inline]
fn store_inline(line: &BufferLine, bytes: &[u8]) {
    let bytes = &bytes[..bytes.len().min(INLINE)];
    let mut chunks = bytes.chunks_exact(8);
    for (chunk, word) in chunks.by_ref().zip(&line.inline) {
        let chunk: [u8; 8] = chunk.try_into().unwrap_or_default();
        word.store(u64::from_le_bytes(chunk), Relaxed);
    }
    let tail = chunks.remainder();
    if let (false, Some(word)) = (tail.is_empty(), line.inline.get(bytes.len() / 8)) {
        let mut padded = [0u8; 8];
        padded[..tail.len()].copy_from_slice(tail);
        word.store(u64::from_le_bytes(padded), Relaxed);
    }
}

/// Optimistic lock-free read into `out`; `(generation, writer, len)`, or
/// `None` when writers kept moving.
///
/// A seqlock per buffer: the copy of buffer `generation & 1` stands if
/// that buffer still holds `generation` after it (`seq`). The next publish
/// writes the other buffer, so only the one after it can spoil a copy; a
/// reader as slow as a writer still gets through (checking the global
/// generation instead would starve readers of large contents under a
/// steady writer).
#[inline]
pub fn try_read<S: Sink + ?Sized>(
    line: &Line,
    bufs: &impl Buffers,
    out: &mut S,
) -> Result<Option<(u64, u64, usize)>, Refused> {
    if let Some(read) = read_settled(line, bufs, out) {
        return Ok(Some(read));
    }
    try_read_again(line, bufs, out)
}

/// The common read in a straight line: a content of one chunk in a
/// settled buffer, copied once, and the copy stood. `None` for anything
/// else (a publish under way or landing meanwhile, a length past the
/// capacity or a chunk, a sink too small), which [`try_read_again`] reads
/// again and tells apart. A small read is a few dozen instructions, most
/// of them the copy; the loop's retries, chunks and verdicts stay out of
/// its way.
#[inline(always)]
fn read_settled<S: Sink + ?Sized>(
    line: &Line,
    bufs: &impl Buffers,
    out: &mut S,
) -> Option<(u64, u64, usize)> {
    let generation = line.generation.load(Acquire);
    let index = (generation & 1) as usize;
    let buffer = &line.buffers[index];
    // Acquire: as in `try_read_again`.
    if buffer.seq.load(Acquire) != generation {
        return None;
    }
    let len = buffer.len.load(Relaxed);
    let writer = buffer.writer.load(Relaxed);
    if len > bufs.capacity().min(COPY_CHUNK) as u64 || !bufs.reach(len as usize) {
        return None;
    }
    let room = out.room(len as usize)?;
    // `copy_out` would do, but its chunk loop, which one chunk does not
    // need, costs a fifth more instructions per small read.
    let small = len <= inline_max(bufs) as u64;
    if small {
        load_inline(buffer, room);
    } else {
        bufs.load(index, 0, room);
    }
    fence(Acquire);
    if !unchanged(line, buffer, small, (generation, len, writer)) {
        return None;
    }
    // SAFETY: the room of `len` bytes was filled whole just above.
    unsafe { out.filled(len as usize) };
    Some((generation, writer, len as usize))
}

/// Whether `buffer` still holds what a reader loaded of it, `(generation,
/// len, writer)`, after the reader's acquire fence: see the module's notes
/// for why a `small` content checks the generation instead.
#[inline(always)]
fn unchanged(line: &Line, buffer: &BufferLine, small: bool, read: (u64, u64, u64)) -> bool {
    let (generation, len, writer) = read;
    if small {
        line.generation.load(Relaxed) == generation
    } else {
        buffer.seq.load(Relaxed) == generation
            && buffer.len.load(Relaxed) == len
            && buffer.writer.load(Relaxed) == writer
    }
}

/// [`try_read`] when its first look did not stand: attempt after attempt,
/// with the verdicts (a corrupt length, a sink too small) that only a
/// length which stood may give.
#[inline(never)]
fn try_read_again<S: Sink + ?Sized>(
    line: &Line,
    bufs: &impl Buffers,
    out: &mut S,
) -> Result<Option<(u64, u64, usize)>, Refused> {
    let mut spoiled = 0;
    for _ in 0..READ_ATTEMPTS {
        let generation = line.generation.load(Acquire);
        let index = (generation & 1) as usize;
        let buffer = &line.buffers[index];
        // Acquire: pairs with the writer's release store of `seq`, so
        // `len` and `writer` below are the ones published with it.
        if buffer.seq.load(Acquire) != generation {
            // A publish after this generation is under way in it.
            core::hint::spin_loop();
            continue;
        }
        let len = buffer.len.load(Relaxed);
        let writer = buffer.writer.load(Relaxed);
        let small = len <= inline_max(bufs) as u64;
        let read = (generation, len, writer);
        if len > bufs.capacity() as u64 || !bufs.reach(len as usize) {
            fence(Acquire);
            if unchanged(line, buffer, small, read) {
                return Err(Refused::Corrupt(Corrupt {
                    field: "len",
                    value: len,
                }));
            }
            continue;
        }
        let Some(room) = out.room(len as usize) else {
            // Too small for this length, if the length stood.
            fence(Acquire);
            if unchanged(line, buffer, small, read) {
                return Err(Refused::TooSmall {
                    needed: len as usize,
                    available: out.available(),
                });
            }
            continue;
        };
        // A relaxed look suffices to give up early; accepting the copy
        // takes the fence below.
        let intact = || buffer.seq.load(Relaxed) == generation;
        let copied = copy_out(line, bufs, index, room, intact);
        fence(Acquire);
        if copied && unchanged(line, buffer, small, read) {
            // SAFETY: `copy_out` returned `true`: it wrote the whole room
            // of `len` bytes.
            unsafe { out.filled(len as usize) };
            return Ok(Some((generation, writer, len as usize)));
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
/// `(generation, writer, len)`.
pub fn read_locked<S: Sink + ?Sized>(
    line: &Line,
    bufs: &impl Buffers,
    out: &mut S,
) -> Result<(u64, u64, usize), Refused> {
    let generation = line.generation.load(Acquire);
    let index = (generation & 1) as usize;
    let buffer = &line.buffers[index];
    let len = buffer.len.load(Relaxed);
    if len > bufs.capacity() as u64 || !bufs.reach(len as usize) {
        return Err(Refused::Corrupt(Corrupt {
            field: "len",
            value: len,
        }));
    }
    let len = len as usize;
    let available = out.available();
    let room = out.room(len).ok_or(Refused::TooSmall {
        needed: len,
        available,
    })?;
    copy_out(line, bufs, index, room, || true);
    // SAFETY: `copy_out` with an `intact` that is always true copies the
    // whole room of `len` bytes.
    unsafe { out.filled(len) };
    Ok((generation, buffer.writer.load(Relaxed), len))
}

/// Start publishing the next generation: return (next generation, its
/// buffer). The caller holds the lock. Abandoning a publish after this is
/// harmless: the published buffer is untouched, and the other one is not
/// read as the current content.
pub fn begin_publish(line: &Line) -> (u64, usize) {
    // Acquire: after a takeover, nothing orders us after the dead owner's
    // last publish but this load.
    let next = line.generation.load(Acquire).wrapping_add(1);
    let index = (next & 1) as usize;
    // Readers still copying this (formerly active) buffer must see the
    // generation move before they can see any of our stores (fence to
    // fence): that is what a small content's reader checks.
    fence(Release);
    (next, index)
}

/// Mark buffer `index` as being written, before the first byte goes into
/// it: a reader whose copy saw any byte after this sees the mark or a
/// later `seq` (fence to fence).
fn mark(line: &Line, index: usize) {
    line.buffers[index].seq.store(SEQ_WRITING, Relaxed);
    fence(Release);
}

/// Store the whole content `bytes` of buffer `index`, during a publish
/// begun by [`begin_publish`] (the caller holds the lock): in the buffer's
/// line if it is small, else in the buffer.
pub fn store(line: &Line, bufs: &impl Buffers, index: usize, bytes: &[u8]) {
    if bytes.len() <= inline_max(bufs) {
        store_inline(&line.buffers[index], bytes);
    } else {
        store_at(line, bufs, index, 0, bytes);
    }
}

/// Copy `bytes` into buffer `index` at `offset`, during a publish begun by
/// [`begin_publish`], for a content longer than [`Buffers::inline_max`]
/// built piece by piece, from offset 0 on (the caller holds the lock, and
/// keeps `offset` a multiple of 8). The first piece marks the buffer.
pub fn store_at(line: &Line, bufs: &impl Buffers, index: usize, offset: usize, bytes: &[u8]) {
    assert!(index < 2 && offset % 8 == 0 && offset + bytes.len() <= bufs.capacity());
    if offset == 0 {
        mark(line, index);
    }
    bufs.store(index, offset, bytes);
}

/// Publish buffer `index`, filled with `len` bytes, as generation `next`
/// (from [`begin_publish`]), written by `writer` (packed). The caller then
/// wakes the waiters.
pub fn finish_publish(line: &Line, next: u64, index: usize, len: usize, writer: u64) -> u64 {
    let buffer = &line.buffers[index];
    buffer.len.store(len as u64, Relaxed);
    // Release: a reader that sees this writer sees this length (a reader of
    // an older, larger content checks both after its copy).
    buffer.writer.store(writer, Release);
    buffer.seq.store(next, Release);
    line.generation.store(next, Release);
    next
}
