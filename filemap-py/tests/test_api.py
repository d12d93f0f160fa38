"""The handle's API in one process: values, types, errors, content kept."""

from __future__ import annotations

import inspect
import math
import os
import pickle
import resource
import threading
import time
from pathlib import Path

import pytest

import filemap
from conftest import wait_for


def test_create_attach_properties(name: str) -> None:
    with filemap.FileMap(name, 100) as a:
        assert a.name == name
        assert a.capacity == 100
        assert not a.existed_already
        assert a.generation == 0
        assert a.path.endswith(f"filemap.{name}")
        assert os.path.exists(a.path)
        assert a.id[0] == os.getpid()
        assert not a.closed
        with filemap.FileMap(name, 5000) as b:
            assert b.existed_already
            assert b.capacity == 100  # the existing region's capacity wins
            assert b.id != a.id
    assert a.closed
    assert not os.path.exists(a.path)  # gone with its last handle


def test_write_every_content_type_and_read_back(name: str) -> None:
    with filemap.FileMap(name) as fm:
        cases: list[tuple[object, bytes]] = [
            (b"bytes", b"bytes"),
            (bytearray(b"bytearray"), b"bytearray"),
            (memoryview(b"xxmemoryview")[2:], b"memoryview"),
            ("text é", "text é".encode()),
            (b"", b""),
        ]
        for content, expected in cases:
            generation = fm.write(content)  # type: ignore[arg-type]
            snap = fm.read()
            assert snap == (expected, generation, os.getpid(), fm.id[1])
            assert snap.content == expected
            assert fm.generation == generation
        with pytest.raises(TypeError):
            fm.write(12)  # type: ignore[arg-type]


