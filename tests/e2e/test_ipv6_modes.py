"""IPv6 through the real DPDK data path, every forwarding mode, in the lab's
fd77::/64 beside its IPv4 segment:

- FULLNAT  [fd77::100]:80 -> [fd77::11]:80, [fd77::12]:80, local address fd77::200
- UDP      [fd77::100]:53 -> [fd77::11]:5353, [fd77::12]:5353 (FULLNAT, IPv6 echo servers)
- DR       [fd77::101]:80 -> servers holding fd77::101 on lo, HTTP bound to it
- TUN      [fd77::102]:80 -> IPv6-in-IPv6; the servers decapsulate with
           ipip_decap.py (raw socket for next header 41 -> TUN device with the VIP)
- NAT      [fd77::103]:80 -> servers whose route to the client's second
           prefix fd88::/64 goes through the appliance (fd77::2)
- FULLNAT64 [fd77::104]:80 -> 10.77.0.11:80, 10.77.0.12:80, local address 10.77.0.200

For each: 20 requests alternate between the two servers, the servers see the
source the mode implies, a 10 MB download arrives intact. The client and
the servers resolve the appliance with neighbour discovery (the data plane
answers solicitations for VIPs, local and interface addresses)."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

import rvslab
from rvslab import RUN

CLIENT6 = "fd77::10"
CLIENT_NAT6 = "fd88::10"
APPLIANCE6 = "fd77::2"
RS6 = {"rs1": "fd77::11", "rs2": "fd77::12"}
VIP_FULLNAT, VIP_DR, VIP_TUN, VIP_NAT, VIP_64 = "fd77::100", "fd77::101", "fd77::102", "fd77::103", "fd77::104"
LADDR6 = "fd77::200"
DECAP = Path(__file__).with_name("ipip_decap.py")


def service(vip: str, forward: str, servers: list[str], laddrs: list[str] | None = None, proto: str = "tcp", port: int = 80) -> str:
    text = f'\n[[service]]\nvip = "[{vip}]:{port}"\nprotocol = "{proto}"\nscheduler = "rr"\nforward = "{forward}"\n'
    if laddrs:
        text += "local_addresses = [" + ", ".join(f'"{a}"' for a in laddrs) + "]\n"
    for s in servers:
        text += f'\n[[service.real_server]]\naddress = "{s}"\n'
    return text


SERVICES = "".join([
    service(VIP_FULLNAT, "fullnat", [f"[{ip}]:80" for ip in RS6.values()], [LADDR6]),
    service(VIP_FULLNAT, "fullnat", [f"[{ip}]:5353" for ip in RS6.values()], [LADDR6], proto="udp", port=53),
    service(VIP_DR, "dr", [f"[{ip}]:80" for ip in RS6.values()]),
    service(VIP_TUN, "tun", [f"[{ip}]:80" for ip in RS6.values()]),
    service(VIP_NAT, "nat", [f"[{ip}]:80" for ip in RS6.values()]),
    service(VIP_64, "fullnat", ["10.77.0.11:80", "10.77.0.12:80"], [rvslab.LOCAL_ADDR]),
    service(VIP_DR, "dr", [f"[{ip}]:53" for ip in RS6.values()], proto="udp", port=53),
    service(VIP_TUN, "tun", [f"[{ip}]:53" for ip in RS6.values()], proto="udp", port=53),
    service(VIP_NAT, "nat", [f"[{ip}]:5353" for ip in RS6.values()], proto="udp", port=53),
])

# Answers every datagram with "NAME SOURCE PAYLOAD" (IPv6), from the
# address it was sent to (IPV6_PKTINFO), so a DR/TUN server answers from the VIP.
ECHO6 = r"""
import socket, struct, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_RECVPKTINFO, 1)
s.bind(("::", int(sys.argv[2])))
print("ready", flush=True)
while True:
    data, anc, _, peer = s.recvmsg(65535, socket.CMSG_SPACE(20))
    info = [d for (lvl, typ, d) in anc if lvl == socket.IPPROTO_IPV6 and typ == socket.IPV6_PKTINFO]
    reply = f"{sys.argv[1]} {peer[0]} ".encode() + data
    cmsg = [(socket.IPPROTO_IPV6, socket.IPV6_PKTINFO, info[0][:16] + struct.pack("=I", 0))] if info else []
    s.sendmsg([reply], cmsg, 0, peer)
