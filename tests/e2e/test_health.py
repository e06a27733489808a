"""Built-in health checks, keepalived-style: probes leave through the
exception path from the appliance's own address; a failed server is
inhibited (weight 0) within interval x fall, restored within interval x
rise, its established connections carry on (or are reset, where the
service says so), and a sorry server takes over when every server is down.

Services in this module's rvsd: TCP VIP:80 (http check, sorry server,
connections kept), UDP VIP:53 over UDP echo servers on :5353 (udp check,
connections reset), TCP VIP:81 (http check, connections reset) and TCP
VIP:82 (icmp check)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import time

import pytest

import rvslab
from rvslab import LOCAL_ADDR, RUN, VIP

INTERVAL, RISE, FALL = 0.5, 2, 2
SORRY = "10.77.0.12:8080"
UDP_PORT, ECHO_PORT, RESET_PORT, ICMP_PORT = 53, 5353, 81, 82
RS1, RS2 = rvslab.REAL_SERVERS["rs1"], rvslab.REAL_SERVERS["rs2"]
TIMING = f"interval = {INTERVAL}\ntimeout = 0.4\nrise = {RISE}\nfall = {FALL}\n"


def extra_service(port: int, check: str, protocol: str = "tcp", rs_port: int = 80) -> str:
    return f"""
[[service]]
vip = "{VIP}:{port}"
protocol = "{protocol}"
scheduler = "rr"
local_addresses = ["{LOCAL_ADDR}"]

[service.health_check]
{check}{TIMING}
[[service.real_server]]
address = "{RS1}:{rs_port}"

