"""Python against the Rust side: the `filemap` CLI and the Rust example
pair, both directions, and the Python example pair of the README."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

import filemap
from conftest import REPO, read_line

PY_EXAMPLES = REPO / "examples" / "python"


def _start(cmd: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def test_cli_writes_python_reads(name: str, cli: str) -> None:
    with filemap.FileMap(name, 256) as fm:
        seen = fm.generation
        subprocess.run([cli, "write", name, "from the CLI"], check=True, timeout=30)
        assert fm.wait_change(seen, timeout=10) == seen + 1
        snap = fm.read()
        assert snap.content == b"from the CLI"
        assert snap.writer_pid != os.getpid()


def test_python_writes_cli_reads_and_watches(name: str, cli: str) -> None:
    with filemap.FileMap(name, 256) as fm:
        generation = fm.write("from Python é")
        out = subprocess.run(
            [cli, "read", "--json", name], check=True, capture_output=True, text=True, timeout=30
        ).stdout
        record = json.loads(out)
        assert record["content"] == "from Python é"
        assert record["generation"] == generation
        assert record["writer_pid"] == os.getpid()

        watcher = _start([cli, "watch", "--json", name])
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in watcher.stdout], daemon=True).start()  # type: ignore[union-attr]
        try:
            # The watcher prints changes after the one it starts at: publish
            # until it reports one (it may attach between two publishes).
            line = None
            deadline = time.monotonic() + 20
            while line is None and time.monotonic() < deadline:
                fm.write(f"watched {time.monotonic()}")
                try:
                    line = lines.get(timeout=0.2)
                except queue.Empty:
                    pass
            assert line is not None, "the CLI watcher printed nothing"
            record = json.loads(line)
            assert record["content"].startswith("watched ")
            assert record["writer_pid"] == os.getpid()
        finally:
            watcher.kill()
            watcher.wait(10)


def test_rust_writer_python_reader(name: str, rust_examples: tuple[str, str]) -> None:
    writer_bin, _ = rust_examples
    reader = _start([sys.executable, str(PY_EXAMPLES / "reader.py"), name, "2"])
    assert read_line(reader) == "ready"
    writer = _start([writer_bin, name])
    try:
        writer.stdin.write("first line\n")  # type: ignore[union-attr]
        writer.stdin.flush()  # type: ignore[union-attr]
        assert read_line(writer) == "published generation 1"
        line = read_line(reader)
        assert line == f"generation 1 from pid {writer.pid}: first line"
        writer.stdin.write("second\n")  # type: ignore[union-attr]
        writer.stdin.close()  # type: ignore[union-attr]
        assert read_line(reader) == f"generation 2 from pid {writer.pid}: second"
        assert reader.wait(30) == 0
        assert writer.wait(30) == 0
    finally:
        for p in (reader, writer):
            if p.poll() is None:
                p.kill()
            p.wait(10)


def test_python_writer_rust_reader(name: str, rust_examples: tuple[str, str]) -> None:
    _, reader_bin = rust_examples
    reader = _start([reader_bin, name, "2"])
    assert read_line(reader) == "ready"
    writer = _start([sys.executable, str(PY_EXAMPLES / "writer.py"), name])
    try:
        writer.stdin.write("hello from Python\n")  # type: ignore[union-attr]
        writer.stdin.flush()  # type: ignore[union-attr]
        assert read_line(writer) == "published generation 1"
        assert read_line(reader) == f"generation 1 from pid {writer.pid}: hello from Python"
        writer.stdin.write("bye\n")  # type: ignore[union-attr]
        writer.stdin.close()  # type: ignore[union-attr]
        assert read_line(reader) == f"generation 2 from pid {writer.pid}: bye"
        assert reader.wait(30) == 0
        assert writer.wait(30) == 0
    finally:
        for p in (reader, writer):
            if p.poll() is None:
                p.kill()
            p.wait(10)


def test_python_example_pair(name: str) -> None:
    reader = _start([sys.executable, str(PY_EXAMPLES / "reader.py"), name, "1"])
    assert read_line(reader) == "ready"
    writer = _start([sys.executable, str(PY_EXAMPLES / "writer.py"), name])
    out, err = writer.communicate("typed line\n", timeout=30)
    assert writer.returncode == 0, err
    assert out == "published generation 1\n"
    assert read_line(reader) == f"generation 1 from pid {writer.pid}: typed line"
    assert reader.wait(30) == 0
