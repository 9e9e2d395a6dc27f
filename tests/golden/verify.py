#!/usr/bin/env python3
"""Sanity-check captured golden fixtures (no Kafka needed).

For every client dir under core/tests/fixtures/golden (or the dirs given):
- each .req starts with (api_key, api_version, correlation_id) matching manifest + file name,
- each .resp starts with the same correlation id,
- record batches (magic 2) found in produce requests / fetch responses have a valid CRC-32C;
  reports the compression codecs seen per client (attributes & 0x7).

usage: verify.py [FIXTURE_ROOT or CLIENT_DIR ...]
"""
import os
import struct
import sys

try:
    import crc32c as _crc

    def crc32c(b):
        return _crc.crc32c(b)
except ImportError:  # slow pure-Python fallback
    _T = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        _T.append(c)

    def crc32c(b):
        c = 0xFFFFFFFF
        for x in b:
            c = _T[(c ^ x) & 0xFF] ^ (c >> 8)
        return c ^ 0xFFFFFFFF

CODECS = {0: "none", 1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}


def batches(buf):
    """Yield (attributes, record_count) for every CRC-valid v2 record batch in buf."""
    i = 0
    n = len(buf)
    while i + 61 <= n:
        if buf[i + 16] == 2:
            (blen,) = struct.unpack_from(">i", buf, i + 8)
            end = i + 12 + blen
            if 49 <= blen and end <= n:
                (crc,) = struct.unpack_from(">I", buf, i + 17)
                if crc32c(bytes(buf[i + 21:end])) == crc:
                    (attrs,) = struct.unpack_from(">h", buf, i + 21)
                    (count,) = struct.unpack_from(">i", buf, i + 57)
                    yield attrs, count
                    i = end
                    continue
        i += 1


def check_dir(d):
    errors = []
    man = os.path.join(d, "manifest.tsv")
    rows = [l.rstrip("\n").split("\t") for l in open(man)][1:]
    produced = {}
    fetched = {}
    for r in rows:
        seq, key, ver, corr, req_len, resp_len = (int(x) for x in r[:6])
        base = os.path.join(d, "%04d-%s-v%d" % (seq, r[7], ver))
        req = open(base + ".req", "rb").read()
        if len(req) != req_len or struct.unpack_from(">hhi", req) != (key, ver, corr):
            errors.append("%s.req: header/len mismatch" % base)
        if key == 0:
            for a, c in batches(req):
                produced[CODECS.get(a & 7, a & 7)] = produced.get(CODECS.get(a & 7, a & 7), 0) + 1
        if resp_len >= 0:
            resp = open(base + ".resp", "rb").read()
            if len(resp) != resp_len or struct.unpack_from(">i", resp)[0] != corr:
                errors.append("%s.resp: correlation/len mismatch" % base)
            if key == 1:
                for a, c in batches(resp):
                    fetched[CODECS.get(a & 7, a & 7)] = fetched.get(CODECS.get(a & 7, a & 7), 0) + 1
        elif os.path.exists(base + ".resp"):
            errors.append("%s.resp exists but manifest says no response" % base)
    return len(rows), produced, fetched, errors


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    args = sys.argv[1:] or [os.path.join(here, "..", "..", "core", "tests", "fixtures", "golden")]
    dirs = []
    for a in args:
        if os.path.exists(os.path.join(a, "manifest.tsv")):
            dirs.append(a)
        else:
            dirs += sorted(os.path.join(a, x) for x in os.listdir(a)
                           if os.path.exists(os.path.join(a, x, "manifest.tsv")))
    bad = 0
    for d in dirs:
        n, p, f, errs = check_dir(d)
        print("%-20s %4d requests  produced batches %s  fetched batches %s" % (os.path.basename(d), n, p, f))
        for e in errs:
            print("   ERROR", e)
        bad += len(errs)
    print("%d errors" % bad)
    sys.exit(1 if bad else 0)


if __name__ == "__main__":
    main()
