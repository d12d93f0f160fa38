"""Ping-pong round trip between two Python processes: filemap against the
standard library's ways.

    python filemap-py/bench/pingpong.py [--rounds N] [--runs R] [--load N] [--json FILE]

Each method carries a payload from process A to process B and back (B
echoes what it got); a round trip is timed in A from before its send to
after it holds B's reply. Methods:

- filemap wait_change: two regions (ping, pong), writes + ``wait_change``
  (its default strategy, adaptive) + ``read_into``.
- filemap wait_change(strategy="sleep"): the same, sleeping in the kernel
  at once every time.
- filemap wait_change(spin=50µs): the same, busy-polling 50 µs first.
- filemap wait_change(strategy="adaptive"): the library's adaptive wait
  (spins while changes come within microseconds, else sleeps).
- filemap wait_change(strategy="spin"): the same, busy-polling.
- multiprocessing.Pipe: ``send_bytes`` / ``recv_bytes``.
- multiprocessing.Queue: ``put`` / ``get``.
- shared_memory busy-poll: two ``multiprocessing.shared_memory`` segments,
  a sequence number in the first 8 bytes polled in a Python loop, the
  payload after it (no lock, no stored length: the hand-made minimum).

With ``--pin`` the two processes are pinned to one core each (do not
pin on a loaded machine: a pinned spinner then fights for its core).
With ``--load N``, N CPU-bound processes (a Python busy loop each) run
beside the pair for the whole run: the loaded condition.
Reported: the median round trip in microseconds over all timed rounds
(after a warm-up), at 8 B and 64 KiB, and the CPU time an idle waiter
burns per second of waiting.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import time
from collections.abc import Callable
from multiprocessing import shared_memory
from typing import Any

import filemap

SIZES = (8, 64 * 1024)
# --pin: the two processes each get a core of their own.
PIN = False
CORES = sorted(os.sched_getaffinity(0))[:2]


def _pin(index: int) -> None:
    if PIN:
        os.sched_setaffinity(0, {CORES[index]})


def _child(target: Callable[..., None], *args: Any) -> Any:
    """A spawned process running ``target(*args)`` pinned to the second core."""
    return SPAWN.Process(target=_run_pinned, args=(PIN, target, *args))


def _run_pinned(pin: bool, target: Callable[..., None], *args: Any) -> None:
    global PIN
    PIN = pin
    _pin(1)
    target(*args)
WARMUP = 200
SPAWN = multiprocessing.get_context("spawn")


# --- filemap -------------------------------------------------------------


def _waiter(fm: filemap.FileMap, mode: str) -> Callable[[int], int | None]:
    if mode == "spin":
        return lambda seen: fm.wait_change(seen, strategy="spin")
    if mode == "adaptive":
        return lambda seen: fm.wait_change(seen, strategy="adaptive")
    if mode == "spin-first":
        return lambda seen: fm.wait_change(seen, spin=50e-6)
    if mode == "sleep":
        return lambda seen: fm.wait_change(seen, strategy="sleep")
    return fm.wait_change


def _fm_echo(ping: str, pong: str, rounds: int, mode: str, ready: Any) -> None:
    with filemap.FileMap(ping, create=False) as a, filemap.FileMap(pong, create=False) as b:
        wait = _waiter(a, mode)
        seen = a.generation
        buf = bytearray()
        ready.set()
        for _ in range(rounds):
            seen = wait(seen)
            a.read_into(buf)
            b.write(buf)


def bench_filemap(size: int, rounds: int, mode: str) -> list[int]:
    tag = f"bench-{os.getpid()}-{size}-{mode}"
    cap = max(size, 64)
    with filemap.FileMap(tag + "-ping", cap) as ping, filemap.FileMap(tag + "-pong", cap) as pong:
        ready = SPAWN.Event()
        child = _child(_fm_echo, ping.name, pong.name, rounds, mode, ready)
        child.start()
        ready.wait(60)
        wait = _waiter(pong, mode)
        payload = os.urandom(size)
        buf = bytearray()
        seen = pong.generation
        times = []
        clock = time.perf_counter_ns
        for _ in range(rounds):
            t0 = clock()
            ping.write(payload)
            seen = wait(seen)
            pong.read_into(buf)
            times.append(clock() - t0)
        assert buf == payload
        child.join(60)
    return times


# --- multiprocessing.Pipe ---------------------------------------------------


def _pipe_echo(conn: Any, rounds: int) -> None:
    for _ in range(rounds):
        conn.send_bytes(conn.recv_bytes())


def bench_pipe(size: int, rounds: int) -> list[int]:
    mine, theirs = SPAWN.Pipe()
    child = _child(_pipe_echo, theirs, rounds)
    child.start()
    payload = os.urandom(size)
    times = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t0 = clock()
        mine.send_bytes(payload)
        reply = mine.recv_bytes()
        times.append(clock() - t0)
    assert reply == payload
    child.join(60)
    return times


# --- multiprocessing.Queue --------------------------------------------------


def _queue_echo(inq: Any, outq: Any, rounds: int) -> None:
    for _ in range(rounds):
        outq.put(inq.get())


def bench_queue(size: int, rounds: int) -> list[int]:
    inq, outq = SPAWN.Queue(), SPAWN.Queue()
    child = _child(_queue_echo, inq, outq, rounds)
    child.start()
    payload = os.urandom(size)
    times = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t0 = clock()
        inq.put(payload)
        reply = outq.get()
        times.append(clock() - t0)
    assert reply == payload
    child.join(60)
    return times


# --- shared_memory busy-poll ------------------------------------------------

def _attach(name: str) -> shared_memory.SharedMemory:
    # Attaching registers the segment with the resource tracker; spawned
    # children share the parent's tracker, so the parent's unlink() is the
    # one that counts (a process with its own tracker would unlink the
    # segment when it exits: CPython gh-82300).
    shm = shared_memory.SharedMemory(name)
    return shm


def _seq(buf: memoryview) -> memoryview:
    # The sequence number as one 8-byte item: a memoryview item store is a
    # single 8-byte copy. (struct.pack_into zero-fills before it writes, so
    # a poller can read 0 in between: it did, and the pair fell out of step.)
    return buf[:8].cast("Q")


def _shm_echo(ping: str, pong: str, size: int, rounds: int) -> None:
    a, b = _attach(ping), _attach(pong)
    abuf, bbuf = a.buf, b.buf
    aseq, bseq = _seq(abuf), _seq(bbuf)
    seen = 0
    for _ in range(rounds):
        while aseq[0] == seen:
            pass
        seen += 1
        data = bytes(abuf[8 : 8 + size])
        bbuf[8 : 8 + size] = data
        bseq[0] = seen
    aseq.release()
    bseq.release()
    del abuf, bbuf
    a.close()
    b.close()


def bench_shm(size: int, rounds: int) -> list[int]:
    ping = shared_memory.SharedMemory(create=True, size=8 + size)
    pong = shared_memory.SharedMemory(create=True, size=8 + size)
    try:
        child = _child(_shm_echo, ping.name, pong.name, size, rounds)
        child.start()
        payload = os.urandom(size)
        pbuf, qbuf = ping.buf, pong.buf
        pseq, qseq = _seq(pbuf), _seq(qbuf)
        times = []
        clock = time.perf_counter_ns
        for seq in range(1, rounds + 1):
            t0 = clock()
            pbuf[8 : 8 + size] = payload
            pseq[0] = seq
            while qseq[0] != seq:
                pass
            reply = bytes(qbuf[8 : 8 + size])
            times.append(clock() - t0)
        assert reply == payload
        child.join(60)
        pseq.release()
        qseq.release()
        del pbuf, qbuf
    finally:
        for shm in (ping, pong):
            shm.close()
            shm.unlink()
    return times


# --- idle waiter CPU ----------------------------------------------------------


def _idle_filemap(name: str, seconds: float, out: Any) -> None:
    with filemap.FileMap(name, create=False) as fm:
        before = os.times()
        fm.wait_change(fm.generation, timeout=seconds)
        after = os.times()
    out.put((after.user - before.user) + (after.system - before.system))


def _idle_shm(name: str, seconds: float, out: Any) -> None:
    shm = _attach(name)
    buf = shm.buf
    seq = _seq(buf)
    before = os.times()
    deadline = time.monotonic() + seconds
    while seq[0] == 0 and time.monotonic() < deadline:
        pass
    after = os.times()
    seq.release()
    del buf
    shm.close()
    out.put((after.user - before.user) + (after.system - before.system))


def idle_cpu(seconds: float) -> dict[str, float]:
    """CPU seconds per second burnt by a waiter nobody wakes."""
    out = SPAWN.Queue()
    result = {}
    with filemap.FileMap(f"bench-idle-{os.getpid()}") as fm:
        p = SPAWN.Process(target=_idle_filemap, args=(fm.name, seconds, out))
        p.start()
        result["filemap wait_change"] = out.get(timeout=60) / seconds
        p.join()
    shm = shared_memory.SharedMemory(create=True, size=8)
    try:
        p = SPAWN.Process(target=_idle_shm, args=(shm.name, seconds, out))
        p.start()
        result["shared_memory busy-poll"] = out.get(timeout=60) / seconds
        p.join()
    finally:
        shm.close()
        shm.unlink()
    return result


# --- driver -------------------------------------------------------------------

METHODS: dict[str, Callable[[int, int], list[int]]] = {
    "filemap wait_change": lambda size, n: bench_filemap(size, n, "default"),
    'filemap wait_change(strategy="sleep")': lambda size, n: bench_filemap(size, n, "sleep"),
    "filemap wait_change(spin=50µs)": lambda size, n: bench_filemap(size, n, "spin-first"),
    'filemap wait_change(strategy="adaptive")': lambda size, n: bench_filemap(size, n, "adaptive"),
    'filemap wait_change(strategy="spin")': lambda size, n: bench_filemap(size, n, "spin"),
    "multiprocessing.Pipe": bench_pipe,
    "multiprocessing.Queue": bench_queue,
    "shared_memory busy-poll": bench_shm,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=2000, help="timed round trips per run")
    parser.add_argument("--runs", type=int, default=3, help="runs per method and size")
    parser.add_argument("--idle", type=float, default=2.0, help="seconds of idle waiting")
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--pin", action="store_true", help="pin the two processes to a core each")
    parser.add_argument("--load", type=int, default=0, help="CPU-bound processes running beside the pair")
    args = parser.parse_args()
    global PIN
    PIN = args.pin and len(os.sched_getaffinity(0)) >= 2
    _pin(0)
    hogs = [SPAWN.Process(target=_hog, daemon=True) for _ in range(args.load)]
    for hog in hogs:
        hog.start()
    try:
        run(args)
    finally:
        for hog in hogs:
            hog.kill()
            hog.join()


def _hog() -> None:
    """A CPU-bound process: the load of ``--load``."""
    while True:
        pass


def run(args: argparse.Namespace) -> None:
    print(f"load: {args.load} CPU-bound processes beside the pair; os.getloadavg() {os.getloadavg()}", flush=True)

    results: dict[str, dict[str, float]] = {}
    for name, bench in METHODS.items():
        for size in SIZES:
            samples: list[int] = []
            for _ in range(args.runs):
                samples += bench(size, args.rounds + WARMUP)[WARMUP:]
            median_us = statistics.median(samples) / 1000
            results.setdefault(name, {})[str(size)] = median_us
            print(f"{name:40} {size:>6} B  median {median_us:8.2f} us  ({len(samples)} round trips)", flush=True)
    idle = idle_cpu(args.idle)

    pipe8 = results["multiprocessing.Pipe"]["8"]
    poll8 = results["shared_memory busy-poll"]["8"]
    print()
    print("| method | 8 B | 64 KiB |")
    print("|---|---:|---:|")
    for name, by_size in results.items():
        print(f"| {name} | {by_size['8']:.2f} µs | {by_size[str(64 * 1024)]:.2f} µs |")
    print()
    default8 = results["filemap wait_change"]["8"]
    sleep8 = results['filemap wait_change(strategy="sleep")']["8"]
    if args.load == 0:
        print(f"filemap wait_change (default) / Pipe at 8 B: {default8 / pipe8:.3f}x (target on a quiet host <= 0.1x)")
    else:
        print(f"filemap wait_change (default) / strategy=\"sleep\" at 8 B under load: {default8 / sleep8:.2f}x (target <= 1.2x)")
    print(f"filemap wait_change(strategy=\"sleep\") / Pipe at 8 B: {sleep8 / pipe8:.2f}x (target <= 0.7x)")
    spin8 = results['filemap wait_change(strategy="spin")']["8"]
    print(f"filemap spin / busy-poll at 8 B: {spin8 / poll8:.2f}x (target <= 2x)")
    for name, cpu in idle.items():
        print(f"idle waiter CPU, {name}: {cpu * 1000:.1f} ms per second")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"round_trip_median_us": results, "idle_cpu_s_per_s": idle, "rounds": args.rounds, "runs": args.runs, "load": args.load}, f, indent=2)


if __name__ == "__main__":
    main()
