"""Named shared-memory regions for inter-process communication.

Processes open a region by name, publish whole contents into it and hear at
once when another process published::

    import filemap

    with filemap.FileMap("demo", 4096) as fm:      # create or attach
        seen = fm.generation
        fm.write("hello")                          # atomic publish
        snap = fm.read()                           # lock-free read
        fm.wait_change(seen, timeout=5)            # sleep until a change

A write replaces the whole content: readers see the old or the new one,
never a mix. The region goes away with its last handle in any process
(unless ``persistent=True``); a process that dies attached leaves it
intact for the others.

**Blocking**: every call that can block (opening, writing, locking,
waiting, stopping a watcher) releases the GIL. Ctrl-C raises
``KeyboardInterrupt`` promptly: a sleeping ``wait_change`` is woken by the
signal itself, a spinning one checks every 20 ms, a lock wait every 5 ms.
``close()`` from another thread ends a ``wait_change`` at once.

**fork()**: a handle inherited through ``fork()`` must not be used in the
child (the ``multiprocessing`` "fork" start method included): the child
opens the region again by name. Where the library detects such reuse it
raises :class:`ForkedHandle`. Handles pickle by name, so passing one to a
``spawn``-ed process re-opens it there.

**Threads**: a ``FileMap`` may be shared between threads. A
:class:`Lock` belongs to the thread that took it.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from typing import Any

from . import _errors, _filemap
from ._errors import *  # noqa: F403 (the exception classes, listed once there)
from ._errors import Error
from ._filemap import (
    DEFAULT_CAPACITY,
    MAX_CAPACITY,
    MAX_NAME_LEN,
    MIN_CAPACITY,
    Lock,
    validate_name,
)
from ._types import RegionInfo, Snapshot, Updated

__all__ = [
    "FileMap",
    "Lock",
    "Watcher",
    "Changes",
    "TextView",
    "Snapshot",
    "RegionInfo",
    "Updated",
    "list",
    "info",
    "remove",
    "clean_stale",
    "validate_name",
    "DEFAULT_CAPACITY",
    "MIN_CAPACITY",
    "MAX_CAPACITY",
    "MAX_NAME_LEN",
]
__all__ += _errors.__all__

Content = bytes | bytearray | memoryview | str

_builtin_list = list


class FileMap(_filemap.FileMap):
    """A handle to the named shared-memory region ``name``.

    ``FileMap(name, capacity=4096, *, max_capacity=None, create=None,
    persistent=None, lock_timeout=10.0, path=None, mode=0o600)``

    - ``capacity``: bytes of content a region this handle *creates* holds;
      attaching keeps the existing region's capacity (see :attr:`capacity`).
    - ``max_capacity``: the most a region this handle creates may grow to
      (``None``: the capacity, so it never grows); a write past the
      capacity and within it grows the region.
    - ``create``: ``None`` creates or attaches, ``True`` only creates
      (:class:`AlreadyExists`), ``False`` only attaches (:class:`NotFound`).
    - ``persistent``: keep a region this handle creates after its last
      handle closes, until :func:`remove` (``True``), or remove it with
      its last handle (``False``). ``None``: shared memory goes with its
      last handle, a file (``path=``) stays.
    - ``lock_timeout``: seconds :meth:`write`, :meth:`lock` and
      :meth:`update` wait for the region lock before :class:`Timeout`
      (``None``: no limit).
    - ``path``: back the region by this regular file instead of shared
      memory (persistent unless ``persistent=False``; on Windows a file
      region is always persistent, and ``persistent=False`` raises
      :class:`UnsupportedOption`).
    - ``mode``: the permission bits of a region this handle creates
      (``0o600``: its owner only).

    A context manager: leaving the ``with`` block closes the handle.
    Pickles by name: unpickling opens the region again (attach only).
    """

    def write_lines(self, lines: Iterable[str]) -> int:
        """Publish ``lines`` joined by ``'\\n'``; return the new generation."""
        return self.write("\n".join(lines))

    def read_text(self) -> str:
        """The content as UTF-8 text; raises :class:`NotUtf8`."""
        return self.read().text

    def lines(self) -> _builtin_list[str]:
        """The content as lines split at ``'\\n'`` (empty content: no lines)."""
        return self.read().lines

    def lock(self, timeout: float | None = None) -> Lock:
        """Take the cross-process region lock and return it held.

        Use it as a context manager::

            with fm.lock() as lk:
                if lk.owner_died: ...      # the previous holder died holding it
                lk.publish(transform(lk.read().content))

        ``timeout``: seconds (``None``: the handle's ``lock_timeout``;
        ``math.inf``: no limit). Raises :class:`Timeout` (with
        ``holder_pid``), :class:`WouldDeadlock` when this thread holds it.
        The lock belongs to the thread that took it.
        """
        return self._lock(timeout)

    def update(
        self,
        function: Callable[[bytes], Content | None],
        timeout: float | None = None,
    ) -> Updated:
        """Read-modify-write under the lock.

        ``function(content)`` gets the current content and returns the new
        one (``None``: unchanged). A changed content is published; if
        ``function`` raises, nothing is published and the exception
        propagates. N processes incrementing a counter this way never lose
        an update.
        """
        return Updated(*self._update(function, timeout))

    def watch(
        self,
        callback: Callable[[Snapshot], object],
        on_error: Callable[[Error], object] | None = None,
    ) -> Watcher:
        """Call ``callback(snapshot)`` from a background thread with every
        change published by *another* handle (this handle's own writes are
        skipped). Bursts coalesce: intermediate generations may be skipped,
        the latest content always arrives.

        An exception raised by ``callback`` goes to ``sys.unraisablehook``
        and the watcher keeps watching. A read error (a corrupted region)
        goes to ``on_error`` if given, else to ``sys.unraisablehook``.
        The returned :class:`Watcher` is a context manager; ``stop()`` ends it.
        """
        return Watcher(self._watch(callback, on_error))

    def changes(self) -> Changes:
        """``async for snap in fm.changes():`` every change published by
        another handle, as the latest content: a slow consumer skips
        intermediate generations, it never gets a backlog.

        Changes count from this call: if another handle published after
        it, the first step delivers the latest content at once (unless this
        handle's own write replaced it). See :class:`Changes` for when its
        watcher thread runs.
        """
        return Changes(self)

    def close(self) -> None:
        """Close the handle (idempotent); the region goes with its last
        handle. A :meth:`changes` step waiting on it raises :class:`Closed`."""
        super().close()
        for changes in _builtin_list(self._iterators()):
            changes._end()

    def __exit__(self, *_: object) -> None:
        self.close()

    def _iterators(self) -> weakref.WeakSet[Changes]:
        """The :class:`Changes` iterators made by this handle."""
        iterators: weakref.WeakSet[Changes] | None = self.__dict__.get("_changes")
        if iterators is None:
            iterators = self.__dict__.setdefault("_changes", weakref.WeakSet())
        return iterators

    def __reduce__(self) -> Any:
        return (_reopen, (self.name, self.capacity, self.persistent, self.lock_timeout))


def _reopen(name: str, capacity: int, persistent: bool, lock_timeout: float | None) -> FileMap:
    return FileMap(name, capacity, create=False, persistent=persistent, lock_timeout=lock_timeout)


_watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()
_watchers_lock = threading.Lock()


class Watcher:
    """A running watcher made by :meth:`FileMap.watch`. A context manager:
    leaving the ``with`` block stops it, as :meth:`stop` does."""

    def __init__(self, native: _filemap.Watcher) -> None:
        self._native = native
        with _watchers_lock:
            _watchers.add(self)

    def stop(self) -> None:
        """Stop watching and wait for the thread (idempotent). Called from
        inside a callback, the watcher ends after that callback returns."""
        self._native.stop()

    @property
    def running(self) -> bool:
        """Whether the watcher still runs."""
        return self._native.running

    def __enter__(self) -> Watcher:
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<filemap.Watcher {'running' if self.running else 'stopped'}>"


class Changes:
    """The async iterator :meth:`FileMap.changes` returns: each step gives
    the latest content published by another handle since the content it
    last gave (or since ``changes()``).

    Its watcher thread starts with the first step and stops with
    :meth:`aclose`, with the handle's ``close()`` (a waiting step then
    raises :class:`Closed`), at the first change after its event loop
    closed, or when the iterator is collected. A step in another event
    loop than the last watches anew from where the last left off.
    """

    def __init__(self, fm: FileMap) -> None:
        self._fm = fm
        # The generation last delivered: changes count from here.
        self._seen = fm.generation
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self._watcher: Watcher | None = None
        self._closed = False
        fm._iterators().add(self)

    def __aiter__(self) -> Changes:
        return self

    async def __anext__(self) -> Snapshot:
        loop = asyncio.get_running_loop()
        if not self._closed and self._loop is not loop:
            self._start(loop)
        while True:
            if self._closed:
                raise StopAsyncIteration
            if self._fm.closed:
                self._fm.read()  # raises Closed, as any call on a closed handle
            event = self._event
            assert event is not None
            await event.wait()
            event.clear()
            if self._closed or self._fm.closed:
                continue
            snap = self._fm.read()
            # A wake-up for a content already delivered, or for this
            # handle's own write (the watcher skips those; a read after
            # another's wake-up may still find one), delivers nothing.
            own = (snap.writer_pid, snap.writer_handle) == self._fm.id
            if snap.generation != self._seen and not own:
                self._seen = snap.generation
                return snap

    def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._stop_watcher()
        event = asyncio.Event()
        # The watcher's thread holds the iterator weakly: an iterator
        # nobody holds is collected, and its watcher stops.
        this = weakref.ref(self)

        def wake(_: object) -> None:
            changes = this()
            if changes is not None and changes._loop is loop and not changes._poke():
                # Its loop closed: no step can wait there any more.
                changes._stop_watcher()

        # If this raises, the next step tries again.
        watcher = Watcher(self._fm._watch(wake, wake))
        self._loop, self._event, self._watcher = loop, event, watcher
        # Whatever came since the last step (or changes()) counts; a wake-up
        # dropped before the line above was for such a change.
        event.set()

    def _poke(self) -> bool:
        """Wake a waiting step, from any thread; False if its loop closed."""
        loop, event = self._loop, self._event
        if loop is None or event is None:
            return True
        try:
            loop.call_soon_threadsafe(event.set)
        except RuntimeError:
            return False
        return True

    def _stop_watcher(self) -> None:
        watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.stop()

    def _end(self) -> None:
        """Stop watching and wake a waiting step, which then sees why."""
        self._stop_watcher()
        self._poke()

    async def aclose(self) -> None:
        """Stop watching (idempotent); a waiting step ends with
        ``StopAsyncIteration``, and so does every later one."""
        self._closed = True
        self._end()


# Handles inherited through fork() raise ForkedHandle in the child.
os.register_at_fork(after_in_child=_filemap._after_fork_in_child)


#: Seconds interpreter exit waits for calls in progress on other threads
#: (a wait ends at once on the close, a lock wait within 0.005 s) to let
#: go of their regions.
_EXIT_GRACE = 1.0


@atexit.register
def _at_exit() -> None:
    # Watcher threads call into Python; stop them before the interpreter
    # goes away.
    with _watchers_lock:
        watchers = _builtin_list(_watchers)
    for watcher in watchers:
        watcher.stop()
    # Then close every handle, whatever thread uses it: a daemon thread
    # blocked in wait_change holds its handle, and is frozen mid-call once
    # finalisation starts, which would leave a non-persistent region
    # behind as a stale file. Its wait lets go first (and stays blocked).
    _filemap._close_all(_EXIT_GRACE)


def list() -> _builtin_list[tuple[str, RegionInfo | Error]]:  # noqa: A001
    """Every region on this host, sorted by name: ``(name, info)``, where
    ``info`` is a :class:`RegionInfo` or the :class:`Error` that kept it
    from being read (permissions, corruption...)."""
    return _filemap.list_regions()


def info(name: str) -> RegionInfo:
    """Introspect region ``name`` without attaching to it."""
    return _filemap.info(name)


def remove(name: str) -> None:
    """Remove region ``name``'s name now: attached processes keep their
    mapping, new opens create a new region. Raises :class:`NotFound`."""
    _filemap.remove(name)


def clean_stale() -> _builtin_list[str]:
    """Remove every stale region (not persistent, no live process attached)
    and return their names."""
    return _filemap.clean_stale()


class TextView:
    """A local copy of a region's text, kept in step with it (the library's
    ``TextView``).

    With ``auto_sync`` on (the default), every local edit is published at
    once and :meth:`sync_remote` pulls remote changes; with it off, local
    edits stay local until :meth:`write` and remote changes are only
    reported. An edit that does not fit stays local (the view stays dirty).
    """

    def __init__(self, map: FileMap) -> None:
        self._map = map
        self._lines: _builtin_list[str] = []
        self._auto_sync = True
        self._synced = 0
        self._dirty = False
        self._lossy = False
        self.read()

    @property
    def map(self) -> FileMap:
        """The handle the view reads and writes."""
        return self._map

    @property
    def lines(self) -> tuple[str, ...]:
        """The local lines."""
        return tuple(self._lines)

    @property
    def text(self) -> str:
        """The local lines joined by ``'\\n'``."""
        return "\n".join(self._lines)

    @property
    def auto_sync(self) -> bool:
        """Whether edits are published at once and remote changes pulled."""
        return self._auto_sync

    @property
    def dirty(self) -> bool:
        """Whether the local text has edits the region lacks."""
        return self._dirty

    @property
    def synced_generation(self) -> int:
        """The generation the local text was last read from or written as."""
        return self._synced

    @property
    def lossy(self) -> bool:
        """Whether the region's text at :attr:`synced_generation` was not
        UTF-8: the local text shows its bad bytes as U+FFFD, and a write (an
        edit with auto-sync on included) replaces them. False again once the
        view has written, or read text that is UTF-8."""
        return self._lossy

    def set_auto_sync(self, on: bool) -> int | None:
        """Switch auto-sync; switching it on publishes pending edits
        (returns the new generation, else ``None``)."""
        self._auto_sync = on
        if on and self._dirty:
            return self.write()
        return None

    def set_lines(self, lines: Iterable[str]) -> int | None:
        """Replace the local lines; with auto-sync on, publish them."""
        new = _builtin_list(lines)
        if new != self._lines:
            self._lines = new
            self._dirty = True
        if self._auto_sync and self._dirty:
            return self.write()
        return None

    def set_text(self, text: str) -> int | None:
        """Replace the local text (split at ``'\\n'``)."""
        return self.set_lines(text.split("\n") if text else [])

    def clear(self) -> int | None:
        """Remove every local line."""
        return self.set_lines([])

    def write(self) -> int:
        """Publish the local text; return the new generation."""
        generation = self._map.write(self.text)
        self._synced = generation
        self._dirty = False
        self._lossy = False
        return generation

    def read(self) -> int:
        """Replace the local text with the region's (dropping local edits)."""
        snap = self._map.read()
        self._adopt(snap)
        return snap.generation

    def _adopt(self, snap: Snapshot) -> None:
        try:
            text = snap.content.decode("utf-8")
            self._lossy = False
        except UnicodeDecodeError:
            text = snap.content.decode("utf-8", errors="replace")
            self._lossy = True
        self._lines = text.split("\n") if text else []
        self._synced = snap.generation
        self._dirty = False

    def sync_remote(self) -> tuple[str, tuple[int, int] | None]:
        """Look for another writer's publish: ``("none", None)``,
        ``("pulled", (pid, handle))`` when auto-sync took it, or
        ``("pending", (pid, handle))`` when the local text was kept."""
        if self._map.generation == self._synced:
            return ("none", None)
        if self._auto_sync and not self._dirty:
            snap = self._map.read()
            self._adopt(snap)
            writer = (snap.writer_pid, snap.writer_handle)
            if writer == self._map.id:
                return ("none", None)
            return ("pulled", writer)
        snap = self._map.read()
        writer = (snap.writer_pid, snap.writer_handle)
        if writer == self._map.id:
            return ("none", None)
        return ("pending", writer)
