#!/usr/bin/env bash
# Build the C library in release mode and install it under PREFIX
# (default /usr/local): lib/libfilemap_ffi.{so,a}, include/filemap.h and
# lib/pkgconfig/filemap.pc. Then: cc app.c $(pkg-config --cflags --libs filemap)
set -euo pipefail
prefix=${1:-/usr/local}
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$here/.."
cargo build --release --locked -p filemap-ffi
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
install -d "$prefix/lib/pkgconfig" "$prefix/include"
install -m 644 "$target_dir/release/libfilemap_ffi.so" "$target_dir/release/libfilemap_ffi.a" "$prefix/lib/"
install -m 644 "$here/include/filemap.h" "$prefix/include/"
sed -e "s|@prefix@|$prefix|" -e "s|@version@|$version|" "$here/filemap.pc.in" \
    >"$prefix/lib/pkgconfig/filemap.pc"
echo "installed filemap's C library under $prefix"
