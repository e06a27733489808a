"""IPv6 in the two-arm topology through the real DPDK path: the client
subnet fd78::/64 on one DPDK port (dpdk0, fd78::2), the server subnet
fd79::/64 on another (dpdk1, fd79::2), and rs3 on fd80::/64 behind the
router fd79::254 that only rvsd's static route fd80::/64 knows
(`scripts/lab up --two-arm` gives every node an IPv6 twin of its IPv4
address and writes both families into /run/rvs-lab/two-arm.toml).

Nobody on either side has a static neighbour entry: the client finds the
VIP, the servers find their gateway fd79::2 and rvsd finds the servers and
the router by neighbour discovery on their own port. The route table
decides the egress: a new session's real-server side leaves through the
port of the longest-prefix match for the server's address (fd79::/64 on
dpdk1, or fd80::/64 via the router), its client side through the port the
client's packets came in on. The tests check what an operator sees: the
pages (rr alternation), the servers' IPv6 access logs (the client for NAT,
the local address for FULLNAT), `rvsadm -6 route show`, `rvsadm neigh show`,
per-port transmit counters, and the neighbour caches of the client and the
servers (the appliance's MAC of the right port).

Services (the fixture is test_two_arm's, with these instead of its IPv4 ones):
NAT [fd78::100]:80 (rs1, rs2, `-m`; their default route is fd79::2), FULLNAT
[fd78::101]:80 (rs1, rs2; local address fd79::200), FULLNAT [fd78::102]:80
and NAT [fd78::103]:80 (rs3, behind the router, which routes fd78::/64 back
via fd79::2)."""

from __future__ import annotations

import re
from collections import Counter

import pytest

import rvslab
from test_two_arm import assert_balanced_across_arms, balance, curl, two_arm_rvsd

CLIENT6 = "fd78::10"
LB0_6 = "fd78::2"
LB1_6 = "fd79::2"
RS6 = {"rs1": "fd79::11", "rs2": "fd79::12"}
RS3_6 = "fd80::13"
ROUTER6 = "fd79::254"
LIP6 = "fd79::200"
VIP_NAT, VIP_FULLNAT, VIP_RS3_FULLNAT, VIP_RS3_NAT = "fd78::100", "fd78::101", "fd78::102", "fd78::103"


def service(vip: str, forward: str, servers: list[str]) -> str:
    text = f'\n[[service]]\nvip = "[{vip}]:80"\nprotocol = "tcp"\nscheduler = "rr"\nforward = "{forward}"\n'
    if forward == "fullnat":
        text += f'local_addresses = ["{LIP6}"]\n'
    for s in servers:
        text += f'\n[[service.real_server]]\naddress = "[{s}]:80"\n'
    return text


SERVICES_V6 = "".join([
    service(VIP_NAT, "nat", list(RS6.values())),
    service(VIP_FULLNAT, "fullnat", list(RS6.values())),
    service(VIP_RS3_FULLNAT, "fullnat", [RS3_6]),
    service(VIP_RS3_NAT, "nat", [RS3_6]),
])


@pytest.fixture(scope="module")
def two_arm6(request, tmp_path_factory):
    """The two-arm lab, rvsd with the IPv6 services above."""
    with two_arm_rvsd(request, tmp_path_factory, SERVICES_V6) as t:
        yield t


def macs(two_arm6) -> dict[str, str]:
    """The DPDK ports' MACs from `rvsadm link show`."""
    out = two_arm6.rvsadm("link", "show").stdout
    return dict(re.findall(r"^\d+: (\S+): .*\n    link/ether ([0-9a-f:]{17}) ", out, re.M))


def kernel_neigh(node: str, addr: str) -> str:
    """NODE's kernel neighbour entry for ADDR (`ip -6 neigh show ADDR`)."""
    return rvslab.in_ns(node, ["ip", "-6", "neigh", "show", addr], check=True).stdout


def test_v6_routes_and_addresses(two_arm6):
    routes = two_arm6.rvsadm("-6", "route", "show").stdout
    assert routes.splitlines() == [
        "fd78::/64 dev dpdk0 proto kernel scope link src fd78::2",
        "fd79::/64 dev dpdk1 proto kernel scope link src fd79::2",
        "fd80::/64 via fd79::254 dev dpdk1 proto static",
    ], routes
    # `ip route` stays IPv4, as ip's.
    assert "fd8" not in two_arm6.rvsadm("route", "show").stdout
    addrs = two_arm6.rvsadm("-6", "addr", "show").stdout
    assert re.search(r"^\d+: dpdk0: .*\n(?:    .*\n)*?    inet6 fd78::2/64 scope global", addrs, re.M), addrs
    assert re.search(r"^\d+: dpdk1: .*\n(?:    .*\n)*?    inet6 fd79::2/64 scope global", addrs, re.M), addrs
    # The exception path's kernel interfaces carry them, and the static route.
    for dev, addr in (("dpdk0", LB0_6), ("dpdk1", LB1_6)):
        out = rvslab.in_ns("lb", ["ip", "-6", "-o", "addr", "show", "dev", dev], check=True).stdout
        assert f"inet6 {addr}/64 " in out, out
    kernel = rvslab.in_ns("lb", ["ip", "-6", "route", "show", "fd80::/64"], check=True).stdout
    assert f"via {ROUTER6} dev dpdk1" in kernel, kernel


def test_nat_v6_across_two_arms(two_arm6):
    # NAT keeps the client's address.
    assert_balanced_across_arms(two_arm6, VIP_NAT, rvslab.access_sources6, CLIENT6)


