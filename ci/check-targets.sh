#!/usr/bin/env bash
# Every target must type-check without warnings. Windows has a real backend
# (tested under Wine by ci/windows.sh), so it gets clippy on all targets, tests
# included; macOS and FreeBSD get the stub backend, whose calls return
# Error::Unsupported.
set -euo pipefail
echo "--- cargo clippy --target x86_64-pc-windows-gnu"
cargo clippy --locked -p filemap -p filemap-cli -p filemap-ffi --all-targets --target x86_64-pc-windows-gnu -- -D warnings
for target in x86_64-apple-darwin x86_64-unknown-freebsd; do
    echo "--- cargo check --target $target"
    RUSTFLAGS="-D warnings" cargo check --locked -p filemap -p filemap-cli -p filemap-ffi --target "$target"
done
