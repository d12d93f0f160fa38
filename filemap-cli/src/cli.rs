//! Command-line syntax (clap derive). Parsing only; `command/` acts.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
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
