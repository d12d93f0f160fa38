//! A gateway between one filemap region and one map of the legacy
//! `TFileMap` Delphi component, so that programs built with that component
//! and filemap programs (Rust, C, Python, Pascal, the CLI, the memo) share
//! one text while they move over one at a time. Windows only: elsewhere
//! [`Gateway::start`] returns [`Error::WindowsOnly`].
//!
//! The legacy side, as the component does it:
//! - a named, pagefile-backed file mapping `<MapName>` holding the text
//!   (`TStringList.Text`: every line followed by CR LF) as a NUL-terminated
//!   string at offset 0, ANSI in a code page or UTF-16LE;
//! - a named mutex `<MapName>.Mtx`, taken by writers only;
//! - after each write, the registered window message `<MapName>Synch-Now`
//!   broadcast to every top-level window with the writer's window as
//!   `wParam`.
//!
//! The gateway owns a hidden top-level window (message-only windows get no
//! broadcasts) and a thread pumping its messages. A broadcast from another
//! window makes it read the legacy text under the mutex, convert it and
//! publish it to the region; a change of the region by another handle
//! makes it write the converted text to the map under the mutex and
//! broadcast with its own window as `wParam`. It skips its own broadcasts
//! (by `wParam`) and its own publishes (by writer id), and it also skips a
//! text equal to what either side holds already, so nothing echoes.
//! Broadcasts are posted (`PostMessage`), so a hung legacy program can never
//! block the gateway; the mutex is waited for with a timeout and the work
//! retried later.
//!
//! Text is lines on both sides: the region holds them joined by `'\n'`
//! (as [`filemap::TextExt`] and the memo do), the map as `TStringList.Text`.
//! See `docs/legacy.md` for the encodings and the `auto` detection rule.

use std::fmt;

#[cfg(windows)]
mod windows;

/// The legacy map's default size (the component's `MaxSize`).
pub const LEGACY_DEFAULT_SIZE: usize = 4096;
/// The smallest legacy map the component allows.
pub const LEGACY_MIN_SIZE: usize = 32;
/// The broadcast message's default suffix: `RegisterWindowMessage(<MapName> + suffix)`.
pub const DEFAULT_SUFFIX: &str = "Synch-Now";

/// How the legacy map's text is encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    /// 8-bit text in a Windows code page (Delphi before 2009: `PChar` is
    /// `PAnsiChar`), one NUL byte at the end.
    Ansi,
    /// UTF-16LE (Delphi 2009 and later), two NUL bytes at the end.
    Utf16,
    /// Read whichever of the two the map holds ([`detect`]); write in the
    /// one last read, UTF-16LE until a text was read.
    Auto,
}

/// Which kernel-object namespace the legacy names live in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Namespace {
    /// The names as given, like the component: the session's own
    /// namespace for a desktop program.
    #[default]
    Plain,
    /// `Global\<name>`: shared by all sessions (creating it needs
    /// `SeCreateGlobalPrivilege`, which services and administrators have).
    Global,
    /// `Local\<name>`: this session's namespace, explicitly.
    Local,
}

impl Namespace {
    /// `name` in this namespace.
    pub fn apply(self, name: &str) -> String {
        match self {
            Namespace::Plain => name.to_owned(),
            Namespace::Global => format!("Global\\{name}"),
            Namespace::Local => format!("Local\\{name}"),
        }
    }
}

/// What a gateway is started with.
#[derive(Debug, Clone)]
pub struct Options {
    /// The filemap region's name.
    pub region: String,
    /// The legacy map's name (`TFileMap.MapName`); the mutex is
    /// `<map_name>.Mtx` and the message `<map_name><suffix>`.
    pub map_name: String,
    /// The legacy map's encoding.
    pub encoding: Encoding,
    /// The code page of [`Encoding::Ansi`] text (0: the system's ANSI code
    /// page, `CP_ACP`; 1252: Western European; 65001: UTF-8).
    pub codepage: u32,
    /// The broadcast message's suffix ([`DEFAULT_SUFFIX`], or `-Synch-Now`
    /// in some variants of the component).
    pub suffix: String,
    /// The legacy programs' `MaxSize`: the size of a map the gateway
    /// creates, and the most the gateway writes to a map it finds (which it
    /// never writes past either). `None`: [`LEGACY_DEFAULT_SIZE`] for a new
    /// map, the size found for an existing one.
    pub size: Option<usize>,
    /// The namespace of the map's and the mutex's names.
    pub namespace: Namespace,
}

