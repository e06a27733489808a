"""A userspace IPIP decapsulator for TUN-mode real servers in the lab.

The lab's kernel has no `ipip` module (no `tunl0`), so a real server cannot
decapsulate what rvs sends it in TUN mode. This stands in for `tunl0`: it
reads IPv4-in-IPv4 packets (protocol 4) from a raw socket, strips the outer
header and writes the inner packet into a TUN device that carries the VIP,
so the server's kernel receives the client's packet as sent and answers the
client directly, as it would with `tunl0`.

    python3 ipip_decap.py DEVICE VIP

prints "ready" once the device is up with VIP/32 (VIP/128) on it. An IPv6 VIP
means IPv6-in-IPv6 (next header 41): an IPv6 raw socket hands over the
inner packet directly (the kernel strips the outer header). Run it inside the
real server's namespace. A real Linux server needs instead:

    modprobe ipip; ip addr add VIP/32 dev tunl0; ip link set tunl0 up
    sysctl -w net.ipv4.conf.tunl0.rp_filter=0 net.ipv4.conf.all.rp_filter=0
    sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2
"""

from __future__ import annotations

import fcntl
import os
import select
import socket
import struct
import subprocess
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
IPPROTO_IPIP = 4
IPPROTO_IPV6 = 41


def open_tun(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main() -> None:
    device, vip = sys.argv[1], sys.argv[2]
    v6 = ":" in vip
    tun = open_tun(device)
    cmds = [["ip", "link", "set", device, "up"]]
    if v6:
        cmds.append(["ip", "-6", "addr", "add", f"{vip}/128", "dev", device, "nodad"])
    else:
        cmds += [["ip", "addr", "add", f"{vip}/32", "dev", device],
                 ["sysctl", "-qw", f"net.ipv4.conf.{device}.rp_filter=0", "net.ipv4.conf.all.rp_filter=0"]]
    for cmd in cmds:
        subprocess.run(cmd, check=True)
    if v6:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, IPPROTO_IPV6)
    else:
        raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, IPPROTO_IPIP)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    print("ready", flush=True)
    while True:
        select.select([raw], [], [])
        packet = raw.recv(65535)
        if v6:
            inner = packet  # IPv6 raw sockets deliver what follows the outer header
            if len(inner) >= 40 and inner[0] >> 4 == 6:
                os.write(tun, inner)
            continue
        ihl = (packet[0] & 0x0F) * 4
        inner = packet[ihl:]
        if len(inner) >= 20 and inner[0] >> 4 == 4:
            os.write(tun, inner)


if __name__ == "__main__":
    main()
