"""No client can stall rvsd's control plane.

rvsd serves its control socket and /metrics on a thread of its own, with a
deadline and a size limit per connection; the control loop that applies
reloads, health results and neighbour work only ever sees whole requests.
Each test below runs a misbehaving client (idle, twenty idle, trickling
one byte every 2 s, a huge request line; on the socket and on /metrics)
and meanwhile checks what an operator sees: `rvsadm -L -n` answers within
100 ms every time, and a SIGHUP reload shows in the listing within 1 s.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import threading
import time

import rvslab

METRICS = ("127.0.0.1", 9477)  # inside rvs-lb's namespace
RS2 = "10.77.0.12:80"


def list_ms(lab) -> float:
    t0 = time.monotonic()
    p = lab.rvsadm("-L", "-n", check=False, timeout=5)
    ms = (time.monotonic() - t0) * 1000
    assert p.returncode == 0, f"rvsadm -L -n failed ({p.returncode}): {p.stderr}"
    return ms


def rs2_weight(lab) -> int:
    servers = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers
    return next(s.weight for s in servers if s.address == RS2)


def sighup_reload_ms(lab, weight: int) -> float:
    """Writes rs2's weight into the config, sends SIGHUP and returns how
    long until `rvsadm -L -n` shows it."""
    text = lab.config.read_text()
    lines = text.splitlines(keepends=True)
    at = next(i for i, l in enumerate(lines) if l.startswith(f'address = "{RS2}"'))
    assert lines[at + 1].startswith("weight = "), lines[at + 1]
    lines[at + 1] = f"weight = {weight}\n"
    lab.config.write_text("".join(lines))
    t0 = time.monotonic()
    os.kill(lab.rvsd.proc.pid, signal.SIGHUP)
    while rs2_weight(lab) != weight:
        assert time.monotonic() - t0 < 5, "SIGHUP reload not applied within 5 s"
        time.sleep(0.02)
    return (time.monotonic() - t0) * 1000


def assert_responsive(lab, seconds: float) -> None:
    """For SECONDS: every `rvsadm -L -n` within 100 ms, and a SIGHUP reload
    (rs2's weight 1 -> 2 -> 1) applied within 1 s."""
    slow = []
    reloads = []
    deadline = time.monotonic() + seconds
    calls = 0
    while time.monotonic() < deadline:
        ms = list_ms(lab)
        calls += 1
        if ms >= 100:
            slow.append(round(ms))
        if calls in (5, 15):
            reloads.append(round(sighup_reload_ms(lab, 2 if calls == 5 else 1)))
        time.sleep(0.05)
    assert calls >= 15, f"only {calls} listings in {seconds} s"
    assert not slow, f"rvsadm -L -n took >= 100 ms in {len(slow)} of {calls} calls: {slow} ms"
    assert len(reloads) == 2 and all(ms < 1000 for ms in reloads), f"SIGHUP reloads took {reloads} ms"


def connect(lab) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(str(lab.socket))
    return s


def answer_of(s: socket.socket) -> str:
    """What rvsd sent before closing (it closes after its one answer)."""
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except OSError:
        pass
    return data.decode(errors="replace")


def test_an_idle_client_stalls_nothing_and_is_cut_off(lab):
    s = connect(lab)
    try:
        t0 = time.monotonic()
        assert_responsive(lab, 1.5)
        # rvsd gives up on it 2 s after it connected, and says why.
        answer = answer_of(s)
        waited = time.monotonic() - t0
        assert "no complete request within 2 s" in answer, answer
        assert waited < 4, f"cut off after {waited:.1f} s"
    finally:
        s.close()


def test_twenty_idle_clients_stall_nothing(lab):
    idle = [connect(lab) for _ in range(20)]
    try:
        assert_responsive(lab, 1.5)
    finally:
        for s in idle:
            s.close()


def test_a_trickling_client_stalls_nothing_and_is_cut_off(lab):
    s = connect(lab)
    stop = threading.Event()
    sent = []

    def trickle():
        for b in b'"ListServices"':
            if stop.is_set():
                return
            try:
                s.send(bytes([b]))
                sent.append(b)
            except OSError:
                return
            stop.wait(2)

    t = threading.Thread(target=trickle)
    t.start()
    try:
        assert_responsive(lab, 5)
        # Cut off at its deadline: at most two of its bytes got through.
        assert len(sent) <= 3, f"the trickler sent {len(sent)} bytes"
    finally:
        stop.set()
        t.join()
        s.close()


def test_a_huge_request_line_is_refused_and_costs_no_memory(lab):
    pid = lab.rvsd.proc.pid
    before = rvslab.rvsd_rss_kib(pid)
    s = connect(lab)
    sent = 0
    result = {}

    def flood():
        nonlocal sent
        chunk = b" " * (1 << 20)
        try:
            while sent < 300 << 20:
                s.sendall(chunk)
                sent += len(chunk)
        except OSError as e:
            result["error"] = e
        result["answer"] = answer_of(s)

    t = threading.Thread(target=flood)
    t.start()
    try:
        assert_responsive(lab, 1.5)
        t.join(timeout=30)
        assert not t.is_alive()
    finally:
        s.close()
    # Refused after 64 KiB: the rest of the 300 MiB never went in.
    assert sent < 8 << 20, f"rvsd took {sent >> 20} MiB of one request line"
    assert "error" in result, "the connection was closed"
    grown = rvslab.rvsd_rss_kib(pid) - before
    assert grown < 16 << 10, f"rvsd's RSS grew by {grown} KiB"
    # The same socket still serves.
    assert list_ms(lab) < 100


# Trickles a GET /metrics one byte every 2 s inside rvs-lb; prints how many
# bytes went in and what came back once rvsd closed the connection.
METRICS_TRICKLER = r"""
import json, socket
s = socket.create_connection(("127.0.0.1", 9477), timeout=10)
s.settimeout(2)
sent = 0
for b in b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n":
    try:
        s.send(bytes([b]))
        sent += 1
        s.recv(65536)  # rvsd closed it (or answered): stop
        break
    except socket.timeout:
        continue  # the next byte, 2 s on
    except OSError:
        break
print(json.dumps({"sent": sent}))
"""


def metrics_ok() -> bool:
    p = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "1", "http://127.0.0.1:9477/metrics"], timeout=5)
    return p.returncode == 0 and "rvs_worker_rx_packets_total" in p.stdout


def test_a_trickling_metrics_client_stalls_nothing(lab):
    trickler = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-lb", "python3", "-c", METRICS_TRICKLER],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(0.3)
        assert_responsive(lab, 1.5)
        # Another scraper is served meanwhile.
        assert metrics_ok()
        out, err = trickler.communicate(timeout=15)
    finally:
        if trickler.poll() is None:
            trickler.kill()
            trickler.wait()
    # Closed at the header deadline (2 s): two or three bytes got in.
    sent = json.loads(out)["sent"]
    assert sent <= 3, f"the trickler sent {sent} bytes before rvsd closed ({err})"
    assert metrics_ok()


def test_many_idle_metrics_clients_stall_nothing(lab):
    holders = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-lb", "python3", "-c",
         "import socket, time\n"
         "s = [socket.create_connection(('127.0.0.1', 9477)) for _ in range(50)]\n"
         "print('ready', flush=True)\n"
         "time.sleep(3)\n"],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holders.stdout.readline().strip() == "ready"
        assert_responsive(lab, 1.5)
        assert metrics_ok()
    finally:
        holders.kill()
        holders.wait()
