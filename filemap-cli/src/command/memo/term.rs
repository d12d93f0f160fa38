//! The terminal while the memo runs: raw mode, the alternate screen and
//! bracketed paste, and putting it all back.
//!
//! This module owns the terminal's state. It must leave the terminal as it
//! found it however the memo ends: normally, with an error (the [`Tui`] is
//! dropped), or in a panic (a hook restores the terminal before the panic
//! message prints, so the message is readable).

use std::io::{self, Stdout};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Once;

use ratatui::backend::CrosstermBackend;
use ratatui::crossterm::cursor::Show;
use ratatui::crossterm::event::{DisableBracketedPaste, EnableBracketedPaste};
use ratatui::crossterm::execute;
use ratatui::crossterm::terminal::{
    disable_raw_mode, enable_raw_mode, EnterAlternateScreen, LeaveAlternateScreen,
};
use ratatui::Terminal;

/// Whether the terminal is set up for the memo (and so needs restoring).
static ACTIVE: AtomicBool = AtomicBool::new(false);

/// The terminal ratatui draws on.
pub type Term = Terminal<CrosstermBackend<Stdout>>;

/// The terminal set up for the memo; restored on drop.
pub struct Tui {
    /// What to draw on.
    pub terminal: Term,
}

impl Tui {
    /// Enter raw mode and the alternate screen, and turn on bracketed paste
    /// (a paste arrives as one event, so it is published once, not once per
    /// character).
    ///
    /// # Errors
    /// When the terminal refuses; it is restored first.
    pub fn enter() -> io::Result<Tui> {
        install_panic_hook();
        enable_raw_mode()?;
        ACTIVE.store(true, Ordering::SeqCst);
        let set_up = execute!(io::stdout(), EnterAlternateScreen, EnableBracketedPaste)
            .and_then(|()| Terminal::new(CrosstermBackend::new(io::stdout())));
        match set_up {
            Ok(terminal) => Ok(Tui { terminal }),
            Err(e) => {
                restore();
                Err(e)
            }
        }
    }
}

impl Drop for Tui {
    fn drop(&mut self) {
        restore();
    }
}

/// Put the terminal back. Only the first call after [`Tui::enter`] acts:
/// leaving the alternate screen twice would move the cursor back up over
/// what was printed in between (a panic message).
fn restore() {
    if !ACTIVE.swap(false, Ordering::SeqCst) {
        return;
    }
    let _ = execute!(
        io::stdout(),
        DisableBracketedPaste,
        LeaveAlternateScreen,
        Show
    );
    let _ = disable_raw_mode();
}

/// Restore the terminal before the previous panic hook prints.
fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}
