"""FULLNAT reusing a local port toward a server still in TIME_WAIT.

A local address lends its ports in turn, so under load a (laddr, lport, rs,
rport) tuple comes back within seconds, while a server that closed first
holds the old connection in TIME_WAIT for 60 s. Each new connection comes
from another client socket: had rvs passed the client's ISN and timestamp
on, the server's TIME_WAIT would answer the new SYN with an old ACK, the
client would reset, and its SYN go again a second later (a one-second
connect stall). rvs gives every FULLNAT connection its own server-side ISN
(a keyed hash of the tuple plus a clock) and takes the SYN's timestamp out
(dataplane/src/xmit/isn.rs), so the server's TIME_WAIT accepts the SYN.

Here the local port range is 8 ports, the servers' http.server (HTTP/1.0)
closes first, and a real client makes 24 connections one after another,
each port reused to rs1 three times within ~12 s: every connection must
connect at once and get its answer, no SYN retransmitted (the client's
TcpExt TCPSynRetrans), no port ever exhausted.
"""

from __future__ import annotations

import json

import rvslab

PORTS = 8
CONNS = 24
VPORT = 81


def rvsd_config(text: str) -> str:
    text = rvslab.set_key(text, "dataplane", "local_port_range", f'"3000-{3000 + PORTS - 1}"')
    # One server, so every reuse of a local port is a reuse of the tuple.
    return rvslab.append_service(text, f"""
[[service]]
vip = "{rvslab.VIP}:{VPORT}"
protocol = "tcp"
scheduler = "rr"
forward = "fullnat"
local_addresses = ["{rvslab.LOCAL_ADDR}"]

[[service.real_server]]
address = "{rvslab.REAL_SERVERS['rs1']}:80"
""")


# Sequential HTTP/1.0 requests, one connection each, paced so that the
# previous sessions have left rvs's table (TIME_WAIT 2 s in the tests)
# before their ports are lent again; prints each connect's duration.
SEQUENTIAL = r"""
import json, socket, sys, time
n, host, port, pace = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
out = []
for i in range(n):
    start = time.monotonic()
    s = socket.create_connection((host, port), timeout=5)
    connected = time.monotonic() - start
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    body = b""
    while chunk := s.recv(4096):
        body += chunk
    s.close()
    out.append({"connect_s": round(connected, 3), "status": body.split(b"\r\n", 1)[0].decode(errors="replace")})
    time.sleep(pace)
print(json.dumps(out))
"""


def syn_retrans(node: str) -> int:
    """TcpExt TCPSynRetrans of rvs-NODE's network namespace."""
    text = rvslab.in_ns(node, ["cat", "/proc/net/netstat"], check=True).stdout
    lines = [line.split() for line in text.splitlines() if line.startswith("TcpExt:")]
    names, values = lines[0], lines[1]
    return int(values[names.index("TCPSynRetrans")])


def test_a_reused_local_port_connects_at_once_while_the_server_holds_time_wait(lab):
    before = syn_retrans("client")
    stats0 = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)[0]
    proc = rvslab.in_ns("client", ["python3", "-c", SEQUENTIAL, str(CONNS), rvslab.VIP, str(VPORT), "0.5"],
                        timeout=120)
    assert proc.returncode == 0, proc.stderr
    conns = json.loads(proc.stdout)
    retrans = syn_retrans("client") - before
    stats = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)[0]
    assert stats.drops.get("port_exhausted", 0) == stats0.drops.get("port_exhausted", 0), stats.drops
    assert all(c["status"].startswith("HTTP/1.0 200") for c in conns), conns
    slow = [(i, c["connect_s"]) for i, c in enumerate(conns) if c["connect_s"] >= 0.5]
    assert not slow, f"connections that stalled (connect >= 0.5 s): {slow}; {retrans} SYNs retransmitted"
    assert retrans == 0, f"{retrans} SYNs retransmitted by the client"
    # One session per connection: no SYN opened a second one.
    assert stats.created - stats0.created == CONNS
    # The server did hold every tuple in TIME_WAIT when it was reused (it
    # still holds the last connection of each): the situation under test.
    tw = rvslab.in_ns("rs1", ["ss", "-Htan", "state", "time-wait", "dst", rvslab.LOCAL_ADDR], check=True).stdout
    held = {line.split()[-1] for line in tw.splitlines() if line.strip()}
    assert len(held) == PORTS, f"rs1 holds TIME_WAIT for {sorted(held)}, expected all {PORTS} local ports"
