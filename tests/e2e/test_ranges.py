"""Run-time values have the config's ranges (control/src/config/ranges.rs):
rvsadm refuses out-of-range `--set`, `-p`, `-w`, `-x` as it parses them
(exit 2, ipvsadm's "illegal ..." and the range), and rvsd refuses the same
values from any other client of its socket. Nothing changes either way."""

from __future__ import annotations

import json
import socket

import pytest

import rvslab
from rvslab import VIP

SVC = f"{VIP}:80"


def raw(lab, request: dict) -> dict:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(lab.socket))
    s.sendall(json.dumps(request).encode() + b"\n")
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    s.close()
    return json.loads(data)


def state(lab) -> tuple[str, str]:
    return lab.rvsadm("-S", "-n").stdout, lab.rvsadm("-L", "--timeout").stdout


@pytest.mark.parametrize("args, message", [
    # ipvsadm 1.31's words; the bounds are the config's (config/ranges.rs).
    (["--set", "4294967295", "0", "0"], "invalid timeout value `4294967295' specified\n"),
    (["--set", "0", "0", "2678401"], "invalid timeout value `2678401' specified\n"),
    (["-E", "-t", SVC, "-s", "rr", "-p", "4294967295"], "invalid timeout value `4294967295' specified\n"),
    (["-e", "-t", SVC, "-r", "10.77.0.11:80", "-w", "65536"], "illegal weight specified\n"),
    (["-e", "-t", SVC, "-r", "10.77.0.11:80", "-x", "2147483648"], "illegal u_threshold specified\n"),
])
def test_rvsadm_refuses_what_the_config_refuses(lab, args, message):
    before = state(lab)
    p = lab.rvsadm(*args, check=False)
    assert p.returncode == 2 and p.stderr == message, (args, p.returncode, p.stderr)
    assert state(lab) == before


@pytest.mark.parametrize("request_, message", [
    ({"SetTimeouts": {"tcp": 4294967295, "tcpfin": 0, "udp": 0}}, "timeout must be 1..=2678400 seconds, not 4294967295"),
    ({"EditService": {"proto": "tcp", "vip": SVC, "scheduler": "rr", "persistent": 4294967295,
                      "netmask": None, "sched_flags": None, "ops": False}}, "persistent must be 1..=2678400"),
    ({"EditServer": {"proto": "tcp", "vip": SVC, "rs": "10.77.0.11:80", "weight": 70000, "forward": None,
                     "upper_threshold": None, "lower_threshold": None}}, "weight must be 0..=65535, not 70000"),
    ({"EditServer": {"proto": "tcp", "vip": SVC, "rs": "10.77.0.11:80", "weight": None, "forward": None,
                     "upper_threshold": 4294967295, "lower_threshold": None}}, "upper threshold must be a number of connections 0..=2147483647"),
])
def test_rvsd_refuses_them_from_any_client(lab, request_, message):
    before = state(lab)
    answer = raw(lab, request_)
    assert "Error" in answer and message in answer["Error"], answer
    assert state(lab) == before
