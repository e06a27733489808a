"""The seeds' NAT labs, typed verbatim against the lab appliance: seed 000
§三 (a NAT web cluster, steps 4-10: the servers' gateway, the service, its
-m servers, the listings, the connection table, -S/-R) and seed 001's
"LVS-NAT实验" (lines 146-186: wrr with weights, `ipvsadm -ln`, ten curls).

Both seeds use two arms: the VIP on the director's outside interface, the
servers on an inside subnet whose gateway is the director. That is the
two-arm lab (`scripts/lab up --two-arm`): the client 10.78.0.10 on dpdk0's
subnet, the servers 10.79.0.11/12 on dpdk1's with their default route via
the appliance's inside address 10.79.0.2. rvsd starts there with an empty
table (the lab's FULLNAT service removed) and IPVS's TIME_WAIT of 120 s
(the seed's connection listing shows such entries, 01:52 and less).

Lines are kept as the seed prints them (prompt included, line numbers in
comments); seedops.Operator runs each with bash on the host its prompt
names, `ipvsadm` being the link scripts/install makes to rvsadm. Seed 001's
director lines lost their dashes in publication (`ipvsadm A t
172.16.0.10:80 s wrr`, `ipvsadm ln`): they are typed with the dashes an
operator types, the seed's text in a comment.

Address mapping (seed → lab):

    seed 000 §三
    192.168.146.100  VIP, the director's ens33   → 10.78.0.2 (dpdk0's address)
    192.168.152.100  the same VIP (§9's heading slips: 152 for 146) → 10.78.0.2
    192.168.146.1    the client (in §9's listing) → 10.78.0.10
    192.168.177.254  DIP (director ens37)        → 10.79.0.2
    192.168.177.10   web01                       → 10.79.0.11 (rvs-rs1)
    192.168.177.20   web02                       → 10.79.0.12 (rvs-rs2)
    /opt/web_rule    the rules file              → a file in the test's tmp dir

    seed 001 LVS-NAT
    172.16.0.10      VIP, the director's ens37   → 10.78.0.101 (see below)
    192.168.220.102  DIP (ens33)                 → 10.79.0.2
    192.168.10.20, 192.168.220.103  RS1 (node2)  → 10.79.0.11 (rvs-rs1)
    192.168.10.30, 192.168.220.104  RS2 (node3)  → 10.79.0.12 (rvs-rs2)
    /usr/share/nginx/html  node2's, node3's web root → the lab's page dirs

In both seeds the VIP is the director's own outside address. Seed 000's
is dpdk0's address 10.78.0.2 here: rvsd balances port 80 of it and hands
the rest (ARP, ping, other ports) to the kernel through the exception path.
Seed 001's lab is another machine that starts clean, while here seed 000's
connections still linger in TIME_WAIT (120 s) and would count as InActConn
for the same servers of the same VIP (as with the kernel's destination
trash): its VIP is another address on the client subnet. Director
kernel lines have no counterpart: §5's `net.ipv4.ip_forward = 1` and seed
001's lines 163-165 (ip_forward, `iptables -t nat` MASQUERADE): rvsd does
the forwarding and the address translation in its data plane.
"""

from __future__ import annotations

import re

import pytest

import rvslab
import seedops
from seedops import bodies, same_listing
from rvslab import RUN

CLIENT = "10.78.0.10"
VIP = "10.78.0.2"
TWO_ARM_CONFIG = RUN / "two-arm.toml"

MAP_000 = {
    "192.168.146.100": VIP,
    "192.168.152.100": VIP,
    "192.168.146.1": CLIENT,
    "192.168.177.254": "10.79.0.2",
    "192.168.177.10": "10.79.0.11",
    "192.168.177.20": "10.79.0.12",
}
MAP_001 = {
    "172.16.0.10": "10.78.0.101",
    "192.168.220.102": "10.79.0.2",
    "192.168.10.20": "10.79.0.11",
    "192.168.220.103": "10.79.0.11",
    "192.168.10.30": "10.79.0.12",
    "192.168.220.104": "10.79.0.12",
}
HOSTS = {"lvs": "director", "web01": "rs1", "web02": "rs2", "node1": "director", "node2": "rs1", "node3": "rs2"}

# seed 000 §三.4, lines 146-150: the server's routes, gateway the DIP.
SEED_000_ROUTE = "[root@web01 ~]# route -n"  # 146
SEED_000_ROUTE_DEFAULT = "0.0.0.0         192.168.177.254 0.0.0.0         UG    100    0        0 ens33"  # 149

