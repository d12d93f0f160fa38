//! Drawing the memo: the text in a frame, a status line with the three
//! indicators and the region's figures, a message line and a help line.
//!
//! This module owns layout and colours only. It reads the [`App`] and
//! changes nothing in it but the editor's viewport, which follows the
//! cursor once the text area's size is known.

use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph};
use ratatui::Frame;

use super::app::{App, Level, KEYS};
use super::editor::visible;

/// Draw the whole screen.
pub fn draw(frame: &mut Frame, app: &mut App) {
    let [body, status, message, help] = Layout::vertical([
        Constraint::Min(1),
        Constraint::Length(1),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(frame.area());

    let colour = if !app.is_open() {
        Color::DarkGray
    } else if app.auto_sync() {
        Color::Cyan
    } else {
        Color::Yellow
    };
    let (row, col) = app.editor().cursor();
    let mut block = Block::bordered()
        .border_style(Style::new().fg(colour))
        .title(format!(" filemap memo · {} ", app.name()))
        .title_bottom(Line::from(format!(" Ln {}, Col {} ", row + 1, col + 1)).right_aligned());
    if app.has_unpublished() {
        block = block.title_bottom(Line::from(" ● unpublished edits ".yellow()).left_aligned());
    }
    let inner = block.inner(body);
    frame.render_widget(block, body);
    draw_text(frame, inner, app);

    frame.render_widget(Paragraph::new(status_line(app)), status);
    frame.render_widget(Paragraph::new(message_line(app)), message);
    frame.render_widget(Paragraph::new(help_line()), help);
}

fn draw_text(frame: &mut Frame, area: Rect, app: &mut App) {
    if area.is_empty() {
        return;
    }
    let editor = app.editor_mut();
    editor.scroll_into_view(area.height.into(), area.width.into());
    let (top, left) = editor.viewport();
    let buf = frame.buffer_mut();
    let (row, _) = editor.cursor();
    let rows = editor
        .lines()
        .iter()
        .enumerate()
        .skip(top)
        .take(area.height.into());
    for (y, (index, line)) in (area.y..).zip(rows) {
        // Only the cursor's line scrolls sideways.
        let from = if index == row { left } else { 0 };
        for (x, shown, cells) in visible(line, from, area.width.into()) {
            buf.set_stringn(area.x + x as u16, y, shown, cells, Style::new());
        }
    }
    let x = editor.cursor_x() - left;
    frame.set_cursor_position((area.x + x as u16, area.y + (row - top) as u16));
}

fn indicator(on: bool, label: &str) -> Span<'static> {
    let (mark, style) = if on {
        (
            "x",
            Style::new().fg(Color::Green).add_modifier(Modifier::BOLD),
        )
    } else {
        (" ", Style::new().fg(Color::DarkGray))
    };
    Span::styled(format!("[{mark}] {label}"), style)
}

fn status_line(app: &App) -> Line<'static> {
    let sep = || Span::raw(" │ ").dark_gray();
    let mut spans = vec![
        Span::raw(" "),
        indicator(app.existed_already(), "exists already"),
        Span::raw(" "),
        indicator(app.is_open(), "open"),
        Span::raw(" "),
        indicator(app.auto_sync(), "auto-sync"),
        sep(),
    ];
    match app.info() {
        Some(info) => {
            let attached = info.attached.len();
            spans.push(Span::raw(format!("{}/{} B", info.len, info.max_capacity)));
            spans.push(sep());
            spans.push(Span::raw(format!("gen {}", info.generation)));
            spans.push(sep());
            spans.push(Span::raw(format!("{attached} attached")));
        }
        None => spans.push(Span::raw("closed: editing is local").yellow()),
    }
    Line::from(spans)
}

