//! Write loans: filling the inactive buffer in place, then publishing.
//!
//! This module owns [`WriteLoan`], made by
//! [`FileMap::loan`](crate::FileMap::loan): a writer that serialises
//! straight into the region instead of building the content in a `Vec`
//! and copying it in. It must never hand out a `&mut [u8]` into shared
//! memory (another process may write those bytes): the bytes go through a
//! private staging chunk and the same raw copies a publish uses, each at an
//! offset that keeps the copy aligned. Nothing is visible to readers before
//! [`WriteLoan::commit`]; a loan dropped, or grown past the capacity,
//! leaves the published content as it was.

#![forbid(unsafe_code)]

use std::marker::PhantomData;

use crate::error::{Error, Result};
use crate::region::{FileMap, Published};

/// Bytes staged privately before they are copied into the region: large
/// enough that the copies run at full speed, small enough to stay in cache.
const STAGE: usize = 64 << 10;

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
    map: &'a FileMap,
    owner_died: bool,
    /// The generation this loan publishes, and its buffer.
    next: u64,
    index: usize,
    /// Bytes already copied into the buffer (a multiple of `STAGE`).
    stored: usize,
    /// Bytes written but not yet copied.
    stage: Vec<u8>,
    /// The length the content reached past the capacity, if it did.
    overflow: Option<usize>,
    /// The region's capacity (read once: the fast path checks it per write).
    capacity: usize,
    /// The lock belongs to the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<'a> WriteLoan<'a> {
    pub(crate) fn new(map: &'a FileMap, owner_died: bool) -> WriteLoan<'a> {
        let (next, index) = map.inner().begin_publish();
        WriteLoan {
            map,
            owner_died,
            next,
            index,
            stored: 0,
            stage: Vec::with_capacity(STAGE.min(map.capacity())),
            overflow: None,
            capacity: map.capacity(),
            _not_send: PhantomData,
        }
    }

    /// Bytes written so far.
    pub fn len(&self) -> usize {
        self.stored + self.stage.len()
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most the content may hold.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The length the content reached past the capacity, if it did.
    #[cfg(feature = "serde")]
    pub(crate) fn overflow(&self) -> Option<usize> {
        self.overflow
    }

    /// Whether the lock's previous owner died holding it.
    pub fn owner_died(&self) -> bool {
        self.owner_died
    }

    /// Append `bytes` to the content.
    ///
    /// # Errors
    /// [`Error::TooLarge`] (with the length the content would have) when it
    /// would outgrow the capacity; the loan then refuses every later write
    /// and its commit, and the published content stays as it was.
    #[inline]
    pub fn append(&mut self, bytes: &[u8]) -> Result<()> {
        // The common case of a serialiser's many small writes: room in the
        // staging chunk and in the region. Inlined into the caller, so a
        // byte-sized write costs about what a `Vec`'s does.
        let staged = self.stage.len() + bytes.len();
        if staged < STAGE && self.stored + staged <= self.capacity && self.overflow.is_none() {
            self.stage.extend_from_slice(bytes);
            return Ok(());
        }
        self.append_slow(bytes)
    }

    #[cold]
    fn append_slow(&mut self, mut bytes: &[u8]) -> Result<()> {
        let capacity = self.capacity;
        let wanted = self.overflow.unwrap_or(0).max(self.len()) + bytes.len();
        if self.overflow.is_some() || wanted > capacity {
            self.overflow = Some(wanted);
            return Err(Error::TooLarge {
                len: wanted,
                capacity,
            });
        }
        let inner = self.map.inner();
        // Whole chunks go straight in while nothing is staged.
        if self.stage.is_empty() && bytes.len() >= STAGE {
            let whole = bytes.len() / STAGE * STAGE;
            inner.store_at(self.index, self.stored, &bytes[..whole]);
            self.stored += whole;
            bytes = &bytes[whole..];
        }
        while !bytes.is_empty() {
            if self.stage.capacity() < STAGE {
                self.stage.reserve_exact(STAGE - self.stage.len());
            }
            let take = bytes.len().min(STAGE - self.stage.len());
            self.stage.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
            if self.stage.len() == STAGE {
                inner.store_at(self.index, self.stored, &self.stage);
                self.stored += STAGE;
                self.stage.clear();
            }
        }
        Ok(())
    }

    /// Publish what was written as the region's whole new content, and
    /// release the lock.
    ///
    /// # Errors
    /// [`Error::TooLarge`] if a write outgrew the capacity (nothing is
    /// published).
    pub fn commit(self) -> Result<Published> {
        if let Some(len) = self.overflow {
            return Err(Error::TooLarge {
                len,
                capacity: self.capacity(),
            });
        }
        let inner = self.map.inner();
        if self.stored == 0 {
            // All of it is staged: a small content goes into the buffer's
            // line, like any publish's.
            inner.store(self.index, &self.stage);
        } else {
            // Some went into the buffer already (a whole staging chunk:
            // far more than a line holds); the rest follows it.
            inner.store_at(self.index, self.stored, &self.stage);
        }
        let len = self.len();
        let generation = inner.finish_publish(self.next, self.index, len);
        Ok(Published {
            generation,
            owner_died: self.owner_died,
        })
    }
}

impl std::io::Write for WriteLoan<'_> {
    #[inline]
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.append(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::StorageFull, e))?;
        Ok(bytes.len())
    }

    #[inline]
    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.append(bytes)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::StorageFull, e))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for WriteLoan<'_> {
    fn drop(&mut self) {
        // Committed or not, the lock is released here; an uncommitted loan
        // published nothing.
        self.map.inner().unlock();
    }
}

impl std::fmt::Debug for WriteLoan<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteLoan")
            .field("name", &self.map.name())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .field("overflow", &self.overflow)
            .finish()
    }
}
