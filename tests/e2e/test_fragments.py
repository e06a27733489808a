"""IP fragments through the real DPDK path, forwarded without reassembly, in
each forwarding method.

The device: rvsd drives lb0 through DPDK's **net_af_xdp** here, not the lab's
net_af_packet. With af_packet the kernel reassembles IPv4 before the PMD
sees it (the PMD's fanout group sets PACKET_FANOUT_FLAG_DEFRAG), so a test
through it would pass without rvs ever seeing a fragment; XDP sees frames as
they come off the veth, fragments as fragments. The proof that they did: the
`fragments: forwarded N` counter of `--stats-dp` counts each one.

What a user sees, per method (a UDP echo service each, VIP:7001..7004):
- a 3000-byte UDP datagram from the client (three fragments on the wire, as
  its kernel splits it) reaches the echo server whole (FULLNAT: from the
  local address; NAT, DR, TUN: from the client);
- FULLNAT and NAT: the echo, longer still, comes back in fragments through
  rvs and the client's kernel reassembles it; DR and TUN answer directly;
- a fragmented ICMP port unreachable (crafted with scapy, quoting the
  session's packet and 1400 more bytes, three fragments) is relayed:
  FULLNAT and NAT, from the server: the client's connected UDP socket gets
  ECONNREFUSED, which only a reassembled, correctly rewritten error gives;
  DR and TUN, from the client (about the server's answer): the server's raw
  ICMP socket receives it whole with a valid checksum.
IPv6 (FULLNAT): the same datagram to [fd77::100]:7001 in fragments (a
fragment header after the fixed one), and the echo back.
FULLNAT64 ([fd77::100]:7005 served by rs1's IPv4 echo): each IPv6 fragment
is translated to an IPv4 one (RFC 7915), the server's kernel reassembles the
datagram from the local address; its fragmented echo comes back translated
to IPv6 fragments and the client's kernel reassembles it. rs1 reaches the
local address through a route with MTU 1400, so that its fragments still fit
the client's 1500-byte link once 28 bytes longer in IPv6 (rvs does not
fragment).
Out of order (scapy): a datagram's fragments sent last first reach the echo
server whole; the later ones waited in the worker's fragment hold for the
first (`held`, `released`).
The client reaches the VIP through a route with MTU 1400, so that a TUN
fragment still fits the 1500-byte link once wrapped (rvs does not fragment
the outer packet); the NAT client speaks from a second subnet, 10.88.0.10,
which the servers reach through the appliance (as in test_nat.py).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

import rvslab
from rvslab import CLIENT_IP, CLIENT_IP6, LOCAL_ADDR, LOCAL_ADDR6, VIP, VIP6

RS1 = rvslab.REAL_SERVERS["rs1"]
RS2 = rvslab.REAL_SERVERS["rs2"]
CLIENT_NAT = "10.88.0.10"
APPLIANCE = "10.77.0.2"
PORTS = {"fullnat": 7001, "nat": 7002, "dr": 7003, "tun": 7004}
SERVER = {"fullnat": ("rs1", RS1), "nat": ("rs1", RS1), "dr": ("rs1", RS1), "tun": ("rs2", RS2)}
SIZE = 3000
DECAP = Path(__file__).with_name("ipip_decap.py")


def service(mode: str) -> str:
    port = PORTS[mode]
    laddr = f'local_addresses = ["{LOCAL_ADDR}"]\n' if mode == "fullnat" else ""
    return (f'[[service]]\nvip = "{VIP}:{port}"\nprotocol = "udp"\nscheduler = "rr"\n'
            f'forward = "{mode}"\n{laddr}\n[[service.real_server]]\naddress = "{SERVER[mode][1]}:{port}"\n')


PORT64 = 7005
SERVICES = "\n".join(service(m) for m in PORTS) + "\n" + rvslab.v6_service(
    "fullnat", protocol="udp", port=PORTS["fullnat"], servers={"rs1": rvslab.REAL_SERVERS6["rs1"]}) + (
    f'\n[[service]]\nvip = "[{VIP6}]:{PORT64}"\nprotocol = "udp"\nscheduler = "rr"\nforward = "fullnat"\n'
    f'local_addresses = ["{LOCAL_ADDR}"]\n\n[[service.real_server]]\naddress = "{RS1}:{PORT64}"\n')

# Echoes each datagram back to its sender, prefixed "PEER_IP:PEER_PORT ",
# answering from the datagram's destination (the VIP for DR and TUN).
ECHO = r"""
import socket, struct, sys
IP_PKTINFO = 8
if len(sys.argv) > 2:  # IPv6: one wildcard socket, FULLNAT only (no source to choose)
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    s.bind(("::", int(sys.argv[1])))
    print("ready", flush=True)
    while True:
        data, peer = s.recvfrom(65535)
        s.sendto(f"{peer[0]}:{peer[1]} ".encode() + data, peer)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.bind(("0.0.0.0", int(sys.argv[1])))
