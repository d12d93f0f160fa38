//! The memo's state: an [`Editor`] kept in step with a region through a
//! [`TextView`], the commands bound to keys, and what the status lines say.
//!
//! This module owns the sync policy as the user sees it. It draws nothing
//! and reads no terminal, so its tests drive it with key events and a
//! second handle on the same region. It must never drop text: an edit that
//! does not fit stays local and says so, a remote change never overwrites
//! local edits that are not published, and quitting asks before it discards
//! the last copy of the text.

use std::time::{Duration, Instant};

use filemap::{Error, FileMap, RegionInfo, RemoteChange, TextView, WriterId};
use ratatui::crossterm::event::KeyEvent;

use super::editor::{Editor, Outcome};
pub use super::keys::{command_for, Command, KEYS};

/// How often the status line's region figures (attached processes) are
/// refreshed when nothing is published.
pub const INFO_EVERY: Duration = Duration::from_millis(250);

/// What the memo is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// Region name.
    pub name: String,
    /// Capacity of a region this instance creates.
    pub capacity: u64,
    /// Whether the user chose the capacity (else it is ours to pick).
    pub capacity_given: bool,
    /// Text a region this instance creates starts with (`--init FILE`).
    pub init: Option<String>,
}

/// A change by another writer that the local text does not show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Who published it.
    pub writer: WriterId,
    /// The generation it was seen at.
    pub generation: u64,
}

/// How a status message is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Done as asked.
    Info,
    /// Needs the user's attention; nothing is lost.
    Warn,
    /// Something failed.
    Error,
}

/// A status message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// How to show it.
    pub level: Level,
    /// What it says.
    pub text: String,
}

/// Where quitting stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quit {
    No,
    /// Asked once; quitting would lose text, so a second quit is needed.
    Armed,
    Yes,
}

/// The memo's whole state.
#[derive(Debug)]
pub struct App {
    name: String,
    capacity: u64,
    editor: Editor,
    /// The editor holds edits not handed to the region (or, while closed,
    /// not yet counted as offline edits).
    unflushed: bool,
    /// Wanted auto-sync; kept while closed and applied on open.
    auto_sync: bool,
    link: Link,
    message: Option<Message>,
    quit: Quit,
}

/// The memo's tie to its region: what exists only while it is open lives
/// in [`Linked`], so a closed memo cannot have a pending change, a
/// too-large write or region figures.
#[derive(Debug)]
enum Link {
    Open(Box<Linked>),
    Closed {
        /// Edits made while closed, or left unpublished at close.
        edited_offline: bool,
    },
}

/// The state of an open memo.
#[derive(Debug)]
struct Linked {
    view: TextView,
    existed_already: bool,
    /// A change by another writer the local text does not show.
    pending: Option<Pending>,
    /// The last write-through failed: (text length, capacity).
    too_large: Option<(usize, usize)>,
    /// Generation whose read failed; not retried until a new publish.
    unreadable: Option<u64>,
    info: RegionInfo,
    info_at: Instant,
}

impl Linked {
    fn new(view: TextView) -> Linked {
        Linked {
            existed_already: view.map().existed_already(),
            info: view.map().info(),
            info_at: Instant::now(),
            view,
            pending: None,
            too_large: None,
            unreadable: None,
        }
    }

    /// Record a failure of this region's calls: a too-large write is
    /// shown in the status line, anything else as a message (returned).
    fn failed(&mut self, what: &str, e: Error) -> Option<Message> {
        match e {
            Error::TooLarge {
                len, max_capacity, ..
            } => {
                self.too_large = Some((len, max_capacity));
                None
            }
            e => Some(Message {
                level: Level::Error,
                text: format!("{what}: {e}"),
            }),
        }
    }
}

impl App {
    /// Open (create or attach to) the region and show its text; a region
    /// this instance creates starts with `options.init`.
    ///
    /// # Errors
    /// When the region cannot be opened or read: the memo does not start.
    pub fn new(options: Options) -> anyhow::Result<App> {
        let Options {
            name,
            capacity,
            capacity_given,
            init,
        } = options;
        let view = attach(&name, capacity)?;
        let mut app = App {
            name,
            capacity,
            editor: Editor::new(view.lines()),
            unflushed: false,
            auto_sync: true,
            link: Link::Open(Box::new(Linked::new(view))),
            message: None,
            quit: Quit::No,
        };
        let existed = app.existed_already();
        let actual = app.map().map_or(capacity, |m| m.capacity() as u64);
        if existed && init.is_some() {
            app.say(
                Level::Info,
                "Attached to an existing memo: its text is shown, not --init's.",
            );
        } else if let Some(text) = init {
            app.editor = Editor::from_text(&text);
            app.unflushed = true;
            app.flush();
        }
        if existed && capacity_given && actual != capacity {
            app.say(
                Level::Info,
                format!("The existing region holds {actual} B; --capacity {capacity} applies only to a new one."),
            );
        }
        app.guard_undecodable();
        app.refresh_info(Instant::now());
        Ok(app)
    }

