//! The memo's text buffer: lines, a cursor, a viewport, and the edits that
//! keys make.
//!
//! This module owns editing and cell geometry. It knows nothing of regions
//! or terminals, so every rule here is unit-tested on plain values. It must
//! keep the cursor on a grapheme boundary inside the text, whatever the text
//! is replaced with, and agree with the renderer on how wide each grapheme is
//! (the one definition is [`cells`]).
//!
//! Why not `tui-textarea`: its horizontal scrolling counts chars, not cells,
//! so the cursor leaves the screen on long CJK lines; its viewport can be
//! neither read nor set, so a remote change (a new widget) would reset the
//! scroll; and its cursor jumps take `u16` rows.

use std::borrow::Cow;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

/// Spaces a Tab key inserts up to (the next multiple of this many cells).
const TAB_STOP: usize = 4;

/// What a key did to the editor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not an editing key.
    Ignored,
    /// The cursor moved; the text is unchanged.
    Moved,
    /// The text changed.
    Edited,
}

/// Lines of text with a cursor and a viewport.
#[derive(Debug, Clone)]
pub struct Editor {
    /// Never empty: empty text is one empty line.
    lines: Vec<String>,
    row: usize,
    /// Chars before the cursor on its line; always a grapheme boundary.
    col: usize,
    /// Cell column that vertical moves aim for.
    want_x: Option<usize>,
    /// First line shown.
    top: usize,
    /// First cell column shown of the cursor's line (other lines show
    /// from their start, as in nano, so they stay readable).
    left: usize,
    /// Height of the viewport at the last layout, for page moves.
    page: usize,
}

impl Default for Editor {
    fn default() -> Self {
        Editor::new(&[])
    }
}

impl Editor {
    /// An editor showing `lines` (as a region's text splits: empty text is
    /// no lines), cursor at the start.
    pub fn new(lines: &[String]) -> Editor {
        let mut lines = lines.to_vec();
        if lines.is_empty() {
            lines.push(String::new());
        }
        Editor {
            lines,
            row: 0,
            col: 0,
            want_x: None,
            top: 0,
            left: 0,
            page: 20,
        }
    }

    /// An editor showing `text`, split at `'\n'`.
    pub fn from_text(text: &str) -> Editor {
        Editor::new(&split_lines(text))
    }

    /// The lines shown (at least one).
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The lines as a region's text splits: no lines for empty text.
    pub fn shared_lines(&self) -> Vec<String> {
        if self.is_empty() {
            Vec::new()
        } else {
            self.lines.clone()
        }
    }

    /// Whether the text is empty.
    pub fn is_empty(&self) -> bool {
        self.lines.len() == 1 && self.lines[0].is_empty()
    }

    /// Length in bytes of the text, lines joined by `'\n'`.
    pub fn text_len(&self) -> usize {
        self.lines.iter().map(String::len).sum::<usize>() + self.lines.len() - 1
    }

    /// Cursor as (line, char column), both from 0.
    pub fn cursor(&self) -> (usize, usize) {
        (self.row, self.col)
    }

    /// Cells before the cursor on its line.
    pub fn cursor_x(&self) -> usize {
        let line = &self.lines[self.row];
        width(&line[..byte_of(line, self.col)])
    }

    /// Viewport as (first line, first cell column of the cursor's line).
    pub fn viewport(&self) -> (usize, usize) {
        (self.top, self.left)
    }

    /// Replace the text, keeping the cursor on the same line and column
    /// where they still exist (clamped to the new text otherwise) and the
    /// viewport where it was; [`Editor::scroll_into_view`] then moves it
    /// only as far as the cursor needs.
    pub fn replace(&mut self, lines: &[String]) {
        let (row, col) = (self.row, self.col);
        self.lines = Editor::new(lines).lines;
        self.want_x = None;
        self.move_to(row, col);
        self.top = self.top.min(self.lines.len() - 1);
    }

