#!/usr/bin/env python3
"""Write the seed corpora (corpus/<target>/seed-*) and the dictionaries
(dict/<target>.dict) the fuzz targets start from: the test suites' hostile
cases, in each target's input format (see the comment at the top of each
fuzz_targets/*.rs). Run again after a change of an input format; the
campaign's own finds (corpus/<target>/ other files) are kept; stale
seed-* files go.

`region`'s raw seed is a real region file: pass a `filemap` binary as
FILEMAP=path to refresh it, else the one in the corpus is kept.
"""
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


# Seeds of an older input format go: every seed-* but the raw region
# file (kept unless FILEMAP refreshes it) is written again below.
for _target in os.listdir(os.path.join(HERE, "corpus")):
    for _f in os.listdir(os.path.join(HERE, "corpus", _target)):
        if _f.startswith("seed-") and _f != "seed-raw-valid":
            os.remove(os.path.join(HERE, "corpus", _target, _f))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def field(b):
    assert len(b) < 256
    return bytes([len(b)]) + b


# ---- region: mode byte; patch mode (even): capacity u16, maximum u16
# (even: the capacity; odd: capacity + value >> 1), initial content
# (length byte + bytes), growth length u16, then patches (offset u16,
# kind: bits 0-1 what, bit 2 laid after a handle opened, ...).
# Header offsets as in filemap/src/layout.rs's table, layout version 5
# (fuzz/src/lib.rs `layout` has the same, checked against the library).
VERSION_NOW = 5
MAGIC, VERSION, CAPACITY, LIFE, MAX_CAPACITY = 0, 8, 16, 32, 40
LOCK, LOCK_PID, LOCK_TID, GENERATION = 64, 72, 76, 128
BUF0, BUF1, NOTIFY, WAITERS, SPINNERS, SLOTS, NAME = 256, 384, 512, 516, 640, 768, 3840
HEADER_SIZE = 4096
MIN_CAPACITY, MAX_CAPACITY_LIMIT = 32, 1 << 30
LIVE = 4  # patch kind bit: laid once a handle is open


def stride(cap):
    return (cap + 63) & ~63


def region_size(max_cap):
    return HEADER_SIZE + 2 * stride(max_cap)


def patch(offset, data, live=False):
    return struct.pack("<HB", offset, 3 | (LIVE if live else 0)) + field(data)


def u64(v):
    return struct.pack("<Q", v % 2**64)


def region_patch(cap, content, *patches, max_cap=None, grow=0):
    if max_cap is None or max_cap == cap:
        extra = 0
    else:
        extra = ((max_cap - cap) << 1) | 1
    return (b"\x00" + struct.pack("<HH", cap - MIN_CAPACITY, extra) + field(content)
            + struct.pack("<H", grow) + b"".join(patches))


