"""Type stubs of the native module ``filemap._filemap`` (use ``filemap``)."""

from collections.abc import Callable
from typing import Literal
from os import PathLike
from types import TracebackType

from ._errors import Error
from ._types import RegionInfo, Snapshot

DEFAULT_CAPACITY: int
MIN_CAPACITY: int
MAX_CAPACITY: int
MAX_NAME_LEN: int

_Content = bytes | bytearray | memoryview | str

class FileMap:
    """A handle to a named shared-memory region (see ``filemap.FileMap``)."""

    def __new__(
        cls,
        name: str,
        capacity: int = 4096,
        *,
        max_capacity: int | None = None,
        create: bool | None = None,
        persistent: bool | None = None,
        lock_timeout: float | None = 10.0,
        path: str | PathLike[str] | None = None,
        mode: int = 0o600,
    ) -> FileMap: ...
    @property
    def name(self) -> str:
        """The region name."""
    @property
    def path(self) -> str:
        """The backing object's path (``/dev/shm/filemap.<name>`` on Linux)."""
    @property
    def capacity(self) -> int:
        """Capacity in bytes now: the most content a write carries without growing the region."""
    @property
    def max_capacity(self) -> int:
        """The most the capacity may grow to (``max_capacity=`` at creation; default: the capacity)."""
    @property
    def existed_already(self) -> bool:
        """Whether this handle attached to a region that existed before."""
    @property
    def persistent(self) -> bool:
        """Whether the region outlives its last handle."""
    @property
    def id(self) -> tuple[int, int]:
        """This handle's writer id ``(pid, handle)``, recorded with its writes."""
    @property
    def lock_timeout(self) -> float | None:
        """The default lock timeout in seconds (``None``: no limit)."""
    @property
    def generation(self) -> int:
        """The current generation (one atomic load)."""
    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
    def close(self) -> None:
        """Close the handle (idempotent); the region goes with its last handle."""
    def __enter__(self) -> FileMap: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def write(self, content: _Content) -> int:
        """Publish ``content`` as the whole new content; return the new generation.

        Raises ``TooLarge`` (nothing written), ``Timeout``, ``WouldDeadlock``.
        """
    def write_if(self, expected: int, content: _Content) -> int:
        """Publish only if the generation is still ``expected``; else raise
        ``Conflict`` (nothing written). Returns the new generation."""
    def read(self) -> Snapshot:
        """The published content (lock-free)."""
    def read_into(self, buffer: bytearray) -> int:
        """Read the content straight into ``buffer`` (resized to fit); return
        its generation."""
    def wait_change(
        self,
        seen: int,
        timeout: float | None = None,
        *,
        strategy: Literal["sleep", "spin", "adaptive"] = "adaptive",
        spin: float = 0.0,
    ) -> int | None:
        """Wait until the generation differs from ``seen``; return it, or
        ``None`` after ``timeout`` seconds.

        ``strategy``: ``"adaptive"`` (the default) spins while spinning
        has been catching changes (learnt per handle, at most 50 µs) and
        the machine has a CPU to spare (no more threads ready to run than
        CPUs), else sleeps: about a microsecond per wake-up for a prompt
        peer on a quiet machine, the blocking wait's cost on a loaded one.
        ``"sleep"`` always sleeps in the kernel (no CPU); ``"spin"``
        busy-polls (lowest latency, one core busy). ``spin`` (seconds, at
        most 0.05): busy-poll that long first, whatever the load.

        ``close()`` from another thread ends the wait at once with
        ``Closed``. Ctrl-C raises ``KeyboardInterrupt`` at once from a sleep,
        within 20 ms from ``"spin"``, and after the ``spin`` prefix."""
    def _lock(self, timeout: float | None = None) -> Lock: ...
    def _update(
        self, function: Callable[[bytes], _Content | None], timeout: float | None = None
    ) -> tuple[int, bool, bool]: ...
    def _watch(
        self,
        callback: Callable[[Snapshot], object],
        on_error: Callable[[Error], object] | None = None,
    ) -> Watcher: ...

class Lock:
    """The region lock, held; a context manager that releases it on exit.
    It belongs to the thread that took it."""

    @property
    def owner_died(self) -> bool:
        """Whether the previous holder died holding the lock."""
    @property
    def locked(self) -> bool:
        """Whether the lock is still held."""
    def read(self) -> Snapshot:
        """The published content; stable while the lock is held."""
    def publish(self, content: _Content) -> int:
        """Publish ``content``; the lock stays held. Returns the new generation."""
    def unlock(self) -> None:
        """Release the lock; raises ``NotLocked`` if released already."""
    def __enter__(self) -> Lock: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

class Watcher:
    """A running native watcher (``filemap.Watcher`` wraps it)."""

    def stop(self) -> None:
        """Stop the watcher thread and wait for it (idempotent)."""
    @property
    def running(self) -> bool:
        """Whether the watcher still runs."""

def list_regions() -> list[tuple[str, RegionInfo | Error]]:
    """Every region on this host with its info or the error reading it."""

def info(name: str) -> RegionInfo:
    """Introspect region ``name`` without attaching to it."""

def remove(name: str) -> None:
    """Remove region ``name``'s name now."""

def clean_stale() -> list[str]:
    """Remove every stale region; return their names."""

def _after_fork_in_child() -> None: ...
def _close_all(grace: float) -> int:
    """Close every open handle (interpreter exit); waits up to ``grace``
    seconds for calls in progress to let go; returns how many still held."""
def _error_kinds() -> list[str]:
    """The name of every kind of library error (``ErrorKind::ALL``)."""
def validate_name(name: str) -> None:
    """Check a region name; raises ``InvalidName``."""
