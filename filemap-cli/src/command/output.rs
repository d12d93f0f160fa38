//! Output helpers shared by the verbs: terminal-safe text and a region's
//! info as JSON.

/// Text safe to print on a terminal: invalid UTF-8 becomes U+FFFD, and
/// control characters (other than those in `keep`) become escapes, so
/// content from another process can never drive the terminal.
pub fn escape(bytes: &[u8], keep: &[char]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if keep.contains(&c) || !c.is_control() {
            out.push(c);
        } else {
            out.extend(c.escape_default());
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
    }
}
