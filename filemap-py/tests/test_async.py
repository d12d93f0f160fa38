"""``async for snap in fm.changes()``: latest content, never a backlog."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

import filemap
from conftest import wait_for


def test_changes_delivers_other_writers_latest_content(name: str) -> None:
    async def main() -> list[bytes]:
        with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
            got: list[bytes] = []
            changes = fm.changes()
            consumer = asyncio.ensure_future(_collect(changes, got, until=b"last"))
            await asyncio.sleep(0)  # the consumer starts the watcher and waits

            def publish() -> None:
                fm.write("own write: skipped")
                for i in range(100):
                    other.write(f"burst {i}")
                other.write("last")

            # From another thread, while the consumer takes what comes.
            await asyncio.to_thread(publish)
            await asyncio.wait_for(consumer, 10)
            await changes.aclose()
            return got

    got = asyncio.run(main())
    assert got[-1] == b"last"
    assert b"own write: skipped" not in got
    # Coalesced: far fewer deliveries than the 101 publishes.
    assert len(got) < 50, len(got)


def test_a_change_before_the_first_anext_is_delivered(name: str) -> None:
    """Changes count from ``changes()``, not from when its watcher starts."""

    async def main() -> bytes:
        with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
            other.write("before changes(): not a change")
            changes = fm.changes()
            other.write("between")
            snap = await asyncio.wait_for(changes.__anext__(), 10)
            await changes.aclose()
            return snap.content

    assert asyncio.run(main()) == b"between"


class _Spy(filemap.FileMap):
    """A handle that keeps its watchers' callbacks, to call them at will."""

    def _watch(self, callback: Any, on_error: Any) -> Any:
        self.callbacks = [*getattr(self, "callbacks", []), callback]
        return super()._watch(callback, on_error)


async def _settle() -> None:
    """Let the loop run every callback and task step already due."""
    for _ in range(10):
        await asyncio.sleep(0)


def test_a_wake_up_for_a_generation_delivered_delivers_nothing(name: str) -> None:
    async def main() -> tuple[bytes, bool, bytes]:
        with _Spy(name) as fm, filemap.FileMap(name) as other:
            changes = fm.changes()
            other.write("one")
            first = (await asyncio.wait_for(changes.__anext__(), 10)).content
            step = asyncio.ensure_future(changes.__anext__())
            # Wake-ups for "one" again, as a watcher that saw a burst in
            # two looks gives; and a wake-up for this handle's own write.
            fm.callbacks[-1](None)
            await _settle()
            fm.write("own")
            fm.callbacks[-1](None)
            await _settle()
            pending = not step.done()
            other.write("two")
            second = (await asyncio.wait_for(step, 10)).content
            await changes.aclose()
            return first, pending, second

    assert asyncio.run(main()) == (b"one", True, b"two")


class _FailsOnce(filemap.FileMap):
    """A handle whose first watcher cannot start (as with no thread left)."""

    def _watch(self, callback: Any, on_error: Any) -> Any:
        if not getattr(self, "failed", False):
            self.failed = True
            raise OSError("cannot start a thread")
        return super()._watch(callback, on_error)


def test_a_step_whose_watcher_cannot_start_raises_and_the_next_tries_again(
    name: str,
) -> None:
    async def main() -> bytes:
        with _FailsOnce(name) as fm, filemap.FileMap(name) as other:
            changes = fm.changes()
            other.write("kept for the next step")
            with pytest.raises(OSError, match="cannot start a thread"):
                await changes.__anext__()
            snap = await asyncio.wait_for(changes.__anext__(), 10)
            await changes.aclose()
            return snap.content

    assert asyncio.run(main()) == b"kept for the next step"


def test_own_write_before_the_first_anext_is_skipped(name: str) -> None:
    async def main() -> bytes:
        with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
            changes = fm.changes()
            fm.write("own")
            first = asyncio.ensure_future(changes.__anext__())
            await _settle()
            assert not first.done(), first.result()
            other.write("other")
            snap = await asyncio.wait_for(first, 10)
            await changes.aclose()
            return snap.content

    assert asyncio.run(main()) == b"other"


def test_close_ends_a_waiting_step_with_closed_and_lets_the_region_go(name: str) -> None:
    async def main() -> None:
        fm = filemap.FileMap(name)
        changes = fm.changes()
        step = asyncio.ensure_future(changes.__anext__())
        await _settle()
        assert changes._watcher is not None
        fm.close()
        with pytest.raises(filemap.Closed):
            await asyncio.wait_for(step, 5)
        # The watcher let go of the region with the handle: it is gone.
        with pytest.raises(filemap.NotFound):
            filemap.FileMap(name, create=False)
        with pytest.raises(filemap.Closed):
            await changes.__anext__()

    asyncio.run(main())


def test_an_iterator_outliving_its_loop_stops_watching_and_works_in_the_next(
    name: str,
) -> None:
    with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
        changes = fm.changes()
        other.write("one")
        assert asyncio.run(changes.__anext__()).content == b"one"
        assert changes._watcher is not None
        # Its loop is closed: the next change stops the watcher.
        other.write("two")
        wait_for(lambda: changes._watcher is None, what="the watcher stopping")
        # A step in a new loop watches again, from "one" on.
        assert asyncio.run(changes.__anext__()).content == b"two"

        async def next_one() -> bytes:
            other.write("three")
            return (await asyncio.wait_for(changes.__anext__(), 10)).content

        assert asyncio.run(next_one()) == b"three"
        asyncio.run(changes.aclose())


def test_aclose_ends_a_waiting_anext_and_the_watcher(name: str) -> None:
    async def main() -> list[str]:
        ended = []
        with filemap.FileMap(name) as fm:
            changes = fm.changes()
            waiter = asyncio.ensure_future(changes.__anext__())
            await asyncio.sleep(0)  # the waiter's first step starts the watcher
            watcher = changes._watcher
            assert watcher is not None and watcher.running
            await changes.aclose()
            assert not watcher.running
            for anext in (waiter, changes.__anext__()):  # closed stays closed
                try:
                    await asyncio.wait_for(anext, 1)
                except StopAsyncIteration:
                    ended.append("ended")
        return ended

    assert asyncio.run(main()) == ["ended", "ended"]


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
            other.write("one")
            got.append((await asyncio.wait_for(changes.__anext__(), 10)).content)
            # While the consumer is busy, three more publishes arrive.
            for text in ("two", "three", "four"):
                other.write(text)
            got.append((await asyncio.wait_for(changes.__anext__(), 10)).content)
            nothing = asyncio.ensure_future(changes.__anext__())
            await asyncio.sleep(0.1)
            # No stale content queued behind, and not the latest again.
            assert not nothing.done(), nothing.result()
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