    /// Put the cursor at (`row`, `col`), clamped to the text and snapped
    /// back to the start of the grapheme it falls in.
    pub fn move_to(&mut self, row: usize, col: usize) {
        self.row = row.min(self.lines.len() - 1);
        let line = &self.lines[self.row];
        let byte = grapheme_start(line, byte_of(line, col));
        self.col = line[..byte].chars().count();
    }

    /// Remove all text.
    pub fn clear(&mut self) {
        *self = Editor {
            page: self.page,
            ..Editor::default()
        };
    }

    /// Insert `text` at the cursor (`"\r\n"` and `'\r'` count as line breaks,
    /// as pasted text carries them).
    pub fn insert_str(&mut self, text: &str) {
        let text = text.replace("\r\n", "\n").replace('\r', "\n");
        let mut parts = text.split('\n');
        if let Some(first) = parts.next() {
            self.insert_in_line(first);
        }
        for part in parts {
            self.newline();
            self.insert_in_line(part);
        }
        self.want_x = None;
    }

    /// Apply an editing or moving key.
    pub fn handle_key(&mut self, key: &KeyEvent) -> Outcome {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        let alt = key.modifiers.contains(KeyModifiers::ALT);
        // AltGr arrives as Ctrl+Alt on some terminals: still a character.
        let plain = !(ctrl ^ alt);
        let outcome = match key.code {
            KeyCode::Char(c) if plain => {
                self.insert_in_line(c.encode_utf8(&mut [0; 4]));
                Outcome::Edited
            }
            KeyCode::Char('k') if ctrl => self.delete_to_line_end(),
            KeyCode::Char('u') if ctrl => self.delete_to_line_start(),
            KeyCode::Char('w') if ctrl => self.delete_word_back(),
            KeyCode::Char('a') if ctrl => self.moved(|e| e.col = 0),
            KeyCode::Char('e') if ctrl => self.moved(Editor::line_end),
            KeyCode::Enter => {
                self.newline();
                Outcome::Edited
            }
            KeyCode::Tab => {
                let x = self.cursor_x();
                self.insert_in_line(&" ".repeat(TAB_STOP - x % TAB_STOP));
                Outcome::Edited
            }
            KeyCode::Backspace if ctrl || alt => self.delete_word_back(),
            KeyCode::Backspace => self.backspace(),
            KeyCode::Delete => self.delete(),
            KeyCode::Left if ctrl || alt => self.moved(Editor::word_left),
            KeyCode::Right if ctrl || alt => self.moved(Editor::word_right),
            KeyCode::Left => self.moved(Editor::left),
            KeyCode::Right => self.moved(Editor::right),
            KeyCode::Up => return self.vertical(-1),
            KeyCode::Down => return self.vertical(1),
            KeyCode::PageUp => {
                return self.vertical(-(self.page.saturating_sub(1).max(1) as isize))
            }
            KeyCode::PageDown => return self.vertical(self.page.saturating_sub(1).max(1) as isize),
            KeyCode::Home if ctrl => self.moved(|e| e.move_to(0, 0)),
            KeyCode::End if ctrl => self.moved(|e| {
                e.row = e.lines.len() - 1;
                e.line_end();
            }),
            KeyCode::Home => self.moved(|e| e.col = 0),
            KeyCode::End => self.moved(Editor::line_end),
            _ => return Outcome::Ignored,
        };
        self.want_x = None;
        outcome
    }

    /// Move the viewport the least that shows the cursor in a
    /// `height` x `width` area, and fill the area when the text got shorter.
    pub fn scroll_into_view(&mut self, height: usize, width: usize) {
        let (height, width) = (height.max(1), width.max(1));
        self.page = height;
        self.top = self.top.min(self.lines.len().saturating_sub(height));
        if self.row < self.top {
            self.top = self.row;
        } else if self.row >= self.top + height {
            self.top = self.row + 1 - height;
        }
        let x = self.cursor_x();
        let line = &self.lines[self.row];
        let under = line[byte_of(line, self.col)..]
            .graphemes(true)
            .next()
            .map_or(1, cells);
        if x + under <= width {
            self.left = 0;
        } else if x < self.left {
            self.left = x;
        } else if x + under > self.left + width {
            self.left = x + under - width;
        }
    }

