//! What a region's operations report: who published
//! ([`WriterId`]), what a read found besides the bytes ([`Stamp`]),
//! content with its generation and writer ([`Snapshot`]), and what a
//! publish or an update did.
//!
//! Plain values: this module knows nothing of regions, and every layer
//! may use it.

#![forbid(unsafe_code)]

/// Identifies who published a generation: a process and a handle inside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WriterId {
    /// Process id of the writer (0 when nobody has written yet).
    pub pid: u32,
    /// Number of the writing handle inside that process.
    pub handle: u32,
}

impl WriterId {
    pub(crate) const fn pack(self) -> u64 {
        ((self.pid as u64) << 32) | self.handle as u64
    }

    pub(crate) const fn unpack(word: u64) -> WriterId {
        WriterId {
            pid: (word >> 32) as u32,
            handle: word as u32,
        }
    }
}

/// What a read found besides the bytes: the content's length, its
/// generation and who published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The generation: 0 for a new region, bumped by every publish.
    pub generation: u64,
    /// Who published it (`pid` 0 for a region nobody wrote yet).
    pub writer: WriterId,
    /// Length of the content in bytes.
    pub len: usize,
}

impl Stamp {
    /// `content` with this stamp.
    pub(crate) fn with<T>(self, content: T) -> Snapshot<T> {
        Snapshot {
            content,
            generation: self.generation,
            writer: self.writer,
        }
    }
}

/// Content read from a region with its generation and writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot<T = Vec<u8>> {
    /// The content.
    pub content: T,
    /// The generation it was published as.
    pub generation: u64,
    /// Who published it.
    pub writer: WriterId,
}

/// What a publish did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    /// The new generation.
    pub generation: u64,
    /// The lock's previous owner died holding it; its unpublished write
    /// was discarded and the published content is intact.
    pub owner_died: bool,
}

/// What [`FileMap::update`](crate::FileMap::update) did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Updated<R> {
    /// The closure's return value.
    pub value: R,
    /// The generation after the update (unchanged if nothing was published).
    pub generation: u64,
    /// Whether the closure changed the content, which was then published.
    pub changed: bool,
    /// The lock's previous owner died holding it.
    pub owner_died: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writer_id_round_trips() {
        let id = WriterId {
            pid: 4_194_304,
            handle: u32::MAX,
        };
        assert_eq!(WriterId::unpack(id.pack()), id);
    }
}
