"""One-packet scheduling (ipvsadm -o) on a UDP service, through the real
DPDK path: datagrams from one client socket (one source port) are each
scheduled on their own, so round robin alternates between the servers, and
every answer still comes back; without -o they all follow the first
datagram's session. -o shows as `ops` in the listing and `-o` in -S, and a
TCP service refuses it."""

from __future__ import annotations

import pytest

import rvslab
from rvslab import VIP

PORT = 5353

SERVICE = f"""
[[service]]
vip = "{VIP}:{PORT}"
protocol = "udp"
scheduler = "rr"
forward = "fullnat"
local_addresses = ["{rvslab.LOCAL_ADDR}"]
ops = true

[[service.real_server]]
address = "10.77.0.11:{PORT}"

[[service.real_server]]
address = "10.77.0.12:{PORT}"
"""

# N datagrams from one socket (one source port); prints each answer's first word.
ASK_MANY = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
for i in range(int(sys.argv[3])):
    s.sendto(f"q{i}".encode(), (sys.argv[1], int(sys.argv[2])))
    data, _ = s.recvfrom(1000)
    print(data.decode().split()[0])
"""


def rvsd_config(text: str) -> str:
    return rvslab.append_service(text, SERVICE)


def ask(n: int) -> list[str]:
    proc = rvslab.in_ns("client", ["python3", "-c", ASK_MANY, VIP, str(PORT), str(n)], timeout=30)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.fixture(scope="module", autouse=True)
def echo_servers(lab):
    servers = [rvslab.UdpEcho(n, PORT) for n in ("rs1", "rs2")]
    yield
    for s in servers:
        s.stop()


def test_every_datagram_is_scheduled_on_its_own(lab):
    names = ask(6)
    assert names in (["rs1", "rs2"] * 3, ["rs2", "rs1"] * 3), names
    # Each answer ended its session: nothing lingers for the UDP timeout.
    conns = [c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c", check=True).stdout) if c.virtual == f"{VIP}:{PORT}"]
    assert conns == [], conns


def test_listing_and_save_show_ops_and_edit_turns_it_off(lab):
    listing = lab.rvsadm("-L", "-n", check=True).stdout
    assert f"UDP  {VIP}:{PORT} rr ops\n" in listing, listing
    saved = lab.rvsadm("-S", "-n", check=True).stdout
    assert f"-A -u {VIP}:{PORT} -s rr -o\n" in saved, saved
    lab.rvsadm("-E", "-u", f"{VIP}:{PORT}", "-s", "rr", check=True)
    try:
        assert f"UDP  {VIP}:{PORT} rr\n" in lab.rvsadm("-L", "-n", check=True).stdout
        names = ask(4)
        assert len(set(names)) == 1, f"without -o one socket stays on one server: {names}"
    finally:
        lab.rvsadm("-E", "-u", f"{VIP}:{PORT}", "-s", "rr", "-o", check=True)
    assert len(set(ask(2))) == 2


def test_tcp_services_refuse_ops(lab):
    proc = lab.rvsadm("-E", "-t", f"{VIP}:80", "-s", "rr", "-o", check=False)
    assert proc.returncode != 0 and "only for UDP" in proc.stderr, proc
    assert f"TCP  {VIP}:80 rr\n" in lab.rvsadm("-L", "-n", check=True).stdout
