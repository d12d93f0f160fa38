//! The publish/read protocol over a validated header: no OS calls.
//!
//! The algorithm is `protocol/seqlock.rs`, written against any memory; this
//! module gives it the mapping: [`View`] is a mapped region whose header
//! was validated, and its buffers are copied with `copy.rs`'s racy-tolerant
//! copies. `tests/model.rs` checks the seqlock under random interleavings
//! (proptest, with mutants that must be caught) and, under `cfg(loom)`,
//! the very same `seqlock.rs` under loom.

use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::copy::{load_shared, store_shared};
use crate::layout::{self, Header};
use crate::snapshot::{Stamp, WriterId};

pub mod seqlock;

pub use seqlock::{Refused, Sink};

/// What makes more of a mapping's buffers safe to touch, for a mapping
/// whose pages beyond the region's capacity have no storage yet and fault
/// when touched (Windows: a growing region's paging-file section is
/// reserved, and pages are committed as it grows).
pub trait Reach: Sync {
    /// Make the first `len` bytes (`len <= max_capacity`) of both buffers
    /// of the region, of maximum `max_capacity`, safe to touch through
    /// this mapping; `false` if the system refuses.
    fn reach(&self, max_capacity: usize, len: usize) -> bool;
}

/// A mapped region whose header was validated: its base and maximum
/// capacity. The maximum, which the mapping covers, bounds every length
/// and places the buffers; the current capacity (which grows) is the
/// writer's business (`handle.rs`), and a reader never needs it: a length
/// within the maximum lies inside the mapping whatever the header says.
/// Where the mapping's pages past the capacity fault until given storage
/// ([`Reach`]), the view also knows how many bytes of each buffer were
/// ready when it was taken, and a reader asks for more before it loads
/// them ([`seqlock::Buffers::reach`]).
#[derive(Clone, Copy)]
pub struct View<'a> {
    base: NonNull<u8>,
    max_capacity: usize,
    /// Bytes of each buffer known safe to touch (at least the maximum
    /// when nothing needs reaching).
    ready: usize,
    reach: Option<&'a dyn Reach>,
    _mapping: PhantomData<&'a Header>,
}

impl<'a> View<'a> {
    /// The region mapped at `base` with maximum capacity `max_capacity`,
    /// of which the first `ready` bytes of each buffer are safe to touch
    /// now, and `reach` makes more so (`None`: all of them are).
    ///
    /// # Safety
    /// `base` must be the 64-byte aligned start of a mapping of at least
    /// `layout::region_size(max_capacity)` bytes, readable and writable,
    /// that stays mapped for `'a`; `max_capacity` must be the validated
    /// maximum (at most `MAX_CAPACITY`). Its header and the first `ready`
    /// bytes of each buffer must be backed (never fault when touched), and
    /// with no `reach`, every byte of it must be. Other processes may
    /// write the bytes at any time: every access here is atomic or a
    /// racy-tolerant raw copy.
    pub unsafe fn new(
        base: NonNull<u8>,
        max_capacity: usize,
        ready: usize,
        reach: Option<&'a dyn Reach>,
    ) -> View<'a> {
        View {
            base,
            max_capacity,
            ready: if reach.is_some() { ready } else { usize::MAX },
            reach,
            _mapping: PhantomData,
        }
    }

    /// The most of `capacity` (at most the maximum) a writer may fill
    /// through this view: all of it once it is made safe to touch (see
    /// [`Reach`]); else what was ready. A header scribbled with a
    /// capacity never backed so cannot make a writer store into pages
    /// without storage: its next publish backs them first, or fails.
    #[inline]
    pub fn reachable(&self, capacity: usize) -> usize {
        if seqlock::Buffers::reach(self, capacity) {
            capacity
        } else {
            self.ready.min(capacity)
        }
    }

    /// The header.
    #[inline]
    pub fn header(&self) -> &'a Header {
        // SAFETY: `new`'s contract: at least a header's worth of mapped,
        // aligned bytes, alive for `'a`.
        unsafe { Header::at(self.base) }
    }

    /// The start of buffer `index` at `offset`.
    fn at(&self, index: usize, offset: usize) -> *mut u8 {
        self.base
            .as_ptr()
            .wrapping_add(layout::buffer_offset(self.max_capacity, index) + offset)
    }

    /// Optimistic lock-free read; `None` when writers kept moving.
    #[inline]
    pub fn try_read<S: Sink + ?Sized>(&self, out: &mut S) -> Result<Option<Stamp>, Refused> {
        Ok(seqlock::try_read(&self.header().line, self, out)?.map(stamp))
    }

    /// Read the published content while holding the lock.
    pub fn read_locked<S: Sink + ?Sized>(&self, out: &mut S) -> Result<Stamp, Refused> {
        seqlock::read_locked(&self.header().line, self, out).map(stamp)
    }

    /// See [`seqlock::begin_publish`].
    pub fn begin_publish(&self) -> (u64, usize) {
        seqlock::begin_publish(&self.header().line)
    }

    /// See [`seqlock::store`].
    pub fn store(&self, index: usize, content: &[u8]) {
        seqlock::store(&self.header().line, self, index, content);
    }

    /// See [`seqlock::store_at`].
    pub fn store_at(&self, index: usize, offset: usize, bytes: &[u8]) {
        seqlock::store_at(&self.header().line, self, index, offset, bytes);
    }

    /// See [`seqlock::finish_publish`].
    pub fn finish_publish(&self, next: u64, index: usize, len: usize, writer: WriterId) -> u64 {
        debug_assert!(len <= self.max_capacity);
        seqlock::finish_publish(&self.header().line, next, index, len, writer.pack())
    }
}

