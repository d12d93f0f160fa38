//! Output helpers shared by the verbs: terminal-safe text and a region's
//! info as JSON.

/// Text safe to print on a terminal: invalid UTF-8 becomes U+FFFD, and
/// control characters (other than those in `keep`) become escapes, so
/// content from another process can never drive the terminal.
pub fn escape(bytes: &[u8], keep: &[char]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if keep.contains(&c) || !unsafe_on_terminal(c) {
            out.push(c);
        } else {
            out.extend(c.escape_default());
        }
    }
    out
}

/// Whether `c` must not reach a terminal as it is: a control character
/// (C0, DEL, C1: a UTF-8 U+009B is a CSI to terminals that decode C1), or
/// a bidirectional formatting character, which reorders what follows it on
/// terminals that apply bidi, so a name or text could show as another.
fn unsafe_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
        )
}

/// `value` as one line of JSON that is safe on a terminal: serde_json
/// escapes only C0 controls, so DEL, C1 controls and bidi formatting
/// characters are written as `\uXXXX` escapes too (the same JSON value).
pub fn json(value: &serde_json::Value) -> String {
    let text = value.to_string();
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if unsafe_on_terminal(c) {
            // Every such char is in the BMP: one \uXXXX escape. (Raw C0
            // never occurs: serde_json escaped it, and outside strings
            // there is only ASCII punctuation and digits.)
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// JSON for a region's info (shared by `info` and `ls`).
pub fn info_json(info: &filemap::RegionInfo) -> serde_json::Value {
    serde_json::json!({
        "name": info.name,
        "path": info.path,
        "capacity": info.capacity,
        "max_capacity": info.max_capacity,
        "len": info.len,
        "generation": info.generation,
        "last_writer_pid": info.last_writer.pid,
        "persistent": info.persistent,
        "attached": info.attached,
        "stale": info.stale,
    })
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn escape_neutralises_terminal_control_sequences() {
        assert_eq!(escape(b"a\x1b[2Jb", &[]), "a\\u{1b}[2Jb");
        assert_eq!(escape(b"l1\nl2\t", &['\n', '\t']), "l1\nl2\t");
        assert_eq!(escape(b"l1\nl2", &[]), "l1\\nl2");
        assert_eq!(escape(b"\xff ok \xe2\x9c\x93", &[]), "\u{fffd} ok \u{2713}");
        assert_eq!(escape("\u{9b}".as_bytes(), &[]), "\\u{9b}", "8-bit CSI too");
        assert_eq!(
            escape("a\u{202e}b\u{2066}".as_bytes(), &[]),
            "a\\u{202e}b\\u{2066}",
            "bidi formatting too"
        );
    }

    #[test]
    fn json_escapes_what_serde_json_leaves_raw() {
        let value = serde_json::json!({ "c": "a\u{7f}\u{9b}2J\u{202e}\u{1b}é" });
        let line = super::json(&value);
        assert_eq!(line, r#"{"c":"a\u007f\u009b2J\u202e\u001bé"}"#);
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&line).unwrap(),
            value
        );
    }
}