[[service.real_server]]
address = "{RS2}:{rs_port}"
"""


def rvsd_config(text: str) -> str:
    block = (
        "\n[service.health_check]\n"
        f'kind = "http"\npath = "/health"\nstatus = 200\ninterval = {INTERVAL}\ntimeout = 0.4\n'
        f'rise = {RISE}\nfall = {FALL}\nsorry_server = "{SORRY}"\n'
    )
    # The service's table ends where its first [[service.real_server]] begins.
    at = text.index("[[service.real_server]]")
    text = text[:at] + block.lstrip("\n") + "\n" + text[at:]
    text = rvslab.append_service(text, extra_service(
        UDP_PORT, 'kind = "udp"\npayload = "health"\nexpect = "health"\nconnections = "reset"\n', "udp", ECHO_PORT))
    text = rvslab.append_service(text, extra_service(
        RESET_PORT, 'kind = "http"\npath = "/health"\nconnections = "reset"\n'))
    return rvslab.append_service(text, extra_service(ICMP_PORT, 'kind = "icmp"\n'))


@pytest.fixture(scope="module", autouse=True)
def echo_servers(lab):
    servers = {node: rvslab.UdpEcho(node, ECHO_PORT) for node in ("rs1", "rs2")}
    yield servers
    for s in servers.values():
        s.stop()


def weights(lab, protocol: str = "TCP", port: int = 80) -> dict[str, int]:
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    service = [s for s in services if s.protocol == protocol and s.address == f"{VIP}:{port}"]
    assert len(service) == 1, services
    return {s.address: s.weight for s in service[0].servers}


def http_server(node: str, port: int, directory) -> subprocess.Popen:
    ip = rvslab.REAL_SERVERS[node]
    return subprocess.Popen(
        ["ip", "netns", "exec", f"rvs-{node}", "python3", "-m", "http.server", str(port),
         "--bind", ip, "--directory", str(directory)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)


def stop_lab_server(node: str) -> None:
    pid = int((RUN / f"http-{node}.pid").read_text())
    os.kill(pid, signal.SIGTERM)


def timed(what: str, probe, limit: float) -> float:
    start = time.monotonic()
    rvslab.wait_until(what, probe, timeout=limit + 5)
    took = time.monotonic() - start
    assert took <= limit, f"{what} took {took:.2f}s, more than {limit}s"
    return took


def test_stopped_server_is_inhibited_then_restored(lab):
    # The lab's servers get a health endpoint (until now the checks failed).
    for node in ("rs1", "rs2"):
        (RUN / node / "health").write_text("ok\n")
    rvslab.wait_until("both servers up", lambda: weights(lab) == {"10.77.0.11:80": 1, "10.77.0.12:80": 1}, 10)
    stop_lab_server("rs1")
    def rs1_inhibited():
        assert weights(lab)["10.77.0.11:80"] == 0, weights(lab)
        return True
    timed("rs1 inhibited", rs1_inhibited, INTERVAL * FALL + 1)
    bodies = [rvslab.client_curl(f"http://{VIP}/", max_time=5).stdout.strip() for _ in range(8)]
    assert bodies == ["rs2"] * 8, bodies
    server = http_server("rs1", 80, RUN / "rs1")
    try:
        def rs1_back():
            assert weights(lab)["10.77.0.11:80"] == 1, weights(lab)
            return True
        timed("rs1 restored", rs1_back, INTERVAL * RISE + 1 + 1)  # +1 s for python to start
        bodies = {rvslab.client_curl(f"http://{VIP}/", max_time=5).stdout.strip() for _ in range(6)}
        assert bodies == {"rs1", "rs2"}, bodies
        assert "rvs_real_server_up" in rvslab.in_ns("lb", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
        assert "health: real server 10.77.0.11:80 of TCP/10.77.0.100:80 is DOWN" in lab.rvsd.log_text()
    finally:
        server.terminate()
        server.wait(timeout=10)
    http_server_back = http_server("rs1", 80, RUN / "rs1")
    (RUN / "http-rs1.pid").write_text(f"{http_server_back.pid}\n")
    def serving():
        p = rvslab.in_ns("rs1", ["curl", "-s", "--max-time", "1", "http://10.77.0.11/"])
        assert p.stdout.strip() == "rs1", p
        return True
    rvslab.wait_until("rs1's server back", serving, 10)
    rvslab.wait_until("rs1 up again", lambda: weights(lab)["10.77.0.11:80"] == 1 or None, 10)


def test_failed_health_endpoint_keeps_established_downloads(lab):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    target = lab.workdir / "during-failure.bin"
    # Find a download that lands on rs1: round robin alternates.
    for _ in range(2):
        dl = subprocess.Popen(
            ["ip", "netns", "exec", "rvs-client", "curl", "-sS", "--limit-rate", "2M", "--max-time", "60",
             "-o", str(target), f"http://{VIP}/big.bin"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        def started():
            assert dl.poll() is None, f"curl ended with {dl.returncode}: {dl.stderr.read()!r}"
            conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
            live = [c for c in conns if c.state == "ESTABLISHED"]
            assert live, conns
            return live[0].destination
        dest = rvslab.wait_until("the download established", started, timeout=10)
        if dest == "10.77.0.11:80":
            break
        dl.kill()
        dl.wait()
    assert dest == "10.77.0.11:80"
    (RUN / "rs1" / "health").unlink()
    try:
        rvslab.wait_until("rs1 inhibited", lambda: weights(lab)["10.77.0.11:80"] == 0 or None, 5)
        assert dl.wait(timeout=60) == 0, dl.stderr.read()
        assert hashlib.sha256(target.read_bytes()).hexdigest() == served
    finally:
        (RUN / "rs1" / "health").write_text("ok\n")
    rvslab.wait_until("rs1 restored", lambda: weights(lab)["10.77.0.11:80"] == 1 or None, 5)


def test_sorry_server_when_all_are_down(lab, tmp_path):
    (tmp_path / "index.html").write_text("sorry\n")
    sorry = http_server("rs2", 8080, tmp_path)
    try:
        for node in ("rs1", "rs2"):
            (RUN / node / "health").unlink()
        def sorry_listed():
            w = weights(lab)
            assert w == {SORRY: 1}, w
            return True
        rvslab.wait_until("only the sorry server listed", sorry_listed, timeout=5)
        def sorry_answers():
            p = rvslab.client_curl(f"http://{VIP}/", max_time=3)
            assert p.stdout.strip() == "sorry", p.stdout
            return True
        rvslab.wait_until("the sorry server answering", sorry_answers, timeout=5)
    finally:
        for node in ("rs1", "rs2"):
            (RUN / node / "health").write_text("ok\n")
        sorry.terminate()
        sorry.wait(timeout=10)
    rvslab.wait_until("both back", lambda: weights(lab) == {"10.77.0.11:80": 1, "10.77.0.12:80": 1} or None, 5)


@pytest.mark.nolab
def test_bad_health_config_is_refused(tmp_path):
    text = rvslab.make_test_config(socket=tmp_path / "s.sock", file_prefix="rvs-e2e-bad-health")
    for bad, word in (('kind = "smoke"', "unknown health check kind"), ("interval = 0", "interval")):
        t = text.replace("[[service.real_server]]", f'[service.health_check]\nkind = "tcp"\n{bad}\n\n[[service.real_server]]', 1)
        if bad.startswith("kind"):
            t = t.replace('kind = "tcp"\n', "", 1)
        path = tmp_path / "bad.toml"
        path.write_text(t)
        proc = rvslab.rvsd_direct(path)
        assert proc.returncode == 2 and word in proc.stderr and f"{path}:" in proc.stderr, proc.stderr


# A UDP client on a fixed source port: one datagram, prints the answer (or
# "silence"). The same source port is the same session on the appliance.
UDP_FROM_PORT = r"""
import socket, sys
dst, port, sport, payload = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4].encode()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", sport))
s.settimeout(1.5)
s.sendto(payload, (dst, port))
try:
    print(s.recvfrom(65535)[0].decode())
