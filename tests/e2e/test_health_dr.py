"""Health checks of DR (direct routing) servers reach the service on the
VIP, as the real server sees it, not the server's own address.

The real servers hold the VIP on `lo` (arp_ignore=1 / arp_announce=2, as in
test_dr.py) and run two HTTP servers each: the lab's on RIP:80 and one on
VIP:80, which is the one DR clients reach. rvsd marks a DR server's probe
socket, and a policy rule in rvs-lb's kernel routes marked packets for the
VIP to that server's MAC through the exception path; the server answers
from the VIP to the appliance's interface address, which the data plane
punts back to the kernel. Stopping rs1's VIP listener (its RIP listener
stays up) must take rs1 down; starting it again brings rs1 back."""

from __future__ import annotations

import subprocess

import pytest

import rvslab
from rvslab import RUN, VIP

INTERVAL, RISE, FALL = 0.5, 2, 2
SYSCTLS = ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce")
RS1, RS2 = rvslab.REAL_SERVERS["rs1"], rvslab.REAL_SERVERS["rs2"]


def rvsd_config(text: str) -> str:
    text = text.replace('forward = "fullnat"', 'forward = "dr"', 1)
    block = (f'[service.health_check]\nkind = "http"\npath = "/"\ninterval = {INTERVAL}\ntimeout = 0.4\n'
             f"rise = {RISE}\nfall = {FALL}\n\n")
    at = text.index("[[service.real_server]]")
    return text[:at] + block + text[at:]


def vip_server(node: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", f"rvs-{node}", "python3", "-m", "http.server", "80", "--bind", VIP,
         "--directory", str(RUN / node)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def serving_on_vip(node: str) -> bool:
    p = rvslab.in_ns(node, ["curl", "-s", "--max-time", "1", f"http://{VIP}/"])
    assert p.stdout.strip() == node, p
    return True


@pytest.fixture(scope="module")
def dr_servers(lab):
    """VIP on lo with the ARP sysctls and an HTTP server on VIP:80 in each
    real server; yields {node: process}, restores everything after."""
    saved = {n: {k: rvslab.in_ns(n, ["sysctl", "-n", k], check=True).stdout.strip() for k in SYSCTLS} for n in ("rs1", "rs2")}
    procs: dict[str, subprocess.Popen] = {}
    try:
        for n in ("rs1", "rs2"):
            rvslab.in_ns(n, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"], check=True)
            rvslab.in_ns(n, ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"], check=True)
            procs[n] = vip_server(n)
        for n in ("rs1", "rs2"):
            rvslab.wait_until(f"HTTP on {VIP}:80 in rvs-{n}", lambda n=n: serving_on_vip(n), timeout=10)
        yield procs
    finally:
        for p in procs.values():
            p.terminate()
            p.wait(timeout=5)
        for n, values in saved.items():
            rvslab.in_ns(n, ["ip", "addr", "del", f"{VIP}/32", "dev", "lo"])
            rvslab.in_ns(n, ["sysctl", "-qw", *(f"{k}={v}" for k, v in values.items())])


def weights(lab) -> dict[str, int]:
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    return {s.address: s.weight for s in services[0].servers}


def test_probes_are_policy_routed_to_each_server(lab, dr_servers):
    rules = rvslab.in_ns("lb", ["ip", "rule", "show"], check=True).stdout
    marks = [l for l in rules.splitlines() if "fwmark" in l]
    assert len(marks) == 2, rules
    for line in marks:
        table = line.split("lookup")[1].split()[0]
        routes = rvslab.in_ns("lb", ["ip", "route", "show", "table", table], check=True).stdout
        assert routes.startswith(f"{VIP} via ") and "dev dpdk0" in routes, routes
    both = {f"{RS1}:80": 1, f"{RS2}:80": 1}
    rvslab.wait_until("both DR servers up", lambda: weights(lab) == both or None, 10)


def test_stopping_the_vip_listener_takes_the_server_down(lab, dr_servers):
    both = {f"{RS1}:80": 1, f"{RS2}:80": 1}
    rvslab.wait_until("both DR servers up", lambda: weights(lab) == both or None, 10)
    dr_servers["rs1"].terminate()
    dr_servers["rs1"].wait(timeout=5)
    # rs1 itself still serves on its own address: a check of RIP:80 would
    # keep it up.
    assert rvslab.in_ns("rs1", ["curl", "-s", "--max-time", "1", f"http://{RS1}/"]).stdout.strip() == "rs1"

    def rs1_down():
        assert weights(lab)[f"{RS1}:80"] == 0, weights(lab)
        return True

    rvslab.wait_until("rs1 inhibited", rs1_down, INTERVAL * FALL + 1 + 5)
    assert f"real server {RS1}:80 of TCP/{VIP}:80 is DOWN (connect:" in lab.rvsd.log_text()
    bodies = [rvslab.client_curl(f"http://{VIP}/?hc={i}").stdout.strip() for i in range(4)]
    assert bodies == ["rs2"] * 4, bodies
    dr_servers["rs1"] = vip_server("rs1")
    rvslab.wait_until(f"HTTP on {VIP}:80 in rvs-rs1", lambda: serving_on_vip("rs1"), timeout=10)
    rvslab.wait_until("rs1 back", lambda: weights(lab) == both or None, INTERVAL * RISE + 1 + 5)
    bodies = {rvslab.client_curl(f"http://{VIP}/?hc=up{i}").stdout.strip() for i in range(4)}
    assert bodies == {"rs1", "rs2"}, bodies
