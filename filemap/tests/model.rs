//! A model of the publish/read protocol, checked under random
//! interleavings with proptest.
//!
//! The model mirrors `region.rs` step by step: a writer marks buffer
//! `(generation + 1) & 1` as being written (`seq = WRITING`), copies its
//! content into it, stores the length and `seq = next`, then bumps the
//! generation; a reader loads the generation, then the `seq` of buffer
//! `generation & 1` (retrying unless it equals the generation), the length,
//! copies byte by byte, and accepts the copy only if that buffer's `seq`
//! did not move. Every interleaving of those steps must give readers
//! either a complete published content or a retry, never a mix. Mutants
//! that write into the active buffer, or that skip the mark, must be
//! caught, so the model is shown to be able to fail.
//!
//! Under `cfg(loom)` (`RUSTFLAGS="--cfg loom" cargo test -p filemap --test
//! model --release`, run by `ci/test.sh`), this file also compiles the
//! library's own seqlock, `src/protocol/seqlock.rs`, against loom's atomics
//! and checks it, fences included, under every interleaving loom explores
//! (within its preemption bound): a reader accepts only whole published
//! contents, with the generation that published them. A buffer layer that
//! writes into the active buffer must be caught there too. A second loom
//! check mixes small contents (kept in the buffers' lines and published
//! without the mark, validated by the generation) with a larger one that
//! a small publish overwrites while a reader copies it; dropping either
//! validation, or storing the writer id without release, fails it.

use proptest::prelude::*;

const CAPACITY: usize = 6;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Variant {
    Correct,
    /// Broken on purpose: writes into the buffer readers are reading,
    /// unmarked (a marked one is caught by the readers' `seq` check).
    WritesActiveBuffer,
    /// Broken on purpose: does not mark the buffer before copying into it.
    NoMark,
}

/// `seq` of a buffer being written.
const WRITING: u64 = u64::MAX;

struct Memory {
    generation: u64,
    seq: [u64; 2],
    len: [usize; 2],
    buf: [[u8; CAPACITY]; 2],
    /// What each generation published, for the oracle.
    published: Vec<Vec<u8>>,
}

enum WriterState {
    Idle,
    Marking {
        content: Vec<u8>,
        index: usize,
    },
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
    Loaded {
        generation: u64,
    },
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
                    Variant::Correct | Variant::NoMark => ((mem.generation + 1) & 1) as usize,
                    Variant::WritesActiveBuffer => (mem.generation & 1) as usize,
                };
                WriterState::Marking { content, index }
            }
            WriterState::Marking { content, index } => {
                if variant == Variant::Correct {
                    mem.seq[index] = WRITING;
                }
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
                mem.seq[index] = mem.generation + 1;
                WriterState::Publishing { content, index }
            }
            WriterState::Publishing { content, index } => {
                // The flip: with the correct variant the new generation's
                // parity selects the buffer just written.
                mem.generation += 1;
                if variant == Variant::WritesActiveBuffer {
                    mem.seq[(mem.generation & 1) as usize] = mem.generation;
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
            *state = ReaderState::Loaded {
                generation: mem.generation,
            };
            None
        }
        ReaderState::Loaded { generation } => {
            let index = (generation & 1) as usize;
            if mem.seq[index] != generation {
                return None; // a later publish is writing it: retry
            }
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
            generation,
            index,
            got,
            ..
        } => {
            // Re-check: accept only if the buffer was not rewritten meanwhile.
            (mem.seq[index] == generation).then_some((generation, got))
        }
    }
}

/// Run a schedule; returns the first torn read, if any.
fn run(schedule: &[(bool, usize)], variant: Variant) -> Option<String> {
    let mut mem = Memory {
        generation: 0,
        seq: [0, 0],
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

/// Search schedules (deterministic xorshift) until one shows a torn read.
fn catches(variant: Variant) -> bool {
    let mut rng = 1u64;
    (0..10_000).any(|_| {
        let schedule: Vec<(bool, usize)> = (0..60)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                (rng & 1 == 0, (rng >> 8) as usize % 16)
            })
            .collect();
        run(&schedule, variant).is_some()
    })
}

#[test]
fn the_model_catches_a_writer_that_scribbles_on_the_active_buffer() {
    // A correct protocol never touches the buffer a reader copies until the
    // generation moves; the mutant does.
    assert!(
        catches(Variant::WritesActiveBuffer),
        "the model must be able to fail"
    );
}