# §三.6, lines 220-226.
SEED_000_ADD_SERVICE = "[root@lvs ~]# ipvsadm -A -t 192.168.146.100:80 -s rr "  # 220
SEED_000_LIST = "[root@lvs ~]# ipvsadm -L -n"  # 222, 239
SEED_000_LISTING_6 = [
    "IP Virtual Server version 1.2.1 (size=4096)",  # 223
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  192.168.146.100:80 rr",  # 226
]
# §三.7, lines 232-233.
SEED_000_ADD_SERVERS = [
    "[root@lvs ~]# ipvsadm -a -t 192.168.146.100:80 -r 192.168.177.10:80 -m",  # 232
    "[root@lvs ~]# ipvsadm -a -t 192.168.146.100:80 -r 192.168.177.20:80 -m ",  # 233
]
# §三.8, lines 240-245.
SEED_000_LISTING_8 = [
    "IP Virtual Server version 1.2.1 (size=4096)",  # 240
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  192.168.146.100:80 rr",
    "  -> 192.168.177.10:80            Masq    1      0          0         ",
    "  -> 192.168.177.20:80            Masq    1      0          0     ",  # 245
]
# §三.9: "测试访问：http://192.168.152.100" (a browser; here curl, five times
# as the five entries of the seed's listing), then lines 251-258.
SEED_000_VISIT = "curl http://192.168.152.100"  # 248
SEED_000_CONNS = "[root@lvs ~]# ipvsadm -L -n -c"  # 251
SEED_000_CONN_LISTING = [
    "IPVS connection entries",  # 252
    "pro expire state       source             virtual            destination",
    "TCP 01:14  TIME_WAIT   192.168.146.1:55276 192.168.146.100:80 192.168.177.20:80",
    "TCP 00:30  TIME_WAIT   192.168.146.1:56266 192.168.146.100:80 192.168.177.20:80",
    "TCP 00:55  TIME_WAIT   192.168.146.1:60898 192.168.146.100:80 192.168.177.10:80",
    "TCP 01:01  TIME_WAIT   192.168.146.1:65024 192.168.146.100:80 192.168.177.10:80",
    "TCP 01:52  TIME_WAIT   192.168.146.1:51311 192.168.146.100:80 192.168.177.20:80",  # 258
]
# §三.10, lines 265-266 ("保存" save, "恢复" restore).
SEED_000_SAVE = "ipvsadm -S > /opt/web_rule"  # 265
SEED_000_RESTORE = "ipvsadm -R < /opt/web_rule"  # 266

# seed 001 LVS-NAT, lines 168-179, as an operator types them.
SEED_001_NAT = [
    "[root@node1 ~]# ipvsadm -A -t 172.16.0.10:80 -s wrr",  # 168: ipvsadm A t 172.16.0.10:80 s wrr
    "[root@node1 ~]# ipvsadm -a -t 172.16.0.10:80 -r 192.168.10.20:80 -m -w 1",  # 169: ipvsadm a t ... r 192.168.10.20:80 m w 1
    "[root@node1 ~]# ipvsadm -a -t 172.16.0.10:80 -r 192.168.10.30:80 -m -w 1",  # 170: ipvsadm a t ... r 192.168.10.30:80 m w 1
]
SEED_001_LIST = "[root@node1 ~]# ipvsadm -ln"  # 173: ipvsadm ln
SEED_001_LISTING = [  # 174-179, as printed: numbered, spacing lost, "‐>" with U+2010
    "  2. IP Virtual Server version 1.2.1 (size=4096)",
    "  3. Prot LocalAddress:Port Scheduler Flags",
    "  4. \u2010> RemoteAddress:Port Forward Weight ActiveConn InActConn",
    "  5. TCP 172.16.0.10:80 wrr",
    "  6. \u2010> 192.168.10.20:80 Masq 1 0 0",
    "  7. \u2010> 192.168.10.30:80 Masq 1 0 0",
]
SEED_001_PAGES = [
    '[root@node2 ~]# echo "RS2" > /usr/share/nginx/html/index.html',  # 183
    '[root@node3 ~]# echo "RS3" > /usr/share/nginx/html/index.html',  # 184
]
SEED_001_TEST = "for i in {1..10};do curl 172.16.0.10;done"  # 186 (测试: test)