"""


def rvsd_config(text: str) -> str:
    return rvslab.append_service(text, SERVICES)


def spawn(node: str, args: list[str], log: Path | None = None) -> subprocess.Popen:
    err = open(log, "ab") if log else subprocess.DEVNULL
    p = subprocess.Popen(["ip", "netns", "exec", f"rvs-{node}", *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=err, start_new_session=True)
    if log:
        err.close()
    return p


def ready(p: subprocess.Popen, what: str) -> None:
    line = p.stdout.readline().strip()
    assert line == b"ready", f"{what} did not start: {line!r}"


def vip_log(node: str, vip: str) -> Path:
    return RUN / node / f"access-{vip.replace(':', '_')}.log"


@pytest.fixture(scope="module", autouse=True)
def v6_servers(lab):
    """VIP-bound HTTP servers for DR and TUN, the TUN decapsulators, IPv6
    UDP echo servers, the client's NAT prefix and the servers' route to it."""
    procs: list[subprocess.Popen] = []
    try:
        rvslab.in_ns("client", ["ip", "-6", "addr", "add", f"{CLIENT_NAT6}/64", "dev", "eth0", "nodad"], check=True)
        for n in RS6:
            rvslab.in_ns(n, ["ip", "-6", "addr", "add", f"{VIP_DR}/128", "dev", "lo", "nodad"], check=True)
            rvslab.in_ns(n, ["ip", "-6", "route", "replace", "fd88::/64", "via", APPLIANCE6], check=True)
            decap = spawn(n, ["python3", "-u", str(DECAP), "rvstun6", VIP_TUN])
            procs.append(decap)
            ready(decap, f"6in6 decapsulator in rvs-{n}")
            for vip in (VIP_DR, VIP_TUN):
                procs.append(spawn(n, ["python3", "-u", "-m", "http.server", "80", "--bind", vip, "--directory", str(RUN / n)],
                                   log=vip_log(n, vip)))
            for port in ("5353", "53"):
                echo = spawn(n, ["python3", "-u", "-c", ECHO6, n, port])
                procs.append(echo)
                ready(echo, f"IPv6 UDP echo on {port} in rvs-{n}")
        for n in RS6:
            for vip in (VIP_DR, VIP_TUN):
                rvslab.wait_until(f"HTTP on [{vip}]:80 in rvs-{n}",
                                  lambda n=n, vip=vip: rvslab.in_ns(n, ["curl", "-s", "-g", "--max-time", "1", f"http://[{vip}]/"]).stdout.strip() == n,
                                  timeout=10)
        yield
    finally:
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        rvslab.in_ns("client", ["ip", "-6", "addr", "del", f"{CLIENT_NAT6}/64", "dev", "eth0"])
        for n in RS6:
            rvslab.in_ns(n, ["ip", "-6", "addr", "del", f"{VIP_DR}/128", "dev", "lo"])
            rvslab.in_ns(n, ["ip", "-6", "route", "del", "fd88::/64"])


def curl(vip: str, path: str = "/", source: str | None = None, *extra: str, max_time: float = 5) -> subprocess.CompletedProcess:
    args = ["curl", "-s", "-g", "--max-time", str(max_time)]
    if source:
        args += ["--interface", source]
    return rvslab.in_ns("client", [*args, *extra, f"http://[{vip}]{path}"], timeout=max_time + 10)


def alternate(vip: str, source: str | None = None) -> None:
    bodies = [curl(vip, f"/?v6={i}", source).stdout.strip() for i in range(20)]
    said = " ".join(bodies)  # whole: pytest's repr of a list cuts it at six
    assert bodies.count("rs1") == 10 and bodies.count("rs2") == 10, said
    assert all(bodies[i] != bodies[i + 1] for i in range(19)), said


def sources(log: Path, since: int) -> list[str]:
    lines = [l for l in log.read_text(errors="replace").splitlines() if " - - [" in l]
    return [l.split(" - - [")[0] for l in lines[since:]]


def count(log: Path) -> int:
    return len(sources(log, 0)) if log.exists() else 0


def seen_by_servers(logs: dict[str, Path], before: dict[str, int], want: str) -> None:
    def logged():
        got = {n: sources(p, before[n]) for n, p in logs.items()}
        return got if sum(len(v) for v in got.values()) >= 20 else None

    got = rvslab.wait_until("requests in the servers' logs", logged, timeout=10)
    for n, srcs in got.items():
        assert srcs and all(s == want for s in srcs), f"{n}: {srcs}"


def download(vip: str, target: Path, source: str | None = None) -> None:
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    proc = curl(vip, "/big.bin", source, "-o", str(target), max_time=120)
    assert proc.returncode == 0, f"curl exit {proc.returncode}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == served, "download corrupted"


def lab_logs6() -> dict[str, Path]:
    return {n: RUN / n / "access6.log" for n in RS6}


def test_client_resolves_the_vip_by_neighbour_discovery(lab):
    rvslab.in_ns("client", ["ip", "-6", "neigh", "flush", "dev", "eth0"])
    assert curl(VIP_FULLNAT).stdout.strip() in ("rs1", "rs2")
    neigh = rvslab.in_ns("client", ["ip", "-6", "neigh", "show", VIP_FULLNAT], check=True).stdout.split()
    lb_mac = rvslab.in_ns("lb", ["cat", "/sys/class/net/lb0/address"], check=True).stdout.strip()
    assert lb_mac in neigh, f"{VIP_FULLNAT} resolved to {neigh}, not the appliance's {lb_mac}"


def test_fullnat_v6(lab):
    logs = lab_logs6()
    before = {n: count(p) for n, p in logs.items()}
    alternate(VIP_FULLNAT)
    seen_by_servers(logs, before, LADDR6)
    download(VIP_FULLNAT, lab.workdir / "v6-fullnat.bin")


# One datagram from a new socket (optionally bound to SRC); prints
# "PEER NAME SOURCE PAYLOAD": who answered, and what the server saw.
ASK6 = r"""
import socket, sys
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.settimeout(3)
if sys.argv[3]:
    s.bind((sys.argv[3], 0))
