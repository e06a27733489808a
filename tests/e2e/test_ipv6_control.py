"""IPv6 outside the pipeline, end to end in the lab: an IPv6 service from the
config file (fd77::/64, rvslab.v6_service) beside the lab's IPv4 one; the
appliance resolves its IPv6 next hops with neighbour solicitations of its
own (the servers are REACHABLE before any client traffic); rvsadm lists,
saves and builds IPv6 services as ipvsadm does (`-t [v6]:port`, `-6`); the
exception path carries address6 and `rvsadm addr add` IPv6 addresses;
/metrics labels IPv6 servers as the listings print them; a DR service's
health checks reach its servers on the IPv6 VIP through marked probes and
`ip -6 rule` policy routes. The IPv6 data path
itself (every mode) is tested by the pipeline's own e2e modules."""

from __future__ import annotations

import re

import rvslab
from rvslab import CLIENT_IP6, IFACE_IP6, LOCAL_ADDR6, REAL_SERVERS6, VIP6

SVC6 = rvslab.endpoint(VIP6, 80)
DEV = "dpdk0"
DR_PORT = 81
DR_CHECK = """
[service.health_check]
kind = "icmp"
interval = 0.5
timeout = 0.5
rise = 1
fall = 1
"""


def rvsd_config(text: str) -> str:
    services = rvslab.v6_service() + "\n" + rvslab.v6_service(forward="dr", port=DR_PORT, extra=DR_CHECK)
    return text.replace("[timeouts]", services + "\n[timeouts]", 1)


def neighbours(lab) -> dict[str, str]:
    """`rvsadm neigh show` as {address: state}."""
    out = lab.rvsadm("neigh", "show").stdout
    return {line.split()[0]: line.split()[-1] for line in out.splitlines() if line.strip()}


def test_ipv6_next_hops_are_solicited_before_any_traffic(lab):
    # Nothing has sent the appliance a packet from fd77::11/12: only its own
    # neighbour solicitations (to their solicited-node groups) and their
    # advertisements can make them REACHABLE.
    def resolved():
        n = neighbours(lab)
        return n if all(n.get(ip) == "REACHABLE" for ip in REAL_SERVERS6.values()) else None

    n = rvslab.wait_until("the IPv6 real servers resolved", resolved, timeout=15)
    out = lab.rvsadm("neigh", "show").stdout
    for ip in REAL_SERVERS6.values():
        assert re.search(rf"^{re.escape(ip)} dev {DEV} lladdr [0-9a-f:]{{17}} REACHABLE$", out, re.M), out
    assert n.get(CLIENT_IP6) in (None, "REACHABLE"), out


def test_listing_save_and_export_show_ipv6_as_ipvsadm(lab):
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    dr = rvslab.endpoint(VIP6, DR_PORT)
    assert [(s.protocol, s.address) for s in services] == [("TCP", "10.77.0.100:80"), ("TCP", SVC6), ("TCP", dr)], services
    assert sorted(r.address for r in services[1].servers) == sorted(rvslab.endpoint(ip, 80) for ip in REAL_SERVERS6.values())
    rules = lab.rvsadm("-S", "-n").stdout
    assert f"-A -t {SVC6} -s rr\n-P -t {SVC6} -z {LOCAL_ADDR6}\n" in rules, rules
    assert f"-a -t {SVC6} -r [fd77::11]:80 --fullnat -w 1\n" in rules, rules
    exported = lab.rvsadm("--export-config").stdout
    assert f'vip = "{SVC6}"' in exported and f'local_addresses = ["{LOCAL_ADDR6}"]' in exported, exported


def test_rvsadm_builds_an_ipv6_service_and_refuses_mixes(lab):
    svc = rvslab.endpoint(VIP6, 8080)
    lab.rvsadm("-A", "-6", "-t", svc, "-s", "wrr")
    lab.rvsadm("-P", "-t", svc, "-z", LOCAL_ADDR6)
    lab.rvsadm("-a", "-t", svc, "-r", "[fd77::11]:80", "--fullnat", "-w", "3")
    lab.rvsadm("-a", "-t", svc, "-r", "fd77::12", "--fullnat", "-w", "1")  # no port: the VIP's, as ipvsadm
    one = lab.rvsadm("-L", "-n", "-t", svc).stdout
    assert one.splitlines()[2] == f"TCP  {svc} wrr", one
    assert "  -> [fd77::11]:80                FullNat 3 " in one and "  -> [fd77::12]:8080" in one, one
    before = lab.rvsadm("-S", "-n").stdout
    for args, want in [
        (["-a", "-t", svc, "-r", "10.77.0.11:80", "--fullnat"], "share one address family"),
        (["-P", "-t", svc, "-z", "10.77.0.201"], "local addresses are the source toward the real servers"),
        (["-a", "-t", "10.77.0.100:80", "-r", "[fd77::11]:80", "--fullnat"], "IPv4 clients to IPv6 servers are not supported"),
        (["-A", "-6", "-t", "10.77.0.101:80"], "-6 needs an IPv6 address"),
        (["-E", "-t", svc, "-s", "rr", "-p", "60", "-M", "129"], "prefix length 1..=128"),
    ]:
        r = lab.rvsadm(*args, check=False)
        assert r.returncode != 0 and want in r.stderr, (args, r)
    assert lab.rvsadm("-S", "-n").stdout == before, "a refused command changes nothing"
    lab.rvsadm("-E", "-t", svc, "-s", "rr", "-p", "60", "-M", "128")
    # An IPv6 service persists by a prefix: listed and saved as ipvsadm does.
    lab.rvsadm("-E", "-t", svc, "-s", "rr", "-p", "60", "-M", "64", check=True)
    assert f"TCP  {svc} rr persistent 60 mask 64\n" in lab.rvsadm("-L", "-n").stdout
    assert f"-A -t {svc} -s rr -p 60 -M 64\n" in lab.rvsadm("-S", "-n").stdout
    lab.rvsadm("-D", "-t", svc)
    assert svc not in lab.rvsadm("-S", "-n").stdout


