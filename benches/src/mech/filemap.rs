//! `filemap-blocking`, `filemap-spin` and `filemap-adaptive`: one region
//! per direction. The sender publishes the whole message with `write`; the
//! receiver waits for the generation to move (`wait_change` sleeping on the
//! futex, `wait_change_spin` busy-polling, or `wait_change_adaptive`
//! spinning briefly while that has recently paid off, then sleeping), then
//! copies it out with `read_into`.

#![forbid(unsafe_code)]

use anyhow::{anyhow, Context, Result};
use filemap::FileMap;

use super::Ctx;
use crate::harness::{self, expect, seq_of, ChildArgs, ChildStdinMode, Msg, Step, TIMEOUT};

/// How the receiver waits for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wait {
    Block,
    Spin,
    Adaptive,
}

/// Wait until `map`'s generation moves past `seen`; the new generation.
#[inline]
fn wait(map: &FileMap, seen: u64, how: Wait) -> Result<u64> {
    let moved = match how {
        Wait::Block => map
            .wait_change(seen, filemap::Wait::sleep().timeout(TIMEOUT))
            .ok(),
        Wait::Spin => map
            .wait_change(seen, filemap::Wait::spin().timeout(TIMEOUT))
            .ok(),
        Wait::Adaptive => map
            .wait_change(seen, filemap::Wait::adaptive().timeout(TIMEOUT))
            .ok(),
    };
    moved.ok_or_else(|| anyhow!("no change in {} after {TIMEOUT:?}", map.name()))
}

fn create(name: &str, payload: usize) -> Result<FileMap> {
    FileMap::builder(name)
        .capacity(payload.max(filemap::MIN_CAPACITY))
        .create_only()
        .open()
        .with_context(|| format!("creating region {name}"))
}

pub fn parent(ctx: &Ctx, how: Wait) -> Result<Vec<u64>> {
    let payload = ctx.plan.payload;
    let (ping_name, pong_name) = (ctx.ns.name("ping"), ctx.ns.name("pong"));
    let ping = create(&ping_name, payload)?;
    let pong = create(&pong_name, payload)?;
    let mut child = ctx.spawn(
        &[format!("ping={ping_name}"), format!("pong={pong_name}")],
        ChildStdinMode::Null,
    )?;
    child.wait_ready()?;
    let mut msg = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let mut seen = pong.generation();
    let samples = ctx.drive(|step| {
        match step {
            Step::RoundTrip(seq) => {
                ping.write(msg.set_seq(seq))?;
                seen = wait(&pong, seen, how)?;
                pong.read_into(&mut buf)?;
                expect(&buf, payload, seq)?;
            }
            Step::Stop => {
                ping.write(msg.set_seq(harness::STOP))?;
            }
        }
        Ok(())
    })?;
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs, how: Wait) -> Result<()> {
    let payload = args.usize("payload")?;
    let open = |key| -> Result<FileMap> {
        let name = args.get(key)?;
        FileMap::builder(name)
            .open_only()
            .open()
            .with_context(|| format!("opening region {name}"))
    };
    let ping = open("ping")?;
    let pong = open("pong")?;
    let mut reply = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let mut seen = ping.generation();
    harness::child_ready()?;
    loop {
        seen = wait(&ping, seen, how)?;
        ping.read_into(&mut buf)?;
        let seq = seq_of(&buf);
        if seq == harness::STOP {
            return Ok(());
        }
        expect(&buf, payload, seq)?;
        pong.write(reply.set_seq(seq))?;
    }
}