G = 64 + 4096  # a growable region: capacity 64, maximum 4160
put("region", "valid", region_patch(64, b"seed content"))
put("region", "valid-inline-max", region_patch(32, b"x" * 32))
put("region", "valid-buffer", region_patch(64, b"b" * 64))
put("region", "growable", region_patch(64, b"seed content", max_cap=G, grow=1000))
put("region", "growable-large", region_patch(2079, b"g" * 200, max_cap=2079 + 0x7fff, grow=0xffff))
put("region", "grown-at-creation", region_patch(32, b"z" * 200, max_cap=G, grow=7))
put("region", "bad-magic", region_patch(64, b"x", patch(MAGIC, b"NOTAMAP!")))
put("region", "future-version", region_patch(64, b"x", patch(VERSION, struct.pack("<I", 99))))
put("region", "version-4", region_patch(64, b"x", patch(VERSION, struct.pack("<I", 4))))
put("region", "huge-capacity", region_patch(64, b"x", patch(CAPACITY, u64(1 << 40))))
put("region", "tiny-capacity", region_patch(64, b"x", patch(CAPACITY, u64(8))))
# The growth cases of filemap/tests (grow.rs, bad_input.rs, hostile.rs):
# absurd capacities and maxima, a capacity above the maximum, a maximum
# the file is too short for, a maximum below the capacity; before a
# handle opens (typed errors) and after (the handle keeps what it
# validated).
for when, live in (("", False), ("live-", True)):
    for tag, value in (("max", 2**64 - 1), ("limit-plus-one", MAX_CAPACITY_LIMIT + 1), ("zero", 0),
                       ("below-min", 31), ("page-minus-one", 4095)):
        put("region", when + "max-absurd-" + tag, region_patch(64, b"x", patch(MAX_CAPACITY, u64(value), live), max_cap=G))
    for tag, value in (("max", 2**64 - 1), ("zero", 0), ("over-max", G + 1), ("below-min", 31)):
        put("region", when + "capacity-absurd-" + tag, region_patch(64, b"x", patch(CAPACITY, u64(value), live), max_cap=G))
    put("region", when + "capacity-above-max", region_patch(64, b"x", patch(CAPACITY, u64(1 << 20), live)))
    put("region", when + "max-beyond-file", region_patch(64, b"x", patch(MAX_CAPACITY, u64(1 << 29), live), max_cap=G))
    put("region", when + "max-just-beyond-file", region_patch(64, b"x", patch(MAX_CAPACITY, u64(G + 64), live), max_cap=G))
    put("region", when + "max-below-capacity", region_patch(64, b"x", patch(MAX_CAPACITY, u64(32), live), max_cap=G))
    put("region", when + "max-smaller-valid", region_patch(64, b"y" * 100, patch(MAX_CAPACITY, u64(1000), live), max_cap=G))
    put("region", when + "len-past-capacity", region_patch(64, b"x", patch(BUF1 + 8, u64(1 << 20), live), patch(BUF0 + 8, u64(65), live)))
    put("region", when + "len-past-capacity-within-max", region_patch(64, b"x", patch(BUF1 + 8, u64(G), live), patch(BUF0 + 8, u64(4000), live), max_cap=G))
    put("region", when + "len-past-max", region_patch(64, b"x", patch(BUF1 + 8, u64(G + 1), live), patch(BUF0 + 8, u64(2**64 - 1), live), max_cap=G))
    put("region", when + "len-inline-edge", region_patch(64, b"x", patch(BUF1 + 8, u64(41), live), patch(BUF0 + 8, u64(40), live), max_cap=G))
put("region", "lock-held-by-us", region_patch(64, b"x", struct.pack("<HB", LOCK_PID, 0), struct.pack("<HB", LOCK, 0)))
put("region", "lock-held-by-init", region_patch(64, b"x", struct.pack("<HB", LOCK_PID, 1), patch(LOCK, u64(1 | (1 << 32)))))
put("region", "lock-held-by-init-growable", region_patch(64, b"x", struct.pack("<HB", LOCK_PID, 1), patch(LOCK, u64(1 | (1 << 32))), max_cap=G, grow=100))
put("region", "generation-max", region_patch(64, b"x", patch(GENERATION, b"\xff" * 8)))
put("region", "seq-writing", region_patch(64, b"x", patch(BUF1, b"\xff" * 8), patch(BUF0, b"\xff" * 8)))
put("region", "notify-sleepers", region_patch(64, b"x", patch(NOTIFY, struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF))))
put("region", "slots-full", region_patch(64, b"x", *[struct.pack("<HB", SLOTS + 24 * i, 1) for i in range(0, 40)]))
put("region", "slot-us", region_patch(64, b"x", struct.pack("<HB", SLOTS, 0)))
put("region", "empty-file", b"\x01")
put("region", "short-file", b"\x01FILEMAP\x01" + struct.pack("<I", VERSION_NOW))
fm = os.environ.get("FILEMAP")
if fm:
    name = "fzseed%d" % os.getpid()
    subprocess.run([fm, "write", name, "seed content", "--capacity", "64", "--max-capacity", "128"], check=True)
    with open("/dev/shm/filemap." + name, "rb") as f:
        raw = f.read()
    subprocess.run([fm, "rm", name], check=True)
    assert raw[:8] == b"FILEMAP\x01" and struct.unpack_from("<I", raw, VERSION)[0] == VERSION_NOW, "not a v5 region"
    assert struct.unpack_from("<QQ", raw, CAPACITY)[0] == 64 and struct.unpack_from("<Q", raw, MAX_CAPACITY)[0] == 128
    assert len(raw) == region_size(128), len(raw)
    put("region", "raw-valid", b"\x01" + raw)
raw_path = os.path.join(HERE, "corpus", "region", "seed-raw-valid")
if os.path.exists(raw_path):
    with open(raw_path, "rb") as f:
        raw = f.read()[1:]

    def raw_with(offset, value):
        return b"\x01" + raw[:offset] + u64(value) + raw[offset + 8:]

    # The file is region_size(128) long: a maximum past it, a file cut
    # short of its maximum, sizes past any limit.
    put("region", "raw-max-beyond-file", raw_with(MAX_CAPACITY, 192))
    put("region", "raw-truncated", b"\x01" + raw[:-64])
    put("region", "raw-max-absurd", raw_with(MAX_CAPACITY, 2**64 - 1))
    put("region", "raw-capacity-above-max", raw_with(CAPACITY, 129))
    put("region", "raw-len-past-max", raw_with(BUF1 + 8, 129))