    fn moved(&mut self, f: impl FnOnce(&mut Editor)) -> Outcome {
        f(self);
        Outcome::Moved
    }

    fn line_end(&mut self) {
        self.col = self.lines[self.row].chars().count();
    }

    fn byte(&self) -> usize {
        byte_of(&self.lines[self.row], self.col)
    }

    fn insert_in_line(&mut self, s: &str) {
        let byte = self.byte();
        self.lines[self.row].insert_str(byte, s);
        // Re-snap: the insert may have joined a grapheme before the cursor
        // (a combining mark), so count from the new end of the insert.
        let line = &self.lines[self.row];
        let end = grapheme_start_or_end(line, byte + s.len());
        self.col = line[..end].chars().count();
    }

    fn newline(&mut self) {
        let byte = self.byte();
        let rest = self.lines[self.row].split_off(byte);
        self.lines.insert(self.row + 1, rest);
        self.row += 1;
        self.col = 0;
    }

    fn backspace(&mut self) -> Outcome {
        if self.col == 0 {
            if self.row == 0 {
                return Outcome::Moved;
            }
            let line = self.lines.remove(self.row);
            self.row -= 1;
            self.line_end();
            self.lines[self.row].push_str(&line);
            return Outcome::Edited;
        }
        let byte = self.byte();
        let line = &mut self.lines[self.row];
        let start = prev_boundary(line, byte);
        line.replace_range(start..byte, "");
        self.col = line[..start].chars().count();
        Outcome::Edited
    }

    fn delete(&mut self) -> Outcome {
        let byte = self.byte();
        let line = &self.lines[self.row];
        if byte == line.len() {
            if self.row + 1 == self.lines.len() {
                return Outcome::Moved;
            }
            let next = self.lines.remove(self.row + 1);
            self.lines[self.row].push_str(&next);
            return Outcome::Edited;
        }
        let end = next_boundary(line, byte);
        self.lines[self.row].replace_range(byte..end, "");
        Outcome::Edited
    }

    fn delete_to_line_end(&mut self) -> Outcome {
        let byte = self.byte();
        if byte == self.lines[self.row].len() {
            return self.delete();
        }
        self.lines[self.row].truncate(byte);
        Outcome::Edited
    }

    fn delete_to_line_start(&mut self) -> Outcome {
        if self.col == 0 {
            return Outcome::Moved;
        }
        let byte = self.byte();
        self.lines[self.row].replace_range(..byte, "");
        self.col = 0;
        Outcome::Edited
    }

    fn delete_word_back(&mut self) -> Outcome {
        if self.col == 0 {
            return self.backspace();
        }
        let end = self.byte();
        let (row, col) = (self.row, self.col);
        self.word_left();
        debug_assert_eq!(self.row, row);
        let start = self.byte();
        if start == end {
            self.col = col;
            return Outcome::Moved;
        }
        self.lines[self.row].replace_range(start..end, "");
        Outcome::Edited
    }

    fn left(&mut self) {
        if self.col > 0 {
            let line = &self.lines[self.row];
            let start = prev_boundary(line, byte_of(line, self.col));
            self.col = line[..start].chars().count();
        } else if self.row > 0 {
            self.row -= 1;
            self.line_end();
        }
    }

    fn right(&mut self) {
        let line = &self.lines[self.row];
        let byte = byte_of(line, self.col);
        if byte < line.len() {
            self.col = line[..next_boundary(line, byte)].chars().count();
        } else if self.row + 1 < self.lines.len() {
            self.row += 1;
            self.col = 0;
        }
    }

