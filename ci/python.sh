#!/usr/bin/env bash
# The Python package (filemap-py): build one abi3 wheel, run the pytest
# suite against it, check it imports and round-trips in every CPython 3.11+
# on the machine, and check that `pip install ./filemap-py` works in a fresh
# virtual environment. ci/setup.sh installs maturin, pytest and
# pytest-timeout (pinned) into python3.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
start=$SECONDS

python=${PYTHON:-python3}
target_dir=$(cargo metadata --format-version 1 --no-deps --locked |
    sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
work=$target_dir/python-ci
rm -rf "$work"
mkdir -p "$work"

echo "--- Rust binaries the interop tests run (filemap CLI, examples)"
cargo build --locked -p filemap-cli --bins
cargo build --locked -p filemap --examples
export FILEMAP_CLI=$target_dir/debug/filemap
export FILEMAP_EXAMPLE_WRITER=$target_dir/debug/examples/writer
export FILEMAP_EXAMPLE_READER=$target_dir/debug/examples/reader
export FILEMAP_REQUIRE_BINARIES=1

echo "--- maturin build (one abi3 wheel)"
"$python" -m maturin build --release --locked -m filemap-py/Cargo.toml -i "$python" -o "$work/wheels"
wheel=$(ls "$work"/wheels/filemap-*-abi3-*.whl)

echo "--- pytest in a venv with the wheel"
"$python" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --quiet --no-index --no-deps "$wheel"
(cd filemap-py && "$work/venv/bin/python" -m pytest -p no:cacheprovider -q tests)

echo "--- the wheel in every CPython 3.11+ present"
# Each interpreter reads what the test interpreter wrote and answers.
roundtrip='
import sys, filemap
name, expected = sys.argv[1], sys.argv[2].encode()
with filemap.FileMap(name, create=False) as fm:
    assert fm.read().content == expected, fm.read()
    fm.write(b"answer from " + sys.version.split()[0].encode())
print("ok", sys.version.split()[0])
'
interpreters=()
for candidate in /root/.pyenv/versions/*/bin/python3 /usr/bin/python3 $(compgen -c python3. | grep -E '^python3\.[0-9]+$' | sort -u); do
    path=$(command -v "$candidate" || true)
    [[ -n $path ]] || continue
    # Version and real executable (pyenv shims and symlinks collapse).
    read -r version real < <("$path" -c 'import os, sys; print("%d.%d" % sys.version_info[:2], os.path.realpath(sys.executable))' 2>/dev/null) || continue
    [[ $version =~ ^3\.([0-9]+)$ ]] && ((BASH_REMATCH[1] >= 11)) || continue
    [[ " ${interpreters[*]} " == *" $real "* ]] || interpreters+=("$real")
done
name=ci-python-$$
for i in "${!interpreters[@]}"; do
    interpreter=${interpreters[$i]}
    venv=$work/venv-$i
    "$interpreter" -m venv "$venv"
    "$venv/bin/pip" install --quiet --no-index --no-deps "$wheel"
    "$work/venv/bin/python" - "$name" "$venv/bin/python" "$roundtrip" <<'PY'
import subprocess, sys, filemap
name, python, code = sys.argv[1:]
with filemap.FileMap(name) as fm:
    fm.write("question")
    out = subprocess.run([python, "-c", code, name, "question"], check=True, capture_output=True, text=True).stdout
    version = out.split()[1]
    assert fm.read().content == b"answer from " + version.encode(), fm.read()
    print("round trip with CPython", version, "ok")
PY
done
((${#interpreters[@]})) || { echo "python.sh: no CPython 3.11+ found" >&2; exit 1; }

echo "--- pip install ./filemap-py in a fresh venv (maturin as build backend)"
"$python" -m venv "$work/fresh"
"$work/fresh/bin/pip" install --quiet ./filemap-py
"$work/fresh/bin/python" -c '
import os, filemap
with filemap.FileMap(f"ci-fresh-{os.getpid()}") as fm:
    assert fm.read().content == b"" and fm.write("hi") == 1 and fm.read_text() == "hi"
print("fresh venv install ok")
'
echo "=== python leg took $((SECONDS - start)) s"
