"""Seed 001's "LVS-TUN实验" (lines 190-218), typed against the lab appliance.

The seed's director lines lost their dashes when the note was published
(`ipvsadm A t 192.168.10.100:80 s wrr`); they are typed as an operator
would, with the dashes (`ipvsadm -A -t ... -s wrr`), the seed's own text
kept in a comment. Its real-server script (lines 208-215) is typed as is,
except `route add host $vip lo:0` (line 211), which lost its dash too.

The seed adds its servers with `-m` (line 202-203): a slip, since the rest
of the section (the VIP on lo:0, the ARP sysctls, "TUN") is a tunnel lab.
As typed, the service is NAT (Masq), and test_as_typed_it_is_nat checks
exactly that, with the traffic NAT needs: the servers' replies must come
back through the director, so the servers' default route is the appliance
(10.77.0.2), and the client reaches the VIP from a second address on
another subnet (10.88.0.10, the route to the VIP in rvs-client uses it as
source) — a client on the servers' own subnet would get the replies
straight from the servers' addresses, with the kernel's IPVS as with rvs.
test_intended_tunnel types the same lines with `-i` in place of `-m`: a
TUN service whose servers answer the client directly from the VIP. The
lab's kernel has no ipip module, so each server runs ipip_decap.py in place
of `tunl0` (see test_tun.py); the seed's lo:0 VIP stays as well.

Address mapping (seed → lab; the seed names its VIP twice: 192.168.10.100
in the commands, 192.168.220.105 in its heading and test line):

    192.168.10.100, 192.168.220.105  VIP   → 10.77.0.100
    192.168.10.20   RS (node2)             → 10.77.0.11 (rvs-rs1, page "rs1")
    192.168.10.30   RS (node3)             → 10.77.0.12 (rvs-rs2, page "rs2")
    192.168.220.102 DIP (node1, director)  → 10.77.0.2

The director's own lines 199-200 (`ifconfig ens33:0 VIP ... up`, `route
add host VIP dev ens33:0`) have no counterpart: rvsd owns the VIP in its
data plane and answers ARP for it.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import rvslab
import seedops
from seedops import bodies

VIP = "10.77.0.100"
CLIENT = rvslab.CLIENT_IP
CLIENT_OUTSIDE = "10.88.0.10"
APPLIANCE = "10.77.0.2"
DECAP = Path(__file__).with_name("ipip_decap.py")

MAPPING = {
    "192.168.10.100": VIP,
    "192.168.220.105": VIP,
    "192.168.10.20": "10.77.0.11",
    "192.168.10.30": "10.77.0.12",
    "192.168.220.102": APPLIANCE,
}
HOSTS = {"node1": "director", "node2": "rs1", "node3": "rs2"}

# Lines 201-203 as an operator types them.
SEED_001_TUN_DIRECTOR = [
    "[root@node1 ~]# ipvsadm -A -t 192.168.10.100:80 -s wrr",  # 201: ipvsadm A t 192.168.10.100:80 s wrr
    "[root@node1 ~]# ipvsadm -a -t 192.168.10.100:80 -r 192.168.10.20:80 -m -w 2",  # 202: ipvsadm a t ... r 192.168.10.20:80 m w 2
    "[root@node1 ~]# ipvsadm -a -t 192.168.10.100:80 -r 192.168.10.30:80 -m -w 1",  # 203: ipvsadm a t ... r 192.168.10.30:80 m w 1
]

# Lines 208-215: rs.sh, "在所有RS上部署!" (deploy on every RS).
SEED_001_RS_SH = "\n".join([
    "#!/bin/bash",  # 208
    "vip=192.168.10.100",  # 209
    "ifconfig lo:0 $vip broadcast $vip netmask 255.255.255.255 up",  # 210
    "route add -host $vip lo:0",  # 211: route add host $vip lo:0
    'echo "1" >/proc/sys/net/ipv4/conf/lo/arp_ignore',  # 212
    'echo "2" >/proc/sys/net/ipv4/conf/lo/arp_announce',  # 213
    'echo "1" >/proc/sys/net/ipv4/conf/all/arp_ignore',  # 214
    'echo "2" >/proc/sys/net/ipv4/conf/all/arp_announce',  # 215
])

# Line 218, typed on the client.
SEED_001_TUN_TEST = "for((i=1;i<5;i++));do curl 192.168.220.105;done"

# wrr with weights 2 (node2) and 1 (node3): the seed's four requests get
# node2's page three times, node3's once. The order depends on the state
# the scheduler starts from: the kernel, which runs ip_vs_wrr_dest_changed
# at each `-a`, answers rs1 rs2 rs1 rs1 after lines 201-203; rvs's worker
# adopts only the newest published table, so when it has not seen the
# one-server table in between it starts as for a new two-server service,
# rs1 rs1 rs2 rs1. Both have the 3:1 split that is checked.
WRR_2_1 = ["rs1", "rs1", "rs1", "rs2"]


def rvsd_config(text: str) -> str:
    return seedops.without_services(text)


@pytest.fixture(scope="module")
def op(lab):
    return seedops.Operator(lab.socket, lab.workdir, HOSTS, MAPPING)


@pytest.fixture(scope="module")
def rs_sh(lab, op):
    """rs.sh typed on node2 and node3 (lines 207-216)."""
    for node in ("rs1", "rs2"):
        op.type(SEED_001_RS_SH, on=node)
        lo = rvslab.in_ns(node, ["ip", "addr", "show", "lo"], check=True).stdout
        assert f"inet {VIP}/32 brd {VIP} scope global lo:0" in lo, lo
        route = rvslab.in_ns(node, ["ip", "route", "show", VIP], check=True).stdout
        assert f"{VIP} dev lo" in route, route


def start_table(op) -> None:
    op.type("[root@node1 ~]# ipvsadm -C")  # each run starts from an empty table (not a seed line)
    rvslab.wait_until("no connections left", lambda: not rvslab.parse_connections(
        op.type("[root@node1 ~]# ipvsadm -L -n -c").stdout), timeout=20)


def test_as_typed_it_is_nat(lab, op, rs_sh):
    start_table(op)
    saved = {n: rvslab.in_ns(n, ["ip", "route", "show", "default"], check=True).stdout.strip() for n in ("rs1", "rs2")}
    try:
        rvslab.in_ns("client", ["ip", "addr", "add", f"{CLIENT_OUTSIDE}/24", "dev", "eth0"], check=True)
        rvslab.in_ns("client", ["ip", "route", "add", f"{VIP}/32", "dev", "eth0", "src", CLIENT_OUTSIDE], check=True)
        for n in ("rs1", "rs2"):
            rvslab.in_ns(n, ["ip", "route", "replace", "default", "via", APPLIANCE], check=True)

        for line in SEED_001_TUN_DIRECTOR:
            assert op.type(line).stdout == ""
        out = op.type("[root@node1 ~]# ipvsadm -ln").stdout  # seed 001 lists with `ipvsadm ln` (line 173)
        seedops.ipvsadm_layout(out)
        (svc,) = rvslab.parse_services(out)
        assert (svc.protocol, svc.address, svc.scheduler) == ("TCP", f"{VIP}:80", "wrr"), out
        assert [(r.address, r.forward, r.weight) for r in svc.servers] == [
            ("10.77.0.11:80", "Masq", 2), ("10.77.0.12:80", "Masq", 1)], out

        before = {n: len(rvslab.access_sources(n)) for n in ("rs1", "rs2")}
        typed = op.type(SEED_001_TUN_TEST, on="client")
        assert sorted(bodies(typed)) == WRR_2_1 and bodies(typed)[0] == "rs1", typed
        new = rvslab.wait_until("the requests in the access logs", lambda: {n: rvslab.access_sources(n)[before[n]:] for n in ("rs1", "rs2")}
                                if sum(len(rvslab.access_sources(n)) - before[n] for n in ("rs1", "rs2")) >= 4 else None, timeout=10)
        assert new == {"rs1": [CLIENT_OUTSIDE] * 3, "rs2": [CLIENT_OUTSIDE]}, f"NAT: servers see the client: {new}"
    finally:
        rvslab.in_ns("client", ["ip", "route", "del", f"{VIP}/32"])
        rvslab.in_ns("client", ["ip", "addr", "del", f"{CLIENT_OUTSIDE}/24", "dev", "eth0"])
        for n, route in saved.items():
            rvslab.in_ns(n, ["ip", "route", "del", "default"])
            if route:
                rvslab.in_ns(n, ["ip", "route", "add", *route.split()], check=True)


@pytest.fixture(scope="module")
def tunl0(lab, rs_sh):
    """ipip_decap.py (tunl0's stand-in) and httpd on the VIP in each server."""
    decaps, webs = [], {}
    try:
        for n in ("rs1", "rs2"):
            p = subprocess.Popen(["ip", "netns", "exec", f"rvs-{n}", "python3", "-u", str(DECAP), "rvstun0", VIP],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            decaps.append(p)
            assert p.stdout.readline().strip() == b"ready", f"ipip_decap in rvs-{n}"
            webs[n] = seedops.VipHttp(n, VIP)
        yield webs
    finally:
        for w in webs.values():
            w.stop()
        for p in decaps:
            p.terminate()
            p.wait(timeout=5)


def test_intended_tunnel(lab, op, tunl0):
    start_table(op)
    for line in SEED_001_TUN_DIRECTOR:
        line = line.replace(" -m ", " -i ")
        assert op.type(line).stdout == ""
    out = op.type("[root@node1 ~]# ipvsadm -ln").stdout
    seedops.ipvsadm_layout(out)
    (svc,) = rvslab.parse_services(out)
    assert [(r.address, r.forward, r.weight) for r in svc.servers] == [
        ("10.77.0.11:80", "Tunnel", 2), ("10.77.0.12:80", "Tunnel", 1)], out

    for w in tunl0.values():
        w.mark()
    typed = op.type(SEED_001_TUN_TEST, on="client")
    assert sorted(bodies(typed)) == WRR_2_1 and bodies(typed)[0] == "rs1", typed
    seen = rvslab.wait_until("the requests in the VIP servers' logs",
                             lambda: {n: w.sources() for n, w in tunl0.items()}
                             if sum(len(w.sources()) for w in tunl0.values()) == 4 else None, timeout=10)
    assert seen == {"rs1": [CLIENT] * 3, "rs2": [CLIENT]}, f"TUN: servers see the client: {seen}"
    # The answers came from the servers, not through the appliance: rvsd
    # counted the client's packets only.
    stats = op.type("[root@node1 ~]# ipvsadm -L -n --stats --exact").stdout
    row = next(l.split() for l in stats.splitlines() if l.startswith("TCP  "))
    conns, inpkts, outpkts = map(int, row[2:5])
    # Counted from the `-a` lines on: the NAT run before used the same
    # servers of the same VIP, and its counts do not carry over.
    assert conns == 4 and inpkts >= 4 * 4 and outpkts == 0, stats
    saved = op.type("[root@node1 ~]# ipvsadm -S -n").stdout
    assert saved.splitlines() == [
        f"-A -t {VIP}:80 -s wrr",
        f"-a -t {VIP}:80 -r 10.77.0.11:80 -i -w 2",
        f"-a -t {VIP}:80 -r 10.77.0.12:80 -i -w 1",
    ], saved
