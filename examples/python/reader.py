"""Print every change published into region "demo" by another process.

Run these in two terminals:

    python examples/python/reader.py      # prints every change
    python examples/python/writer.py      # type lines here

Optional arguments: the region name, and a generation after which to exit
(used by the test that runs this pair). Ctrl-C stops it.
"""

import sys

import filemap


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "demo"
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
    with filemap.FileMap(name) as region:
        print(f"reader: watching region {name!r}", file=sys.stderr)
        seen = region.generation  # before "ready": no change after it is missed
        print("ready", flush=True)
        while limit is None or seen < limit:
            # Sleeps in the kernel until a publish; Ctrl-C interrupts it.
            if region.wait_change(seen, timeout=60) is None:
                continue
            snap = region.read()
            seen = snap.generation
            print(
                f"generation {snap.generation} from pid {snap.writer_pid}: {snap.text}",
                flush=True,
            )


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
