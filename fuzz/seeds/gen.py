#!/usr/bin/env python3
"""Writes the checked-in seed corpora of the packet fuzz targets from the
golden fixtures: every input frame of dataplane/tests/golden/*.pcap, whole
for pipeline_frames, from the IP header on for wire_parsers (file name:
<case>_<step>). Rerun after tests/golden/gen.py changes the fixtures:

    python3 fuzz/seeds/gen.py
"""

import pathlib
import struct

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"

for target in ("pipeline_frames", "wire_parsers"):
    d = SEEDS / target
    d.mkdir(parents=True, exist_ok=True)
    for old in d.iterdir():
        old.unlink()
for pcap in sorted((ROOT / "dataplane" / "tests" / "golden").glob("*.pcap")):
    b = pcap.read_bytes()
    at, k = 24, 0
    while at + 16 <= len(b):
        n = struct.unpack("<I", b[at + 8:at + 12])[0]
        frame = b[at + 16:at + 16 + n]
        if k % 2 == 0:  # inputs; the expected frames follow them
            name = f"{pcap.stem}_{k // 2:02}"
            (SEEDS / "pipeline_frames" / name).write_bytes(frame)
            (SEEDS / "wire_parsers" / name).write_bytes(frame[14:])
        k += 1
        at += 16 + n
