#!/usr/bin/env bash
# What the packages ship: `cargo package --list` for each publishable crate
# and `maturin sdist` for the Python package must hold what a user needs
# (sources, README, examples of the library) and nothing else (no tests,
# benches or files of the repository that need the workspace). Then the
# library's package is built alone, as a user of the registry would
# (`cargo package -p filemap`, which compiles the unpacked crate).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS

# The files of a package, one per line, against allowed path patterns;
# fails naming a file that is not allowed or a required one missing.
check() {
    python3 -c '
import re, sys
what, allowed, required = sys.argv[1], sys.argv[2].split(), sys.argv[3].split()
files = [l.strip() for l in sys.stdin if l.strip()]
bad = [f for f in files if not any(re.fullmatch(p, f) for p in allowed)]
missing = [r for r in required if r not in files]
for f in bad:
    print(f"package.sh: {what} ships {f}, which users do not need", file=sys.stderr)
for r in missing:
    print(f"package.sh: {what} lacks {r}", file=sys.stderr)
print(f"{what}: {len(files)} files" + (" (wrong)" if bad or missing else " ok"))
sys.exit(1 if bad or missing else 0)
' "$@"
}

meta='\.cargo_vcs_info\.json|Cargo\.lock|Cargo\.toml|Cargo\.toml\.orig|README\.md'
list() { cargo package --locked --allow-dirty --list -p "$1" 2>/dev/null; }
list filemap | check filemap "$meta src/.*\.rs examples/.*\.rs" "README.md src/lib.rs"
list filemap-cli | check filemap-cli "$meta src/.*\.rs" "README.md src/main.rs"
list filemap-bridge | check filemap-bridge "$meta src/.*\.rs" "README.md src/lib.rs src/main.rs"
list filemap-legacy | check filemap-legacy "$meta src/.*\.rs" "README.md src/lib.rs"

sdist=$(mktemp -d)
trap 'rm -rf "$sdist"' EXIT
python3 -m maturin sdist -m filemap-py/Cargo.toml -o "$sdist" >/dev/null 2>&1 ||
    python3 -m maturin sdist -m filemap-py/Cargo.toml -o "$sdist"
tar tzf "$sdist"/filemap-*.tar.gz | sed 's|^[^/]*/||' | grep -v '/$' | grep . |
    check "filemap sdist" "PKG-INFO pyproject\.toml Cargo\.toml Cargo\.lock README\.md
        python/filemap/[^/]+\.(py|pyi|typed)
        filemap-py/(Cargo\.toml|README\.md|src/[^/]+\.rs)
        filemap/(Cargo\.toml|README\.md|src/.*\.rs|examples/[^/]+\.rs)
        filemap-testkit/(Cargo\.toml|src/[^/]+\.rs)" \
        "PKG-INFO pyproject.toml filemap-py/src/lib.rs python/filemap/__init__.py python/filemap/py.typed"
# The PyPI description is the package's README.
tar xzf "$sdist"/filemap-*.tar.gz -C "$sdist" --wildcards '*/PKG-INFO'
grep -q '^# filemap for Python' "$sdist"/filemap-*/PKG-INFO ||
    { echo "package.sh: the sdist's description is not filemap-py/README.md" >&2; exit 1; }

echo "--- cargo package -p filemap (builds the packaged crate alone)"
cargo package --locked --allow-dirty -p filemap >/dev/null 2>&1 ||
    cargo package --locked --allow-dirty -p filemap
echo "=== package checks took $((SECONDS - start)) s"
