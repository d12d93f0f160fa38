"""Plain value types returned by :mod:`filemap` (named tuples: frozen,
unpackable, picklable)."""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["Snapshot", "RegionInfo", "Updated"]


class Snapshot(NamedTuple):
    """One published content and who published it.

    ``content`` is the whole content; ``generation`` counts publishes (it
    never goes back); ``writer_pid`` and ``writer_handle`` identify the
    writing handle (``FileMap.id`` of the writer).
    """

    content: bytes
    generation: int
    writer_pid: int
    writer_handle: int

    @property
    def text(self) -> str:
        """The content decoded as UTF-8; raises :class:`filemap.NotUtf8`."""
        from ._errors import NotUtf8

        try:
            return self.content.decode("utf-8")
        except UnicodeDecodeError as e:
            raise NotUtf8(
                f"the region's content is not UTF-8 (valid up to byte {e.start})",
                valid_up_to=e.start,
            ) from None

    @property
    def lines(self) -> list[str]:
        """The content as lines split at ``'\\n'`` (empty content: no lines)."""
        text = self.text
        return text.split("\n") if text else []


class RegionInfo(NamedTuple):
    """What :func:`filemap.info` and :func:`filemap.list` report about a region."""

    name: str
    path: str
    capacity: int
    length: int
    generation: int
    last_writer_pid: int
    last_writer_handle: int
    persistent: bool
    attached: list[int]
    stale: bool


class Updated(NamedTuple):
    """The result of :meth:`filemap.FileMap.update`."""

    generation: int
    """The generation after the update (unchanged when nothing was published)."""
    published: bool
    """Whether the function changed the content (and so it was published)."""
    owner_died: bool
    """Whether the previous lock holder died holding the lock."""