# ---- value: the content of a region holding a typed value.
def value(codec, tag, payload):
    return b"FMV\x01" + bytes([codec]) + struct.pack("<H", len(tag)) + tag + payload


sample = {"name": "n", "count": 3, "ratio": 0.5, "tags": ["a"], "nested": None,
          "kind": "Unit", "table": {"k": -1}, "bytes": [1, 2]}
put("value", "json-sample", value(2, b"fuzz::Sample", json.dumps(sample).encode()))
put("value", "json-deep", value(2, b"t", b"[" * 130 + b"]" * 130))
put("value", "json-deep-in-string", value(2, b"t", b'"' + b"[" * 200 + b'"'))
put("value", "json-escapes", value(2, b"t", b'{"\\u0000\\ud800":"\\"["}'))
put("value", "json-number", value(2, b"t", b"1e999999"))
# MessagePack: fixmap {name: "n", count: 3}, array32 claiming 2^32-1 items,
# str32 claiming 4 GiB, nested arrays, bin, ext, invalid UTF-8.
put("value", "msgpack-map", value(1, b"fuzz::Sample", b"\x82\xa4name\xa1n\xa5count\x03"))
put("value", "msgpack-array32-huge", value(1, b"t", b"\xdd\xff\xff\xff\xff\x01"))
put("value", "msgpack-str32-huge", value(1, b"t", b"\xdb\xff\xff\xff\xffabc"))
put("value", "msgpack-deep", value(1, b"t", b"\x91" * 200 + b"\xc0"))
put("value", "msgpack-map32-deep", value(1, b"t", b"\xdf\xff\xff\xff\xff\xa1k" * 60 + b"\xc0"))
put("value", "msgpack-bin-ext", value(1, b"t", b"\x92\xc4\x03abc\xd4\x01\x02"))
put("value", "msgpack-bad-utf8", value(1, b"t", b"\xa2\xff\xfe"))
put("value", "msgpack-enum", value(1, b"t", b"\x81\xa4Pair\x92\x01\xcd\x01\x00"))
put("value", "bad-codec", value(7, b"t", b"\xc0"))
put("value", "tag-not-utf8", value(2, b"\xff\xfe", b"null"))
put("value", "tag-past-end", b"FMV\x01\x02\xff\xffab")
put("value", "plain-text", b"not a value")

# ---- bridge: flags (bit 0 attachment, bit 1 exact 56 bytes), attachment, payload.
def meta(length, time=0x1234_5678_9ABC_DEF0, host=b"\x07" * 16, gen=42, pid=99, handle=3, version=1, magic=b"FMBR"):
    return magic + bytes([version]) + b"\0\0\0" + struct.pack("<Q", time) + host + struct.pack("<QIIQ", gen, pid, handle, length)


put("bridge", "valid", b"\x03" + meta(5) + b"hello")
put("bridge", "no-attachment", b"\x00no attachment")
put("bridge", "short", b"\x01" + field(b"FMBR") + b"short")
put("bridge", "wrong-version", b"\x03" + meta(3, version=99) + b"bad")
put("bridge", "wrong-magic", b"\x03" + meta(3, magic=b"XXXX") + b"bad")
put("bridge", "length-mismatch", b"\x03" + meta(3) + b"abcd")
put("bridge", "length-max", b"\x03" + meta(2**64 - 1) + b"x")
put("bridge", "over-capacity", b"\x03" + meta(1500) + b"y" * 1500)
put("bridge", "reserved-set", b"\x03" + meta(2)[:5] + b"\xff\xff\xff" + meta(2)[8:] + b"ok")
put("bridge", "far-future", b"\x03" + meta(6, time=2**64 - 1) + b"future")

# ---- ffi: steps (see fuzz_targets/ffi.rs `step`). open = 0, name field,
# NUL flag, capacity kind, flags kind, out flag.
def ffi_open(name, nul=1, cap=b"\x03", flags=b"\x01\x00", out=1):
    return b"\x00" + field(name) + bytes([nul]) + cap + flags + bytes([out])


def ffi_write(content, handle=3, cond=0, expected=b"\0" * 8):
    return b"\x02" + bytes([cond, handle]) + expected + field(content) + b"\x01"


