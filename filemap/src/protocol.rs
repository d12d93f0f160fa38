//! The publish/read protocol over a validated header: no OS calls.
//!
//! Two buffers and a seqlock per buffer. A writer (holding the region
//! lock) marks the inactive buffer as being written (`seq = SEQ_WRITING`),
//! copies the content into it, stores its length, writer and `seq = next`,
//! then the generation `next`, whose parity names the active buffer. A
//! reader loads the generation, checks that the active buffer's `seq`
//! holds it, copies, and keeps the copy only if `seq` did not move. Every
//! value read from the header is validated before it is used as a length.
//!
//! `tests/model.rs` checks this protocol under random interleavings.

use std::marker::PhantomData;
use std::ptr::NonNull;
use std::sync::atomic::fence;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use crate::copy::{load_shared, store_shared};
use crate::layout::{self, Header, WriterId, SEQ_WRITING};
use crate::region::Stamp;

/// Optimistic read attempts before a reader falls back to the lock.
const READ_ATTEMPTS: u32 = 64;
/// Copies of more than a chunk spoiled by a rewrite before a reader falls
/// back to the lock.
const SPOILED_COPIES: u32 = 2;
/// A lock-free read checks between chunks of this many bytes that its
/// buffer is not being rewritten (64-byte multiple: chunks stay aligned).
const COPY_CHUNK: usize = 64 << 10;

/// A header field holding an impossible value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    pub field: &'static str,
    pub value: u64,
}

/// A mapped region whose header was validated: its base and capacity.
#[derive(Clone, Copy)]
pub struct View<'a> {
    base: NonNull<u8>,
    capacity: usize,
    _mapping: PhantomData<&'a Header>,
}

