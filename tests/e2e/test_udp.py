"""UDP FULLNAT over IPv4 through the real DPDK path: a UDP service on the
VIP (port 53) balanced over UDP echo servers on rs1 and rs2 (port 5353).
Each request comes from a new client port, so round robin alternates; the
servers see the local address; a datagram without checksum (SO_NO_CHECK)
goes through (a wrongly adjusted 0 would be dropped by the server's kernel);
sessions leave the table after the UDP timeout."""

from __future__ import annotations

import pytest

import rvslab
from rvslab import LOCAL_ADDR, VIP

UDP_PORT = 53
RS_PORT = 5353
UDP_TIMEOUT = 3

SERVICE = f"""
[[service]]
vip = "{VIP}:{UDP_PORT}"
protocol = "udp"
scheduler = "rr"
local_addresses = ["{LOCAL_ADDR}"]

[[service.real_server]]
address = "10.77.0.11:{RS_PORT}"

[[service.real_server]]
address = "10.77.0.12:{RS_PORT}"
"""


def rvsd_config(text: str) -> str:
    text = rvslab.set_key(text, "timeouts", "udp", str(UDP_TIMEOUT))
    return rvslab.append_service(text, SERVICE)


@pytest.fixture(scope="module", autouse=True)
def echo_servers(lab):
    servers = [rvslab.UdpEcho(node, RS_PORT) for node in ("rs1", "rs2")]
    yield servers
    for s in servers:
        s.stop()


def udp_service(lab):
    services = [s for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout) if s.protocol == "UDP"]
    assert len(services) == 1, services
    return services[0]


def test_socat_echo_alternates_between_servers_and_sees_the_local_address(lab):
    answers = []
    for i in range(6):
        proc = rvslab.socat_udp(VIP, UDP_PORT, f"hello{i}")
        assert proc.returncode == 0, proc.stderr
        answers.append(proc.stdout.split())
    names = [a[0] for a in answers]
    assert set(names) == {"rs1", "rs2"}, answers
    assert all(names[i] != names[i + 1] for i in range(len(names) - 1)), f"rr did not alternate: {names}"
    assert all(a[1] == LOCAL_ADDR for a in answers), f"servers must see {LOCAL_ADDR}: {answers}"
    assert [a[2] for a in answers] == [f"hello{i}" for i in range(6)], answers


def test_answer_comes_from_the_vip_and_large_datagrams_arrive_intact(lab):
    payload = "x" * 1400
    proc = rvslab.udp_ask(VIP, UDP_PORT, payload)
    assert proc.returncode == 0, proc.stderr
    peer, name, source, data = proc.stdout.split()
    assert peer == f"{VIP}:{UDP_PORT}", proc.stdout
    assert (name in ("rs1", "rs2"), source, data) == (True, LOCAL_ADDR, payload)


def test_datagram_without_checksum_goes_through(lab):
    for i in range(4):
        proc = rvslab.udp_ask(VIP, UDP_PORT, f"nocsum{i}", no_check=True)
        assert proc.returncode == 0, f"no answer to a checksum-0 datagram: {proc.stderr}"
        assert proc.stdout.split()[3] == f"nocsum{i}"


def test_sessions_count_and_expire_after_the_udp_timeout(lab):
    for i in range(4):
        assert rvslab.udp_ask(VIP, UDP_PORT, f"count{i}").returncode == 0
    conns = [c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout) if c.protocol.upper() == "UDP"]
    assert conns, "no UDP session listed"

    def gone():
        left = [c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout) if c.protocol.upper() == "UDP"]
        assert not left, f"{len(left)} UDP sessions left"
        return True

    rvslab.wait_until("UDP sessions to expire", gone, timeout=UDP_TIMEOUT + 10)
    svc = udp_service(lab)
    assert sum(r.active + r.inactive for r in svc.servers) == 0, svc.servers
    # The TCP service next to it is unaffected.
    assert rvslab.client_curl(f"http://{VIP}/").stdout.strip() in ("rs1", "rs2")
