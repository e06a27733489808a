"""gen.py is the source of truth for the golden packet files: what is checked
in under dataplane/tests/golden/ must be exactly what it generates. Needs
scapy for the python running pytest (`apt-get install python3-scapy`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
GEN = HERE / "gen.py"
CHECKED_IN = HERE.parents[1] / "dataplane" / "tests" / "golden"


def gen(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(GEN), *args], capture_output=True, text=True, timeout=120)


def generated(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir()) if p.suffix in (".pcap", ".txt")}


def test_checked_in_files_are_what_gen_py_writes(tmp_path: Path) -> None:
    r = gen("--out", str(tmp_path))
    assert r.returncode == 0, f"gen.py failed:\n{r.stdout}{r.stderr}"
    fresh, checked_in = generated(tmp_path), generated(CHECKED_IN)
    assert fresh, "gen.py wrote no cases"
    assert sorted(fresh) == sorted(checked_in), "case files differ: rerun /usr/bin/python3 tests/golden/gen.py and commit"
    stale = [n for n in fresh if fresh[n] != checked_in[n]]
    assert not stale, f"{stale} differ from gen.py's output: rerun /usr/bin/python3 tests/golden/gen.py and commit"
    # Every case has its manifest and its frames.
    assert {Path(n).stem for n in fresh if n.endswith(".txt")} == {Path(n).stem for n in fresh if n.endswith(".pcap")}


def test_check_mode_reports_a_changed_file(tmp_path: Path) -> None:
    copy = tmp_path / "golden"
    shutil.copytree(CHECKED_IN, copy)
    assert gen("--check", "--out", str(copy)).returncode == 0
    victim = sorted(copy.glob("*.pcap"))[0]
    b = bytearray(victim.read_bytes())
    b[-1] ^= 0xFF
    victim.write_bytes(bytes(b))
    (copy / "stale_case.txt").write_text("# left behind\n")
    r = gen("--check", "--out", str(copy))
    assert r.returncode == 1
    assert f"{victim.name}: differs" in r.stderr and "stale_case.txt: not generated" in r.stderr, r.stderr
