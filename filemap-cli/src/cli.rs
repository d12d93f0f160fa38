//! Command-line syntax (clap derive). Parsing only; `command/` acts.

use clap::{Args, Parser, Subcommand};

use crate::memo::MemoArgs;

#[derive(Debug, Parser)]
#[command(
    name = "filemap",
    version,
    about = "Named shared memory between processes: write, read, watch, inspect; `memo` shares a notepad."
)]
#[cfg_attr(
    not(windows),
    command(
        after_help = "Regions live in /dev/shm/filemap.<NAME>. Regions written by `filemap write` persist until `filemap rm`."
    )
)]
#[cfg_attr(
    windows,
    command(
        after_help = "Regions are sections named Local\\filemap.<NAME>; persistent ones keep their bytes in %LOCALAPPDATA%\\filemap\\filemap.<NAME>. Regions written by `filemap write` persist until `filemap rm`."
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
    /// Print one line per change until Ctrl-C: generation, writer pid, content.
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
pub struct WriteArgs {
    #[command(flatten)]
    pub region: Region,
    /// The content; standard input when absent or `-`.
    pub text: Option<String>,
    /// Capacity in bytes, when this command creates the region.
    #[arg(long, default_value_t = filemap::DEFAULT_CAPACITY as u64)]
    pub capacity: u64,
    /// Remove the region when its last user closes, instead of keeping it
    /// until `filemap rm` (applies when this command creates it).
    #[arg(long)]
    pub transient: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    #[command(flatten)]
    pub region: Region,
    /// One JSON object with generation, writer and content.
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
    /// Capacity in bytes, when this command creates the region.
    #[arg(long, default_value_t = filemap::DEFAULT_CAPACITY as u64)]
    pub capacity: u64,
    /// Keep the region after this watcher exits, if it creates it.
    #[arg(long)]
    pub persistent: bool,
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
