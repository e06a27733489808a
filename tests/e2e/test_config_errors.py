"""rvsd refuses bad configs with a useful message: `FILE:LINE: reason` for
config errors, the device or interface name for a missing interface, a
non-zero exit and never a Rust panic. No lab needed: rvsd runs in the root
namespace."""

from __future__ import annotations

import re
import time

import pytest

import rvslab

pytestmark = pytest.mark.nolab


def write_config(tmp_path, text: str):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return path


def base_config(tmp_path) -> str:
    # Private socket and DPDK prefix: never touches a running demo's rvsd.
    return rvslab.make_test_config(socket=tmp_path / "rvsd.sock",
                                   file_prefix=f"rvs-e2e-bad-{tmp_path.name}")


def assert_refused(proc, path, line: int) -> None:
    out = proc.stderr
    assert proc.returncode != 0, f"rvsd accepted a bad config; stderr:\n{out}"
    assert "panicked" not in out + proc.stdout, f"rvsd panicked:\n{out}"
    where = f"{path}:{line}"
    assert re.search(rf"{re.escape(where)}(?!\d)", out), \
        f"stderr does not name {where}:\n{out}"


def test_toml_syntax_error_names_file_and_line(tmp_path):
    text = base_config(tmp_path)
    line = rvslab.line_of(text, r'^\s*scheduler\s*=')
    lines = text.splitlines()
    lines[line - 1] = 'scheduler = "rr'  # unterminated string
    path = write_config(tmp_path, "\n".join(lines) + "\n")
    proc = rvslab.rvsd_direct(path, timeout=30)
    assert_refused(proc, path, line)


def test_semantic_error_names_file_and_line(tmp_path):
    text = base_config(tmp_path)
    line = rvslab.line_of(text, r'^\s*vip\s*=')
    lines = text.splitlines()
    lines[line - 1] = 'vip = "10.77.0.300:80"'
    path = write_config(tmp_path, "\n".join(lines) + "\n")
    proc = rvslab.rvsd_direct(path, timeout=30)
    assert_refused(proc, path, line)
    assert "10.77.0.300" in proc.stderr or "vip" in proc.stderr, \
        f"stderr does not say what is wrong:\n{proc.stderr}"


def test_missing_interface_is_refused(tmp_path):
    text = base_config(tmp_path)
    assert "iface=lb0" in text
    path = write_config(tmp_path, text.replace("iface=lb0", "iface=nosuchif0"))
    started = time.monotonic()
    proc = rvslab.rvsd_direct(path, timeout=30)
    elapsed = time.monotonic() - started
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0, f"rvsd started without its interface; output:\n{out}"
    assert "panicked" not in out, f"rvsd panicked:\n{out}"
    assert "nosuchif0" in out or "net_af_packet0" in out, \
        f"output names neither the interface nor the device:\n{out}"
    assert elapsed < 30


def test_unknown_device_is_refused_by_eal(tmp_path):
    """A device string DPDK cannot probe fails in EAL start-up, and the error
    names the device rather than leaving the operator with a bare errno."""
    text = base_config(tmp_path)
    path = write_config(tmp_path, text.replace("net_af_packet0,iface=lb0", "net_nosuchdrv0"))
    proc = rvslab.rvsd_direct(path, timeout=30)
    out = proc.stderr + proc.stdout
    assert proc.returncode != 0, f"rvsd started with an unknown device; output:\n{out}"
    assert "panicked" not in out, f"rvsd panicked:\n{out}"
    assert "rvsd: error:" in out and "net_nosuchdrv0" in out, out
