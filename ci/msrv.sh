#!/usr/bin/env bash
# Each crate's declared `rust-version`, checked: the library and binaries of
# every workspace member build (`cargo check`: lib and bins, all features)
# with the oldest toolchain it claims. Members are grouped by the version they declare, read
# from cargo metadata, so a changed or new claim is checked without editing
# this script. Tests and benches are not checked: they build with the
# current toolchain only. Installs each toolchain (minimal profile) when it
# is missing; filemap-py's build (pyo3) needs a python3 on PATH.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS

# "VERSION PACKAGE PACKAGE..." per declared version, oldest first.
groups=$(cargo metadata --format-version 1 --no-deps --locked | python3 -c '
import json, sys
groups = {}
for p in json.load(sys.stdin)["packages"]:
    v = p.get("rust_version")
    if not v:
        name = p["name"]
        sys.exit(f"msrv.sh: {name} declares no rust-version")
    full = v if v.count(".") == 2 else v + ".0"
    groups.setdefault(full, []).append(p["name"])
for v in sorted(groups, key=lambda v: tuple(map(int, v.split(".")))):
    print(v, *sorted(groups[v]))
')

while read -r version packages; do
    read -ra packages <<<"$packages"
    echo "--- Rust $version: ${packages[*]}"
    if ! rustup run "$version" rustc --version >/dev/null 2>&1; then
        rustup toolchain install "$version" --profile minimal >/dev/null
    fi
    args=()
    for p in "${packages[@]}"; do args+=(-p "$p"); done
    # A target dir per toolchain: their artifacts cannot be shared.
    CARGO_TARGET_DIR=target/msrv-$version \
        cargo "+$version" check --locked --all-features "${args[@]}"
done <<<"$groups"
echo "=== msrv checks took $((SECONDS - start)) s"
