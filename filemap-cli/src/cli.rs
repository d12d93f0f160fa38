//! Command-line syntax (clap derive). Parsing only; `command/` acts.

use clap::{Parser, Subcommand};

use crate::memo::MemoArgs;

#[derive(Debug, Parser)]
#[command(name = "filemap", version, about = "Named shared memory between processes: write, read, watch, inspect; `memo` shares a notepad.")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open a shared notepad: every instance with the same NAME shows the same text, live.
    Memo(MemoArgs),
}