print("ready", flush=True)
while True:
    data, anc, _, peer = s.recvmsg(65535, socket.CMSG_SPACE(12))
    info = [d for (lvl, typ, d) in anc if lvl == socket.IPPROTO_IP and typ == IP_PKTINFO]
    cmsg = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=I4s4s", 0, info[0][8:12], bytes(4)))] if info else []
    s.sendmsg([f"{peer[0]}:{peer[1]} ".encode() + data], cmsg, 0, peer)
"""

# A connected UDP client (from SRC if given): sends SIZE bytes, prints
# "ITS_PORT PEER_IP PEER_PORT ECHOED_LENGTH INTACT" for the echo, then (on a line on stdin)
# reads again and prints "refused" if an ICMP port unreachable reached the
# socket ("timeout" if nothing came).
CLIENT = r"""
import socket, sys
vip, port, size, src = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
payload = bytes(i % 251 for i in range(size))
s = socket.socket(socket.AF_INET6 if ":" in vip else socket.AF_INET, socket.SOCK_DGRAM)
if src:
    s.bind((src, 0))
s.connect((vip, port))
s.settimeout(5)
s.send(payload)
try:
    data = s.recv(65535)
    head, _, body = data.partition(b" ")
    ip, port = head.decode().rsplit(":", 1)
    print(s.getsockname()[1], ip, port, len(data) - len(head) - 1, body == payload, flush=True)
except socket.timeout:
    print(s.getsockname()[1], "-", 0, 0, False, flush=True)
sys.stdin.readline()
try:
    s.recv(65535)
    print("answered", flush=True)
except ConnectionRefusedError:
    print("refused", flush=True)
except socket.timeout:
    print("timeout", flush=True)
"""

# An ICMP port unreachable from SRC to DST quoting Q_SRC:Q_SPORT ->
# Q_DST:Q_DPORT and 1400 more bytes, sent in fragments of 600 bytes of data.
ERROR = r"""
import sys
from scapy.all import ICMP, IP, UDP, Raw, fragment, send
src, dst, qsrc, qsport, qdst, qdport = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5], int(sys.argv[6])
quote = IP(src=qsrc, dst=qdst, ttl=63, id=4321) / UDP(sport=qsport, dport=qdport, len=8 + 3000) / Raw(bytes(1400))
err = IP(src=src, dst=dst, id=777) / ICMP(type=3, code=3) / Raw(bytes(quote))
frags = fragment(err, fragsize=600)
assert len(frags) == 3, len(frags)
send(frags, verbose=False)
print(len(frags))
"""

# A raw ICMP socket that prints "LENGTH CHECKSUM_OK" for the first port
# unreachable from FROM (the kernel hands raw sockets reassembled datagrams).
ICMP_SINK = r"""
import socket, sys
frm = sys.argv[1]
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.settimeout(10)
print("ready", flush=True)
def csum(b):
    if len(b) % 2:
        b += bytes(1)
    t = sum(int.from_bytes(b[i:i + 2], "big") for i in range(0, len(b), 2))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return t == 0xffff
try:
    while True:
        data, peer = s.recvfrom(65535)
        m = data[(data[0] & 15) * 4:]
        if peer[0] == frm and m[0] == 3:
            print(len(m), csum(m), flush=True)
            break
except socket.timeout:
    print("timeout", flush=True)
