#!/usr/bin/env python3
"""Golden packet cases for the rvs data plane (dataplane/tests/golden.rs).

For each case this writes, into dataplane/tests/golden/:

    <case>.pcap  two frames per step: the input frame, then the frame expected
                 after `Pipeline::process_buf` (the input unchanged when the
                 verdict is not `forward`; golden.rs compares only the
                 verdict of a drop or consumed step, whose frame is freed);
                 pcap timestamp = the step's now_ms.
                 `tcpdump -r <case>.pcap -nnvve` shows them in order.
    <case>.txt   the steps: `pipeline ...` options, then per step
                 `step <now_ms> <in_port> <verdict> <note>`, with a one-line
                 summary of each frame as comments.

Expected frames are built here with scapy from the packets' fields, checksums
computed from scratch; the pipeline updates them incrementally. The Rust test
runs every step through one fresh `Pipeline` per case and compares verdicts
and bytes exactly.

    /usr/bin/python3 tests/golden/gen.py          # rewrite the files
    /usr/bin/python3 tests/golden/gen.py --check  # exit 1 if a file differs
    /usr/bin/python3 tests/golden/gen.py --out DIR

Needs scapy (`apt-get install python3-scapy`, which installs for Debian's
/usr/bin/python3). Generated files: never edit them by hand.

THE CONFIGURATION (golden.rs `tables()` and `neighbours()` build the same):

    port 0: MAC 02:00:00:00:00:02, address 10.77.0.2/24, no gateway, MTU 1500;
            IPv6 fd77::2 (routes: fd77::/64 on link, fd77::2/128 local)
    VIP 10.77.0.100 and fd77::100; local addresses (laddr) 10.77.0.200 and
    fd77::200, lports 5000-5099 on each
    client 10.77.0.10 / fd77::10 (MAC 02:00:00:00:00:10)
    real servers (MACs in the neighbour table, port 0), both families:
      RS1 10.77.0.11 fd77::11 02:00:00:00:00:11
      RS2 10.77.0.12 fd77::12 02:00:00:00:00:12
      RS3 10.77.0.13 fd77::13 02:00:00:00:00:13
      RS4 10.77.0.14 fd77::14 02:00:00:00:00:14
    services (rr; real servers numbered in this order):
       0 TCP VIP:80 -> RS1:8080 FULLNAT     1 UDP VIP:53 -> RS1:5353 FULLNAT
       2 TCP VIP:81 -> RS2:8081 NAT         3 UDP VIP:54 -> RS2:5354 NAT
       4 TCP VIP:82 -> RS3:82   DR          5 UDP VIP:55 -> RS3:55   DR
       6 TCP VIP:83 -> RS4:83   TUN         7 UDP VIP:56 -> RS4:56   TUN
       8 UDP VIP:57 -> RS1:5357, RS2:5357 FULLNAT, one-packet scheduling (-o)
       9..16: services 0..7 again on fd77::100, to fd77::11..14, FULLNAT
              through fd77::200
      17 TCP [fd77::100]:84 -> RS1:8084 FULLNAT64 (through 10.77.0.200)
      18 UDP [fd77::100]:58 -> RS1:5358 FULLNAT64
      19 TCP VIP:85 -> RS1:8085 FULLNAT, client_address toa
      20 TCP [fd77::100]:85 -> [fd77::11]:8085 FULLNAT, client_address toa
      21 TCP VIP:86 -> RS1:8086 FULLNAT, client_address proxy-v1
      22 TCP VIP:87 -> RS1:8087 FULLNAT, client_address proxy-v2
      23 TCP [fd77::100]:87 -> [fd77::11]:8087 FULLNAT, client_address proxy-v2
    timeouts: the defaults; session capacity 64, seed 42

The local port: a worker's pool of a local address is a FIFO of the ports
p of the range with p % workers == worker, in increasing order (laddr.rs), so
the first FULLNAT session of a fresh pipeline (worker 0 of 1) gets 5000, the
next 5001 (`lport()` below); a port given back goes to the end of the queue.
Each local address (IPv4, IPv6) has its own pool.

What the appliance itself originates (ICMP "fragmentation needed", ICMPv6
"packet too big", the TUN outer header) carries TTL / hop limit 64, TOS /
traffic class 0 for errors; IPv4 errors have DF set and ID 0. The TUN outer
IPv4 header's ID is a per-worker counter starting at worker * 0x1000 that
every packet sent to a TUN session takes one from, before it is known
whether it fits (`tun_ids()`).

The harness gives every input frame 128 bytes of headroom, so expected
frames may be longer than the input (encapsulation) or shorter (an error
built in place).

Adding a case: write a function decorated with @case (name, what it shows)
that calls c.step(...) per packet; build the expected frame with `routed`,
`l2_only`, `tunnelled`, `frag_needed`, `too_big_v6`, `relayed_error` or by
hand. A case needing another configuration extends THE CONFIGURATION above
and golden.rs `tables()` together.
"""

from __future__ import annotations

import argparse
import ipaddress
import struct
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

try:
    from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_LSRR, IPOption_NOP, IPOption_SSRR, fragment
    from scapy.layers.inet6 import (
        ICMPv6EchoReply,
        ICMPv6EchoRequest,
        ICMPv6ND_NA,
        ICMPv6ND_NS,
        ICMPv6NDOptDstLLAddr,
        ICMPv6NDOptSrcLLAddr,
        ICMPv6PacketTooBig,
        IPv6,
        IPv6ExtHdrFragment,
        IPv6ExtHdrHopByHop,
        fragment6,
        in6_chksum,
    )
    from scapy.layers.l2 import ARP, Ether
    from scapy.packet import Packet, Raw
    from scapy.utils import checksum
except ImportError:  # pragma: no cover
    sys.exit("gen.py: needs scapy: apt-get install python3-scapy, then run it with /usr/bin/python3")

REPO = Path(__file__).resolve().parents[2]
OUT = REPO / "dataplane" / "tests" / "golden"

# ---- the configuration (see the module doc; golden.rs mirrors it) ----------
LB_MAC = "02:00:00:00:00:02"
CLIENT_MAC = "02:00:00:00:00:10"
RS1_MAC = "02:00:00:00:00:11"
RS2_MAC = "02:00:00:00:00:12"
RS3_MAC = "02:00:00:00:00:13"
RS4_MAC = "02:00:00:00:00:14"
BROADCAST = "ff:ff:ff:ff:ff:ff"
LB_IP = "10.77.0.2"
VIP = "10.77.0.100"
LADDR = "10.77.0.200"
CLIENT = "10.77.0.10"
RS1 = "10.77.0.11"
RS2 = "10.77.0.12"
RS3 = "10.77.0.13"
RS4 = "10.77.0.14"
LB_IP6 = "fd77::2"
VIP6 = "fd77::100"
LADDR6 = "fd77::200"
CLIENT6 = "fd77::10"
RS1_6 = "fd77::11"
RS2_6 = "fd77::12"
RS3_6 = "fd77::13"
RS4_6 = "fd77::14"
MTU = 1500
IPV6_MIN_MTU = 1280
LPORTS = (5000, 5099)
# (VIP port, real server, its port, its MAC) per service.
FULLNAT_TCP = (80, RS1, 8080, RS1_MAC)
FULLNAT_UDP = (53, RS1, 5353, RS1_MAC)
NAT_TCP = (81, RS2, 8081, RS2_MAC)
NAT_UDP = (54, RS2, 5354, RS2_MAC)
DR_TCP = (82, RS3, 82, RS3_MAC)
DR_UDP = (55, RS3, 55, RS3_MAC)
TUN_TCP = (83, RS4, 83, RS4_MAC)
TUN_UDP = (56, RS4, 56, RS4_MAC)
OPS_UDP = (57, ((RS1, 5357, RS1_MAC), (RS2, 5357, RS2_MAC)))
# IPv6: the same services on VIP6 (IPv6 servers at the same MACs).
FULLNAT_TCP6 = (80, RS1_6, 8080, RS1_MAC)
FULLNAT_UDP6 = (53, RS1_6, 5353, RS1_MAC)
NAT_TCP6 = (81, RS2_6, 8081, RS2_MAC)
NAT_UDP6 = (54, RS2_6, 5354, RS2_MAC)
DR_TCP6 = (82, RS3_6, 82, RS3_MAC)
DR_UDP6 = (55, RS3_6, 55, RS3_MAC)
TUN_TCP6 = (83, RS4_6, 83, RS4_MAC)
TUN_UDP6 = (56, RS4_6, 56, RS4_MAC)
# FULLNAT64: IPv6 VIP, IPv4 server and local address.
FULLNAT64_TCP = (84, RS1, 8084, RS1_MAC)
FULLNAT64_UDP = (58, RS1, 5358, RS1_MAC)

MIN_FRAME = 60  # Ethernet minimum without FCS: what a NIC hands over.
GENERATED = "GENERATED by tests/golden/gen.py: do not edit; change gen.py and rerun it."
SYN_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (100000, 0)), ("NOP", None), ("WScale", 7)]
SYNACK_OPTIONS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (200000, 100000)), ("NOP", None), ("WScale", 7)]


# ---- FULLNAT's server-side ISN (dataplane/src/xmit/isn.rs) ---------------
# Every FULLNAT TCP connection has an ISN offset: the client's SYN reaches
# the server with ISN = hsiphash(key; laddr, rs, lport, rport) + now_ms *
# 15625 and its timestamp option turned into NOPs; later client segments'
# seq move forward by the offset, the server's ack and SACK edges back. The
# key is the pipeline's default for seed 42 (IsnKey::from_seed(seed ^
# worker.rotate_left(16))). The model: `routed` and `translated` apply it to
# what leaves toward the server and back, `from_server` writes a server's
# frame in its own numbering (ack and SACK edges plus the offset), so the
# cases keep the client's numbers.
M64 = (1 << 64) - 1
SEED = 42
ISN_STEPS_PER_MS = 15_625


def fmix64(h: int) -> int:
    h ^= h >> 33
    h = (h * 0xFF51AFD7ED558CCD) & M64
    h ^= h >> 33
    h = (h * 0xC4CEB9FE1A85EC53) & M64
    return h ^ (h >> 33)


def _rol(x: int, b: int) -> int:
    return ((x << b) | (x >> (64 - b))) & M64


def _sipround(v0: int, v1: int, v2: int, v3: int) -> tuple[int, int, int, int]:
    v0 = (v0 + v1) & M64; v1 = _rol(v1, 13); v1 ^= v0; v0 = _rol(v0, 32)
    v2 = (v2 + v3) & M64; v3 = _rol(v3, 16); v3 ^= v2
    v0 = (v0 + v3) & M64; v3 = _rol(v3, 21); v3 ^= v0
    v2 = (v2 + v1) & M64; v1 = _rol(v1, 17); v1 ^= v2; v2 = _rol(v2, 32)
    return v0, v1, v2, v3


def hsiphash(data: bytes, key: tuple[int, int]) -> int:
    """The kernel's hsiphash on a 64-bit machine (SipHash-1-3, 32-bit result)."""
    v0 = 0x736F6D6570736575 ^ key[0]
    v1 = 0x646F72616E646F6D ^ key[1]
    v2 = 0x6C7967656E657261 ^ key[0]
    v3 = 0x7465646279746573 ^ key[1]
    b = (len(data) << 56) & M64
    full = len(data) - len(data) % 8
    for i in range(0, full, 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v3 ^= m
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
        v0 ^= m
    b |= int.from_bytes(data[full:], "little")
    v3 ^= b
    v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    v0 ^= b
    v2 ^= 0xFF
    for _ in range(3):
        v0, v1, v2, v3 = _sipround(v0, v1, v2, v3)
    return (v0 ^ v1 ^ v2 ^ v3) & 0xFFFFFFFF


def isn_key(worker: int) -> tuple[int, int]:
    rot = ((worker << 16) | (worker >> 48)) & M64
    a = fmix64((SEED ^ rot) ^ 0x15A15A15A)
    return a, fmix64(a)


def addr16(a: str) -> bytes:
    ip = ipaddress.ip_address(a)
    return ip.packed if ip.version == 6 else ipaddress.IPv6Address("::ffff:" + a).packed


def isn_input(laddr: str, lport: int, rs: str, rport: int) -> bytes:
    """The bytes the server-side ISN hashes: both addresses, then both ports
    (big-endian); two IPv4 addresses as 4 bytes each (12 bytes in all),
    otherwise as 16 (IPv4-mapped; 36 bytes)."""
    a, b = ipaddress.ip_address(laddr), ipaddress.ip_address(rs)
    addrs = a.packed + b.packed if a.version == b.version == 4 else addr16(laddr) + addr16(rs)
    return addrs + struct.pack("!HH", lport, rport)


def server_isn(worker: int, laddr: tuple[str, int], rs: tuple[str, int], now_ms: int) -> int:
    data = isn_input(laddr[0], laddr[1], rs[0], rs[1])
    return (hsiphash(data, isn_key(worker)) + now_ms * ISN_STEPS_PER_MS) & 0xFFFFFFFF


def isn_off(laddr: tuple[str, int], rs: tuple[str, int]) -> int:
    """The offset of the current case's session laddr -> rs (0: none yet)."""
    return CURRENT[0].isn.get((laddr[0], laddr[1], rs[0], rs[1]), 0)


def plus(seq: int, n: int) -> int:
    return (seq + n) & 0xFFFFFFFF


def _sack_moved(options: list, by: int) -> list:
    return [(k, tuple(plus(e, by) for e in v)) if k == "SAck" else (k, v) for k, v in options]


def _isn_leg(l4, old_src: tuple[str, int], old_dst: tuple[str, int], src: tuple[str, int], dst: tuple[str, int]) -> None:
    """The ISN offset on a TCP header forwarded old_src -> old_dst as src -> dst."""
    if not isinstance(l4, TCP):
        return
    laddrs = (LADDR, LADDR6)
    if src[0] in laddrs:
        c = CURRENT[0]
        key = (src[0], src[1], dst[0], dst[1])
        if l4.flags.S and not l4.flags.A:
            if key not in c.isn:
                off = (server_isn(c.worker, src, dst, c.clock) - l4.seq) & 0xFFFFFFFF
                c.isn[key] = off or 1
            ts = [o for o in l4.options if o[0] == "Timestamp"]
            if ts:
                i = l4.options.index(ts[0])
                l4.options = l4.options[:i] + [("NOP", None)] * 10 + l4.options[i + 1:]
        l4.seq = plus(l4.seq, c.isn.get(key, 0))
    elif old_dst[0] in laddrs:
        off = isn_off(old_dst, old_src)
        if off:
            l4.ack = plus(l4.ack, -off)
            l4.options = _sack_moved(l4.options, -off)


def lport(n: int = 0, worker: int = 0, workers: int = 1) -> int:
    """The n-th local port a fresh pipeline of `worker` (of `workers`) lends."""
    ports = [p for p in range(LPORTS[0], LPORTS[1] + 1) if p % workers == worker]
    return ports[n]


# ---- frames ----------------------------------------------------------------
def wire(p: Packet | bytes, pad: bool = True) -> bytes:
    """The frame's bytes, zero-padded to the Ethernet minimum unless `pad` is off."""
    b = bytes(p)
    return b + bytes(MIN_FRAME - len(b)) if pad and len(b) < MIN_FRAME else b


def from_client(l3: Packet) -> Packet:
    return Ether(src=CLIENT_MAC, dst=LB_MAC) / l3


def from_server(mac: str, l3: Packet) -> Packet:
    """A server's frame; toward a local address, its ack and SACK edges in
    the server's numbering of the client's stream (see `_isn_leg`)."""
    p = Ether(src=mac, dst=LB_MAC) / l3
    ip = ip_of(p)
    if isinstance(ip.payload, TCP) and ip.dst in (LADDR, LADDR6) and ip.payload.flags.A:
        t = ip.payload
        off = isn_off((ip.dst, t.dport), (ip.src, t.sport))
        if off:
            t.ack = plus(t.ack, off)
            t.options = _sack_moved(t.options, off)
    return p


def tcp_v4(src: str, sport: int, dst: str, dport: int, flags: str, seq: int, ack: int = 0, data: bytes = b"", options=None, ttl: int = 64, ip_id: int = 1, tos: int = 0, df: bool = True) -> Packet:
    t = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240, options=options or [])
    p = IP(src=src, dst=dst, ttl=ttl, id=ip_id, flags="DF" if df else 0, tos=tos) / t
    return p / Raw(data) if data else p