    fn linked(&self) -> Option<&Linked> {
        match &self.link {
            Link::Open(linked) => Some(linked),
            Link::Closed { .. } => None,
        }
    }

    // ----- What the screen shows.

    /// Region name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The text and cursor.
    pub fn editor(&self) -> &Editor {
        &self.editor
    }

    /// The text and cursor, for the renderer to scroll.
    pub fn editor_mut(&mut self) -> &mut Editor {
        &mut self.editor
    }

    /// The region, while open.
    pub fn map(&self) -> Option<&FileMap> {
        self.linked().map(|l| l.view.map())
    }

    /// Whether the region is open.
    pub fn is_open(&self) -> bool {
        self.linked().is_some()
    }

    /// Whether this instance attached to a region another made (false
    /// while closed).
    pub fn existed_already(&self) -> bool {
        self.linked().is_some_and(|l| l.existed_already)
    }

    /// Whether edits are written through and remote changes pulled.
    pub fn auto_sync(&self) -> bool {
        self.auto_sync
    }

    /// The region's figures, refreshed on every publish and a few times a
    /// second (`None` while closed).
    pub fn info(&self) -> Option<&RegionInfo> {
        self.linked().map(|l| &l.info)
    }

    /// A change by another writer not shown locally.
    pub fn pending(&self) -> Option<Pending> {
        self.linked().and_then(|l| l.pending)
    }

    /// The last write-through did not fit: (text length, capacity).
    pub fn too_large(&self) -> Option<(usize, usize)> {
        self.linked().and_then(|l| l.too_large)
    }

    /// The latest status message.
    pub fn message(&self) -> Option<&Message> {
        self.message.as_ref()
    }

    /// Whether the local text has edits the region does not have.
    pub fn has_unpublished(&self) -> bool {
        match &self.link {
            Link::Open(linked) => self.unflushed || linked.view.is_dirty(),
            Link::Closed { edited_offline } => self.unflushed || *edited_offline,
        }
    }

    /// Whether a quit waits for confirmation.
    pub fn is_quitting(&self) -> bool {
        self.quit == Quit::Armed
    }

    /// Whether the event loop should end.
    pub fn should_quit(&self) -> bool {
        self.quit == Quit::Yes
    }

    // ----- Input.

    /// Apply a key: a command or an edit. Edits reach the region at the
    /// next [`App::flush`].
    pub fn handle_key(&mut self, key: &KeyEvent) {
        let command = command_for(key);
        if self.quit == Quit::Armed && command != Some(Command::Quit) {
            self.quit = Quit::No;
            self.say(Level::Info, "Not quitting.");
            if command.is_none() {
                return;
            }
        }
        match command {
            Some(command) => self.run(command),
            None => {
                if self.editor.handle_key(key) == Outcome::Edited {
                    self.unflushed = true;
                }
            }
        }
    }

    /// Insert pasted text at the cursor.
    pub fn handle_paste(&mut self, text: &str) {
        self.editor.insert_str(text);
        self.unflushed = true;
    }

    /// Run a command.
    pub fn run(&mut self, command: Command) {
        match command {
            Command::Open => self.open(),
            Command::Close => self.close(),
            Command::Read => self.read(),
            Command::Write => self.write(),
            Command::Clear => self.clear(),
            Command::ToggleAutoSync => self.toggle_auto_sync(),
            Command::Quit => self.request_quit(),
        }
    }

    // ----- Sync.

    /// Hand the editor's edits to the view: published at once with
    /// auto-sync on, kept local with it off or when they do not fit.
    pub fn flush(&mut self) {
        if !std::mem::take(&mut self.unflushed) {
            return;
        }
        let linked = match &mut self.link {
            Link::Open(linked) => linked,
            Link::Closed { edited_offline } => {
                *edited_offline = true;
                return;
            }
        };
        let view = &mut linked.view;
        match view.set_lines(self.editor.shared_lines()) {
            Ok(Some(_)) => linked.too_large = None,
            Ok(None) => {
                if !view.auto_sync() && self.editor.text_len() <= view.map().capacity() {
                    linked.too_large = None;
                }
            }
            Err(e) => {
                if let Some(message) = linked.failed("Publishing the edit failed", e) {
                    self.message = Some(message);
                }
            }
        }
    }

    /// Pull or report a change another writer published, and refresh the
    /// status figures. Returns whether anything shown changed. One atomic
    /// load when nothing did.
    pub fn tick(&mut self, now: Instant) -> bool {
        self.flush();
        let mut changed = self.poll_remote();
        let Some(linked) = self.linked() else {
            return changed;
        };
        let generation = linked.view.map().generation();
        if now.duration_since(linked.info_at) >= INFO_EVERY || linked.info.generation != generation
        {
            changed |= self.refresh_info(now);
        }
        changed
    }

