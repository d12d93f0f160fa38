//! `pipe`: two anonymous pipes, the child's stdin and stdout (default pipe
//! size, 64 KiB on Linux, as a user would get).

#![forbid(unsafe_code)]

use std::os::fd::AsFd;

use anyhow::Result;

use super::{stream, Ctx};
use crate::harness::{self, ChildArgs, ChildStdinMode};

pub fn parent(ctx: &Ctx) -> Result<Vec<u64>> {
    let mut child = ctx.spawn(&[], ChildStdinMode::Piped)?;
    child.wait_ready()?;
    let (mut tx, mut rx) = child.take_pipes()?;
    let samples = stream::drive(ctx, &mut tx, &mut rx)?;
    drop(tx);
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs) -> Result<()> {
    harness::child_ready()?;
    // Unbuffered: `Stdin`/`Stdout` locks would add a copy and, for stdout,
    // line buffering.
    let mut rx = std::fs::File::from(std::io::stdin().lock().as_fd().try_clone_to_owned()?);
    let mut tx = std::fs::File::from(std::io::stdout().lock().as_fd().try_clone_to_owned()?);
    stream::echo(args.usize("payload")?, &mut rx, &mut tx)
}
