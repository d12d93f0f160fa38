"""Hardening: calls that must let other Python threads run, what a released
lock keeps, and timeouts at the edges of what a number can say."""

from __future__ import annotations

import math
import sys
import threading

import pytest

import filemap


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
