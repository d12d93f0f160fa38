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
pub struct WriteArgs {
    #[command(flatten)]
    pub region: Region,
    /// The content; standard input when absent or `-`.
    pub text: Option<String>,
    /// Capacity in bytes, when this command creates the region (suffix K,
    /// M or G for KiB, MiB, GiB).
    #[arg(long, value_name = "BYTES", value_parser = parse_size, default_value = "4096")]
    pub capacity: u64,
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

/// Parse a byte count with an optional K, M or G suffix (powers of 1024;
/// `KiB`, `KB` and `k` are accepted too).
pub fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let digits = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a byte count (examples: 4096, 64K, 1M)"))?;
    let shift = match unit
        .to_ascii_lowercase()
        .trim_end_matches('b')
        .trim_end_matches('i')
    {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        _ => return Err(format!("unknown unit {unit:?} (use K, M or G)")),
    };
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("{text:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64K"), Ok(65536));
        assert_eq!(parse_size("64KiB"), Ok(65536));
        assert_eq!(parse_size("1m"), Ok(1 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("x").is_err());
        assert!(parse_size("12Q").is_err());
        assert!(parse_size("99999999999999999999G").is_err());
    }
}
