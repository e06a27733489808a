"""`rvsd --check-config FILE` validates a file without starting anything:
"FILE: ok" on stdout and exit 0 for a good file; for a bad one, exit 2 and
`rvsd: error: FILE:LINE:COL: reason` on stderr, the same message `rvsd
--config` gives. It is what rvsd.service runs before every start and reload,
so every config rvs ships must pass it. No lab needed."""

from __future__ import annotations

import os
import pwd
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

import rvslab

pytestmark = pytest.mark.nolab

# Every config the repository ships: the lab's, the Vagrant appliances' and
# the gateway example that scripts/install puts in /etc/rvs.
SHIPPED = sorted([rvslab.REPO / "config" / "lab.toml",
                  *(rvslab.REPO / "deploy").glob("*.toml"),
                  *(rvslab.REPO / "deploy" / "vagrant").glob("*.toml")])


def check(path, *, timeout: float = 10, user: str | None = None) -> subprocess.CompletedProcess:
    cmd = [str(rvslab.RVSD), "--check-config", str(path)]
    if user is not None:
        cmd = [*as_user(user), *cmd]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def as_user(user: str) -> list[str]:
    pw = pwd.getpwnam(user)
    return ["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--clear-groups"]


def base_text(tmp_path) -> str:
    return rvslab.make_test_config(socket=tmp_path / "rvsd.sock",
                                   file_prefix=f"rvs-e2e-check-{tmp_path.name}")


def write(tmp_path, text: str, name: str = "rvs.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def replace_line(text: str, pattern: str, new: str) -> tuple[str, int]:
    line = rvslab.line_of(text, pattern)
    lines = text.splitlines()
    lines[line - 1] = new
    return "\n".join(lines) + "\n", line


def assert_refused(proc, path: Path, line: int | None, what: str | None = None) -> str:
    out = proc.stderr
    assert proc.returncode == 2, f"exit {proc.returncode}, expected 2; stderr:\n{out}"
    assert proc.stdout == "", f"nothing on stdout for a bad file, got:\n{proc.stdout}"
    assert "panicked" not in out, out
    lines = out.strip().splitlines()
    assert len(lines) == 1, f"one line of error, got:\n{out}"
    if line is None:
        assert lines[0].startswith(f"rvsd: error: {path}: "), out
    else:
        m = re.fullmatch(rf"rvsd: error: {re.escape(str(path))}:(\d+):(\d+): (.+)", lines[0])
        assert m, f"not 'rvsd: error: FILE:LINE:COL: reason':\n{out}"
        assert int(m.group(1)) == line, f"points at line {m.group(1)}, the error is on {line}:\n{out}"
        assert int(m.group(2)) >= 1
    if what is not None:
        assert what in out, f"the message does not mention {what!r}:\n{out}"
    return lines[0]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: str(p.relative_to(rvslab.REPO)))
def test_shipped_configs_pass(path):
    proc = check(path)
    assert proc.returncode == 0, f"{path} refused:\n{proc.stderr}"
    assert proc.stdout == f"{path}: ok\n"
    assert proc.stderr == ""


def test_good_file_starts_nothing(tmp_path):
    """A check needs neither the device nor the socket directory: nothing is
    probed or created, and it returns at once."""
    text = base_text(tmp_path).replace("iface=lb0", "iface=nosuchif0")
    sock_dir = tmp_path / "run"
    text = text.replace(str(tmp_path / "rvsd.sock"), str(sock_dir / "rvsd.sock"))
    prefix = f"rvs-e2e-check-{tmp_path.name}"
    path = write(tmp_path, text)
    started = time.monotonic()
    proc = check(path)
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: ok\n"
    assert elapsed < 5, f"--check-config took {elapsed:.1f}s"
    assert not sock_dir.exists(), "--check-config created the control socket's directory"
    assert not Path("/run/dpdk", prefix).exists(), "--check-config initialised DPDK"