fn stamp((generation, writer, len): (u64, u64, usize)) -> Stamp {
    Stamp {
        generation,
        writer: WriterId::unpack(writer),
        len,
    }
}

impl seqlock::Buffers for View<'_> {
    /// The maximum: what the mapping holds of each buffer.
    fn capacity(&self) -> usize {
        self.max_capacity
    }

    /// Ready already, or made so by the mapping's [`Reach`].
    #[inline]
    fn reach(&self, len: usize) -> bool {
        len <= self.ready || self.reach.is_some_and(|r| r.reach(self.max_capacity, len))
    }

    #[inline]
    fn load(&self, index: usize, offset: usize, out: &mut [MaybeUninit<u8>]) {
        let len = out.len();
        assert!(index < 2 && offset + len <= self.max_capacity);
        // SAFETY:
        // - the source lies inside the mapping: `offset + len <= capacity`
        //   (asserted), and the mapping holds `region_size(max_capacity)`
        //   bytes (`new`'s contract), backed: the seqlock loads only
        //   lengths that `reach` made safe to touch first;
        // - the destination is `out`, `len` writable bytes that do not
        //   overlap the mapping (the caller's memory);
        // - buffers start 64-byte aligned (layout::buffer_offset) and
        //   `offset` is a multiple of COPY_CHUNK, as `load_shared` needs;
        // - other processes may write the source concurrently: the copy is
        //   made of atomic or asm loads (copy.rs), and the caller either
        //   holds the lock (no writer touches the active buffer) or
        //   discards the bytes unless the buffer's `seq` proves them
        //   untouched (seqlock).
        unsafe { load_shared(self.at(index, offset), out.as_mut_ptr().cast::<u8>(), len) };
    }

    #[inline]
    fn store(&self, index: usize, offset: usize, bytes: &[u8]) {
        assert!(index < 2 && offset % 8 == 0 && offset + bytes.len() <= self.max_capacity);
        // SAFETY:
        // - the destination is `bytes.len()` bytes of buffer `index` from
        //   `offset`, inside the mapping (asserted above against the
        //   maximum capacity, and the mapping holds
        //   `region_size(max_capacity)` bytes);
        // - buffers start 64-byte aligned (layout::buffer_offset) and
        //   `offset` is a multiple of 8, as `store_shared` requires;
        // - the caller holds the lock, so no other writer copies into it,
        //   and stores only within the capacity it got from `reachable`
        //   or backed itself (a growth, `handle.rs`), so the store faults
        //   in no page the store lacks;
        //   readers that copy it concurrently discard what they read
        //   because its `seq` is marked as being written.
        unsafe { store_shared(bytes, self.at(index, offset)) };
    }
}
