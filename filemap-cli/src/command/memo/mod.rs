//! `filemap memo`: a terminal notepad shared live between processes.
//!
//! Every `filemap memo NAME` started with the same NAME shows the same text;
//! what one types appears in the others within a frame. The state lives in
//! [`app`] (sync policy, commands) and [`editor`] (text and cursor), drawing
//! in [`ui`], the terminal's set-up and teardown in [`term`]; this file
//! runs the event loop (the arguments are [`MemoArgs`] in `cli.rs`).
//!
//! The loop sleeps on one channel fed by three threads: a key reader, the
//! region's watcher ([`filemap::FileMap::watch`], woken by the kernel the
//! moment another memo publishes) and a signal listener. So a remote edit is
//! on screen about a millisecond after it is published, and an idle memo
//! wakes only to refresh its status figures ([`app::INFO_EVERY`]).

mod app;
mod editor;
mod keys;
mod term;
mod ui;

use std::io::IsTerminal;
use std::path::Path;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Context;
use filemap::{Watcher, WriterId};
use ratatui::crossterm::event::{self, Event, KeyEventKind};

use super::input::read_at_most;
use app::{App, Options};

use crate::cli::MemoArgs;

/// Longest run of queued input handled before the screen is redrawn.
const BATCH: Duration = Duration::from_millis(8);

/// Why the event loop woke.
enum Wake {
    Input(Event),
    InputFailed(std::io::Error),
    /// Another handle published.
    Remote,
    /// TERM, HUP or INT: quit as on ^Q, without asking.
    Signal,
}

/// Run the memo until the user quits or a signal (TERM, HUP, INT) asks.
///
/// # Errors
/// When the region cannot be opened, `--init` cannot be read, or the
/// terminal fails.
pub fn run(args: MemoArgs) -> anyhow::Result<()> {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        anyhow::bail!("memo is interactive: run it in a terminal");
    }
    let init = args
        .init
        .as_deref()
        .map(|path| read_init(path, filemap::MAX_CAPACITY))
        .transpose()?;
    let mut app = App::new(Options {
        capacity: args
            .capacity
            .unwrap_or_else(|| app::default_capacity(init.as_deref())),
        capacity_given: args.capacity.is_some(),
        name: args.name,
        init,
    })?;

    let (tx, rx) = mpsc::channel();
    // A closed terminal window (HUP), a kill (TERM) or an interrupt ends the
    // loop, so the terminal is restored and the region released as on a
    // normal quit. (ctrlc's `termination` feature covers all three.)
    let to_loop = std::sync::Mutex::new(tx.clone());
    ctrlc::set_handler(move || {
        if let Ok(to_loop) = to_loop.lock() {
            let _ = to_loop.send(Wake::Signal);
        }
    })
    .context("installing signal handlers")?;

    let mut tui = term::Tui::enter().context("setting up the terminal")?;
    let to_loop = tx.clone();
    std::thread::Builder::new()
        .name("memo-input".into())
        .spawn(move || read_input(&to_loop))
        .context("starting the input thread")?;
    event_loop(&mut tui.terminal, &mut app, &rx, &tx)
}

/// `--init`'s text. At most `limit` bytes (the most any region holds) are
/// read: a larger file, or one without an end (`/dev/zero`, a FIFO whose
/// writer never closes), is refused before the memo starts instead of
/// filling memory. A text too large for the memo's region stays local, as
/// [`App::new`] says.
fn read_init(path: &Path, limit: usize) -> anyhow::Result<String> {
    let reading = || format!("reading --init {}", path.display());
    let file = std::fs::File::open(path).with_context(reading)?;
    let bytes = read_at_most(file, limit).with_context(reading)?;
    if bytes.len() > limit {
        anyhow::bail!(
            "{}: longer than {limit} bytes, the most a region holds",
            reading()
        );
    }
    String::from_utf8(bytes).map_err(|e| {
        anyhow::anyhow!(
            "{}: not UTF-8 text (byte {} is not)",
            reading(),
            e.utf8_error().valid_up_to()
        )
    })
}

