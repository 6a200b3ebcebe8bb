#!/usr/bin/env python3
"""Prints the content hash of fraudstream model files, as defined in
models/FORMAT.md ("Content hash"): an independent implementation of the
canonical form, for checking a file written or edited by another tool.

    model_content_hash.py FILE...
"""

import json
import struct
import sys

MASK = (1 << 64) - 1


class Hash:
    def __init__(self):
        self.h = 0xCBF29CE484222325

    def write(self, data):
        for b in data:
            self.h = ((self.h ^ b) * 0x100000001B3) & MASK

    def finish(self):
        z = self.h
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
        return z ^ (z >> 31)


def encode(v, h):
    if v is None:
        h.write(b"\x00")
    elif v is False:
        h.write(b"\x01")
    elif v is True:
        h.write(b"\x02")
    elif isinstance(v, (int, float)):
        h.write(b"\x03" + struct.pack(">d", float(v) + 0.0))
    elif isinstance(v, str):
        b = v.encode("utf-8")
        h.write(b"\x04" + struct.pack(">Q", len(b)) + b)
    elif isinstance(v, list):
        h.write(b"\x05" + struct.pack(">Q", len(v)))
        for item in v:
            encode(item, h)
    else:
        items = sorted(v.items(), key=lambda kv: kv[0].encode("utf-8"))
        h.write(b"\x06" + struct.pack(">Q", len(items)))
        for k, item in items:
            encode(k, h)
            encode(item, h)


def content_hash(value):
    h = Hash()
    encode({k: v for k, v in value.items() if k != "content_hash"}, h)
    return "%016x" % h.finish()


if __name__ == "__main__":
    for path in sys.argv[1:]:
        with open(path, encoding="utf-8") as f:
            print(content_hash(json.load(f)), path)
