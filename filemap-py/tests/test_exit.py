"""Interpreter exit releases every handle's share of its region, whatever
thread holds the handle: a non-persistent region whose only user exits is
gone, never left behind as a stale file. Real child interpreters."""

from __future__ import annotations

import inspect
import os
import sys
import threading
import time

import pytest

import filemap
from conftest import python_child, read_line, thread_is_in_call, wait_for

# The child opens region argv[1] (not persistent), starts what argv[2]
# names, prints the region's path once that is under way, and exits when
# its stdin closes.
CHILD = """
import sys, threading, time, filemap

name, what = sys.argv[1], sys.argv[2]
fm = filemap.FileMap(name, create=True)
if what == "daemon-wait":
    def wait():
        fm.wait_change(fm.generation)
    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    # Until the thread is inside the wait: its frame stays on that line
    # (two looks 5 ms apart; the wait blocks forever: nothing writes).
    line = wait.__code__.co_firstlineno + 1
    seen = 0
    while seen < 2:
        frame = sys._current_frames().get(waiter.ident)
        seen = seen + 1 if frame is not None and frame.f_lineno == line else 0
        time.sleep(0.005)
elif what == "watcher":
    watcher = fm.watch(lambda snap: None)
print(fm.path, flush=True)
sys.stdin.read()
"""


def _child_exits_and_region_goes(name: str, what: str) -> str:
    child = python_child(CHILD, name, what)
    path = read_line(child)
    assert os.path.exists(path), path
    _, err = child.communicate("", timeout=30)
    assert child.returncode == 0, err
    wait_for(lambda: not os.path.exists(path), timeout=10, what=f"{path} to go")
    return err


def test_a_daemon_thread_blocked_in_wait_change_at_exit_leaves_no_region(name: str) -> None:
    err = _child_exits_and_region_goes(name, "daemon-wait")
    # The wait let go of the region and stayed blocked, as daemon threads
    # do at exit: no Closed traceback from it.
    assert "Traceback" not in err, err


def test_a_plain_exit_leaves_no_region(name: str) -> None:
    _child_exits_and_region_goes(name, "nothing")


def test_an_exit_with_a_running_watcher_leaves_no_region(name: str) -> None:
    _child_exits_and_region_goes(name, "watcher")


@pytest.mark.parametrize("strategy", ["sleep", "spin", "adaptive"])
def test_closing_a_handle_ends_a_wait_on_another_thread_with_closed(name: str, strategy: str) -> None:
    fm = filemap.FileMap(name)
    outcome: list[BaseException | int | None] = []

    def wait() -> None:
        try:
            outcome.append(fm.wait_change(fm.generation, strategy=strategy))  # type: ignore[arg-type]
        except filemap.Error as e:
            outcome.append(e)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    # Until the thread is inside the wait (its frame on the call's line).
    line = wait.__code__.co_firstlineno + 2
    wait_for(
        lambda: getattr(sys._current_frames().get(waiter.ident), "f_lineno", None) == line,
        what="the thread to wait",
    )
    closed = time.monotonic()
    fm.close()
    waiter.join(10)
    assert not waiter.is_alive(), "the wait did not notice the close"
    # At once (through the handle's cancel token); generous for loaded machines.
    assert time.monotonic() - closed < 2.0
    assert len(outcome) == 1 and isinstance(outcome[0], filemap.Closed), outcome
    # The region went with its only handle.
    wait_for(lambda: not os.path.exists(fm.path), timeout=10, what="the region to go")


# The child attaches to region argv[1], whose lock the test holds, and
# starts a daemon thread that waits for the lock in the call argv[2] names.
# An atexit handler registered before filemap is imported runs after
# filemap's own: it prints whether the region is still mapped then.
LOCK_WAIT_CHILD = """
import atexit, sys, threading, time

""" + inspect.getsource(thread_is_in_call) + """

name, what = sys.argv[1], sys.argv[2]
path = None

def after_filemap_exit():
    with open("/proc/self/maps") as maps:
        print("mapped" if any(path in line for line in maps) else "unmapped", flush=True)

atexit.register(after_filemap_exit)
import filemap  # noqa: E402

fm = filemap.FileMap(name, create=False, lock_timeout=None)
path = fm.path

def wait():
    if what == "lock":
        fm.lock()
    elif what == "write":
        fm.write(b"x")
    else:
        fm.update(lambda content: b"u")

waiter = threading.Thread(target=wait, daemon=True)
waiter.start()
line = wait.__code__.co_firstlineno + (2 if what == "lock" else 4 if what == "write" else 6)

while not thread_is_in_call(waiter, wait, line):
    time.sleep(0.001)
print("waiting", flush=True)
sys.stdin.read()
"""


@pytest.mark.parametrize("what", ["lock", "write", "update"])
def test_a_daemon_thread_blocked_in_a_lock_wait_at_exit_lets_go_without_a_traceback(
    name: str, what: str
) -> None:
    with filemap.FileMap(name) as fm, fm.lock():
        child = python_child(LOCK_WAIT_CHILD, name, what)
        assert read_line(child) == "waiting"
        out, err = child.communicate("", timeout=30)
        assert child.returncode == 0, err
        # As a daemon thread blocked in wait_change: the exit's close ends
        # the lock wait, which lets go of the region and stays blocked;
        # no Closed traceback from a thread running on into finalisation.
        assert err == "", err
        assert out == "unmapped\n"
        assert fm.read().content == b""
