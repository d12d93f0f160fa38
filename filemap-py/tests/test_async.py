"""``async for snap in fm.changes()``: latest content, never a backlog."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import filemap


def test_changes_delivers_other_writers_latest_content(name: str) -> None:
    async def main() -> list[bytes]:
        with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
            got: list[bytes] = []
            changes = fm.changes()
            consumer = asyncio.ensure_future(_collect(changes, got, until=b"last"))
            await asyncio.sleep(0.05)  # the watcher starts with the first __anext__
            fm.write("own write: skipped")
            for i in range(100):
                other.write(f"burst {i}")
            # On a loaded machine the watcher may start after the burst (it
            # then sees none of it).
            await _write_until_done(other, "last", consumer)
            await changes.aclose()
            return got

    got = asyncio.run(main())
    assert got[-1] == b"last"
    assert b"own write: skipped" not in got
    # Coalesced: far fewer deliveries than the 101 publishes.
    assert len(got) < 50, len(got)


async def _write_until_done(fm: filemap.FileMap, text: str, task: asyncio.Future[Any]) -> Any:
    """Write ``text`` until ``task`` is done, and return its result: a
    ``changes()`` watcher starts only when its iterator first runs, which on
    a loaded machine may come after a single write."""
    deadline = time.monotonic() + 10
    while not task.done() and time.monotonic() < deadline:
        fm.write(text)
        await asyncio.wait({task}, timeout=0.2)
    return await asyncio.wait_for(task, 1)


async def _collect(changes, got: list[bytes], until: bytes) -> None:  # type: ignore[no-untyped-def]
    async for snap in changes:
        got.append(snap.content)
        if snap.content == until:
            return


def test_slow_consumer_gets_no_backlog(name: str) -> None:
    async def main() -> list[bytes]:
        with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
            got: list[bytes] = []
            changes = fm.changes()
            first = asyncio.ensure_future(changes.__anext__())
            got.append((await _write_until_done(other, "one", first)).content)
            # While the consumer is busy, three more publishes arrive.
            for text in ("two", "three", "four"):
                other.write(text)
            await asyncio.sleep(0.1)
            got.append((await asyncio.wait_for(changes.__anext__(), 10)).content)
            nothing = asyncio.ensure_future(changes.__anext__())
            await asyncio.sleep(0.1)
            # No stale content queued behind: at most the latest again, if
            # the watcher saw the burst in two looks and the second came
            # after the consumer's read.
            assert not nothing.done() or nothing.result().content == b"four"
            nothing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await nothing
            await changes.aclose()
            return got

    assert asyncio.run(main()) == [b"one", b"four"]


def test_other_tasks_run_while_waiting(name: str) -> None:
    async def main() -> int:
        with filemap.FileMap(name) as fm:
            changes = fm.changes()
            waiter = asyncio.ensure_future(changes.__anext__())
            ticks = 0
            for _ in range(20):
                await asyncio.sleep(0.005)
                ticks += 1
            assert not waiter.done()
            waiter.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
            await changes.aclose()
            return ticks

    assert asyncio.run(main()) == 20
