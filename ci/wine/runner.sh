#!/usr/bin/env bash
# Runs a Windows executable under Wine. Meant as cargo's runner:
#   CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER=/abs/path/ci/wine/runner.sh \
#       cargo test --target x86_64-pc-windows-gnu -p filemap
# (ci/windows.sh sets that up.) It also works by hand:
#   ci/wine/runner.sh target/x86_64-pc-windows-gnu/debug/deps/foo-HASH.exe
# With --prepare instead of a program it only makes the prefix and exits:
# ci/windows.sh does that before it starts the prefix's persistent
# wineserver, because making a prefix waits for its wineserver to exit.
#
# Before the first run it makes an isolated Wine prefix, by default
# <cargo target dir>/wine-prefix (override with FILEMAP_WINEPREFIX), so tests
# never touch ~/.wine and separate target dirs (worktrees, CI) do not share a
# wineserver. It installs the bcryptprimitives.dll stand-in there (see
# bcryptprimitives.c) and rebuilds it when its source changes. Then it execs
# wine64, whose exit status is the Windows program's (low 8 bits).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ $# -eq 0 ]]; then
    echo "usage: $0 PROGRAM.exe [ARGS...] | $0 --prepare" >&2
    exit 2
fi
prepare_only=false
if [[ $1 == --prepare ]]; then
    prepare_only=true
fi

# Debian installs wine64 outside PATH.
wine=$(command -v wine64 || true)
if [[ -z $wine && -x /usr/lib/wine/wine64 ]]; then
    wine=/usr/lib/wine/wine64
fi
if [[ -z $wine ]]; then
    echo "runner.sh: wine64 not found (run ci/setup.sh)" >&2
    exit 127
fi

# The prefix sits in the cargo target dir that built the program: cargo does
# not tell the runner that dir, so take it from CARGO_TARGET_DIR or from the
# program's path (<target dir>/x86_64-pc-windows-gnu/<profile>/...).
target_dir_of() {
    local dir
    dir=$(cd "$(dirname "$1")" && pwd)
    while [[ $dir != / ]]; do
        if [[ $(basename "$dir") == x86_64-pc-windows-gnu ]]; then
            dirname "$dir"
            return
        fi
        dir=$(dirname "$dir")
    done
    return 1
}
if [[ -n ${FILEMAP_WINEPREFIX:-} ]]; then
    prefix=$FILEMAP_WINEPREFIX
elif [[ -n ${CARGO_TARGET_DIR:-} ]]; then
    prefix=$CARGO_TARGET_DIR/wine-prefix
elif ! $prepare_only && target_dir=$(target_dir_of "$1"); then
    prefix=$target_dir/wine-prefix
else
    prefix=$(cd "$here/../.." && pwd)/target/wine-prefix
fi
# Wine insists on an absolute prefix path.
[[ $prefix == /* ]] || prefix=$PWD/$prefix
export WINEPREFIX=$prefix
# No Wine chatter in test output (set WINEDEBUG yourself to debug Wine).
export WINEDEBUG=${WINEDEBUG:--all}
# No Mono/Gecko installers at prefix creation, no desktop menu entries.
export WINEDLLOVERRIDES=${WINEDLLOVERRIDES:-mscoree,mshtml=;winemenubuilder.exe=d}
# 32-bit programs: Debian's wine64 runs them in Wine's WoW64 mode when the
# 32-bit Windows DLLs are on WINEDLLPATH (a dir holding i386-windows/;
# ci/wine/i386.sh fetches them) and the prefix has its syswow64 made from
# them. Programs started by a Wine process inherit WINEDLLPATH.
wine_i386=${FILEMAP_WINE_I386-/opt/filemap-ci/i386/wine}
if [[ -n $wine_i386 && -d $wine_i386/i386-windows ]]; then
    export WINEDLLPATH=$wine_i386${WINEDLLPATH:+:$WINEDLLPATH}
else
    wine_i386=
fi

src=("$here/bcryptprimitives.c" "$here/bcryptprimitives.def")
stamp=$prefix/.filemap-bcryptprimitives.sha256
dll=$prefix/drive_c/windows/system32/bcryptprimitives.dll
# This script holds the build flags, so its changes count as stale too; a
# prefix made without the 32-bit DLLs is stale once they are there.
want=$( (cat "${src[@]}" "${BASH_SOURCE[0]}"; echo "i386=$wine_i386") | sha256sum | cut -d' ' -f1)

ready() {
    [[ -f $dll && -f $stamp && $(cat "$stamp") == "$want" ]]
}

wineserver=$(dirname "$wine")/wineserver
[[ -x $wineserver ]] || wineserver=$(command -v wineserver)

# Fast path without the lock: the stamp is written last, after everything.
if ! ready; then
    mkdir -p "$(dirname "$prefix")"
    # Test binaries start in parallel: one makes the prefix, the others wait.
    exec 9>"$prefix.lock"
    flock 9
    if ! ready; then
        # `wineboot --update` does not add syswow64 to a prefix made
        # without the 32-bit DLLs: such a prefix is made again.
        if [[ -n $wine_i386 && -f $prefix/system.reg &&
            ! -f $prefix/drive_c/windows/syswow64/kernel32.dll ]]; then
            echo "runner.sh: making Wine prefix $prefix again, with 32-bit support" >&2
            "$wineserver" -k 2>/dev/null || true
            rm -rf "$prefix"
        fi
        if [[ ! -f $prefix/system.reg ]]; then
            echo "runner.sh: creating Wine prefix $prefix" >&2
            t0=$SECONDS
            "$wine" wineboot --init >/dev/null 2>&1
            echo "runner.sh: Wine prefix ready in $((SECONDS - t0)) s" >&2
        fi
        # No X display here: windows (the legacy gateway's and its test
        # peers' hidden top-level windows) need Wine's null graphics driver.
        "$wine" reg add 'HKCU\Software\Wine\Drivers' /v Graphics /d null /f >/dev/null 2>&1
        # wineboot and reg return before the registry is on disk: it is
        # written when the wineserver exits. So this waits for that exit,
        # and must not run under a persistent wineserver (ci/windows.sh
        # starts one only after --prepare).
        "$wineserver" -w
        tmp=$(mktemp "$dll.XXXXXX")
        # No CRT: the DLL needs nothing but kernel32 and advapi32.
        x86_64-w64-mingw32-gcc -shared -O2 -s -nostdlib -Wl,--entry,DllMain \
            -o "$tmp" "${src[@]}" -lkernel32 -ladvapi32
        chmod 644 "$tmp"
        mv -f "$tmp" "$dll"
        echo "$want" >"$stamp.tmp"
        mv -f "$stamp.tmp" "$stamp"
    fi
    exec 9>&-
fi
if $prepare_only; then
    exit 0
fi

exec "$wine" "$@"
