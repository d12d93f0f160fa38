#!/usr/bin/env bash
# Formatting and lints, as CI checks them.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# No import cycle between source files, and the OS seam never reaches up
# into the public API (docs/architecture.md, "Layers").
python3 ci/layers.py filemap/src filemap-cli/src
