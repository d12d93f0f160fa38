//! `spin-floor`: the busy-poll lower bound. Bare shared memory, the sender
//! copies and bumps a sequence word (release); the receiver polls the word
//! (acquire, PAUSE between polls) and copies out. Its round trip is the
//! cost of moving the control line and the payload lines between the two
//! cores, twice.

#![forbid(unsafe_code)]

use std::sync::atomic::Ordering::Acquire;

use anyhow::Result;

use super::shm_pair::{Dir, Pair};
use super::Ctx;
use crate::harness::{self, expect, seq_of, spin_until, ChildArgs, ChildStdinMode, Msg, Step};

fn wait(pair: &Pair, dir: Dir, seen: u32) -> Result<u32> {
    spin_until("spin-floor message", || Ok(pair.arrived(dir, seen)))?;
    Ok(pair.word(dir).load(Acquire))
}

pub fn parent(ctx: &Ctx) -> Result<Vec<u64>> {
    let payload = ctx.plan.payload;
    let name = ctx.ns.name("spin");
    let pair = Pair::create(&name, payload)?;
    let mut child = ctx.spawn(&[format!("shm={name}")], ChildStdinMode::Null)?;
    child.wait_ready()?;
    let mut msg = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let mut seen = pair.word(Dir::Pong).load(Acquire);
    let samples = ctx.drive(|step| {
        match step {
            Step::RoundTrip(seq) => {
                pair.send(Dir::Ping, msg.set_seq(seq));
                seen = wait(&pair, Dir::Pong, seen)?;
                pair.recv(Dir::Pong, &mut buf);
                expect(&buf, payload, seq)?;
            }
            Step::Stop => pair.send(Dir::Ping, msg.set_seq(harness::STOP)),
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
    let mut seen = pair.word(Dir::Ping).load(Acquire);
    harness::child_ready()?;
    loop {
        seen = wait(&pair, Dir::Ping, seen)?;
        pair.recv(Dir::Ping, &mut buf);
        let seq = seq_of(&buf);
        if seq == harness::STOP {
            return Ok(());
        }
        pair.send(Dir::Pong, reply.set_seq(seq));
    }
}