impl Options {
    /// A gateway between region `region` and the legacy map of the same
    /// name, with the component's defaults (ANSI in the system code page).
    pub fn new(region: &str) -> Options {
        Options {
            region: region.to_owned(),
            map_name: region.to_owned(),
            encoding: Encoding::Ansi,
            codepage: 0,
            suffix: DEFAULT_SUFFIX.to_owned(),
            size: None,
            namespace: Namespace::Plain,
        }
    }

    fn check(&self) -> Result<(), Error> {
        if self.map_name.is_empty() {
            return Err(Error::InvalidOption("the legacy map name is empty".into()));
        }
        if self.map_name.contains('\\') {
            return Err(Error::InvalidOption(format!(
                "the legacy map name {:?} contains a backslash: give the namespace as an option",
                self.map_name
            )));
        }
        if let Some(size) = self.size {
            if size < LEGACY_MIN_SIZE {
                return Err(Error::InvalidOption(format!(
                    "legacy map size {size} is below the component's minimum of {LEGACY_MIN_SIZE} bytes"
                )));
            }
            if size > u32::MAX as usize {
                return Err(Error::InvalidOption(format!(
                    "legacy map size {size} is over 4 GiB"
                )));
            }
        }
        Ok(())
    }
}

/// Which side of the gateway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The legacy TFileMap map.
    Legacy,
    /// The filemap region.
    Region,
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Legacy => "legacy map",
            Side::Region => "region",
        })
    }
}

/// What the gateway reports as it runs (the CLI prints one line each).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Both sides are open and the window listens.
    Ready {
        /// The legacy map's full name.
        map: String,
        /// Whether the gateway created the legacy map.
        created_map: bool,
        /// How many bytes of the map the gateway uses.
        size: usize,
        /// The region's capacity.
        capacity: usize,
    },
    /// A text was copied to `to`, `bytes` long there.
    Copied {
        /// Where it was written.
        to: Side,
        /// Its length there, in bytes (terminator included on the legacy side).
        bytes: usize,
    },
    /// A text too large for `to` was refused; both sides keep their content.
    Refused {
        /// Where it did not fit.
        to: Side,
        /// The bytes it needed there.
        needed: usize,
        /// The bytes available there.
        available: usize,
    },
    /// The legacy mutex stayed held past the timeout: the copy to or from
    /// the map is retried shortly.
    MutexBusy {
        /// How long the gateway waited, in milliseconds.
        waited_ms: u32,
    },
    /// Characters not representable in the ANSI code page were written as
    /// its default character.
    Lossy {
        /// The code page.
        codepage: u32,
    },
    /// The region's content is not UTF-8 text; it was not copied.
    NotText {
        /// Its length in bytes.
        bytes: usize,
    },
    /// The region's text holds a NUL character, at which legacy programs
    /// would read it cut short; it was not copied.
    HasNul {
        /// The byte offset of the first NUL in the region's text.
        at: usize,
    },
    /// An operation failed; the gateway goes on.
    Failed(String),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Ready {
                map,
                created_map,
                size,
                capacity,
            } => write!(
                f,
                "ready: legacy map {map:?} ({}, {size} bytes used), region capacity {capacity} bytes",
                if *created_map { "created" } else { "found" }
            ),
            Event::Copied { to, bytes } => write!(f, "copied {bytes} bytes to the {to}"),
            Event::Refused {
                to,
                needed,
                available,
            } => write!(
                f,
                "refused: the text needs {needed} bytes in the {to}, which has {available}; \
                 both sides keep their content"
            ),
            Event::MutexBusy { waited_ms } => write!(
                f,
                "the legacy mutex stayed held for {waited_ms} ms; retrying"
            ),
            Event::Lossy { codepage } => write!(
                f,
                "some characters have no equivalent in code page {codepage} and were replaced"
            ),
            Event::NotText { bytes } => write!(
                f,
                "the region's content ({bytes} bytes) is not UTF-8 text; not copied"
            ),
            Event::HasNul { at } => write!(
                f,
                "the region's text has a NUL character at byte {at}, where legacy programs \
                 would cut it short; not copied"
            ),
            Event::Failed(what) => write!(f, "error: {what}"),
        }
    }
}

