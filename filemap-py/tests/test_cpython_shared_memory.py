"""The cases of CPython's own multiprocessing.shared_memory tests
(Lib/test/_test_multiprocessing.py, _TestSharedMemory) that translate to
filemap's semantics: a region has a stored length, so "the buffer" is the
published content, written whole."""

from __future__ import annotations

import multiprocessing
import os
import pickle

import pytest

import filemap
from conftest import python_child

SPAWN = multiprocessing.get_context("spawn")


def test_shared_memory_basics(name: str) -> None:
    # Create by name with a size, attach by name, see each other's data.
    with filemap.FileMap(name, 512, create=True) as sms:
        assert sms.name == name
        assert sms.capacity >= 512
        sms.write(b"\x42" + bytes(511))
        with filemap.FileMap(name, create=False) as also_sms:
            assert also_sms.read().content[0] == 0x42
            also_sms.write(b"\x43" + bytes(511))
        assert sms.read().content[:1] == b"\x43"
        # Creating an existing name fails; attaching is the other mode.
        with pytest.raises(FileExistsError):
            filemap.FileMap(name, 512, create=True)
    # Attaching to a name nobody created fails.
    with pytest.raises(FileNotFoundError):
        filemap.FileMap(name, create=False)


def test_invalid_shared_memory_creation(name: str) -> None:
    # Negative and zero sizes are ValueErrors (filemap: below MIN_CAPACITY too).
    with pytest.raises((ValueError, OverflowError)):
        filemap.FileMap(name, -2, create=True)
    with pytest.raises(ValueError):
        filemap.FileMap(name, 0, create=True)
    assert not os.path.exists(f"/dev/shm/filemap.{name}")


def test_shared_memory_name_with_embedded_null() -> None:
    with pytest.raises(ValueError):
        filemap.FileMap("a\0b", 64)


def test_shared_memory_pickle_unpickle(name: str) -> None:
    # A pickled handle refers to the same region; unpickling after it is
    # gone raises FileNotFoundError instead of making a new one.
    sms = filemap.FileMap(name, 64)
    for proto in range(pickle.HIGHEST_PROTOCOL + 1):
        sms.write(b"pickle")
        other = pickle.loads(pickle.dumps(sms, protocol=proto))
        assert other.name == name
        assert other.read().content == b"pickle"
        other.write(b"from copy %d" % proto)
        assert sms.read().content == b"from copy %d" % proto
        other.close()
    sms.close()
    with pytest.raises(FileNotFoundError):
        pickle.loads(pickle.dumps(sms))


def _attach_and_modify(name: str, content: bytes) -> None:
    with filemap.FileMap(name, create=False) as fm:
        fm.write(content)


def test_shared_memory_across_processes(name: str) -> None:
    with filemap.FileMap(name, 64) as sms:
        p = SPAWN.Process(target=_attach_and_modify, args=(sms.name, b"howdy"))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        assert sms.read().content == b"howdy"


def test_shared_memory_recreate(name: str) -> None:
    # A name can be used again once the region is gone.
    first = filemap.FileMap(name, 64, create=True)
    first.write("first")
    first.close()
    with filemap.FileMap(name, 128, create=True) as second:
        assert second.capacity == 128
        assert second.read().content == b""


def test_shared_memory_tracking_no_unlink_by_attacher(name: str) -> None:
    # gh-82300: an attaching process that exits must not unlink the
    # segment (shared_memory's resource tracker does; filemap does not).
    with filemap.FileMap(name, 64) as sms:
        sms.write("still here")
        child = python_child(
            "import sys, filemap\nfilemap.FileMap(sys.argv[1], create=False).read()\n", name
        )
        _, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        with filemap.FileMap(name, create=False) as again:
            assert again.read().content == b"still here"


def test_shared_memory_cleaned_after_creator_exits(name: str) -> None:
    # The non-tracked counterpart: a region whose only user exits is gone
    # (shared_memory needs unlink(); filemap removes it with the last handle).
    child = python_child(
        "import sys, filemap\nfilemap.FileMap(sys.argv[1], 64).write('x')\n", name
    )
    _, err = child.communicate(timeout=30)
    assert child.returncode == 0, err
    with pytest.raises(FileNotFoundError):
        filemap.FileMap(name, create=False)


def test_shared_memory_unlink_while_attached(name: str) -> None:
    # unlink() (filemap.remove) drops the name; attached handles keep working.
    with filemap.FileMap(name, 64) as sms:
        sms.write("data")
        filemap.remove(name)
        with pytest.raises(FileNotFoundError):
            filemap.FileMap(name, create=False)
        assert sms.read().content == b"data"
        sms.write("more")
        assert sms.read().content == b"more"
