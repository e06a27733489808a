"""Two-arm ("inside/outside") topology through the real DPDK path: the
client subnet 10.78.0.0/24 on one DPDK port (dpdk0, lb0), the server subnet
10.79.0.0/24 on another (dpdk1, lb1), and rs3 on 10.80.0.0/24 behind a
router (10.79.0.254) that only rvsd's static route knows
(`scripts/lab up --two-arm`).

The route table decides the egress: a new session's real-server side leaves
through the port of the longest-prefix match for the server's address (the
connected 10.79.0.0/24 on dpdk1, or 10.80.0.0/24 via the router), and its
client side leaves through the port the client's packets came in on. The
tests check the per-port transmit counters of `rvsadm link show -s`, the
servers' access logs (who they saw as the client), and the neighbour table
(the router, not rs3, is resolved for rs3's traffic).

Services: FULLNAT 10.78.0.100 (rs1, rs2; local address 10.79.0.200), NAT
10.78.0.101 (rs1, rs2, whose default route is the appliance's inside address
10.79.0.2), FULLNAT 10.78.0.102 and NAT 10.78.0.103 (rs3, behind the router,
which routes 10.78.0.0/24 back via 10.79.0.2).

The same lab in IPv6 (fd78::/64, fd79::/64, fd80::/64) is test_two_arm_v6,
with this module's fixture (two_arm_rvsd) and helpers."""

from __future__ import annotations

import contextlib
import re
from collections import Counter
from pathlib import Path

import pytest

import rvslab
from rvslab import RUN

CLIENT = "10.78.0.10"
LIP = "10.79.0.200"
ROUTER = "10.79.0.254"
TWO_ARM_CONFIG = RUN / "two-arm.toml"

EXTRA_SERVICES = """
[[service]]
vip = "10.78.0.101:80"
protocol = "tcp"
scheduler = "rr"
forward = "nat"

[[service.real_server]]
address = "10.79.0.11:80"

[[service.real_server]]
address = "10.79.0.12:80"

[[service]]
vip = "10.78.0.102:80"
protocol = "tcp"
scheduler = "rr"
forward = "fullnat"
local_addresses = ["10.79.0.200"]

[[service.real_server]]
address = "10.80.0.13:80"

[[service]]
vip = "10.78.0.103:80"
protocol = "tcp"
scheduler = "rr"
forward = "nat"

[[service.real_server]]
address = "10.80.0.13:80"
"""


class TwoArm:
    def __init__(self, socket: Path):
        self.socket = socket

    def rvsadm(self, *args: str, **kw):
        return rvslab.rvsadm(self.socket, *args, **kw)

    def tx_packets(self) -> dict[str, int]:
        """Transmitted packets per DPDK port, from `rvsadm link show -s`."""
        return {name: tx for name, (_, tx) in link_counters(self.rvsadm("link", "show", "-s").stdout).items()}


def link_counters(text: str) -> dict[str, tuple[int, int]]:
    """(rx packets, tx packets) per port from `link show -s` output."""
    out = {}
    blocks = re.split(r"^\d+: ", text, flags=re.M)[1:]
    for b in blocks:
        name = b.split(":", 1)[0]
        lines = b.splitlines()
        rx_i = next(i for i, line in enumerate(lines) if line.strip().startswith("RX:"))
        tx_i = next(i for i, line in enumerate(lines) if line.strip().startswith("TX:"))
        rx = int(lines[rx_i + 1].split()[1])
        tx = int(lines[tx_i + 1].split()[1])
        out[name] = (rx, tx)
    return out


@contextlib.contextmanager
def two_arm_rvsd(request, tmp_path_factory, services: str):
    """`scripts/lab up --two-arm`, then rvsd on the lab's two-arm config
    (test socket, file prefix and short timeouts) plus SERVICES; always torn
    down, the rvsd log printed when a test failed. test_two_arm_v6 runs its
    IPv6 services with it."""
    workdir = tmp_path_factory.mktemp("rvs-two-arm")
    socket = workdir / "rvsd.sock"
    config = workdir / "two-arm.toml"
    log = workdir / "rvsd.log"
    rvsd = None
    failed_before = request.session.testsfailed
    ready = False
    try:
        rvslab.lab("up", "--two-arm")
        text = rvslab.make_test_config(socket=socket, file_prefix="rvs-e2e", base=TWO_ARM_CONFIG)
        config.write_text(rvslab.append_service(text, services))
        rvsd = rvslab.Rvsd(config, socket, log)
        rvsd.start()
        rvsd.wait_ready(timeout=30)
        ready = True
        yield TwoArm(socket)
    finally:
        status = rvsd.stop(grace=5) if rvsd else None
        try:
            rvslab.lab("down")
        finally:
            if rvsd and (not ready or request.session.testsfailed > failed_before):
                print(f"---- rvsd log ({log}, exit status {status}) ----\n{rvsd.log_text()}")


@pytest.fixture(scope="module")
def two_arm(request, tmp_path_factory):
    """The two-arm lab with the NAT and rs3 services."""
    with two_arm_rvsd(request, tmp_path_factory, EXTRA_SERVICES) as t:
        yield t


def curl(vip: str, max_time: float = 5):
    """GET / of VIP (either family) from the client."""
    return rvslab.client_curl(rvslab.http_url(vip), "-g", max_time=max_time)