    /// Start of the word before the cursor (or of the line).
    fn word_left(&mut self) {
        if self.col == 0 {
            return self.left();
        }
        let chars: Vec<char> = self.lines[self.row].chars().take(self.col).collect();
        let mut i = chars.len();
        while i > 0 && chars[i - 1].is_whitespace() {
            i -= 1;
        }
        while i > 0 && !chars[i - 1].is_whitespace() {
            i -= 1;
        }
        self.move_to(self.row, i);
    }

    /// End of the word after the cursor (or of the line).
    fn word_right(&mut self) {
        let line = &self.lines[self.row];
        let mut rest = line.chars().skip(self.col).peekable();
        if rest.peek().is_none() {
            return self.right();
        }
        let mut i = self.col;
        while rest.next_if(|c| c.is_whitespace()).is_some() {
            i += 1;
        }
        while rest.next_if(|c| !c.is_whitespace()).is_some() {
            i += 1;
        }
        let end = grapheme_start_or_end(line, byte_of(line, i));
        self.col = line[..end].chars().count();
    }

    /// Move `rows` lines down (up when negative), aiming for the same cell
    /// column. Past the first line goes to its start, past the last to its
    /// end.
    fn vertical(&mut self, rows: isize) -> Outcome {
        let want = *self.want_x.get_or_insert_with(|| {
            let line = &self.lines[self.row];
            width(&line[..byte_of(line, self.col)])
        });
        let last = self.lines.len() - 1;
        let target = self.row as isize + rows;
        if target < 0 {
            self.row = 0;
            self.col = 0;
        } else if target as usize > last {
            self.row = last;
            self.line_end();
        } else {
            self.row = target as usize;
            self.col = col_at_x(&self.lines[self.row], want);
        }
        if rows.unsigned_abs() > 1 {
            // A page move takes the view along.
            self.top = (self.top as isize + rows).max(0) as usize;
        }
        self.want_x = Some(want);
        Outcome::Moved
    }
}

/// Split text at `'\n'`; empty text is no lines (as the region's text view
/// splits it).
pub fn split_lines(text: &str) -> Vec<String> {
    if text.is_empty() {
        Vec::new()
    } else {
        text.split('\n').map(str::to_owned).collect()
    }
}

/// Cells a grapheme takes on screen, as drawn by [`shown`]: its Unicode
/// width, and one cell for what would take none (controls, lone combining
/// marks, zero-width spaces), which are drawn as a visible stand-in.
pub fn cells(grapheme: &str) -> usize {
    if grapheme.chars().any(char::is_control) {
        1
    } else {
        grapheme.width().max(1)
    }
}

/// What to draw for a grapheme: itself, or a one-cell stand-in for a tab
/// (`→`) or anything that would be invisible (`�`).
pub fn shown(grapheme: &str) -> Cow<'_, str> {
    if grapheme == "\t" {
        Cow::Borrowed("→")
    } else if grapheme.chars().any(char::is_control) || grapheme.width() == 0 {
        Cow::Borrowed("\u{FFFD}")
    } else {
        Cow::Borrowed(grapheme)
    }
}

/// Cells taken by `text` (sum of [`cells`] of its graphemes).
pub fn width(text: &str) -> usize {
    text.graphemes(true).map(cells).sum()
}

/// The part of `line` that shows in cell columns `left..left + width`:
/// (cell offset from `left`, what to draw, cells). A wide grapheme cut by
/// either edge shows as blanks.
pub fn visible(line: &str, left: usize, width: usize) -> Vec<(usize, Cow<'_, str>, usize)> {
    let right = left + width;
    let mut out = Vec::new();
    let mut x = 0;
    for g in line.graphemes(true) {
        if x >= right {
            break;
        }
        let w = cells(g);
        let end = x + w;
        if end > left {
            if x >= left && end <= right {
                out.push((x - left, shown(g), w));
            } else {
                for cell in x.max(left)..end.min(right) {
                    out.push((cell - left, Cow::Borrowed(" "), 1));
                }
            }
        }
        x = end;
    }
    out
}

