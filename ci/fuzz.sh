#!/usr/bin/env bash
# The short fuzzing campaign: check the fuzz crate's formatting and
# lints, build the fuzz targets (fuzz/, libFuzzer on stable Rust), replay
# each target's kept corpus, then fuzz each for
# FUZZ_SECONDS (default 15) from it, so a change that breaks a decoder or
# an invariant fails CI. The long campaign is in docs/fuzzing.md.
# Needs root (or `unshare -rm`): the targets give themselves a private
# /dev/shm so that listing and cleaning regions touches nobody else's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source fuzz/env.sh
seconds=${FUZZ_SECONDS:-15}
start=$SECONDS
(cd fuzz && cargo fmt --check)
(cd fuzz && cargo build --release --locked --target "$FUZZ_TRIPLE" --bins --quiet)
# Lints here rather than in ci/lint.sh (whose clippy never sees this
# workspace): with the build's flags, target and profile, clippy reuses
# the build scripts' output, libFuzzer's C++ above all.
(cd fuzz && cargo clippy --release --locked --target "$FUZZ_TRIPLE" --all-targets --quiet -- -D warnings)
echo "fuzz targets built and linted in $((SECONDS - start)) s"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
failed=0
for target in region value bridge ffi cli protocol; do
    for phase in 0 "$seconds"; do
        what=$([[ $phase == 0 ]] && echo "corpus replay" || echo "${seconds} s")
        if fuzz/run.sh "$target" "$phase" >"$log" 2>&1; then
            stats=$(grep -E '^#[0-9]+[[:space:]]+DONE' "$log" | tail -1 | sed 's/ *lim:.*//; s/DONE *//')
            echo "fuzz $target ($what): ok, $stats"
        else
            echo "fuzz $target ($what): FAILED"
            grep -v -E '^#[0-9]+[[:space:]]+(NEW|REDUCE|pulse)' "$log" | tail -60
            failed=1
        fi
    done
done
# Inputs found here are not kept (fuzz/work is scratch).
rm -rf fuzz/work
echo "fuzzing took $((SECONDS - start)) s"
exit $failed
