#!/usr/bin/env bash
# Compile Free Pascal programs for win64 (run under Wine by ci/windows.sh).
#   ci/wine/fpc-win64.sh RTL_DIR OUT_DIR [FPC_OPTIONS...] PROGRAM.pas...
# Debian packages no win64 RTL, so the first run builds one from
# fpc-source-3.2.2 (ci/setup.sh installs it) into RTL_DIR, with FPC's own
# assembler and linker, in a few seconds; later runs reuse it (a stamp of
# the compiler's version and this script). Arguments starting with '-' are
# passed to every compile; each program's .exe goes to OUT_DIR.
set -euo pipefail
if (($# < 3)); then
    echo "usage: $0 RTL_DIR OUT_DIR [FPC_OPTIONS...] PROGRAM.pas..." >&2
    exit 2
fi
mkdir -p "$1" "$2"
rtl=$(cd "$1" && pwd) out=$(cd "$2" && pwd)
shift 2
version=$(ppcx64 -iV 2>/dev/null) ||
    { echo "fpc-win64.sh: ppcx64 missing (run ci/setup.sh)" >&2; exit 1; }
src=/usr/share/fpcsrc/$version/rtl/win64
[[ -d $src ]] ||
    { echo "fpc-win64.sh: $src missing (install fpc-source-$version; ci/setup.sh does)" >&2; exit 1; }
units=$rtl/units/x86_64-win64/rtl
stamp=$rtl/.stamp
want="$version $(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    t0=$SECONDS
    rm -rf "$units"
    mkdir -p "$units"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    C=(ppcx64 -Twin64 -Px86_64 -n -O2 -Ur -Xs -Fi../inc -Fi../x86_64 -Fi../win
        "-FE$units" "-FU$units" "-Fu$units")
    (
        cd "$src"
        "${C[@]}" -Us -Sg system.pp
        "${C[@]}" -I../objpas ../objpas/objpas.pp
        "${C[@]}" -Fi../objpas/sysutils -Fi../objpas/classes -Fu../x86_64 -I../win -I../objpas \
            -I../win/wininc -Fu../win/wininc -Fu../win -I../inc -Fu../inc -Fu../objpas buildrtl.pp
        # {$mode delphiunicode} uses uuchar implicitly; buildrtl has it not.
        "${C[@]}" ../inc/uuchar.pp
    ) >"$build/log" 2>&1 || { cat "$build/log" >&2; exit 1; }
    echo "$want" >"$stamp"
    echo "fpc-win64.sh: win64 RTL built in $((SECONDS - t0)) s" >&2
fi
opts=() programs=()
for arg in "$@"; do
    if [[ $arg == -* ]]; then opts+=("$arg"); else programs+=("$arg"); fi
done
mkdir -p "$out/units"
for program in "${programs[@]}"; do
    log=$(ppcx64 -Twin64 -Px86_64 -n "-Fu$units" -vw -Sew "-FE$out" "-FU$out/units" \
        "${opts[@]}" "$program" 2>&1) || { echo "$log" >&2; exit 1; }
done
