#!/usr/bin/env bash
# Fetch what 32-bit legacy programs need under Wine, without adding the
# i386 architecture to the system (ci/setup.sh runs this; it needs root):
#   ci/wine/i386.sh [DIR]        (default /opt/filemap-ci/i386)
# - DIR/wine/i386-windows: the 32-bit Windows DLLs of Debian's libwine:i386,
#   the same version as the installed wine64. With them on WINEDLLPATH
#   (ci/wine/runner.sh), wine64 runs a 32-bit program in its WoW64 mode,
#   as 64-bit Windows runs it. `wine32:i386` itself is not installed: it
#   drags the i386 C library stack, whose versions must equal the host's,
#   and it cannot resolve on a host newer than the mirror's i386 indexes.
# - DIR/fpc/ppc386: Free Pascal's i386 compiler from fp-compiler:i386 (a
#   static binary), which builds win32 programs with the win32 RTL that
#   ci/wine/fpc-win64.sh builds from fpc-source.
# The two packages are downloaded with apt-get into a private apt state
# (lists and cache under a temporary dir, architecture i386, the system's
# sources) and unpacked with dpkg-deb; dpkg's database is not touched.
set -euo pipefail
dir=${1:-/opt/filemap-ci/i386}
wine_version=$(dpkg-query -W -f='${Version}' libwine:amd64) ||
    { echo "i386.sh: wine64 (libwine) is not installed" >&2; exit 1; }
fpc_version=$(dpkg-query -W -f='${Version}' fp-compiler-3.2.2:amd64) ||
    { echo "i386.sh: fp-compiler-3.2.2 is not installed" >&2; exit 1; }
want="libwine $wine_version fp-compiler-3.2.2 $fpc_version"
if [[ -f $dir/.stamp && $(cat "$dir/.stamp") == "$want" ]]; then
    exit 0
fi
t0=$SECONDS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
apt=(apt-get -q -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache" -o APT::Sandbox::User=root
    -o APT::Architecture=i386 -o APT::Architectures=i386)
# An index that fails to download (a mirror in mid-sync) is only fatal if
# it holds the packages wanted: the download below says so.
if ! "${apt[@]}" update >"$tmp/update.log" 2>&1; then
    echo "i386.sh: apt-get update (i386 only) reported, going on:" >&2
    grep -E '^(E|W):' "$tmp/update.log" >&2 || true
fi
(
    cd "$tmp"
    "${apt[@]}" download "libwine:i386=$wine_version" "fp-compiler-3.2.2:i386=$fpc_version"
) >"$tmp/download.log" 2>&1 ||
    { cat "$tmp/download.log" >&2; echo "i386.sh: cannot download the i386 packages" >&2; exit 1; }
rm -rf "$dir"
mkdir -p "$dir/wine" "$dir/fpc"
dpkg-deb --fsys-tarfile "$tmp"/libwine_*_i386.deb |
    tar -x -C "$tmp" --wildcards './usr/lib/i386-linux-gnu/wine/i386-windows/*'
mv "$tmp/usr/lib/i386-linux-gnu/wine/i386-windows" "$dir/wine/"
dpkg-deb --fsys-tarfile "$tmp"/fp-compiler-3.2.2_*_i386.deb |
    tar -x -C "$tmp" ./usr/lib/i386-linux-gnu/fpc/3.2.2/ppc386
mv "$tmp/usr/lib/i386-linux-gnu/fpc/3.2.2/ppc386" "$dir/fpc/"
echo "$want" >"$dir/.stamp"
echo "i386.sh: 32-bit Wine DLLs and ppc386 in $dir ($(du -sm "$dir" | cut -f1) MB) in $((SECONDS - t0)) s" >&2