def test_fullnat_v6_across_two_arms(two_arm6):
    # FULLNAT: the servers see the local address.
    assert_balanced_across_arms(two_arm6, VIP_FULLNAT, rvslab.access_sources6, LIP6)


def test_v6_neighbours_on_both_ports(two_arm6):
    # After the traffic above: the client on dpdk0, the servers on dpdk1,
    # each resolved by neighbour discovery on its own port.
    assert curl(VIP_NAT).returncode == 0
    neigh = two_arm6.rvsadm("neigh", "show").stdout
    for addr, dev in [(CLIENT6, "dpdk0"), (RS6["rs1"], "dpdk1"), (RS6["rs2"], "dpdk1")]:
        assert re.search(rf"^{re.escape(addr)} dev {dev} lladdr [0-9a-f:]{{17}} REACHABLE$", neigh, re.M), neigh
    dev_of = {line.split()[0]: line.split()[2] for line in neigh.splitlines() if line.strip()}
    assert all(dev == "dpdk0" for a, dev in dev_of.items() if a.startswith("fd78:")), neigh
    assert all(dev == "dpdk1" for a, dev in dev_of.items() if a.startswith("fd79:")), neigh
    # The other side's view: the VIP is dpdk0's MAC at the client, the
    # servers' gateway fd79::2 is dpdk1's.
    mac = macs(two_arm6)
    assert mac["dpdk0"] != mac["dpdk1"], mac
    assert f"lladdr {mac['dpdk0']}" in kernel_neigh("client", VIP_NAT), kernel_neigh("client", VIP_NAT)
    for n in RS6:
        entry = kernel_neigh(n, LB1_6)
        assert f"lladdr {mac['dpdk1']}" in entry, (n, entry)


def test_v6_ping_the_appliance_on_both_ports(two_arm6):
    # Echo requests to the interface addresses are not the balancer's: the
    # exception path's kernel answers them, out of the port they came in on.
    for node, addr in (("client", LB0_6), ("rs1", LB1_6), ("rs2", LB1_6)):
        r = rvslab.in_ns(node, ["ping", "-6", "-c", "1", "-W", "3", addr], timeout=10)
        assert r.returncode == 0 and " 0% packet loss" in r.stdout, (node, addr, r.stdout, r.stderr)


def test_v6_static_route_reaches_server_behind_router(two_arm6):
    before = len(rvslab.access_sources6("rs3"))
    assert balance(VIP_RS3_FULLNAT, 5) == Counter({"rs3": 5})
    assert balance(VIP_RS3_NAT, 5) == Counter({"rs3": 5})
    seen = rvslab.access_sources6("rs3")[before:]
    assert seen == [LIP6] * 5 + [CLIENT6] * 5, seen
    neigh = two_arm6.rvsadm("neigh", "show").stdout
    # rs3's next hop is the router, resolved on dpdk1; rs3 itself never is.
    assert re.search(rf"^{re.escape(ROUTER6)} dev dpdk1 lladdr [0-9a-f:]{{17}} REACHABLE$", neigh, re.M), neigh
    assert RS3_6 not in neigh, neigh


def test_v6_route_del_and_add_at_run_time(two_arm6):
    r = two_arm6.rvsadm("route", "del", "fd80::/64", check=False)
    assert r.returncode == 0, r.stderr
    assert "fd80::" not in two_arm6.rvsadm("-6", "route", "show").stdout
    # No route to rs3 any more: new connections to its service go nowhere.
    assert curl(VIP_RS3_FULLNAT, max_time=2).returncode != 0
    kernel = rvslab.in_ns("lb", ["ip", "-6", "route", "show", "fd80::/64"], check=True).stdout
    assert kernel.strip() == "", kernel
    r = two_arm6.rvsadm("route", "add", "fd80::/64", "via", ROUTER6, "dev", "dpdk1", check=False)
    assert r.returncode == 0, r.stderr
    assert "fd80::/64 via fd79::254 dev dpdk1 proto static" in two_arm6.rvsadm("-6", "route", "show").stdout
    kernel = rvslab.in_ns("lb", ["ip", "-6", "route", "show", "fd80::/64"], check=True).stdout
    assert f"via {ROUTER6} dev dpdk1" in kernel, kernel
    assert balance(VIP_RS3_FULLNAT, 3) == Counter({"rs3": 3})


def test_v6_route_changes_refused_cleanly(two_arm6):
    before = two_arm6.rvsadm("-6", "route").stdout
    for args, want in [
        (["route", "add", "fd81::/64", "via", ROUTER6, "dev", "dpdk0"], "on no connected subnet of dpdk0"),
        (["route", "add", "fd81::/64", "via", "fd99::1"], "Nexthop has invalid gateway"),
        (["route", "add", "fd81::/64", "via", "10.79.0.254"], "is not of the family of fd81::/64"),
        (["route", "add", "fd81::1/64", "via", ROUTER6], "Invalid prefix for given prefix length"),
        (["route", "add", "fd81::/129", "via", ROUTER6], "any valid prefix is expected"),
        (["route", "add", "fd80::/64", "via", ROUTER6], "File exists"),
        (["route", "del", "fd79::/64"], "connected subnet"),
        (["route", "del", "fd82::/64"], "No such process"),
    ]:
        r = two_arm6.rvsadm(*args, check=False)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert want in r.stderr, (args, r.stderr)
        assert two_arm6.rvsadm("-6", "route").stdout == before, f"{args} changed the routes"
