//! `tcp-loopback`: TCP on 127.0.0.1 with `TCP_NODELAY` (as any
//! request/response user sets), on a port the kernel picks.

#![forbid(unsafe_code)]

use std::net::{Ipv4Addr, TcpListener, TcpStream};

use anyhow::{Context, Result};

use super::{stream, Ctx};
use crate::harness::{self, ChildArgs, ChildStdinMode};

pub fn parent(ctx: &Ctx) -> Result<Vec<u64>> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("binding 127.0.0.1")?;
    let port = listener.local_addr()?.port();
    let mut child = ctx.spawn(&[format!("port={port}")], ChildStdinMode::Null)?;
    // The child connects before it reports ready, so accept cannot hang.
    child.wait_ready()?;
    let (sock, _) = listener.accept().context("accepting the child")?;
    sock.set_nodelay(true)?;
    let mut rx = sock.try_clone()?;
    let mut tx = sock;
    let samples = stream::drive(ctx, &mut tx, &mut rx)?;
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs) -> Result<()> {
    let port: u16 = args.get("port")?.parse()?;
    let sock =
        TcpStream::connect((Ipv4Addr::LOCALHOST, port)).context("connecting to 127.0.0.1")?;
    sock.set_nodelay(true)?;
    harness::child_ready()?;
    let mut rx = sock.try_clone()?;
    let mut tx = sock;
    stream::echo(args.usize("payload")?, &mut rx, &mut tx)
}
