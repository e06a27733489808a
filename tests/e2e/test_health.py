"""Built-in health checks, keepalived-style: probes leave through the
exception path from the appliance's own address; a failed server is
inhibited (weight 0) within interval x fall, restored within interval x
rise, its established connections carry on, and a sorry server takes over
when every server is down."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time

import pytest

import rvslab
from rvslab import RUN, VIP

INTERVAL, RISE, FALL = 0.5, 2, 2
SORRY = "10.77.0.12:8080"


def rvsd_config(text: str) -> str:
    block = (
        "\n[service.health_check]\n"
        f'kind = "http"\npath = "/health"\nstatus = 200\ninterval = {INTERVAL}\ntimeout = 0.4\n'
        f'rise = {RISE}\nfall = {FALL}\nsorry_server = "{SORRY}"\n'
    )
    # The service's table ends where its first [[service.real_server]] begins.
    at = text.index("[[service.real_server]]")
    return text[:at] + block.lstrip("\n") + "\n" + text[at:]


def weights(lab) -> dict[str, int]:
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    return {s.address: s.weight for s in services[0].servers}


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
