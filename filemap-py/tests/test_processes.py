"""Across real processes: multiprocessing "spawn" children (handles passed
pickled) and subprocess children."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time

import pytest

import filemap
from conftest import python_child, read_line, thread_is_in_call, wait_for

SPAWN = multiprocessing.get_context("spawn")


def _increment(fm: filemap.FileMap, times: int) -> None:
    for _ in range(times):
        fm.update(lambda c: str(int(c) + 1))


def test_four_spawned_processes_times_1000_updates_exact(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("0")
        # The handle crosses to each child pickled (by name, re-opened there).
        procs = [SPAWN.Process(target=_increment, args=(fm, 1000)) for _ in range(4)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(120)
            assert p.exitcode == 0
        assert fm.read_text() == "4000"
        assert fm.generation == 4001


COUNTER = """
import sys, filemap
fm = filemap.FileMap(sys.argv[1], create=False)
for _ in range(int(sys.argv[2])):
    fm.update(lambda c: str(int(c) + 1).encode())
print("done", flush=True)
"""


def test_four_subprocesses_times_1000_updates_exact(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("0")
        procs = [python_child(COUNTER, name, "1000") for _ in range(4)]
        for p in procs:
            out, err = p.communicate(timeout=120)
            assert p.returncode == 0, err
            assert out == "done\n"
        assert fm.read_text() == "4000"


HOLDER = """
import sys, filemap
fm = filemap.FileMap(sys.argv[1], create=False)
lk = fm.lock()
lk.publish(b"written by the holder")
print("locked", flush=True)
sys.stdin.read()
"""


def test_sigkilled_lock_holder_is_reported_to_the_next_taker(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("before")
        child = python_child(HOLDER, name)
        assert read_line(child) == "locked"
        with pytest.raises(filemap.Timeout) as e:
            fm.lock(timeout=0.05)
        assert e.value.holder_pid == child.pid
        child.kill()
        child.wait(10)
        with fm.lock(timeout=10) as lk:
            assert lk.owner_died
            assert lk.read().content == b"written by the holder"
            lk.publish(b"recovered")
        with fm.lock() as lk:
            assert not lk.owner_died
        assert fm.read().content == b"recovered"


BLOCKED = """
import signal, sys, time, filemap
# A child started from a background job inherits SIGINT ignored, and Python
# then installs no KeyboardInterrupt handler: put it back, as a terminal's
# program would have it.
signal.signal(signal.SIGINT, signal.default_int_handler)
fm = filemap.FileMap(sys.argv[1], create=False)
what = sys.argv[2]
try:
    if what == "wait_change":
        print("ready", flush=True)
        fm.wait_change(fm.generation)
    elif what.startswith("wait_change "):
        print("ready", flush=True)
        fm.wait_change(fm.generation, strategy=what.split()[1])
    elif what == "lock":
        print("ready", flush=True)
        fm.lock(timeout=float("inf"))
    elif what == "changes":
        import asyncio
        async def main():
            print("ready", flush=True)
            async for _ in fm.changes():
                pass
        asyncio.run(main())
except KeyboardInterrupt:
    print("interrupted", time.monotonic(), flush=True)
    sys.exit(3)
print("returned", flush=True)
"""


@pytest.mark.parametrize(
    "what", ["wait_change", "wait_change spin", "wait_change adaptive", "lock", "changes"]
)
def test_sigint_interrupts_a_blocked_child(name: str, what: str) -> None:
    with filemap.FileMap(name) as fm:
        child = python_child(BLOCKED, name, what)
        held = fm.lock() if what == "lock" else None
        try:
            assert read_line(child) == "ready"
            # Give the child time to enter the blocking call proper.
            wait_for(lambda: _in_kernel_or_running(child.pid), what="the child blocking")
            time.sleep(0.2)
            sent = time.monotonic()
            child.send_signal(signal.SIGINT)
            line = read_line(child)
            assert line.startswith("interrupted"), line
            latency = float(line.split()[1]) - sent
            # Promptly (a sleeping wait is woken by the signal, a spinning
            # one checks every 20 ms, a lock wait every 5 ms); the bound is
            # generous for loaded machines.
            assert latency < 2.0, f"KeyboardInterrupt after {latency * 1000:.0f} ms"
            assert child.wait(10) == 3
        finally:
            if held is not None:
                held.unlock()
            if child.poll() is None:
                child.kill()
            child.wait(10)


def _in_kernel_or_running(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("S", "R")


ATTACHER = """
import os, signal, sys, filemap
fm = filemap.FileMap(sys.argv[1], create=False)
assert fm.read().content == b"intact"
fm.write("touched by " + sys.argv[2])
how = sys.argv[2]
if how == "normal":
    sys.exit(0)
