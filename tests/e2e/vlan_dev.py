"""A userspace 802.1Q VLAN device for the lab's namespaces.

The lab's kernel is built without 802.1Q (`CONFIG_VLAN_8021Q` is not set:
`ip link add link eth0 name eth0.100 type vlan id 100` answers "Unknown
device type"), so a client or real server cannot have a VLAN device. This
stands in for one: a TAP device NAME (with PARENT's MAC, carrying ADDRESS)
whose frames leave PARENT with an 802.1Q tag for VID, and PARENT's frames
tagged VID arrive on it without the tag. The kernel still parses the tag of
what PARENT receives (into the packet's metadata, which an AF_PACKET socket
reads as PACKET_AUXDATA and tcpdump prints as `vlan VID`), it only has no
device to hand the frame to.

    python3 vlan_dev.py PARENT NAME VID ADDRESS/LEN

prints "ready" once NAME is up. Run it inside the namespace. With 802.1Q in
the kernel the same is:

    ip link add link PARENT name NAME type vlan id VID
    ip addr add ADDRESS/LEN dev NAME; ip link set NAME up
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
IFF_TAP = 0x0002
IFF_NO_PI = 0x1000
ETH_P_ALL = 0x0003
TPID = 0x8100
SOL_PACKET = 263
PACKET_AUXDATA = 8
PACKET_OUTGOING = 4
TP_STATUS_VLAN_VALID = 1 << 4
AUXDATA = struct.Struct("IIIHHHH")  # struct tpacket_auxdata


def open_tap(name: str) -> int:
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TAP | IFF_NO_PI))
    return fd


def tag_of(ancdata) -> int | None:
    for level, kind, data in ancdata:
        if level == SOL_PACKET and kind == PACKET_AUXDATA and len(data) >= AUXDATA.size:
            status, _, _, _, _, tci, _ = AUXDATA.unpack(data[:AUXDATA.size])
            if status & TP_STATUS_VLAN_VALID:
                return tci
    return None


def main() -> None:
    parent, name, vid, address = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    tap = open_tap(name)
    mac = open(f"/sys/class/net/{parent}/address").read().strip()
    for cmd in (["ip", "link", "set", name, "address", mac], ["ip", "addr", "add", address, "dev", name],
                ["ip", "link", "set", name, "up"]):
        subprocess.run(cmd, check=True)
    raw = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    raw.bind((parent, 0))
    raw.setsockopt(SOL_PACKET, PACKET_AUXDATA, 1)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    tag = struct.pack("!HH", TPID, vid)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([tap, raw], [], [])
        if tap in readable:
            frame = os.read(tap, 65535)
            if len(frame) >= 14:
                raw.send(frame[:12] + tag + frame[12:])
        if raw in readable:
            frame, ancdata, _, addr = raw.recvmsg(65535, socket.CMSG_SPACE(AUXDATA.size))
            if addr[2] == PACKET_OUTGOING:
                continue
            tci = tag_of(ancdata)
            if tci is None and frame[12:14] == b"\x81\x00":
                tci = int.from_bytes(frame[14:16], "big")
                frame = frame[:12] + frame[16:]
            if tci is not None and tci & 0x0FFF == vid:
                os.write(tap, frame)


if __name__ == "__main__":
    main()
