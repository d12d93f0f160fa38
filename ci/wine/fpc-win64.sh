#!/usr/bin/env bash
# Compile Free Pascal programs for win64 (run under Wine by ci/windows.sh),
# or for win32 with FPC_WIN_ARCH=i386.
#   [FPC_WIN_ARCH=i386] ci/wine/fpc-win64.sh RTL_DIR OUT_DIR [FPC_OPTIONS...] PROGRAM.pas...
# Debian packages no Windows RTL, so the first run builds one from
# fpc-source-3.2.2 (ci/setup.sh installs it) into RTL_DIR, with FPC's own
# assembler and linker, in a few seconds; later runs reuse it (a stamp of
# the compiler's version and this script). Arguments starting with '-' are
# passed to every compile; each program's .exe goes to OUT_DIR. The win32
# compiler is ppc386 from Debian's fp-compiler:i386, unpacked by
# ci/wine/i386.sh (FPC_PPC386 names another).
set -euo pipefail
if (($# < 3)); then
    echo "usage: $0 RTL_DIR OUT_DIR [FPC_OPTIONS...] PROGRAM.pas..." >&2
    exit 2
fi
mkdir -p "$1" "$2"
rtl=$(cd "$1" && pwd) out=$(cd "$2" && pwd)
shift 2
case ${FPC_WIN_ARCH:-x86_64} in
x86_64) ppc=ppcx64 os=win64 cpu=x86_64 ;;
i386) ppc=${FPC_PPC386:-/opt/filemap-ci/i386/fpc/ppc386} os=win32 cpu=i386 ;;
*) echo "fpc-win64.sh: FPC_WIN_ARCH is x86_64 or i386, not $FPC_WIN_ARCH" >&2; exit 2 ;;
esac
version=$("$ppc" -iV 2>/dev/null) ||
    { echo "fpc-win64.sh: $ppc missing (run ci/setup.sh)" >&2; exit 1; }
src=/usr/share/fpcsrc/$version/rtl/$os
[[ -d $src ]] ||
    { echo "fpc-win64.sh: $src missing (install fpc-source-$version; ci/setup.sh does)" >&2; exit 1; }
units=$rtl/units/$cpu-$os/rtl
stamp=$rtl/.stamp
want="$version $cpu $(sha256sum <"${BASH_SOURCE[0]}" | cut -d' ' -f1)"
if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    t0=$SECONDS
    rm -rf "$units"
    mkdir -p "$units"
    build=$(mktemp -d)
    trap 'rm -rf "$build"' EXIT
    C=("$ppc" "-T$os" "-P$cpu" -n -O2 -Ur -Xs -Fi../inc "-Fi../$cpu" -Fi../win
        "-FE$units" "-FU$units" "-Fu$units")
    (
        cd "$src"
        "${C[@]}" -Us -Sg system.pp
        "${C[@]}" -I../objpas ../objpas/objpas.pp
        "${C[@]}" -Fi../objpas/sysutils -Fi../objpas/classes "-Fu../$cpu" -I../win -I../objpas \
            -I../win/wininc -Fu../win/wininc -Fu../win -I../inc -Fu../inc -Fu../objpas buildrtl.pp
        # {$mode delphiunicode} uses uuchar implicitly; buildrtl has it not.
        "${C[@]}" ../inc/uuchar.pp
    ) >"$build/log" 2>&1 || { cat "$build/log" >&2; exit 1; }
    echo "$want" >"$stamp"
    echo "fpc-win64.sh: $os RTL built in $((SECONDS - t0)) s" >&2
fi
opts=() programs=()
for arg in "$@"; do
    if [[ $arg == -* ]]; then opts+=("$arg"); else programs+=("$arg"); fi
done
mkdir -p "$out/units"
for program in "${programs[@]}"; do
    log=$("$ppc" "-T$os" "-P$cpu" -n "-Fu$units" -vw -Sew "-FE$out" "-FU$out/units" \
        "${opts[@]}" "$program" 2>&1) || { echo "$log" >&2; exit 1; }
done