def balance(vip: str, n: int = 20) -> Counter:
    bodies = Counter()
    for _ in range(n):
        r = curl(vip)
        assert r.returncode == 0, f"curl {vip} failed ({r.returncode}): {r.stderr}"
        bodies[r.stdout.strip()] += 1
    return bodies


def test_lab_routes_and_links(two_arm):
    routes = two_arm.rvsadm("route", "show").stdout
    assert routes.splitlines() == [
        "10.78.0.0/24 dev dpdk0 proto kernel scope link src 10.78.0.2",
        "10.79.0.0/24 dev dpdk1 proto kernel scope link src 10.79.0.2",
        "10.80.0.0/24 via 10.79.0.254 dev dpdk1 proto static",
    ], routes
    links = two_arm.rvsadm("link", "show").stdout
    assert re.search(r"^1: dpdk0: <[A-Z_,]*UP[A-Z_,]*> mtu \d+ state UP$", links, re.M), links
    assert re.search(r"^2: dpdk1: .* state UP$", links, re.M), links
    assert "device net_af_packet1,iface=lb1" in links


def assert_balanced_across_arms(lab, vip: str, sources, want: str) -> None:
    """20 requests to VIP alternate between rs1 and rs2, their frames leave
    by the right arm, and each server saw WANT as the source of all 10 of
    its connections (SOURCES(node): that server's access-log sources)."""
    before = lab.tx_packets()
    sources_before = {n: len(sources(n)) for n in ("rs1", "rs2")}
    bodies = balance(vip)
    assert bodies == Counter({"rs1": 10, "rs2": 10}), bodies
    after = lab.tx_packets()
    # Each connection sends at least SYN, ACK, request, FIN toward the
    # server (out of dpdk1) and SYN-ACK, data, FIN toward the client (dpdk0).
    assert after["dpdk1"] - before["dpdk1"] >= 20 * 4, (before, after)
    assert after["dpdk0"] - before["dpdk0"] >= 20 * 3, (before, after)
    for n in ("rs1", "rs2"):
        new = sources(n)[sources_before[n]:]
        assert new == [want] * 10, f"{vip}: {n} saw {new}, not {want}"


def test_fullnat_across_two_arms(two_arm):
    # FULLNAT: the servers see the local address.
    assert_balanced_across_arms(two_arm, "10.78.0.100", rvslab.access_sources, LIP)


def test_nat_across_two_arms(two_arm):
    # NAT keeps the client's address.
    assert_balanced_across_arms(two_arm, "10.78.0.101", rvslab.access_sources, CLIENT)


def test_static_route_reaches_server_behind_router(two_arm):
    before = len(rvslab.access_sources("rs3"))
    assert balance("10.78.0.102", 5) == Counter({"rs3": 5})
    assert balance("10.78.0.103", 5) == Counter({"rs3": 5})
    seen = rvslab.access_sources("rs3")[before:]
    assert seen == [LIP] * 5 + [CLIENT] * 5, seen
    neigh = two_arm.rvsadm("neigh", "show").stdout
    # rs3's next hop is the router: resolved on dpdk1; rs3 itself never is.
    assert re.search(rf"^{re.escape(ROUTER)} dev dpdk1 lladdr [0-9a-f:]{{17}} REACHABLE$", neigh, re.M), neigh
    assert "10.80.0.13" not in neigh, neigh


def test_route_del_and_add_at_run_time(two_arm):
    r = two_arm.rvsadm("route", "del", "10.80.0.0/24", check=False)
    assert r.returncode == 0, r.stderr
    assert "10.80.0.0/24" not in two_arm.rvsadm("route").stdout
    # No route to rs3 any more: new connections to its service go nowhere.
    assert curl("10.78.0.102", max_time=2).returncode != 0
    # The kernel side lost it too.
    kernel = rvslab.in_ns("lb", ["ip", "route", "show", "10.80.0.0/24"], check=True).stdout
    assert kernel.strip() == "", kernel
    r = two_arm.rvsadm("route", "add", "10.80.0.0/24", "via", ROUTER, "dev", "dpdk1", check=False)
    assert r.returncode == 0, r.stderr
    kernel = rvslab.in_ns("lb", ["ip", "route", "show", "10.80.0.0/24"], check=True).stdout
    assert f"via {ROUTER} dev dpdk1" in kernel, kernel
    assert balance("10.78.0.102", 3) == Counter({"rs3": 3})


def test_route_changes_refused_cleanly(two_arm):
    before = two_arm.rvsadm("route").stdout
    for args, want in [
        (["route", "add", "10.81.0.0/24", "via", "10.99.0.1"], "Nexthop has invalid gateway"),
        (["route", "add", "10.81.0.0/24", "via", ROUTER, "dev", "dpdk0"], "on no connected subnet of dpdk0"),
        (["route", "add", "10.81.0.0/24", "dev", "dpdk7"], 'Cannot find device "dpdk7"'),
        (["route", "add", "10.81.0.1/24", "via", ROUTER], "Invalid prefix for given prefix length"),
        (["route", "add", "10.81.0.0/40", "via", ROUTER], "any valid prefix is expected"),
        (["route", "add", "10.80.0.0/24", "via", ROUTER], "File exists"),
        (["route", "del", "10.79.0.0/24"], "connected subnet"),
        (["route", "del", "10.82.0.0/24"], "No such process"),
    ]:
        r = two_arm.rvsadm(*args, check=False)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert want in r.stderr, (args, r.stderr)
        assert two_arm.rvsadm("route").stdout == before, f"{args} changed the routes"
