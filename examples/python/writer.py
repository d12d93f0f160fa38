"""Publish each line typed on standard input into region "demo".

Run these in two terminals:

    python examples/python/reader.py      # prints every change
    python examples/python/writer.py      # type lines here

Optional argument: the region name. The Rust examples
(cargo run --example reader / writer) and the `filemap` CLI share the
same regions, so any pair of them talks.
"""

import sys

import filemap


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "demo"
    with filemap.FileMap(name) as region:
        state = "attached" if region.existed_already else "created"
        print(
            f"writer: region {name!r} ({region.capacity} bytes, {state}); "
            "type lines, Ctrl-D to quit",
            file=sys.stderr,
        )
        for line in sys.stdin:
            generation = region.write(line.rstrip("\n"))
            print(f"published generation {generation}", flush=True)


if __name__ == "__main__":
    main()