def ffi_read(cap, handle=3, outs=0):
    return b"\x04" + bytes([handle]) + struct.pack("<H", cap) + b"\x01" + bytes([outs])


put("ffi", "open-write-read", ffi_open(b"a") + ffi_write(b"hello") + ffi_read(5) + ffi_read(4))
put("ffi", "name-without-nul", ffi_open(b"a" * 255, nul=0) + ffi_open(b"abc", nul=0))
put("ffi", "name-256", ffi_open(b"b" * 255) + ffi_open(b"c" * 254))
put("ffi", "name-not-utf8", ffi_open(b"\xff\xfe"))
put("ffi", "name-separator", ffi_open(b"a/b") + ffi_open(b"..") + ffi_open(b""))
put("ffi", "capacity-huge", ffi_open(b"h", cap=b"\x00" + struct.pack("<Q", 2**64 - 1)))
put("ffi", "capacity-zero", ffi_open(b"z", cap=b"\x02"))
put("ffi", "flags-both", ffi_open(b"f", flags=b"\x01\x03") + ffi_open(b"g", flags=b"\x00\xff\xff\xff\xff"))
put("ffi", "bogus-handles", b"\x05\x01" + b"\0" * 8 + b"\x00" + b"\x05\x02\x00" + b"\x05\x00\x00" + b"\x01\x01\x01" + b"A" * 8)
put("ffi", "too-large", ffi_open(b"t", cap=b"\x01\x00\x00") + ffi_write(b"x" * 40) + ffi_read(0))
put("ffi", "lock-write-wait", ffi_open(b"l") + b"\x08\x03\x00" + ffi_write(b"under lock") + b"\x08\x03\x01" + b"\x09\x03" + b"\0" * 8 + b"\x01\x01\x10\x00")
put("ffi", "remove-clean", ffi_open(b"r", flags=b"\x01\x00") + b"\x06" + field(b"r") + b"\x01" + b"\x07\x01")

# ---- cli: arguments (NUL-separated) 0xff region v's content 0xff stdin.
def cli(*args, v=b"", stdin=b""):
    return b"\0".join(args) + b"\xff" + v + b"\xff" + stdin


put("cli", "write-text", cli(b"write", b"a", b"hello"))
put("cli", "write-stdin", cli(b"write", b"n", b"--capacity", b"1k"), )
put("cli", "write-stdin-over", cli(b"write", b"a", stdin=b"z" * 100))
put("cli", "write-capacity-units", cli(b"write", b"n", b"-", b"--capacity", b"999999999999G", stdin=b"x"))
put("cli", "write-grows", cli(b"write", b"g", b"--capacity", b"64", b"--max-capacity", b"4k", stdin=b"g" * 100))
put("cli", "write-max-below-capacity", cli(b"write", b"g", b"x", b"--capacity", b"4k", b"--max-capacity", b"64"))
put("cli", "write-max-over-limit", cli(b"write", b"g", b"x", b"--max-capacity", b"2G"))
put("cli", "write-past-max", cli(b"write", b"a", b"--max-capacity", b"128", stdin=b"z" * 100))
put("cli", "write-capacity-odd", cli(b"write", b"n", b"--capacity", b"0x10k", b"--transient"))
put("cli", "read-json-value", cli(b"read", b"v", b"--json", v=value(2, b"t", b'{"a":[1,{"b":null}]}')))
put("cli", "read-json-msgpack", cli(b"read", b"v", b"--json", v=value(1, b"t", b"\x92\xc4\x03abc\xcb@\t!\xfbTD-\x18")))
put("cli", "read-json-deep", cli(b"read", b"v", b"--json", v=value(2, b"t", b"[" * 127 + b"]" * 127)))
put("cli", "read-json-text", cli(b"read", b"a", b"--json"))
put("cli", "info-json", cli(b"info", b"a", b"--json"))
put("cli", "ls-json", cli(b"ls", b"--json"))
put("cli", "rm-stale", cli(b"rm", b"--stale", b"a"))
put("cli", "bad-names", cli(b"read", b"../etc"))
put("cli", "memo-parse", cli(b"memo", b"x", b"--capacity", b"64K"))

# ---- protocol: seq u16, then (len, op[, point]) steps; a length byte
# with bit 7 set is (byte & 0x7f) * 97 bytes (past the first capacity, 64,
# up to the maximum, 16 KiB).
def grown(n):
    return 0x80 | n


