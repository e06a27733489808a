"""The kernel exception path: rvsd gives each interface a TAP named like it
(`dpdk0` in rvs-lb) carrying the interface address, so ordinary tools work
on a DPDK-owned port — ping, TCP clients and servers — in both directions."""

from __future__ import annotations

import re
import subprocess

import rvslab

LB_ADDR = "10.77.0.2"


def ping(node: str, target: str, n: int = 3) -> str:
    p = rvslab.in_ns(node, ["ping", "-c", str(n), "-i", "0.2", "-W", "2", target], timeout=30)
    assert p.returncode == 0, f"ping {target} from {node} failed:\n{p.stdout}{p.stderr}"
    return p.stdout


def test_kernel_interface_carries_the_address(lab):
    out = rvslab.in_ns("lb", ["ip", "-br", "addr", "show", "dev", "dpdk0"], check=True).stdout
    assert f"{LB_ADDR}/24" in out, out


def test_ping_both_ways_without_duplicates(lab):
    for node, target in (("lb", "10.77.0.11"), ("client", LB_ADDR)):
        out = ping(node, target)
        assert re.search(r"3 packets transmitted, 3 received, 0% packet loss", out), out
        assert "duplicates" not in out, out


def test_tcp_from_the_appliance_to_a_real_server(lab):
    p = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", "http://10.77.0.11/"])
    assert p.returncode == 0 and p.stdout.strip() == "rs1", p
    log = (rvslab.RUN / "rs1" / "access.log").read_text().splitlines()
    assert log and log[-1].startswith(f"{LB_ADDR} "), log[-3:]


def test_tcp_service_on_the_appliance_itself(lab, tmp_path):
    (tmp_path / "index.html").write_text("appliance\n")
    server = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-lb", "python3", "-m", "http.server", "8080",
         "--bind", LB_ADDR, "--directory", str(tmp_path)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def answers():
            p = rvslab.client_curl(f"http://{LB_ADDR}:8080/", max_time=3)
            assert p.returncode == 0, f"curl exit {p.returncode}"
            return p.stdout.strip()
        assert rvslab.wait_until("the appliance's own HTTP server", answers, timeout=15) == "appliance"
    finally:
        server.terminate()
        server.wait(timeout=10)
    # The load-balanced service is unaffected.
    assert rvslab.client_curl(f"http://{rvslab.VIP}/", max_time=5).stdout.strip() in ("rs1", "rs2")
