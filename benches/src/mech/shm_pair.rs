//! The bare shared-memory channel under the two floors: per direction one
//! sequence word (alone in its cache line; a futex word for the blocking
//! floor) and one payload buffer (page aligned), as any transport with
//! variable-size messages needs. The floors copy the payload in and out,
//! like every other mechanism, so they bound what filemap can reach at
//! each payload size, not just for empty messages.

#![forbid(unsafe_code)]

use std::sync::atomic::AtomicU32;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};

use anyhow::{Context, Result};

use crate::sys::Shm;

const BUFFERS: usize = 4096;

/// Which way a message goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    Ping,
    Pong,
}

pub struct Pair {
    shm: Shm,
    payload: usize,
}

fn stride(payload: usize) -> usize {
    payload.div_ceil(4096) * 4096
}

impl Pair {
    pub fn create(name: &str, payload: usize) -> Result<Pair> {
        let shm = Shm::create(name, BUFFERS + 2 * stride(payload))
            .with_context(|| format!("creating shared memory {name}"))?;
        Ok(Pair { shm, payload })
    }

    pub fn open(name: &str, payload: usize) -> Result<Pair> {
        let shm = Shm::open(name).with_context(|| format!("opening shared memory {name}"))?;
        anyhow::ensure!(
            shm.len() >= BUFFERS + 2 * stride(payload),
            "{name} is too small"
        );
        Ok(Pair { shm, payload })
    }

    /// The sequence word of a direction: bumped once per message.
    #[inline]
    pub fn word(&self, dir: Dir) -> &AtomicU32 {
        self.shm.u32_at(match dir {
            Dir::Ping => 0,
            Dir::Pong => 64,
        })
    }

    fn buffer(&self, dir: Dir) -> usize {
        match dir {
            Dir::Ping => BUFFERS,
            Dir::Pong => BUFFERS + stride(self.payload),
        }
    }

    /// Copy `msg` into the direction's buffer, then publish it by bumping
    /// the sequence word (release). Only one process sends each way.
    #[inline]
    pub fn send(&self, dir: Dir, msg: &[u8]) {
        self.shm.copy_in(self.buffer(dir), msg);
        let word = self.word(dir);
        word.store(word.load(Relaxed).wrapping_add(1), Release);
    }

    /// Whether a message newer than `seen` was published (acquire).
    #[inline]
    pub fn arrived(&self, dir: Dir, seen: u32) -> bool {
        self.word(dir).load(Acquire) != seen
    }

    /// Copy the direction's message out (after `arrived` said so).
    #[inline]
    pub fn recv(&self, dir: Dir, buf: &mut [u8]) {
        self.shm.copy_out(self.buffer(dir), buf);
    }
}
