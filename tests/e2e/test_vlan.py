"""802.1Q VLAN sub-interfaces through the real DPDK path.

rvsd gets a sub-interface `dpdk0.100` (VLAN 100 on its one port, address
10.100.0.2/24, declared as an `[[interface]]` with `link` and `vlan`). The
test gives the client and both real servers a VLAN device `eth0.100` on the
same wire (10.100.0.10, .11, .12), with HTTP servers on the VLAN addresses,
and a second VLAN device `eth0.200` to the client that rvsd does not know.
The lab's kernel has no 802.1Q (`type vlan` is an unknown device type), so
these are userspace VLAN devices (vlan_dev.py: a TAP whose frames leave eth0
tagged); rvsd needs no kernel VLAN support either (the sub-interface's
exception path is a TAP of its own, the workers tag and untag).

Shown: a FULLNAT service on a VIP in the VLAN's subnet balances between the
servers, reached over the VLAN, and the frames on the server's wire carry
the tag (tcpdump -e on the server namespace's parent eth0); a NAT service on
the untagged subnet reaches the same servers over the VLAN (a reply comes
back tagged and leaves untagged); the sub-interface's address answers ping
(ARP and ICMP through the kernel side: the sub-interface's own TAP) and the
kernel side reaches the servers over the VLAN; untagged traffic on the same
port still works; frames of an unknown VLAN are dropped and counted
(`unknown_vlan`); `rvsadm link show` lists `dpdk0.100@dpdk0` as ip does."""

from __future__ import annotations

import re
import subprocess

from pathlib import Path

import pytest

import rvslab
from rvslab import CLIENT_IP, VIP

VID = 100
NET = "10.100.0"
LB_VLAN = f"{NET}.2"
VIP_VLAN = f"{NET}.100"
LIP_VLAN = f"{NET}.200"
CLIENT_VLAN = f"{NET}.10"
RS_VLAN = {"rs1": f"{NET}.11", "rs2": f"{NET}.12"}
HTTP_PORT = 8080
UNKNOWN_VID = 200

SUB_INTERFACE = f"""
[[interface]]
name = "dpdk0.{VID}"
link = "dpdk0"
vlan = {VID}
address = "{LB_VLAN}/24"
"""

SERVICES = f"""
[[service]]
vip = "{VIP_VLAN}:{HTTP_PORT}"
protocol = "tcp"
scheduler = "rr"
forward = "fullnat"
local_addresses = ["{LIP_VLAN}"]

[[service.real_server]]
address = "{RS_VLAN['rs1']}:{HTTP_PORT}"

[[service.real_server]]
address = "{RS_VLAN['rs2']}:{HTTP_PORT}"

[[service]]
vip = "{VIP}:{HTTP_PORT}"
protocol = "tcp"
scheduler = "rr"
forward = "nat"

[[service.real_server]]
address = "{RS_VLAN['rs1']}:{HTTP_PORT}"

[[service.real_server]]
address = "{RS_VLAN['rs2']}:{HTTP_PORT}"
"""


def rvsd_config(text: str) -> str:
    return rvslab.append_service(rvslab.append_service(text, SUB_INTERFACE), SERVICES)


VLAN_DEV = Path(__file__).with_name("vlan_dev.py")