if how == "os._exit":
    os._exit(0)
if how == "SIGKILL":
    os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("how", ["normal", "os._exit", "SIGKILL"])
def test_attaching_process_exit_leaves_region_intact(name: str, how: str) -> None:
    fm = filemap.FileMap(name)
    fm.write("intact")
    child = python_child(ATTACHER, name, how)
    _, err = child.communicate(timeout=30)
    expected = -signal.SIGKILL if how == "SIGKILL" else 0
    assert child.returncode == expected, err
    # Unlike multiprocessing.shared_memory's resource tracker, nothing
    # unlinks the region behind the creator's back.
    assert os.path.exists(fm.path)
    info = filemap.info(name)
    assert info.attached == [os.getpid()]
    assert fm.read().content == f"touched by {how}".encode()
    with filemap.FileMap(name, create=False) as again:
        assert again.read().content == f"touched by {how}".encode()
    path = fm.path
    fm.close()
    assert not os.path.exists(path)  # gone with its last handle


def _spawned_open_and_report(name: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    with filemap.FileMap(name, create=False) as fm:
        queue.put(fm.read().content)
        fm.write("from spawn")


def test_spawned_child_attaches_by_name_and_region_lives_on(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("parent")
        queue = SPAWN.Queue()
        p = SPAWN.Process(target=_spawned_open_and_report, args=(name, queue))
        p.start()
        assert queue.get(timeout=60) == b"parent"
        p.join(60)
        assert p.exitcode == 0
        assert fm.read().content == b"from spawn"


def _raise_filemap_error(name: str) -> None:
    filemap.FileMap(name, 10)


def test_errors_cross_a_process_pool(name: str) -> None:
    with SPAWN.Pool(1) as pool:
        with pytest.raises(filemap.InvalidCapacity) as e:
            pool.apply(_raise_filemap_error, (name,))
    assert e.value.requested == 10 and e.value.min == filemap.MIN_CAPACITY


def test_last_handle_across_processes_removes_region(name: str) -> None:
    child = python_child(
        "import sys, filemap\nfm = filemap.FileMap(sys.argv[1])\nfm.write('x')\nprint('open', flush=True)\nsys.stdin.read()\n",
        name,
    )
    assert read_line(child) == "open"
    fm = filemap.FileMap(name, create=False)
    path = fm.path
    fm.close()
    assert os.path.exists(path)  # the child still holds it
    child.stdin.close()  # type: ignore[union-attr]
    assert child.wait(30) == 0
    assert not os.path.exists(path)


def test_handle_inherited_through_fork_raises_forked_handle(name: str) -> None:
    with filemap.FileMap(name) as fm:
        fm.write("parent's")
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return
            code = 1
            try:
                results = []
                for call in (fm.read, lambda: fm.write("x"), lambda: fm.wait_change(0, 0.01), fm.lock, lambda: fm.generation):
                    try:
                        call()
                        results.append("ok")
                    except filemap.ForkedHandle as e:
                        results.append("forked" if e.pid == os.getpid() and e.opened_by == os.getppid() else "bad")
                    except BaseException as e:  # noqa: BLE001
                        results.append(type(e).__name__)
                with filemap.FileMap(name, create=False) as again:
                    results.append(again.read().content.decode())
                os.write(w, " ".join(results).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        report = os.read(r, 1000).decode()
        os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        assert report == "forked forked forked forked forked parent's"
        # The child's exit left the parent's handle and region alone.
        assert fm.read().content == b"parent's"
        fm.write("still usable")


def test_lock_inherited_through_fork_publishes_and_releases_nothing(name: str) -> None:
    with filemap.FileMap(name) as fm:
        generation = fm.write("parent's")
        lock = fm.lock()
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: report through the pipe, never return
            code = 1
            try:
                results = []
                for call in (lock.read, lambda: lock.publish("child's"), lock.unlock, lambda: lock.locked):
                    try:
                        result = call()
                        results.append(f"ok:{result}")
                    except filemap.ForkedHandle:
                        results.append("forked")
                    except BaseException as e:  # noqa: BLE001
                        results.append(type(e).__name__)
                os.write(w, " ".join(results).encode())
                code = 0
            finally:
                os._exit(code)
        os.close(w)
        _, status = os.waitpid(pid, 0)
        report = os.read(r, 1000).decode()
        os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        # Nothing read, published or released; the lock is still held.
        assert report == "forked forked forked ok:True"
        snap = fm.read()
        assert (snap.content, snap.generation) == (b"parent's", generation)
        # The lock is still the parent's: it publishes and releases it.
        assert lock.publish("parent's again") == generation + 1
        lock.unlock()
        with filemap.FileMap(name, create=False, lock_timeout=10) as other:
            with other.lock() as again:
                assert not again.owner_died
                assert again.read().content == b"parent's again"


@pytest.mark.parametrize("what", ["wait_change", "lock"])
def test_a_forked_childs_exit_does_not_wait_for_the_parents_calls_in_progress(name: str, what: str) -> None:
    fm = filemap.FileMap(name, lock_timeout=None)
    holder = filemap.FileMap(name)
    lock = holder.lock() if what == "lock" else None
    outcome: list[BaseException | object] = []

    def call() -> None:
        try:
            outcome.append(fm.wait_change(fm.generation) if what == "wait_change" else fm.lock())
        except filemap.Error as e:
            outcome.append(e)

    caller = threading.Thread(target=call)
    caller.start()
    # Until the thread is inside the call: its frame of `call` on the call's
    # line, and the thread asleep (a lock wait wakes every 5 ms).
    line = call.__code__.co_firstlineno + 2

    wait_for(lambda: thread_is_in_call(caller, call, line), what="the thread to be in the call")
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report through the pipe, never return
        code = 1
        try:
            # What interpreter exit runs (atexit), with a long grace: the
            # calls in progress at the fork were on the parent's threads,
            # which the child does not have. Nothing holds its copies.
            held = filemap._filemap._close_all(5.0)
            os.write(w, str(held).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        _, status = os.waitpid(pid, 0)
        report = os.read(r, 100).decode()
        os.close(r)
        assert os.waitstatus_to_exitcode(status) == 0
        assert report == "0"
        # The parent's handle and its call are untouched by the child's exit.
        assert not fm.closed and caller.is_alive()
    finally:
        fm.close()
        caller.join(10)
    assert len(outcome) == 1 and isinstance(outcome[0], filemap.Closed), outcome
    if lock is not None:
        lock.unlock()
    holder.close()


IDLE = """
import os, sys, filemap
fm = filemap.FileMap(sys.argv[1], create=False)
before = os.times()
assert fm.wait_change(fm.generation, timeout=1.0) is None
after = os.times()
print((after.user - before.user) + (after.system - before.system), flush=True)
"""


def test_idle_waiter_burns_no_cpu(name: str) -> None:
    with filemap.FileMap(name):
        child = python_child(IDLE, name)
        out, err = child.communicate(timeout=30)
        assert child.returncode == 0, err
        # One second asleep in wait_change: next to no CPU.
        assert float(out) < 0.05, out
