"""After `kill -9` of rvsd, `scripts/lab start-rvsd` starts a new one and
says so truthfully: the dead rvsd's pid file is dropped, the new rvsd
removes the stale control socket and DPDK runtime directory it finds (and
logs that), and the script reports the new pid once `rvsadm -L -n`
answers. Also: a control socket path that is not a socket is refused by
`rvsd --check-config` at its line, and the file is left alone.

Uses the lab's own config (config/lab.toml: /run/rvs/rvsd.sock, DPDK file
prefix rvs-lab) through scripts/lab, as an operator would."""

from __future__ import annotations

import os
import re
import signal
import stat
import subprocess
import time
from pathlib import Path

import pytest

import rvslab

SOCKET = Path("/run/rvs/rvsd.sock")
EAL_DIR = Path("/run/dpdk/rvs-lab")
LOG = rvslab.RUN / "rvsd.log"


def lab_script(*args: str) -> subprocess.CompletedProcess:
    return rvslab.run(["bash", str(rvslab.LAB), *args], timeout=90)


def pid_of_file() -> int:
    return int(rvslab.RVSD_PID.read_text().strip())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


@pytest.fixture
def lab_up():
    assert lab_script("up").returncode == 0
    try:
        yield
    finally:
        lab_script("stop-rvsd")
        lab_script("down")


def test_start_rvsd_after_kill_9_recovers_and_reports_truthfully(lab_up):
    first = lab_script("start-rvsd")
    assert first.returncode == 0, first.stderr
    pid = pid_of_file()
    assert f"rvsd ready (pid {pid})" in first.stdout + first.stderr
    os.kill(pid, signal.SIGKILL)
    rvslab.wait_until("rvsd to die", lambda: not alive(pid), timeout=10)
    # What it leaves: its pid file, socket and DPDK runtime directory.
    assert rvslab.RVSD_PID.exists() and stat.S_ISSOCK(SOCKET.lstat().st_mode) and EAL_DIR.is_dir()

    second = lab_script("start-rvsd")
    out = second.stdout + second.stderr
    assert second.returncode == 0, out
    new = pid_of_file()
    assert new != pid and alive(new), (pid, new)
    assert f"rvsd (pid {pid}) is gone: removing its pid file" in out, out
    assert f"rvsd ready (pid {new})" in out, out
    assert "exited during start-up" not in out, out
    log = LOG.read_text()
    assert f"rvsd: removed {EAL_DIR}: DPDK runtime files of a process that is gone" in log, log
    assert f"rvsd: removed the stale control socket {SOCKET} (left by a killed rvsd)" in log, log
    p = rvslab.rvsadm(SOCKET, "-L", "-n")
    assert rvslab.parse_services(p.stdout)[0].address == f"{rvslab.VIP}:80"
    assert rvslab.client_curl(rvslab.http_url(rvslab.VIP)).returncode == 0

    # A second start while it runs: refused, naming the running pid.
    third = lab_script("start-rvsd")
    assert third.returncode != 0 and f"rvsd already runs (pid {new})" in third.stderr, third
    assert alive(new)


def test_a_dpdk_prefix_in_use_is_named_and_left_alone(lab_up, tmp_path):
    assert lab_script("start-rvsd").returncode == 0
    running = pid_of_file()
    # Another rvsd with the lab's file prefix but a socket of its own.
    other = tmp_path / "other.toml"
    other.write_text(rvslab.set_key(rvslab.LAB_CONFIG.read_text(), "control", "socket",
                                    rvslab.toml_str(str(tmp_path / "other.sock"))))
    p = rvslab.in_ns("lb", [str(rvslab.RVSD), "--config", str(other)], timeout=30)
    assert p.returncode == 1, p
    assert f"rvsd: error: DPDK runtime directory {EAL_DIR} is in use by process {running}" in p.stderr, p.stderr
    assert EAL_DIR.is_dir() and alive(running)
    assert rvslab.rvsadm(SOCKET, "-L", "-n").returncode == 0


@pytest.mark.nolab
def test_a_socket_path_that_is_not_a_socket_is_refused_and_kept(tmp_path):
    text = rvslab.make_test_config(socket=tmp_path / "rvsd.sock", file_prefix="rvs-e2e-sock")
    for target in ["/etc/passwd", str(tmp_path / "precious")]:
        (tmp_path / "precious").write_text("keep me\n")
        bad = text.replace(f'socket = "{tmp_path / "rvsd.sock"}"', f'socket = "{target}"')
        assert bad != text
        path = tmp_path / "rvs.toml"
        path.write_text(bad)
        before = Path(target).read_bytes()
        for flag in ["--check-config", "--config"]:
            p = subprocess.run([str(rvslab.RVSD), flag, str(path)], capture_output=True, text=True, timeout=30)
            line = rvslab.line_of(bad, rf'^socket = "{re.escape(target)}"')
            assert p.returncode == 2, (flag, p)
            assert re.fullmatch(rf"rvsd: error: {re.escape(str(path))}:{line}:\d+: socket {re.escape(target)} exists and is not a socket.*\n", p.stderr), p.stderr
            assert Path(target).read_bytes() == before
    # A directory others may write to.
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    os.chmod(shared, 0o777)
    path.write_text(text.replace(f'socket = "{tmp_path / "rvsd.sock"}"', f'socket = "{shared / "rvsd.sock"}"'))
    p = subprocess.run([str(rvslab.RVSD), "--check-config", str(path)], capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and "others may write to its directory" in p.stderr, p.stderr