except socket.timeout:
    print("silence")
"""


def udp_from(sport: int, payload: str) -> str:
    p = rvslab.in_ns("client", ["python3", "-c", UDP_FROM_PORT, VIP, str(UDP_PORT), str(sport), payload], timeout=15)
    assert p.returncode == 0, p.stderr
    return p.stdout.strip()


def test_udp_check_follows_the_echo_server_and_resets_its_flows(lab, echo_servers):
    both = {f"{RS1}:{ECHO_PORT}": 1, f"{RS2}:{ECHO_PORT}": 1}
    rvslab.wait_until("both UDP servers up", lambda: weights(lab, "UDP", UDP_PORT) == both or None, 10)
    # A flow (fixed source port) that the appliance sends to rs1.
    sport = next(p for p in range(40100, 40110) if udp_from(p, "pin").startswith("rs1 "))
    assert udp_from(sport, "again").startswith("rs1 "), "a UDP flow stays on its server"
    echo_servers["rs1"].stop()

    def rs1_down():
        assert weights(lab, "UDP", UDP_PORT)[f"{RS1}:{ECHO_PORT}"] == 0, weights(lab, "UDP", UDP_PORT)
        return True

    timed("rs1's UDP service inhibited", rs1_down, INTERVAL * FALL + 1)
    # The server's kernel answered the probes with ICMP port unreachable
    # (punted to the appliance's kernel): refused, not just silent.
    assert f"real server {RS1}:{ECHO_PORT} of UDP/{VIP}:{UDP_PORT} is DOWN (receive: Connection refused" in lab.rvsd.log_text()
    # connections = "reset": rs1's flows were flushed, so the pinned flow is
    # scheduled afresh (to rs2) instead of going to the dead server until
    # the UDP timeout.
    assert udp_from(sport, "after").startswith("rs2 "), "the flow to the failed server was not reset"
    answers = [rvslab.socat_udp(VIP, UDP_PORT, f"down{i}").stdout.split()[:1] for i in range(4)]
    assert answers == [["rs2"]] * 4, answers
    assert f"reset 1 connection(s) to {RS1}:{ECHO_PORT} of UDP/{VIP}:{UDP_PORT}" in lab.rvsd.log_text()
    echo_servers["rs1"] = rvslab.UdpEcho("rs1", ECHO_PORT)

    def rs1_up():
        assert weights(lab, "UDP", UDP_PORT) == both, weights(lab, "UDP", UDP_PORT)
        return True

    timed("rs1's UDP service restored", rs1_up, INTERVAL * RISE + 1 + 1)  # +1 s for python to start
    names = {rvslab.socat_udp(VIP, UDP_PORT, f"up{i}").stdout.split()[0] for i in range(4)}
    assert names == {"rs1", "rs2"}, names


def hold(port: int, n: int) -> subprocess.Popen:
    """rvslab.HOLD_CLIENT on VIP:PORT: N idle established connections."""
    proc = subprocess.Popen(["ip", "netns", "exec", "rvs-client", "python3", "-c", rvslab.HOLD_CLIENT, str(n), VIP, str(port)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline().strip()
    assert line == "held", f"could not hold {n} connections: {line!r} {proc.stderr.read()!r}"
    return proc


def test_reset_policy_breaks_established_connections_to_a_failed_server(lab):
    for node in ("rs1", "rs2"):
        (RUN / node / "health").write_text("ok\n")
    both = {f"{RS1}:80": 1, f"{RS2}:80": 1}
    rvslab.wait_until("both servers up", lambda: weights(lab, "TCP", RESET_PORT) == both or None, 10)
    held = hold(RESET_PORT, 2)  # round robin: one to each server
    try:
        def conns():
            return [c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
                    if c.virtual == f"{VIP}:{RESET_PORT}" and c.state == "ESTABLISHED"]
        assert sorted(c.destination for c in conns()) == [f"{RS1}:80", f"{RS2}:80"], conns()
        (RUN / "rs1" / "health").unlink()
        rvslab.wait_until("rs1 inhibited", lambda: weights(lab, "TCP", RESET_PORT)[f"{RS1}:80"] == 0 or None, INTERVAL * FALL + 2)

        def flushed():
            left = [c.destination for c in conns()]
            assert left == [f"{RS2}:80"], left
            return True

        rvslab.wait_until("rs1's session flushed", flushed, 5)
        assert f"reset 1 connection(s) to {RS1}:80 of TCP/{VIP}:{RESET_PORT}" in lab.rvsd.log_text()
        out, err = held.communicate("go\n", timeout=60)
        result = json.loads(out.strip().splitlines()[-1])
        # rs2's connection answers; rs1's request goes nowhere (its packets
        # find no session and are dropped) until the client gives up.
        assert result["ok"] == 1 and len(result["errors"]) == 1, result
        assert "timed out" in result["errors"][0], result
    finally:
        if held.poll() is None:
            held.kill()
            held.wait()
        (RUN / "rs1" / "health").write_text("ok\n")
    rvslab.wait_until("rs1 restored", lambda: weights(lab, "TCP", RESET_PORT) == both or None, 5)


def test_icmp_check_follows_the_servers_link(lab):
    both = {f"{RS1}:80": 1, f"{RS2}:80": 1}
    rvslab.wait_until("both servers answer pings", lambda: weights(lab, "TCP", ICMP_PORT) == both or None, 10)
    rvslab.in_ns("rs1", ["ip", "link", "set", "eth0", "down"], check=True)
    try:
        def rs1_down():
            assert weights(lab, "TCP", ICMP_PORT)[f"{RS1}:80"] == 0, weights(lab, "TCP", ICMP_PORT)
            return True

        timed("rs1 inhibited (no echo reply)", rs1_down, INTERVAL * FALL + 1)
        assert f"real server {RS1}:80 of TCP/{VIP}:{ICMP_PORT} is DOWN (no echo reply" in lab.rvsd.log_text()
    finally:
        rvslab.in_ns("rs1", ["ip", "link", "set", "eth0", "up"], check=True)

    def rs1_up():
        assert weights(lab, "TCP", ICMP_PORT) == both, weights(lab, "TCP", ICMP_PORT)
        return True

    # The link takes a moment to come back up (and rs1 to answer ARP).
    timed("rs1 restored", rs1_up, INTERVAL * RISE + 1 + 2)


def test_reload_applies_a_changed_check(lab):
    both = {f"{RS1}:80": 1, f"{RS2}:80": 1}
    for port in (ICMP_PORT, RESET_PORT):
        rvslab.wait_until(f"both servers of :{port} up", lambda port=port: weights(lab, "TCP", port) == both or None, 10)
    original = lab.config.read_text()
    # VIP:82's check becomes an HTTP GET of a page that does not exist (404).
    changed = original.replace('kind = "icmp"\n', 'kind = "http"\npath = "/no-such-page"\n', 1)
    assert changed != original
    lab.config.write_text(changed)
    try:
        lab.rvsadm("--reload")

        def both_down():
            assert weights(lab, "TCP", ICMP_PORT) == {f"{RS1}:80": 0, f"{RS2}:80": 0}, weights(lab, "TCP", ICMP_PORT)
            return True

        timed("the new check failing both", both_down, INTERVAL * FALL + 1)
        assert f"real server {RS2}:80 of TCP/{VIP}:{ICMP_PORT} is DOWN (HTTP status 404" in lab.rvsd.log_text()
        # The other services' checks did not change: their servers stay up.
        assert weights(lab, "TCP", RESET_PORT) == both
    finally:
        lab.config.write_text(original)
        lab.rvsadm("--reload")

    def both_up():
        assert weights(lab, "TCP", ICMP_PORT) == both, weights(lab, "TCP", ICMP_PORT)
        return True

    # The replacement checkers start from "down" and need `rise` echo replies.
    timed("the icmp check restoring both", both_up, INTERVAL * RISE + 1)