    fn poll_remote(&mut self) -> bool {
        let Link::Open(linked) = &mut self.link else {
            return false;
        };
        let view = &mut linked.view;
        let generation = view.map().generation();
        if generation == view.synced_generation()
            || linked.pending.is_some_and(|p| p.generation == generation)
            || linked.unreadable == Some(generation)
        {
            return false;
        }
        if view.is_dirty() && view.auto_sync() {
            // A write-through failed (too large) and left local edits
            // unpublished. `TextView::sync_remote` would pull over them, so
            // report the change instead and let the user choose.
            let writer = view.map().info().last_writer;
            linked.pending = Some(Pending { writer, generation });
            return true;
        }
        match view.sync_remote() {
            Ok(RemoteChange::None) => false,
            Ok(RemoteChange::Pulled(_)) => {
                linked.pending = None;
                if !self.editor.shared_lines().eq(view.lines()) {
                    self.editor.replace(view.lines());
                }
                self.guard_undecodable();
                true
            }
            Ok(RemoteChange::Pending(writer)) => {
                linked.pending = Some(Pending { writer, generation });
                true
            }
            Err(e) => {
                linked.unreadable = Some(generation);
                if let Some(message) = linked.failed("Reading the shared text failed", e) {
                    self.message = Some(message);
                }
                true
            }
        }
    }

    fn refresh_info(&mut self, now: Instant) -> bool {
        let Link::Open(linked) = &mut self.link else {
            return false;
        };
        let info = linked.view.map().info();
        linked.info_at = now;
        let changed = info != linked.info;
        linked.info = info;
        changed
    }

    // ----- Commands.

    fn open(&mut self) {
        let edited_offline = match self.link {
            Link::Open(_) => return self.say(Level::Info, "The memo is open already."),
            Link::Closed { edited_offline } => edited_offline || self.unflushed,
        };
        let mut view = match attach(&self.name, self.capacity) {
            Ok(view) => view,
            Err(e) => {
                return self.say(
                    Level::Error,
                    format!("Opening {:?} failed: {e:#}", self.name),
                )
            }
        };
        let existed = view.map().existed_already();
        let local = self.editor.shared_lines();
        self.unflushed = false;
        let outcome = if view.lines() == local {
            view.set_auto_sync(self.auto_sync)
                .map(|_| (Level::Info, "Opened."))
        } else if !existed {
            // A new region: the local text is all there is.
            view.set_auto_sync(self.auto_sync)
                .and_then(|_| view.set_lines(local))
                .map(|_| (Level::Info, "Opened a new region with the local text."))
        } else if edited_offline {
            // Both sides changed: keep the local edits, local.
            self.auto_sync = false;
            view.set_auto_sync(false)
                .and_then(|_| view.set_lines(local))
                .map(|_| {
                    (
                        Level::Warn,
                        "Opened: the shared text differs from your local edits. \
                     Auto-sync is off: F4 read takes the shared text, F5 write publishes yours.",
                    )
                })
        } else {
            self.editor.replace(view.lines());
            view.set_auto_sync(self.auto_sync)
                .map(|_| (Level::Info, "Opened: showing the shared text."))
        };
        let mut linked = Box::new(Linked::new(view));
        let message = match outcome {
            Ok((level, text)) => Some(Message {
                level,
                text: text.into(),
            }),
            Err(e) => linked.failed("Publishing the local text failed", e),
        };
        self.link = Link::Open(linked);
        if let Some(message) = message {
            self.message = Some(message);
        }
        self.guard_undecodable();
        self.refresh_info(Instant::now());
    }

    fn close(&mut self) {
        self.flush();
        let Link::Open(linked) = &self.link else {
            return self.say(Level::Info, "The memo is closed already.");
        };
        let edited_offline = linked.view.is_dirty();
        // Dropping the view closes the handle.
        self.link = Link::Closed { edited_offline };
        self.say(
            Level::Info,
            "Closed: editing is local. F2 opens the memo again.",
        );
    }

    fn read(&mut self) {
        let Link::Open(linked) = &mut self.link else {
            return self.say(Level::Warn, "The memo is closed: F2 opens it.");
        };
        self.unflushed = false;
        let message = match linked.view.read() {
            Ok(generation) => {
                self.editor.replace(linked.view.lines());
                linked.pending = None;
                linked.too_large = None;
                linked.unreadable = None;
                Some(Message {
                    level: Level::Info,
                    text: format!("Read the shared text (generation {generation})."),
                })
            }
            Err(e) => linked.failed("Reading the shared text failed", e),
        };
        if let Some(message) = message {
            self.message = Some(message);
        }
        self.guard_undecodable();
    }