/// Byte offset of char `col` in `line` (its length past the end).
fn byte_of(line: &str, col: usize) -> usize {
    line.char_indices().nth(col).map_or(line.len(), |(b, _)| b)
}

/// Start of the grapheme that holds byte `byte` (`line.len()` stays).
fn grapheme_start(line: &str, byte: usize) -> usize {
    let mut start = 0;
    for (b, _) in line.grapheme_indices(true) {
        if b > byte {
            break;
        }
        start = b;
    }
    if byte >= line.len() {
        line.len()
    } else {
        start
    }
}

/// `byte` if it is a grapheme boundary, else the end of its grapheme.
fn grapheme_start_or_end(line: &str, byte: usize) -> usize {
    let start = grapheme_start(line, byte);
    if start == byte {
        byte
    } else {
        next_boundary(line, start)
    }
}

fn prev_boundary(line: &str, byte: usize) -> usize {
    line[..byte]
        .grapheme_indices(true)
        .next_back()
        .map_or(0, |(b, _)| b)
}

fn next_boundary(line: &str, byte: usize) -> usize {
    line[byte..]
        .graphemes(true)
        .next()
        .map_or(line.len(), |g| byte + g.len())
}

/// Char column of the grapheme boundary at or left of cell column `x`.
fn col_at_x(line: &str, x: usize) -> usize {
    let mut at = 0;
    let mut col = 0;
    for g in line.graphemes(true) {
        at += cells(g);
        if at > x {
            break;
        }
        col += g.chars().count();
    }
    col
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    fn typed(e: &mut Editor, text: &str) {
        for c in text.chars() {
            let code = if c == '\n' {
                KeyCode::Enter
            } else {
                KeyCode::Char(c)
            };
            assert_eq!(e.handle_key(&key(code)), Outcome::Edited);
        }
    }

    fn lines(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn typing_builds_lines_and_empty_text_is_no_lines() {
        let mut e = Editor::default();
        assert!(e.is_empty());
        assert_eq!(e.shared_lines(), Vec::<String>::new());
        typed(&mut e, "ab\ncd");
        assert_eq!(e.lines(), ["ab", "cd"]);
        assert_eq!(e.cursor(), (1, 2));
        assert_eq!(e.text_len(), 5);
        e.clear();
        assert!(e.is_empty());
        assert_eq!(e.cursor(), (0, 0));
    }

    #[test]
    fn backspace_and_delete_join_lines() {
        let mut e = Editor::from_text("ab\ncd");
        e.move_to(1, 0);
        assert_eq!(e.handle_key(&key(KeyCode::Backspace)), Outcome::Edited);
        assert_eq!(e.lines(), ["abcd"]);
        assert_eq!(e.cursor(), (0, 2));
        e.handle_key(&key(KeyCode::Enter));
        e.move_to(0, 2);
        assert_eq!(e.handle_key(&key(KeyCode::Delete)), Outcome::Edited);
        assert_eq!(e.lines(), ["abcd"]);
        e.move_to(0, 0);
        assert_eq!(e.handle_key(&key(KeyCode::Backspace)), Outcome::Moved);
        e.move_to(0, 4);
        assert_eq!(e.handle_key(&key(KeyCode::Delete)), Outcome::Moved);
    }

    #[test]
    fn graphemes_move_and_delete_as_one() {
        // Family emoji (ZWJ sequence), e + combining acute, CJK.
        let family = "👨\u{200d}👩\u{200d}👧";
        let mut e = Editor::from_text(&format!("a{family}e\u{301}世"));
        e.handle_key(&key(KeyCode::End));
        assert_eq!(e.cursor_x(), 1 + 2 + 1 + 2);
        e.handle_key(&key(KeyCode::Left));
        assert_eq!(e.cursor_x(), 4);
        e.handle_key(&key(KeyCode::Left));
        assert_eq!(e.cursor_x(), 3);
        assert_eq!(e.handle_key(&key(KeyCode::Backspace)), Outcome::Edited);
        assert_eq!(e.lines()[0], "ae\u{301}世");
        assert_eq!(e.cursor(), (0, 1));
        e.handle_key(&key(KeyCode::Right));
        assert_eq!(e.cursor(), (0, 3));
    }

    #[test]
    fn combining_mark_typed_after_a_letter_joins_it() {
        let mut e = Editor::default();
        typed(&mut e, "e\u{301}x");
        assert_eq!(e.lines()[0], "e\u{301}x");
        assert_eq!(e.cursor(), (0, 3));
    }

    #[test]
    fn up_and_down_keep_the_cell_column() {
        let mut e = Editor::from_text("世界世界\nabcdefgh\nxy");
        e.move_to(1, 5);
        e.handle_key(&key(KeyCode::Up));
        // Cell 5 is inside the second 世 (cells 4..6): snap to its start, char 2.
        assert_eq!(e.cursor(), (0, 2));
        e.handle_key(&key(KeyCode::Down));
        assert_eq!(
            e.cursor(),
            (1, 5),
            "the wanted column survives a short stop"
        );
        e.handle_key(&key(KeyCode::Down));
        assert_eq!(e.cursor(), (2, 2));
        e.handle_key(&key(KeyCode::Down));
        assert_eq!(e.cursor(), (2, 2), "past the last line: its end");
        e.handle_key(&key(KeyCode::Up));
        e.handle_key(&key(KeyCode::Up));
        e.handle_key(&key(KeyCode::Up));
        assert_eq!(e.cursor(), (0, 0));
    }

    #[test]
    fn word_moves_and_kills() {
        let mut e = Editor::from_text("one  two three");
        e.handle_key(&KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL));
        assert_eq!(e.cursor(), (0, 3));
        e.handle_key(&KeyEvent::new(KeyCode::Right, KeyModifiers::CONTROL));
        assert_eq!(e.cursor(), (0, 8));
        e.handle_key(&ctrl('w'));
        assert_eq!(e.lines()[0], "one   three");
        e.handle_key(&ctrl('k'));
        assert_eq!(e.lines()[0], "one  ");
        e.handle_key(&ctrl('u'));
        assert_eq!(e.lines()[0], "");
    }

    #[test]
    fn control_chords_do_not_insert_and_altgr_does() {
        let mut e = Editor::default();
        assert_eq!(e.handle_key(&ctrl('x')), Outcome::Ignored);
        let altgr = KeyEvent::new(
            KeyCode::Char('@'),
            KeyModifiers::CONTROL | KeyModifiers::ALT,
        );
        assert_eq!(e.handle_key(&altgr), Outcome::Edited);
        assert_eq!(
            e.handle_key(&KeyEvent::new(KeyCode::Char('Z'), KeyModifiers::SHIFT)),
            Outcome::Edited
        );
        assert_eq!(e.lines()[0], "@Z");
    }

    #[test]
    fn tab_inserts_spaces_to_the_next_stop() {
        let mut e = Editor::from_text("ab");
        e.handle_key(&key(KeyCode::End));
        e.handle_key(&key(KeyCode::Tab));
        assert_eq!(e.lines()[0], "ab  ");
    }

    #[test]
    fn paste_normalises_line_breaks() {
        let mut e = Editor::from_text("[]");
        e.move_to(0, 1);
        e.insert_str("a\r\nb\rc\nd");
        assert_eq!(e.lines(), ["[a", "b", "c", "d]"]);
        assert_eq!(e.cursor(), (3, 1));
    }

    #[test]
    fn replace_keeps_the_cursor_where_it_still_exists() {
        let mut e = Editor::from_text("hello\nworld\nagain");
        e.move_to(1, 3);
        e.replace(&lines(&["HELLO", "WORLD!", "again"]));
        assert_eq!(e.cursor(), (1, 3));
        e.replace(&lines(&["hi", "w"]));
        assert_eq!(e.cursor(), (1, 1), "column clamped");
        e.move_to(1, 1);
        e.replace(&lines(&["only"]));
        assert_eq!(e.cursor(), (0, 1), "line clamped, column kept");
        e.replace(&[]);
        assert_eq!(e.cursor(), (0, 0));
        assert!(e.is_empty());
    }

    #[test]
    fn replace_snaps_into_a_grapheme_to_its_start() {
        let mut e = Editor::from_text("abcdef");
        e.move_to(0, 2);
        e.replace(&lines(&["ae\u{301}z"]));
        assert_eq!(e.cursor(), (0, 1));
    }

    #[test]
    fn replace_keeps_the_viewport() {
        let text: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let mut e = Editor::new(&text);
        e.move_to(50, 0);
        e.scroll_into_view(10, 20);
        assert_eq!(e.viewport(), (41, 0));
        e.move_to(45, 0);
        e.scroll_into_view(10, 20);
        assert_eq!(e.viewport(), (41, 0));
        let mut changed = text.clone();
        changed[3] = "remote edit".into();
        e.replace(&changed);
        e.scroll_into_view(10, 20);
        assert_eq!(e.viewport(), (41, 0));
        assert_eq!(e.cursor(), (45, 0));
        // The text shrinks under the view: the view fills with what is left.
        e.replace(&text[..20]);
        e.scroll_into_view(10, 20);
        assert_eq!(e.cursor(), (19, 0));
        assert_eq!(e.viewport(), (10, 0));
    }

    #[test]
    fn long_wide_lines_scroll_by_cells() {
        let line = "世".repeat(100);
        let mut e = Editor::from_text(&line);
        e.handle_key(&key(KeyCode::End));
        e.scroll_into_view(5, 10);
        assert_eq!(e.cursor_x(), 200);
        let (_, left) = e.viewport();
        assert!(
            left <= 200 && 200 < left + 10,
            "cursor visible: left {left}"
        );
        e.move_to(0, 50);
        e.scroll_into_view(5, 10);
        let (_, left) = e.viewport();
        assert!(
            left <= 100 && 100 + 2 <= left + 10,
            "wide char under the cursor fits: left {left}"
        );
        e.handle_key(&key(KeyCode::Home));
        e.scroll_into_view(5, 10);
        assert_eq!(e.viewport(), (0, 0));
    }

    #[test]
    fn page_moves_take_the_view_along() {
        let text: Vec<String> = (0..100).map(|i| i.to_string()).collect();
        let mut e = Editor::new(&text);
        e.scroll_into_view(10, 20);
        e.handle_key(&key(KeyCode::PageDown));
        e.scroll_into_view(10, 20);
        assert_eq!(e.cursor().0, 9);
        assert_eq!(e.viewport().0, 9);
        e.handle_key(&key(KeyCode::PageUp));
        e.scroll_into_view(10, 20);
        assert_eq!(e.cursor().0, 0);
        assert_eq!(e.viewport().0, 0);
        e.handle_key(&KeyEvent::new(KeyCode::End, KeyModifiers::CONTROL));
        assert_eq!(e.cursor(), (99, 2));
    }

    #[test]
    fn visible_cuts_wide_graphemes_at_both_edges() {
        let v = visible("a世b", 2, 2);
        let v: Vec<_> = v.iter().map(|(x, s, w)| (*x, s.as_ref(), *w)).collect();
        assert_eq!(v, [(0, " ", 1), (1, "b", 1)]);
        let v = visible("a世b", 0, 2);
        let v: Vec<_> = v.iter().map(|(x, s, w)| (*x, s.as_ref(), *w)).collect();
        assert_eq!(v, [(0, "a", 1), (1, " ", 1)]);
        let v = visible("a\tb\u{200b}", 0, 10);
        let v: Vec<_> = v.iter().map(|(x, s, w)| (*x, s.as_ref(), *w)).collect();
        assert_eq!(
            v,
            [(0, "a", 1), (1, "→", 1), (2, "b", 1), (3, "\u{FFFD}", 1)]
        );
        assert_eq!(width("a\tb\u{200b}"), 4);
    }
}