fn message_line(app: &App) -> Line<'static> {
    let (style, text) = if let (true, Some(m)) = (app.is_quitting(), app.message()) {
        (Style::new().fg(Color::Yellow).bold(), m.text.clone())
    } else if let Some((len, capacity)) = app.too_large() {
        (
            Style::new().fg(Color::Red).bold(),
            format!(
                "Too large: {len} B > capacity {capacity} B. Your text is kept here, \
                 the shared text is unchanged; delete some to publish."
            ),
        )
    } else if let Some(p) = app.pending() {
        (
            Style::new().fg(Color::Yellow).bold(),
            format!(
                "changed by pid {} — press F4 read to take it, F5 write to overwrite it",
                p.writer.pid
            ),
        )
    } else if let Some(m) = app.message() {
        let style = match m.level {
            Level::Info => Style::new(),
            Level::Warn => Style::new().fg(Color::Yellow).bold(),
            Level::Error => Style::new().fg(Color::Red).bold(),
        };
        (style, m.text.clone())
    } else {
        (
            Style::new().dark_gray(),
            "Type to edit; every memo with this name shows it.".to_owned(),
        )
    };
    Line::from(vec![Span::raw(" "), Span::styled(text, style)])
}

fn help_line() -> Line<'static> {
    let mut spans = vec![Span::raw(" ")];
    for (key, what) in KEYS {
        spans.push(Span::raw(key).reversed());
        spans.push(Span::raw(format!(" {what}  ")));
    }
    Line::from(spans)
}

#[cfg(test)]
mod tests {
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::command::memo::app::Options;

    fn screen(app: &mut App, width: u16, height: u16) -> (Vec<String>, (u16, u16)) {
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal.draw(|f| draw(f, app)).unwrap();
        let buf = terminal.backend().buffer().clone();
        let rows = (0..height)
            .map(|y| (0..width).map(|x| buf[(x, y)].symbol()).collect::<String>())
            .collect();
        let cursor = terminal.get_cursor_position().unwrap();
        (rows, (cursor.x, cursor.y))
    }

    #[test]
    fn draws_text_indicators_help_and_cursor() {
        let name = format!("memo-ui-{}", std::process::id());
        let mut app = App::new(Options {
            name: name.clone(),
            capacity: 4096,
            capacity_given: false,
            init: Some("hello 世界\nsecond".into()),
        })
        .unwrap();
        app.editor_mut().move_to(0, 8);
        let (rows, cursor) = screen(&mut app, 100, 8);
        assert!(rows[0].contains(&name), "{rows:#?}");
        // A wide char takes two cells; the buffer reads the second as a blank.
        assert!(rows[1].starts_with("│hello 世 界 "), "{rows:#?}");
        assert!(rows[2].starts_with("│second"), "{rows:#?}");
        assert!(rows[4].contains("Ln 1, Col 9"), "{rows:#?}");
        assert!(
            rows[5].starts_with(
                " [ ] exists already [x] open [x] auto-sync │ 19/16777216 B │ gen 1 │ 1 attached"
            ),
            "{rows:#?}"
        );
        assert!(rows[7]
            .contains("F2 open  F3 close  F4 read  F5 write  F6 clear  F7 auto-sync  ^Q quit"));
        assert_eq!(cursor, (1 + 10, 1), "after 世界: 6 + 2 + 2 cells");
    }

    #[test]
    fn only_the_cursor_line_scrolls_sideways() {
        let name = format!("memo-ui-wide-{}", std::process::id());
        let long = format!("{}END", "長".repeat(30));
        let mut app = App::new(Options {
            name,
            capacity: 4096,
            capacity_given: false,
            init: Some(format!("short line\n{long}")),
        })
        .unwrap();
        app.editor_mut().move_to(1, 33);
        let (rows, cursor) = screen(&mut app, 22, 8);
        assert!(rows[1].starts_with("│short line"), "{rows:#?}");
        assert!(
            rows[2].ends_with("│長 長 長 長 長 長 長 長 END │"),
            "{rows:#?}"
        );
        assert_eq!(cursor, (1 + 19, 2), "cursor after END, in the last column");
        app.editor_mut().move_to(0, 3);
        let (rows, _) = screen(&mut app, 22, 8);
        assert!(
            rows[2].starts_with("│長 長 "),
            "back at the start: {rows:#?}"
        );
    }

    #[test]
    fn a_tiny_terminal_does_not_panic() {
        let name = format!("memo-ui-tiny-{}", std::process::id());
        let mut app = App::new(Options {
            name,
            capacity: 4096,
            capacity_given: false,
            init: Some("x".repeat(500)),
        })
        .unwrap();
        for (w, h) in [(1, 1), (2, 3), (3, 5), (10, 6)] {
            screen(&mut app, w, h);
        }
    }
}