    fn write(&mut self) {
        self.flush();
        let Link::Open(linked) = &mut self.link else {
            return self.say(Level::Warn, "The memo is closed: F2 opens it.");
        };
        let message = match linked.view.write() {
            Ok(published) => {
                linked.pending = None;
                linked.too_large = None;
                Some(Message {
                    level: Level::Info,
                    text: format!(
                        "Wrote the local text (generation {}).",
                        published.generation
                    ),
                })
            }
            Err(e) => linked.failed("Writing failed", e),
        };
        if let Some(message) = message {
            self.message = Some(message);
        }
    }

    fn clear(&mut self) {
        self.editor.clear();
        self.unflushed = true;
        self.flush();
        let shared = self.linked().is_some_and(|l| !l.view.is_dirty());
        self.say(
            Level::Info,
            if shared {
                "Cleared."
            } else {
                "Cleared locally."
            },
        );
    }

    fn toggle_auto_sync(&mut self) {
        self.flush();
        self.auto_sync = !self.auto_sync;
        let on = self.auto_sync;
        let Link::Open(linked) = &mut self.link else {
            let state = if on { "on" } else { "off" };
            return self.say(
                Level::Info,
                format!("Auto-sync {state}; it applies when the memo is open."),
            );
        };
        let pending = linked.pending.take();
        let message = match linked.view.set_auto_sync(on) {
            Ok(Some(_)) => {
                linked.too_large = None;
                let over = pending.map_or(String::new(), |p| {
                    format!(" over pid {}'s change", p.writer.pid)
                });
                Some((
                    Level::Info,
                    format!("Auto-sync on: published your local edits{over}."),
                ))
            }
            Ok(None) if on => Some((Level::Info, "Auto-sync on.".to_owned())),
            Ok(None) => {
                linked.pending = pending;
                Some((
                    Level::Info,
                    "Auto-sync off: edits stay local until F5 write.".to_owned(),
                ))
            }
            Err(e) => {
                linked.pending = pending;
                linked
                    .failed("Publishing the local edits failed", e)
                    .map(|m| (m.level, m.text))
            }
        };
        if let Some((level, text)) = message {
            self.say(level, text);
        }
    }

    fn request_quit(&mut self) {
        self.flush();
        if self.quit == Quit::Armed {
            self.quit = Quit::Yes;
            return;
        }
        let loses = if self.has_unpublished() {
            Some("your local edits are not published")
        } else {
            self.map().and_then(|map| {
                let info = map.info();
                let alone = info.attached.iter().all(|&pid| pid == map.writer_id().pid);
                (alone && !info.persistent && info.len > 0)
                    .then_some("this is the last instance: the memo goes away")
            })
        };
        match loses {
            Some(why) => {
                self.quit = Quit::Armed;
                self.say(
                    Level::Warn,
                    format!("Quit? {why}. Press ^Q again to quit, any other key to stay."),
                );
            }
            None => self.quit = Quit::Yes,
        }
    }

    /// The editor shows the shared text with U+FFFD for bytes that are
    /// not UTF-8 ([`TextView::is_lossy`]). Publishing that would replace
    /// bytes nobody edited, so auto-sync goes off and the user is told:
    /// only F5 (or F7) publishes, by choice.
    fn guard_undecodable(&mut self) {
        let Link::Open(linked) = &mut self.link else {
            return;
        };
        let view = &mut linked.view;
        if !view.is_lossy() {
            return;
        }
        if view.auto_sync() {
            if let Err(e) = view.set_auto_sync(false) {
                if let Some(message) = linked.failed("Turning auto-sync off failed", e) {
                    self.message = Some(message);
                }
                return;
            }
            self.auto_sync = false;
        }
        self.say(
            Level::Warn,
            "Not valid UTF-8: bad bytes show as \u{FFFD}; auto-sync is off to keep them \
             (F5 would replace them).",
        );
    }

    // ----- Messages.

    fn say(&mut self, level: Level, text: impl Into<String>) {
        self.message = Some(Message {
            level,
            text: text.into(),
        });
    }
}

/// The most a memo this command creates grows to as its text does: 16 MiB
/// (or its capacity, if that is larger). Memory and `/dev/shm` are spent
/// only on what the text uses.
pub const MEMO_MAX_CAPACITY: usize = 16 << 20;

/// Open (create or attach to) region `name` as a text view; a memo it
/// creates grows up to [`MEMO_MAX_CAPACITY`].
fn attach(name: &str, capacity: u64) -> anyhow::Result<TextView> {
    let capacity = usize::try_from(capacity).unwrap_or(usize::MAX);
    let map = FileMap::builder(name)
        .capacity(capacity)
        .max_capacity(capacity.max(MEMO_MAX_CAPACITY))
        .open()?;
    Ok(TextView::new(map)?)
}

