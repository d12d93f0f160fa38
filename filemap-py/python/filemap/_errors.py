"""The exception hierarchy of :mod:`filemap`.

Every exception derives from :class:`Error` and also from the built-in
exception a Python programmer would catch for that situation
(``ValueError`` for bad arguments, ``FileNotFoundError`` for a missing
region, ``TimeoutError`` for a lock that stays held...). Whatever the
error, the region's published content is left as it was.

Each exception keeps its details as attributes and pickles with them, so
it can cross a process pool.

The native module raises, for a library error, the class named as the
error's kind (the Rust ``ErrorKind`` name, also in the ``kind`` attribute):
this module is the one list of classes, and the test suite checks that it
has one for every kind the library has (``_filemap._error_kinds()``).
"""

from __future__ import annotations

from typing import Any

# Every class below, in order (checked by the test suite).
__all__ = [
    "Error",
    "InvalidName",
    "InvalidCapacity",
    "TooLarge",
    "NotUtf8",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "Timeout",
    "Cancelled",
    "Interrupted",
    "OutOfSpace",
    "Io",
    "TooManyAttached",
    "FormatError",
    "Corrupted",
    "NotARegion",
    "NameCollision",
    "Truncated",
    "IncompatibleVersion",
    "BufferTooSmall",
    "NotAValue",
    "WrongType",
    "Codec",
    "WouldDeadlock",
    "Conflict",
    "WrongThread",
    "NotLocked",
    "ForkedHandle",
    "Closed",
    "Unsupported",
    "UnsupportedOption",
]


class Error(Exception):
    """Base class of every filemap error.

    The message is ``str(exc)``; the details are keyword attributes named
    in each subclass. ``kind`` is the library's name for the kind of
    failure (``"NotFound"``...), which is the class name of every class
    but the bases. Pickling keeps them all.
    """

    kind: str

    def __init__(self, message: str = "", **details: Any) -> None:
        super().__init__(message)
        self.kind = type(self).__name__
        for key, value in details.items():
            setattr(self, key, value)

    def __reduce__(self) -> Any:
        # (class, message) plus the details as state: works for the OSError
        # subclasses too, whose default reduce drops unknown attributes'
        # constructor form.
        return (type(self), (str(self),), dict(self.__dict__))

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidName(Error, ValueError):
    """The region name breaks a naming rule. Attributes: ``name``, ``rule``."""

    name: str
    rule: str


class InvalidCapacity(Error, ValueError):
    """The capacity is out of range. Attributes: ``requested``, ``min``, ``max``."""

    requested: int
    min: int
    max: int


class TooLarge(Error, ValueError):
    """The content does not fit, even grown to the maximum capacity;
    nothing was written.

    Attributes: ``length`` (of the rejected content), ``capacity`` (the
    region's then), ``max_capacity`` (the most it may grow to).
    """

    length: int
    capacity: int
    max_capacity: int


class NotUtf8(Error, ValueError):
    """The content is not UTF-8 text. Attribute: ``valid_up_to``."""

    valid_up_to: int


class NotFound(Error, FileNotFoundError):
    """No region of that name exists. Attribute: ``name``."""

    name: str


class AlreadyExists(Error, FileExistsError):
    """A region of that name exists (and ``create=True`` was asked). Attribute: ``name``."""

    name: str


class PermissionDenied(Error, PermissionError):
    """The OS refused access to the region. Attributes: ``name``, ``path``."""

    name: str
    path: str


class Timeout(Error, TimeoutError):
    """A blocking call gave up.

    Attributes: ``holder_pid`` (the process holding the lock, or ``None``),
    ``waited`` (seconds), ``what``.
    """

    holder_pid: int | None
    waited: float
    what: str


class Cancelled(Error):
    """A wait was cancelled. Attribute: ``name``.

    The package cancels a handle's waits only by closing it, and raises
    :class:`Closed` for those.
    """

    name: str


class Interrupted(Error, InterruptedError):
    """A wait was cut short by a signal. Attribute: ``name``.

    The package handles it itself: it runs Python's signal handlers (Ctrl-C
    raises ``KeyboardInterrupt``) and waits on.
    """

    name: str


class OutOfSpace(Error, OSError):
    """No room left to create the region. Attributes: ``name``, ``needed``."""

    name: str
    needed: int


class Io(Error, OSError):
    """Another operating-system error. Attributes: ``op``, ``name``, ``os_errno``."""

    op: str
    name: str
    os_errno: int | None


class TooManyAttached(Error, OSError):
    """Every slot of the region's attach table is taken. Attributes: ``name``, ``max``."""

    name: str
    max: int


class FormatError(Error):
    """The backing object does not hold a valid region of this filemap."""


class Corrupted(FormatError):
    """A header field holds an impossible value. Attributes: ``name``, ``field``, ``value``."""

    name: str
    field: str
    value: int


class NotARegion(FormatError):
    """The backing object is not a filemap region. Attributes: ``path``, ``reason``."""

    path: str
    reason: str


class NameCollision(FormatError):
    """The shared-memory object of this name belongs to another region (macOS and
    FreeBSD name objects by a hash of the region name). Attributes: ``name``, ``other``."""

    name: str
    other: str


class Truncated(FormatError):
    """The backing file is shorter than its header says. Attributes: ``name``, ``size``, ``needed``."""

    name: str
    size: int
    needed: int


class IncompatibleVersion(FormatError):
    """The region has another layout version. Attributes: ``name``, ``found``, ``expected``."""

    name: str
    found: int
    expected: int


class BufferTooSmall(Error, ValueError):
    """A buffer is shorter than the content; nothing was copied.

    Attributes: ``name``, ``length`` (of the buffer), ``needed``.
    """

    name: str
    length: int
    needed: int


class NotAValue(Error, ValueError):
    """The region does not hold a typed value. Attributes: ``name``, ``length``."""

    name: str
    length: int


class WrongType(Error, TypeError):
    """The region holds a typed value of another type. Attributes: ``name``,
    ``expected``, ``found`` (type tags)."""

    name: str
    expected: str
    found: str


class Codec(Error, ValueError):
    """A typed value could not be encoded or decoded. Attributes: ``name``,
    ``op`` (``"encode"`` or ``"decode"``), ``reason``."""

    name: str
    op: str
    reason: str


class WouldDeadlock(Error, RuntimeError):
    """This thread holds the region's lock already. Attribute: ``name``."""

    name: str


class Conflict(Error):
    """A conditional write found another generation. Attributes: ``name``, ``expected``, ``found``."""

    name: str
    expected: int
    found: int


class WrongThread(Error, RuntimeError):
    """A lock was used from a thread that did not take it; it stays held. Attribute: ``name``."""

    name: str


class NotLocked(Error, RuntimeError):
    """The lock was used after it was released. Attribute: ``name``."""

    name: str


class ForkedHandle(Error, RuntimeError):
    """A handle inherited through ``fork()`` was used; open the region again by name.

    Attributes: ``name``, ``opened_by`` (pid), ``pid`` (this process).
    """

    name: str
    opened_by: int
    pid: int


class Closed(Error, ValueError):
    """The handle (or watcher) was closed. Attribute: ``name``."""

    name: str


class Unsupported(Error, NotImplementedError):
    """This platform is not supported (or, as :class:`UnsupportedOption`, an option)."""


class UnsupportedOption(Unsupported):
    """An option this platform cannot honour. Attributes: ``option``, ``reason``."""

    option: str
    reason: str
