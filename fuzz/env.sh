# Sourced by ci/fuzz.sh and the campaign commands in docs/fuzzing.md: the
# flags that make `cargo build` produce libFuzzer binaries on stable Rust
# (SanitizerCoverage's counters, PC table and comparison tracing, the
# `fuzzing` cfg), into fuzz/target.
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 -Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table -Cllvm-args=-sanitizer-coverage-trace-compares --cfg fuzzing -Cdebug-assertions -Coverflow-checks"
export CARGO_TARGET_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/target"
# With an explicit --target, RUSTFLAGS reach the targets' code only, not
# build scripts and proc macros (which have no libFuzzer to link).
FUZZ_TRIPLE="$(rustc -vV | sed -n 's/^host: //p')"
export FUZZ_TRIPLE
export FUZZ_BIN="$CARGO_TARGET_DIR/$FUZZ_TRIPLE/release"