#[test]
fn the_model_catches_a_writer_that_does_not_mark_its_buffer() {
    // Without the mark, a reader of generation g that is still copying
    // when the publish of g + 2 rewrites its buffer would accept a mix.
    assert!(catches(Variant::NoMark), "the mark must matter");
}

/// The atomics `seqlock.rs` takes from `crate::sync`: loom's.
#[cfg(loom)]
mod sync {
    pub use loom::sync::atomic::{fence, AtomicU64};
}

/// The library's seqlock itself, not a copy.
#[cfg(loom)]
#[path = "../src/protocol/seqlock.rs"]
#[allow(dead_code)]
mod seqlock;

#[cfg(loom)]
mod loom_model {
    use super::seqlock::{self, Buffers, Line};
    use loom::sync::atomic::AtomicU8;
    use loom::sync::Arc;
    use std::sync::atomic::Ordering::Relaxed;

    /// Bytes per buffer: enough for a copy to be torn.
    const CAP: usize = 2;

    /// Two buffers of loom atomics, copied with relaxed accesses (as the
    /// library's racy copies are); `mutant` writes into the other buffer
    /// (the one readers are reading). With `small`, contents of one byte
    /// live in the buffers' lines (published without the mark, as the
    /// library does with contents of up to 40 bytes) and two-byte ones in
    /// the buffers; otherwise every content goes through the buffers.
    struct Region {
        line: Line,
        bytes: [[AtomicU8; CAP]; 2],
        mutant: bool,
        small: bool,
    }

    impl Buffers for Region {
        fn capacity(&self) -> usize {
            CAP
        }

        fn inline_max(&self) -> usize {
            usize::from(self.small)
        }

        fn load(&self, index: usize, offset: usize, out: &mut [std::mem::MaybeUninit<u8>]) {
            let len = out.len();
            for (slot, byte) in out.iter_mut().zip(&self.bytes[index][offset..offset + len]) {
                slot.write(byte.load(Relaxed));
            }
        }

        fn store(&self, index: usize, offset: usize, bytes: &[u8]) {
            let index = if self.mutant { index ^ 1 } else { index };
            for (i, b) in bytes.iter().enumerate() {
                self.bytes[index][offset + i].store(*b, Relaxed);
            }
        }
    }

    fn region(mutant: bool, small: bool) -> Region {
        Region {
            line: Line::new(),
            bytes: [
                [AtomicU8::new(0), AtomicU8::new(0)],
                [AtomicU8::new(0), AtomicU8::new(0)],
            ],
            mutant,
            small,
        }
    }

    /// What generation `n` publishes: [1, 1] then [2, 2] (the second
    /// rewrites the buffer a reader of generation 0 may still be copying);
    /// with `small`, [1, 1] in buffer 1, then [2] and [3] in the buffers'
    /// lines, the last over buffer 1's two-byte content, which a reader of
    /// generation 1 may still be copying.
    fn content(n: u64, small: bool) -> Vec<u8> {
        match (n, small) {
            (0, _) => Vec::new(),
            (1, true) => vec![1, 1],
            (n, true) => vec![n as u8],
            (n, false) => vec![n as u8; CAP],
        }
    }

    /// A writer publishes the contents above while a reader reads once:
    /// whatever it accepts is a whole published content, with its
    /// generation and writer.
    fn check(mutant: bool, small: bool) {
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(move || {
            let region = Arc::new(region(mutant, small));
            let writer = {
                let region = Arc::clone(&region);
                loom::thread::spawn(move || {
                    for n in 1..=if small { 3 } else { 2 } {
                        let bytes = content(n, small);
                        let (next, index) = seqlock::begin_publish(&region.line);
                        seqlock::store(&region.line, &*region, index, &bytes);
                        seqlock::finish_publish(&region.line, next, index, bytes.len(), n);
                    }
                })
            };
            let mut out = Vec::new();
            if let Some((generation, writer, _len)) =
                seqlock::try_read(&region.line, &*region, &mut out).unwrap()
            {
                assert_eq!(out, content(generation, small), "generation {generation}");
                assert_eq!(writer, generation, "the writer of generation {generation}");
            }
            writer.join().unwrap();
        });
    }

    #[test]
    fn readers_accept_only_whole_published_contents_under_loom() {
        check(false, false);
    }

    #[test]
    fn readers_accept_only_whole_small_contents_kept_in_the_buffer_lines_under_loom() {
        check(false, true);
    }

    #[test]
    fn loom_catches_a_writer_that_scribbles_on_the_active_buffer() {
        let caught = std::panic::catch_unwind(|| check(true, false)).is_err();
        assert!(caught, "the loom model must be able to fail");
    }
}
