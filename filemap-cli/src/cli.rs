//! Command-line syntax (clap derive). Parsing only; `command/` acts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use filemap::admin::parse_size;

#[derive(Debug, Parser)]
#[command(
    name = "filemap",
    version,
    about = "Named shared memory between processes: write, read, watch, inspect; `memo` shares a notepad."
)]
#[cfg_attr(
    not(windows),
    command(
        after_help = "Regions live in /dev/shm/filemap.<NAME>. Regions `filemap write` creates persist until `filemap rm`; writing to an existing region keeps its lifetime (one filemap-bridge created persists too, one `filemap memo` created goes with its last user)."
    )
)]
#[cfg_attr(
    windows,
    command(
        after_help = "Regions are sections named Local\\filemap.<NAME>; persistent ones keep their bytes in %LOCALAPPDATA%\\filemap\\filemap.<NAME>. Regions `filemap write` creates persist until `filemap rm`; writing to an existing region keeps its lifetime (one `filemap memo` created goes with its last user)."
    )
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a shared notepad: every instance with the same NAME shows the same text, live.
    Memo(MemoArgs),
    /// Publish TEXT (or standard input) as the region's whole content.
    Write(WriteArgs),
    /// Print the region's content (control characters escaped on a terminal).
    Read(ReadArgs),
    /// Print one line per change until Ctrl-C: generation, writer pid, content. Waits for a region that does not exist yet (told by inotify on Linux; elsewhere it looks every 100 ms); never creates one.
    Watch(WatchArgs),
    /// Show a region's capacity, length, generation, attached processes.
    Info(InfoArgs),
    /// List the regions on this host.
    Ls(LsArgs),
    /// Remove regions by name, or every stale one.
    Rm(RmArgs),
    /// Share a region with programs built on the legacy TFileMap Delphi component, both ways, until Ctrl-C (Windows only).
    Legacy(LegacyArgs),
}

#[derive(Debug, Args)]
pub struct Region {
    /// Region name.
    pub name: String,
}

#[derive(Debug, Args)]
#[command(after_help = "\
Keys: F2 open, F3 close, F4 read (take the shared text), F5 write (publish the local text), \
F6 clear, F7 toggle auto-sync, Ctrl-Q / Esc / F10 quit.
With auto-sync on (the default) every edit is published at once and changes from other \
memos replace the local text; with it off, edits stay local until F5 and changes from \
others are announced instead. The region goes away when the last memo quits.")]
pub struct MemoArgs {
    /// Region name: every memo started with the same name shares one text.
    #[arg(default_value = "memo")]
    pub name: String,

    /// Capacity in bytes of a region this memo creates (suffix K, M or G,
    /// any case, for KiB, MiB, GiB). Default: 64K, or twice the --init
    /// file's size when that is more.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub capacity: Option<u64>,

    /// Start a region this memo creates with FILE's text. When the region
    /// exists already, its shared text wins.
    #[arg(long, value_name = "FILE")]
    pub init: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct WriteArgs {
    #[command(flatten)]
    pub region: Region,
    /// The content; standard input when absent or `-`.
    pub text: Option<String>,
    /// Capacity in bytes, when this command creates the region (suffix K,
    /// M or G, any case, for KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4096")]
    pub capacity: u64,
    /// The most the region may grow to, when this command creates it
    /// (default: the capacity, so it never grows); a content longer than
    /// the capacity and at most this grows the region.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub max_capacity: Option<u64>,
    /// Remove the region when its last user closes, instead of keeping it
    /// until `filemap rm` (applies when this command creates it; an
    /// existing region keeps the lifetime its creator gave it).
    #[arg(long)]
    pub transient: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub region: Region,
    /// One JSON object with generation, writer and content, and a typed
    /// value decoded (an error past 126 levels of nesting).
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    pub region: Region,
    /// One JSON object per line.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub region: Region,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    /// Print a JSON array.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    /// Region names.
    #[arg(required_unless_present = "stale")]
    pub names: Vec<String>,
    /// Remove every stale region: not persistent, and no live process attached.
    #[arg(long)]
    pub stale: bool,
}

#[derive(Debug, Args)]
#[command(after_help = "\
One gateway per map. It makes the legacy map (with --size bytes, default 4096) when no \
legacy program has, or uses the one it finds. At start, a legacy map holding text wins; \
otherwise the region's text goes to the map. Text that does not fit the other side is \
refused with a log line, and both sides keep their content. See docs/legacy.md.")]
pub struct LegacyArgs {
    #[command(flatten)]
    pub region: Region,
    /// The legacy map's name (TFileMap.MapName). Default: the region's name.
    #[arg(long, value_name = "NAME")]
    pub map_name: Option<String>,
    /// How the legacy programs store text: ansi (Delphi before 2009),
    /// utf16 (Delphi 2009 and later) or auto (detected on each read; writes
    /// in the encoding last read, UTF-16 until then).
    #[arg(long, value_enum, default_value = "ansi")]
    pub encoding: LegacyEncoding,
    /// The ANSI code page (0: the system's; 1252: Western European;
    /// 1251: Cyrillic; 932: Japanese; 65001: UTF-8).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub codepage: u32,
    /// The broadcast message's suffix: RegisterWindowMessage(MapName + SUFFIX).
    #[arg(long, value_name = "SUFFIX", default_value = "Synch-Now")]
    pub suffix: String,
    /// The legacy programs' MaxSize in bytes: the size of a map this
    /// gateway creates, and the most it writes to one it finds. Default:
    /// 4096, or the size found.
    #[arg(long, value_name = "BYTES", value_parser = parse_size)]
    pub size: Option<u64>,
    /// Put the map's and mutex's names in Global\ (all sessions; creating
    /// them needs SeCreateGlobalPrivilege) or Local\ (this session).
    /// Default: the names as given, like the component.
    #[arg(long, value_enum)]
    pub namespace: Option<LegacyNamespace>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LegacyEncoding {
    Ansi,
    Utf16,
    Auto,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LegacyNamespace {
    Global,
    Local,
}
