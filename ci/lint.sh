#!/usr/bin/env bash
# Formatting and lints, as CI checks them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# No import cycle between source files, and the OS seam never reaches up
# into the public API (docs/architecture.md, "Layers").
python3 ci/layers.py filemap/src filemap-cli/src
# API docs: every public item documented (`missing_docs`), no broken
# intra-doc link, every feature (docs.rs builds with all of them).
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --locked --all-features \
    -p filemap -p filemap-ffi -p filemap-bridge -p filemap-testkit
# Every relative link and #anchor of the documentation resolves.
python3 ci/links.py
# What the packages ship (cargo package --list, maturin sdist).
ci/package.sh