def tcp_v6(src: str, sport: int, dst: str, dport: int, flags: str, seq: int, ack: int = 0, data: bytes = b"", options=None, hlim: int = 64, tc: int = 0) -> Packet:
    t = TCP(sport=sport, dport=dport, flags=flags, seq=seq, ack=ack, window=64240, options=options or [])
    p = IPv6(src=src, dst=dst, hlim=hlim, tc=tc) / t
    return p / Raw(data) if data else p


def udp_v6(src: str, sport: int, dst: str, dport: int, data: bytes, hlim: int = 64) -> Packet:
    return IPv6(src=src, dst=dst, hlim=hlim) / UDP(sport=sport, dport=dport) / Raw(data)


def udp_v4(src: str, sport: int, dst: str, dport: int, data: bytes, no_checksum: bool = False, ttl: int = 64, ip_id: int = 1) -> Packet:
    u = UDP(sport=sport, dport=dport, chksum=0) if no_checksum else UDP(sport=sport, dport=dport)
    return IP(src=src, dst=dst, ttl=ttl, id=ip_id) / u / Raw(data)


def routed(frame: Packet, src: tuple[str, int], dst: tuple[str, int], dst_mac: str) -> Packet:
    """`frame` forwarded with its IP/L4 tuple set to src -> dst: TTL (hop
    limit) - 1, checksums recomputed (a UDP checksum of 0, none, stays 0),
    Ethernet from the appliance to `dst_mac`."""
    p = frame.copy()
    p[Ether].src, p[Ether].dst = LB_MAC, dst_mac
    if IPv6 in p:
        ip = p[IPv6]
    else:
        ip = p[IP]
    old = ((ip.src, ip.payload.sport), (ip.dst, ip.payload.dport)) if hasattr(ip.payload, "sport") else None
    if IPv6 in p:
        ip.src, ip.dst, ip.hlim = src[0], dst[0], ip.hlim - 1
    else:
        ip.src, ip.dst, ip.ttl = src[0], dst[0], ip.ttl - 1
        ip.chksum = None
    l4 = ip.payload
    l4.sport, l4.dport = src[1], dst[1]
    if old:
        _isn_leg(l4, old[0], old[1], src, dst)
    if not (isinstance(l4, UDP) and l4.chksum == 0):
        l4.chksum = None
    return p


def l2_only(frame: Packet, dst_mac: str) -> Packet:
    """`frame` sent on to `dst_mac` from the appliance, IP packet untouched (DR)."""
    p = frame.copy()
    p[Ether].src, p[Ether].dst = LB_MAC, dst_mac
    return p


def ip_of(frame: Packet) -> Packet:
    """The IP packet (either family) of `frame`."""
    return frame[IPv6] if IPv6 in frame else frame[IP]


def tunnelled(frame: Packet, rs: str, rs_mac: str, ip_id: int = 0) -> Packet:
    """TUN: `frame`'s IP packet, untouched (TTL and padding-free), inside
    an outer header from the interface's address to `rs` (RFC 2003 / 2473):
    IPv4 protocol 4 with TTL 64, the inner TOS and DF and ID `ip_id`; IPv6
    next header 41 with hop limit 64, the inner traffic class, flow label 0."""
    inner = ip_of(frame)
    if isinstance(inner, IPv6):
        outer = IPv6(src=LB_IP6, dst=rs, nh=41, hlim=64, tc=inner.tc, fl=0)
    else:
        outer = IP(src=LB_IP, dst=rs, proto=4, ttl=64, id=ip_id, tos=inner.tos, flags="DF" if inner.flags.DF else 0)
    return Ether(src=LB_MAC, dst=rs_mac) / outer / Raw(bytes(inner))


def tun_ids(worker: int = 0):
    """The outer IPv4 IDs worker `worker` gives TUN packets, in order."""
    n = worker * 0x1000
    while True:
        n = (n + 1) & 0xFFFF
        yield n


def frag_needed(frame: Packet, mtu: int = MTU, to_mac: str = CLIENT_MAC) -> Packet:
    """The ICMP "fragmentation needed" (3/4, RFC 1191) the client gets for
    `frame` when the tunnel would exceed `mtu`: from the packet's
    destination (the VIP) to its source, next-hop MTU `mtu` - 20, quoting
    its IP header and the first 8 bytes after it (RFC 792)."""
    inner = bytes(frame[IP])
    ihl = (inner[0] & 0x0F) * 4
    ip = frame[IP]
    return Ether(src=LB_MAC, dst=to_mac) / IP(src=ip.dst, dst=ip.src, ttl=64, id=0, flags="DF") / ICMP(type=3, code=4, nexthopmtu=mtu - 20) / Raw(inner[: ihl + 8])


def too_big_v6(frame: Packet, mtu: int = MTU, to_mac: str = CLIENT_MAC) -> Packet:
    """ICMPv6 "packet too big" (RFC 4443 3.2) for `frame`: from its
    destination to its source, MTU `mtu` - 40, quoting as much of the packet
    as keeps the error within the IPv6 minimum MTU (1280)."""
    ip = frame[IPv6]
    quote = bytes(ip)[: IPV6_MIN_MTU - 40 - 8]
    return Ether(src=LB_MAC, dst=to_mac) / IPv6(src=ip.dst, dst=ip.src, hlim=64) / ICMPv6PacketTooBig(mtu=mtu - 40) / Raw(quote)


def translated(frame: Packet, src: tuple[str, int], dst: tuple[str, int], dst_mac: str) -> Packet:
    """FULLNAT64: `frame` in the other IP family with tuple src -> dst
    (RFC 7915's header mapping, no options): toward IPv4 TOS = traffic
    class, TTL = hop limit - 1, DF, ID 0; toward IPv6 traffic class = TOS,
    hop limit = TTL - 1, flow label 0. Transport checksum recomputed (an
    IPv4 UDP datagram without one gets one in IPv6)."""
    ip = ip_of(frame)
    l4 = ip.payload.copy()
    _isn_leg(l4, (ip.src, l4.sport), (ip.dst, l4.dport), src, dst)
    l4.sport, l4.dport, l4.chksum = src[1], dst[1], None
    if isinstance(ip, IPv6):
        new = IP(src=src[0], dst=dst[0], tos=ip.tc, ttl=ip.hlim - 1, id=0, flags="DF", proto=ip.nh)
    else:
        new = IPv6(src=src[0], dst=dst[0], tc=ip.tos, hlim=ip.ttl - 1, fl=0, nh=ip.proto)
    return Ether(src=LB_MAC, dst=dst_mac) / new / l4


def as_seen(frame: Packet, src: tuple[str, int], dst: tuple[str, int], ttl: int) -> bytes:
    """`frame`'s IP packet with tuple src -> dst and TTL (hop limit) `ttl`,
    checksums computed (how it looks in an ICMP error's quote)."""
    ip = ip_of(frame).copy()
    ip.src, ip.dst = src[0], dst[0]
    if isinstance(ip, IPv6):
        ip.hlim = ttl
    else:
        ip.ttl, ip.chksum = ttl, None
    l4 = ip.payload
    l4.sport, l4.dport, l4.chksum = src[1], dst[1], None
    return bytes(ip)


def icmp_error(src_mac: str, src: str, dst: str, quote: bytes, icmp_type: int = 3, code: int = 3, mtu: int = 0, ttl: int = 64, ip_id: int = 30) -> Packet:
    """An ICMP error from (`src_mac`, `src`) to `dst` quoting `quote`."""
    m = ICMP(type=icmp_type, code=code, nexthopmtu=mtu) if icmp_type == 3 else ICMP(type=icmp_type, code=code)
    return Ether(src=src_mac, dst=LB_MAC) / IP(src=src, dst=dst, ttl=ttl, id=ip_id) / m / Raw(quote)


def relayed_error(error: Packet, src: str, dst: str, dst_mac: str, quote: bytes) -> Packet:
    """`error` relayed: from the appliance to `dst_mac`, outer `src` ->
    `dst` with TTL - 1, quoting `quote` instead, checksums recomputed."""
    ip, m = error[IP], error[ICMP]
    icmp = ICMP(type=m.type, code=m.code, nexthopmtu=m.nexthopmtu) if m.type == 3 else ICMP(type=m.type, code=m.code)
    return Ether(src=LB_MAC, dst=dst_mac) / IP(src=src, dst=dst, ttl=ip.ttl - 1, id=ip.id, tos=ip.tos, flags=ip.flags) / icmp / Raw(quote)


def quote_of(b: bytes, after: int | None = None) -> bytes:
    """What an ICMP error quotes of the IPv4 packet `b`: its header and
    `after` bytes of what follows (all of it if None)."""
    return b if after is None else b[: (b[0] & 0x0F) * 4 + after]


def summary(b: bytes) -> str:
    """One stable line per frame (scapy's own summaries change between versions)."""
    if len(b) < 14:
        return f"{len(b)} bytes: truncated Ethernet header"
    p = Ether(b)
    s = f"{p.src} > {p.dst} "
    if ARP in p:
        a = p[ARP]
        op = {1: "request", 2: "reply"}.get(a.op, f"op {a.op}")
        return s + f"ARP {op} who-has {a.pdst} tell {a.psrc} ({a.hwsrc} -> {a.hwdst})"
    if p.type == 0x86DD:
        return s + summary_v6(b[14:])
    if p.type != 0x0800:
        return s + f"ethertype 0x{p.type:04x}, {len(b)} bytes"
    if len(b) < 34 or IP not in p:
        return s + f"IPv4, truncated: {len(b) - 14} bytes after Ethernet"
    ip = p[IP]
    if ip.ihl < 5:
        return s + f"IPv4 {ip.src} > {ip.dst}, bad IHL {ip.ihl} ({ip.ihl * 4}-byte header)"
    l4_len = ip.len - ip.ihl * 4
    if ip.proto in (6, 17) and l4_len < (20 if ip.proto == 6 else 8):
        return s + f"IPv4 {ip.src} > {ip.dst} proto {ip.proto}, L4 header truncated: {l4_len} bytes"
    s += f"IPv4 ttl {ip.ttl} id {ip.id} len {ip.len} ihl {ip.ihl}: "
    l4 = ip.payload
    if ip.proto == 4:
        df = " DF" if ip.flags.DF else ""
        return s + f"IPIP {ip.src} > {ip.dst} tos 0x{ip.tos:02x}{df}, inner {quote_summary(bytes(l4))}"
    if isinstance(l4, TCP):
        opts = f" options {len(bytes(l4)) - len(bytes(l4.payload)) - 20}B" if l4.dataofs and l4.dataofs > 5 else ""
        return s + f"TCP {ip.src}:{l4.sport} > {ip.dst}:{l4.dport} [{l4.flags}] seq {l4.seq} ack {l4.ack} doff {l4.dataofs} cksum 0x{l4.chksum:04x}{opts} data {len(bytes(l4.payload))}B"
    if isinstance(l4, UDP):
        return s + f"UDP {ip.src}:{l4.sport} > {ip.dst}:{l4.dport} len {l4.len} cksum 0x{l4.chksum:04x}"
    if isinstance(l4, ICMP) and l4.type in (3, 4, 5, 11, 12):
        m = bytes(l4)
        mtu = f" mtu {struct.unpack('!H', m[6:8])[0]}" if l4.type == 3 and l4.code == 4 else ""
        return s + f"ICMP {ip.src} > {ip.dst} type {l4.type} code {l4.code}{mtu} cksum 0x{l4.chksum:04x} quoting {quote_summary(m[8:])}"
    if isinstance(l4, ICMP):
        return s + f"ICMP {ip.src} > {ip.dst} type {l4.type} code {l4.code} id {l4.id} seq {l4.seq} cksum 0x{l4.chksum:04x}"
    return s + f"{ip.src} > {ip.dst} proto {ip.proto}"


