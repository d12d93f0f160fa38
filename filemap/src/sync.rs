//! The atomics the publish/read protocol (`protocol/seqlock.rs`) uses.
//!
//! The library takes `core`'s. `tests/model.rs` compiles `seqlock.rs`
//! itself beside a `sync` module of its own that re-exports loom's (under
//! `cfg(loom)`, loom being a dev-dependency), so the model checks the code
//! the library runs, not a copy of it.

#![forbid(unsafe_code)]

pub use core::sync::atomic::{fence, AtomicU64};