def test_good_file_needs_no_root(tmp_path):
    """Config linting works as an unprivileged user (CI, editors)."""
    user = "nobody"
    try:
        pwd.getpwnam(user)
    except KeyError:
        pytest.skip("no user nobody")
    # pytest's tmp_path lives in a root-only directory: use one nobody can read.
    with tempfile.TemporaryDirectory(prefix="rvs-check-") as d:
        os.chmod(d, 0o755)
        path = Path(d) / "rvs.toml"
        path.write_text(base_text(tmp_path))
        os.chmod(path, 0o644)
        proc = check_as(user, path)
    if proc is None:
        pytest.skip(f"{rvslab.RVSD} is not reachable for {user} (checkout permissions)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{path}: ok\n"


def check_as(user: str, path: Path) -> subprocess.CompletedProcess | None:
    probe = subprocess.run([*as_user(user), "test", "-x", str(rvslab.RVSD)], capture_output=True)
    if probe.returncode != 0:
        return None
    return check(path, user=user)


def test_toml_syntax_error(tmp_path):
    text, line = replace_line(base_text(tmp_path), r"^\s*scheduler\s*=", 'scheduler = "rr')
    path = write(tmp_path, text)
    assert_refused(check(path), path, line)


def test_bad_vip(tmp_path):
    text, line = replace_line(base_text(tmp_path), r"^\s*vip\s*=", 'vip = "10.77.0.300:80"')
    path = write(tmp_path, text)
    assert_refused(check(path), path, line, "10.77.0.300")


def test_unknown_key(tmp_path):
    text, line = replace_line(base_text(tmp_path), r"^\s*idle\s*=", 'idel = "backoff"')
    path = write(tmp_path, text)
    assert_refused(check(path), path, line, "idel")


def test_worker_on_main_lcore(tmp_path):
    text, line = replace_line(base_text(tmp_path), r"^\s*worker_lcores\s*=", "worker_lcores = [0]")
    path = write(tmp_path, text)
    assert_refused(check(path), path, line, "main lcore")


def test_unknown_forward_mode(tmp_path):
    text, line = replace_line(base_text(tmp_path), r"^\s*forward\s*=", 'forward = "bridge"')
    path = write(tmp_path, text)
    assert_refused(check(path), path, line, "fullnat, nat, dr, tun")


def test_timeout_out_of_range(tmp_path):
    text, line = replace_line(base_text(tmp_path), r"^\s*tcp_established\s*=", "tcp_established = 0")
    path = write(tmp_path, text)
    assert_refused(check(path), path, line, "timeout")


def test_no_interface(tmp_path):
    """A problem without a place names just the file."""
    text = base_text(tmp_path)
    start = rvslab.line_of(text, r"^\[\[interface\]\]")
    lines = text.splitlines()
    end = next(i for i in range(start, len(lines)) if lines[i].startswith("["))
    del lines[start - 1:end]
    path = write(tmp_path, "\n".join(lines) + "\n")
    assert_refused(check(path), path, None, "interface")


def test_missing_file(tmp_path):
    path = tmp_path / "absent.toml"
    assert_refused(check(path), path, None, "cannot read")


def test_empty_file(tmp_path):
    path = write(tmp_path, "")
    proc = check(path)
    assert proc.returncode == 2, proc.stderr
    assert str(path) in proc.stderr and "panicked" not in proc.stderr


def test_usage_errors():
    for args in ([], ["--check-config"], ["--check-config", "a.toml", "b.toml"]):
        proc = subprocess.run([str(rvslab.RVSD), *args], capture_output=True, text=True, timeout=10)
        assert proc.returncode == 2, (args, proc.stderr)
        # clap's message: the error, then "Usage: rvsd <--config <FILE>|--check-config <FILE>>".
        assert "usage: rvsd" in proc.stderr.lower() and "--check-config" in proc.stderr, (args, proc.stderr)


def test_same_message_as_starting(tmp_path):
    """What --check-config says about a bad file is what rvsd --config says
    when it refuses to start with it."""
    text, line = replace_line(base_text(tmp_path), r"^\s*weight\s*=", "weight = 70000")
    path = write(tmp_path, text)
    checked = check(path)
    first = assert_refused(checked, path, line, "weight")
    started = rvslab.rvsd_direct(path, timeout=30)
    assert started.returncode == 2, started.stderr
    assert started.stderr.strip().splitlines()[-1] == first


def test_interface_named_like_its_devices_kernel_interface_is_refused(tmp_path):
    """`name = "lb0"` with `device = "net_af_packet0,iface=lb0"` would make
    start-up fail creating the exception path's TAP ("Unable to set
    TUNSETIFF"): --check-config refuses it at the name, saying why."""
    text = (rvslab.REPO / "config" / "lab.toml").read_text()
    assert 'name = "dpdk0"' in text and "iface=lb0" in text
    path = tmp_path / "same-name.toml"
    path.write_text(text.replace('name = "dpdk0"', 'name = "lb0"', 1))
    line = rvslab.line_of(path.read_text(), r'^\s*name\s*=\s*"lb0"')
    proc = check(path)
    assert proc.returncode == 2, proc
    assert re.search(rf"^rvsd: error: {re.escape(str(path))}:{line}:\d+: interface name \"lb0\" is the kernel "
                     r"interface device \"net_af_packet0,iface=lb0\" attaches to", proc.stderr, re.M), proc.stderr
    assert "TAP" in proc.stderr
