"""Fixtures for the deployment tests; helpers are in deploylib.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from deploylib import RVSADM, RVSD


@pytest.fixture(scope="session")
def release_bins() -> Path:
    """The directory holding release rvsd and rvsadm (scripts/install --no-build
    takes them from $CARGO_TARGET_DIR/release)."""
    for b in (RVSD, RVSADM):
        assert b.is_file(), f"{b} missing: run cargo build --release first"
    assert RVSD.parent == RVSADM.parent, "RVSD and RVSADM must be in one directory"
    return RVSD.parent


@pytest.fixture(scope="session", autouse=True)
def _root():
    assert os.geteuid() == 0, "the deployment tests run as root (namespaces, setpriv)"
