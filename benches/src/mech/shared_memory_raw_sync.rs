//! `shared_memory-raw_sync`: the shared_memory crate's mapping with two
//! raw_sync auto-reset events (process-shared pthread mutex + condition
//! variable) in it, one per direction, and a payload buffer per direction.
//! The sender copies in and sets the event; the receiver waits on it and
//! copies out.

use anyhow::{anyhow, Context, Result};
use raw_sync::events::{Event, EventImpl, EventInit, EventState};
use raw_sync::Timeout;
use shared_memory::{Shmem, ShmemConf};

use super::Ctx;
use crate::harness::{self, expect, seq_of, ChildArgs, ChildStdinMode, Msg, Step, TIMEOUT};

/// Offsets of the two events; payload buffers start at `BUFFERS`.
const PING_EVENT: usize = 0;
const PONG_EVENT: usize = 512;
const BUFFERS: usize = 4096;

fn stride(payload: usize) -> usize {
    payload.div_ceil(4096) * 4096
}

fn size(payload: usize) -> usize {
    BUFFERS + 2 * stride(payload)
}

fn rs(what: &'static str) -> impl FnOnce(Box<dyn std::error::Error>) -> anyhow::Error {
    move |e| anyhow!("raw_sync: {what}: {e}")
}

/// The mapping and the two events living in it.
/// Fields drop in order: the events before the mapping they live in.
struct Channel {
    ping: Box<dyn EventImpl>,
    pong: Box<dyn EventImpl>,
    payload: usize,
    shm: Shmem,
}

impl Channel {
    fn create(name: &str, payload: usize) -> Result<Channel> {
        let shm = ShmemConf::new()
            .size(size(payload))
            .os_id(name)
            .create()
            .with_context(|| format!("shared_memory: creating {name}"))?;
        let base = shm.as_ptr();
        assert!(Event::size_of(Some(base)) <= PONG_EVENT - PING_EVENT);
        // SAFETY:
        // - both event areas lie inside the fresh mapping (`size` is at least
        //   `BUFFERS` bytes; each area is 512 bytes, more than the event's
        //   size, asserted above) and do not overlap each other or the
        //   payload buffers;
        // - nobody else has the mapping's name yet (the child is spawned
        //   later), so initialising cannot race with a user;
        // - the events are dropped with `Channel`, before the mapping.
        // SAFETY: holds by the conditions listed above.
        let (ping, pong) = unsafe {
            (
                Event::new(base.add(PING_EVENT), true)
                    .map_err(rs("creating event"))?
                    .0,
                Event::new(base.add(PONG_EVENT), true)
                    .map_err(rs("creating event"))?
                    .0,
            )
        };
        Ok(Channel {
            shm,
            ping,
            pong,
            payload,
        })
    }

    fn open(name: &str, payload: usize) -> Result<Channel> {
        let shm = ShmemConf::new()
            .os_id(name)
            .open()
            .with_context(|| format!("shared_memory: opening {name}"))?;
        anyhow::ensure!(shm.len() >= size(payload), "{name} is too small");
        let base = shm.as_ptr();
        // SAFETY:
        // - the parent initialised both events at these offsets before it
        //   spawned us, and the mapping is large enough (checked);
        // - the events are dropped with `Channel`, before the mapping.
        let (ping, pong) = unsafe {
            (
                Event::from_existing(base.add(PING_EVENT))
                    .map_err(rs("opening event"))?
                    .0,
                Event::from_existing(base.add(PONG_EVENT))
                    .map_err(rs("opening event"))?
                    .0,
            )
        };
        Ok(Channel {
            shm,
            ping,
            pong,
            payload,
        })
    }

    fn buffer(&self, ping: bool) -> *mut u8 {
        let offset = if ping {
            BUFFERS
        } else {
            BUFFERS + stride(self.payload)
        };
        // SAFETY: `offset + payload <= size(payload) <= shm.len()`, so the
        // result stays inside the mapping.
        unsafe { self.shm.as_ptr().add(offset) }
    }

    /// Copy `msg` into a direction's buffer and set its event.
    fn send(&self, ping: bool, msg: &[u8]) -> Result<()> {
        assert!(msg.len() <= self.payload);
        // SAFETY:
        // - the buffer holds `payload >= msg.len()` bytes inside the mapping;
        // - `msg` is private memory: no overlap;
        // - the peer reads this buffer only after the event below is set
        //   (the event's mutex orders the accesses) and never writes it.
        // SAFETY: holds by the conditions listed above.
        unsafe { std::ptr::copy_nonoverlapping(msg.as_ptr(), self.buffer(ping), msg.len()) };
        let event = if ping { &self.ping } else { &self.pong };
        event.set(EventState::Signaled).map_err(rs("set"))
    }

    /// Wait for a direction's event and copy its buffer into `buf`.
    fn recv(&self, ping: bool, buf: &mut [u8]) -> Result<()> {
        assert!(buf.len() <= self.payload);
        let event = if ping { &self.ping } else { &self.pong };
        event.wait(Timeout::Val(TIMEOUT)).map_err(rs("wait"))?;
        // SAFETY:
        // - the buffer holds `payload >= buf.len()` bytes inside the mapping;
        // - `buf` is private memory: no overlap;
        // - the peer wrote the buffer before setting the event we just
        //   consumed and writes it again only after our answer.
        // SAFETY: holds by the conditions listed above.
        unsafe { std::ptr::copy_nonoverlapping(self.buffer(ping), buf.as_mut_ptr(), buf.len()) };
        Ok(())
    }
}

pub fn parent(ctx: &Ctx) -> Result<Vec<u64>> {
    let payload = ctx.plan.payload;
    let name = ctx.ns.name("rawsync");
    let channel = Channel::create(&name, payload)?;
    let mut child = ctx.spawn(&[format!("shm={name}")], ChildStdinMode::Null)?;
    child.wait_ready()?;
    let mut msg = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    let samples = ctx.drive(|step| {
        match step {
            Step::RoundTrip(seq) => {
                channel.send(true, msg.set_seq(seq))?;
                channel.recv(false, &mut buf)?;
                expect(&buf, payload, seq)?;
            }
            Step::Stop => channel.send(true, msg.set_seq(harness::STOP))?,
        }
        Ok(())
    })?;
    child.finish()?;
    Ok(samples)
}

pub fn child(args: &ChildArgs) -> Result<()> {
    let payload = args.usize("payload")?;
    let channel = Channel::open(args.get("shm")?, payload)?;
    let mut reply = Msg::new(payload);
    let mut buf = harness::buffer(payload);
    harness::child_ready()?;
    loop {
        channel.recv(true, &mut buf)?;
        let seq = seq_of(&buf);
        if seq == harness::STOP {
            return Ok(());
        }
        channel.send(false, reply.set_seq(seq))?;
    }
}
