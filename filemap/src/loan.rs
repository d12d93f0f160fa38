//! Write loans: filling the inactive buffer in place, then publishing.
//!
//! This module owns [`WriteLoan`], made by
//! [`FileMap::loan`](crate::FileMap::loan): a writer that serialises
//! straight into the region instead of building the content in a `Vec`
//! and copying it in. It must never hand out a `&mut [u8]` into shared
//! memory (another process may write those bytes): the bytes go through a
//! private staging chunk and the same raw copies a publish uses, each at an
//! offset that keeps the copy aligned. Nothing is visible to readers before
//! [`WriteLoan::commit`]; a loan dropped, or grown past the maximum
//! capacity, leaves the published content as it was. A loan that outgrows
//! the current capacity grows the region (it holds the lock), in
//! doublings, so that a content written in many small pieces costs few
//! growths.

#![forbid(unsafe_code)]

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::handle::Inner;
use crate::snapshot::Published;

/// Bytes staged privately before they are copied into the region: large
/// enough that the copies run at full speed, small enough to stay in cache.
const STAGE: usize = 64 << 10;
/// The staging chunk a loan starts with (it doubles up to [`STAGE`] as the
/// content grows, so a small loan zeroes little).
const FIRST_STAGE: usize = 4 << 10;
/// A piece at least this long is copied straight into the region rather
/// than through the staging chunk.
const DIRECT: usize = 4 << 10;

/// The inactive buffer of a region, lent to one writer under the lock; see
/// [`FileMap::loan`](crate::FileMap::loan). Implements [`std::io::Write`].
///
/// The lock belongs to the thread that took it, so a loan cannot move to
/// another thread:
///
/// ```compile_fail
/// fn is_send<T: Send>() {}
/// is_send::<filemap::WriteLoan<'static>>();
/// ```
#[must_use = "a loan publishes nothing until `commit` is called"]
pub struct WriteLoan<'a> {
    inner: &'a Inner,
    owner_died: bool,
    /// The generation this loan publishes, and its buffer.
    next: u64,
    index: usize,
    /// Bytes already copied into the buffer (a multiple of `STAGE`).
    stored: usize,
    /// The private staging chunk (all of it initialised: the fast path
    /// copies into it without growing a `Vec`), of which `staged` bytes
    /// hold content not yet copied into the buffer.
    stage: Vec<u8>,
    staged: usize,
    /// How many more bytes the fast path may take: room in the chunk and
    /// in the region, less one (a write that fills either takes the slow
    /// path); 0 once the content outgrew the capacity.
    free: usize,
    /// The length the content reached past the maximum capacity, if it did.
    overflow: Option<usize>,
    /// The bytes a growth could not get backed (`OutOfSpace`), if one
    /// failed.
    no_space: Option<u64>,
    /// The region's capacity (read at the start and after each growth: the
    /// fast path checks it per write) and its maximum.
    capacity: usize,
    max_capacity: usize,
    /// The lock belongs to the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> WriteLoan<'a> {
    /// A loan of the buffer `map` publishes next; the caller took the
    /// lock, which the loan releases when dropped (also on error here).
    pub(crate) fn new(inner: &'a Inner, owner_died: bool) -> Result<WriteLoan<'a>> {
        let (next, index) = match inner.begin_publish() {
            Ok(begun) => begun,
            Err(e) => {
                let _ = inner.unlock();
                return Err(e);
            }
        };
        Ok(WriteLoan {
            inner,
            owner_died,
            next,
            index,
            stored: 0,
            stage: Vec::new(),
            staged: 0,
            free: 0,
            overflow: None,
            no_space: None,
            capacity: inner.capacity(),
            max_capacity: inner.max_capacity,
            _not_send: PhantomData,
        })
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.stored + self.staged
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most the content may hold without growing the region (it grows
    /// as the content does, up to [`WriteLoan::max_capacity`]).
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The most the content may hold.
    pub fn max_capacity(&self) -> usize {
        self.max_capacity
    }

    /// Why this loan refuses its writes and its commit, if it does: the
    /// content outgrew the maximum capacity, or a growth found no space.
    pub(crate) fn refusal(&self) -> Option<Error> {
        if let Some(len) = self.overflow {
            return Some(Error::TooLarge {
                len,
                capacity: self.capacity,
                max_capacity: self.max_capacity,
            });
        }
        self.no_space.map(|needed| Error::OutOfSpace {
            name: self.inner.name().to_owned(),
            needed,
        })
    }

    /// Whether the lock's previous owner died holding it.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Append `bytes` to the content.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (with the length the content would have) when it
    /// would outgrow the maximum capacity, [`Error::OutOfSpace`] when the
    /// region cannot grow for lack of space; the loan then refuses every
    /// later write and its commit, and the published content stays as it
    /// was.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        // The common case of a serialiser's many small writes: one
        // comparison, then a copy that, for the few bytes of a field, is a
        // couple of moves rather than a call to `memcpy`. Inlined into the
        // caller, so a tiny write costs less than a `Vec`'s.
        let n = bytes.len();
        if n < self.free {
            let at = self.staged;
            copy_small(&mut self.stage[at..at + n], bytes);
            self.staged = at + n;
            self.free -= n;
            return Ok(());
        }
        self.append_slow(bytes)
    }

    #[cold]
    fn append_slow(&mut self, mut bytes: &[u8]) -> Result<()> {
        let wanted = self.overflow.unwrap_or(0).max(self.len()) + bytes.len();
        if self.overflow.is_some() || wanted > self.max_capacity {
            self.overflow = Some(wanted);
        }
        if let Some(refused) = self.refusal() {
            self.free = 0;
            return Err(refused);
        }
        let inner = self.inner;
        if wanted > self.capacity {
            // Doubling: a content written piece by piece grows the region
            // a few times, not once a page.
            let ahead = wanted.max(self.capacity.saturating_mul(2));
            match inner.make_room(ahead.min(self.max_capacity)) {
                Ok(capacity) => self.capacity = capacity,
                Err(e) => {
                    if let Error::OutOfSpace { needed, .. } = e {
                        self.no_space = Some(needed);
                    }
                    self.free = 0;
                    return Err(e);
                }
            }
        }
        let capacity = self.capacity;
        // A large piece goes straight in (its bytes are copied once, not
        // through the staging chunk): what is staged is first topped up to
        // a multiple of 8 bytes from the piece's head and stored, so that
        // the piece's bulk starts at an offset a multiple of 8, as stores
        // into the region require; its last few bytes are staged. A
        // content handed over in pieces (a network message in fragments)
        // is so copied once whatever the pieces' lengths.
        if bytes.len() >= DIRECT {
            if self.staged > 0 {
                let top = (8 - self.staged % 8) % 8;
                self.stage_bytes(&bytes[..top]);
                bytes = &bytes[top..];
                inner.store_at(self.index, self.stored, &self.stage[..self.staged])?;
                self.stored += self.staged;
                self.staged = 0;
            }
            let bulk = bytes.len() / 8 * 8;
            inner.store_at(self.index, self.stored, &bytes[..bulk])?;
            self.stored += bulk;
            bytes = &bytes[bulk..];
        }
        while !bytes.is_empty() {
            let needed = (self.staged + bytes.len()).min(STAGE);
            if self.stage.len() < needed {
                // Double (zero-filled), at most to a whole chunk.
                let size = (2 * self.stage.len())
                    .clamp(FIRST_STAGE, STAGE)
                    .min(self.max_capacity)
                    .max(needed);
                self.stage.resize(size, 0);
            }
            let take = bytes.len().min(self.stage.len() - self.staged);
            self.stage_bytes(&bytes[..take]);
            bytes = &bytes[take..];
            if self.staged == STAGE {
                inner.store_at(self.index, self.stored, &self.stage)?;
                self.stored += STAGE;
                self.staged = 0;
            }
        }
        // What the fast path may take before it comes back here.
        let room = (self.stage.len() - self.staged).min(capacity - self.len());
        self.free = room.saturating_sub(1);
        Ok(())
    }

    /// Copy `bytes` after what is staged, growing the chunk (zero-filled)
    /// if it lacks room; callers never take it past [`STAGE`].
    fn stage_bytes(&mut self, bytes: &[u8]) {
        let end = self.staged + bytes.len();
        if self.stage.len() < end {
            self.stage
                .resize(end.max(FIRST_STAGE.min(self.capacity)), 0);
        }
        self.stage[self.staged..end].copy_from_slice(bytes);
        self.staged = end;
    }

    /// Publish what was written as the region's whole new content, and
    /// release the lock.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if a write outgrew the maximum capacity, or
    /// [`Error::OutOfSpace`] if a growth found no space (nothing is
    /// published); [`Error::ForkedHandle`] in a forked child, whose loan
    /// publishes nothing (the lock is its parent's);
    /// [`Error::Truncated`] if the region's file shrank meanwhile.
    pub fn commit(self) -> Result<Published> {
        if let Some(refused) = self.refusal() {
            return Err(refused);
        }
        let inner = self.inner;
        if self.stored == 0 {
            // All of it is staged: a small content goes into the buffer's
            // line, like any publish's.
            inner.store(self.index, &self.stage[..self.staged])?;
        } else {
            // Some went into the buffer already (a whole staging chunk:
            // far more than a line holds); the rest follows it.
            inner.store_at(self.index, self.stored, &self.stage[..self.staged])?;
        }
        let len = self.len();
        let generation = inner.finish_publish(self.next, self.index, len)?;
        Ok(Published {
            generation,
            owner_died: self.owner_died,
        })
    }
}

impl std::io::Write for WriteLoan<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes).map_err(io_error)?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.append(bytes).map_err(io_error)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cold]
fn io_error(e: Error) -> std::io::Error {
    let kind = match e {
        Error::TooLarge { .. } | Error::OutOfSpace { .. } => std::io::ErrorKind::StorageFull,
        _ => std::io::ErrorKind::Other,
    };
    std::io::Error::new(kind, e)
}