put("protocol", "write-read", b"\x00\x01" + b"\x10\x00" + b"\x00\x05" + b"\x20\x00" + b"\x00\x05")
put("protocol", "kill-each-point", b"\x00\x02" + b"".join(b"\x30\x03" + bytes([p]) + b"\x00\x05" for p in range(4)))
put("protocol", "loan-update-read-into", b"\x00\x03" + b"\x11\x01\x12\x01\x13\x02\x08\x04\x40\x04\x00\x05")
put("protocol", "grow-by-write-loan-update", b"\x00\x04" + bytes([grown(1), 0, 0, 5, grown(50), 1, grown(100), 2, grown(127), 0, 0, 5]))
put("protocol", "kill-growing-loan", b"\x00\x05" + b"".join(bytes([grown(20 + 30 * p), 3, p, 0, 5]) for p in range(4)))
put("protocol", "grow-then-small-reads", b"\x00\x06" + bytes([grown(127), 0, 0x10, 4, grown(3), 4, 0, 5]))

# ---- dictionaries
def dict_line(name, data):
    return '%s="%s"\n' % (name, "".join("\\x%02x" % c for c in data))


dicts = {
    "region": [("magic", b"FILEMAP\x01"), ("version4", struct.pack("<I", 4)),
               ("version5", struct.pack("<I", VERSION_NOW)),
               ("persistent", struct.pack("<I", 1)), ("removed", struct.pack("<I", 2)),
               ("cap_min", u64(MIN_CAPACITY)), ("cap_below_min", u64(MIN_CAPACITY - 1)),
               ("cap_max", u64(MAX_CAPACITY_LIMIT)), ("cap_over", u64(MAX_CAPACITY_LIMIT + 1)),
               ("cap_4k", u64(4096)), ("cap_64k", u64(64 << 10)), ("inline", u64(40)), ("inline_over", u64(41)),
               ("u64_max", b"\xff" * 8),
               ("lock_contended", u64(1 << 31)), ("lock_starving", u64(1 << 30)),
               ("reclaiming", b"\xff" * 4)]
              + [("off_%d" % o, struct.pack("<H", o)) for o in
                 (MAGIC, VERSION, 12, CAPACITY, 24, 28, LIFE, MAX_CAPACITY, LOCK, LOCK_PID, LOCK_TID, GENERATION,
                  BUF0, BUF0 + 8, BUF0 + 16, BUF0 + 24, BUF1, BUF1 + 8, BUF1 + 16, BUF1 + 24,
                  NOTIFY, WAITERS, SPINNERS, SLOTS, NAME, HEADER_SIZE)]
              # Buffer 1 of the regions the seeds make (placed by the maximum).
              + [("buf1_max_%d" % m, struct.pack("<H", HEADER_SIZE + stride(m))) for m in (64, G)],
    "value": [("magic", b"FMV\x01"), ("msgpack", b"FMV\x01\x01"), ("json", b"FMV\x01\x02"),
              ("array32", b"\xdd"), ("map32", b"\xdf"), ("str32", b"\xdb"), ("bin32", b"\xc6"), ("ext32", b"\xc9"),
              ("f64", b"\xcb"), ("u64", b"\xcf"), ("nil", b"\xc0"), ("huge", b"\xff\xff\xff\xff"),
              ("name", b"name"), ("count", b"count"), ("Pair", b"Pair"), ("Named", b"Named"),
              ("unicode_escape", b"\\u"), ("surrogate", b"\\ud800"), ("exp", b"e999")],
    "bridge": [("magic", b"FMBR"), ("version", b"\x01"), ("len56", b"\x38"),
               ("u64max", b"\xff" * 8)],
    "ffi": [("persistent_flags", b"\x04\x00\x00\x00"), ("both_flags", b"\x03\x00\x00\x00"),
            ("map_magic", b"fm_map\x01\x00"), ("cap_max", struct.pack("<Q", 1 << 30)),
            ("dotdot", b".."), ("slash", b"/")],
    "cli": [(w, w.encode()) for w in ("write", "read", "info", "ls", "rm", "memo", "watch", "--json",
                                       "--capacity", "--max-capacity", "--transient", "--stale", "--init", "--help", "-")]
           + [("k", b"k"), ("M", b"M"), ("G", b"G"), ("kib", b"KiB"), ("sep", b"\x00"), ("part", b"\xff")],
}
os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
for target, entries in dicts.items():
    with open(os.path.join(HERE, "dict", target + ".dict"), "w") as f:
        f.write("# filemap-fuzz: %s (written by seeds.py)\n" % target)
        for name, data in entries:
            f.write(dict_line(name, data))
