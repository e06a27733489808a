"""Gratuitous ARP and unsolicited neighbour advertisements, seen by tcpdump
in rvs-client.

Whenever the tables rvsd publishes own an address the previous ones did not
(`rvsadm -A`, `rvsadm addr add`, start-up, reload), worker 0 announces it
three times, a second apart, out of the port whose subnet holds it: an ARP
request with sender = target = the address from the port's MAC (IPv4), or
a Neighbor Advertisement to ff02::1 with the override flag and a target
link-layer option (IPv6). A host that already had an entry for the address
(here: the client, as if another box had held the VIP) points it at the
appliance without asking; with `arp_accept` it creates one."""

from __future__ import annotations

import re
import struct
import subprocess
import time
from pathlib import Path

import rvslab

DEV = "dpdk0"
VIP2 = "10.77.0.101"
NEW = "10.77.0.3"
NEW6 = "fd77::3"
BOGUS = "02:de:ad:00:00:01"
CLIENT = "10.77.0.10"


def port_mac(lab) -> str:
    m = re.search(r"link/ether ([0-9a-f:]{17})", lab.rvsadm("link", "show", "dev", DEV).stdout)
    assert m, "no MAC in link show"
    return m.group(1)


def mac(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


class Capture:
    """tcpdump on eth0 of a lab namespace, writing pcap to a file we own
    (`-w -`, so tcpdump's privilege drop and profile do not matter)."""

    def __init__(self, workdir: Path, node: str, *filt: str):
        self.path = workdir / f"capture-{node}-{time.monotonic_ns()}.pcap"
        self.err = self.path.with_suffix(".err")
        with open(self.path, "wb") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", f"rvs-{node}", "tcpdump", "-i", "eth0", "-n", "-U", "-w", "-", *filt],
                stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        rvslab.wait_until("tcpdump to listen", lambda: "listening on" in self.err.read_text()
                          or self.proc.poll() is not None, timeout=10)
        assert self.proc.poll() is None, f"tcpdump exited: {self.err.read_text()}"

    def frames(self) -> list[bytes]:
        data = self.path.read_bytes()
        if len(data) < 24:
            return []
        endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
        out, off = [], 24
        while off + 16 <= len(data):
            _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
            if off + 16 + incl > len(data):
                break  # a record still being written
            out.append(data[off + 16:off + 16 + incl])
            off += 16 + incl
        return out

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def arps(frames: list[bytes]) -> list[dict]:
    """The ARP frames, decoded."""
    out = []
    for f in frames:
        if len(f) < 42 or f[12:14] != b"\x08\x06":
            continue
        op, = struct.unpack("!H", f[20:22])
        out.append({"dst": mac(f[0:6]), "src": mac(f[6:12]), "op": op, "sha": mac(f[22:28]),
                    "spa": ".".join(map(str, f[28:32])), "tha": mac(f[32:38]), "tpa": ".".join(map(str, f[38:42]))})
    return out


def gratuitous(frames: list[bytes], ip: str) -> list[dict]:
    return [a for a in arps(frames) if a["op"] == 1 and a["spa"] == ip and a["tpa"] == ip]


def client_neigh(ip: str) -> str:
    return rvslab.in_ns("client", ["ip", "neigh", "show", ip, "dev", "eth0"], check=True).stdout.strip()


def check_garps(frames: list[bytes], ip: str, lb_mac: str) -> None:
    g = gratuitous(frames, ip)
    assert len(g) >= 3, f"{len(g)} gratuitous ARPs for {ip}: {arps(frames)}"
    for a in g:
        assert (a["dst"], a["src"], a["sha"], a["tha"]) == ("ff:ff:ff:ff:ff:ff", lb_mac, lb_mac, "00:00:00:00:00:00"), a
    asked = [a for a in arps(frames) if a["op"] == 1 and a["tpa"] == ip and a["spa"] == CLIENT]
    assert not asked, f"the client asked for {ip}: {asked}"


def test_a_new_vip_is_announced_and_the_client_follows(lab):
    lb_mac = port_mac(lab)
    # As if another box had held the VIP: the client has an entry for it,
    # pointing elsewhere.
    rvslab.in_ns("client", ["ip", "neigh", "replace", VIP2, "lladdr", BOGUS, "dev", "eth0", "nud", "stale"], check=True)
    cap = Capture(lab.workdir, "client", "arp")
    svc = f"{VIP2}:80"
    try:
        lab.rvsadm("-A", "-t", svc, "-s", "rr")
        lab.rvsadm("-P", "-t", svc, "-z", "10.77.0.200")
        lab.rvsadm("-a", "-t", svc, "-r", "10.77.0.11:80", "--fullnat")
        rvslab.wait_until(f"three gratuitous ARPs for {VIP2}", lambda: len(gratuitous(cap.frames(), VIP2)) >= 3, timeout=15)
        # The client took the appliance's MAC from them, without asking.
        entry = client_neigh(VIP2)
        assert lb_mac in entry and BOGUS not in entry, entry
        check_garps(cap.frames(), VIP2, lb_mac)
        assert rvslab.client_curl(f"http://{VIP2}/").stdout.strip() == "rs1"
        assert f"rvsd: announcing {VIP2}" in lab.rvsd.log_text()
    finally:
        cap.stop()
        lab.rvsadm("-D", "-t", svc, check=False)
        rvslab.in_ns("client", ["ip", "neigh", "del", VIP2, "dev", "eth0"])


def test_an_added_address_is_announced_and_learned_with_arp_accept(lab):
    lb_mac = port_mac(lab)
    key = "net.ipv4.conf.eth0.arp_accept"
    before = rvslab.in_ns("client", ["sysctl", "-n", key], check=True).stdout.strip()
    rvslab.in_ns("client", ["sysctl", "-qw", f"{key}=1"], check=True)
    rvslab.in_ns("client", ["ip", "neigh", "flush", "to", NEW], check=True)
    assert lb_mac not in client_neigh(NEW)
    cap = Capture(lab.workdir, "client", "arp")
    try:
        lab.rvsadm("addr", "add", f"{NEW}/24", "dev", DEV)
        rvslab.wait_until(f"three gratuitous ARPs for {NEW}", lambda: len(gratuitous(cap.frames(), NEW)) >= 3, timeout=15)
        # arp_accept: the client made an entry from the announcement alone.
        entry = client_neigh(NEW)
        assert lb_mac in entry, entry
        check_garps(cap.frames(), NEW, lb_mac)
    finally:
        cap.stop()
        lab.rvsadm("addr", "del", f"{NEW}/24", "dev", DEV, check=False)
        rvslab.in_ns("client", ["sysctl", "-qw", f"{key}={before}"])
        rvslab.in_ns("client", ["ip", "neigh", "flush", "to", NEW])


def unsolicited_nas(frames: list[bytes], target: str) -> list[dict]:
    import ipaddress
    want = ipaddress.IPv6Address(target).packed
    out = []
    for f in frames:
        if len(f) < 86 or f[12:14] != b"\x86\xdd" or f[20] != 58 or f[54] != 136:
            continue
        if f[62:78] != want:
            continue
        out.append({"dst": mac(f[0:6]), "src": mac(f[6:12]), "hlim": f[21],
                    "ip_src": str(ipaddress.IPv6Address(f[22:38])), "ip_dst": str(ipaddress.IPv6Address(f[38:54])),
                    "flags": f[58], "opt": (f[78], f[79], mac(f[80:86]))})
    return out


def test_an_added_ipv6_address_is_announced_by_unsolicited_na(lab):
    lb_mac = port_mac(lab)
    has6 = rvslab.in_ns("client", ["ip", "-6", "addr", "show", "dev", "eth0"], check=True).stdout
    assert "fd77::10" in has6, f"the lab gives the client no IPv6 address: {has6}"
    rvslab.in_ns("client", ["ip", "-6", "neigh", "replace", NEW6, "lladdr", BOGUS, "dev", "eth0", "nud", "stale"], check=True)
    cap = Capture(lab.workdir, "client", "icmp6")
    try:
        lab.rvsadm("addr", "add", f"{NEW6}/64", "dev", DEV)
        rvslab.wait_until(f"three unsolicited NAs for {NEW6}", lambda: len(unsolicited_nas(cap.frames(), NEW6)) >= 3, timeout=15)
        for na in unsolicited_nas(cap.frames(), NEW6):
            assert na == {"dst": "33:33:00:00:00:01", "src": lb_mac, "hlim": 255, "ip_src": NEW6, "ip_dst": "ff02::1",
                          "flags": 0x20, "opt": (2, 1, lb_mac)}, na
        entry = rvslab.in_ns("client", ["ip", "-6", "neigh", "show", NEW6, "dev", "eth0"], check=True).stdout
        assert lb_mac in entry and BOGUS not in entry, entry
    finally:
        cap.stop()
        lab.rvsadm("addr", "del", f"{NEW6}/64", "dev", DEV, check=False)
        rvslab.in_ns("client", ["ip", "-6", "neigh", "del", NEW6, "dev", "eth0"])


def test_start_up_announces_every_configured_address(lab):
    """A restarted rvsd (a standby taking over) announces its VIP, local
    address and interface address."""
    lb_mac = port_mac(lab)
    rvslab.in_ns("client", ["ip", "neigh", "replace", "10.77.0.100", "lladdr", BOGUS, "dev", "eth0", "nud", "stale"], check=True)
    lab.rvsd.stop(grace=5)
    cap = Capture(lab.workdir, "client", "arp")
    try:
        lab.rvsd.start()
        lab.rvsd.wait_ready(timeout=30)
        for ip in ["10.77.0.100", "10.77.0.200", "10.77.0.2"]:
            rvslab.wait_until(f"three gratuitous ARPs for {ip}", lambda: len(gratuitous(cap.frames(), ip)) >= 3, timeout=15)
            check_garps(cap.frames(), ip, lb_mac)
        entry = client_neigh("10.77.0.100")
        assert lb_mac in entry and BOGUS not in entry, entry
    finally:
        cap.stop()
