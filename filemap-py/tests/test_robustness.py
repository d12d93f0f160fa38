"""Hardening: calls that must let other Python threads run, what a released
lock keeps, and timeouts at the edges of what a number can say."""

from __future__ import annotations

import math
import os
import sys
import threading
from collections.abc import Callable, Iterator

import pytest

import filemap

BIG = 32 << 20  # long enough a copy for a waiting thread to get the GIL


@pytest.fixture
def no_forced_switches() -> Iterator[None]:
    """No GIL hand-over forced by the interpreter during the test: another
    thread runs only while this one releases the GIL itself."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(60)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


def releases_gil(call: Callable[[], object], tries: int = 50) -> bool:
    """Whether ``call`` lets another thread run Python code while it runs.

    Another thread is made ready to take the GIL, then ``call`` runs between
    two flag changes: the thread sees the flag set only if ``call`` released
    the GIL (the interpreter forces no switch: ``no_forced_switches``).
    On a loaded machine a try can miss a release (the thread found no CPU
    during the call); the first try that sees one ends the probe, so many
    tries cost nothing when the call does release the GIL.
    """
    for _ in range(tries):
        go = threading.Event()
        state = {"inside": False, "seen": False}

        def other() -> None:
            go.wait()
            state["seen"] = state["inside"]

        t = threading.Thread(target=other)
        t.start()
        go.set()
        state["inside"] = True
        call()
        state["inside"] = False
        t.join()
        if state["seen"]:
            return True
    return False


@pytest.mark.usefixtures("no_forced_switches")
def test_the_gil_probe_tells_a_release_from_none(name: str) -> None:
    with filemap.FileMap(name, BIG) as fm:
        assert releases_gil(lambda: fm.write(bytes(BIG)))
    assert not releases_gil(lambda: sum(range(100_000)), tries=2)


@pytest.mark.usefixtures("no_forced_switches")
def test_lock_publish_and_read_release_the_gil(name: str) -> None:
    data = b"p" * BIG
    with filemap.FileMap(name, BIG) as fm, fm.lock() as lk:
        lk.publish(b"warm up")
        lk.read()
        assert releases_gil(lambda: lk.publish(data))
        assert releases_gil(lambda: lk.read())
        assert lk.read().content == data


def test_a_released_lock_lets_go_of_the_region(name: str) -> None:
    fm = filemap.FileMap(name)
    path = fm.path
    with fm.lock() as lk:
        lk.publish(b"under the lock")
    assert not lk.locked
    fm.close()
    # The last handle closed: the region is gone, though `lk` lives on.
    assert not os.path.exists(path)
    for call in (lk.read, lk.unlock, lambda: lk.publish(b"x")):
        with pytest.raises(filemap.NotLocked):
            call()
    assert "released" in repr(lk)

    fm = filemap.FileMap(name)
    lk = fm.lock()
    assert lk.locked
    lk.unlock()
    fm.close()
    assert not os.path.exists(path)


def test_a_lock_held_across_close_still_publishes(name: str) -> None:
    fm = filemap.FileMap(name)
    lk = fm.lock()
    fm.close()
    assert lk.publish(b"after close") == 1
    assert lk.read().content == b"after close"
    lk.unlock()
    assert not os.path.exists(fm.path)


@pytest.mark.parametrize("huge", [1e20, 1e300, sys.float_info.max])
def test_huge_timeouts_mean_no_limit(name: str, huge: float) -> None:
    with filemap.FileMap(name, lock_timeout=huge) as fm:
        assert fm.lock_timeout is None
        with fm.lock(timeout=huge) as lk:
            assert lk.locked
        assert fm.update(lambda c: b"u", timeout=huge).published
        seen = fm.generation
        result: list[int | None] = []
        t = threading.Thread(target=lambda: result.append(fm.wait_change(seen, timeout=huge)))
        t.start()
        with filemap.FileMap(name) as other:
            other.write(b"wake")
        t.join(10)
        assert result == [seen + 1]
        assert fm.wait_change(seen, timeout=0, spin=huge) == seen + 1


@pytest.mark.parametrize("bad", [-1.0, -1e300, -math.inf, math.nan])
def test_bad_timeouts_say_what_they_got(name: str, bad: float) -> None:
    with filemap.FileMap(name) as fm:
        fm.write(b"kept")
        with pytest.raises(ValueError, match=r"timeout must be .*, not (-1\.0|-1e300|-inf|NaN)$"):
            fm.wait_change(0, timeout=bad)
        with pytest.raises(ValueError):
            fm.lock(timeout=bad)
        with pytest.raises(ValueError):
            filemap.FileMap(name, lock_timeout=bad)
        assert fm.read().content == b"kept"


def test_a_released_memoryview_says_so_and_keeps_the_content(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write(b"kept")
        view = memoryview(b"gone")
        view.release()
        with pytest.raises(ValueError, match="released"):
            fm.write(view)
        with pytest.raises(ValueError, match="released"):
            fm.update(lambda _: view)
        with fm.lock() as lk, pytest.raises(ValueError, match="released"):
            lk.publish(view)
        # A wrong type: a TypeError that names it, caused by the buffer
        # protocol's own.
        with pytest.raises(TypeError, match="not int") as e:
            fm.write(5)
        assert isinstance(e.value.__cause__, TypeError)
        assert fm.read().content == b"kept"


def test_entering_a_closed_handle_or_a_released_lock_raises(name: str) -> None:
    fm = filemap.FileMap(name)
    lk = fm.lock()
    lk.unlock()
    with pytest.raises(filemap.NotLocked):
        with lk:
            pytest.fail("entered a released lock")
    fm.close()
    with pytest.raises(filemap.Closed):
        with fm:
            pytest.fail("entered a closed handle")
    # Nesting one open handle's blocks stays allowed; the inner one closes.
    with filemap.FileMap(name) as outer:
        with outer as inner:
            assert inner is outer
        assert outer.closed