/// Why a gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The legacy protocol is Windows' (window messages, named sections).
    #[error("the legacy TFileMap gateway runs on Windows only")]
    WindowsOnly,
    /// An option is out of range.
    #[error("{0}")]
    InvalidOption(String),
    /// The region could not be opened.
    #[error(transparent)]
    Region(#[from] filemap::Error),
    /// The section named as the legacy map was not made by the component:
    /// fewer than [`LEGACY_MIN_SIZE`] bytes at its start are backed by
    /// memory (a section created with `SEC_RESERVE` and left uncommitted),
    /// and touching the rest would fault.
    #[error(
        "the section {map:?} is not a legacy map: only {committed} bytes at its start are \
         committed (TFileMap's maps are committed whole, at least {LEGACY_MIN_SIZE} bytes)"
    )]
    NotALegacyMap {
        /// The map's full name.
        map: String,
        /// The bytes at its start that are committed.
        committed: usize,
    },
    /// A Windows call failed.
    #[error("{what} failed: Windows error {code}")]
    Os {
        /// The call and its object.
        what: String,
        /// `GetLastError()`.
        code: u32,
    },
}

/// A running gateway: dropping it (or [`Gateway::stop`]) ends it.
pub struct Gateway {
    #[cfg(windows)]
    inner: windows::Running,
}

/// Ends a gateway from another thread (a Ctrl-C handler); cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    #[cfg(windows)]
    inner: windows::Stopper,
}

impl Stopper {
    /// Ask the gateway to stop; it ends after the copy in progress.
    pub fn stop(&self) {
        #[cfg(windows)]
        self.inner.stop();
    }
}

impl Gateway {
    /// Open both sides, copy the existing text across (a legacy map that
    /// holds text wins; else the region's text goes to the map) and start
    /// the gateway's thread. `log` gets every [`Event`], on that thread.
    ///
    /// # Errors
    /// [`Error::WindowsOnly`] off Windows; [`Error::InvalidOption`] (also
    /// for a code page the system does not have);
    /// [`Error::NotALegacyMap`] for a section of the map's name whose
    /// pages are not committed; [`Error::Region`] when the region cannot be
    /// opened; [`Error::Os`] when the map, the mutex or the window cannot
    /// be made.
    pub fn start<F>(options: Options, log: F) -> Result<Gateway, Error>
    where
        F: FnMut(Event) + Send + 'static,
    {
        options.check()?;
        #[cfg(windows)]
        {
            Ok(Gateway {
                inner: windows::Running::start(options, Box::new(log))?,
            })
        }
        #[cfg(not(windows))]
        {
            let _ = log;
            Err(Error::WindowsOnly)
        }
    }

    /// A handle that stops this gateway from any thread.
    pub fn stopper(&self) -> Stopper {
        Stopper {
            #[cfg(windows)]
            inner: self.inner.stopper(),
        }
    }

    /// Wait until the gateway ends (after [`Stopper::stop`]).
    pub fn wait(self) {
        #[cfg(windows)]
        self.inner.wait();
    }

    /// Stop the gateway and wait for its thread.
    pub fn stop(self) {
        self.stopper().stop();
        self.wait();
    }
}

/// `TStringList.Text` to the region's text: split at CR LF, LF or CR as
/// `TStringList` does (a final line break ends the last line and adds no
/// empty one), joined by `'\n'`.
pub fn legacy_to_region(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\r' => {
                if chars.peek() == Some(&'\n') {
                    chars.next();
                }
                out.push('\n');
            }
            c => out.push(c),
        }
    }
    // Every line ended by a break: the last break ends the last line.
    if out.ends_with('\n') {
        out.pop();
    }
    out
}