s.sendto(sys.argv[2].encode(), (sys.argv[1], 53))
data, peer = s.recvfrom(1000)
print(peer[0], data.decode())
"""


@pytest.mark.parametrize("vip,source,seen", [
    (VIP_FULLNAT, "", LADDR6),
    (VIP_DR, "", CLIENT6),
    (VIP_TUN, "", CLIENT6),
    (VIP_NAT, CLIENT_NAT6, CLIENT_NAT6),
], ids=["fullnat", "dr", "tun", "nat"])
def test_udp_echo_v6(lab, vip, source, seen):
    names = []
    for i in range(4):
        proc = rvslab.in_ns("client", ["python3", "-c", ASK6, vip, f"q{i}", source], timeout=15)
        assert proc.returncode == 0, proc.stderr
        peer, name, saw, payload = proc.stdout.split()
        assert (peer, saw, payload) == (vip, seen, f"q{i}"), proc.stdout
        names.append(name)
    assert sorted(names) == ["rs1", "rs1", "rs2", "rs2"], names


def test_dr_v6(lab):
    logs = {n: vip_log(n, VIP_DR) for n in RS6}
    before = {n: count(p) for n, p in logs.items()}
    alternate(VIP_DR)
    seen_by_servers(logs, before, CLIENT6)
    download(VIP_DR, lab.workdir / "v6-dr.bin")


def test_tun_v6(lab):
    logs = {n: vip_log(n, VIP_TUN) for n in RS6}
    before = {n: count(p) for n, p in logs.items()}
    alternate(VIP_TUN)
    seen_by_servers(logs, before, CLIENT6)
    download(VIP_TUN, lab.workdir / "v6-tun.bin")


def test_nat_v6(lab):
    logs = lab_logs6()
    before = {n: count(p) for n, p in logs.items()}
    alternate(VIP_NAT, CLIENT_NAT6)
    seen_by_servers(logs, before, CLIENT_NAT6)
    download(VIP_NAT, lab.workdir / "v6-nat.bin", CLIENT_NAT6)


def test_fullnat64_ipv6_clients_reach_ipv4_servers(lab):
    logs = {n: RUN / n / "access.log" for n in RS6}
    before = {n: count(p) for n, p in logs.items()}
    alternate(VIP_64)
    seen_by_servers(logs, before, rvslab.LOCAL_ADDR)
    download(VIP_64, lab.workdir / "v6-64.bin")
    conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c", check=True).stdout)
    assert any(c.virtual == f"[{VIP_64}]:80" and c.destination.startswith("10.77.0.1") for c in conns), conns
