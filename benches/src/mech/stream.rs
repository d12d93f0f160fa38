//! The ping-pong over any byte stream (sockets, pipes): `write_all` the
//! whole message, `read_exact` the whole answer.

#![forbid(unsafe_code)]

use std::io::{Read, Write};

use anyhow::Result;

use super::Ctx;
use crate::harness::{self, expect, seq_of, Msg, Step};

/// Parent side over `tx` (towards the child) and `rx` (back from it).
pub fn drive(ctx: &Ctx, tx: &mut impl Write, rx: &mut impl Read) -> Result<Vec<u64>> {
    let payload = ctx.plan.payload;
    let mut msg = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    ctx.drive(|step| {
        match step {
            Step::RoundTrip(seq) => {
                tx.write_all(msg.set_seq(seq))?;
                rx.read_exact(&mut buf)?;
                expect(&buf, payload, seq)?;
            }
            Step::Stop => {
                tx.write_all(msg.set_seq(harness::STOP))?;
                tx.flush()?;
            }
        }
        Ok(())
    })
}

/// Child side: echo messages of `payload` bytes until [`harness::STOP`].
pub fn echo(payload: usize, rx: &mut impl Read, tx: &mut impl Write) -> Result<()> {
    let mut reply = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    loop {
        rx.read_exact(&mut buf)?;
        let seq = seq_of(&buf);
        if seq == harness::STOP {
            return Ok(());
        }
        tx.write_all(reply.set_seq(seq))?;
    }
}
