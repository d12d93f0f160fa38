//! The keys: which command each is bound to, and the help line's list.
//!
//! This module owns the key table; the state it drives is in `app.rs`.

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// A command bound to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach to the region again after [`Command::Close`].
    Open,
    /// Let go of the region; editing goes on locally.
    Close,
    /// Take the shared text now, dropping local edits.
    Read,
    /// Publish the local text now.
    Write,
    /// Clear the text.
    Clear,
    /// Turn write-through and pull on or off.
    ToggleAutoSync,
    /// Leave (asks first when that would lose the text).
    Quit,
}

/// Keys for the help line, in order; [`command_for`] is the full map.
pub const KEYS: [(&str, &str); 7] = [
    ("F2", "open"),
    ("F3", "close"),
    ("F4", "read"),
    ("F5", "write"),
    ("F6", "clear"),
    ("F7", "auto-sync"),
    ("^Q", "quit"),
];

/// The command bound to `key`. F-keys are the commands; quit is also on
/// Ctrl-C, Esc and F10. (In raw mode the terminal passes Ctrl-Q and Ctrl-S
/// through instead of using them for flow control.)
pub fn command_for(key: &KeyEvent) -> Option<Command> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    Some(match key.code {
        KeyCode::F(2) => Command::Open,
        KeyCode::F(3) => Command::Close,
        KeyCode::F(4) => Command::Read,
        KeyCode::F(5) => Command::Write,
        KeyCode::F(6) => Command::Clear,
        KeyCode::F(7) => Command::ToggleAutoSync,
        KeyCode::F(10) | KeyCode::Esc => Command::Quit,
        KeyCode::Char('q' | 'c') if ctrl => Command::Quit,
        _ => return None,
    })
}