def test_exception_path_carries_ipv6_addresses(lab):
    out = rvslab.in_ns("lb", ["ip", "-6", "-o", "addr", "show", "dev", DEV], check=True).stdout
    assert f"inet6 {IFACE_IP6}/64" in out, out
    # In use once duplicate address detection's second has passed (test_dad.py).
    rvslab.wait_until("fd77::2 past DAD", lambda: f"    inet6 {IFACE_IP6}/64 scope global\n" in lab.rvsadm("addr", "show").stdout, timeout=10)
    assert lab.rvsadm("-6", "route", "show").stdout == "fd77::/64 dev dpdk0 proto kernel scope link src fd77::2\n"
    assert "fd77" not in lab.rvsadm("route", "show").stdout, "ip route: IPv4 only"
    lab.rvsadm("addr", "add", "fd77::3/64", "dev", DEV)
    try:
        out = rvslab.in_ns("lb", ["ip", "-6", "-o", "addr", "show", "dev", DEV], check=True).stdout
        assert "inet6 fd77::3/64" in out, out
        r = lab.rvsadm("addr", "add", "fd77::3/64", "dev", DEV, check=False)
        assert r.returncode == 2 and "File exists" in r.stderr, r
    finally:
        lab.rvsadm("addr", "del", "fd77::3/64", "dev", DEV)
    out = rvslab.in_ns("lb", ["ip", "-6", "-o", "addr", "show", "dev", DEV], check=True).stdout
    assert "fd77::3" not in out, out


def test_metrics_label_ipv6_servers_as_the_listings(lab):
    text = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", "http://127.0.0.1:9477/metrics"], check=True).stdout
    for ip in REAL_SERVERS6.values():
        line = f'rvs_real_server_weight{{server="[{ip}]:80",service="TCP/{SVC6}"}} 1'
        assert line in text.splitlines(), [l for l in text.splitlines() if "fd77" in l][:6]


def dr_weights(lab) -> dict[str, int]:
    svc = rvslab.endpoint(VIP6, DR_PORT)
    services = [s for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout) if s.address == svc]
    return {r.address: r.weight for r in services[0].servers}


def test_dr_health_checks_probe_the_ipv6_vip(lab):
    # The servers hold the VIP on lo (as a DR server does) only from now:
    # until then no echo request to the VIP is answered, they are down.
    servers = {node: rvslab.endpoint(ip, DR_PORT) for node, ip in REAL_SERVERS6.items()}
    rvslab.wait_until("both DR servers down", lambda: set(dr_weights(lab).values()) == {0}, timeout=10)
    rules = rvslab.in_ns("lb", ["ip", "-6", "rule", "show"], check=True).stdout
    assert len(re.findall(r"fwmark 0x5256[0-9a-f]{4} lookup", rules)) == 2, rules
    try:
        for node in servers:
            rvslab.in_ns(node, ["ip", "-6", "addr", "add", f"{VIP6}/128", "dev", "lo", "nodad"], check=True)
        rvslab.wait_until("both DR servers up", lambda: set(dr_weights(lab).values()) == {1}, timeout=10)
        rvslab.in_ns("rs2", ["ip", "-6", "addr", "del", f"{VIP6}/128", "dev", "lo"], check=True)
        rvslab.wait_until("rs2 down, rs1 up", lambda: dr_weights(lab) == {servers["rs1"]: 1, servers["rs2"]: 0}, timeout=10)
    finally:
        for node in servers:
            rvslab.in_ns(node, ["ip", "-6", "addr", "del", f"{VIP6}/128", "dev", "lo"])
    log = lab.rvsd.log_text()
    assert f"real server {servers['rs2']} of TCP/{rvslab.endpoint(VIP6, DR_PORT)} is DOWN" in log, log[-2000:]
