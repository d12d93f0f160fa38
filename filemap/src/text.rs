//! Text in a region: [`TextExt`], publishing and reading strings and
//! lines, and [`TextView`], the write-through text view (TFileMap's
//! `AutoSynchronize`).
//!
//! Lines are joined by `'\n'`, with no trailing newline; empty content is
//! no lines. [`TextView`] owns the policy for a local, editable copy of a
//! region's text. With auto-sync on, every local edit is published at once and
//! remote changes replace the local text; with it off, local edits stay
//! local until [`TextView::write`] and remote changes are only reported.
//! It must never lose text: an edit that does not fit stays local.

#![forbid(unsafe_code)]

use crate::error::{Error, Result};
use crate::region::FileMap;
use crate::snapshot::{Published, Snapshot, WriterId};

/// Text publishing and reading on a [`FileMap`] (in
/// [`prelude`](crate::prelude)).
///
/// ```
/// # fn main() -> filemap::Result<()> {
/// # let name = format!("doc-text-{}", std::process::id());
/// use filemap::prelude::*;
///
/// let map = FileMap::open(&name)?;
/// map.write_lines(["hello", "world"])?;
/// assert_eq!(map.read_string()?.content, "hello\nworld");
/// assert_eq!(map.read_lines()?.content, ["hello", "world"]);
/// # Ok(()) }
/// ```
pub trait TextExt {
    /// Publish a string. See [`FileMap::write`].
    ///
    /// # Errors
    /// As [`FileMap::write`].
    fn write_str(&self, text: &str) -> Result<Published>;

    /// Publish lines joined by `'\n'` (no trailing newline). See
    /// [`FileMap::write`]; [`TextExt::read_lines`] gives them back.
    ///
    /// # Errors
    /// As [`FileMap::write`].
    fn write_lines<I, S>(&self, lines: I) -> Result<Published>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>;

    /// Read the content as UTF-8 text.
    ///
    /// # Errors
    /// As [`FileMap::read`], and [`Error::NotUtf8`].
    fn read_string(&self) -> Result<Snapshot<String>>;

    /// Read the content as lines (split at `'\n'`; empty content is no
    /// lines).
    ///
    /// # Errors
    /// As [`TextExt::read_string`].
    fn read_lines(&self) -> Result<Snapshot<Vec<String>>>;
}

impl TextExt for FileMap {
    fn write_str(&self, text: &str) -> Result<Published> {
        self.write(text.as_bytes())
    }

    fn write_lines<I, S>(&self, lines: I) -> Result<Published>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.write(join_lines(lines).as_bytes())
    }

    fn read_string(&self) -> Result<Snapshot<String>> {
        let mut content = Vec::new();
        let stamp = self.read_into(&mut content)?;
        let content = String::from_utf8(content).map_err(|e| Error::NotUtf8 {
            valid_up_to: e.utf8_error().valid_up_to(),
        })?;
        Ok(stamp.with(content))
    }

    fn read_lines(&self) -> Result<Snapshot<Vec<String>>> {
        let snap = self.read_string()?;
        Ok(Snapshot {
            content: split_lines(&snap.content),
            generation: snap.generation,
            writer: snap.writer,
        })
    }
}

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
    /// The region's text at `synced` was not UTF-8 (see [`TextView::is_lossy`]).
    lossy: bool,
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
    /// Content that is not UTF-8 is shown with replacement characters
    /// ([`TextView::is_lossy`]).
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
            lossy: false,
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

    /// Whether the region's text at [`TextView::synced_generation`] was
    /// not UTF-8: the local text shows its bad bytes as U+FFFD, and a
    /// write (an edit with auto-sync on included) replaces those bytes
    /// with U+FFFD, on lines nobody edited too. False again once the view
    /// has written, or read text that is UTF-8.
    pub fn is_lossy(&self) -> bool {
        self.lossy
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
        self.lossy = false;
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
        let text = String::from_utf8_lossy(&snap.content);
        // Borrowed: it was UTF-8 as it stood; owned: bytes were replaced.
        self.lossy = matches!(text, std::borrow::Cow::Owned(_));
        self.lines = split_lines(&text);
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
            if writer == self.map.writer_id() {
                // Our own write, published after another's we never saw.
                return Ok(RemoteChange::None);
            }
            return Ok(RemoteChange::Pulled(writer));
        }
        let writer = WriterId::unpack(self.map.inner().header().last_writer());
        if writer == self.map.writer_id() {
            return Ok(RemoteChange::None);
        }
        Ok(RemoteChange::Pending(writer))
    }
}

/// Join lines with `'\n'`.
fn join_lines<I, S>(lines: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut text = String::new();
    for (i, line) in lines.into_iter().enumerate() {
        if i > 0 {
            text.push('\n');
        }
        text.push_str(line.as_ref());
    }
    text
}

/// Split text at `'\n'`; empty text is no lines.
fn split_lines(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    }
}
