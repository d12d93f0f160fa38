#!/usr/bin/env bash
# The README's test command, then the library suite again on the posix
# backend (the one macOS and FreeBSD use), selected on Linux by a feature.
set -euo pipefail
# The Pascal tests of filemap-ffi fail instead of skipping when fpc is
# missing here (ci/setup.sh installs it).
export FILEMAP_REQUIRE_FPC=1
cargo test --workspace --locked
cargo test -p filemap --locked --features posix-backend
# The library's seqlock (filemap/src/protocol/seqlock.rs) under loom, in a
# target directory of its own (other RUSTFLAGS would rebuild the main one).
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p filemap --locked --release --test model
