#!/usr/bin/env bash
# The README's test command.
set -euo pipefail
# The Pascal tests of filemap-ffi fail instead of skipping when fpc is
# missing here (ci/setup.sh installs it).
export FILEMAP_REQUIRE_FPC=1
cargo test --workspace --locked