/// Forward terminal events until the loop is gone or the terminal fails.
fn read_input(to_loop: &Sender<Wake>) {
    loop {
        let wake = match event::read() {
            Ok(event) => Wake::Input(event),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => Wake::InputFailed(e),
        };
        let failed = matches!(wake, Wake::InputFailed(_));
        if to_loop.send(wake).is_err() || failed {
            return;
        }
    }
}

fn event_loop(
    terminal: &mut term::Term,
    app: &mut App,
    rx: &Receiver<Wake>,
    tx: &Sender<Wake>,
) -> anyhow::Result<()> {
    // The watcher of the region the app has open, by its handle's id.
    let mut watched: Option<(WriterId, Watcher)> = None;
    let mut redraw = true;
    while !app.should_quit() {
        if watched.as_ref().map(|(id, _)| *id) != app.map().map(filemap::FileMap::writer_id) {
            // Drop the old watcher first: it holds the closed region open.
            watched = None;
            if let Some(map) = app.map() {
                let to_loop = tx.clone();
                let watcher = map.watch(move |_| {
                    let _ = to_loop.send(Wake::Remote);
                })?;
                watched = Some((map.writer_id(), watcher));
            }
        }
        redraw |= app.tick(Instant::now());
        if std::mem::take(&mut redraw) {
            terminal.draw(|frame| ui::draw(frame, app))?;
        }
        let mut wake = match rx.recv_timeout(app::INFO_EVERY) {
            Ok(wake) => wake,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => return Ok(()),
        };
        // Take a change published meanwhile before applying keys typed
        // over it, so they apply to the text they were typed on.
        app.tick(Instant::now());
        let batch = Instant::now();
        loop {
            match wake {
                Wake::Input(Event::Key(key)) if key.kind != KeyEventKind::Release => {
                    app.handle_key(&key)
                }
                Wake::Input(Event::Paste(text)) => app.handle_paste(&text),
                Wake::Input(_) | Wake::Remote => {}
                Wake::InputFailed(e) => {
                    return Err(anyhow::Error::new(e).context("reading the terminal"))
                }
                Wake::Signal => return Ok(()),
            }
            if app.should_quit() || batch.elapsed() >= BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(next) => wake = next,
                Err(_) => break,
            }
        }
        app.flush();
        redraw = true;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::read_init;

    /// A file of this test's own in the temporary directory, removed when
    /// dropped.
    struct Scratch(std::path::PathBuf);

    impl Scratch {
        fn holding(tag: &str, bytes: &[u8]) -> Scratch {
            let path = std::env::temp_dir()
                .join(format!("filemap-memo-init-{}-{tag}", std::process::id()));
            std::fs::write(&path, bytes).unwrap();
            Scratch(path)
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn init_reads_a_text_up_to_the_limit() {
        let file = Scratch::holding("fits", "line 1\nline 2 é".as_bytes());
        assert_eq!(read_init(&file.0, 16).unwrap(), "line 1\nline 2 é");
    }

    #[test]
    fn init_longer_than_the_limit_is_refused_with_the_limit() {
        let file = Scratch::holding("long", &[b'x'; 4097]);
        let e = read_init(&file.0, 4096).unwrap_err().to_string();
        assert!(e.contains("longer than 4096 bytes"), "{e}");
    }

    #[test]
    fn init_that_is_not_utf8_names_the_bad_byte() {
        let file = Scratch::holding("latin1", b"caf\xe9 au lait");
        let e = read_init(&file.0, 4096).unwrap_err().to_string();
        assert!(e.contains("not UTF-8") && e.contains("byte 3"), "{e}");
    }

    /// An input with no end is refused after `limit + 1` bytes: the read
    /// never finished before.
    #[cfg(unix)]
    #[test]
    fn init_without_an_end_is_refused() {
        let e = read_init("/dev/zero".as_ref(), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(e.contains("longer than 1048576 bytes"), "{e}");
    }

    #[test]
    fn init_that_is_missing_names_the_file() {
        let e = format!("{:#}", read_init("/no/such/init".as_ref(), 32).unwrap_err());
        assert!(e.contains("reading --init /no/such/init"), "{e}");
    }
}