"""


def rvsd_config(text: str) -> str:
    text = text.replace('device = "net_af_packet0,iface=lb0"', 'device = "net_af_xdp0,iface=lb0"', 1)
    assert "net_af_xdp0,iface=lb0" in text
    return rvslab.append_service(text, SERVICES)


def spawn(node: str, *args: str) -> subprocess.Popen:
    p = subprocess.Popen(["ip", "netns", "exec", f"rvs-{node}", *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True)
    line = p.stdout.readline().strip()
    assert line == "ready", f"{args} in rvs-{node} did not start: {line!r}"
    return p


@pytest.fixture(scope="module", autouse=True)
def topology(lab):
    """Echo servers; rs1 holds the VIP on lo (DR), rs2 on a userspace IPIP
    decapsulator's TUN device (TUN); the ARP sysctls of seed 001 on both;
    rs1's default route through the appliance and the client's second
    address (NAT); the client's route to the VIP with MTU 1400; rs1's route
    to the local address with MTU 1400 (FULLNAT64)."""
    sysctls = ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce")
    saved = {n: {k: rvslab.in_ns(n, ["sysctl", "-n", k], check=True).stdout.strip() for k in sysctls} for n in ("rs1", "rs2")}
    route = rvslab.in_ns("rs1", ["ip", "route", "show", "default"], check=True).stdout.strip()
    procs: list[subprocess.Popen] = []
    try:
        for n in ("rs1", "rs2"):
            rvslab.in_ns(n, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"], check=True)
        rvslab.in_ns("rs1", ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"], check=True)
        rvslab.in_ns("rs1", ["ip", "route", "replace", "default", "via", APPLIANCE], check=True)
        rvslab.in_ns("client", ["ip", "addr", "add", f"{CLIENT_NAT}/24", "dev", "eth0"], check=True)
        rvslab.in_ns("client", ["ip", "route", "add", f"{VIP}/32", "dev", "eth0", "mtu", "1400"], check=True)
        rvslab.in_ns("rs1", ["ip", "route", "add", f"{LOCAL_ADDR}/32", "dev", "eth0", "mtu", "1400"], check=True)
        procs.append(spawn("rs2", "python3", "-u", str(DECAP), "rvstun0", VIP))
        for mode, port in PORTS.items():
            procs.append(spawn(SERVER[mode][0], "python3", "-u", "-c", ECHO, str(port)))
        procs.append(spawn("rs1", "python3", "-u", "-c", ECHO, str(PORTS["fullnat"]), "6"))
        procs.append(spawn("rs1", "python3", "-u", "-c", ECHO, str(PORT64)))
        yield
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=5)
        rvslab.in_ns("client", ["ip", "route", "del", f"{VIP}/32", "dev", "eth0"])
        rvslab.in_ns("rs1", ["ip", "route", "del", f"{LOCAL_ADDR}/32", "dev", "eth0"])
        rvslab.in_ns("client", ["ip", "addr", "del", f"{CLIENT_NAT}/24", "dev", "eth0"])
        rvslab.in_ns("rs1", ["ip", "route", "del", "default"])
        if route:
            rvslab.in_ns("rs1", ["ip", "route", "add", *route.split()], check=True)
        rvslab.in_ns("rs1", ["ip", "addr", "del", f"{VIP}/32", "dev", "lo"])
        for n, values in saved.items():
            for k, v in values.items():
                rvslab.in_ns(n, ["sysctl", "-qw", f"{k}={v}"])


def frag_count(lab, name: str) -> int:
    return sum(w.frags.get(name, 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout))


def forwarded(lab) -> int:
    return sum(w.frags.get("forwarded", 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout))


def no_first(lab) -> int:
    return sum(w.frags.get("no_first", 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout))


def send_error(node: str, src: str, dst: str, q_src: str, q_sport: int, q_dst: str, q_dport: int) -> None:
    sent = rvslab.in_ns(node, ["/usr/bin/python3", "-c", ERROR, src, dst, q_src, str(q_sport), q_dst, str(q_dport)],
                        timeout=30)
    assert sent.returncode == 0 and sent.stdout.strip() == "3", sent.stderr


def test_the_lb_port_runs_on_af_xdp(lab):
    assert "net_af_xdp0,iface=lb0" in lab.config.read_text()
    listing = lab.rvsadm("-L", "-n").stdout
    for port in PORTS.values():
        assert f"{VIP}:{port}" in listing, listing


@pytest.mark.parametrize("mode", list(PORTS))
def test_fragmented_datagram_and_fragmented_icmp_error(lab, mode):
    port = PORTS[mode]
    node, rs = SERVER[mode]
    src = CLIENT_NAT if mode == "nat" else ""
    before, missed = forwarded(lab), no_first(lab)
    client = subprocess.Popen(["ip", "netns", "exec", "rvs-client", "python3", "-u", "-c", CLIENT, VIP, str(port), str(SIZE), src],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True)
    sink = None
    try:
        line = client.stdout.readline().split()
        assert line, client.stderr.read()
        cport, seen_ip, seen_port, length, intact = line
        want = {"fullnat": LOCAL_ADDR, "nat": CLIENT_NAT}.get(mode, CLIENT_IP)
        # The server got the whole datagram, from whom the method says; the
        # echo (longer still) came back whole.
        assert (seen_ip, length, intact) == (want, str(SIZE), "True"), line
        # Three fragments in; FULLNAT and NAT: three back through rvs.
        through = 6 if mode in ("fullnat", "nat") else 3
        rvslab.wait_until(f"{through} fragments counted", lambda: forwarded(lab) - before == through or None, timeout=5)
        mid = forwarded(lab)
        if mode in ("fullnat", "nat"):
            # From the server, about what it got: the client's socket hears.
            q_src, q_sport = (LOCAL_ADDR, int(seen_port)) if mode == "fullnat" else (CLIENT_NAT, int(cport))
            send_error("rs1", rs, q_src, q_src, q_sport, rs, port)
            rvslab.wait_until("the error's three fragments counted", lambda: forwarded(lab) - mid == 3 or None, timeout=5)
            out, err = client.communicate("go\n", timeout=15)
            assert out.strip().splitlines()[-1] == "refused", out + err
        else:
            # From the client, about the server's answer: the server hears.
            sink = spawn(node, "python3", "-u", "-c", ICMP_SINK, CLIENT_IP)
            send_error("client", CLIENT_IP, VIP, VIP, port, CLIENT_IP, int(cport))
            out, _ = sink.communicate(timeout=15)
            length_seen, ok = out.split()
            assert (int(length_seen), ok) == (8 + 20 + 8 + 1400, "True"), out
            assert forwarded(lab) - mid == 3
    finally:
        for p in (client, sink):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
    assert no_first(lab) == missed, "no fragment came before its first"


def test_fragmented_datagram_over_ipv6_fullnat(lab):
    """IPv6 fragments (a fragment header after the fixed one) both ways."""
    before, missed = forwarded(lab), no_first(lab)
    out = rvslab.in_ns("client", ["python3", "-u", "-c", CLIENT, VIP6, str(PORTS["fullnat"]), str(SIZE), ""],
                       timeout=30)
    line = out.stdout.split()
    assert line[1:5] == [LOCAL_ADDR6, line[2], str(SIZE), "True"], out.stdout + out.stderr
    # Three fragments each way (1448 bytes of data in a 1500-byte packet).
    rvslab.wait_until("six IPv6 fragments counted", lambda: forwarded(lab) - before == 6 or None, timeout=5)
    assert no_first(lab) == missed


def test_fragmented_datagram_through_fullnat64(lab):
    """IPv6 fragments to an IPv6 VIP served by an IPv4 server: translated
    one by one to IPv4 fragments, reassembled by the server's kernel; the
    echo's IPv4 fragments come back as IPv6 ones."""
    before, missed = forwarded(lab), no_first(lab)
    out = rvslab.in_ns("client", ["python3", "-u", "-c", CLIENT, VIP6, str(PORT64), str(SIZE), ""], timeout=30)
    line = out.stdout.split()
    # The server saw the whole datagram from the (IPv4) local address; the
    # echo came back whole.
    assert line[1:5] == [LOCAL_ADDR, line[2], str(SIZE), "True"], out.stdout + out.stderr
    # Three IPv6 fragments in (1448 bytes of data each at most), three IPv4
    # ones back (1376 bytes of data at most, the route's MTU 1400).
    rvslab.wait_until("six translated fragments counted", lambda: forwarded(lab) - before == 6 or None, timeout=5)
    assert no_first(lab) == missed


