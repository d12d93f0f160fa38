#!/usr/bin/env bash
# The Python package (filemap-py): build one abi3 wheel, run the pytest
# suite against it, check it imports and round-trips in every CPython 3.11+
# on the machine, and check that `pip install ./filemap-py` works in a fresh
# virtual environment. Then the wheels users download: an abi3 manylinux_2_17
# wheel (zig links it against glibc 2.17's symbols; stripped), audited and
# tested with the whole suite in a fresh venv, and an abi3 Windows wheel
# (x86_64-pc-windows-gnu), built and inspected: no Windows CPython runs here.
# ci/setup.sh installs maturin, ziglang, pytest and pytest-timeout (pinned)
# into python3.
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
echo "--- the manylinux_2_17 abi3 wheel (zig, stripped), audited"
wheels_start=$SECONDS
"$python" -m maturin build --release --locked --strip --zig --compatibility manylinux_2_17 \
    -m filemap-py/Cargo.toml -i "$python" -o "$work/dist"
manylinux=$(ls "$work"/dist/filemap-*-cp311-abi3-manylinux_2_17_x86_64*.whl)
"$python" - "$manylinux" <<'PY'
import re, subprocess, sys, tempfile, zipfile
wheel = sys.argv[1]
with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
    tags = [l.split(": ", 1)[1] for l in z.read(next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))).decode().splitlines() if l.startswith("Tag: ")]
    assert "cp311-abi3-manylinux_2_17_x86_64" in tags, tags
    so = next(n for n in z.namelist() if n.endswith(".abi3.so"))
    path = z.extract(so, tmp)
    symbols = subprocess.run(["objdump", "-T", path], check=True, capture_output=True, text=True).stdout
    versions = {tuple(map(int, v.split("."))) for v in re.findall(r"GLIBC_([0-9.]+)", symbols)}
    highest = max(versions)
    assert highest <= (2, 17), f"{so} needs glibc {highest}, more than manylinux_2_17 allows"
    debug = subprocess.run(["objdump", "-h", path], check=True, capture_output=True, text=True).stdout
    assert ".debug_info" not in debug, f"{so} is not stripped"
    size = z.getinfo(so).file_size
print(f"{wheel.rsplit('/', 1)[1]}: tags {', '.join(tags)}; highest glibc symbol {'.'.join(map(str, highest))}; stripped, {size // 1024} KiB")
PY

echo "--- pytest against the manylinux wheel, installed in a fresh venv"
# pytest and its plugin come from the CI python (ci/setup.sh), filemap from
# the wheel: the venv's own site-packages go first, and the check says so.
"$python" -m venv --system-site-packages "$work/manylinux"
"$work/manylinux/bin/pip" install --quiet --no-index --no-deps "$manylinux"
(cd filemap-py && "$work/manylinux/bin/python" -c '
import filemap, sys
assert "/manylinux/" in filemap.__file__, filemap.__file__
import pytest
sys.exit(pytest.main(["-p", "no:cacheprovider", "-q", "tests"]))')

echo "--- the Windows abi3 wheel (x86_64-pc-windows-gnu): built and inspected, not run"
"$python" -m maturin build --release --locked --strip --target x86_64-pc-windows-gnu \
    -m filemap-py/Cargo.toml -i python3.11 -o "$work/dist"
windows=$(ls "$work"/dist/filemap-*-cp311-abi3-win_amd64.whl)
"$python" - "$windows" <<'PY'
import re, subprocess, sys, tempfile, zipfile
wheel = sys.argv[1]
# What Windows itself provides: the system DLLs, the C runtime msvcrt and the
# API sets; python3.dll is the stable ABI of any CPython 3.11+.
allowed = {"kernel32.dll", "ntdll.dll", "msvcrt.dll", "userenv.dll", "ws2_32.dll",
           "bcryptprimitives.dll", "advapi32.dll", "python3.dll"}
with zipfile.ZipFile(wheel) as z, tempfile.TemporaryDirectory() as tmp:
    tags = [l.split(": ", 1)[1] for l in z.read(next(n for n in z.namelist() if n.endswith(".dist-info/WHEEL"))).decode().splitlines() if l.startswith("Tag: ")]
    assert tags == ["cp311-abi3-win_amd64"], tags
    pyd = next(n for n in z.namelist() if n.endswith(".pyd"))
    path = z.extract(pyd, tmp)
    dump = subprocess.run(["x86_64-w64-mingw32-objdump", "-p", path], check=True, capture_output=True, text=True).stdout
    dlls = sorted({d.lower() for d in re.findall(r"DLL Name: (\S+)", dump)})
    assert "python3.dll" in dlls, dlls
    foreign = [d for d in dlls if d not in allowed and not d.startswith("api-ms-win-")]
    assert not foreign, f"{pyd} imports {foreign}: not on a plain Windows with CPython"
print(f"{wheel.rsplit('/', 1)[1]}: tags {', '.join(tags)}; imports {', '.join(dlls)}")
PY
echo "=== wheels took $((SECONDS - wheels_start)) s"
echo "=== python leg took $((SECONDS - start)) s"