def vlan_dev(node: str, vid: int, addr: str) -> subprocess.Popen:
    """`eth0.VID` with ADDR/24 in rvs-NODE (vlan_dev.py); stops with its process."""
    proc = subprocess.Popen(["ip", "netns", "exec", f"rvs-{node}", "python3", "-u", str(VLAN_DEV), "eth0", f"eth0.{vid}", str(vid), f"{addr}/24"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    line = proc.stdout.readline().strip()
    assert line == "ready", f"VLAN device eth0.{vid} in rvs-{node} did not start: {line!r} {proc.stdout.read() if proc.poll() is not None else ''}"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module", autouse=True)
def vlan_topology(lab):
    """VLAN devices in the client and servers, HTTP servers on the VLAN
    addresses, the servers' way back to the untagged client through rvsd
    (NAT); all removed at the end."""
    servers = []
    try:
        servers.append(vlan_dev("client", VID, CLIENT_VLAN))
        servers.append(vlan_dev("client", UNKNOWN_VID, f"10.{UNKNOWN_VID}.0.10"))
        for node, addr in RS_VLAN.items():
            servers.append(vlan_dev(node, VID, addr))
            # NAT: replies to the untagged client go back through rvsd, over the VLAN.
            rvslab.in_ns(node, ["ip", "route", "add", f"{CLIENT_IP}/32", "via", LB_VLAN, "dev", f"eth0.{VID}"], check=True)
            root = lab.workdir / f"www-{node}"
            root.mkdir(exist_ok=True)
            (root / "index.html").write_text(f"{node}-vlan\n")
            log = open(lab.workdir / f"http-{node}.log", "w")
            servers.append(subprocess.Popen(
                ["ip", "netns", "exec", f"rvs-{node}", "python3", "-u", "-m", "http.server", str(HTTP_PORT),
                 "--bind", addr, "--directory", str(root)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))
        for node, addr in RS_VLAN.items():
            rvslab.wait_until(f"HTTP on {node} {addr}:{HTTP_PORT}", lambda n=node, a=addr: rvslab.in_ns(
                n, ["curl", "-s", "--max-time", "1", f"http://{a}:{HTTP_PORT}/"]).stdout.strip() == f"{n}-vlan" or None,
                timeout=15)
        yield
    finally:
        for node in RS_VLAN:
            rvslab.in_ns(node, ["ip", "route", "del", f"{CLIENT_IP}/32"])
        # Their TAPs (eth0.VID) go with the VLAN devices' processes.
        for s in reversed(servers):
            stop(s)


def sources(lab, node: str) -> list[str]:
    """Client addresses in NODE's VLAN HTTP server log."""
    text = (lab.workdir / f"http-{node}.log").read_text(errors="replace")
    return re.findall(r"^(\d+\.\d+\.\d+\.\d+) - - \[", text, re.M)


def unknown_vlan_drops(lab) -> int:
    return sum(w.drops.get("unknown_vlan", 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout))


def pages(url: str, n: int, *extra: str) -> list[str]:
    out = []
    for _ in range(n):
        r = rvslab.client_curl(url, *extra)
        assert r.returncode == 0, f"curl {url}: exit {r.returncode} {r.stderr}"
        out.append(r.stdout.strip())
    return out


def ping(node: str, addr: str, count: int = 2) -> subprocess.CompletedProcess:
    return rvslab.in_ns(node, ["ping", "-c", str(count), "-i", "0.3", "-W", "2", addr], timeout=20)


def test_link_show_lists_the_sub_interface_as_ip_does(lab):
    text = lab.rvsadm("link", "show").stdout
    assert re.search(rf"^2: dpdk0\.{VID}@dpdk0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500 state UP\n"
                     rf"    link/ether ([0-9a-f:]{{17}}) brd ff:ff:ff:ff:ff:ff\n    vlan protocol 802\.1Q id {VID}\n", text, re.M), text
    macs = re.findall(r"link/ether ([0-9a-f:]{17})", text)
    assert len(macs) == 2 and macs[0] == macs[1], f"the sub-interface has its port's MAC: {text}"
    addrs = lab.rvsadm("addr", "show", "dev", f"dpdk0.{VID}").stdout
    assert f"inet {LB_VLAN}/24 brd {NET}.255 scope global dpdk0.{VID}" in addrs, addrs
    routes = lab.rvsadm("route", "show").stdout
    assert f"{NET}.0/24 dev dpdk0.{VID} proto kernel scope link src {LB_VLAN}" in routes, routes
    # The kernel side: the sub-interface's own TAP, with the port's MAC and the address.
    k = rvslab.in_ns("lb", ["ip", "addr", "show", "dev", f"dpdk0.{VID}"], check=True).stdout
    assert f"inet {LB_VLAN}/24" in k and f"link/ether {macs[0]}" in k, k


def test_fullnat_on_the_vlan_balances_between_servers_reached_over_it(lab):
    before = {n: len(sources(lab, n)) for n in RS_VLAN}
    got = pages(f"http://{VIP_VLAN}:{HTTP_PORT}/", 6)
    assert sorted(set(got)) == ["rs1-vlan", "rs2-vlan"] and got.count("rs1-vlan") == 3, got
    for n in RS_VLAN:
        seen = sources(lab, n)[before[n]:]
        assert seen and set(seen) == {LIP_VLAN}, f"{n} saw {seen}: FULLNAT's local address on the VLAN"
    conns = lab.rvsadm("-L", "-n", "-c").stdout
    assert f"{VIP_VLAN}:{HTTP_PORT}" in conns, conns


def test_frames_on_the_servers_wire_carry_the_tag(lab):
    cap = lab.workdir / "tcpdump-rs1.txt"
    err = lab.workdir / "tcpdump-rs1.err"
    with open(cap, "w") as out, open(err, "w") as e:
        proc = subprocess.Popen(["ip", "netns", "exec", "rvs-rs1", "tcpdump", "-e", "-n", "-l", "-i", "eth0",
                                 f"tcp port {HTTP_PORT} or (vlan and tcp port {HTTP_PORT})"], stdin=subprocess.DEVNULL, stdout=out, stderr=e)
    try:
        rvslab.wait_until("tcpdump to listen", lambda: "listening on" in err.read_text() or proc.poll() is not None, timeout=10)
        assert proc.poll() is None, err.read_text()
        got = pages(f"http://{VIP_VLAN}:{HTTP_PORT}/", 4)
        assert "rs1-vlan" in got, got
        rvslab.wait_until("tagged frames in the capture", lambda: cap.read_text().count("\n") >= 6 or None, timeout=10)
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    lines = [line for line in cap.read_text().splitlines() if f"{LIP_VLAN}." in line]
    to_rs = [line for line in lines if f"> {RS_VLAN['rs1']}.{HTTP_PORT}" in line]
    from_rs = [line for line in lines if f"{RS_VLAN['rs1']}.{HTTP_PORT} > {LIP_VLAN}." in line]
    assert to_rs and from_rs, "\n".join(lines)
    # Every frame of the conversation, both ways, carries the tag (tcpdump -e:
    # "... ethertype 802.1Q (0x8100), length N: vlan 100, p 0, ethertype IPv4 ...").
    for line in lines:
        assert "ethertype 802.1Q (0x8100)" in line and f"vlan {VID}, p 0, ethertype IPv4" in line, line


def test_nat_from_the_untagged_subnet_to_servers_on_the_vlan(lab):
    before = {n: len(sources(lab, n)) for n in RS_VLAN}
    got = pages(f"http://{VIP}:{HTTP_PORT}/", 4)
    assert sorted(set(got)) == ["rs1-vlan", "rs2-vlan"], got
    for n in RS_VLAN:
        seen = sources(lab, n)[before[n]:]
        assert seen and set(seen) == {CLIENT_IP}, f"{n} saw {seen}: NAT keeps the client's address"


def test_ping_the_sub_interface_and_from_its_kernel_side(lab):
    r = ping("client", LB_VLAN)
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0% packet loss" in r.stdout and "DUP" not in r.stdout, r.stdout
    neigh = rvslab.in_ns("client", ["ip", "neigh", "show", LB_VLAN, "dev", f"eth0.{VID}"], check=True).stdout
    assert "lladdr" in neigh, neigh
    # The appliance's own traffic (kernel side) to a server, over the VLAN.
    r = ping("lb", RS_VLAN["rs2"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"dev dpdk0.{VID}" in rvslab.in_ns("lb", ["ip", "route", "get", RS_VLAN["rs2"]], check=True).stdout


def test_untagged_traffic_on_the_same_port_still_works(lab):
    got = pages(f"http://{VIP}/", 4)
    assert sorted(set(got)) == ["rs1", "rs2"], got
    r = ping("client", "10.77.0.2")
    assert r.returncode == 0, r.stdout + r.stderr


def test_an_unknown_vlan_is_dropped_and_counted(lab):
    before = unknown_vlan_drops(lab)
    r = ping("client", f"10.{UNKNOWN_VID}.0.2", count=2)
    assert r.returncode != 0, "nothing answers on a VLAN rvsd does not have"
    after = rvslab.wait_until("unknown_vlan drops", lambda: (d := unknown_vlan_drops(lab)) > before and d or None, timeout=5)
    assert after - before >= 1, (before, after)
    metrics = rvslab.in_ns("lb", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
    assert re.search(r'reason="unknown_vlan"[^\n]*\} [1-9]', metrics), [m for m in metrics.splitlines() if "unknown_vlan" in m]
    # The VLAN that exists keeps working.
    assert pages(f"http://{VIP_VLAN}:{HTTP_PORT}/", 2)