def test_snapshot_is_frozen_and_pickles(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("a\nb")
        snap = fm.read()
        with pytest.raises(AttributeError):
            snap.content = b"x"  # type: ignore[misc]
        assert pickle.loads(pickle.dumps(snap)) == snap
        content, generation, pid, handle = snap
        assert (content, generation, pid, handle) == (b"a\nb", 1, os.getpid(), fm.id[1])


def test_text_lines_and_read_into(name: str) -> None:
    with filemap.FileMap(name) as fm:
        assert fm.lines() == []
        g = fm.write_lines(["one", "two", ""])
        assert fm.read_text() == "one\ntwo\n"
        assert fm.lines() == ["one", "two", ""]
        buf = bytearray(b"previous longer content")
        assert fm.read_into(buf) == g
        assert buf == b"one\ntwo\n"
        fm.write(b"\xff\xfeok")
        with pytest.raises(filemap.NotUtf8) as e:
            fm.read_text()
        assert isinstance(e.value, ValueError)
        assert e.value.valid_up_to == 0


def test_oversized_write_is_typed_and_keeps_content(name: str) -> None:
    with filemap.FileMap(name, 64) as fm:
        g = fm.write("kept")
        for content in (b"x" * 65, "é" * 33, bytearray(100)):
            with pytest.raises(filemap.TooLarge) as e:
                fm.write(content)
            assert isinstance(e.value, ValueError)
            assert e.value.capacity == 64
            assert e.value.length == len(content.encode() if isinstance(content, str) else content)
            assert fm.read() == (b"kept", g, os.getpid(), fm.id[1])
        assert fm.write(b"y" * 64) == g + 1  # exactly the capacity fits


@pytest.mark.parametrize("bad", ["", "a/b", "a\\b", "nul\0", ".", "..", "x" * 300, "tab\t"])
def test_bad_names_are_value_errors(bad: str) -> None:
    with pytest.raises(filemap.InvalidName) as e:
        filemap.FileMap(bad)
    assert isinstance(e.value, ValueError)
    assert e.value.name == bad
    with pytest.raises(filemap.InvalidName):
        filemap.validate_name(bad)


@pytest.mark.parametrize("capacity", [0, 31, filemap.MAX_CAPACITY + 1])
def test_bad_capacities_are_value_errors(name: str, capacity: int) -> None:
    with pytest.raises(filemap.InvalidCapacity) as e:
        filemap.FileMap(name, capacity)
    assert isinstance(e.value, ValueError)
    assert e.value.requested == capacity
    assert (e.value.min, e.value.max) == (filemap.MIN_CAPACITY, filemap.MAX_CAPACITY)
    assert not os.path.exists(f"/dev/shm/filemap.{name}")


def test_negative_capacity_and_timeouts_are_rejected(name: str) -> None:
    with pytest.raises(OverflowError):
        filemap.FileMap(name, -1)
    with pytest.raises(ValueError):
        filemap.FileMap(name, lock_timeout=-1)
    with filemap.FileMap(name) as fm:
        with pytest.raises(ValueError):
            fm.wait_change(0, timeout=-0.5)
        with pytest.raises(ValueError):
            fm.wait_change(0, timeout=math.nan)


def test_create_modes(name: str) -> None:
    with pytest.raises(filemap.NotFound) as nf:
        filemap.FileMap(name, create=False)
    assert isinstance(nf.value, FileNotFoundError)
    with filemap.FileMap(name, create=True) as fm:
        with pytest.raises(filemap.AlreadyExists) as ae:
            filemap.FileMap(name, create=True)
        assert isinstance(ae.value, FileExistsError)
        with filemap.FileMap(name, create=False) as again:
            assert again.existed_already
        fm.write("x")


def test_closed_handle_raises_and_close_is_idempotent(name: str) -> None:
    fm = filemap.FileMap(name)
    fm.close()
    fm.close()
    assert fm.closed
    for call in (fm.read, lambda: fm.write("x"), lambda: fm.wait_change(0, 0), fm.lock, lambda: fm.generation):
        with pytest.raises(filemap.Closed):
            call()
    assert fm.name == name  # plain properties stay readable


def test_lock_context_manager_read_publish(name: str) -> None:
    with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
        fm.write("start")
        with fm.lock() as lk:
            assert lk.locked and not lk.owner_died
            assert lk.read().content == b"start"
            g = lk.publish(b"inside")
            assert other.read().content == b"inside"  # readers never wait
            with pytest.raises(filemap.TooLarge):
                lk.publish(b"x" * (fm.capacity + 1))
            assert lk.read().generation == g
            with pytest.raises(filemap.WouldDeadlock):
                other.lock(timeout=0)
        assert not lk.locked
        with pytest.raises(filemap.NotLocked):
            lk.unlock()
        with pytest.raises(filemap.NotLocked):
            lk.read()
        lk2 = other.lock()
        lk2.unlock()


def test_lock_timeout_names_holder_and_is_honoured(name: str) -> None:
    with filemap.FileMap(name) as fm, filemap.FileMap(name, lock_timeout=0.2) as other:
        taken = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with fm.lock():
                taken.set()
                release.wait(10)

        t = threading.Thread(target=hold)
        t.start()
        try:
            assert taken.wait(10)
            for timeout, call in (
                (0.2, lambda: other.write("no")),  # the handle's lock_timeout
                (0.05, lambda: other.lock(timeout=0.05)),
                (0.3, lambda: other.update(lambda c: c + b"!", timeout=0.3)),
            ):
                start = time.monotonic()
                with pytest.raises(filemap.Timeout) as e:
                    call()
                elapsed = time.monotonic() - start
                assert isinstance(e.value, TimeoutError)
                assert e.value.holder_pid == os.getpid()
                # Well within the one-second sleep slice, with room for a
                # loaded machine's scheduling.
                assert timeout <= elapsed < timeout + 0.5, elapsed
        finally:
            release.set()
            t.join()
        assert fm.read().content == b""


def test_update_publishes_only_changes_and_nothing_on_error(name: str) -> None:
    with filemap.FileMap(name, 64) as fm:
        fm.write("1")
        u = fm.update(lambda c: str(int(c) + 1))
        assert u == (2, True, False)
        assert fm.update(lambda c: None) == (2, False, False)
        assert fm.update(lambda c: c) == (2, False, False)

        def boom(content: bytes) -> bytes:
            raise KeyError("no")

        with pytest.raises(KeyError):
            fm.update(boom)
        with pytest.raises(filemap.TooLarge):
            fm.update(lambda c: b"x" * 65)
        with pytest.raises(TypeError):
            fm.update(lambda c: 5)  # type: ignore[arg-type,return-value]
        assert fm.read().content == b"2" and fm.generation == 2
        fm.lock().unlock()  # the lock was released every time


def test_update_threads_exact(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("0")

        def work() -> None:
            with filemap.FileMap(name) as mine:
                for _ in range(200):
                    mine.update(lambda c: str(int(c) + 1))

        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert fm.read_text() == "800"


def test_wait_change_returns_new_generation_or_none(name: str) -> None:
    with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
        seen = fm.generation
        start = time.monotonic()
        assert fm.wait_change(seen, timeout=0.12) is None
        assert 0.12 <= time.monotonic() - start < 0.62  # not a 1 s slice
        assert fm.wait_change(seen, timeout=0.01, strategy="spin") is None
        assert fm.wait_change(seen, timeout=0.01, strategy="adaptive") is None
        assert fm.wait_change(seen, timeout=0.01, spin=0.002) is None
        with pytest.raises(ValueError):
            fm.wait_change(seen, timeout=0.01, spin=-1)
        with pytest.raises(ValueError, match="strategy"):
            fm.wait_change(seen, timeout=0.01, strategy="nap")  # type: ignore[arg-type]
        threading.Timer(0.05, lambda: other.write("x")).start()
        assert fm.wait_change(seen, timeout=10) == seen + 1
        assert fm.wait_change(seen - 1 if seen else 99, timeout=0) is not None
        threading.Timer(0.05, lambda: other.write("y")).start()
        assert fm.wait_change(seen + 1, timeout=10, strategy="spin") == seen + 2
        threading.Timer(0.05, lambda: other.write("z")).start()
        assert fm.wait_change(seen + 2, timeout=10, strategy="adaptive") == seen + 3
        # A spinning wait longer than its 20 ms slices still sees the change.
        threading.Timer(0.1, lambda: other.write("w")).start()
        assert fm.wait_change(seen + 3, timeout=10, strategy="spin") == seen + 4


@pytest.mark.skipif(not hasattr(resource, "RUSAGE_THREAD"), reason="needs RUSAGE_THREAD (Linux)")
@pytest.mark.parametrize("strategy", ["sleep", "adaptive"])
def test_a_waiting_thread_does_not_wake_up_to_poll(name: str, strategy: str) -> None:
    # Ctrl-C and close() end a sleeping wait by waking it; nothing wakes
    # it meanwhile (the library's own sleep slice is 1 s).
    with filemap.FileMap(name) as fm:
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw
        assert fm.wait_change(fm.generation, timeout=1.0, strategy=strategy) is None  # type: ignore[arg-type]
        woke = resource.getrusage(resource.RUSAGE_THREAD).ru_nvcsw - before
        assert woke <= 5, f"the thread slept {woke} times in a 1 s wait"


def test_reads_follow_the_content_as_it_grows_and_shrinks(name: str) -> None:
    # Reads size their bytes (bytearray) by the last length read.
    with filemap.FileMap(name, 10_000) as fm, filemap.FileMap(name) as other:
        buf = bytearray()
        for content in (b"", b"8 bytes!", b"x" * 9000, b"abc", b"", b"y" * 9999, b"z" * 9000):
            g = other.write(content)
            assert fm.read() == (content, g, os.getpid(), other.id[1])
            assert fm.read_into(buf) == g and buf == content
            # The other call after a change of length too.
            g = other.write(content + b"+")
            assert fm.read_into(buf) == g and buf == content + b"+"
            assert fm.read().content == content + b"+"


def test_blocking_calls_release_the_gil(name: str) -> None:
    # A thread blocked in wait_change must not stop this thread's Python code.
    with filemap.FileMap(name) as fm:
        seen = fm.generation
        result: list[int | None] = []
        t = threading.Thread(target=lambda: result.append(fm.wait_change(seen, timeout=10)))
        t.start()
        counted = 0
        deadline = time.monotonic() + 0.2
        while time.monotonic() < deadline:
            counted += 1
        assert counted > 10_000
        fm.write("wake")
        t.join(10)
        assert result == [seen + 1]


def test_handle_pickles_by_name(name: str) -> None:
    with filemap.FileMap(name, 128, lock_timeout=3) as fm:
        fm.write("shared")
        copy = pickle.loads(pickle.dumps(fm))
        assert isinstance(copy, filemap.FileMap)
        assert copy.existed_already and copy.capacity == 128 and copy.lock_timeout == 3
        assert copy.read().content == b"shared"
        copy.close()
    with pytest.raises(filemap.NotFound):  # re-opening never creates
        pickle.loads(pickle.dumps(fm))


def test_info_list_remove_clean_stale(name: str) -> None:
    with filemap.FileMap(name, 256) as fm:
        fm.write("abc")
        info = filemap.info(name)
        assert info.name == name and info.capacity == 256 and info.length == 3
        assert info.generation == 1 and info.attached == [os.getpid()]
        assert not info.stale and not info.persistent
        assert (info.last_writer_pid, info.last_writer_handle) == fm.id
        listed = dict(filemap.list())
        assert listed[name] == info
        assert name not in filemap.clean_stale()
        filemap.remove(name)
        with pytest.raises(filemap.NotFound):
            filemap.info(name)
        assert fm.read().content == b"abc"  # attached handles keep the mapping
    with pytest.raises(filemap.NotFound):
        filemap.remove(name)


def test_persistent_region_outlives_handles(name: str) -> None:
    with filemap.FileMap(name, persistent=True) as fm:
        assert fm.persistent
        fm.write("stays")
    with filemap.FileMap(name, create=False) as again:
        assert again.read().content == b"stays"
    filemap.remove(name)


def test_a_file_region_persists_unless_told_otherwise(name: str, tmp_path: Path) -> None:
    kept, dropped = tmp_path / "kept.fm", tmp_path / "dropped.fm"
    with filemap.FileMap(name, path=kept) as fm:
        assert fm.persistent
        fm.write("stays")
    assert kept.exists()
    with filemap.FileMap(name, path=kept, create=False) as again:
        assert again.read().content == b"stays"
    with filemap.FileMap(name, path=dropped, persistent=False) as fm:
        assert not fm.persistent
        fm.write("goes")
        assert dropped.exists()
    assert not dropped.exists(), "persistent=False was not passed on"


def test_text_view_mirrors_the_library(name: str) -> None:
    with filemap.FileMap(name) as a, filemap.FileMap(name) as b:
        view = filemap.TextView(a)
        assert view.lines == () and view.auto_sync
        g = view.set_lines(["x", "y"])
        assert g == 1 and b.read_text() == "x\ny"
        assert view.sync_remote() == ("none", None)
        b.write("remote")
        assert view.sync_remote() == ("pulled", b.id)
        assert view.text == "remote"
        assert view.set_auto_sync(False) is None
        assert view.set_text("local") is None and view.dirty
        b.write("remote 2")
        assert view.sync_remote() == ("pending", b.id)
        assert view.text == "local"
        assert view.set_auto_sync(True) == 4
        assert b.read_text() == "local" and not view.dirty
        with pytest.raises(filemap.TooLarge):
            view.set_text("z" * (a.capacity + 1))
        assert view.dirty and b.read_text() == "local"


def test_text_view_says_when_it_shows_text_that_is_not_utf8(name: str) -> None:
    with filemap.FileMap(name) as a, filemap.FileMap(name) as b:
        b.write(b"kept \xff bytes")
        view = filemap.TextView(a)
        assert view.lossy and view.lines == ("kept \ufffd bytes",)
        b.write("a real \ufffd")
        assert view.sync_remote() == ("pulled", b.id) and not view.lossy
        b.write(b"bad \xc3")
        view.sync_remote()
        assert view.lossy
        view.set_auto_sync(False)
        view.set_text("edited")
        assert view.lossy and b.read().content == b"bad \xc3"
        view.write()
        assert not view.lossy


def test_every_error_pickles_with_its_details() -> None:
    import filemap._errors as errors

    for cls_name in errors.__all__:
        cls = getattr(errors, cls_name)
        e = cls("message", name="n", holder_pid=7, length=3)
        back = pickle.loads(pickle.dumps(e))
        assert type(back) is cls and str(back) == "message"
        assert (back.name, back.holder_pid, back.length) == ("n", 7, 3)


def test_every_library_error_kind_has_its_own_exception_class() -> None:
    kinds = filemap._filemap._error_kinds()
    assert len(kinds) >= 29 and "NotFound" in kinds
    for kind in kinds:
        cls = getattr(filemap, kind, None)
        assert isinstance(cls, type) and issubclass(cls, filemap.Error), kind
        assert cls is not filemap.Error and kind in filemap.__all__, kind


def test_the_errors_module_lists_each_of_its_classes_once() -> None:
    import filemap._errors as errors

    defined = [n for n, c in vars(errors).items() if inspect.isclass(c) and c.__module__ == errors.__name__]
    assert errors.__all__ == defined
    assert set(errors.__all__) <= set(filemap.__all__)


def test_a_library_error_carries_its_kind(name: str) -> None:
    with pytest.raises(filemap.NotFound) as e:
        filemap.FileMap(name, create=False)
    assert e.value.kind == "NotFound" and e.value.name == name
    with filemap.FileMap(name, 64) as fm, pytest.raises(filemap.TooLarge) as e2:
        fm.write(b"x" * 65)
    assert (e2.value.kind, e2.value.length, e2.value.capacity) == ("TooLarge", 65, 64)


def test_error_hierarchy() -> None:
    E = filemap
    for cls in (E.InvalidName, E.InvalidCapacity, E.TooLarge, E.NotUtf8):
        assert issubclass(cls, ValueError) and issubclass(cls, E.Error)
    assert issubclass(E.NotFound, FileNotFoundError)
    assert issubclass(E.AlreadyExists, FileExistsError)
    assert issubclass(E.PermissionDenied, PermissionError)
    assert issubclass(E.Timeout, TimeoutError)
    assert issubclass(E.OutOfSpace, OSError) and issubclass(E.Io, OSError)
    assert issubclass(E.Interrupted, InterruptedError)
    assert issubclass(E.UnsupportedOption, E.Unsupported)
    assert issubclass(E.BufferTooSmall, ValueError) and issubclass(E.WrongType, TypeError)
    for cls in (E.Corrupted, E.NotARegion, E.Truncated, E.IncompatibleVersion):
        assert issubclass(cls, E.FormatError) and issubclass(cls, E.Error)
    for cls in (E.Conflict, E.WrongThread, E.NotLocked, E.ForkedHandle, E.WouldDeadlock):
        assert issubclass(cls, E.Error)


def test_watch_skips_own_writes_and_survives_raising_callback(name: str) -> None:
    import sys

    with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
        got: list[filemap.Snapshot] = []
        unraisable: list[BaseException | None] = []
        old_hook = sys.unraisablehook
        sys.unraisablehook = lambda u: unraisable.append(u.exc_value)
        try:

            def callback(snap: filemap.Snapshot) -> None:
                got.append(snap)
                if snap.content == b"raise":
                    raise RuntimeError("callback failed")

            with fm.watch(callback) as w:
                assert w.running
                fm.write("own")  # skipped
                other.write("raise")
                wait_for(lambda: unraisable, what="the callback's error reported")
                other.write("after")
                wait_for(lambda: got and got[-1].content == b"after", what="the next change")
            assert not w.running
            w.stop()
        finally:
            sys.unraisablehook = old_hook
        assert all(s.writer_handle == other.id[1] for s in got)
        assert [s.content for s in got][-2:] == [b"raise", b"after"]
        assert isinstance(unraisable[0], RuntimeError)


def test_watcher_can_stop_itself_and_outlive_handle(name: str) -> None:
    with filemap.FileMap(name) as other:
        fm = filemap.FileMap(name)
        holder: list[filemap.Watcher] = []
        calls: list[bytes] = []

        def callback(snap: filemap.Snapshot) -> None:
            calls.append(snap.content)
            holder[0].stop()

        holder.append(fm.watch(callback))
        fm.close()
        other.write("one")
        wait_for(lambda: not holder[0].running, what="the watcher stopping itself")
        other.write("two")
        time.sleep(0.05)
        assert calls == [b"one"]


def test_write_if_conflict_keeps_content(name: str) -> None:
    with filemap.FileMap(name) as fm:
        g = fm.write("one")
        assert fm.write_if(g, "two") == g + 1
        with pytest.raises(filemap.Conflict) as e:
            fm.write_if(g, "three")
        assert (e.value.expected, e.value.found) == (g, g + 1)
        assert fm.read().content == b"two"


def test_lock_from_another_thread_is_wrong_thread_and_stays_held(name: str) -> None:
    with filemap.FileMap(name) as fm, filemap.FileMap(name) as other:
        lk = fm.lock()
        errors: list[BaseException] = []

        def misuse() -> None:
            for call in (lk.read, lk.unlock, lambda: lk.publish(b"x")):
                try:
                    call()
                except filemap.Error as e:
                    errors.append(e)

        t = threading.Thread(target=misuse)
        t.start()
        t.join()
        assert [type(e) for e in errors] == [filemap.WrongThread] * 3
        assert lk.locked
        timed_out: list[BaseException] = []

        def try_lock() -> None:
            try:
                other.lock(timeout=0.02)
            except filemap.Timeout as e:
                timed_out.append(e)

        t = threading.Thread(target=try_lock)
        t.start()
        t.join()
        assert len(timed_out) == 1  # still held by this thread
        lk.unlock()
        other.lock(timeout=1).unlock()
