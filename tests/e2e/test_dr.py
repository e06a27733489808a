"""DR (direct routing, ipvsadm -g) for TCP and UDP over IPv4, through the
real DPDK path, in seed 003's topology: the real servers hold the VIP on
`lo` with arp_ignore=1 / arp_announce=2 (so only the appliance answers ARP
for it), rvsd changes only the destination MAC, and the servers answer the
client directly from the VIP. The appliance sees the client's half only:
sessions follow IPVS's INPUT-ONLY state table. Port mapping is refused.
Addresses, sysctls and extra servers are restored at the end."""

from __future__ import annotations

import hashlib
import subprocess

import pytest

import rvslab
from rvslab import CLIENT_IP, RUN, VIP

UDP_PORT = 53
SYSCTLS = ("net.ipv4.conf.all.arp_ignore", "net.ipv4.conf.all.arp_announce")

UDP_SERVICE = f"""
[[service]]
vip = "{VIP}:{UDP_PORT}"
protocol = "udp"
scheduler = "rr"
forward = "dr"

[[service.real_server]]
address = "10.77.0.11:{UDP_PORT}"

[[service.real_server]]
address = "10.77.0.12:{UDP_PORT}"
"""


def rvsd_config(text: str) -> str:
    text = text.replace('forward = "fullnat"', 'forward = "dr"', 1)
    return rvslab.append_service(text, UDP_SERVICE)


def vip_http_log(node: str):
    return RUN / node / "vip-access.log"


@pytest.fixture(scope="module", autouse=True)
def dr_servers(lab):
    """VIP on lo with the ARP sysctls, an HTTP server on VIP:80 and a UDP
    echo on :53 in each real server."""
    saved = {n: {k: rvslab.in_ns(n, ["sysctl", "-n", k], check=True).stdout.strip() for k in SYSCTLS} for n in ("rs1", "rs2")}
    procs = []
    try:
        for n in ("rs1", "rs2"):
            rvslab.in_ns(n, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"], check=True)
            rvslab.in_ns(n, ["ip", "addr", "add", f"{VIP}/32", "dev", "lo"], check=True)
            log = open(vip_http_log(n), "wb")
            procs.append(subprocess.Popen(
                ["ip", "netns", "exec", f"rvs-{n}", "python3", "-u", "-m", "http.server", "80", "--bind", VIP,
                 "--directory", str(RUN / n)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True))
            log.close()
        for n in ("rs1", "rs2"):
            rvslab.wait_until(f"HTTP on {VIP}:80 in rvs-{n}",
                              lambda n=n: rvslab.in_ns(n, ["curl", "-s", "--max-time", "1", f"http://{VIP}/"]).stdout.strip() == n,
                              timeout=10)
        echoes = [rvslab.UdpEcho(n, UDP_PORT) for n in ("rs1", "rs2")]
        yield
        for e in echoes:
            e.stop()
    finally:
        for p in procs:
            p.terminate()
            p.wait(timeout=5)
        for n, values in saved.items():
            rvslab.in_ns(n, ["ip", "addr", "del", f"{VIP}/32", "dev", "lo"])
            rvslab.in_ns(n, ["sysctl", "-qw", *(f"{k}={v}" for k, v in values.items())])


def test_port_mapping_is_refused_like_ipvsadm(tmp_path):
    text = rvslab.LAB_CONFIG.read_text().replace('forward = "fullnat"', 'forward = "dr"', 1)
    text = text.replace('address = "10.77.0.12:80"', 'address = "10.77.0.12:8080"', 1)
    path = tmp_path / "dr-mapped.toml"
    path.write_text(text)
    proc = rvslab.run([str(rvslab.RVSD), "--check-config", str(path)], timeout=10)
    line = rvslab.line_of(text, r'address = "10\.77\.0\.12:8080"')
    assert proc.returncode == 2, proc
    assert f"{path}:{line}:" in proc.stderr and "cannot map port 80 to 8080" in proc.stderr, proc.stderr


def test_only_the_appliance_answers_arp_for_the_vip(lab):
    rvslab.in_ns("client", ["ip", "neigh", "flush", "dev", "eth0"])
    assert rvslab.in_ns("client", ["ping", "-c", "1", "-W", "2", VIP]).returncode == 0
    neigh = rvslab.in_ns("client", ["ip", "neigh", "show", VIP], check=True).stdout.split()
    lb_mac = rvslab.in_ns("lb", ["cat", "/sys/class/net/lb0/address"], check=True).stdout.strip()
    assert lb_mac in neigh, f"VIP resolved to {neigh}, not the appliance's {lb_mac}"


def test_twenty_requests_alternate_and_servers_see_the_client(lab):
    before = {n: vip_http_log(n).read_text().count(" - - [") for n in ("rs1", "rs2")}
    bodies = [rvslab.client_curl(f"http://{VIP}/?dr={i}").stdout.strip() for i in range(20)]
    assert bodies.count("rs1") == 10 and bodies.count("rs2") == 10, bodies
    assert all(bodies[i] != bodies[i + 1] for i in range(19)), bodies

    def logged():
        lines = {n: [l for l in vip_http_log(n).read_text().splitlines() if " - - [" in l][before[n]:] for n in ("rs1", "rs2")}
        assert sum(len(v) for v in lines.values()) >= 20, lines
        return lines

    for n, lines in rvslab.wait_until("requests in the VIP servers' logs", logged, timeout=10).items():
        assert lines and all(l.startswith(f"{CLIENT_IP} ") for l in lines), f"{n}: {lines}"


def test_ten_megabytes_arrive_intact(lab):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    target = lab.workdir / "dr-big.bin"
    proc = rvslab.client_curl(f"http://{VIP}/big.bin", "-o", str(target), max_time=120)
    assert proc.returncode == 0, f"curl exit {proc.returncode}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == served, "download corrupted"


def test_udp_echo_answers_from_the_vip(lab):
    answers = []
    for i in range(6):
        proc = rvslab.socat_udp(VIP, UDP_PORT, f"dr{i}")
        assert proc.returncode == 0, proc.stderr
        answers.append(proc.stdout.split())
    assert {a[0] for a in answers} == {"rs1", "rs2"}, answers
    assert all(a[1] == CLIENT_IP for a in answers), answers
    proc = rvslab.udp_ask(VIP, UDP_PORT, "from-vip")
    assert proc.returncode == 0 and proc.stdout.split()[0] == f"{VIP}:{UDP_PORT}", proc


def test_sessions_see_only_the_client_and_close(lab):
    assert rvslab.client_curl(f"http://{VIP}/").returncode == 0
    conns = [c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout) if c.protocol == "TCP"]
    assert conns, "no DR session listed"
    # The client's FIN moved it to FIN_WAIT (INPUT-ONLY), whose short test
    # timeout lets the table empty.
    assert all(c.state in ("FIN_WAIT", "TIME_WAIT", "CLOSE") for c in conns), conns

    def gone():
        left = [c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout) if c.protocol == "TCP"]
        assert not left, left
        return True

    rvslab.wait_until("DR sessions to close", gone, timeout=15)
