#!/usr/bin/env bash
# Install what the checks and tests need on a fresh machine.
set -euo pipefail
rustup component add rustfmt clippy >/dev/null
# Standard-library sources for the targets we type-check but cannot test here.
rustup target add x86_64-apple-darwin aarch64-apple-darwin x86_64-pc-windows-gnu x86_64-unknown-freebsd >/dev/null
# aarch64 Linux, built and run under qemu-user (ci/aarch64.sh).
rustup target add aarch64-unknown-linux-gnu >/dev/null
# Tests run real processes and signal them with kill(1); tmux drives no test.
command -v kill >/dev/null
test -d /dev/shm
# The Windows leg (ci/windows.sh): mingw-w64 links the Windows test binaries
# and builds the bcryptprimitives.dll stand-in; Wine runs them.
missing=()
# filemap-ffi tests: g++ for the C++ test, pkg-config for filemap.pc, Free
# Pascal for bindings/pascal; fpc-source for the win64 RTL the Windows
# leg builds (ci/wine/fpc-win64.sh). openssl(1): filemap-bridge's TLS
# test makes its certificates with it. The aarch64 leg (ci/aarch64.sh):
# the cross linker and C library, and qemu-user to run the binaries.
for pkg in gcc-mingw-w64-x86-64 wine64 g++ pkg-config fp-compiler fp-units-rtl fpc-source-3.2.2 openssl \
    gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' ||
        missing+=("$pkg")
done
if ((${#missing[@]})); then
    sudo=()
    [[ $(id -u) == 0 ]] || sudo=(sudo)
    export DEBIAN_FRONTEND=noninteractive
    "${sudo[@]}" apt-get update -qq
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The Windows leg's 32-bit legacy programs: Wine's 32-bit DLLs and Free
# Pascal's i386 compiler, unpacked from Debian's i386 packages without
# adding that architecture (ci/wine/i386.sh says why); about 100 MB to
# download and 550 MB on disk, once.
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)
"${sudo[@]}" "$(dirname "${BASH_SOURCE[0]}")/wine/i386.sh"
# The Python package's build and tests (ci/python.sh): maturin builds the
# wheels (zig, from the ziglang package, links the manylinux one against
# glibc 2.17's symbols), pytest + pytest-timeout run the suite. Pinned; pip
# skips what is there.
python3 -m pip install --quiet --disable-pip-version-check \
    maturin==1.15.0 pytest==9.0.2 pytest-timeout==2.4.0 ziglang==0.13.0
