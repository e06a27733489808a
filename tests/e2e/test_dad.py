"""Duplicate address detection for the appliance's own IPv6 addresses,
against the real kernels of the lab's hosts.

An address added with `rvsadm addr add` is tentative first: worker 0 sends
one probe (a neighbour solicitation from `::`), and only a second later,
nobody having claimed it, is it answered for and announced. A host that
already holds it answers the probe: the address is then "dadfailed" and
never used. An address in use is defended: a host's own DAD probe for it
gets an advertisement to all nodes, and that host's kernel gives it up."""

from __future__ import annotations

import ipaddress
import struct
import time

import rvslab
from test_garp import Capture, port_mac

DEV = "dpdk0"
FRESH = "fd77::5"
TAKEN = "fd77::6"
IFACE_IP6 = "fd77::2"
NS, NA = 135, 136


def nd_frames(cap: Capture) -> list[dict]:
    """Neighbour solicitations and advertisements in the capture, decoded,
    with their pcap timestamps."""
    data = cap.path.read_bytes()
    out: list[dict] = []
    if len(data) < 24:
        return out
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    off = 24
    while off + 16 <= len(data):
        sec, usec, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
        f = data[off + 16:off + 16 + incl]
        off += 16 + incl
        if len(f) < 78 or f[12:14] != b"\x86\xdd" or f[20] != 58 or f[54] not in (NS, NA):
            continue
        out.append({
            "t": sec + usec / 1e6,
            "eth_src": ":".join(f"{b:02x}" for b in f[6:12]),
            "src": str(ipaddress.IPv6Address(f[22:38])),
            "dst": str(ipaddress.IPv6Address(f[38:54])),
            "type": f[54],
            "flags": f[58],
            "target": str(ipaddress.IPv6Address(f[62:78])),
            "options": f[78:],
        })
    return out


def addr_line(lab, ip: str) -> str:
    for line in lab.rvsadm("addr", "show", "dev", DEV).stdout.splitlines():
        if f"inet6 {ip}/" in line:
            return line.strip()
    return ""


def test_a_new_address_is_probed_then_announced_a_second_later(lab):
    mac = port_mac(lab)
    cap = Capture(lab.workdir, "client", "icmp6")
    try:
        lab.rvsadm("addr", "add", f"{FRESH}/64", "dev", DEV)
        rvslab.wait_until("the address in use", lambda: addr_line(lab, FRESH) == f"inet6 {FRESH}/64 scope global", timeout=10)
        ours = lambda: [f for f in nd_frames(cap) if f["eth_src"] == mac and f["target"] == FRESH]
        frames = rvslab.wait_until("the unsolicited advertisement", lambda: [f for f in ours() if f["type"] == NA] and ours(), timeout=10)
    finally:
        cap.stop()
    probe = frames[0]
    # RFC 4862 §5.4.2: from ::, to the solicited-node group, no link-layer option.
    assert (probe["type"], probe["src"], probe["dst"], probe["options"]) == (NS, "::", "ff02::1:ff00:5", b""), frames
    na = next(f for f in frames if f["type"] == NA)
    assert na["dst"] == "ff02::1" and na["t"] - probe["t"] >= 0.9, f"announced only after the probe's second: {frames}"
    assert not [f for f in frames if f["type"] == NS and f["t"] > probe["t"]], "one probe"
    # In use: the kernel side answers for it through the DPDK port.
    rvslab.in_ns("client", ["ping", "-6", "-c", "1", "-W", "2", FRESH], check=True)
    lab.rvsadm("addr", "del", f"{FRESH}/64", "dev", DEV)


def test_an_address_another_host_holds_is_found_duplicate_and_never_used(lab):
    mac = port_mac(lab)
    rvslab.in_ns("client", ["ip", "-6", "addr", "add", f"{TAKEN}/64", "dev", "eth0", "nodad"], check=True)
    cap = Capture(lab.workdir, "client", "icmp6")
    try:
        lab.rvsadm("addr", "add", f"{TAKEN}/64", "dev", DEV)
        rvslab.wait_until("dadfailed", lambda: addr_line(lab, TAKEN) == f"inet6 {TAKEN}/64 scope global dadfailed tentative", timeout=10)
        assert f"IPv6 duplicate address {TAKEN} detected" in lab.rvsd.log_text()
        # Still failed after the time announcements would have taken; never
        # announced, never answered: rs1 finds the client's MAC for it.
        rvslab.in_ns("rs1", ["ping", "-6", "-c", "1", "-W", "2", TAKEN], check=True)
        neigh = rvslab.in_ns("rs1", ["ip", "-6", "neigh", "show", TAKEN], check=True).stdout
        client_mac = rvslab.in_ns("client", ["cat", "/sys/class/net/eth0/address"], check=True).stdout.strip()
        assert f"lladdr {client_mac}" in neigh, neigh
        # An absence takes watching: three announcements, a second apart,
        # would have gone by now had the address been used.
        time.sleep(3.5)
        assert addr_line(lab, TAKEN).endswith("dadfailed tentative")
    finally:
        cap.stop()
        lab.rvsadm("addr", "del", f"{TAKEN}/64", "dev", DEV, check=False)
        rvslab.in_ns("client", ["ip", "-6", "addr", "del", f"{TAKEN}/64", "dev", "eth0"])
    frames = nd_frames(cap)
    probes = [f for f in frames if f["eth_src"] == mac and f["type"] == NS and f["src"] == "::" and f["target"] == TAKEN]
    assert len(probes) == 1, frames
    claimed = [f for f in frames if f["eth_src"] == mac and f["type"] == NA and f["target"] == TAKEN]
    assert not claimed, f"the appliance advertised an address it does not hold: {claimed}"


def test_an_address_in_use_is_defended_against_a_hosts_probe(lab):
    # The client's kernel runs DAD for the appliance's own interface address.
    rvslab.in_ns("client", ["sysctl", "-qw", "net.ipv6.conf.eth0.accept_dad=1"], check=True)
    try:
        rvslab.in_ns("client", ["ip", "-6", "addr", "add", f"{IFACE_IP6}/64", "dev", "eth0"], check=True)
        shown = rvslab.wait_until(
            "the client's kernel to give the address up",
            lambda: (o := rvslab.in_ns("client", ["ip", "-6", "addr", "show", "dev", "eth0"], check=True).stdout) and "dadfailed" in o and o,
            timeout=10)
        assert f"inet6 {IFACE_IP6}/64 scope global dadfailed tentative" in shown, shown
    finally:
        rvslab.in_ns("client", ["ip", "-6", "addr", "del", f"{IFACE_IP6}/64", "dev", "eth0"])
    # Still the appliance's, and in use: the client reaches it.
    assert addr_line(lab, IFACE_IP6) == f"inet6 {IFACE_IP6}/64 scope global"
    rvslab.in_ns("client", ["ping", "-6", "-c", "1", "-W", "2", IFACE_IP6], check=True)