impl<'a> View<'a> {
    /// The region mapped at `base` with capacity `capacity`.
    ///
    /// # Safety
    /// `base` must be the 64-byte aligned start of a mapping of at least
    /// `layout::region_size(capacity)` bytes, readable and writable, that
    /// stays mapped for `'a`; `capacity` must be the validated capacity
    /// (at most `MAX_CAPACITY`). Other processes may write the bytes at any
    /// time: every access here is atomic or a racy-tolerant raw copy.
    pub unsafe fn new(base: NonNull<u8>, capacity: usize) -> View<'a> {
        View {
            base,
            capacity,
            _mapping: PhantomData,
        }
    }

    /// The header.
    #[inline]
    pub fn header(&self) -> &'a Header {
        // SAFETY: `new`'s contract: at least a header's worth of mapped,
        // aligned bytes, alive for `'a`.
        unsafe { Header::at(self.base) }
    }

    /// Copy buffer `index` (`len <= capacity`, checked) into `out`, in
    /// chunks of [`COPY_CHUNK`] bytes. Stops early, returning `false` with
    /// `out` empty, as soon as `intact` says the buffer is being rewritten:
    /// a doomed copy of a large content then costs a chunk, not the whole.
    #[inline]
    pub fn copy_out(
        &self,
        index: usize,
        len: usize,
        out: &mut Vec<u8>,
        intact: impl Fn() -> bool,
    ) -> bool {
        debug_assert!(index < 2 && len <= self.capacity);
        out.clear();
        out.reserve(len);
        let mut done = 0;
        loop {
            let chunk = (len - done).min(COPY_CHUNK);
            // SAFETY:
            // - the source lies inside the mapping: `done + chunk <= len <=
            //   capacity`, and the mapping holds `region_size(capacity)`
            //   bytes (checked at open);
            // - the destination has room for `len` bytes (reserved above)
            //   and does not overlap the mapping;
            // - buffers start 64-byte aligned (layout::buffer_offset) and
            //   `done` is a multiple of COPY_CHUNK, as `load_shared` needs;
            // - other processes may write the source concurrently: the copy
            //   is made of atomic or asm loads (copy.rs), and the caller
            //   either holds the lock (no writer touches the active buffer)
            //   or discards the bytes unless the buffer's `seq` proves them
            //   untouched (seqlock).
            unsafe {
                let src = self
                    .base
                    .as_ptr()
                    .add(layout::buffer_offset(self.capacity, index) + done);
                load_shared(src, out.as_mut_ptr().add(done), chunk);
            }
            done += chunk;
            if done == len {
                break;
            }
            if !intact() {
                return false;
            }
        }
        // SAFETY: the `len` bytes were written above; `u8` has no invalid
        // values, so `set_len` exposes initialised bytes only.
        unsafe { out.set_len(len) };
        true
    }

    /// Optimistic lock-free read; `None` when writers kept moving.
    ///
    /// A seqlock per buffer: the copy of buffer `generation & 1` stands if
    /// that buffer still holds `generation` after it (`seq`). The next
    /// publish writes the other buffer, so only the one after it can spoil
    /// a copy; a reader as slow as a writer still gets through (checking
    /// the global generation instead would starve readers of large
    /// contents under a steady writer).
    #[inline]
    pub fn try_read(&self, out: &mut Vec<u8>) -> Result<Option<Stamp>, Corrupt> {
        let h = self.header();
        let mut spoiled = 0;
        for _ in 0..READ_ATTEMPTS {
            let generation = h.generation.load(Acquire);
            let index = (generation & 1) as usize;
            // Acquire: pairs with the writer's release store of `seq`, so
            // `len` and `writer` below are the ones published with it.
            if h.seq[index].load(Acquire) != generation {
                // A publish after this generation is under way in it.
                std::hint::spin_loop();
                continue;
            }
            let len = h.len[index].load(Relaxed);
            let writer = h.writer[index].load(Relaxed);
            if len > self.capacity as u64 {
                fence(Acquire);
                if h.seq[index].load(Relaxed) == generation {
                    return Err(Corrupt {
                        field: "len",
                        value: len,
                    });
                }
                continue;
            }
            // A relaxed look suffices to give up early; accepting the copy
            // takes the fence below.
            let intact = || h.seq[index].load(Relaxed) == generation;
            let copied = self.copy_out(index, len as usize, out, intact);
            fence(Acquire);
            if copied && h.seq[index].load(Relaxed) == generation {
                return Ok(Some(Stamp {
                    generation,
                    writer: WriterId::unpack(writer),
                }));
            }
            // A copy of several chunks spoiled twice: this reader is slower
            // than a writer publishing back to back, and will stay so. The
            // caller reads under the lock, which a starving waiter is
            // handed within one publish (lock.rs, fairness).
            if len as usize > COPY_CHUNK {
                spoiled += 1;
                if spoiled == SPOILED_COPIES {
                    return Ok(None);
                }
            }
            std::hint::spin_loop();
        }
        Ok(None)
    }

    /// Read the published content while holding the lock (it cannot move).
    pub fn read_locked(&self, out: &mut Vec<u8>) -> Result<Stamp, Corrupt> {
        let h = self.header();
        let generation = h.generation.load(Acquire);
        let index = (generation & 1) as usize;
        let len = h.len[index].load(Relaxed);
        if len > self.capacity as u64 {
            return Err(Corrupt {
                field: "len",
                value: len,
            });
        }
        self.copy_out(index, len as usize, out, || true);
        Ok(Stamp {
            generation,
            writer: WriterId::unpack(h.writer[index].load(Relaxed)),
        })
    }

    /// Start publishing the next generation: mark the inactive buffer as
    /// being written and return (next generation, its buffer). The caller
    /// holds the lock. Abandoning a publish after this is harmless: the
    /// published buffer is untouched, and the marked one is not read.
    pub fn begin_publish(&self) -> (u64, usize) {
        let h = self.header();
        // Acquire: after a takeover, nothing orders us after the dead
        // owner's last publish but this load.
        let next = h.generation.load(Acquire).wrapping_add(1);
        let index = (next & 1) as usize;
        // Readers that still copy this (formerly active) buffer must see it
        // marked before they can see our bytes: a reader whose copy saw any
        // of them then sees the mark or a later value (fence to fence).
        h.seq[index].store(SEQ_WRITING, Relaxed);
        fence(Release);
        (next, index)
    }

    /// Copy `bytes` into buffer `index` at `offset`, during a publish begun
    /// by [`View::begin_publish`] (the caller holds the lock, checked that
    /// `offset + bytes.len() <= capacity`, and keeps `offset` a multiple
    /// of 8).
    pub fn store_at(&self, index: usize, offset: usize, bytes: &[u8]) {
        assert!(index < 2 && offset % 8 == 0 && offset + bytes.len() <= self.capacity);
        // SAFETY:
        // - the destination is `bytes.len()` bytes of buffer `index` from
        //   `offset`, inside the mapping (asserted above against the
        //   capacity, and the mapping holds `region_size(capacity)` bytes);
        // - buffers start 64-byte aligned (layout::buffer_offset) and
        //   `offset` is a multiple of 8, as `store_shared` requires;
        // - the caller holds the lock, so no other writer copies into it;
        //   readers that copy it concurrently discard what they read
        //   because its `seq` is marked as being written.
        unsafe {
            let dst = self
                .base
                .as_ptr()
                .add(layout::buffer_offset(self.capacity, index) + offset);
            store_shared(bytes, dst);
        }
    }

    /// Publish buffer `index`, filled with `len` bytes, as generation
    /// `next` (from [`View::begin_publish`]), written by `writer`. The
    /// caller then wakes the waiters (`notify::published`).
    pub fn finish_publish(&self, next: u64, index: usize, len: usize, writer: WriterId) -> u64 {
        debug_assert!(len <= self.capacity);
        let h = self.header();
        h.len[index].store(len as u64, Relaxed);
        h.writer[index].store(writer.pack(), Relaxed);
        h.seq[index].store(next, Release);
        h.generation.store(next, Release);
        next
    }
}
