"""NAT (masquerading, ipvsadm -m) for TCP and UDP over IPv4, with two
workers, through the real DPDK path.

The lab is one L2 segment and rvsd has one port, so the NAT topology of
seed 000 §三 (clients on one side, real servers behind the director) is
made with a second subnet on the same wire: the client also has
10.88.0.10/24 and talks to the VIP from it; the real servers' default route
goes through the appliance's interface address 10.77.0.2. Their replies to
10.88.0.10 (not on their link) thus reach rvsd, which gives them the VIP back
as source. The servers see the client's own address. Routes and addresses
are restored at the end of the module.

Two workers: a reply (rs → client) names no local port, so it reaches its
session's owner by the inverse key (client → VIP), not by `lport % workers`;
replies that the af_packet fanout puts on the other worker cross the ring."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

import rvslab
from rvslab import RUN, VIP

CLIENT_NAT = "10.88.0.10"
APPLIANCE = "10.77.0.2"
UDP_PORT = 53
RS_UDP_PORT = 5353

UDP_SERVICE = f"""
[[service]]
vip = "{VIP}:{UDP_PORT}"
protocol = "udp"
scheduler = "rr"
forward = "nat"

[[service.real_server]]
address = "10.77.0.11:{RS_UDP_PORT}"

[[service.real_server]]
address = "10.77.0.12:{RS_UDP_PORT}"
"""


def rvsd_config(text: str) -> str:
    text = text.replace('forward = "fullnat"', 'forward = "nat"', 1)
    text = rvslab.set_key(text, "dataplane", "worker_lcores", "[1, 2]")
    text = rvslab.set_key(text, "dpdk", "lcore_map", '"0@0,1@1,2@1"')
    return rvslab.append_service(text, UDP_SERVICE)


@pytest.fixture(scope="module", autouse=True)
def nat_topology(lab):
    """The client's second address, the servers' gateway, UDP echo servers."""
    saved = {n: rvslab.in_ns(n, ["ip", "route", "show", "default"], check=True).stdout.strip() for n in ("rs1", "rs2")}
    rvslab.in_ns("client", ["ip", "addr", "add", f"{CLIENT_NAT}/24", "dev", "eth0"], check=True)
    for n in ("rs1", "rs2"):
        rvslab.in_ns(n, ["ip", "route", "replace", "default", "via", APPLIANCE], check=True)
    echoes = [rvslab.UdpEcho(n, RS_UDP_PORT) for n in ("rs1", "rs2")]
    try:
        yield
    finally:
        for e in echoes:
            e.stop()
        for n, route in saved.items():
            rvslab.in_ns(n, ["ip", "route", "del", "default"])
            if route:
                rvslab.in_ns(n, ["ip", "route", "add", *route.split()], check=True)
        rvslab.in_ns("client", ["ip", "addr", "del", f"{CLIENT_NAT}/24", "dev", "eth0"])


def curl_nat(path: str = "/", *extra: str, max_time: float = 5):
    return rvslab.client_curl(f"http://{VIP}{path}", "--interface", CLIENT_NAT, *extra, max_time=max_time)


def stats(lab):
    return rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)


def test_listing_shows_masq(lab):
    tcp = [s for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout) if s.protocol == "TCP"][0]
    assert [r.forward for r in tcp.servers] == ["Masq", "Masq"], tcp.servers


def test_twenty_requests_alternate_and_servers_see_the_client(lab):
    before = {n: len(rvslab.access_sources(n)) for n in ("rs1", "rs2")}
    bodies = []
    for i in range(20):
        proc = curl_nat(f"/?nat={i}")
        assert proc.returncode == 0, f"request {i}: curl exit {proc.returncode}"
        bodies.append(proc.stdout.strip())
    # Round robin runs per worker (two here): each alternates, so the
    # counts differ by at most one per worker.
    assert abs(bodies.count("rs1") - bodies.count("rs2")) <= 2 and set(bodies) == {"rs1", "rs2"}, bodies

    def logged():
        new = {n: rvslab.access_sources(n)[before[n]:] for n in ("rs1", "rs2")}
        assert sum(len(v) for v in new.values()) >= 20, new
        return new

    new = rvslab.wait_until("the requests in the access logs", logged, timeout=10)
    for n, sources in new.items():
        assert sources and set(sources) == {CLIENT_NAT}, f"{n} must see the client itself: {sources}"


def test_ten_megabytes_arrive_intact(lab):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    target = lab.workdir / "nat-big.bin"
    proc = curl_nat("/big.bin", "-o", str(target), max_time=120)
    assert proc.returncode == 0, f"curl exit {proc.returncode}: {proc.stderr!r}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == served, "download corrupted"


def test_udp_echo_through_the_vip_with_port_mapping(lab):
    answers = []
    for i in range(6):
        proc = rvslab.udp_ask(VIP, UDP_PORT, f"nat{i}", src=CLIENT_NAT)
        assert proc.returncode == 0, proc.stderr
        answers.append(proc.stdout.split())
    assert all(a[0] == f"{VIP}:{UDP_PORT}" for a in answers), f"answers must come from the VIP: {answers}"
    assert {a[1] for a in answers} == {"rs1", "rs2"}, answers
    assert all(a[2] == CLIENT_NAT for a in answers), f"servers must see the client: {answers}"
    # socat too, from the NAT subnet.
    proc = rvslab.run(["ip", "netns", "exec", "rvs-client", "sh", "-c",
                       f"printf ping | socat -T 3 - UDP:{VIP}:{UDP_PORT},bind={CLIENT_NAT}"], timeout=15)
    assert proc.returncode == 0 and proc.stdout.split()[1:] == [CLIENT_NAT, "ping"], proc


def test_replies_find_their_owner_across_workers(lab):
    before = stats(lab)
    assert len(before) == 2, before
    result_bodies = [curl_nat(f"/?w={i}").stdout.strip() for i in range(30)]
    assert set(result_bodies) == {"rs1", "rs2"}, result_bodies
    after = stats(lab)
    created = [a.created - b.created for a, b in zip(after, before)]
    assert sum(created) == 30, created
    out = sum(a.redirected_out for a in after)
    inn = sum(a.redirected_in for a in after)
    assert out == inn, f"ring lost packets: {out} handed over, {inn} taken"
    for w in after:
        for reason in ("no_session", "redirect_full", "tx_full"):
            assert w.drops.get(reason, 0) == 0, f"lcore {w.lcore} dropped {w.drops}"


SHARED_PORT = 8080


def test_one_nat_server_serves_two_services_restored_from_ipvsadm_save(lab):
    """The kernel lets one NAT real server serve several services; the
    `ipvsadm -S -n` of such a box restores into rvs (`-R`) and both services
    work, their replies finding their owner across the two workers."""
    saved = (f"-A -t {VIP}:{SHARED_PORT} -s rr\n"
             f"-a -t {VIP}:{SHARED_PORT} -r 10.77.0.11:80 -m -w 1\n"
             f"-a -t {VIP}:{SHARED_PORT} -r 10.77.0.12:80 -m -w 1\n")
    env = {"RVS_SOCKET": str(lab.socket)}
    proc = subprocess.run([str(rvslab.RVSADM), "-R"], input=saved, text=True, capture_output=True, env=env, timeout=10)
    assert proc.returncode == 0, proc
    try:
        listing = lab.rvsadm("-L", "-n", check=True).stdout
        assert f"TCP  {VIP}:{SHARED_PORT} rr\n  -> 10.77.0.11:80" in listing, listing
        before = stats(lab)
        bodies = []
        for i in range(10):
            for port in (80, SHARED_PORT):
                bodies.append(rvslab.client_curl(f"http://{VIP}:{port}/?s={i}", "--interface", CLIENT_NAT).stdout.strip())
        assert bodies.count("rs1") + bodies.count("rs2") == 20, bodies
        after = stats(lab)
        assert sum(a.created - b.created for a, b in zip(after, before)) == 20
        for a, b in zip(after, before):
            assert a.drops.get("no_session", 0) == b.drops.get("no_session", 0), a.drops
    finally:
        lab.rvsadm("-D", "-t", f"{VIP}:{SHARED_PORT}")
