//! One module per verb; `run` dispatches. The verbs' shared output
//! helpers are `output.rs`, beneath them.

mod info;
mod input;
mod legacy;
mod ls;
mod memo;
mod output;
mod read;
mod rm;
mod watch;
mod write;

use crate::cli::Command;

pub fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Memo(args) => memo::run(args)?,
        Command::Write(args) => write::run(args)?,
        Command::Read(args) => read::run(args)?,
        Command::Watch(args) => watch::run(args)?,
        Command::Info(args) => info::run(args)?,
        Command::Ls(args) => ls::run(args)?,
        Command::Rm(args) => rm::run(args)?,
        Command::Legacy(args) => legacy::run(args)?,
    }
    Ok(())
}