/// The memo's default capacity: 64 KiB, or enough for `init` and as much
/// again when it is bigger.
pub fn default_capacity(init: Option<&str>) -> u64 {
    const DEFAULT: u64 = 64 * 1024;
    let init = init.map_or(0, |t| t.len() as u64);
    DEFAULT
        .max(init.saturating_mul(2))
        .min(filemap::MAX_CAPACITY as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use filemap::TextExt;
    use ratatui::crossterm::event::{KeyCode, KeyModifiers};
    use std::sync::atomic::{AtomicU32, Ordering};

    /// A unique region name; regions are not persistent, so each goes away
    /// with its test's handles.
    fn region(tag: &str) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        format!(
            "memo-unit-{}-{tag}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        )
    }

    fn options(name: &str) -> Options {
        Options {
            name: name.to_owned(),
            capacity: 4096,
            capacity_given: false,
            init: None,
        }
    }

    fn app(name: &str) -> App {
        App::new(options(name)).expect("open memo")
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    /// The key that types `c` (a newline is Enter).
    fn key_for(c: char) -> KeyEvent {
        key(if c == '\n' {
            KeyCode::Enter
        } else {
            KeyCode::Char(c)
        })
    }

    fn type_str(app: &mut App, text: &str) {
        for c in text.chars() {
            app.handle_key(&key_for(c));
        }
        app.flush();
    }

    /// Type at the end of the text (a pull keeps the cursor where it was).
    fn append(app: &mut App, text: &str) {
        app.handle_key(&KeyEvent::new(KeyCode::End, KeyModifiers::CONTROL));
        type_str(app, text);
    }

    fn shared(name: &str) -> String {
        FileMap::open(name).unwrap().read_string().unwrap().content
    }

    fn text(app: &App) -> String {
        app.editor().lines().join("\n")
    }

    #[test]
    fn edits_are_written_through() {
        let name = region("through");
        let mut a = app(&name);
        assert!(!a.existed_already());
        type_str(&mut a, "hello\nworld");
        assert_eq!(shared(&name), "hello\nworld");
        assert!(!a.has_unpublished());
    }

    #[test]
    fn a_second_instance_sees_the_text_and_the_edits() {
        let name = region("second");
        let mut a = app(&name);
        type_str(&mut a, "from a");
        let mut b = app(&name);
        assert!(b.existed_already());
        assert_eq!(text(&b), "from a");
        type_str(&mut a, "!");
        assert!(b.tick(Instant::now()));
        assert_eq!(text(&b), "from a!");
        assert_eq!(b.pending(), None);
        assert!(!a.poll_remote(), "own write is not a remote change");
        assert_eq!(text(&a), "from a!");
        assert_eq!(
            b.info().unwrap().attached.len(),
            1,
            "one process, two handles"
        );
    }

    #[test]
    fn auto_sync_off_keeps_edits_local_and_reports_remote_changes() {
        let name = region("off");
        let mut a = app(&name);
        type_str(&mut a, "base");
        let other = FileMap::open(&name).unwrap();
        a.run(Command::ToggleAutoSync);
        assert!(!a.auto_sync());
        type_str(&mut a, " draft");
        assert_eq!(shared(&name), "base");
        assert!(a.has_unpublished());

        other.write_str("remote").unwrap();
        assert!(a.tick(Instant::now()));
        let pending = a.pending().expect("a pending remote change");
        assert_eq!(pending.writer, other.writer_id());
        assert_eq!(text(&a), "base draft", "the local edit is kept");
        assert!(!a.tick(Instant::now()), "reported once, not every frame");

        a.run(Command::Read);
        assert_eq!(text(&a), "remote");
        assert_eq!(a.pending(), None);
        assert!(!a.has_unpublished());

        type_str(&mut a, " 2");
        assert_eq!(shared(&name), "remote");
        a.run(Command::Write);
        assert_eq!(shared(&name), "remote 2");
        assert!(!a.has_unpublished());
    }

    #[test]
    fn auto_sync_back_on_publishes_local_edits_or_pulls() {
        let name = region("on-again");
        let mut a = app(&name);
        let other = FileMap::open(&name).unwrap();
        a.run(Command::ToggleAutoSync);
        other.write_str("theirs").unwrap();
        a.tick(Instant::now());
        assert!(a.pending().is_some());
        // No local edits: turning auto-sync on pulls the change.
        a.run(Command::ToggleAutoSync);
        a.tick(Instant::now());
        assert_eq!(text(&a), "theirs");
        // Local edits: turning auto-sync on publishes them.
        a.run(Command::ToggleAutoSync);
        append(&mut a, " mine");
        a.run(Command::ToggleAutoSync);
        assert_eq!(shared(&name), "theirs mine");
    }

    #[test]
    fn clear_is_written_through() {
        let name = region("clear");
        let mut a = app(&name);
        type_str(&mut a, "something");
        a.run(Command::Clear);
        assert_eq!(shared(&name), "");
        assert!(a.editor().is_empty());
        assert_eq!(a.editor().cursor(), (0, 0));
    }

    #[test]
    fn an_edit_too_large_keeps_both_texts() {
        let name = region("large");
        // A region made elsewhere that never grows: the memo attaches to it.
        let _fixed = FileMap::builder(&name)
            .capacity(32)
            .create_only()
            .open()
            .unwrap();
        let mut a = App::new(Options {
            capacity: 32,
            ..options(&name)
        })
        .unwrap();
        type_str(&mut a, "0123456789012345678901234567890"); // 31 bytes
        assert_eq!(a.too_large(), None);
        type_str(&mut a, "12");
        assert_eq!(a.too_large(), Some((33, 32)));
        assert_eq!(
            text(&a),
            "012345678901234567890123456789012",
            "local text kept"
        );
        assert_eq!(
            shared(&name),
            "0123456789012345678901234567890",
            "shared text kept"
        );
        assert!(a.has_unpublished());

        // A remote change does not pull over the unpublished text.
        let other = FileMap::open(&name).unwrap();
        other.write_str("remote").unwrap();
        assert!(a.tick(Instant::now()));
        assert_eq!(a.pending().map(|p| p.writer), Some(other.writer_id()));
        assert_eq!(text(&a), "012345678901234567890123456789012");

        // Deleting until it fits publishes again.
        a.handle_key(&key(KeyCode::Backspace));
        a.handle_key(&key(KeyCode::Backspace));
        a.flush();
        assert_eq!(a.too_large(), None);
        assert_eq!(shared(&name), "0123456789012345678901234567890");
        assert!(!a.has_unpublished());
    }

    #[test]
    fn a_remote_change_keeps_the_cursor_clamped() {
        let name = region("cursor");
        let mut a = app(&name);
        type_str(&mut a, "first line\nsecond line\nthird");
        a.editor_mut().move_to(1, 8);
        let other = FileMap::open(&name).unwrap();
        other.write_str("FIRST LINE\nSECOND LINE\nthird").unwrap();
        a.tick(Instant::now());
        assert_eq!(a.editor().cursor(), (1, 8), "same line and column");
        other.write_str("one\ntwo").unwrap();
        a.tick(Instant::now());
        assert_eq!(a.editor().cursor(), (1, 3), "clamped to the shorter line");
        other.write_str("").unwrap();
        a.tick(Instant::now());
        assert_eq!(a.editor().cursor(), (0, 0));
        assert!(a.editor().is_empty());
    }

    #[test]
    fn init_fills_a_new_region_and_loses_to_an_existing_one() {
        let name = region("init");
        let a = App::new(Options {
            init: Some("from file\nline 2".into()),
            ..options(&name)
        })
        .unwrap();
        assert_eq!(shared(&name), "from file\nline 2");
        assert_eq!(text(&a), "from file\nline 2");
        let b = App::new(Options {
            init: Some("other file".into()),
            ..options(&name)
        })
        .unwrap();
        assert_eq!(text(&b), "from file\nline 2", "the shared text wins");
        assert!(b.message().unwrap().text.contains("--init"));
    }

    #[test]
    fn init_too_large_stays_local() {
        let name = region("init-large");
        let a = App::new(Options {
            capacity: 32,
            capacity_given: true,
            // Past the most a memo grows to.
            init: Some("x".repeat(MEMO_MAX_CAPACITY + 1)),
            ..options(&name)
        })
        .unwrap();
        assert_eq!(
            a.too_large(),
            Some((MEMO_MAX_CAPACITY + 1, MEMO_MAX_CAPACITY))
        );
        assert!(
            text(&a) == "x".repeat(MEMO_MAX_CAPACITY + 1),
            "init kept locally"
        );
        assert_eq!(shared(&name), "");
    }

    #[test]
    fn closed_edits_stay_local_and_open_reconciles() {
        let name = region("close");
        let mut a = app(&name);
        let mut b = app(&name);
        type_str(&mut a, "shared");
        b.tick(Instant::now());

        // Closed without edits: re-opening shows what others wrote.
        a.run(Command::Close);
        assert!(!a.is_open() && !a.existed_already() && a.info().is_none());
        append(&mut b, " by b");
        a.run(Command::Open);
        assert!(a.is_open() && a.existed_already());
        assert_eq!(text(&a), "shared by b");
        assert!(a.auto_sync());

        // Closed with edits while others edit too: both kept, auto-sync off.
        a.run(Command::Close);
        append(&mut a, " +a");
        assert_eq!(shared(&name), "shared by b");
        append(&mut b, " +b");
        a.run(Command::Open);
        assert_eq!(text(&a), "shared by b +a");
        assert_eq!(shared(&name), "shared by b +b");
        assert!(!a.auto_sync());
        assert!(a.has_unpublished());
        assert_eq!(a.message().unwrap().level, Level::Warn);
        a.run(Command::Write);
        assert_eq!(shared(&name), "shared by b +a");
    }

    #[test]
    fn reopening_a_vanished_region_publishes_the_local_text() {
        let name = region("vanished");
        let mut a = app(&name);
        type_str(&mut a, "keep me");
        a.run(Command::Close);
        assert!(
            !filemap::admin::shm_path(&name).exists(),
            "last handle closed: region gone"
        );
        a.run(Command::Open);
        assert!(!a.existed_already());
        assert_eq!(shared(&name), "keep me");
    }

    #[test]
    fn read_and_write_while_closed_say_so() {
        let name = region("closed-cmds");
        let mut a = app(&name);
        a.run(Command::Close);
        a.run(Command::Read);
        assert_eq!(a.message().unwrap().level, Level::Warn);
        a.run(Command::Write);
        assert!(a.message().unwrap().text.contains("closed"));
        a.run(Command::ToggleAutoSync);
        assert!(!a.auto_sync());
    }

    #[test]
    fn quitting_asks_before_losing_text() {
        let name = region("quit");
        let mut a = app(&name);
        a.handle_key(&KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL));
        assert!(a.should_quit(), "empty memo: quits at once");

        let mut a = app(&name);
        type_str(&mut a, "precious");
        let ctrl_q = KeyEvent::new(KeyCode::Char('q'), KeyModifiers::CONTROL);
        a.handle_key(&ctrl_q);
        assert!(!a.should_quit(), "last instance with text: asks");
        a.handle_key(&key(KeyCode::Char('x')));
        assert!(!a.should_quit());
        assert_eq!(text(&a), "precious", "the key that cancels is not typed");
        a.handle_key(&ctrl_q);
        a.handle_key(&ctrl_q);
        assert!(a.should_quit());
    }

    #[test]
    fn a_second_handle_in_this_process_is_not_another_instance() {
        let name = region("quit-handle");
        let mut a = app(&name);
        type_str(&mut a, "text");
        let _b = FileMap::open(&name).unwrap();
        a.run(Command::Quit);
        assert!(!a.should_quit(), "asks: no other process keeps the text");
        assert!(a.is_quitting());
    }

    #[test]
    fn keys_map_to_commands() {
        assert_eq!(command_for(&key(KeyCode::F(2))), Some(Command::Open));
        assert_eq!(
            command_for(&key(KeyCode::F(7))),
            Some(Command::ToggleAutoSync)
        );
        assert_eq!(command_for(&key(KeyCode::Esc)), Some(Command::Quit));
        assert_eq!(command_for(&key(KeyCode::Char('q'))), None);
        assert_eq!(
            command_for(&KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL)),
            Some(Command::Quit)
        );
    }

    #[test]
    fn default_capacity_fits_init() {
        assert_eq!(default_capacity(None), 65536);
        assert_eq!(default_capacity(Some("small")), 65536);
        assert_eq!(default_capacity(Some(&"x".repeat(100_000))), 200_000);
    }

    /// The memo next to a legacy TFileMap program: the Free Pascal peer of
    /// filemap-legacy/tests/peer (a real Windows process; ci/windows.sh
    /// builds it and names it in `FILEMAP_LEGACY_PEER`) and the legacy
    /// gateway between them, as `filemap legacy` runs it. The memo is this
    /// module's model driven by keys, as the event loop drives it.
    #[cfg(windows)]
    mod with_a_legacy_program {
        use super::*;
        use std::io::{BufRead, BufReader, Write};
        use std::process::{Child, ChildStdin, Command, Stdio};
        use std::sync::mpsc::{self, Receiver};

        use filemap_legacy::{Encoding, Event, Gateway};
        use filemap_testkit::{await_condition_within, unique, Cleanup};

        /// Generous bound for one step under Wine; the test fails, not hangs.
        const STEP: Duration = Duration::from_secs(30);

        /// The legacy peer, its map open; its output lines are awaited.
        struct Peer {
            child: Child,
            stdin: ChildStdin,
            lines: Receiver<String>,
            seen: Vec<String>,
        }

        impl Peer {
            fn open(name: &str) -> Peer {
                let exe = std::env::var("FILEMAP_LEGACY_PEER").expect(
                    "FILEMAP_LEGACY_PEER is not set: ci/windows.sh builds the legacy peer and sets it",
                );
                // A Unix path from the script: Wine shows the root as drive Z:.
                let exe = if exe.starts_with('/') {
                    format!("Z:{exe}")
                } else {
                    exe
                };
                let mut child = Command::new(&exe)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("starting the legacy peer {exe}: {e}"));
                let out = child.stdout.take().unwrap();
                let (tx, lines) = mpsc::channel();
                std::thread::spawn(move || {
                    for line in BufReader::new(out).lines() {
                        let Ok(line) = line else { break };
                        if tx.send(line).is_err() {
                            break;
                        }
                    }
                });
                let mut peer = Peer {
                    stdin: child.stdin.take().unwrap(),
                    child,
                    lines,
                    seen: Vec::new(),
                };
                peer.expect("ready");
                peer.send(&format!("open {name} 4096 ansi 1252"));
                peer.expect("opened existed=1");
                peer
            }

            fn send(&mut self, command: &str) {
                writeln!(self.stdin, "{command}").unwrap();
                self.stdin.flush().unwrap();
            }

            /// Wait for the line `want`; the lines before it are kept in
            /// `seen`.
            fn expect(&mut self, want: &str) {
                let deadline = Instant::now() + STEP;
                loop {
                    let left = deadline.saturating_duration_since(Instant::now());
                    match self.lines.recv_timeout(left) {
                        Ok(line) if line == want => return,
                        Ok(line) => self.seen.push(line),
                        Err(_) => panic!(
                            "legacy peer: no line {want:?} within {STEP:?}; lines so far: {:?}",
                            self.seen
                        ),
                    }
                }
            }
        }

        impl Drop for Peer {
            fn drop(&mut self) {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }

        /// Type `text` one key at a time, each published on its own, as
        /// keys typed at a person's pace are.
        fn type_slowly(app: &mut App, text: &str) {
            for c in text.chars() {
                app.handle_key(&key_for(c));
                app.flush();
            }
        }

        #[test]
        fn typing_in_the_memo_and_in_a_legacy_program_reaches_the_other() {
            let name = unique("memo-legacy");
            let _cleanup = Cleanup(name.clone());
            let mut memo = app(&name);
            let (events_tx, events) = mpsc::channel();
            let gateway = Gateway::start(
                filemap_legacy::Options {
                    encoding: Encoding::Ansi,
                    codepage: 1252,
                    ..filemap_legacy::Options::new(&name)
                },
                move |event| {
                    let _ = events_tx.send(event);
                },
            )
            .expect("starting the legacy gateway");
            let mut peer = Peer::open(&name);

            // Memo -> legacy, key by key: the legacy window hears each
            // change and reads the text (code page 1252 on its side).
            type_slowly(&mut memo, "Grüße aus dem Memo\nzweite Zeile");
            peer.expect("changed Grüße aus dem Memo|zweite Zeile");
            // Every state it saw on the way was one the memo had typed.
            let typed = "Grüße aus dem Memo|zweite Zeile";
            for line in &peer.seen {
                let seen = line
                    .strip_prefix("changed ")
                    .unwrap_or_else(|| panic!("legacy peer: unexpected line {line:?}"));
                assert!(typed.starts_with(seen), "{seen:?} is not a typed state");
            }
            peer.send("read");
            peer.expect("text Grüße aus dem Memo|zweite Zeile");

            // Legacy -> memo: the legacy program adds a line to the text
            // (a TStringList written whole, as the component does).
            peer.send("write Grüße aus dem Memo|zweite Zeile|eine Zeile von früher");
            // Before its reply come only late notes of the memo's last
            // state (each broadcast re-reads the text): never its own text.
            loop {
                let line = peer
                    .lines
                    .recv_timeout(STEP)
                    .unwrap_or_else(|_| panic!("legacy peer: no reply to write within {STEP:?}"));
                if line.starts_with("written ") {
                    break;
                }
                assert_eq!(line, format!("changed {typed}"), "legacy peer");
            }
            let legacy_text = "Grüße aus dem Memo\nzweite Zeile\neine Zeile von früher";
            await_condition_within("the memo showing the legacy line", STEP, || {
                memo.tick(Instant::now());
                text(&memo) == legacy_text
            });
            assert_eq!(memo.pending(), None);
            assert!(!memo.has_unpublished());

            // And the memo types on after it.
            append(&mut memo, "");
            type_slowly(&mut memo, "\nund zurück");
            peer.expect("changed Grüße aus dem Memo|zweite Zeile|eine Zeile von früher|und zurück");
            assert_eq!(
                shared(&name),
                "Grüße aus dem Memo\nzweite Zeile\neine Zeile von früher\nund zurück"
            );

            gateway.stop();
            let events: Vec<Event> = events.try_iter().collect();
            assert!(
                events
                    .iter()
                    .all(|e| matches!(e, Event::Ready { .. } | Event::Copied { .. })),
                "the gateway only copied: {events:?}"
            );
        }
    }
}
