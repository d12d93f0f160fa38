#!/usr/bin/env bash
# Run one fuzz target: `fuzz/run.sh TARGET SECONDS [libFuzzer options...]`.
# New inputs go to fuzz/work/TARGET (not kept); the kept corpus
# fuzz/corpus/TARGET is read. Crashes land in fuzz/artifacts/TARGET/.
# SECONDS 0 replays the kept corpus only. Build first (ci/fuzz.sh does
# both). See docs/fuzzing.md.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$here/env.sh"
target=$1 seconds=$2
shift 2
case $target in
    region) max_len=8192 ;;
    value) max_len=4096 ;;
    bridge) max_len=2048 ;;
    ffi | cli) max_len=1024 ;;
    protocol) max_len=256 ;;
    *) echo "unknown target $target" >&2; exit 2 ;;
esac
opts=(-timeout=5 -rss_limit_mb=2048 -max_len=$max_len -print_final_stats=1
    -artifact_prefix="$here/artifacts/$target/")
[[ -f $here/dict/$target.dict ]] && opts+=(-dict="$here/dict/$target.dict")
mkdir -p "$here/artifacts/$target" "$here/work/$target"
if ((seconds == 0)); then
    exec "$FUZZ_BIN/$target" "${opts[@]}" -runs=0 "$@" "$here/corpus/$target"
fi
exec "$FUZZ_BIN/$target" "${opts[@]}" -max_total_time="$seconds" "$@" \
    "$here/work/$target" "$here/corpus/$target"
