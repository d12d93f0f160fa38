#!/usr/bin/env python3
"""Write the seed corpora (corpus/<target>/seed-*) and the dictionaries
(dict/<target>.dict) the fuzz targets start from: the test suites' hostile
cases, in each target's input format (see the comment at the top of each
fuzz_targets/*.rs). Run again after a change of an input format; the
campaign's own finds (corpus/<target>/ other files) are kept.

`region`'s raw seed is a real region file: pass a `filemap` binary as
FILEMAP=path to refresh it, else the one in the corpus is kept.
"""
import json
import os
import struct
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


def field(b):
    assert len(b) < 256
    return bytes([len(b)]) + b


# ---- region: mode byte; patch mode (even): capacity u16, initial content
# (length byte + bytes), then patches (offset u16, kind, ...).
# Header offsets as in filemap/src/layout.rs's table (the harness itself
# takes every offset from a region the library made).
MAGIC, VERSION, CAPACITY, LOCK, LOCK_PID, GENERATION = 0, 8, 16, 64, 72, 128
BUF0, BUF1, NOTIFY, SLOTS = 256, 384, 512, 768


def patch(offset, data):
    return struct.pack("<HB", offset, 3) + field(data)


def region_patch(cap, content, *patches):
    return b"\x00" + struct.pack("<H", cap - 32) + field(content) + b"".join(patches)


put("region", "valid", region_patch(64, b"seed content"))
put("region", "bad-magic", region_patch(64, b"x", patch(MAGIC, b"NOTAMAP!")))
put("region", "future-version", region_patch(64, b"x", patch(VERSION, struct.pack("<I", 99))))
put("region", "huge-capacity", region_patch(64, b"x", patch(CAPACITY, struct.pack("<Q", 1 << 40))))
put("region", "tiny-capacity", region_patch(64, b"x", patch(CAPACITY, struct.pack("<Q", 8))))
put("region", "lock-held-by-us", region_patch(64, b"x", struct.pack("<HB", LOCK_PID, 0), struct.pack("<HB", LOCK, 0)))
put("region", "lock-held-by-init", region_patch(64, b"x", struct.pack("<HB", LOCK_PID, 1), patch(LOCK, struct.pack("<Q", 1 | (1 << 32)))))
put("region", "generation-max", region_patch(64, b"x", patch(GENERATION, b"\xff" * 8)))
put("region", "len-past-capacity", region_patch(64, b"x", patch(BUF1 + 8, struct.pack("<Q", 1 << 20)), patch(BUF0 + 8, struct.pack("<Q", 65))))
put("region", "seq-writing", region_patch(64, b"x", patch(BUF1, b"\xff" * 8), patch(BUF0, b"\xff" * 8)))
put("region", "notify-sleepers", region_patch(64, b"x", patch(NOTIFY, struct.pack("<II", 0xFFFFFFFF, 0xFFFFFFFF))))
put("region", "slots-full", region_patch(64, b"x", *[struct.pack("<HB", SLOTS + 24 * i, 1) for i in range(0, 40)]))
put("region", "slot-us", region_patch(64, b"x", struct.pack("<HB", SLOTS, 0)))
put("region", "empty-file", b"\x01")
put("region", "short-file", b"\x01FILEMAP\x01\x04\x00\x00\x00")
fm = os.environ.get("FILEMAP")
if fm:
    name = "fzseed%d" % os.getpid()
    subprocess.run([fm, "write", name, "seed content", "--capacity", "64"], check=True)
    with open("/dev/shm/filemap." + name, "rb") as f:
        raw = f.read()
    subprocess.run([fm, "rm", name], check=True)
    put("region", "raw-valid", b"\x01" + raw)

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

# ---- protocol: seq u16, then (len, op[, point]) steps.
put("protocol", "write-read", b"\x00\x01" + b"\x10\x00" + b"\x00\x05" + b"\x20\x00" + b"\x00\x05")
put("protocol", "kill-each-point", b"\x00\x02" + b"".join(b"\x30\x03" + bytes([p]) + b"\x00\x05" for p in range(4)))
put("protocol", "loan-update-read-into", b"\x00\x03" + b"\x11\x01\x12\x01\x13\x02\x08\x04\x40\x04\x00\x05")

# ---- dictionaries
def dict_line(name, data):
    return '%s="%s"\n' % (name, "".join("\\x%02x" % c for c in data))


dicts = {
    "region": [("magic", b"FILEMAP\x01"), ("version4", struct.pack("<I", 4)), ("version5", struct.pack("<I", 5)),
               ("persistent", struct.pack("<I", 1)), ("removed", struct.pack("<I", 2)),
               ("cap_min", struct.pack("<Q", 32)), ("cap_max", struct.pack("<Q", 1 << 30)),
               ("cap_over", struct.pack("<Q", (1 << 30) + 1)), ("seq_writing", b"\xff" * 8),
               ("lock_contended", struct.pack("<Q", 1 << 31)), ("lock_starving", struct.pack("<Q", 1 << 30)),
               ("reclaiming", b"\xff" * 4)]
              + [("off_%d" % o, struct.pack("<H", o)) for o in
                 (MAGIC, VERSION, CAPACITY, 24, 28, 32, LOCK, LOCK_PID, 76, GENERATION, BUF0, BUF0 + 8, BUF0 + 16,
                  BUF1, BUF1 + 8, BUF1 + 16, NOTIFY, 516, 640, SLOTS, 3840, 4096)],
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
                                       "--capacity", "--transient", "--stale", "--init", "--help", "-")]
           + [("k", b"k"), ("M", b"M"), ("G", b"G"), ("kib", b"KiB"), ("sep", b"\x00"), ("part", b"\xff")],
}
os.makedirs(os.path.join(HERE, "dict"), exist_ok=True)
for target, entries in dicts.items():
    with open(os.path.join(HERE, "dict", target + ".dict"), "w") as f:
        f.write("# filemap-fuzz: %s (written by seeds.py)\n" % target)
        for name, data in entries:
            f.write(dict_line(name, data))
