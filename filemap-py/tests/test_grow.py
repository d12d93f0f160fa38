"""Regions that grow: ``max_capacity=`` at creation, ``.max_capacity``."""

from __future__ import annotations

import pytest

import filemap


def test_a_region_made_with_a_maximum_grows_and_attached_handles_see_it(name: str) -> None:
    with filemap.FileMap(name, 4096, max_capacity=1 << 20) as writer:
        with filemap.FileMap(name) as reader:
            assert (reader.capacity, reader.max_capacity) == (4096, 1 << 20)
            content = bytes(range(256)) * 1000
            writer.write(content)
            assert reader.read().content == content
            assert reader.capacity >= len(content)
            with pytest.raises(filemap.TooLarge) as refused:
                writer.write(b"x" * ((1 << 20) + 1))
            assert refused.value.max_capacity == 1 << 20
            assert reader.read().content == content


def test_a_region_made_without_a_maximum_does_not_grow(name: str) -> None:
    with filemap.FileMap(name, 4096) as fm:
        assert fm.max_capacity == 4096
        with pytest.raises(filemap.TooLarge):
            fm.write(b"x" * 4097)


def test_a_maximum_below_the_capacity_is_refused(name: str) -> None:
    with pytest.raises(filemap.InvalidCapacity):
        filemap.FileMap(name, 4096, max_capacity=100)
