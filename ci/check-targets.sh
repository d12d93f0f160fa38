#!/usr/bin/env bash
# The library and CLI must type-check on platforms without a backend yet
# (they get the stub backend, whose calls return Error::Unsupported).
set -euo pipefail
for target in x86_64-apple-darwin x86_64-pc-windows-gnu x86_64-unknown-freebsd; do
    echo "--- cargo check --target $target"
    RUSTFLAGS="-D warnings" cargo check --locked -p filemap -p filemap-cli --target "$target"
done
