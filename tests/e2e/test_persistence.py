"""Persistence (`ipvsadm -p`) on the real DPDK path with two workers: one
client's connections all go to one real server, although the device spreads
its flows over both workers' queues.

Config (one rvsd for the module): two workers sharing CPU 1, `scheduler =
"rr"`, `persistent = 300` (set in the file; `rvsadm -E -p` is the lead's to
wire). Without persistence the same client alternates between rs1 and rs2
(test_dataplane.py::test_round_robin_alternates).

UDP (issue #5, "UDP persistence behaves as in ipvsadm"): VIP:53 with
`persistent = 300` and VIP:54 without, both over UDP echo servers on rs1 and
rs2 (:5353). Each datagram comes from a new source port, so each is a new
flow: with persistence they all reach one server, without they spread.
"""

from __future__ import annotations

import pytest

import rvslab
from rvslab import LOCAL_ADDR, VIP
from test_schedulers import sequential_requests

ECHO_PORT = 5353


def udp_service(port: int, persistent: str) -> str:
    return f"""
[[service]]
vip = "{VIP}:{port}"
protocol = "udp"
scheduler = "rr"
local_addresses = ["{LOCAL_ADDR}"]
{persistent}
[[service.real_server]]
address = "10.77.0.11:{ECHO_PORT}"

[[service.real_server]]
address = "10.77.0.12:{ECHO_PORT}"
"""


def rvsd_config(text: str) -> str:
    text = rvslab.set_key(text, "dataplane", "worker_lcores", "[1, 2]")
    text = rvslab.set_key(text, "dpdk", "lcore_map", '"0@0,1@1,2@1"')
    text = rvslab.set_key(text, "service", "scheduler", '"rr"')
    text = rvslab.set_key(text, "service", "persistent", "300")
    text = rvslab.append_service(text, udp_service(53, "persistent = 300\n"))
    return rvslab.append_service(text, udp_service(54, ""))


@pytest.fixture(scope="module")
def echo_servers(lab):
    servers = [rvslab.UdpEcho(node, ECHO_PORT) for node in ("rs1", "rs2")]
    yield servers
    for s in servers:
        s.stop()


def stats(lab):
    # Per-worker lines only (newer rvsadm also prints per-port lines).
    out = lab.rvsadm("--stats-dp").stdout
    return rvslab.parse_worker_stats("\n".join(l for l in out.splitlines() if not l.startswith("port ")))


def test_one_client_stays_on_one_server_over_50_connections(lab):
    before = stats(lab)
    result = sequential_requests(50)
    assert not result["errors"], result["errors"][:10]
    bodies = result["bodies"]
    assert len(bodies) == 50 and len(set(bodies)) == 1, f"client moved between servers: {bodies}"
    assert bodies[0] in ("rs1", "rs2")
    after = stats(lab)
    created = [a.created - b.created for a, b in zip(after, before)]
    # Every connection of the client is owned by one worker (the one its
    # address hashes to), whichever queue its packets arrived on.
    assert sorted(created) == [0, 50], f"sessions created per worker: {created}"
    for w in after:
        assert w.drops.get("no_real_server", 0) == 0, w.drops


def test_persistence_outlives_the_connections(lab):
    first = sequential_requests(5)["bodies"]
    # All those connections are closed (and leave the table within seconds);
    # the template keeps the client on its server for 300 s, listed as the
    # kernel lists it (state NONE, client port 0).
    def only_the_template():
        conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
        assert [(c.state, c.source, c.virtual) for c in conns] == [("NONE", f"{rvslab.CLIENT_IP}:0", f"{VIP}:80")], conns
        return True
    rvslab.wait_until("closed connections to leave the table", only_the_template, timeout=20)
    again = sequential_requests(10)["bodies"]
    assert set(again) == set(first) and len(set(first)) == 1, (first, again)


def udp_names(port: int, n: int) -> list[str]:
    """The answering server of N datagrams, each from a new source port."""
    names = []
    for i in range(n):
        proc = rvslab.socat_udp(VIP, port, f"p{i}")
        assert proc.returncode == 0 and proc.stdout, proc
        names.append(proc.stdout.split()[0])
    return names


def test_udp_persistence_keeps_one_client_on_one_server(lab, echo_servers):
    before = stats(lab)
    names = udp_names(53, 12)
    assert len(set(names)) == 1 and names[0] in ("rs1", "rs2"), f"persistent UDP moved between servers: {names}"
    after = stats(lab)
    created = [a.created - b.created for a, b in zip(after, before)]
    # Every flow of the client is owned by the worker its address hashes to.
    assert sorted(created) == [0, 12], f"UDP sessions created per worker: {created}"
    templates = lab.rvsadm("-L", "-n", "--persistent-conn").stdout
    assert f"UDP  {VIP}:53" in templates, templates
    # Without -p the same client's flows spread over both servers (per-worker
    # round robin: each worker alternates on its own).
    spread = udp_names(54, 12)
    assert set(spread) == {"rs1", "rs2"}, spread