/// The region's text (lines joined by `'\n'`) to `TStringList.Text`: every
/// line followed by CR LF; no lines, no text.
pub fn region_to_legacy(text: &str) -> String {
    if text.is_empty() {
        return String::new();
    }
    let mut out = String::with_capacity(text.len() + text.len() / 8 + 2);
    for line in text.split('\n') {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out
}

/// Which encoding a legacy map's bytes hold (never [`Encoding::Auto`]).
///
/// UTF-16LE when either
/// 1. the first byte is not NUL and the second is: the first character is
///    below U+0100, as nearly every text's is (an ANSI text has its
///    terminator there only when it is one character with no line break,
///    which `TStringList.Text` never is), or
/// 2. read as UTF-16LE up to its first NUL code unit, the bytes are valid
///    UTF-16 and end with CR LF (`0D 00 0A 00`), as `TStringList.Text`
///    does: an ANSI text has no NUL byte before its end, so it never looks
///    like that.
///
/// Otherwise ANSI. An empty map (first byte NUL) is ANSI, and empty either way.
pub fn detect(bytes: &[u8]) -> Encoding {
    match bytes {
        [a, 0, ..] if *a != 0 => return Encoding::Utf16,
        [0, ..] | [] => return Encoding::Ansi,
        _ => {}
    }
    let units = utf16_units(bytes);
    let ends_crlf = units.ends_with(&[0x0D, 0x0A]);
    if ends_crlf && char::decode_utf16(units.iter().copied()).all(|c| c.is_ok()) {
        Encoding::Utf16
    } else {
        Encoding::Ansi
    }
}

/// The ANSI text in `bytes`: up to the first NUL, or all of it.
pub fn ansi_text(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// The UTF-16LE code units in `bytes`: up to the first NUL unit, or all
/// whole units (an odd last byte is ignored).
pub fn utf16_units(bytes: &[u8]) -> Vec<u16> {
    bytes
        .chunks_exact(2)
        .map(|pair| u16::from_le_bytes([pair[0], pair[1]]))
        .take_while(|&unit| unit != 0)
        .collect()
}

/// UTF-16 code units as text; an unpaired surrogate (a half-written text
/// ends in anything) becomes U+FFFD.
pub fn utf16_to_string(units: &[u16]) -> String {
    char::decode_utf16(units.iter().copied())
        .map(|c| c.unwrap_or(char::REPLACEMENT_CHARACTER))
        .collect()
}

/// `text` as UTF-16LE bytes with the two-byte terminator.
pub fn utf16_bytes(text: &str) -> Vec<u8> {
    let mut out: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
    out.extend_from_slice(&[0, 0]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stringlist_text_becomes_lines_and_back() {
        assert_eq!(legacy_to_region("a\r\nb\r\n"), "a\nb");
        assert_eq!(legacy_to_region("a\r\nb"), "a\nb");
        assert_eq!(legacy_to_region("a\rb\nc\r\n"), "a\nb\nc");
        assert_eq!(legacy_to_region(""), "");
        assert_eq!(legacy_to_region("\r\n"), "");
        assert_eq!(legacy_to_region("a\r\n\r\n"), "a\n");
        for text in ["a\nb", "", "one", "a\n", "\nx", "é\n€"] {
            assert_eq!(legacy_to_region(&region_to_legacy(text)), text, "{text:?}");
        }
        assert_eq!(region_to_legacy("a\nb"), "a\r\nb\r\n");
        assert_eq!(region_to_legacy(""), "");
    }

    #[test]
    fn detection_tells_utf16_from_ansi() {
        let mut map = vec![0u8; 64];
        assert_eq!(detect(&map), Encoding::Ansi);
        let utf16 = utf16_bytes("hello\r\nworld\r\n");
        map[..utf16.len()].copy_from_slice(&utf16);
        assert_eq!(detect(&map), Encoding::Utf16);
        // A text starting with a character above U+00FF: rule 2.
        let mut map = vec![0u8; 64];
        let cjk = utf16_bytes("日本\r\n");
        map[..cjk.len()].copy_from_slice(&cjk);
        assert_eq!(detect(&map), Encoding::Utf16);
        // ANSI, also in a double-byte code page (Shift-JIS bytes).
        for ansi in [
            &b"hello\r\nworld\r\n\0"[..],
            b"\x93\xfa\x96\x7b\r\n\0",
            b"\xe9t\xe9\r\n\0",
        ] {
            let mut map = vec![0xAAu8; 64];
            map[..ansi.len()].copy_from_slice(ansi);
            assert_eq!(detect(&map), Encoding::Ansi, "{ansi:?}");
        }
        // Half a UTF-16 text followed by stale bytes is still UTF-16.
        let mut map = vec![0x41u8; 64];
        map[..5].copy_from_slice(b"a\0b\0c");
        assert_eq!(detect(&map), Encoding::Utf16);
    }

    #[test]
    fn a_broken_utf16_tail_is_replaced_not_refused() {
        let units = [0x61, 0xD800, 0x62];
        assert_eq!(utf16_to_string(&units), "a\u{FFFD}b");
        assert_eq!(utf16_units(b"a\0b"), vec![0x61]);
        assert_eq!(ansi_text(b"ab\0cd"), b"ab");
        assert_eq!(ansi_text(b"abcd"), b"abcd");
    }

    #[test]
    fn options_out_of_range_are_refused_with_the_numbers() {
        let mut o = Options::new("x");
        o.size = Some(31);
        let e = o.check().unwrap_err().to_string();
        assert!(e.contains("31") && e.contains("32"), "{e}");
        let mut o = Options::new("x");
        o.map_name = "Global\\x".into();
        assert!(o.check().is_err());
    }

    #[cfg(not(windows))]
    #[test]
    fn off_windows_start_says_windows_only() {
        let e = Gateway::start(Options::new("x"), |_| {}).err().unwrap();
        assert!(matches!(e, Error::WindowsOnly), "{e}");
    }
}
