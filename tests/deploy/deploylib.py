"""Helpers for the deployment tests (tests/deploy). No NIC, no huge pages, no
running systemd needed: installs go into a temporary root, NIC binding and
huge pages run against a fake sysfs (the scripts' RVS_SYSFS hook) or with
--dry-run."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPTS = REPO / "scripts"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
RVSD = Path(os.environ.get("RVSD", TARGET / "release" / "rvsd"))
RVSADM = Path(os.environ.get("RVSADM", TARGET / "release" / "rvsadm"))


def run(cmd, *, env: dict | None = None, check: bool = False, timeout: float = 60,
        **kw) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True,
                          env=full_env, timeout=timeout, **kw)
    if check and proc.returncode != 0:
        raise AssertionError(f"{cmd} exited {proc.returncode}\nstdout:\n{proc.stdout}\n"
                             f"stderr:\n{proc.stderr}")
    return proc