# Sends a UDP datagram of SIZE bytes to VIP:PORT in fragments of 1000 bytes
# of data, the last one first (scapy, from a socket's port), then reads the
# echo on that socket: prints "FRAGMENTS ECHOED_LENGTH INTACT".
REVERSED = r"""
import socket, sys
from scapy.all import IP, UDP, Raw, fragment, send
vip, port, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
payload = bytes(i % 251 for i in range(size))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("0.0.0.0", 0))
s.settimeout(5)
frags = fragment(IP(dst=vip, id=0x4d4d) / UDP(sport=s.getsockname()[1], dport=port) / Raw(payload), fragsize=1000)
send(list(reversed(frags)), verbose=False)
try:
    data = s.recv(65535)
    head, _, body = data.partition(b" ")
    print(len(frags), len(body), body == payload, flush=True)
except socket.timeout:
    print(len(frags), 0, False, flush=True)
"""


def test_fragments_in_reverse_order_arrive_whole(lab):
    """The last fragment first, then the middle, then the first: the two
    later ones wait in the worker's fragment hold and follow the first, so
    the server's kernel reassembles the datagram (its echo comes back)."""
    before = {k: frag_count(lab, k) for k in ("forwarded", "held", "released", "no_first", "hold_full")}
    out = rvslab.in_ns("client", ["/usr/bin/python3", "-c", REVERSED, VIP, str(PORTS["fullnat"]), str(SIZE)], timeout=30)
    assert out.stdout.split() == ["4", str(SIZE), "True"], out.stdout + out.stderr

    def counted():
        got = {k: frag_count(lab, k) - v for k, v in before.items()}
        # Four in (three held), three echoed back in order.
        want = {"forwarded": 7, "held": 3, "released": 3, "no_first": 0, "hold_full": 0}
        return got if got == want else None

    rvslab.wait_until("three fragments held and released", counted, timeout=5)


