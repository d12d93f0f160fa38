#!/usr/bin/env bash
# The README's test command, then the tests it leaves ignored because they
# need what CI has (Free Pascal, root, mount namespaces: ci/setup.sh installs
# the tools, CI runs as root), then the library suite again on the posix
# backend (the one macOS and FreeBSD use), selected on Linux by a feature.
#
# `--ignored` runs only ignored tests. Skipped there: every `child_role`,
# the entry point of child processes that the tests spawn themselves, and
# the keystroke latency measurement of filemap-cli's memo test.
set -euo pipefail
ignored=(--ignored --skip child_role --skip latency_keystroke_to_other_screen)
# Regions the tests leave behind are a defect of the tests: every region
# (/dev/shm/filemap.*, and fm.* of the posix backend) made during this
# step must be gone at its end.
regions() { find /dev/shm -maxdepth 1 \( -name 'filemap.*' -o -name 'fm.*' \) -printf '%f\n' | sort; }
before=$(regions)
cargo test --workspace --locked
cargo test --workspace --locked --tests -- "${ignored[@]}"
cargo test -p filemap --locked --features posix-backend
cargo test -p filemap --locked --features posix-backend --tests -- "${ignored[@]}"
# The library's seqlock (filemap/src/protocol/seqlock.rs) under loom, in a
# target directory of its own (other RUSTFLAGS would rebuild the main one).
RUSTFLAGS="--cfg loom" CARGO_TARGET_DIR=target/loom \
    cargo test -p filemap --locked --release --test model
leaked=$(comm -13 <(echo "$before") <(regions))
if [ -n "$leaked" ]; then
    echo "the tests left these regions in /dev/shm:" >&2
    echo "$leaked" >&2
    exit 1
fi
