//! A model of the publish/read protocol, checked under random
//! interleavings with proptest.
//!
//! The model mirrors `region.rs` step by step: a writer copies its content
//! into buffer `(generation + 1) & 1`, stores the length, then bumps the
//! generation; a reader loads the generation, the length of buffer
//! `generation & 1`, copies byte by byte, and accepts the copy only if the
//! generation did not move. Every interleaving of those steps must give
//! readers either a complete published content or a retry, never a mix.
//! A mutant that writes into the active buffer must be caught, so the
//! model is shown to be able to fail.

use proptest::prelude::*;

const CAPACITY: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Correct,
    /// Broken on purpose: writes into the buffer readers are reading.
    WritesActiveBuffer,
}

struct Memory {
    generation: u64,
    len: [usize; 2],
    buf: [[u8; CAPACITY]; 2],
    /// What each generation published, for the oracle.
    published: Vec<Vec<u8>>,
}

enum WriterState {
    Idle,
    Copying {
        content: Vec<u8>,
        index: usize,
        at: usize,
    },
    Publishing {
        content: Vec<u8>,
        index: usize,
    },
}

enum ReaderState {
    Start,
    Copying {
        generation: u64,
        index: usize,
        len: usize,
        got: Vec<u8>,
    },
}

struct Writer {
    state: WriterState,
    next: u8,
}

impl Writer {
    fn step(&mut self, mem: &mut Memory, variant: Variant, len_choice: usize) {
        self.state = match std::mem::replace(&mut self.state, WriterState::Idle) {
            WriterState::Idle => {
                self.next = self.next.wrapping_add(1);
                let content = vec![self.next; len_choice % (CAPACITY + 1)];
                let index = match variant {
                    Variant::Correct => ((mem.generation + 1) & 1) as usize,
                    Variant::WritesActiveBuffer => (mem.generation & 1) as usize,
                };
                WriterState::Copying {
                    content,
                    index,
                    at: 0,
                }
            }
            WriterState::Copying { content, index, at } if at < content.len() => {
                mem.buf[index][at] = content[at];
                WriterState::Copying {
                    content,
                    index,
                    at: at + 1,
                }
            }
            WriterState::Copying { content, index, .. } => {
                mem.len[index] = content.len();
                WriterState::Publishing { content, index }
            }
            WriterState::Publishing { content, index } => {
                // The flip: with the correct variant the new generation's
                // parity selects the buffer just written.
                mem.generation += 1;
                if variant == Variant::WritesActiveBuffer {
                    mem.len[(mem.generation & 1) as usize] = content.len();
                    mem.buf[(mem.generation & 1) as usize] = mem.buf[index];
                }
                mem.published.push(content);
                WriterState::Idle
            }
        };
    }
}

/// One reader step; returns an accepted read as (generation, content).
fn reader_step(state: &mut ReaderState, mem: &Memory) -> Option<(u64, Vec<u8>)> {
    match std::mem::replace(state, ReaderState::Start) {
        ReaderState::Start => {
            let generation = mem.generation;
            let index = (generation & 1) as usize;
            let len = mem.len[index];
            assert!(len <= CAPACITY, "length is validated before copying");
            *state = ReaderState::Copying {
                generation,
                index,
                len,
                got: Vec::new(),
            };
            None
        }
        ReaderState::Copying {
            generation,
            index,
            len,
            mut got,
        } if got.len() < len => {
            got.push(mem.buf[index][got.len()]);
            *state = ReaderState::Copying {
                generation,
                index,
                len,
                got,
            };
            None
        }
        ReaderState::Copying {
            generation, got, ..
        } => {
            // Re-check: accept only if no publish happened meanwhile.
            (mem.generation == generation).then_some((generation, got))
        }
    }
}

/// Run a schedule; returns the first torn read, if any.
fn run(schedule: &[(bool, usize)], variant: Variant) -> Option<String> {
    let mut mem = Memory {
        generation: 0,
        len: [0, 0],
        buf: [[0; CAPACITY]; 2],
        published: vec![Vec::new()],
    };
    let mut writer = Writer {
        state: WriterState::Idle,
        next: 0,
    };
    let mut reader = ReaderState::Start;
    for &(writer_moves, choice) in schedule {
        if writer_moves {
            writer.step(&mut mem, variant, choice);
        } else if let Some((generation, content)) = reader_step(&mut reader, &mem) {
            let expected = &mem.published[generation as usize];
            if &content != expected {
                return Some(format!(
                    "generation {generation}: read {content:?}, published {expected:?}"
                ));
            }
        }
    }
    None
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn readers_only_ever_accept_whole_published_contents(
        schedule in proptest::collection::vec((any::<bool>(), 0usize..16), 1..300)
    ) {
        prop_assert_eq!(run(&schedule, Variant::Correct), None);
    }
}

#[test]
fn the_model_catches_a_writer_that_scribbles_on_the_active_buffer() {
    // A correct protocol never touches the buffer a reader copies until the
    // generation moves; the mutant does. Search schedules (deterministic
    // xorshift) until one shows a torn read.
    let mut rng = 1u64;
    let caught = (0..10_000).any(|_| {
        let schedule: Vec<(bool, usize)> = (0..60)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng & 1 == 0, (rng >> 8) as usize % 16)
            })
            .collect();
        run(&schedule, Variant::WritesActiveBuffer).is_some()
    });
    assert!(caught, "the model must be able to fail");
}