def quote_summary(b: bytes) -> str:
    """An IP packet that may be cut short (an ICMP error's quote, or an
    encapsulated packet): addresses, protocol, ports and checksums present."""
    if len(b) >= 40 and b[0] >> 4 == 6:
        return summary_v6(b)
    if len(b) < 20 or b[0] >> 4 != 4:
        return f"{len(b)} bytes, not an IPv4 header"
    ihl = (b[0] & 0x0F) * 4
    total, ttl, proto, cksum = struct.unpack("!H", b[2:4])[0], b[8], b[9], struct.unpack("!H", b[10:12])[0]
    src, dst = ".".join(map(str, b[12:16])), ".".join(map(str, b[16:20]))
    out = f"IPv4 ttl {ttl} len {total} cksum 0x{cksum:04x} proto {proto} {src}"
    l4 = b[ihl:]
    if proto in (6, 17) and len(l4) >= 4:
        sport, dport = struct.unpack("!HH", l4[:4])
        out = f"IPv4 ttl {ttl} len {total} cksum 0x{cksum:04x} {'TCP' if proto == 6 else 'UDP'} {src}:{sport} > {dst}:{dport}"
        at = 16 if proto == 6 else 6
        if len(l4) >= at + 2:
            out += f" l4 cksum 0x{struct.unpack('!H', l4[at:at + 2])[0]:04x}"
    else:
        out += f" > {dst}"
    return out + f" ({len(b)}B)"


def summary_v6(b: bytes) -> str:
    """An IPv6 packet (from its fixed header)."""
    if len(b) < 40:
        return f"IPv6, truncated: {len(b)} bytes"
    ip = IPv6(b)
    s = f"IPv6 hlim {ip.hlim} tc 0x{ip.tc:02x} plen {ip.plen}: "
    if 40 + ip.plen > len(b):
        return s + f"{ip.src} > {ip.dst} nh {ip.nh}, payload length past the frame's {len(b) - 40} bytes"
    l4 = ip.payload
    if ip.nh == 41:
        return s + f"IPv6-in-IPv6 {ip.src} > {ip.dst}, inner {summary_v6(b[40:40 + ip.plen])}"
    if ip.nh == 6 and isinstance(l4, TCP) and ip.plen >= 20:
        opts = f" options {len(bytes(l4)) - len(bytes(l4.payload)) - 20}B" if l4.dataofs and l4.dataofs > 5 else ""
        return s + f"TCP [{ip.src}]:{l4.sport} > [{ip.dst}]:{l4.dport} [{l4.flags}] seq {l4.seq} ack {l4.ack} doff {l4.dataofs} cksum 0x{l4.chksum:04x}{opts} data {len(bytes(l4.payload))}B"
    if ip.nh == 17 and isinstance(l4, UDP) and ip.plen >= 8:
        return s + f"UDP [{ip.src}]:{l4.sport} > [{ip.dst}]:{l4.dport} len {l4.len} cksum 0x{l4.chksum:04x}"
    if ip.nh == 58 and ip.plen >= 4:
        m = b[40:40 + ip.plen]
        t, code, ck = m[0], m[1], struct.unpack("!H", m[2:4])[0]
        out = s + f"ICMPv6 {ip.src} > {ip.dst} type {t} code {code} cksum 0x{ck:04x}"
        if t in (135, 136) and len(m) >= 24:
            out += f" target {IPv6(bytes(8) + m[8:24] + bytes(16)).src} flags 0x{m[4]:02x} options {len(m) - 24}B"
        elif t in (128, 129) and len(m) >= 8:
            out += f" id {struct.unpack('!H', m[4:6])[0]} seq {struct.unpack('!H', m[6:8])[0]} data {len(m) - 8}B"
        elif t == 2 and len(m) >= 8:
            out += f" mtu {struct.unpack('!I', m[4:8])[0]} quoting {len(m) - 8}B"
        return out
    name = {0: "hop-by-hop options", 44: "fragment header"}.get(ip.nh, f"next header {ip.nh}")
    return s + f"{ip.src} > {ip.dst} {name}, {ip.plen}B"


# ---- cases -----------------------------------------------------------------
@dataclass
class Step:
    now_ms: int
    in_port: int
    frame: bytes
    expected: bytes
    verdict: str
    note: str


@dataclass
class Case:
    name: str
    doc: str
    worker: int = 0
    workers: int = 1
    punt: bool = False
    steps: list[Step] = field(default_factory=list)
    clock: int = 1000
    # FULLNAT sessions' ISN offsets, by (laddr, lport, rs, rport).
    isn: dict = field(default_factory=dict)

    def step(self, note: str, frame: Packet | bytes, verdict: str, expected: Packet | bytes | None = None, in_port: int = 0, pad: bool = True, after_ms: int = 1, pad_out: bool | None = None) -> None:
        """One packet: `frame` in on `in_port`, `verdict` expected (forward:N,
        drop:<reason>, redirect:N, consumed, punt) and, for forward, the
        frame `expected` out; other verdicts leave the input as it was.
        Frames are padded to the Ethernet minimum unless `pad` is off; the
        expected one as the input unless `pad_out` says otherwise (a frame
        the pipeline shortens is sent as it is: the NIC pads it)."""
        b = wire(frame, pad)
        if verdict.startswith("forward:"):
            assert expected is not None, f"{self.name}: {note}: forward needs an expected frame"
            out = wire(expected, pad if pad_out is None else pad_out)
        else:
            assert expected is None, f"{self.name}: {note}: only forward rewrites the frame"
            out = b
        self.steps.append(Step(self.clock, in_port, b, out, verdict, note))
        self.clock += after_ms


CASES: list[Case] = []
# The case being built (for the ISN model).
CURRENT: list[Case] = []


def case(name: str, doc: str, worker: int = 0, workers: int = 1, punt: bool = False):
    """Registers a case run on worker `worker` of `workers`, with the
    exception path (`Pipeline::enable_punt`) on if `punt`."""

    def register(build):
        c = Case(name, doc, worker, workers, punt)
        CURRENT[:] = [c]
        build(c)
        assert c.steps, name
        CASES.append(c)
        return build

    return register


