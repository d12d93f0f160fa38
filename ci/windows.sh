#!/usr/bin/env bash
# The Windows leg: cross-build the tests for x86_64-pc-windows-gnu and run them
# under Wine through ci/wine/runner.sh. ci/setup.sh installs Wine, mingw-w64
# and the Rust target; this script installs nothing.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# What runs on Windows: one `cargo test` per entry, the words after
# `cargo test --locked --target x86_64-pc-windows-gnu --no-fail-fast`
# (harness options go after `--`): every test target of the library and
# the CLI (the Linux-only ones are gated with cfg inside). Arguments given to
# this script replace the list for one run: ci/windows.sh -p filemap --test crash
TESTS=(
    "-p filemap -p filemap-cli -p filemap-legacy --tests"
    "-p filemap-ffi --test boundary --test c_windows"
    "-p filemap-ffi --test pascal -- --ignored --skip child_role"
)
if (($#)); then
    TESTS=("$*")
fi
# A hung test under Wine must not eat CI's whole time budget (seconds, per entry).
TIMEOUT=${WINDOWS_TEST_TIMEOUT:-1200}

start=$SECONDS
target=x86_64-pc-windows-gnu

# Fail early and clearly when the setup step did not run.
command -v x86_64-w64-mingw32-gcc >/dev/null ||
    { echo "windows.sh: mingw-w64 missing (run ci/setup.sh)" >&2; exit 1; }
wineserver=$(command -v wineserver || echo /usr/lib/wine/wineserver)
[[ -x $wineserver ]] ||
    { echo "windows.sh: Wine missing (run ci/setup.sh)" >&2; exit 1; }
# 32-bit programs run in Wine's WoW64 mode with these DLLs (runner.sh).
wine_i386=${FILEMAP_WINE_I386-/opt/filemap-ci/i386/wine}
[[ -d $wine_i386/i386-windows ]] ||
    { echo "windows.sh: Wine's 32-bit DLLs missing in $wine_i386 (run ci/setup.sh)" >&2; exit 1; }

# One prefix per target dir, shared by the runner and the clean-up below.
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
export FILEMAP_WINEPREFIX=${FILEMAP_WINEPREFIX:-$target_dir/wine-prefix}
export CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=$PWD/ci/wine/runner.sh

# The leg's persistent wineserver (below) and any Wine processes a
# timed-out test leaves behind: stop them all, whatever the outcome.
stop_wine() {
    if [[ -d $FILEMAP_WINEPREFIX ]]; then
        WINEPREFIX=$FILEMAP_WINEPREFIX "$wineserver" -k 2>/dev/null || true
    fi
    echo "=== windows leg took $((SECONDS - start)) s"
}
trap stop_wine EXIT

# One wineserver for the whole leg. Left to itself, Wine starts a server
# per test binary that begins shutting down as soon as its last program
# exits (Debian's wineserver runs with -p0): a binary that cargo starts in
# that instant connects while the server closes its socket, and dies with
# "wine client error:0: recvmsg: Connection reset by peer" before any test
# runs. A persistent server never closes it. Making the prefix waits for
# its wineserver to exit, so the prefix comes first (runner.sh --prepare);
# a server left over from a killed run of this target dir is ended first,
# or ours could not take the prefix.
if [[ -d $FILEMAP_WINEPREFIX ]]; then
    WINEPREFIX=$FILEMAP_WINEPREFIX "$wineserver" -k 2>/dev/null || true
    WINEPREFIX=$FILEMAP_WINEPREFIX "$wineserver" -w
fi
ci/wine/runner.sh --prepare
# Its output goes nowhere so that it never holds this script's pipes open.
status=0
WINEPREFIX=$FILEMAP_WINEPREFIX "$wineserver" --persistent </dev/null >/dev/null 2>&1 || status=$?
if ((status)); then
    echo "windows.sh: no persistent wineserver for $FILEMAP_WINEPREFIX" \
        "(wineserver exited with $status; 2: another one holds the prefix)" >&2
    exit 1
fi

# The C example pair for filemap-ffi's Windows test: filemap_ffi.dll, and
# writer.exe/reader.exe linked against it with mingw (tests/c_windows.rs).
ffi_bin=$target_dir/$target/debug/ffi-c
cargo build --locked --target "$target" -p filemap-ffi
mkdir -p "$ffi_bin"
for program in writer reader; do
    x86_64-w64-mingw32-gcc -std=c11 -Wall -Wextra -Werror -pedantic -D__USE_MINGW_ANSI_STDIO=1 \
        -I filemap-ffi/include "filemap-ffi/examples/c/$program.c" \
        -L "$target_dir/$target/debug" -lfilemap_ffi -o "$ffi_bin/$program.exe"
done
cp "$target_dir/$target/debug/filemap_ffi.dll" "$ffi_bin/"
export FILEMAP_FFI_C_BIN=$ffi_bin

# Free Pascal programs for win64, with a win64 RTL built from fpc-source
# once and kept in the target dir (ci/wine/fpc-win64.sh): the legacy
# TFileMap peer of filemap-cli's tests/legacy.rs and of the memo's unit
# test next to a legacy program (src/command/memo/app.rs), and the Pascal unit's
# test programs (filemap-ffi's tests/pascal.rs) linked against
# filemap_ffi.dll. The unit must also compile in FPC's Delphi dialects.
# The CLI is built first: the Pascal tests run it and cannot build it.
fpc_rtl=$target_dir/fpc-win64
fpc_bin=$target_dir/$target/debug/fpc
cargo build --locked --target "$target" -p filemap-cli
ci/wine/fpc-win64.sh "$fpc_rtl" "$fpc_bin" filemap-legacy/tests/peer/legacypeer.pas
export FILEMAP_LEGACY_PEER=$fpc_bin/legacypeer.exe
# The same peer as a 32-bit program, as most Delphi programs are.
FPC_WIN_ARCH=i386 ci/wine/fpc-win64.sh "$target_dir/fpc-win32" "$fpc_bin/win32" \
    filemap-legacy/tests/peer/legacypeer.pas
export FILEMAP_LEGACY_PEER32=$fpc_bin/win32/legacypeer.exe
pascal_bin=$ffi_bin/pascal
ci/wine/fpc-win64.sh "$fpc_rtl" "$pascal_bin" -Fubindings/pascal \
    bindings/pascal/tests/fmtest.pas bindings/pascal/tests/fmgui.pas bindings/pascal/memo.pas
cp "$target_dir/$target/debug/filemap_ffi.dll" "$pascal_bin/"
export FILEMAP_PASCAL_BIN=$pascal_bin
# delphiunicode mode warns where FPC 3.2's ANSI RTL (Exception, Format,
# TStrings) meets UnicodeString, so -Sew is not asked of it.
for mode in FILEMAP_MODE_DELPHI FILEMAP_MODE_DELPHIUNICODE; do
    out=$fpc_bin/$mode
    mkdir -p "$out"
    ppcx64 -Twin64 -Px86_64 -n "-Fu$fpc_rtl/units/x86_64-win64/rtl" "-d$mode" \
        "-FU$out" "-FE$out" bindings/pascal/filemap.pas >"$out/log" 2>&1 ||
        { cat "$out/log" >&2; echo "windows.sh: filemap.pas does not compile with -d$mode" >&2; exit 1; }
done

for entry in "${TESTS[@]}"; do
    read -ra args <<<"$entry"
    echo "--- cargo test --target $target $entry"
    timeout --kill-after=30 "$TIMEOUT" \
        cargo test --locked --target "$target" --no-fail-fast "${args[@]}"
done
