#!/usr/bin/env bash
# Formatting and lints, as CI checks them.
set -euo pipefail
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
