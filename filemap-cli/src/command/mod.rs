//! One module per verb; `run` dispatches.

use std::process::ExitCode;

use crate::cli::Command;

pub fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Memo(args) => crate::memo::run(args).map(|()| ExitCode::SUCCESS),
    }
}
