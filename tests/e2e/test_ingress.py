"""Strict ingress checks through the real DPDK path, every forwarding mode:
a scapy corpus of frames the kernel would refuse before IPVS saw them (bad
IPv4 header checksum, bad TCP/UDP checksum, own and martian sources,
source-routed (IPv4 LSRR/SSRR options, IPv6 routing headers of types 0, 2
and 4), impossible TCP flags, lengths that disagree, a malformed option or
routing header) is sent from the client to a FULLNAT, a NAT, a DR and a TUN VIP,
TCP and UDP, IPv4 and IPv6. rvsd must survive it, create no session, and
count every frame under its reason in `rvsadm --stats-dp` (and the
Prometheus metrics); a real connection works afterwards. Overlapping
fragments are in test_fragments.py, whose DPDK device (af_xdp) shows rvs
IPv4 fragments as they are (the lab's af_packet reassembles them first)."""

from __future__ import annotations

import json
import re

import rvslab
from rvslab import VIP

# mode -> (IPv4 VIP, IPv6 VIP); FULLNAT uses the lab's VIP.
MODES = {
    "fullnat": (VIP, "fd77::100"),
    "nat": ("10.77.0.101", "fd77::101"),
    "dr": ("10.77.0.102", "fd77::102"),
    "tun": ("10.77.0.103", "fd77::103"),
}
IFACE_IP = "10.77.0.2"  # config/lab.toml's interface address
REASONS = ["ip_checksum", "l4_checksum", "bad_length", "martian_source", "own_source",
           "source_route", "tcp_flags", "malformed"]


def service(vip: str, forward: str, proto: str, port: int, rport: int) -> str:
    host = f"[{vip}]" if ":" in vip else vip
    laddr = rvslab.LOCAL_ADDR6 if ":" in vip else rvslab.LOCAL_ADDR
    servers = rvslab.REAL_SERVERS6 if ":" in vip else rvslab.REAL_SERVERS
    text = f'\n[[service]]\nvip = "{host}:{port}"\nprotocol = "{proto}"\nscheduler = "rr"\nforward = "{forward}"\n'
    if forward == "fullnat":
        text += f'local_addresses = ["{laddr}"]\n'
    for ip in servers.values():
        text += f'\n[[service.real_server]]\naddress = "{rvslab.endpoint(ip, rport)}"\n'
    return text


def rvsd_config(text: str) -> str:
    extra = ""
    for mode, (v4, v6) in MODES.items():
        if mode != "fullnat":
            extra += service(v4, mode, "tcp", 80, 80)
        extra += service(v4, mode, "udp", 53, 53)
        extra += service(v6, mode, "tcp", 80, 80)
        extra += service(v6, mode, "udp", 53, 53)
    return rvslab.append_service(text, extra)


