"""TUN (IP-in-IP, ipvsadm -i) for TCP and UDP over IPv4, through the real
DPDK path, in seed 001's topology: rvsd wraps the client's packet in an
IPv4 header to the real server, which decapsulates it, holds the VIP, and
answers the client directly from the VIP. The lab's kernel has no ipip
module, so each server runs ipip_decap.py (a raw socket for protocol 4
feeding a TUN device with the VIP) in place of `tunl0`.

Full-size segments do not fit the 1500-byte link once wrapped: rvsd answers
them with ICMP "fragmentation needed" (MTU 1480) from the VIP, and the
client's TCP must adapt for an upload to complete."""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path

import pytest

import rvslab
from rvslab import CLIENT_IP, RUN, VIP

UDP_PORT = 53
SINK_PORT = 9000
SYSCTLS = ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce", "net.ipv4.conf.all.rp_filter")
DECAP = Path(__file__).with_name("ipip_decap.py")

EXTRA_SERVICES = f"""
[[service]]
vip = "{VIP}:{UDP_PORT}"
protocol = "udp"
scheduler = "rr"
forward = "tun"

[[service.real_server]]
address = "10.77.0.11:{UDP_PORT}"

[[service.real_server]]
address = "10.77.0.12:{UDP_PORT}"

[[service]]
vip = "{VIP}:{SINK_PORT}"
scheduler = "rr"
forward = "tun"

[[service.real_server]]
address = "10.77.0.11:{SINK_PORT}"
"""

# Reads a whole upload, answers with its sha256 (hex), per connection.
SINK = r"""
import hashlib, socket, sys, threading
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2])))
s.listen(8)
print("ready", flush=True)
def serve(c):
    h = hashlib.sha256()
    while True:
        b = c.recv(1 << 16)
        if not b:
            break
        h.update(b)
    c.sendall(h.hexdigest().encode())
    c.close()
while True:
    c, _ = s.accept()
    threading.Thread(target=serve, args=(c,), daemon=True).start()
"""

# Sends N random bytes to VIP:PORT, half-closes, prints "SENT-SHA GOT-SHA".
UPLOAD = r"""
import hashlib, os, socket, sys
data = os.urandom(int(sys.argv[3]))
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=60)
s.sendall(data)
s.shutdown(socket.SHUT_WR)
got = b""
while True:
    b = s.recv(4096)
    if not b:
        break
    got += b
print(hashlib.sha256(data).hexdigest(), got.decode())
"""


def rvsd_config(text: str) -> str:
    text = text.replace('forward = "fullnat"', 'forward = "tun"', 1)
    return rvslab.append_service(text, EXTRA_SERVICES)


def vip_http_log(node: str) -> Path:
    return RUN / node / "tun-access.log"


def spawn(node: str, args: list[str], log: Path | None = None) -> subprocess.Popen:
    out = open(log, "wb") if log else subprocess.DEVNULL
    p = subprocess.Popen(["ip", "netns", "exec", f"rvs-{node}", *args], stdin=subprocess.DEVNULL,
                         stdout=subprocess.PIPE if log is None else subprocess.DEVNULL,
                         stderr=out, start_new_session=True)
    if log:
        out.close()
    return p


def wait_ready(p: subprocess.Popen, what: str) -> None:
    line = p.stdout.readline().strip() if p.stdout else b""
    assert line == b"ready", f"{what} did not start: {line!r}"


