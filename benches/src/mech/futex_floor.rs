//! `futex-floor`: the blocking lower bound. Bare shared memory, the sender
//! copies and bumps a sequence word then `FUTEX_WAKE`s; the receiver
//! sleeps in `FUTEX_WAIT` on that word and copies out. No lock, no waiter
//! bookkeeping, no validation: what any blocking shared-memory transport
//! must at least pay.

#![forbid(unsafe_code)]

use std::time::Instant;

use anyhow::{bail, Result};

use super::shm_pair::{Dir, Pair};
use super::Ctx;
use crate::harness::{self, expect, seq_of, ChildArgs, ChildStdinMode, Msg, Step, TIMEOUT};
use crate::sys;

fn send(pair: &Pair, dir: Dir, msg: &[u8]) {
    pair.send(dir, msg);
    sys::futex_wake(pair.word(dir), 1);
}

/// Sleep until a message newer than `seen` arrives; its sequence word.
fn wait(pair: &Pair, dir: Dir, seen: u32) -> Result<u32> {
    let mut deadline = None;
    loop {
        if pair.arrived(dir, seen) {
            return Ok(pair.word(dir).load(std::sync::atomic::Ordering::Acquire));
        }
        // The clock is read only after a wake-up that brought nothing.
        if let Some(d) = deadline {
            if Instant::now() >= d {
                bail!("futex-floor: nothing arrived within {TIMEOUT:?}");
            }
        }
        sys::futex_wait(pair.word(dir), seen, TIMEOUT);
        if deadline.is_none() && !pair.arrived(dir, seen) {
            deadline = Some(Instant::now() + TIMEOUT);
        }
    }
}

pub fn parent(ctx: &Ctx) -> Result<Vec<u64>> {
    let payload = ctx.plan.payload;
    let name = ctx.ns.name("futex");
    let pair = Pair::create(&name, payload)?;
    let mut child = ctx.spawn(&[format!("shm={name}")], ChildStdinMode::Null)?;
    child.wait_ready()?;
    let mut msg = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let mut seen = pair
        .word(Dir::Pong)
        .load(std::sync::atomic::Ordering::Acquire);
    let samples = ctx.drive(|step| {
        match step {
            Step::RoundTrip(seq) => {
                send(&pair, Dir::Ping, msg.set_seq(seq));
                seen = wait(&pair, Dir::Pong, seen)?;
                pair.recv(Dir::Pong, &mut buf);
                expect(&buf, payload, seq)?;
            }
            Step::Stop => send(&pair, Dir::Ping, msg.set_seq(harness::STOP)),
        }
        Ok(())
    })?;
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs) -> Result<()> {
    let payload = args.usize("payload")?;
    let pair = Pair::open(args.get("shm")?, payload)?;
    let mut reply = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let mut seen = pair
        .word(Dir::Ping)
        .load(std::sync::atomic::Ordering::Acquire);
    harness::child_ready()?;
    loop {
        seen = wait(&pair, Dir::Ping, seen)?;
        pair.recv(Dir::Ping, &mut buf);
        let seq = seq_of(&buf);
        if seq == harness::STOP {
            return Ok(());
        }
        send(&pair, Dir::Pong, reply.set_seq(seq));
    }
}
