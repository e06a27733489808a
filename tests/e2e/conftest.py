"""Fixtures for the rvs end-to-end tests.

`lab` (module scope) runs `scripts/lab up`, writes a test copy of
config/lab.toml (short close timeouts, private control socket and DPDK file
prefix), starts rvsd in rvs-lb, waits until `rvsadm -L -n` answers, and at the
end of the module stops rvsd and runs `scripts/lab down`, always. When any
test failed, the rvsd log is printed. A module can define
`rvsd_config(text) -> text` to adjust the config (workers, limits) before
rvsd starts.

Tests marked `nolab` (bad configs) use no lab and run rvsd from the root
namespace: `pytest -m nolab tests/e2e` runs just those.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

import rvslab


def pytest_configure(config):
    config.addinivalue_line("markers", "nolab: runs without the lab fixture (no namespaces)")


@pytest.fixture(scope="session", autouse=True)
def _root_and_binaries():
    assert os.geteuid() == 0, "the end-to-end tests need root (namespaces, DPDK)"
    for binary in (rvslab.RVSD, rvslab.RVSADM):
        assert binary.is_file(), f"{binary} missing: run cargo build --release first"


@dataclass
class Lab:
    rvsd: rvslab.Rvsd
    socket: Path
    config: Path
    workdir: Path

    def rvsadm(self, *args: str, **kw):
        return rvslab.rvsadm(self.socket, *args, **kw)


def _report(request, title: str, text: str) -> None:
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    if reporter is not None:
        reporter.write_sep("-", title)
        reporter.write_line(text)
    else:
        print(f"---- {title} ----\n{text}")


@pytest.fixture(scope="module")
def lab(request, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("rvs-e2e")
    socket = workdir / "rvsd.sock"
    config = workdir / "lab-e2e.toml"
    text = rvslab.make_test_config(socket=socket, file_prefix="rvs-e2e")
    adjust = getattr(request.module, "rvsd_config", None)
    config.write_text(adjust(text) if adjust else text)
    log = workdir / "rvsd.log"
    rvsd = rvslab.Rvsd(config, socket, log)
    failed_before = request.session.testsfailed
    ready = False
    try:
        rvslab.lab("up")
        rvsd.start()
        rvsd.wait_ready(timeout=30)
        ready = True
        yield Lab(rvsd=rvsd, socket=socket, config=config, workdir=workdir)
    finally:
        status = rvsd.stop(grace=5)
        try:
            rvslab.lab("down")
        finally:
            if not ready or request.session.testsfailed > failed_before:
                _report(request, f"rvsd log ({log}, exit status {status})", rvsd.log_text())
