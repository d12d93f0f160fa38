//! `unix-socket`: a Unix-domain stream socket in the run's directory.

#![forbid(unsafe_code)]

use std::os::unix::net::{UnixListener, UnixStream};

use anyhow::{Context, Result};

use super::{stream, Ctx};
use crate::harness::{self, ChildArgs, ChildStdinMode};

pub fn parent(ctx: &Ctx) -> Result<Vec<u64>> {
    let path = ctx.ns.dir().join(ctx.ns.name("sock"));
    let listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    let mut child = ctx.spawn(&[format!("path={}", path.display())], ChildStdinMode::Null)?;
    // The child connects before it reports ready, so accept cannot hang.
    child.wait_ready()?;
    let (sock, _) = listener.accept().context("accepting the child")?;
    let _ = std::fs::remove_file(&path);
    let mut rx = sock.try_clone()?;
    let mut tx = sock;
    let samples = stream::drive(ctx, &mut tx, &mut rx)?;
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs) -> Result<()> {
    let path = args.get("path")?;
    let sock = UnixStream::connect(path).with_context(|| format!("connecting to {path}"))?;
    harness::child_ready()?;
    let mut rx = sock.try_clone()?;
    let mut tx = sock;
    stream::echo(args.usize("payload")?, &mut rx, &mut tx)
}
