#!/usr/bin/env bash
# Every target must type-check without warnings. Windows has a real backend
# (tested under Wine by ci/windows.sh); macOS and FreeBSD have the real posix
# backend (its shared logic is tested on Linux by ci/test.sh through the
# `posix-backend` feature; the macOS and FreeBSD system calls themselves are
# only type-checked and linted here, never run). All get clippy on all
# targets, tests included.
set -euo pipefail
echo "--- cargo clippy --target x86_64-pc-windows-gnu"
cargo clippy --locked -p filemap -p filemap-cli -p filemap-ffi --all-targets --target x86_64-pc-windows-gnu -- -D warnings
for target in x86_64-apple-darwin aarch64-apple-darwin x86_64-unknown-freebsd; do
    echo "--- cargo clippy -p filemap --target $target"
    cargo clippy --locked -p filemap --all-targets --target "$target" -- -D warnings
done
# The CLI and the C library type-check there too.
for target in x86_64-apple-darwin x86_64-unknown-freebsd; do
    echo "--- cargo check -p filemap-cli -p filemap-ffi --target $target"
    RUSTFLAGS="-D warnings" cargo check --locked -p filemap-cli -p filemap-ffi --target "$target"
done