# Overlapping fragments (scapy): per datagram a first fragment (the UDP
# header and 8 bytes), one at offset 8 with 16 bytes (it overlaps the
# first's last 8: RFC 1858's rewrite of a header behind a filter's back)
# and the last one. Prints how many datagrams it sent.
OVERLAP = r"""
import sys
from scapy.all import Ether, IP, IPv6, IPv6ExtHdrFragment, UDP, Raw, sendp, getmacbyip
lb4, client4, client6 = sys.argv[1:4]
targets = [(sys.argv[i], int(sys.argv[i + 1])) for i in range(4, len(sys.argv), 2)]
eth = Ether(dst=getmacbyip(lb4))
frames = []
for n, (vip, port) in enumerate(targets):
    d = bytes(UDP(sport=43000 + n, dport=port, len=32, chksum=0) / Raw(b"x" * 24))
    pieces = [(0, d[:16], True), (1, d[8:24], True), (3, d[24:], False)]
    for fo, data, more in pieces:
        if ":" in vip:
            frames.append(eth / IPv6(src=client6, dst=vip) /
                          IPv6ExtHdrFragment(nh=17, offset=fo, m=int(more), id=0x5000 + n) / Raw(data))
        else:
            frames.append(eth / IP(src=client4, dst=vip, id=0x5000 + n, proto=17, frag=fo,
                                   flags="MF" if more else 0) / Raw(data))
sendp(frames, iface="eth0", verbose=False, inter=0.01)
print(len(targets))
"""


def totals(lab) -> tuple[dict, dict]:
    """Fragment counters and drops by reason, over all workers."""
    frags: dict = {}
    drops: dict = {}
    for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout):
        for k, v in w.frags.items():
            frags[k] = frags.get(k, 0) + v
        for k, v in w.drops.items():
            drops[k] = drops.get(k, 0) + v
    return frags, drops


def test_overlapping_fragments_are_dropped_with_their_datagram(lab):
    """In every method and over IPv6: the first fragment goes on, the
    overlapping one is dropped (`fragment`, counted `overlapping`) and ends
    its datagram, so the last finds nothing: it waits in the fragment hold
    for a first fragment that does not come again and is dropped after 2 s
    (`no_first`), as the kernel discards a datagram with overlapping
    fragments; rvsd lives on."""
    targets = [(VIP, PORTS[m]) for m in PORTS] + [(VIP6, PORTS["fullnat"])]
    before_f, before_d = totals(lab)
    args = [APPLIANCE, CLIENT_IP, CLIENT_IP6] + [str(x) for t in targets for x in t]
    out = rvslab.in_ns("client", ["/usr/bin/python3", "-c", OVERLAP, *args], timeout=60)
    assert out.returncode == 0 and out.stdout.split()[-1] == str(len(targets)), out.stderr
    n = len(targets)

    def counted():
        f, d = totals(lab)
        got = {k: f.get(k, 0) - before_f.get(k, 0) for k in ("forwarded", "overlapping", "no_first")}
        got["fragment"] = d.get("fragment", 0) - before_d.get("fragment", 0)
        return got if got == {"forwarded": n, "overlapping": n, "no_first": n, "fragment": 2 * n} else None

    rvslab.wait_until("each datagram: first forwarded, overlap and last dropped", counted, timeout=10)
    assert lab.rvsd.running()