@pytest.fixture(scope="module", autouse=True)
def tun_servers(lab):
    """In each real server: the decapsulator (VIP on its TUN device), the
    ARP sysctls of seed 001, HTTP on VIP:80, UDP echo on :53; on rs1 an
    upload sink on VIP:9000."""
    saved = {n: {k: rvslab.in_ns(n, ["sysctl", "-n", k], check=True).stdout.strip() for k in SYSCTLS} for n in ("rs1", "rs2")}
    procs: list[subprocess.Popen] = []
    echoes = []
    try:
        for n in ("rs1", "rs2"):
            rvslab.in_ns(n, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"], check=True)
            decap = spawn(n, ["python3", "-u", str(DECAP), "rvstun0", VIP])
            procs.append(decap)
            wait_ready(decap, f"ipip_decap in rvs-{n}")
            procs.append(spawn(n, ["python3", "-u", "-m", "http.server", "80", "--bind", VIP, "--directory", str(RUN / n)],
                               log=vip_http_log(n)))
        sink = spawn("rs1", ["python3", "-u", "-c", SINK, VIP, str(SINK_PORT)])
        procs.append(sink)
        wait_ready(sink, "upload sink")
        for n in ("rs1", "rs2"):
            rvslab.wait_until(f"HTTP on {VIP}:80 in rvs-{n}",
                              lambda n=n: rvslab.in_ns(n, ["curl", "-s", "--max-time", "1", f"http://{VIP}/"]).stdout.strip() == n,
                              timeout=10)
        echoes = [rvslab.UdpEcho(n, UDP_PORT) for n in ("rs1", "rs2")]
        yield
    finally:
        for e in echoes:
            e.stop()
        for p in procs:
            p.terminate()
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
        for n, values in saved.items():
            rvslab.in_ns(n, ["sysctl", "-qw", *(f"{k}={v}" for k, v in values.items())])
        # The client's cached path MTU toward the VIP must not leak into other modules.
        rvslab.in_ns("client", ["ip", "route", "flush", "cache"])


def test_listing_shows_tunnel(lab):
    services = rvslab.parse_services(lab.rvsadm("-L", "-n", check=True).stdout)
    http = next(s for s in services if s.address == f"{VIP}:80")
    assert [rs.forward for rs in http.servers] == ["Tunnel", "Tunnel"], http
    saved = lab.rvsadm("-S", "-n", check=True).stdout
    assert f"-a -t {VIP}:80 -r 10.77.0.11:80 -i -w 1" in saved, saved


def test_port_mapping_is_refused_like_ipvsadm(lab):
    proc = lab.rvsadm("-a", "-t", f"{VIP}:80", "-r", "10.77.0.13:8080", "-i", check=False)
    assert proc.returncode != 0 and "cannot map port 80 to 8080" in proc.stderr, proc


def test_twenty_requests_alternate_and_servers_see_the_client(lab):
    before = {n: vip_http_log(n).read_text().count(" - - [") for n in ("rs1", "rs2")}
    bodies = [rvslab.client_curl(f"http://{VIP}/?tun={i}").stdout.strip() for i in range(20)]
    assert bodies.count("rs1") == 10 and bodies.count("rs2") == 10, bodies
    assert all(bodies[i] != bodies[i + 1] for i in range(19)), bodies

    def logged():
        lines = {n: [l for l in vip_http_log(n).read_text().splitlines() if " - - [" in l][before[n]:] for n in ("rs1", "rs2")}
        assert sum(len(v) for v in lines.values()) >= 20, lines
        return lines

    for n, lines in rvslab.wait_until("requests in the VIP servers' logs", logged, timeout=10).items():
        assert lines and all(l.startswith(f"{CLIENT_IP} ") for l in lines), f"{n}: {lines}"


def test_udp_echo_through_the_tunnel(lab):
    answers = [rvslab.socat_udp(VIP, UDP_PORT, f"tun{i}").stdout.strip() for i in range(4)]
    names = [a.split()[0] for a in answers]
    assert sorted(names) == ["rs1", "rs1", "rs2", "rs2"], answers
    assert all(a.split()[1] == CLIENT_IP for a in answers), "servers see the client itself"


def test_ten_megabytes_arrive_intact(lab):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    target = lab.workdir / "tun-big.bin"
    proc = rvslab.client_curl(f"http://{VIP}/big.bin", "-o", str(target), max_time=120)
    assert proc.returncode == 0, f"curl exit {proc.returncode}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == served, "download corrupted"


def test_upload_adapts_to_the_tunnel_mtu(lab):
    """Client → server data in full-size segments: each would be 1520 bytes
    wrapped, so the first ones come back as "fragmentation needed"; the
    client lowers its path MTU to the VIP and the upload completes intact."""
    rvslab.in_ns("client", ["ip", "route", "flush", "cache"], check=True)
    drops_before = sum(w.drops.get("too_big", 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout))
    proc = rvslab.in_ns("client", ["python3", "-c", UPLOAD, VIP, str(SINK_PORT), str(10 << 20)], timeout=120)
    assert proc.returncode == 0, proc.stderr
    sent, got = proc.stdout.split()
    assert sent == got, "upload corrupted"
    route = rvslab.in_ns("client", ["ip", "route", "get", VIP], check=True).stdout
    assert "mtu 1480" in route, f"the client did not learn the tunnel's MTU: {route}"
    drops = sum(w.drops.get("too_big", 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout))
    assert drops > drops_before, "no packet was answered with fragmentation needed"
