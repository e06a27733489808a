"""ICMP errors about balanced connections reach the other side rewritten,
through the real DPDK path: a UDP datagram balanced (FULLNAT) to a real
server port where nothing listens makes that server's kernel answer "port
unreachable" to the local address, quoting laddr:lport → rs:port; rvsd must
turn it into an error from the VIP quoting the client's own datagram, or the
client's kernel would not match it to its socket. The client sees
ECONNREFUSED on its connected socket, as it would talking to the server
directly."""

from __future__ import annotations

import rvslab
from rvslab import VIP

CLOSED_PORT = 7

SERVICE = f"""
[[service]]
vip = "{VIP}:{CLOSED_PORT}"
protocol = "udp"
scheduler = "rr"
forward = "fullnat"
local_addresses = ["{rvslab.LOCAL_ADDR}"]

[[service.real_server]]
address = "10.77.0.11:{CLOSED_PORT}"

[[service.real_server]]
address = "10.77.0.12:{CLOSED_PORT}"
"""

# A connected UDP socket: prints "refused" if the kernel matched an ICMP
# port unreachable to it, "timeout" or the answer otherwise.
ASK_CONNECTED = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((sys.argv[1], int(sys.argv[2])))
s.send(b"anyone?")
try:
    print("answer", s.recv(100))
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""


def rvsd_config(text: str) -> str:
    return rvslab.append_service(text, SERVICE)


def test_port_unreachable_from_a_server_reaches_the_client(lab):
    for attempt in range(4):  # both servers, twice
        proc = rvslab.in_ns("client", ["python3", "-c", ASK_CONNECTED, VIP, str(CLOSED_PORT)], timeout=15)
        assert proc.stdout.strip() == "refused", f"attempt {attempt}: {proc.stdout} {proc.stderr}"
    conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c", check=True).stdout)
    servers = {c.destination.split(":")[0] for c in conns if c.virtual == f"{VIP}:{CLOSED_PORT}"}
    assert servers == {"10.77.0.11", "10.77.0.12"}, conns
