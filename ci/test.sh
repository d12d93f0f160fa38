#!/usr/bin/env bash
# The README's test command, then the library suite again on the posix
# backend (the one macOS and FreeBSD use), selected on Linux by a feature.
set -euo pipefail
cargo test --workspace --locked
cargo test -p filemap --locked --features posix-backend