@pytest.fixture(scope="module")
def nat_lab(request, tmp_path_factory):
    """`scripts/lab up --two-arm`, rvsd on its config without services and
    with TIME_WAIT 120 s; always torn down."""
    workdir = tmp_path_factory.mktemp("rvs-seeds-nat")
    socket = workdir / "rvsd.sock"
    config = workdir / "seeds-nat.toml"
    log = workdir / "rvsd.log"
    rvsd = None
    failed_before = request.session.testsfailed
    ready = False
    try:
        rvslab.lab("up", "--two-arm")
        timeouts = {**rvslab.SHORT_TIMEOUTS, "tcp_time_wait": 120}
        text = rvslab.make_test_config(socket=socket, file_prefix="rvs-e2e", base=TWO_ARM_CONFIG, timeouts=timeouts)
        config.write_text(seedops.without_services(text))
        rvsd = rvslab.Rvsd(config, socket, log)
        rvsd.start()
        rvsd.wait_ready(timeout=30)
        ready = True
        yield socket, workdir
    finally:
        status = rvsd.stop(grace=5) if rvsd else None
        try:
            rvslab.lab("down")
        finally:
            if rvsd and (not ready or request.session.testsfailed > failed_before):
                print(f"---- rvsd log ({log}, exit status {status}) ----\n{rvsd.log_text()}")


@pytest.fixture(scope="module")
def op000(nat_lab):
    socket, workdir = nat_lab
    mapping = {**MAP_000, "/opt/web_rule": str(workdir / "web_rule")}
    return seedops.Operator(socket, workdir, HOSTS, mapping)


@pytest.fixture(scope="module")
def op001(nat_lab):
    socket, workdir = nat_lab
    return seedops.Operator(socket, workdir, HOSTS, MAP_001)


def served(before: dict[str, int], n: int) -> dict[str, list[str]]:
    """The client addresses the servers logged since BEFORE, once N arrived."""
    def probe():
        new = {node: rvslab.access_sources(node)[before[node]:] for node in ("rs1", "rs2")}
        return new if sum(map(len, new.values())) >= n else None
    return rvslab.wait_until(f"{n} requests in the servers' access logs", probe, timeout=10)


def log_marks() -> dict[str, int]:
    return {node: len(rvslab.access_sources(node)) for node in ("rs1", "rs2")}


def test_seed_000_director_addresses(op000):
    """§三.3 (lines 124-131): the director's two arms, VIP on ens33 and DIP
    on ens37. rvsd gives its ports' addresses to the kernel of rvs-lb (the
    exception path), where `ip addr show` (line 124) finds them."""
    shown = rvslab.in_ns("lb", ["ip", "addr", "show"], check=True).stdout
    for seed_line in ["inet 192.168.146.100/24 brd 192.168.146.255 scope global noprefixroute ens33",  # 127
                      "inet 192.168.177.254/24 brd 192.168.177.255 scope global noprefixroute ens37"]:  # 131
        address = op000.adapt(seed_line.split()[1])
        assert re.search(rf"^    inet {re.escape(address)} .*scope global", shown, re.M), (address, shown)


def test_seed_000_servers_route_through_the_director(op000):
    """§三.4: each real server's default gateway is the DIP."""
    for host in ("web01", "web02"):
        routes = op000.type(f"[root@{host} ~]# route -n").stdout
        default = [l.split()[:4] for l in routes.splitlines() if l.startswith("0.0.0.0 ")]
        assert default == [op000.adapt(SEED_000_ROUTE_DEFAULT).split()[:4]], routes


