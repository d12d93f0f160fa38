"""How long a blocked ``wait_change`` takes to end on Ctrl-C and on
``close()`` from another thread (Linux: it reads ``/proc`` to see that the
waiter sleeps before it acts).

    python filemap-py/bench/wakeups.py [--runs N] [--strategy sleep|spin|adaptive]

- Ctrl-C: a child Python process blocks in ``wait_change`` on its main
  thread; the parent sends it ``SIGINT`` and the child reports when
  ``KeyboardInterrupt`` reached its ``except`` clause (``time.monotonic``
  is system-wide, so the two clocks compare).
- close(): a thread blocks in ``wait_change``; the main thread calls
  ``close()`` and the thread reports when ``Closed`` reached it.

Reported: the median (and the largest) of the runs, in milliseconds.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import threading
import time

import filemap

CHILD = """
import signal, sys, time, filemap
# Started from a background job, the child inherits SIGINT ignored and
# Python installs no KeyboardInterrupt handler: put it back.
signal.signal(signal.SIGINT, signal.default_int_handler)
fm = filemap.FileMap(sys.argv[1], create=False)
print("ready", flush=True)
try:
    fm.wait_change(fm.generation, strategy=sys.argv[2])
except KeyboardInterrupt:
    print(time.monotonic(), flush=True)
"""


def _sleeping(path: str) -> bool:
    """Whether the task of ``/proc/.../stat`` ``path`` sleeps (state S)."""
    with open(path) as f:
        return f.read().rsplit(")", 1)[1].split()[0] == "S"


def _settle(path: str, spinning: bool) -> None:
    """Until the task has been in its wait for a while."""
    deadline = time.monotonic() + 10
    while not spinning and not _sleeping(path):
        if time.monotonic() > deadline:
            raise RuntimeError("the waiter never slept")
        time.sleep(0.001)
    time.sleep(0.05)  # well inside the wait (a benchmark, not a test)


def ctrl_c(name: str, strategy: str) -> float:
    with filemap.FileMap(name):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, name, strategy], stdout=subprocess.PIPE, text=True
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        _settle(f"/proc/{child.pid}/stat", strategy == "spin")
        sent = time.monotonic()
        child.send_signal(signal.SIGINT)
        caught = float(child.stdout.readline())
        child.wait(10)
        return caught - sent


def close(name: str, strategy: str) -> float:
    fm = filemap.FileMap(name)
    ended: list[float] = []
    tid: list[int] = []

    def wait() -> None:
        tid.append(threading.get_native_id())
        try:
            fm.wait_change(fm.generation, strategy=strategy)  # type: ignore[arg-type]
        except filemap.Closed:
            ended.append(time.monotonic())

    waiter = threading.Thread(target=wait)
    waiter.start()
    while not tid:
        time.sleep(0.001)
    _settle(f"/proc/self/task/{tid[0]}/stat", strategy == "spin")
    start = time.monotonic()
    fm.close()
    waiter.join(10)
    return ended[0] - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--strategy", default="sleep", choices=["sleep", "spin", "adaptive"])
    args = parser.parse_args()
    name = f"bench-wakeups-{os.getpid()}"
    for what, measure in (("Ctrl-C", ctrl_c), ("close()", close)):
        ms = [measure(name, args.strategy) * 1000 for _ in range(args.runs)]
        print(
            f"{what:8} ends a {args.strategy} wait_change: median {statistics.median(ms):.3f} ms,"
            f" max {max(ms):.3f} ms ({args.runs} runs)",
            flush=True,
        )


if __name__ == "__main__":
    main()