@case("fullnat_tcp_v4", "FULLNAT TCP: client -> VIP:80 leaves as laddr:lport -> RS1:8080 (TTL - 1); the server's replies come back from VIP:80; the SYN gets the server-side ISN (seq, and every later client seq, moved by the session's ISN offset; the server's acks moved back) and its timestamp option becomes 10 NOPs, its other options pass untouched")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_TCP
    laddr = (LADDR, lport(0))
    cl = (CLIENT, 40000)
    syn = from_client(tcp_v4(CLIENT, 40000, VIP, vport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", routed(syn, laddr, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v4(rs, rport, LADDR, laddr[1], "SA", seq=5000, ack=1001, options=SYNACK_OPTIONS))
    c.step("server SYN-ACK to the local address", synack, "forward:0", routed(synack, (VIP, vport), cl, CLIENT_MAC))
    ack = from_client(tcp_v4(CLIENT, 40000, VIP, vport, "PA", seq=1001, ack=5001, data=b"GET / HTTP/1.0\r\n\r\n", ip_id=2))
    c.step("client ACK with a request", ack, "forward:0", routed(ack, laddr, (rs, rport), rs_mac))
    data = from_server(rs_mac, tcp_v4(rs, rport, LADDR, laddr[1], "PA", seq=5001, ack=1019, data=b"HTTP/1.0 200 OK\r\n\r\nrs1", ip_id=2))
    c.step("server response", data, "forward:0", routed(data, (VIP, vport), cl, CLIENT_MAC))


@case("fullnat_udp_v4", "FULLNAT UDP: client -> VIP:53 leaves as laddr:lport -> RS1:5353, the answer returns from VIP:53; a datagram without checksum (0) keeps none both ways")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_UDP
    laddr = (LADDR, lport(0))
    cl = (CLIENT, 40000)
    q = from_client(udp_v4(CLIENT, 40000, VIP, vport, b"query one"))
    c.step("client datagram, checksummed", q, "forward:0", routed(q, laddr, (rs, rport), rs_mac))
    a = from_server(rs_mac, udp_v4(rs, rport, LADDR, laddr[1], b"answer one"))
    c.step("server answer, checksummed", a, "forward:0", routed(a, (VIP, vport), cl, CLIENT_MAC))
    q0 = from_client(udp_v4(CLIENT, 40000, VIP, vport, b"query two", no_checksum=True, ip_id=2))
    c.step("client datagram without checksum", q0, "forward:0", routed(q0, laddr, (rs, rport), rs_mac))
    a0 = from_server(rs_mac, udp_v4(rs, rport, LADDR, laddr[1], b"answer two", no_checksum=True, ip_id=2))
    c.step("server answer without checksum", a0, "forward:0", routed(a0, (VIP, vport), cl, CLIENT_MAC))


@case("fullnat_udp_v4_checksum_ffff", "FULLNAT UDP: a rewrite whose checksum computes to 0 sends 0xffff (0 means none in UDP over IPv4)")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_UDP
    laddr = (LADDR, lport(0))

    def query(word: int) -> Packet:
        return from_client(udp_v4(CLIENT, 40000, VIP, vport, b"zero" + struct.pack("!H", word)))

    # With the last payload word 0 the rewritten datagram has checksum c0;
    # making that word c0 adds c0 to the one's-complement sum, which becomes
    # 0xffff, whose complement 0 is sent as 0xffff.
    c0 = Ether(bytes(routed(query(0), laddr, (rs, rport), rs_mac)))[UDP].chksum
    q = query(c0)
    out = routed(q, laddr, (rs, rport), rs_mac)
    assert Ether(bytes(out))[UDP].chksum == 0xFFFF
    c.step("client datagram whose rewritten checksum is 0xffff", q, "forward:0", out)


@case("nat_tcp_v4", "NAT (masquerading) TCP: client -> VIP:81 leaves as client -> RS2:8081 (source kept); the server's reply, routed through the appliance, leaves from VIP:81")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = NAT_TCP
    cl = (CLIENT, 40001)
    syn = from_client(tcp_v4(CLIENT, 40001, VIP, vport, "S", seq=7000, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", routed(syn, cl, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v4(rs, rport, CLIENT, 40001, "SA", seq=9000, ack=7001, options=SYNACK_OPTIONS))
    c.step("server SYN-ACK to the client", synack, "forward:0", routed(synack, (VIP, vport), cl, CLIENT_MAC))
    ack = from_client(tcp_v4(CLIENT, 40001, VIP, vport, "A", seq=7001, ack=9001, ip_id=2))
    c.step("client ACK", ack, "forward:0", routed(ack, cl, (rs, rport), rs_mac))


@case("nat_udp_v4", "NAT (masquerading) UDP: client -> VIP:54 leaves as client -> RS2:5354; the answer leaves from VIP:54")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = NAT_UDP
    cl = (CLIENT, 40002)
    q = from_client(udp_v4(CLIENT, 40002, VIP, vport, b"nat query"))
    c.step("client datagram", q, "forward:0", routed(q, cl, (rs, rport), rs_mac))
    a = from_server(rs_mac, udp_v4(rs, rport, CLIENT, 40002, b"nat answer"))
    c.step("server answer", a, "forward:0", routed(a, (VIP, vport), cl, CLIENT_MAC))
    a0 = from_server(rs_mac, udp_v4(rs, rport, CLIENT, 40002, b"no checksum", no_checksum=True, ip_id=2))
    c.step("server answer without checksum", a0, "forward:0", routed(a0, (VIP, vport), cl, CLIENT_MAC))


@case("dr_tcp_v4", "DR (direct routing) TCP: client frames to VIP:82 go to RS3's MAC with the IP packet untouched, TTL and checksums included")
def _(c: Case) -> None:
    vport, _rs, _rport, rs_mac = DR_TCP
    syn = from_client(tcp_v4(CLIENT, 40003, VIP, vport, "S", seq=3000, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", l2_only(syn, rs_mac))
    ack = from_client(tcp_v4(CLIENT, 40003, VIP, vport, "PA", seq=3001, ack=4001, data=b"hello", ip_id=2))
    c.step("client data", ack, "forward:0", l2_only(ack, rs_mac))


@case("dr_udp_v4", "DR (direct routing) UDP: client datagrams to VIP:55 go to RS3's MAC unchanged")
def _(c: Case) -> None:
    vport, _rs, _rport, rs_mac = DR_UDP
    q = from_client(udp_v4(CLIENT, 40004, VIP, vport, b"dr query"))
    c.step("client datagram", q, "forward:0", l2_only(q, rs_mac))


@case("arp_v4", "ARP: requests for owned addresses (VIP, local address) are answered in place from the port's MAC; others are dropped")
def _(c: Case) -> None:
    for target, what in ((VIP, "the VIP"), (LADDR, "the local address")):
        req = Ether(src=CLIENT_MAC, dst=BROADCAST) / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT, hwdst="00:00:00:00:00:00", pdst=target)
        rep = Ether(src=LB_MAC, dst=CLIENT_MAC) / ARP(op=2, hwsrc=LB_MAC, psrc=target, hwdst=CLIENT_MAC, pdst=CLIENT)
        c.step(f"who-has {what}", req, "forward:0", rep)
    other = Ether(src=CLIENT_MAC, dst=BROADCAST) / ARP(op=1, hwsrc=CLIENT_MAC, psrc=CLIENT, pdst="10.77.0.99")
    c.step("who-has an address the appliance does not own", other, "drop:arp_not_for_us")


@case("icmp_echo_v4", "ICMP: an echo request to the VIP is answered in place (type 0, addresses swapped, TTL kept); to an address not owned it is dropped")
def _(c: Case) -> None:
    payload = bytes(range(32))
    req = from_client(IP(src=CLIENT, dst=VIP, ttl=64, id=7) / ICMP(type=8, id=0x1234, seq=1) / Raw(payload))
    rep = Ether(src=LB_MAC, dst=CLIENT_MAC) / IP(src=VIP, dst=CLIENT, ttl=64, id=7) / ICMP(type=0, id=0x1234, seq=1) / Raw(payload)
    c.step("echo request to the VIP", req, "forward:0", rep)
    stray = from_client(IP(src=CLIENT, dst="10.77.0.99", ttl=64, id=8) / ICMP(type=8, id=0x1234, seq=2) / Raw(payload))
    c.step("echo request to an address not owned", stray, "drop:not_for_us")


@case("punt_v4", "Exception path on: traffic for the interface's own address that the load balancer does not consume goes to the kernel untouched; the VIP is still answered here", punt=True)
def _(c: Case) -> None:
    ping = from_client(IP(src=CLIENT, dst=LB_IP, ttl=64, id=9) / ICMP(type=8, id=0x4321, seq=1) / Raw(b"ping"))
    c.step("echo request to the interface address", ping, "punt")
    c.step("SSH SYN to the interface address", from_client(tcp_v4(CLIENT, 40007, LB_IP, 22, "S", seq=1, options=SYN_OPTIONS)), "punt")
    # eBGP sends its segments with TTL 1 (RFC 4271's single-hop session):
    # the appliance's own traffic is delivered, not forwarded.
    c.step("BGP segment with TTL 1 to the interface address", from_client(tcp_v4(CLIENT, 179, LB_IP, 40008, "PA", seq=1, ack=1, data=b"bgp", ttl=1)), "punt")
    req = from_client(IP(src=CLIENT, dst=VIP, ttl=64, id=10) / ICMP(type=8, id=0x4321, seq=2) / Raw(b"ping"))
    rep = Ether(src=LB_MAC, dst=CLIENT_MAC) / IP(src=VIP, dst=CLIENT, ttl=64, id=10) / ICMP(type=0, id=0x4321, seq=2) / Raw(b"ping")
    c.step("echo request to the VIP", req, "forward:0", rep)


@case("malformed_v4", "Malformed frames: a truncated header is dropped as malformed, a length field that disagrees with the frame or the header as bad_length (frames not padded, as a NIC may hand them over)")
def _(c: Case) -> None:
    syn = bytes(from_client(tcp_v4(CLIENT, 40005, VIP, 80, "S", seq=1)))
    c.step("Ethernet header cut at 10 bytes", syn[:10], "drop:malformed", pad=False)
    c.step("IPv4 header cut at 12 bytes", syn[:26], "drop:malformed", pad=False)
    bad_ihl = bytearray(syn)
    bad_ihl[14] = 0x44  # IHL 4: 16 bytes, below the 20-byte minimum
    c.step("IPv4 IHL 4", bytes(bad_ihl), "drop:malformed", pad=False)
    long = from_client(tcp_v4(CLIENT, 40005, VIP, 80, "S", seq=1))
    long[IP].len = 200
    c.step("IPv4 total length past the frame's end", long, "drop:bad_length", pad=False)
    short = from_client(IP(src=CLIENT, dst=VIP, ttl=64, id=1, proto=6) / Raw(bytes(syn[34:44])))
    c.step("TCP header cut at 10 bytes", short, "drop:malformed", pad=False)
    doff = from_client(tcp_v4(CLIENT, 40005, VIP, 80, "S", seq=1))
    doff[TCP].dataofs = 4
    c.step("TCP data offset 4", doff, "drop:bad_length", pad=False)
    udp_len = from_client(IP(src=CLIENT, dst=VIP, ttl=64, id=1) / UDP(sport=40005, dport=53, len=4) / Raw(b"x"))
    c.step("UDP length 4", udp_len, "drop:bad_length", pad=False)


@case("ingress_v4", "Strict ingress checks (IPv4): what the kernel would refuse before IPVS saw it is dropped, each under its reason, and creates no session: the SYN that follows them gets the first local port")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_TCP
    def syn(src: str = CLIENT, flags: str = "S", **kw) -> Packet:
        return from_client(tcp_v4(src, 40040, VIP, vport, flags, seq=1, **kw))

    bad_ip = syn()
    bad_ip[IP].chksum = 0x1234
    c.step("SYN with a wrong IPv4 header checksum", bad_ip, "drop:ip_checksum")
    bad_tcp = syn()
    bad_tcp[TCP].chksum = 0x1234
    c.step("SYN with a wrong TCP checksum", bad_tcp, "drop:l4_checksum")
    bad_udp = from_client(udp_v4(CLIENT, 40040, VIP, FULLNAT_UDP[0], b"query"))
    bad_udp[UDP].chksum = 0x1234
    c.step("UDP datagram with a wrong checksum", bad_udp, "drop:l4_checksum")
    for src, what in ((VIP, "the VIP"), (LADDR, "the local address"), (LB_IP, "the interface address")):
        c.step(f"SYN from {what}", syn(src), "drop:own_source")
    for src in ("0.0.0.0", "0.1.2.3", "127.0.0.1", "255.255.255.255", "10.77.0.255", "224.0.0.5", "240.0.0.1"):
        c.step(f"SYN from {src}", syn(src), "drop:martian_source")
    lsrr = syn()
    lsrr[IP].options = [IPOption_LSRR(routers=[RS1])]
    c.step("SYN with a loose source route", lsrr, "drop:source_route")
    ssrr = syn()
    ssrr[IP].options = [IPOption_SSRR(routers=[RS1])]
    c.step("SYN with a strict source route", ssrr, "drop:source_route")
    nops = syn()
    nops[IP].options = [IPOption_NOP()] * 4
    bad_opt = bytearray(bytes(nops))
    bad_opt[34:38] = b"\x07\x09\x04\x00"  # record route, its length past the header
    bad_opt[24:26] = b"\x00\x00"
    bad_opt[24:26] = struct.pack("!H", checksum(bytes(bad_opt[14:38])))
    c.step("SYN with an option overrunning the header", bytes(bad_opt), "drop:malformed")
    for flags, what in (("SF", "SYN+FIN"), ("SR", "SYN+RST"), ("", "no flags"), ("F", "FIN without ACK"), ("FPU", "FIN+PSH+URG (Xmas)"), ("SRAF", "SYN+RST+ACK+FIN")):
        c.step(f"segment with {what}", syn(flags=flags), "drop:tcp_flags")
    short_udp = from_client(IP(src=CLIENT, dst=VIP, ttl=64, id=1) / UDP(sport=40040, dport=FULLNAT_UDP[0], len=10) / Raw(b"query"))
    c.step("UDP length shorter than the IP payload", short_udp, "drop:bad_length")
    good = syn(options=SYN_OPTIONS)
    c.step("a clean SYN afterwards takes the first local port", good, "forward:0", routed(good, (LADDR, lport(0)), (rs, rport), rs_mac))


@case("ingress_v6", "Strict ingress checks (IPv6): wrong TCP and UDP checksums (a UDP checksum of 0 too), own and martian sources are dropped under their reasons and create no session")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_TCP6
    def syn(src: str = CLIENT6, flags: str = "S", **kw) -> Packet:
        return from_client(tcp_v6(src, 40040, VIP6, vport, flags, seq=1, **kw))

    bad_tcp = syn()
    bad_tcp[TCP].chksum = 0x1234
    c.step("SYN with a wrong TCP checksum", bad_tcp, "drop:l4_checksum")
    bad_udp = from_client(udp_v6(CLIENT6, 40040, VIP6, FULLNAT_UDP6[0], b"query"))
    bad_udp[UDP].chksum = 0x1234
    c.step("UDP datagram with a wrong checksum", bad_udp, "drop:l4_checksum")
    zero_udp = from_client(udp_v6(CLIENT6, 40040, VIP6, FULLNAT_UDP6[0], b"query"))
    zero_udp[UDP].chksum = 0
    c.step("UDP datagram with checksum 0 (mandatory over IPv6)", zero_udp, "drop:l4_checksum")
    for src, what in ((VIP6, "the VIP"), (LADDR6, "the local address"), ("fd77::2", "the interface address")):
        c.step(f"SYN from {what}", syn(src), "drop:own_source")
    for src in ("::", "::1", "ff02::1"):
        c.step(f"SYN from {src}", syn(src), "drop:martian_source")
    c.step("segment with SYN+FIN", syn(flags="SF"), "drop:tcp_flags")
    good = syn(options=SYN_OPTIONS)
    c.step("a clean SYN afterwards takes the first local port", good, "forward:0", routed(good, (LADDR6, lport(0)), (rs, rport), rs_mac))


@case("refused_v4", "Well-formed packets the appliance refuses, each with its drop reason")
def _(c: Case) -> None:
    c.step("SYN with TTL 1", from_client(tcp_v4(CLIENT, 40006, VIP, 80, "S", seq=1, ttl=1)), "drop:ttl_exceeded")
    c.step("SYN to a VIP port with no service", from_client(tcp_v4(CLIENT, 40006, VIP, 8888, "S", seq=1)), "drop:no_service")
    c.step("SYN to an address not owned", from_client(tcp_v4(CLIENT, 40006, "10.77.0.99", 80, "S", seq=1)), "drop:not_for_us")
    c.step("ACK with no session", from_client(tcp_v4(CLIENT, 40006, VIP, 80, "A", seq=1, ack=1)), "drop:no_session")
    c.step("reply to a local port with no session", from_server(RS1_MAC, tcp_v4(RS1, 8080, LADDR, lport(0), "SA", seq=1, ack=2)), "drop:no_session")
    c.step("GRE to the VIP", from_client(IP(src=CLIENT, dst=VIP, ttl=64, id=1, proto=47) / Raw(bytes(8))), "drop:unsupported_l4")
    lldp = Ether(src=CLIENT_MAC, dst="01:80:c2:00:00:0e", type=0x88CC) / Raw(bytes(46))
    c.step("LLDP frame", lldp, "drop:unsupported_l3")
    frag = from_client(tcp_v4(CLIENT, 40006, VIP, 80, "S", seq=1, data=bytes(16)))
    frag[IP].frag = 2
    c.step("a later fragment whose first one has not come: held for it", frag, "hold-fragment")


def frag4(frame: Packet, size: int) -> list[Packet]:
    """`frame` (checksums computed first) in IPv4 fragments of `size`
    bytes of data, as a host splits it: same ID, header copied."""
    return fragment(Ether(bytes(frame)), fragsize=size)


def frag6(frame: Packet, ident: int, size: int) -> list[Packet]:
    """`frame`'s IPv6 packet (checksums computed first) in fragments of
    about `size` bytes, a fragment header with ID `ident` after the fixed one."""
    b = Ether(bytes(frame))
    ip = b[IPv6]
    q = Ether(src=b.src, dst=b.dst) / IPv6(src=ip.src, dst=ip.dst, hlim=ip.hlim, tc=ip.tc, fl=ip.fl) / IPv6ExtHdrFragment(id=ident, nh=ip.nh) / Raw(bytes(ip.payload))
    return fragment6(q, size)


@case("fragments_v4", "A 2000-byte UDP datagram in three IPv4 fragments (1000 bytes of data each) through each method: FULLNAT and NAT rewrite the first fragment's addresses, ports and UDP checksum (for the whole datagram) and the later ones' addresses (TTL - 1, header checksums); DR sends them on untouched; TUN wraps each; the server's fragmented answer goes back to the client; a fragmented ICMP error from the server reaches the client; a later fragment before its first is held")
def _(c: Case) -> None:
    big = bytes(range(256)) * 8
    vport, rs, rport, rs_mac = FULLNAT_UDP
    laddr = (LADDR, lport(0))
    cl = (CLIENT, 40100)
    q = from_client(udp_v4(CLIENT, 40100, VIP, vport, big, ip_id=0x100))
    for i, (f, want) in enumerate(zip(frag4(q, 1000), frag4(routed(q, laddr, (rs, rport), rs_mac), 1000))):
        c.step(f"FULLNAT: client datagram, fragment {i + 1} of 3", f, "forward:0", want)
    a = from_server(rs_mac, udp_v4(rs, rport, LADDR, laddr[1], big, ip_id=0x200))
    for i, (f, want) in enumerate(zip(frag4(a, 1000), frag4(routed(a, (VIP, vport), cl, CLIENT_MAC), 1000))):
        c.step(f"FULLNAT: server answer, fragment {i + 1} of 3", f, "forward:0", want)
    # The server's error quoting the first fragment (1020 bytes) as it got
    # it: two fragments of 600; the client gets its own first fragment back
    # (TTL 63 as the server saw it, the UDP checksum the whole datagram's).
    seen = bytes(frag4(routed(q, laddr, (rs, rport), rs_mac), 1000)[0][IP])
    err = icmp_error(rs_mac, rs, LADDR, seen, ip_id=0x300)
    own = IP(bytes(frag4(q, 1000)[0][IP]))
    own.ttl, own.chksum = 63, None
    for i, (f, want) in enumerate(zip(frag4(err, 600), frag4(relayed_error(err, VIP, CLIENT, CLIENT_MAC, bytes(own)), 600))):
        c.step(f"FULLNAT: server's port unreachable quoting the first fragment, fragment {i + 1} of 2", f, "forward:0", want)
    vport, rs, rport, rs_mac = NAT_UDP
    q = from_client(udp_v4(CLIENT, 40101, VIP, vport, big, ip_id=0x101))
    for i, (f, want) in enumerate(zip(frag4(q, 1000), frag4(routed(q, (CLIENT, 40101), (rs, rport), rs_mac), 1000))):
        c.step(f"NAT: client datagram, fragment {i + 1} of 3", f, "forward:0", want)
    vport, rs, rport, rs_mac = DR_UDP
    q = from_client(udp_v4(CLIENT, 40102, VIP, vport, big, ip_id=0x102))
    for i, f in enumerate(frag4(q, 1000)):
        c.step(f"DR: client datagram, fragment {i + 1} of 3", f, "forward:0", l2_only(f, rs_mac))
    vport, rs, rport, rs_mac = TUN_UDP
    q = from_client(udp_v4(CLIENT, 40103, VIP, vport, big, ip_id=0x103))
    ids = tun_ids()
    for i, f in enumerate(frag4(q, 1000)):
        c.step(f"TUN: client datagram, fragment {i + 1} of 3", f, "forward:0", tunnelled(f, rs, rs_mac, next(ids)))
    vport, rs, rport, rs_mac = FULLNAT_UDP
    q = from_client(udp_v4(CLIENT, 40104, VIP, vport, big, ip_id=0x104))
    f1, f2, f3 = frag4(q, 1000)
    c.step("FULLNAT: a later fragment before its first: held for it (the worker sends it on after the first)", f2, "hold-fragment")
    c.step("FULLNAT: then the first", f1, "forward:0", frag4(routed(q, (LADDR, lport(1)), (rs, rport), rs_mac), 1000)[0])


@case("fragments_v6", "A 2000-byte UDP datagram in IPv6 fragments (fragment header after the fixed one) through FULLNAT both ways and DR: the first fragment's transport header sits after the fragment header")
def _(c: Case) -> None:
    big = bytes(range(256)) * 8
    vport, rs, rport, rs_mac = FULLNAT_UDP6
    laddr = (LADDR6, lport(0))
    cl = (CLIENT6, 40100)
    q = from_client(udp_v6(CLIENT6, 40100, VIP6, vport, big))
    for i, (f, want) in enumerate(zip(frag6(q, 7, 1000), frag6(routed(q, laddr, (rs, rport), rs_mac), 7, 1000))):
        c.step(f"FULLNAT: client datagram, fragment {i + 1}", f, "forward:0", want)
    a = from_server(rs_mac, udp_v6(rs, rport, LADDR6, laddr[1], big))
    for i, (f, want) in enumerate(zip(frag6(a, 8, 1000), frag6(routed(a, (VIP6, vport), cl, CLIENT_MAC), 8, 1000))):
        c.step(f"FULLNAT: server answer, fragment {i + 1}", f, "forward:0", want)
    vport, rs, rport, rs_mac = DR_UDP6
    q = from_client(udp_v6(CLIENT6, 40102, VIP6, vport, big))
    for i, f in enumerate(frag6(q, 9, 1000)):
        c.step(f"DR: client datagram, fragment {i + 1}", f, "forward:0", l2_only(f, rs_mac))


@case("tun_v4", "TUN (IPIP) TCP and UDP: the client's packet, untouched, inside IPv4 from the interface address to RS4 (TTL 64, TOS and DF copied); one that no longer fits the 1500-byte MTU gets ICMP fragmentation needed (MTU 1480) from the VIP with DF, is dropped as too_big without")
def _(c: Case) -> None:
    vport, rs, _rport, rs_mac = TUN_TCP
    ids = tun_ids()
    syn = from_client(tcp_v4(CLIENT, 40030, VIP, vport, "S", seq=100, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", tunnelled(syn, rs, rs_mac, next(ids)))
    ack = from_client(tcp_v4(CLIENT, 40030, VIP, vport, "PA", seq=101, ack=501, data=b"hello", ip_id=2, tos=0xB8))
    c.step("client data with TOS 0xb8 (EF)", ack, "forward:0", tunnelled(ack, rs, rs_mac, next(ids)))
    fits = from_client(tcp_v4(CLIENT, 40030, VIP, vport, "A", seq=106, ack=501, data=bytes(range(256)) * 5 + bytes(160), ip_id=3))
    assert len(fits[IP]) + 20 == MTU
    c.step("client segment of 1480 bytes: 1500 once wrapped, fits", fits, "forward:0", tunnelled(fits, rs, rs_mac, next(ids)))
    big = from_client(tcp_v4(CLIENT, 40030, VIP, vport, "A", seq=1546, ack=501, data=bytes(1441), ip_id=4))
    next(ids)
    c.step("client segment of 1481 bytes with DF: fragmentation needed to the client", big, "forward:0", frag_needed(big))
    big_no_df = from_client(tcp_v4(CLIENT, 40030, VIP, vport, "A", seq=1546, ack=501, data=bytes(1441), ip_id=5, df=False))
    next(ids)
    c.step("client segment of 1481 bytes without DF: dropped", big_no_df, "drop:too_big")
    uvport, urs, _urport, urs_mac = TUN_UDP
    q = from_client(udp_v4(CLIENT, 40031, VIP, uvport, b"tun query"))
    c.step("client datagram (no DF, Ethernet padding left out)", q, "forward:0", tunnelled(q, urs, urs_mac, next(ids)))


@case("tun_v6", "TUN (IPv6-in-IPv6) TCP and UDP: the client's packet, untouched, inside IPv6 from fd77::2 to fd77::14 (hop limit 64, traffic class copied); one that no longer fits the 1500-byte MTU gets ICMPv6 packet too big (MTU 1460) from the VIP, quoting 1232 bytes")
def _(c: Case) -> None:
    vport, rs, _rport, rs_mac = TUN_TCP6
    syn = from_client(tcp_v6(CLIENT6, 40030, VIP6, vport, "S", seq=100, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", tunnelled(syn, rs, rs_mac))
    ack = from_client(tcp_v6(CLIENT6, 40030, VIP6, vport, "PA", seq=101, ack=501, data=b"hello", tc=0xB8))
    c.step("client data with traffic class 0xb8 (EF)", ack, "forward:0", tunnelled(ack, rs, rs_mac))
    fits = from_client(tcp_v6(CLIENT6, 40030, VIP6, vport, "A", seq=106, ack=501, data=bytes(range(200)) * 7))
    assert len(fits[IPv6]) + 40 == MTU
    c.step("client segment of 1460 bytes: 1500 once wrapped, fits", fits, "forward:0", tunnelled(fits, rs, rs_mac))
    big = from_client(tcp_v6(CLIENT6, 40030, VIP6, vport, "A", seq=1506, ack=501, data=bytes(range(251)) * 5 + bytes(146)))
    assert len(big[IPv6]) == 1461
    c.step("client segment of 1461 bytes: packet too big to the client", big, "forward:0", too_big_v6(big))
    uvport, urs, _urport, urs_mac = TUN_UDP6
    q = from_client(udp_v6(CLIENT6, 40031, VIP6, uvport, b"tun query"))
    c.step("client datagram", q, "forward:0", tunnelled(q, urs, urs_mac))


@case("fullnat_v6", "FULLNAT over IPv6, TCP and UDP: client -> [fd77::100]:80 leaves as [fd77::200]:lport -> [fd77::11]:8080 (hop limit - 1), replies come back from the VIP; UDP likewise on port 53")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_TCP6
    laddr = (LADDR6, lport(0))
    cl = (CLIENT6, 40000)
    syn = from_client(tcp_v6(CLIENT6, 40000, VIP6, vport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", routed(syn, laddr, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v6(rs, rport, LADDR6, laddr[1], "SA", seq=5000, ack=1001, options=SYNACK_OPTIONS))
    c.step("server SYN-ACK to the local address", synack, "forward:0", routed(synack, (VIP6, vport), cl, CLIENT_MAC))
    ack = from_client(tcp_v6(CLIENT6, 40000, VIP6, vport, "PA", seq=1001, ack=5001, data=b"GET / HTTP/1.0\r\n\r\n"))
    c.step("client ACK with a request", ack, "forward:0", routed(ack, laddr, (rs, rport), rs_mac))
    data = from_server(rs_mac, tcp_v6(rs, rport, LADDR6, laddr[1], "PA", seq=5001, ack=1019, data=b"HTTP/1.0 200 OK\r\n\r\nrs1"))
    c.step("server response", data, "forward:0", routed(data, (VIP6, vport), cl, CLIENT_MAC))
    uvport, urs, urport, urs_mac = FULLNAT_UDP6
    ul = (LADDR6, lport(1))
    q = from_client(udp_v6(CLIENT6, 40001, VIP6, uvport, b"query six"))
    c.step("client datagram", q, "forward:0", routed(q, ul, (urs, urport), urs_mac))
    a = from_server(urs_mac, udp_v6(urs, urport, LADDR6, ul[1], b"answer six"))
    c.step("server answer", a, "forward:0", routed(a, (VIP6, uvport), (CLIENT6, 40001), CLIENT_MAC))


@case("fullnat_udp_v6_checksum_ffff", "FULLNAT UDP over IPv6: a rewrite whose checksum computes to 0 sends 0xffff (RFC 8200 8.1: 0 is not a valid IPv6 UDP checksum)")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_UDP6
    laddr = (LADDR6, lport(0))

    def query(word: int) -> Packet:
        return from_client(udp_v6(CLIENT6, 40000, VIP6, vport, b"zero" + struct.pack("!H", word)))

    # As in fullnat_udp_v4_checksum_ffff: the last payload word makes the
    # rewritten datagram's one's-complement sum 0xffff.
    c0 = Ether(bytes(routed(query(0), laddr, (rs, rport), rs_mac)))[UDP].chksum
    q = query(c0)
    out = routed(q, laddr, (rs, rport), rs_mac)
    assert Ether(bytes(out))[UDP].chksum == 0xFFFF
    c.step("client datagram whose rewritten checksum is 0xffff", q, "forward:0", out)


@case("nat_v6", "NAT (masquerading) over IPv6, TCP and UDP: client -> VIP:81 leaves as client -> [fd77::12]:8081; the server's replies leave from the VIP; UDP likewise on port 54")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = NAT_TCP6
    cl = (CLIENT6, 40001)
    syn = from_client(tcp_v6(CLIENT6, 40001, VIP6, vport, "S", seq=7000, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", routed(syn, cl, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v6(rs, rport, CLIENT6, 40001, "SA", seq=9000, ack=7001, options=SYNACK_OPTIONS))
    c.step("server SYN-ACK to the client", synack, "forward:0", routed(synack, (VIP6, vport), cl, CLIENT_MAC))
    ack = from_client(tcp_v6(CLIENT6, 40001, VIP6, vport, "A", seq=7001, ack=9001))
    c.step("client ACK", ack, "forward:0", routed(ack, cl, (rs, rport), rs_mac))
    uvport, urs, urport, urs_mac = NAT_UDP6
    ucl = (CLIENT6, 40002)
    q = from_client(udp_v6(CLIENT6, 40002, VIP6, uvport, b"nat query six"))
    c.step("client datagram", q, "forward:0", routed(q, ucl, (urs, urport), urs_mac))
    a = from_server(urs_mac, udp_v6(urs, urport, CLIENT6, 40002, b"nat answer six"))
    c.step("server answer", a, "forward:0", routed(a, (VIP6, uvport), ucl, CLIENT_MAC))


@case("dr_v6", "DR (direct routing) over IPv6, TCP and UDP: client frames to the VIP go to RS3's MAC with the IPv6 packet untouched, hop limit included")
def _(c: Case) -> None:
    vport, _rs, _rport, rs_mac = DR_TCP6
    syn = from_client(tcp_v6(CLIENT6, 40003, VIP6, vport, "S", seq=3000, options=SYN_OPTIONS))
    c.step("client SYN to the VIP", syn, "forward:0", l2_only(syn, rs_mac))
    ack = from_client(tcp_v6(CLIENT6, 40003, VIP6, vport, "PA", seq=3001, ack=4001, data=b"hello"))
    c.step("client data", ack, "forward:0", l2_only(ack, rs_mac))
    uvport, _urs, _urport, urs_mac = DR_UDP6
    q = from_client(udp_v6(CLIENT6, 40004, VIP6, uvport, b"dr query six"))
    c.step("client datagram", q, "forward:0", l2_only(q, urs_mac))


def solicited_node(target: str) -> str:
    """The solicited-node multicast group of `target` (RFC 4291 2.7.1)."""
    return str(ipaddress.IPv6Address(bytes.fromhex("ff0200000000000000000001ff") + ipaddress.IPv6Address(target).packed[13:]))


def multicast_mac(group: str) -> str:
    """The Ethernet address of IPv6 multicast `group` (RFC 2464 7)."""
    return "33:33:" + ":".join(f"{x:02x}" for x in ipaddress.IPv6Address(group).packed[12:])


def solicitation(target: str, src: str = CLIENT6, dst: str | None = None, src_mac: str = CLIENT_MAC, sllao: bool = True, hlim: int = 255) -> Packet:
    """A Neighbor Solicitation for `target` (RFC 4861 4.3), to its
    solicited-node group unless unicast to `dst`, with a source link-layer
    address option when `sllao`."""
    group = dst or solicited_node(target)
    mac = LB_MAC if dst else multicast_mac(group)
    p = Ether(src=src_mac, dst=mac) / IPv6(src=src, dst=group, hlim=hlim) / ICMPv6ND_NS(tgt=target)
    return p / ICMPv6NDOptSrcLLAddr(lladdr=src_mac) if sllao else p


def advertisement(target: str, to: str = CLIENT6, to_mac: str = CLIENT_MAC) -> Packet:
    """The solicited Neighbor Advertisement for `target` (RFC 4861 7.2.4):
    from the target to the asker, hop limit 255, flags S and O (not a
    router), with the target link-layer address option (our MAC)."""
    return Ether(src=LB_MAC, dst=to_mac) / IPv6(src=target, dst=to, hlim=255) / ICMPv6ND_NA(R=0, S=1, O=1, tgt=target) / ICMPv6NDOptDstLLAddr(lladdr=LB_MAC)


@case("nd_v6", "IPv6 neighbour discovery: solicitations for owned addresses (VIP, local address, interface address) are answered in place with a solicited advertisement; a duplicate address detection probe for one is defended with an advertisement to all nodes; others and forged hop limits are not; an advertisement is learned from (consumed)")
def _(c: Case) -> None:
    for target, what in ((VIP6, "the VIP"), (LADDR6, "the local address"), (LB_IP6, "the interface address")):
        c.step(f"multicast solicitation for {what}", solicitation(target), "forward:0", advertisement(target))
    c.step("unicast solicitation for the VIP (reachability check)", solicitation(VIP6, dst=VIP6), "forward:0", advertisement(VIP6))
    c.step("solicitation for an address the appliance does not own", solicitation("fd77::99"), "drop:arp_not_for_us")
    # RFC 4861 §7.2.4: a probe from :: for an address in use is answered to
    # all nodes, not solicited, override set, with our link-layer address.
    defence = Ether(src=LB_MAC, dst="33:33:00:00:00:01") / IPv6(src=VIP6, dst="ff02::1", hlim=255) / ICMPv6ND_NA(R=0, S=0, O=1, tgt=VIP6) / ICMPv6NDOptDstLLAddr(lladdr=LB_MAC)
    c.step("duplicate address detection probe for the VIP (source ::, no option): defended", solicitation(VIP6, src="::", sllao=False), "forward:0", defence)
    c.step("duplicate address detection probe for an address not owned", solicitation("fd77::99", src="::", sllao=False), "drop:arp_not_for_us")
    c.step("solicitation with hop limit 64 (not from the link)", solicitation(VIP6, hlim=64), "drop:malformed")
    bad = solicitation(VIP6)
    bad[ICMPv6ND_NS].cksum = 0x1234
    c.step("solicitation with a wrong checksum", bad, "drop:malformed")
    na = Ether(src=RS3_MAC, dst=LB_MAC) / IPv6(src=RS3_6, dst=LB_IP6, hlim=255) / ICMPv6ND_NA(R=0, S=1, O=1, tgt=RS3_6) / ICMPv6NDOptDstLLAddr(lladdr=RS3_MAC)
    c.step("advertisement from a server: learned", na, "consumed")


@case("echo_v6", "ICMPv6 echo: a request to an owned address is answered in place (type 129, addresses swapped, hop limit kept, checksum recomputed); to an address not owned it is dropped")
def _(c: Case) -> None:
    payload = bytes(range(32))
    for dst, what in ((VIP6, "the VIP"), (LB_IP6, "the interface address")):
        req = from_client(IPv6(src=CLIENT6, dst=dst, hlim=60) / ICMPv6EchoRequest(id=0x1234, seq=1, data=payload))
        rep = Ether(src=LB_MAC, dst=CLIENT_MAC) / IPv6(src=dst, dst=CLIENT6, hlim=60) / ICMPv6EchoReply(id=0x1234, seq=1, data=payload)
        c.step(f"echo request to {what}", req, "forward:0", rep)
    stray = from_client(IPv6(src=CLIENT6, dst="fd77::99", hlim=64) / ICMPv6EchoRequest(id=0x1234, seq=2, data=payload))
    c.step("echo request to an address not owned", stray, "drop:not_for_us")


@case("refused_v6", "IPv6 packets the appliance refuses, each with its drop reason: a fragment without its first, hop limit 1, no service, not ours, no session, other extension headers, and malformed ones or ones whose lengths disagree (frames not padded)")
def _(c: Case) -> None:
    def syn(**kw) -> Packet:
        return tcp_v6(CLIENT6, 40006, VIP6, 80, "S", seq=1, **kw)

    frag = from_client(IPv6(src=CLIENT6, dst=VIP6, hlim=64) / IPv6ExtHdrFragment(m=1, id=7, offset=2) / syn()[TCP])
    c.step("a later fragment whose first one has not come: held for it", frag, "hold-fragment")
    c.step("SYN with hop limit 1", from_client(syn(hlim=1)), "drop:ttl_exceeded")
    c.step("SYN to a VIP port with no service", from_client(tcp_v6(CLIENT6, 40006, VIP6, 8888, "S", seq=1)), "drop:no_service")
    c.step("SYN to an address not owned", from_client(tcp_v6(CLIENT6, 40006, "fd77::99", 80, "S", seq=1)), "drop:not_for_us")
    c.step("ACK with no session", from_client(tcp_v6(CLIENT6, 40006, VIP6, 80, "A", seq=1, ack=1)), "drop:no_session")
    c.step("reply to a local port with no session", from_server(RS1_MAC, tcp_v6(RS1_6, 8080, LADDR6, lport(0), "SA", seq=1, ack=2)), "drop:no_session")
    hbh = from_client(IPv6(src=CLIENT6, dst=VIP6, hlim=64) / IPv6ExtHdrHopByHop() / syn()[TCP])
    c.step("SYN behind a hop-by-hop options header", hbh, "drop:unsupported_l4")
    mapped = from_client(tcp_v6("::ffff:10.77.0.10", 40006, VIP6, 80, "S", seq=1))
    c.step("IPv4-mapped source address", mapped, "drop:malformed")
    whole = bytes(from_client(syn()))
    c.step("IPv6 header cut at 30 bytes", whole[: 14 + 30], "drop:malformed", pad=False)
    long = from_client(syn())
    long[IPv6].plen = 200
    c.step("IPv6 payload length past the frame's end", long, "drop:bad_length", pad=False)
    short = from_client(IPv6(src=CLIENT6, dst=VIP6, hlim=64, nh=6) / Raw(whole[54:64]))
    c.step("TCP header cut at 10 bytes", short, "drop:malformed", pad=False)
    bad = from_client(IPv6(src=CLIENT6, dst=VIP6, hlim=64) / ICMPv6EchoRequest(id=1, seq=1, data=b"ping"))
    bad[ICMPv6EchoRequest].cksum = 0x1234
    c.step("ICMPv6 echo request with a wrong checksum", bad, "drop:malformed", pad=False)


@case("icmp_relay_fullnat_v4", "ICMP errors about FULLNAT sessions relayed to the other side, outer and quoted addresses, ports and every checksum rewritten (TTL - 1): the server's port unreachable reaches the client from the VIP quoting the client's own datagram; the client's about an answer reaches the server from the local address; a fragmentation needed quoting 8 bytes of TCP keeps the TCP checksum it does not quote")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_UDP
    laddr = (LADDR, lport(0))
    cl = (CLIENT, 40010)
    q = from_client(udp_v4(CLIENT, 40010, VIP, vport, b"relay query"))
    fwd = routed(q, laddr, (rs, rport), rs_mac)
    c.step("client datagram", q, "forward:0", fwd)
    err = icmp_error(rs_mac, rs, LADDR, quote_of(bytes(fwd[IP])))
    c.step("server: port unreachable, quoting the whole datagram", err, "forward:0", relayed_error(err, VIP, CLIENT, CLIENT_MAC, as_seen(q, cl, (VIP, vport), 63)))
    a = from_server(rs_mac, udp_v4(rs, rport, LADDR, laddr[1], b"relay answer"))
    back = routed(a, (VIP, vport), cl, CLIENT_MAC)
    c.step("server answer", a, "forward:0", back)
    err = icmp_error(CLIENT_MAC, CLIENT, VIP, quote_of(bytes(back[IP]), 8), ip_id=31)
    c.step("client: port unreachable about the answer, quoting 8 bytes of UDP", err, "forward:0", relayed_error(err, LADDR, rs, rs_mac, quote_of(as_seen(a, (rs, rport), laddr, 63), 8)))
    # TCP: the quote stops before the TCP checksum.
    tvport, trs, trport, trs_mac = FULLNAT_TCP
    tl = (LADDR, lport(1))
    tcl = (CLIENT, 40011)
    syn = from_client(tcp_v4(CLIENT, 40011, VIP, tvport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN", syn, "forward:0", routed(syn, tl, (trs, trport), trs_mac))
    synack = from_server(trs_mac, tcp_v4(trs, trport, LADDR, tl[1], "SA", seq=5000, ack=1001))
    sa_out = routed(synack, (VIP, tvport), tcl, CLIENT_MAC)
    c.step("server SYN-ACK", synack, "forward:0", sa_out)
    data = from_client(tcp_v4(CLIENT, 40011, VIP, tvport, "A", seq=1001, ack=5001, data=bytes(1400), ip_id=2))
    d_out = routed(data, tl, (trs, trport), trs_mac)
    c.step("client segment of 1440 bytes", data, "forward:0", d_out)
    err = icmp_error(trs_mac, trs, LADDR, quote_of(bytes(d_out[IP]), 8), code=4, mtu=1400, ip_id=32)
    c.step("server: fragmentation needed (MTU 1400), quoting 8 bytes of TCP", err, "forward:0", relayed_error(err, VIP, CLIENT, CLIENT_MAC, quote_of(as_seen(data, tcl, (VIP, tvport), 63), 8)))
    err = icmp_error(CLIENT_MAC, CLIENT, VIP, quote_of(bytes(sa_out[IP]), 8), icmp_type=11, code=0, ip_id=33)
    c.step("client: time exceeded about the SYN-ACK", err, "forward:0", relayed_error(err, LADDR, trs, trs_mac, quote_of(as_seen(synack, (trs, trport), tl, 63), 8)))
    # The client's own checksum is 0xffff (its sum computed to 0), or 0 (none).
    def query(word: int) -> Packet:
        return from_client(udp_v4(CLIENT, 40012, VIP, vport, b"zero" + struct.pack("!H", word), ip_id=3))

    qf = query(Ether(bytes(query(0)))[UDP].chksum)
    assert Ether(bytes(qf))[UDP].chksum == 0xFFFF
    ffwd = routed(qf, (LADDR, lport(2)), (rs, rport), rs_mac)
    c.step("client datagram whose own checksum is 0xffff", qf, "forward:0", ffwd)
    err = icmp_error(rs_mac, rs, LADDR, quote_of(bytes(ffwd[IP])), ip_id=36)
    c.step("server: port unreachable about it: the quote carries 0xffff again", err, "forward:0", relayed_error(err, VIP, CLIENT, CLIENT_MAC, as_seen(qf, (CLIENT, 40012), (VIP, vport), 63)))
    q0 = from_client(udp_v4(CLIENT, 40013, VIP, vport, b"no checksum", no_checksum=True, ip_id=4))
    zfwd = routed(q0, (LADDR, lport(3)), (rs, rport), rs_mac)
    c.step("client datagram without checksum", q0, "forward:0", zfwd)
    err = icmp_error(rs_mac, rs, LADDR, quote_of(bytes(zfwd[IP])), ip_id=37)
    unchecked = q0[IP].copy()
    unchecked.ttl, unchecked.chksum = 63, None
    c.step("server: port unreachable about it: the quote keeps no checksum", err, "forward:0", relayed_error(err, VIP, CLIENT, CLIENT_MAC, bytes(unchecked)))
    # Not relayed.
    late = icmp_error(rs_mac, rs, LADDR, quote_of(as_seen(q, (LADDR, lport(50)), (rs, rport), 63)), ip_id=34)
    c.step("server: an error quoting no session (ordinary ICMP to the local address)", late, "drop:unsupported_l4")
    dying = icmp_error(rs_mac, rs, LADDR, quote_of(bytes(fwd[IP])), ttl=1, ip_id=35)
    c.step("server: an error with TTL 1", dying, "drop:ttl_exceeded")


@case("icmp_relay_nat_v4", "ICMP errors about NAT (masquerading) sessions relayed to the other side: the server's port unreachable (to the client, through the appliance) leaves from the VIP quoting what the client sent; the client's error about an answer reaches the server still from the client, quoting the server's own datagram")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = NAT_UDP
    cl = (CLIENT, 40012)
    q = from_client(udp_v4(CLIENT, 40012, VIP, vport, b"nat relay query"))
    fwd = routed(q, cl, (rs, rport), rs_mac)
    c.step("client datagram", q, "forward:0", fwd)
    err = icmp_error(rs_mac, rs, CLIENT, quote_of(bytes(fwd[IP])))
    c.step("server: port unreachable, quoting the whole datagram", err, "forward:0", relayed_error(err, VIP, CLIENT, CLIENT_MAC, as_seen(q, cl, (VIP, vport), 63)))
    a = from_server(rs_mac, udp_v4(rs, rport, CLIENT, 40012, b"nat relay answer"))
    back = routed(a, (VIP, vport), cl, CLIENT_MAC)
    c.step("server answer", a, "forward:0", back)
    err = icmp_error(CLIENT_MAC, CLIENT, VIP, quote_of(bytes(back[IP])), ip_id=31)
    c.step("client: port unreachable about the answer, quoting it whole", err, "forward:0", relayed_error(err, CLIENT, rs, rs_mac, as_seen(a, (rs, rport), cl, 63)))
    tvport, trs, trport, trs_mac = NAT_TCP
    tcl = (CLIENT, 40013)
    syn = from_client(tcp_v4(CLIENT, 40013, VIP, tvport, "S", seq=7000, options=SYN_OPTIONS))
    s_out = routed(syn, tcl, (trs, trport), trs_mac)
    c.step("client SYN", syn, "forward:0", s_out)
    err = icmp_error(trs_mac, trs, CLIENT, quote_of(bytes(s_out[IP]), 8), code=4, mtu=1400, ip_id=32)
    c.step("server: fragmentation needed about the SYN, quoting 8 bytes of TCP", err, "forward:0", relayed_error(err, VIP, CLIENT, CLIENT_MAC, quote_of(as_seen(syn, tcl, (VIP, tvport), 63), 8)))


@case("icmp_relay_dr_tun_v4", "ICMP errors from the client about DR and TUN sessions (the server answered it directly, from the VIP) go on to the server unchanged: DR to its MAC, TUN wrapped in IPIP")
def _(c: Case) -> None:
    ids = tun_ids()
    for (vport, rs, _rport, rs_mac), mode, cport in ((DR_UDP, "DR", 40014), (TUN_UDP, "TUN", 40015)):
        q = from_client(udp_v4(CLIENT, cport, VIP, vport, b"direct query"))
        tun = mode == "TUN"
        c.step(f"{mode}: client datagram", q, "forward:0", tunnelled(q, rs, rs_mac, next(ids)) if tun else l2_only(q, rs_mac))
        answer = udp_v4(VIP, vport, CLIENT, cport, b"direct answer", ttl=63)
        err = icmp_error(CLIENT_MAC, CLIENT, VIP, bytes(answer), ip_id=40 + int(tun))
        c.step(f"{mode}: client port unreachable about the server's direct answer", err, "forward:0", tunnelled(err, rs, rs_mac, next(ids)) if tun else l2_only(err, rs_mac))


@case("ops_udp", "One-packet scheduling (-o, UDP, FULLNAT): every datagram is scheduled anew (round robin alternates even on one client port, each gets its own local port); each reply still reaches the client and ends its session; a late reply finds none; ports come back at the end of the pool")
def _(c: Case) -> None:
    vport, servers = OPS_UDP
    cl = (CLIENT, 40020)
    sent = []
    for n in range(2):
        rs, rport, rs_mac = servers[n % 2]
        q = from_client(udp_v4(CLIENT, 40020, VIP, vport, b"ops query %d" % n, ip_id=n + 1))
        c.step(f"client datagram {n + 1}: to RS{n % 2 + 1}, local port {lport(n)}", q, "forward:0", routed(q, (LADDR, lport(n)), (rs, rport), rs_mac))
        sent.append((rs, rport, rs_mac, lport(n)))
    for n, (rs, rport, rs_mac, lp) in enumerate(sent):
        a = from_server(rs_mac, udp_v4(rs, rport, LADDR, lp, b"ops answer %d" % n, ip_id=n + 1))
        c.step(f"RS{n + 1} answers: to the client, session ended", a, "forward:0", routed(a, (VIP, vport), cl, CLIENT_MAC))
    rs, rport, rs_mac, lp = sent[0]
    late = from_server(rs_mac, udp_v4(rs, rport, LADDR, lp, b"ops late answer", ip_id=3))
    c.step("RS1 answers again: its session is gone", late, "drop:no_session")
    q = from_client(udp_v4(CLIENT, 40020, VIP, vport, b"ops query 3", ip_id=3))
    c.step(f"client datagram 3: to RS1 again, the next free local port {lport(2)}", q, "forward:0", routed(q, (LADDR, lport(2)), (servers[0][0], servers[0][1]), servers[0][2]))


@case("fullnat64", "FULLNAT64: an IPv6 client of [fd77::100]:84 reaches IPv4 RS1:8084 from 10.77.0.200 and back; the header is rebuilt (RFC 7915 mapping: traffic class <-> TOS, hop limit <-> TTL - 1, DF and ID 0 toward IPv4, flow label 0 toward IPv6), the frame shrinks by 20 bytes toward IPv4 (sent unpadded) and grows back; an IPv4 answer without UDP checksum gets one; ICMP errors are not translated across families")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT64_TCP
    laddr = (LADDR, lport(0))
    cl = (CLIENT6, 40040)
    syn = from_client(tcp_v6(CLIENT6, 40040, VIP6, vport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN to the IPv6 VIP", syn, "forward:0", translated(syn, laddr, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v4(rs, rport, LADDR, laddr[1], "SA", seq=5000, ack=1001, options=SYNACK_OPTIONS, tos=0x20))
    c.step("server SYN-ACK (TOS 0x20) back in IPv6", synack, "forward:0", translated(synack, (VIP6, vport), cl, CLIENT_MAC))
    ack = from_client(tcp_v6(CLIENT6, 40040, VIP6, vport, "PA", seq=1001, ack=5001, data=b"GET / HTTP/1.0\r\n\r\n", tc=0xB8))
    c.step("client request with traffic class 0xb8", ack, "forward:0", translated(ack, laddr, (rs, rport), rs_mac))
    uvport, urs, urport, urs_mac = FULLNAT64_UDP
    ul = (LADDR, lport(1))
    q = from_client(udp_v6(CLIENT6, 40041, VIP6, uvport, b"q64"))
    out = translated(q, ul, (urs, urport), urs_mac)
    assert len(bytes(out)) < MIN_FRAME
    c.step("client datagram: 45 bytes once IPv4, sent unpadded", q, "forward:0", out, pad_out=False)
    a = from_server(urs_mac, udp_v4(urs, urport, LADDR, ul[1], b"answer 64 without checksum", no_checksum=True))
    c.step("server answer without checksum: one computed for IPv6", a, "forward:0", translated(a, (VIP6, uvport), (CLIENT6, 40041), CLIENT_MAC))
    err = icmp_error(urs_mac, urs, LADDR, quote_of(bytes(out[IP])))
    c.step("server port unreachable about the datagram: not translated", err, "drop:unsupported_l4")

    def query(word: int) -> Packet:
        return from_client(udp_v6(CLIENT6, 40042, VIP6, uvport, b"zero" + struct.pack("!H", word)))

    zl = (LADDR, lport(2))
    z = query(Ether(bytes(translated(query(0), zl, (urs, urport), urs_mac)))[UDP].chksum)
    zout = translated(z, zl, (urs, urport), urs_mac)
    assert Ether(bytes(zout))[UDP].chksum == 0xFFFF
    c.step("client datagram whose IPv4 checksum computes to 0: sent as 0xffff", z, "forward:0", zout, pad_out=False)


def translated_fragments(whole: Packet, pieces: list[Packet], src: tuple[str, int], dst: tuple[str, int], dst_mac: str) -> list[Packet]:
    """FULLNAT64 of a fragmented datagram, fragment by fragment (RFC 7915
    4.1 and 5.1.1): `whole` is the datagram as sent, `pieces` its fragments
    as they came; each becomes a fragment of `translated(whole, ...)` (the
    transport checksum the whole datagram's) with the same offset, length
    and more-fragments flag. Toward IPv4: ID the low 16 bits of the
    fragment header's, DF clear; toward IPv6: a fragment header with the
    IPv4 ID."""
    t = Ether(bytes(translated(whole, src, dst, dst_mac)))
    ip = ip_of(t)
    l4 = bytes(ip.payload)
    out = []
    for f in pieces:
        fip = ip_of(Ether(bytes(f)))
        if isinstance(fip, IPv6):
            h = fip[IPv6ExtHdrFragment]
            off, more, ident, n = h.offset * 8, bool(h.m), h.id, len(bytes(h.payload))
            new = IP(src=ip.src, dst=ip.dst, tos=ip.tos, ttl=ip.ttl, id=ident & 0xFFFF, flags="MF" if more else 0, frag=off // 8, proto=ip.proto)
        else:
            off, more, ident, n = fip.frag * 8, bool(fip.flags.MF), fip.id, fip.len - fip.ihl * 4
            new = IPv6(src=ip.src, dst=ip.dst, tc=ip.tc, hlim=ip.hlim, fl=0) / IPv6ExtHdrFragment(nh=ip.nh, offset=off // 8, m=int(more), id=ident)
        out.append(Ether(src=LB_MAC, dst=dst_mac) / new / Raw(l4[off : off + n]))
    return out


@case("fragments_64", "FULLNAT64 of a fragmented 2000-byte UDP datagram: each IPv6 fragment becomes an IPv4 fragment (ID the low 16 bits of the fragment header's, same offset and MF, DF clear, TTL = hop limit - 1), the first one's UDP ports and checksum rewritten for the whole datagram, the later ones' data untouched; the server's IPv4 fragments come back as IPv6 ones with a fragment header (ID zero-extended); a later fragment before its first is held; an IPv4 first fragment without UDP checksum is dropped (IPv6 needs one, over data it does not carry)")
def _(c: Case) -> None:
    big = bytes(range(256)) * 8
    vport, rs, rport, rs_mac = FULLNAT64_UDP
    laddr = (LADDR, lport(0))
    cl = (CLIENT6, 40140)
    q = from_client(udp_v6(CLIENT6, 40140, VIP6, vport, big))
    pieces = frag6(q, 0x1234ABCD, 1000)
    assert len(pieces) == 3, len(pieces)
    for i, (f, want) in enumerate(zip(pieces, translated_fragments(q, pieces, laddr, (rs, rport), rs_mac))):
        c.step(f"client datagram, IPv6 fragment {i + 1} of 3, to IPv4", f, "forward:0", want)
    a = from_server(rs_mac, udp_v4(rs, rport, LADDR, laddr[1], big, ip_id=0x4321))
    pieces = frag4(a, 1000)
    for i, (f, want) in enumerate(zip(pieces, translated_fragments(a, pieces, (VIP6, vport), cl, CLIENT_MAC))):
        c.step(f"server answer, IPv4 fragment {i + 1} of 3, to IPv6", f, "forward:0", want)
    q = from_client(udp_v6(CLIENT6, 40141, VIP6, vport, big))
    pieces = frag6(q, 0x77, 1000)
    c.step("a later IPv6 fragment before its first: held for it", pieces[1], "hold-fragment")
    want = translated_fragments(q, pieces, (LADDR, lport(1)), (rs, rport), rs_mac)
    c.step("then the first: translated", pieces[0], "forward:0", want[0])
    a = from_server(rs_mac, udp_v4(rs, rport, LADDR, laddr[1], big, no_checksum=True, ip_id=0x4322))
    c.step("server answer without UDP checksum, first fragment: dropped", frag4(a, 1000)[0], "drop:fragment")


def icmp6_error(src_mac: str, src: str, dst: str, quote: bytes, icmp_type: int = 1, code: int = 4, mtu: int = 0, hlim: int = 64) -> Packet:
    """An ICMPv6 error (RFC 4443) from (`src_mac`, `src`) to `dst` quoting
    `quote`: destination unreachable (code 4: port unreachable) by
    default, packet too big (type 2) with `mtu`, time exceeded (type 3)."""
    head = struct.pack("!BBHI", icmp_type, code, 0, mtu)
    return Ether(src=src_mac, dst=LB_MAC) / IPv6(src=src, dst=dst, hlim=hlim, nh=58) / Raw(icmp6_checksummed(head + quote, src, dst))


def icmp6_checksummed(msg: bytes, src: str, dst: str) -> bytes:
    """`msg` with its ICMPv6 checksum filled in (scapy's pseudo-header sum)."""
    c = in6_chksum(58, IPv6(src=src, dst=dst), msg[:2] + b"\0\0" + msg[4:])
    return msg[:2] + struct.pack("!H", c) + msg[4:]


def relayed6(error: Packet, src: str, dst: str, dst_mac: str, quote: bytes) -> Packet:
    """An ICMPv6 `error` relayed: from the appliance to `dst_mac`, `src` ->
    `dst`, hop limit - 1, quoting `quote` instead, checksum recomputed."""
    ip = error[IPv6]
    head = bytes(ip.payload)[:8]
    return Ether(src=LB_MAC, dst=dst_mac) / IPv6(src=src, dst=dst, hlim=ip.hlim - 1, tc=ip.tc, fl=ip.fl, nh=58) / Raw(icmp6_checksummed(head + quote, src, dst))


def quote6(b: bytes, after: int | None = None) -> bytes:
    """What an ICMPv6 error quotes of the IPv6 packet `b`: its header and
    `after` bytes of what follows (all of it if None)."""
    return b if after is None else b[: 40 + after]


@case("icmp_relay_v6", "ICMPv6 errors about IPv6 FULLNAT and NAT sessions relayed to the other side like ICMPv4 ones (hop limit - 1, outer and quoted addresses, ports, the quoted checksum where quoted and the ICMPv6 checksum rewritten): port unreachable and packet too big from the server reach the client from the VIP; the client's reach the server from the local address (NAT: from the client)")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = FULLNAT_UDP6
    laddr = (LADDR6, lport(0))
    cl = (CLIENT6, 40050)
    q = from_client(udp_v6(CLIENT6, 40050, VIP6, vport, b"relay query six"))
    fwd = routed(q, laddr, (rs, rport), rs_mac)
    c.step("FULLNAT: client datagram", q, "forward:0", fwd)
    err = icmp6_error(rs_mac, rs, LADDR6, quote6(bytes(fwd[IPv6])))
    c.step("FULLNAT: server port unreachable, quoting the whole datagram", err, "forward:0", relayed6(err, VIP6, CLIENT6, CLIENT_MAC, as_seen(q, cl, (VIP6, vport), 63)))
    a = from_server(rs_mac, udp_v6(rs, rport, LADDR6, laddr[1], b"relay answer six"))
    back = routed(a, (VIP6, vport), cl, CLIENT_MAC)
    c.step("FULLNAT: server answer", a, "forward:0", back)
    err = icmp6_error(CLIENT_MAC, CLIENT6, VIP6, quote6(bytes(back[IPv6])))
    c.step("FULLNAT: client port unreachable about the answer", err, "forward:0", relayed6(err, LADDR6, rs, rs_mac, as_seen(a, (rs, rport), laddr, 63)))
    tvport, trs, trport, trs_mac = FULLNAT_TCP6
    tl = (LADDR6, lport(1))
    tcl = (CLIENT6, 40051)
    syn = from_client(tcp_v6(CLIENT6, 40051, VIP6, tvport, "S", seq=1000, options=SYN_OPTIONS))
    s_out = routed(syn, tl, (trs, trport), trs_mac)
    c.step("FULLNAT: client SYN", syn, "forward:0", s_out)
    err = icmp6_error(trs_mac, trs, LADDR6, quote6(bytes(s_out[IPv6]), 8), icmp_type=2, code=0, mtu=1280)
    c.step("FULLNAT: packet too big (MTU 1280) quoting 8 bytes of TCP", err, "forward:0", relayed6(err, VIP6, CLIENT6, CLIENT_MAC, quote6(as_seen(syn, tcl, (VIP6, tvport), 63), 8)))
    nvport, nrs, nrport, nrs_mac = NAT_UDP6
    ncl = (CLIENT6, 40052)
    nq = from_client(udp_v6(CLIENT6, 40052, VIP6, nvport, b"nat relay query six"))
    nfwd = routed(nq, ncl, (nrs, nrport), nrs_mac)
    c.step("NAT: client datagram", nq, "forward:0", nfwd)
    err = icmp6_error(nrs_mac, nrs, CLIENT6, quote6(bytes(nfwd[IPv6])))
    c.step("NAT: server port unreachable (to the client, through the appliance)", err, "forward:0", relayed6(err, VIP6, CLIENT6, CLIENT_MAC, as_seen(nq, ncl, (VIP6, nvport), 63)))
    na = from_server(nrs_mac, udp_v6(nrs, nrport, CLIENT6, 40052, b"nat relay answer six"))
    nback = routed(na, (VIP6, nvport), ncl, CLIENT_MAC)
    c.step("NAT: server answer", na, "forward:0", nback)
    err = icmp6_error(CLIENT_MAC, CLIENT6, VIP6, quote6(bytes(nback[IPv6])), icmp_type=3, code=0)
    c.step("NAT: client time exceeded about the answer", err, "forward:0", relayed6(err, CLIENT6, nrs, nrs_mac, as_seen(na, (nrs, nrport), ncl, 63)))
    dying = icmp6_error(rs_mac, rs, LADDR6, quote6(bytes(fwd[IPv6])), hlim=1)
    c.step("an error with hop limit 1", dying, "drop:ttl_exceeded")


# ---- client addresses (TOA, PROXY protocol) ----------------------------------
TOA_TCP = (85, RS1, 8085, RS1_MAC)
TOA_TCP6 = (85, RS1_6, 8085, RS1_MAC)
PROXY_V1_TCP = (86, RS1, 8086, RS1_MAC)
PROXY_V2_TCP = (87, RS1, 8087, RS1_MAC)
PROXY_V2_TCP6 = (87, RS1_6, 8087, RS1_MAC)
PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def with_tcp(frame: Packet, **fields) -> Packet:
    """`frame` with TCP fields changed (checksums and lengths recomputed)."""
    p = frame.copy()
    for k, v in fields.items():
        setattr(p[TCP], k, v)
    p[TCP].chksum = None
    if IP in p:
        p[IP].len, p[IP].chksum = None, None
    else:
        p[IPv6].plen = None
    return p


def with_payload(frame: Packet, data: bytes) -> Packet:
    """`frame` carrying `data` after its TCP header instead."""
    p = with_tcp(frame)
    p[TCP].remove_payload()
    return p / Raw(data) if data else p


def options_with_mss(options: list, mss: int) -> list:
    return [("MSS", mss) if k == "MSS" else (k, v) for k, v in options]


def proxy_v2(client: str, cport: int, vip: str, vport: int) -> bytes:
    six = ":" in client
    fam = 0x21 if six else 0x11
    addrs = ipaddress.ip_address(client).packed + ipaddress.ip_address(vip).packed
    body = addrs + struct.pack("!HH", cport, vport)
    return PROXY_V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


@case("toa_v4", "TOA: the server's SYN-ACK MSS is lowered by 8; the handshake's ACK (padded to 60 bytes on arrival) and the first data carry option 254 (port, address) after their own options, data offset and lengths fixed; once the server has sent data, nothing is added")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = TOA_TCP
    laddr = (LADDR, lport(0))
    cl = (CLIENT, 40000)
    toa = (254, struct.pack("!H", 40000) + ipaddress.ip_address(CLIENT).packed)
    syn = from_client(tcp_v4(CLIENT, 40000, VIP, vport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN: the server-side ISN, timestamp option to NOPs", syn, "forward:0", routed(syn, laddr, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v4(rs, rport, LADDR, laddr[1], "SA", seq=5000, ack=1001, options=SYNACK_OPTIONS))
    c.step("server SYN-ACK, MSS 1460 - 8", synack, "forward:0",
           with_tcp(routed(synack, (VIP, vport), cl, CLIENT_MAC), options=options_with_mss(SYNACK_OPTIONS, 1452)))
    ack = from_client(tcp_v4(CLIENT, 40000, VIP, vport, "A", seq=1001, ack=5001, ip_id=2))
    c.step("handshake ACK gets the option", ack, "forward:0", with_tcp(routed(ack, laddr, (rs, rport), rs_mac), options=[toa]))
    ts = [("NOP", None), ("NOP", None), ("Timestamp", (100001, 200000))]
    data = from_client(tcp_v4(CLIENT, 40000, VIP, vport, "PA", seq=1001, ack=5001, data=b"GET / HTTP/1.0\r\n\r\n", options=ts, ip_id=3))
    c.step("first data gets it after its timestamps", data, "forward:0", with_tcp(routed(data, laddr, (rs, rport), rs_mac), options=ts + [toa]))
    reply = from_server(rs_mac, tcp_v4(rs, rport, LADDR, laddr[1], "PA", seq=5001, ack=1019, data=b"HTTP/1.0 200 OK\r\n\r\n", ip_id=2))
    c.step("server reply, unchanged but for the tuple", reply, "forward:0", routed(reply, (VIP, vport), cl, CLIENT_MAC))
    more = from_client(tcp_v4(CLIENT, 40000, VIP, vport, "A", seq=1019, ack=5020, ip_id=4))
    c.step("later ACK: no option", more, "forward:0", routed(more, laddr, (rs, rport), rs_mac))


@case("toa_v6", "TOA for an IPv6 client: option 254 of 20 bytes (port, IPv6 address: DPVS's layout) on the handshake's ACK; SYN-ACK MSS lowered by 20")
def _(c: Case) -> None:
    vport, rs, rport, rs_mac = TOA_TCP6
    laddr = (LADDR6, lport(0))
    cl = (CLIENT6, 40000)
    toa = (254, struct.pack("!H", 40000) + ipaddress.ip_address(CLIENT6).packed)
    syn = from_client(tcp_v6(CLIENT6, 40000, VIP6, vport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN: the server-side ISN, timestamp option to NOPs", syn, "forward:0", routed(syn, laddr, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp_v6(rs, rport, LADDR6, laddr[1], "SA", seq=5000, ack=1001, options=SYNACK_OPTIONS))
    c.step("server SYN-ACK, MSS 1460 - 20", synack, "forward:0",
           with_tcp(routed(synack, (VIP6, vport), cl, CLIENT_MAC), options=options_with_mss(SYNACK_OPTIONS, 1440)))
    ack = from_client(tcp_v6(CLIENT6, 40000, VIP6, vport, "A", seq=1001, ack=5001))
    c.step("handshake ACK gets the 20-byte option", ack, "forward:0", with_tcp(routed(ack, laddr, (rs, rport), rs_mac), options=[toa]))


def proxy_case(c: Case, svc: tuple, header: bytes, six: bool = False) -> None:
    vport, rs, rport, rs_mac = svc
    client, vip, la = (CLIENT6, VIP6, LADDR6) if six else (CLIENT, VIP, LADDR)
    tcp = tcp_v6 if six else tcp_v4
    ids = (lambda n: {}) if six else (lambda n: {"ip_id": n})
    laddr = (la, lport(0))
    cl = (client, 40000)
    n = len(header)
    syn = from_client(tcp(client, 40000, vip, vport, "S", seq=1000, options=SYN_OPTIONS))
    c.step("client SYN: the server-side ISN, timestamp option to NOPs", syn, "forward:0", routed(syn, laddr, (rs, rport), rs_mac))
    synack = from_server(rs_mac, tcp(rs, rport, la, laddr[1], "SA", seq=5000, ack=1001, options=SYNACK_OPTIONS))
    c.step(f"server SYN-ACK, MSS 1460 - {n}", synack, "forward:0",
           with_tcp(routed(synack, (vip, vport), cl, CLIENT_MAC), options=options_with_mss(SYNACK_OPTIONS, 1460 - n)))
    ack = from_client(tcp(client, 40000, vip, vport, "A", seq=1001, ack=5001, **ids(2)))
    c.step("handshake ACK: no byte of the stream yet, unchanged", ack, "forward:0", routed(ack, laddr, (rs, rport), rs_mac))
    req = b"GET / HTTP/1.1\r\n\r\n"
    data = from_client(tcp(client, 40000, vip, vport, "PA", seq=1001, ack=5001, data=req, **ids(3)))
    first = with_payload(routed(data, laddr, (rs, rport), rs_mac), header + req)
    c.step("first data: the header in front of it", data, "forward:0", first)
    sack = [("NOP", None), ("NOP", None), ("SAck", (1001 + n + 28, 1001 + n + 38))]
    reply = from_server(rs_mac, tcp(rs, rport, la, laddr[1], "PA", seq=5001, ack=1001 + n + len(req), data=b"HTTP/1.1 200 OK\r\n\r\n", options=sack, **ids(2)))
    c.step("server reply: ack and SACK edges back by the header", reply, "forward:0",
           with_tcp(routed(reply, (vip, vport), cl, CLIENT_MAC), ack=1001 + len(req),
                    options=[("NOP", None), ("NOP", None), ("SAck", (1001 + 28, 1001 + 38))]))
    more = from_client(tcp(client, 40000, vip, vport, "PA", seq=1001 + len(req), ack=5020, data=b"more", **ids(4)))
    c.step("client's next bytes: seq forward by the header", more, "forward:0",
           with_tcp(routed(more, laddr, (rs, rport), rs_mac), seq=plus(1001 + len(req) + n, isn_off(laddr, (rs, rport)))))
    again = from_client(tcp(client, 40000, vip, vport, "PA", seq=1001, ack=5020, data=req, **ids(5)))
    c.step("retransmitted first segment: the header again", again, "forward:0", with_payload(routed(again, laddr, (rs, rport), rs_mac), header + req))
    fin = from_client(tcp(client, 40000, vip, vport, "FA", seq=1001 + len(req) + 4, ack=5020, **ids(6)))
    c.step("client FIN: flags kept, seq forward", fin, "forward:0",
           with_tcp(routed(fin, laddr, (rs, rport), rs_mac), seq=plus(1001 + len(req) + 4 + n, isn_off(laddr, (rs, rport)))))


@case("proxy_v1_v4", "PROXY v1: the text line in front of the client's first payload byte, seq forward and ack/SACK back by its length for the rest of the connection, again in front of a retransmitted first segment; SYN-ACK MSS lowered by it")
def _(c: Case) -> None:
    proxy_case(c, PROXY_V1_TCP, b"PROXY TCP4 10.77.0.10 10.77.0.100 40000 86\r\n")


@case("proxy_v2_v4", "PROXY v2 over IPv4 (28 bytes: signature, 0x21, 0x11, length 12, addresses, ports), as proxy_v1_v4")
def _(c: Case) -> None:
    proxy_case(c, PROXY_V2_TCP, proxy_v2(CLIENT, 40000, VIP, 87))


@case("proxy_v2_v6", "PROXY v2 over IPv6 (52 bytes: 0x21 TCP over IPv6, length 36), as proxy_v1_v4")
def _(c: Case) -> None:
    proxy_case(c, PROXY_V2_TCP6, proxy_v2(CLIENT6, 40000, VIP6, 87), six=True)


# ---- output ----------------------------------------------------------------
def pcap(records: list[tuple[int, bytes]]) -> bytes:
    """Classic little-endian pcap, microsecond timestamps, Ethernet."""
    out = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
    for ms, b in records:
        out += struct.pack("<IIII", ms // 1000, ms % 1000 * 1000, len(b), len(b)) + b
    return out


def manifest(c: Case) -> str:
    lines = [
        f"# {GENERATED}",
        f"# {c.name}: {c.doc}",
        f"# {c.name}.pcap holds two frames per step: the input, then the expected frame.",
        f"pipeline worker={c.worker} workers={c.workers} punt={'on' if c.punt else 'off'}",
        "# step <now_ms> <in_port> <verdict> <note>",
    ]
    for s in c.steps:
        lines.append(f"step {s.now_ms} {s.in_port} {s.verdict} {s.note}")
        lines.append(f"#   in   {summary(s.frame)}")
        if s.expected != s.frame:
            lines.append(f"#   out  {summary(s.expected)}")
    return "\n".join(lines) + "\n"


def files() -> dict[str, bytes]:
    names = [c.name for c in CASES]
    assert len(set(names)) == len(names), "case names must be unique"
    out: dict[str, bytes] = {}
    for c in CASES:
        out[f"{c.name}.pcap"] = pcap([r for s in c.steps for r in ((s.now_ms, s.frame), (s.now_ms, s.expected))])
        out[f"{c.name}.txt"] = manifest(c).encode()
    return out


def generated(d: Path) -> set[str]:
    """Files in `d` that this script writes (the README is hand-written)."""
    return {p.name for p in d.iterdir() if p.suffix in (".pcap", ".txt")} if d.is_dir() else set()


def write(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    want = files()
    for stale in generated(d) - want.keys():
        (d / stale).unlink()
    for name, data in want.items():
        (d / name).write_bytes(data)


def check(d: Path) -> list[str]:
    """What differs between `d` and a fresh generation."""
    with tempfile.TemporaryDirectory() as t:
        write(Path(t))
        fresh = Path(t)
        problems = [f"{n}: missing" for n in sorted(generated(fresh) - generated(d))]
        problems += [f"{n}: not generated by gen.py (stale?)" for n in sorted(generated(d) - generated(fresh))]
        problems += [f"{n}: differs" for n in sorted(generated(fresh) & generated(d)) if (fresh / n).read_bytes() != (d / n).read_bytes()]
        return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help=f"directory to write (default {OUT.relative_to(REPO)})")
    ap.add_argument("--check", action="store_true", help="compare instead of writing; exit 1 if anything differs")
    args = ap.parse_args()
    if args.check:
        problems = check(args.out)
        for p in problems:
            print(f"gen.py --check: {args.out / p}", file=sys.stderr)
        return 1 if problems else 0
    write(args.out)
    print(f"{len(CASES)} cases, {sum(len(c.steps) for c in CASES)} steps -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