def test_seed_000_nat_web_cluster(nat_lab, op000):
    """§三.6-9: the service, the listing, the -m servers, the listing, five
    visits alternating web01/web02 with the client's own address at the
    servers, then the connection table: five TIME_WAIT entries."""
    socket, _ = nat_lab
    assert op000.type(SEED_000_ADD_SERVICE).stdout == ""
    same_listing(op000.type(SEED_000_LIST).stdout, SEED_000_LISTING_6, op000)
    for line in SEED_000_ADD_SERVERS:
        assert op000.type(line).stdout == ""
    same_listing(op000.type(SEED_000_LIST).stdout, SEED_000_LISTING_8, op000)

    before = log_marks()
    visits = [a for _ in range(5) for a in bodies(op000.type(SEED_000_VISIT, on="client"))]
    assert visits == ["rs1", "rs2", "rs1", "rs2", "rs1"], visits
    assert served(before, 5) == {"rs1": [CLIENT] * 3, "rs2": [CLIENT] * 2}, "NAT: the servers see the client"

    out = op000.type(SEED_000_CONNS).stdout
    lines = out.splitlines()
    # Header lines as the seed prints them; then one line per visit in
    # ipvsadm's layout ("%-3s %02d:%02d  %-11s %-18s %-18s %s"): the same
    # state, client, VIP and servers as the seed's, expiry within TIME_WAIT.
    assert lines[:2] == SEED_000_CONN_LISTING[:2], out
    pattern = re.compile(r"^TCP (\d\d):(\d\d)  TIME_WAIT   (\S+):(\d+) +(\S+) +(\S+)$")
    seed_rows = [pattern.match(op000.adapt(l)).groups() for l in SEED_000_CONN_LISTING[2:]]
    rows = [pattern.match(l) for l in lines[2:]]
    assert len(rows) == 5 and all(rows), out
    rows = [r.groups() for r in rows]
    for line, r in zip(lines[2:], rows):
        assert line == f"TCP {r[0]}:{r[1]}  {'TIME_WAIT':<11} {r[2] + ':' + r[3]:<18} {r[4]:<18} {r[5]}", line
        assert 0 < int(r[0]) * 60 + int(r[1]) <= 120, line
    assert {r[2] for r in rows} == {r[2] for r in seed_rows} == {CLIENT}, out
    assert {r[4] for r in rows} == {r[4] for r in seed_rows} == {f"{VIP}:80"}, out
    assert sorted(r[5] for r in rows) == ["10.79.0.11:80"] * 3 + ["10.79.0.12:80"] * 2, out
    assert {r[5] for r in seed_rows} == {"10.79.0.11:80", "10.79.0.12:80"}


def test_seed_000_save_and_restore(nat_lab, op000):
    """§三.10: -S to a file, -R from it. The seed restores into a fresh
    table (after a reboot); the test clears the table first (-C, not a
    seed line)."""
    _, workdir = nat_lab
    assert op000.type(SEED_000_SAVE, on="director").stdout == ""
    rules = (workdir / "web_rule").read_text()
    # ipvsadm -S without -n writes names, as the seed's file shows
    # (192.168.146.100:http): the port's /etc/services name; the lab's
    # addresses have no host names (not in /etc/hosts, no PTR record).
    assert rules.splitlines() == [
        f"-A -t {VIP}:http -s rr",
        f"-a -t {VIP}:http -r 10.79.0.11:http -m -w 1",
        f"-a -t {VIP}:http -r 10.79.0.12:http -m -w 1",
    ], rules
    listed = op000.type(SEED_000_LIST).stdout
    op000.type("[root@lvs ~]# ipvsadm -C")
    assert rvslab.parse_services(op000.type(SEED_000_LIST).stdout) == []
    assert op000.type(SEED_000_RESTORE, on="director").stdout == ""
    assert op000.type(SEED_000_LIST).stdout == listed
    before = log_marks()
    visits = [a for _ in range(4) for a in bodies(op000.type(SEED_000_VISIT, on="client"))]
    assert sorted(visits) == ["rs1", "rs1", "rs2", "rs2"], visits
    assert sorted(sum(served(before, 4).values(), [])) == [CLIENT] * 4


def test_seed_001_nat_lab(nat_lab, op001):
    """Seed 001 lines 168-186: wrr with weights 1 and 1, `ipvsadm -ln` as the
    seed prints it, the servers' pages, and ten curls that alternate."""
    op001.type("[root@node1 ~]# ipvsadm -C")  # the seed 000 cluster goes first (not a seed line)
    for line in SEED_001_NAT:
        assert op001.type(line).stdout == ""
    same_listing(op001.type(SEED_001_LIST).stdout, SEED_001_LISTING, op001)
    for line, node in zip(SEED_001_PAGES, ("rs1", "rs2")):
        op001.type(line, extra={"/usr/share/nginx/html": str(RUN / node)})
    before = log_marks()
    typed = op001.type(SEED_001_TEST, on="client")
    assert bodies(typed) == ["RS2", "RS3"] * 5, typed.stdout
    assert served(before, 10) == {"rs1": [CLIENT] * 5, "rs2": [CLIENT] * 5}
