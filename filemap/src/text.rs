//! The write-through text view: the seed's `AutoSynchronize`.
//!
//! This module owns the policy for a local, editable copy of a region's
//! text. With auto-sync on, every local edit is published at once and
//! remote changes replace the local text; with it off, local edits stay
//! local until [`TextView::write`] and remote changes are only reported.
//! It must never lose text: an edit that does not fit stays local.

#![forbid(unsafe_code)]

use crate::error::Result;
use crate::region::{join_lines, split_lines, FileMap};
use crate::snapshot::{Published, WriterId};

/// A local copy of a region's text, kept in step with it.
///
/// ```no_run
/// # fn main() -> filemap::Result<()> {
/// let mut view = filemap::TextView::new(filemap::FileMap::open("notes")?)?;
/// view.set_lines(vec!["first line".into()])?; // written through: auto-sync is on
/// view.set_auto_sync(false)?;
/// view.set_lines(vec!["draft".into()])?; // stays local
/// view.write()?; // now published
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TextView {
    map: FileMap,
    lines: Vec<String>,
    auto_sync: bool,
    /// Generation the local text was last read from or written as.
    synced: u64,
    dirty: bool,
}

/// What [`TextView::sync_remote`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteChange {
    /// Nobody else published since the last sync.
    None,
    /// Another writer published and the local text now shows it (auto-sync on).
    Pulled(WriterId),
    /// Another writer published; the local text was kept (auto-sync off, or
    /// a local edit not yet written). [`TextView::read`] takes the shared
    /// text, [`TextView::write`] publishes the local one.
    Pending(WriterId),
}

impl TextView {
    /// Wrap `map`, reading its current text. Auto-sync starts on.
    /// Content that is not UTF-8 is shown with replacement characters.
    ///
    /// # Errors
    /// As [`FileMap::read`].
    pub fn new(map: FileMap) -> Result<TextView> {
        let mut view = TextView {
            map,
            lines: Vec::new(),
            auto_sync: true,
            synced: 0,
            dirty: false,
        };
        view.read()?;
        Ok(view)
    }

    /// The region behind the view.
    pub fn map(&self) -> &FileMap {
        &self.map
    }

    /// Give back the region.
    pub fn into_map(self) -> FileMap {
        self.map
    }

    /// The local lines.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The local text, lines joined by `'\n'`.
    pub fn text(&self) -> String {
        join_lines(&self.lines)
    }

    /// Whether edits are written through.
    pub fn auto_sync(&self) -> bool {
        self.auto_sync
    }

    /// Whether the local text has edits the region does not have.
    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Generation the local text was last read from or written as.
    pub fn synced_generation(&self) -> u64 {
        self.synced
    }

    /// Turn auto-sync on or off. Turning it on publishes pending edits.
    ///
    /// # Errors
    /// As [`TextView::write`]; auto-sync is on even then, and the edits
    /// stay local.
    pub fn set_auto_sync(&mut self, on: bool) -> Result<Option<Published>> {
        self.auto_sync = on;
        if on && self.dirty {
            return self.write().map(Some);
        }
        Ok(None)
    }

    /// Replace the local lines; written through when auto-sync is on.
    ///
    /// # Errors
    /// As [`TextView::write`]. The new lines are kept locally either way.
    pub fn set_lines(&mut self, lines: Vec<String>) -> Result<Option<Published>> {
        if lines != self.lines {
            self.lines = lines;
            self.dirty = true;
        }
        if self.auto_sync && self.dirty {
            return self.write().map(Some);
        }
        Ok(None)
    }

    /// Replace the local text; see [`TextView::set_lines`].
    ///
    /// # Errors
    /// As [`TextView::write`].
    pub fn set_text(&mut self, text: &str) -> Result<Option<Published>> {
        self.set_lines(split_lines(text))
    }

    /// Clear the text; see [`TextView::set_lines`].
    ///
    /// # Errors
    /// As [`TextView::write`].
    pub fn clear(&mut self) -> Result<Option<Published>> {
        self.set_lines(Vec::new())
    }

    /// Publish the local text now.
    ///
    /// # Errors
    /// As [`FileMap::write`]: [`Error::TooLarge`](crate::Error::TooLarge)
    /// keeps the local text (still dirty) and the shared text unchanged.
    pub fn write(&mut self) -> Result<Published> {
        let published = self.map.write_str(&self.text())?;
        self.synced = published.generation;
        self.dirty = false;
        Ok(published)
    }

    /// Replace the local text with the region's, dropping local edits.
    /// Returns the generation read.
    ///
    /// # Errors
    /// As [`FileMap::read`].
    pub fn read(&mut self) -> Result<u64> {
        let snap = self.map.read()?;
        let generation = snap.generation;
        self.adopt(snap);
        Ok(generation)
    }

    fn adopt(&mut self, snap: crate::Snapshot) {
        self.lines = split_lines(&String::from_utf8_lossy(&snap.content));
        self.synced = snap.generation;
        self.dirty = false;
    }

    /// Check for a change published by someone else since the last sync;
    /// pull it when auto-sync is on and nothing local is unwritten, report
    /// it otherwise. Cheap: one atomic load when nothing changed, two while
    /// a change is pending.
    ///
    /// # Errors
    /// As [`FileMap::read`].
    pub fn sync_remote(&mut self) -> Result<RemoteChange> {
        if self.map.generation() == self.synced {
            return Ok(RemoteChange::None);
        }
        // Pull only when it loses nothing: auto-sync on and no local edit
        // the region lacks (an edit whose write failed stays dirty).
        if self.auto_sync && !self.dirty {
            let snap = self.map.read()?;
            let writer = snap.writer;
            self.adopt(snap);
            if writer == self.map.id() {
                // Our own write, published after another's we never saw.
                return Ok(RemoteChange::None);
            }
            return Ok(RemoteChange::Pulled(writer));
        }
        let writer = self.map.last_writer();
        if writer == self.map.id() {
            return Ok(RemoteChange::None);
        }
        Ok(RemoteChange::Pending(writer))
    }
}
