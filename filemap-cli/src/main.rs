//! `filemap`: read, write, watch and inspect filemap regions from the shell,
//! and `filemap memo`, the shared notepad.

#![forbid(unsafe_code)]

mod cli;
mod command;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    match command::run(cli.command) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("filemap: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
