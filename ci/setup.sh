#!/usr/bin/env bash
# Install what the checks and tests need on a fresh machine.
set -euo pipefail
rustup component add rustfmt clippy >/dev/null
# Standard-library sources for the targets we type-check but cannot test here.
rustup target add x86_64-apple-darwin x86_64-pc-windows-gnu x86_64-unknown-freebsd >/dev/null
# Tests run real processes and signal them with kill(1); tmux drives no test.
command -v kill >/dev/null
test -d /dev/shm
