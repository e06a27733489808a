#!/usr/bin/env python3
"""Generates the golden Maglev tables of dataplane/src/sched/mh.rs.

An independent transcription of the Linux kernel's net/netfilter/ipvs/ip_vs_mh.c
(ip_vs_mh_permutate + ip_vs_mh_populate, hsiphash of lib/siphash.c on a 64-bit
kernel with the keys of generate_hash_secret()), written from the C source and
not from rvs's Rust, so the Rust test compares two implementations.

    python3 gen_mh.py          # rewrite the *.txt files next to this script
    python3 gen_mh.py --check  # exit 1 if a file differs

Generated files: do not edit by hand.
"""

import math
import sys
from pathlib import Path

MASK = (1 << 64) - 1
KEY1 = (2654435761, 2654435761)
KEY2 = (2654446892, 2654446892)


def rol(x, b):
    return ((x << b) | (x >> (64 - b))) & MASK


def sipround(v0, v1, v2, v3):
    v0 = (v0 + v1) & MASK; v1 = rol(v1, 13); v1 ^= v0; v0 = rol(v0, 32)
    v2 = (v2 + v3) & MASK; v3 = rol(v3, 16); v3 ^= v2
    v0 = (v0 + v3) & MASK; v3 = rol(v3, 21); v3 ^= v0
    v2 = (v2 + v1) & MASK; v1 = rol(v1, 17); v1 ^= v2; v2 = rol(v2, 32)
    return v0, v1, v2, v3


def hsiphash(data: bytes, key) -> int:
    """__hsiphash_aligned(), BITS_PER_LONG == 64 (SipHash-1-3, 32-bit result)."""
    v0 = 0x736f6d6570736575 ^ key[0]
    v1 = 0x646f72616e646f6d ^ key[1]
    v2 = 0x6c7967656e657261 ^ key[0]
    v3 = 0x7465646279746573 ^ key[1]
    b = (len(data) << 56) & MASK
    full = len(data) - len(data) % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = sipround(v0, v1, v2, v3)
        v0 ^= m
    b |= int.from_bytes(data[full:], "little")
    v3 ^= b
    v0, v1, v2, v3 = sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xff
    for _ in range(3):
        v0, v1, v2, v3 = sipround(v0, v1, v2, v3)
    return (v0 ^ v1 ^ v2 ^ v3) & 0xffffffff


def hashkey(addr: int, port: int, key, offset: int) -> int:
    v = (offset + port + addr) & 0xffffffff
    return hsiphash(v.to_bytes(4, "little"), key)


def build(dests, size):
    """dests: list of (addr as int, port, last_weight) in list order."""
    tab_bits = (size.bit_length() - 1 + 1) // 2
    weights = [w for _, _, w in dests if w > 0]
    table = [None] * size
    if not weights:
        return table
    g = 0
    for w in weights:
        g = w if g == 0 else math.gcd(g, w)
    mw = max(w for _, _, w in dests) // g
    shift = max(mw.bit_length() - tab_bits, 0)
    setup = []
    for addr, port, lw in dests:
        offset = hashkey(addr, port, KEY1, 0) % size
        skip = hashkey(addr, port, KEY2, 0) % (size - 1) + 1
        turns = (lw // g) >> shift or (1 if lw != 0 else 0)
        setup.append([offset, skip, turns])
    taken = [False] * size
    n = dt_count = 0
    while n < size:
        d = 0
        while d < len(dests):
            perm, skip, turns = setup[d]
            if turns < 1:
                d += 1
                continue
            c = perm
            while taken[c]:
                perm += skip
                if perm >= size:
                    perm -= size
                c = perm
            setup[d][0] = perm
            taken[c] = True
            table[c] = d
            n += 1
            if n == size:
                return table
            dt_count += 1
            if dt_count >= turns:
                dt_count = 0
                d += 1
    return table


def members(n, weight):
    return [((10 << 24) | (1 << 16) | ((i // 250) << 8) | (i % 250 + 1), 80, weight(i)) for i in range(n)]


CASES = {
    "mh_3x251.txt": (members(3, lambda i: 1), 251),
    "mh_5x251_weighted.txt": (members(5, lambda i: [1, 2, 3, 0, 4][i]), 251),
    "mh_10x4093.txt": (members(10, lambda i: 1), 4093),
}


def render(table):
    rows = [table[i:i + 32] for i in range(0, len(table), 32)]
    return "".join(" ".join(str(x if x is not None else 65535) for x in row) + "\n" for row in rows)


def main():
    here = Path(__file__).resolve().parent
    check = "--check" in sys.argv
    # lib/siphash_kunit.c, first vectors of test_vectors_hsiphash (64-bit).
    key = (0x0706050403020100, 0x0f0e0d0c0b0a0908)
    assert [hsiphash(bytes(range(n)), key) for n in range(5)] == \
        [0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328]
    bad = 0
    for name, (dests, size) in CASES.items():
        text = render(build(dests, size))
        path = here / name
        if check:
            if path.read_text() != text:
                print(f"{name}: differs")
                bad = 1
        else:
            path.write_text(text)
    sys.exit(bad)


if __name__ == "__main__":
    main()