impl Drop for WriteLoan<'_> {
    fn drop(&mut self) {
        // Committed or not, the lock is released here; an uncommitted loan
        // published nothing. (A forked child's loan releases nothing: the
        // lock is its parent's.)
        let _ = self.inner.unlock();
    }
}

impl std::fmt::Debug for WriteLoan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLoan")
            .field("name", &self.inner.name())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("max_capacity", &self.max_capacity)
            .field("overflow", &self.overflow)
            .field("no_space", &self.no_space)
            .finish()
    }
}

/// `dst.copy_from_slice(src)` (equal lengths), in a few moves for the
/// short pieces serialisers write (a marker byte, a field name, a number)
/// instead of a call to `memcpy`: two overlapping words cover 8..=16
/// bytes, two overlapping halves 4..=7, three bytes 1..=3.
#[inline(always)]
fn copy_small(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    debug_assert_eq!(dst.len(), n);
    match n {
        0 => {}
        1..=3 => {
            dst[0] = src[0];
            dst[n / 2] = src[n / 2];
            dst[n - 1] = src[n - 1];
        }
        4..=7 => {
            dst[..4].copy_from_slice(&src[..4]);
            dst[n - 4..n].copy_from_slice(&src[n - 4..n]);
        }
        8..=16 => {
            dst[..8].copy_from_slice(&src[..8]);
            dst[n - 8..n].copy_from_slice(&src[n - 8..n]);
        }
        _ => dst.copy_from_slice(src),
    }
}
