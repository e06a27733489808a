"""FULLNAT through the real DPDK data path, as an operator sees it.

rvsd drives `lb0` in rvs-lb (af_packet); the client talks to the VIP
10.77.0.100:80 and the two Python HTTP real servers answer. Tests run in file
order against one rvsd (the `lab` fixture); the last one stops it.
"""

from __future__ import annotations

import hashlib
import re
import subprocess

import rvslab
from rvslab import LOCAL_ADDR, CLIENT_IP, VIP, RUN

VIP_URL = f"http://{VIP}/"
NAMES = {"rs1", "rs2"}


def get_vip(path: str = "/", *extra: str, **kw):
    return rvslab.client_curl(f"http://{VIP}{path}", *extra, **kw)


def test_round_robin_alternates(lab):
    answers = []
    for i in range(20):
        proc = get_vip(max_time=5)
        assert proc.returncode == 0, \
            f"request {i + 1}: curl exit {proc.returncode} (stderr {proc.stderr!r}); answers so far {answers}"
        body = proc.stdout.strip()
        assert body in NAMES, f"request {i + 1}: unexpected body {proc.stdout!r}"
        answers.append(body)
    for i in range(1, len(answers)):
        assert answers[i] != answers[i - 1], f"rr did not alternate at request {i + 1}: {answers}"


def access_log(node: str):
    return RUN / node / "access.log"


LOG_RE = re.compile(r'^(\S+) - - \[[^\]]*\] "([^"]*)" (\d{3})')


def test_real_servers_see_local_address(lab):
    offsets = {n: access_log(n).stat().st_size for n in NAMES}
    count = 6
    for i in range(count):
        proc = get_vip(f"/?req={i}", max_time=5)
        assert proc.returncode == 0, f"request {i + 1}: curl exit {proc.returncode}"

    def new_requests():
        found = {}
        for n in NAMES:
            with open(access_log(n), "rb") as f:
                f.seek(offsets[n])
                lines = f.read().decode(errors="replace").splitlines()
            found[n] = [m.groups() for m in map(LOG_RE.match, lines) if m]
        total = sum(len(v) for v in found.values())
        assert total >= count, f"{total} of {count} requests logged so far: {found}"
        return found

    found = rvslab.wait_until("the requests in the access logs", new_requests, timeout=10)
    for node, entries in found.items():
        assert entries, f"{node} got none of the {count} requests: {found}"
        for source, request, status in entries:
            assert source != CLIENT_IP, f"{node} saw the client address (no SNAT): {entries}"
            assert source == LOCAL_ADDR, f"{node} saw source {source}, not {LOCAL_ADDR}: {entries}"
            assert request.startswith("GET /?req="), entries
            assert status == "200", entries


def test_big_download_intact(lab):
    served = (RUN / "rs1" / "big.bin").read_bytes()
    assert served == (RUN / "rs2" / "big.bin").read_bytes(), "lab bug: big.bin differs"
    target = lab.workdir / "big.bin"
    if target.exists():
        target.unlink()
    proc = get_vip("/big.bin", "-o", str(target), max_time=120)
    assert proc.returncode == 0, f"curl exit {proc.returncode}: {proc.stderr!r}"
    got = target.read_bytes()
    assert len(got) == len(served), f"got {len(got)} bytes of {len(served)}"
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(served).hexdigest(), \
        "download corrupted"


def server_lines(lab):
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    assert len(services) == 1, services
    return services[0].servers


def test_sessions_expire_after_close(lab):
    for _ in range(2):
        assert get_vip(max_time=5).returncode == 0

    def table_empty():
        conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
        assert not conns, f"{len(conns)} entries left: {conns}"
        return True

    rvslab.wait_until("an empty connection table (rvsadm -L -n -c)", table_empty, timeout=20)

    def counters_zero():
        servers = server_lines(lab)
        assert len(servers) == 2, servers
        busy = [(s.address, s.active, s.inactive) for s in servers if s.active or s.inactive]
        assert not busy, f"servers still count connections: {busy}"
        return True

    rvslab.wait_until("ActiveConn and InActConn 0 (rvsadm -L -n)", counters_zero, timeout=5)


def test_rvsadm_list_format(lab):
    out = lab.rvsadm("-L", "-n").stdout
    services = rvslab.parse_services(out)  # checks the three header lines
    assert len(services) == 1, out
    svc = services[0]
    assert (svc.protocol, svc.address, svc.scheduler) == ("TCP", f"{VIP}:80", "rr"), out
    assert svc.line.rstrip() == f"TCP  {VIP}:80 rr", f"service line {svc.line!r}"
    assert sorted(s.address for s in svc.servers) == ["10.77.0.11:80", "10.77.0.12:80"], out
    for rs in svc.servers:
        assert (rs.forward, rs.weight) == ("FullNat", 1), rs.line
        assert rs.line.rstrip() == rvslab.ipvsadm_server_line(rs), \
            f"columns differ from ipvsadm's:\n{rs.line!r}\n{rvslab.ipvsadm_server_line(rs)!r}"


def test_connection_list_format(lab):
    """While a download runs, `rvsadm -L -n -c` lists it like ipvsadm."""
    target = lab.workdir / "slow.bin"
    # A rate-limited download keeps one session open long enough to look at.
    curl = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", "1M",
         "--max-time", "30", "-o", str(target), f"http://{VIP}/big.bin"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def established():
            assert curl.poll() is None, f"the download ended early (curl exit {curl.returncode})"
            conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
            live = [c for c in conns if c.state == "ESTABLISHED"]
            assert live, f"no ESTABLISHED entry yet: {conns}"
            servers = {s.address: s for s in server_lines(lab)}
            assert servers[live[0].destination].active >= 1, \
                f"{live[0]} listed but ActiveConn is 0: {servers}"
            return live

        live = rvslab.wait_until("an ESTABLISHED entry counted as ActiveConn",
                                 established, timeout=10)
        c = live[0]
        assert c.protocol == "TCP", c
        assert c.source.startswith(f"{CLIENT_IP}:"), c
        assert c.virtual == f"{VIP}:80", c
        assert c.destination in ("10.77.0.11:80", "10.77.0.12:80"), c
    finally:
        curl.kill()
        curl.wait(timeout=10)


def test_rvsd_stops_on_sigterm(lab):
    """Last: rvsd survived the tests and stops cleanly on SIGTERM."""
    assert lab.rvsd.running(), f"rvsd died during the tests; log:\n{lab.rvsd.log_text()}"
    status = lab.rvsd.stop(grace=5)
    assert status is not None, "rvsd ignored SIGTERM for 5 s"
    log = lab.rvsd.log_text()
    assert "panicked" not in log, log
    assert status in (0, -15, 143), f"rvsd exit status {status} after SIGTERM; log:\n{log}"