# Sends the corpus from the client (scapy, layer 2 to the appliance's MAC)
# and prints how many frames it sent per expected reason.
CORPUS = r"""
import json, struct, sys
from scapy.all import (Ether, IP, IPv6, TCP, UDP, Raw, IPOption_LSRR, IPOption_SSRR,
                       IPOption_NOP, IPv6ExtHdrRouting, checksum, sendp, getmacbyip)
modes = json.loads(sys.argv[1])
lb4, laddr4, laddr6, lb6, client4, client6 = sys.argv[2:8]
mac = getmacbyip(lb4)
assert mac, "no ARP answer from the appliance"
eth = Ether(dst=mac)
frames, sent = [], {}

def add(reason, frame):
    frames.append(bytes(frame))
    sent[reason] = sent.get(reason, 0) + 1

for mode, (vip4, vip6) in modes.items():
    def syn(src=client4, flags="S", sport=41000, **kw):
        return eth / IP(src=src, dst=vip4, **kw) / TCP(sport=sport, dport=80, flags=flags, seq=1)
    bad = syn(); bad[IP].chksum = 0x1234; add("ip_checksum", bad)
    bad = eth / IP(src=client4, dst=vip4, chksum=0x4321) / UDP(sport=41000, dport=53) / Raw(b"q")
    add("ip_checksum", bad)
    bad = syn(); bad[TCP].chksum = 0x1234; add("l4_checksum", bad)
    bad = eth / IP(src=client4, dst=vip4) / UDP(sport=41000, dport=53, chksum=0x1234) / Raw(b"query")
    add("l4_checksum", bad)
    for src in (vip4, laddr4, lb4):
        add("own_source", syn(src))
    for src in ("0.0.0.0", "127.0.0.1", "255.255.255.255", "10.77.0.255", "224.0.0.5", "240.0.0.1"):
        add("martian_source", syn(src))
    add("source_route", syn(options=[IPOption_LSRR(routers=["10.77.0.11"])]))
    add("source_route", syn(options=[IPOption_SSRR(routers=["10.77.0.11"])]))
    nops = bytearray(bytes(syn(options=[IPOption_NOP()] * 4)))
    nops[34:38] = b"\x07\x09\x04\x00"; nops[24:26] = b"\0\0"
    nops[24:26] = struct.pack("!H", checksum(bytes(nops[14:38])))
    add("malformed", nops)
    for flags in ("SF", "SR", "", "F", "FPU", "SRAF"):
        add("tcp_flags", syn(flags=flags))
    long = syn(); long[IP].len = 200; add("bad_length", long)
    doff = syn(); doff[TCP].dataofs = 15; add("bad_length", doff)
    add("bad_length", eth / IP(src=client4, dst=vip4) / UDP(sport=41000, dport=53, len=4) / Raw(b"x"))
    add("bad_length", eth / IP(src=client4, dst=vip4) / UDP(sport=41000, dport=53, len=10) / Raw(b"query"))

    def syn6(src=client6, flags="S", **kw):
        return eth / IPv6(src=src, dst=vip6, **kw) / TCP(sport=41000, dport=80, flags=flags, seq=1)
    bad = syn6(); bad[TCP].chksum = 0x1234; add("l4_checksum", bad)
    add("l4_checksum", eth / IPv6(src=client6, dst=vip6) / UDP(sport=41000, dport=53, chksum=0x1234) / Raw(b"q"))
    zero = eth / IPv6(src=client6, dst=vip6) / UDP(sport=41000, dport=53) / Raw(b"q")
    zero = Ether(bytes(zero)); zero[UDP].chksum = 0; add("l4_checksum", zero)
    for src in (vip6, laddr6, lb6):
        add("own_source", syn6(src))
    for src in ("::", "::1", "ff02::1"):
        add("martian_source", syn6(src))
    # Routing headers (RFC 5095's type 0 with and without a segment left,
    # Mobile IPv6's type 2, segment routing's 4): source routes, as the
    # kernel drops them; one too short to name its type: malformed.
    for kind, left in ((0, 1), (0, 0), (2, 1), (4, 1)):
        add("source_route", eth / IPv6(src=client6, dst=vip6) /
            IPv6ExtHdrRouting(type=kind, segleft=left, addresses=["fd77::11"]) /
            TCP(sport=41000, dport=80, flags="S", seq=1))
    add("malformed", eth / IPv6(src=client6, dst=vip6, nh=43, plen=2) / Raw(b"\x06\x00"))
    add("tcp_flags", syn6(flags="SF"))
    add("tcp_flags", syn6(flags=""))
    long = syn6(); long[IPv6].plen = 200; add("bad_length", long)
    add("bad_length", eth / IPv6(src=client6, dst=vip6) / UDP(sport=41000, dport=53, len=10) / Raw(b"query"))

sendp([Ether(f) for f in frames], iface="eth0", verbose=False, inter=0.002)
print(json.dumps(sent))
"""


def counters(lab) -> tuple[dict, int, int]:
    """Drops by reason, sessions created, and sessions now, over all workers."""
    workers = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)
    drops: dict = {}
    for w in workers:
        for k, v in w.drops.items():
            drops[k] = drops.get(k, 0) + v
    return drops, sum(w.created for w in workers), sum(w.sessions for w in workers)


def test_the_corpus_is_dropped_under_its_reasons_in_every_mode(lab):
    before, created_before, _ = counters(lab)
    proc = rvslab.in_ns("client", ["/usr/bin/python3", "-c", CORPUS, json.dumps(MODES), IFACE_IP,
                                   rvslab.LOCAL_ADDR, rvslab.LOCAL_ADDR6, rvslab.IFACE_IP6,
                                   rvslab.CLIENT_IP, rvslab.CLIENT_IP6], timeout=120)
    assert proc.returncode == 0, proc.stderr
    sent = json.loads(proc.stdout.strip().splitlines()[-1])
    assert set(sent) == set(REASONS), sent

    def delta():
        now = counters(lab)[0]
        d = {r: now.get(r, 0) - before.get(r, 0) for r in REASONS}
        assert d == sent, f"counted {d}, sent {sent}"
        return d

    rvslab.wait_until("every corpus frame counted under its reason", delta, timeout=10)
    _, created, sessions = counters(lab)
    assert created == created_before, "a refused frame created a session"
    assert sessions == 0, lab.rvsadm("-L", "-n", "-c").stdout
    assert lab.rvsd.running()
    metrics = rvslab.in_ns("lb", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
    for reason, n in sent.items():
        m = re.search(rf'rvs_worker_drops_total{{reason="{reason}"[^}}]*}} (\d+)', metrics)
        assert m and int(m.group(1)) >= n, (reason, [x for x in metrics.splitlines() if reason in x])
    # The appliance still balances: a real connection through the FULLNAT VIP.
    r = rvslab.client_curl(rvslab.http_url(VIP))
    assert r.returncode == 0 and r.stdout, r.stderr
