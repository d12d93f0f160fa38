"""Shared fixtures: unique region names (removed after each test), child
Python processes, and the Rust binaries the cross-language tests run."""

from __future__ import annotations

import itertools
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import filemap

REPO = Path(__file__).resolve().parents[2]
_counter = itertools.count()


@pytest.fixture
def name(request: pytest.FixtureRequest) -> Iterator[str]:
    """A region name no other test (or run) uses; the region is removed after."""
    test = request.node.name.replace("[", "-").replace("]", "")[:60]
    region = f"pytest-{os.getpid()}-{next(_counter)}-{test}"
    yield region
    try:
        filemap.remove(region)
    except filemap.NotFound:
        pass


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> object:
    """Poll ``condition`` until it is truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.005)


def python_child(code: str, *args: str, **kwargs: object) -> subprocess.Popen[str]:
    """Start ``python -c code args...`` with pipes, text mode."""
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


def thread_is_in_call(thread: threading.Thread, func: object, line: int) -> bool:
    """Whether ``thread`` is inside ``func`` (a function of its stack) at
    ``line`` and asleep there (its ``/proc`` task state is ``S``): blocked
    in the call on that line. A lock wait wakes every 5 ms, so poll this.
    Child scripts get it as source: ``inspect.getsource``."""
    frame = sys._current_frames().get(thread.ident)
    while frame is not None and frame.f_code is not func.__code__:  # type: ignore[attr-defined]
        frame = frame.f_back
    if frame is None or frame.f_lineno != line:
        return False
    with open(f"/proc/self/task/{thread.native_id}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0] == "S"


def read_line(proc: subprocess.Popen[str], timeout: float = 20.0) -> str:
    """One line of the child's stdout, or fail (with its stderr) on EOF."""
    line = proc.stdout.readline() if proc.stdout else ""
    if not line:
        proc.wait(timeout)
        err = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"child exited ({proc.returncode}) before printing a line:\n{err}")
    return line.rstrip("\n")


def _binary(env: str, relative: str) -> str:
    path = os.environ.get(env)
    if not path:
        for profile in ("debug", "release"):
            candidate = REPO / "target" / profile / relative
            if candidate.exists():
                path = str(candidate)
                break
    if not path or not shutil.which(path):
        message = f"{relative} not built (cargo build -p filemap-cli -p filemap --examples) and ${env} unset"
        if os.environ.get("FILEMAP_REQUIRE_BINARIES"):
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def cli() -> str:
    """The `filemap` CLI binary ($FILEMAP_CLI or target/*/filemap)."""
    return _binary("FILEMAP_CLI", "filemap")


@pytest.fixture(scope="session")
def rust_examples() -> tuple[str, str]:
    """The Rust example binaries (writer, reader) of the filemap crate."""
    return (
        _binary("FILEMAP_EXAMPLE_WRITER", "examples/writer"),
        _binary("FILEMAP_EXAMPLE_READER", "examples/reader"),
    )
