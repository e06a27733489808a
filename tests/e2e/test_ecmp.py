"""Active-active appliances behind ECMP, VIPs announced over BGP by BIRD
(`scripts/lab up --ecmp 2`): two appliances, each rvsd writing its VIP
route into kernel table 100 ([vip_routes]) for a real BIRD 2 beside it,
which announces it to a router namespace running BIRD 2 too; the router
merges the equal paths into one multipath route (L4 hash) toward the
client.

What is checked is what an operator sees: the router's routing table, which
appliance counted each connection (`rvsadm -L -n --stats`), which real
server answered (the body is the server's name), `rvsadm vips`, the
metrics, and a download's sha256. Flows are pinned to one appliance where a
test needs it with `ip rule ... sport P lookup T` on the router (tables
201/202 hold the VIP via appliance 1/2).

Shares of the ECMP spread: each appliance must take 1/N +- 15 % of the 300
connections (35 %..65 % with two), about 5 standard deviations of a fair
hash. The BGP timers are the lab's: hold 3 s, keepalive 1 s."""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

import rvslab
from rvslab import RUN

VIP = "10.90.0.100"
ECMP = RUN / "ecmp"
APPLIANCES = {1: "10.82.0.21", 2: "10.82.0.22"}
SERVERS = {"rs1": "10.82.0.11", "rs2": "10.82.0.12"}
BIG = RUN / "rs1" / "big.bin"

# 300 GETs from the client, each on a new connection; prints the bodies'
# counts as JSON.
MANY_GETS = r"""
import collections, json, socket, sys
n, host = int(sys.argv[1]), sys.argv[2]
seen = collections.Counter()
for _ in range(n):
    s = socket.create_connection((host, 80), timeout=5)
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while True:
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    seen[data.split(b"\r\n\r\n", 1)[1].decode().strip()] += 1
print(json.dumps(seen))
"""


def socket_of(n: int) -> Path:
    return ECMP / f"lb{n}.sock"


def rvsadm(n: int, *args: str, **kw) -> subprocess.CompletedProcess:
    return rvslab.rvsadm(socket_of(n), *args, **kw)


def router_next_hops() -> set[str]:
    """The next hops of the router's route to the VIP (empty: no route)."""
    text = rvslab.in_ns("rt", ["ip", "route", "show", VIP]).stdout
    return set(re.findall(r"via (\d+\.\d+\.\d+\.\d+)", text))


def wait_next_hops(expected: set[str], timeout: float) -> float:
    """Waits until the router's next hops are EXPECTED; returns the seconds it took."""
    t0 = time.monotonic()
    rvslab.wait_until(f"router next hops {sorted(expected)}",
                      lambda: router_next_hops() == expected or None, timeout=timeout, interval=0.1)
    return time.monotonic() - t0


def conns(n: int) -> int:
    """Connections appliance N scheduled for the VIP (`--stats` Conns)."""
    text = rvsadm(n, "-L", "-n", "--stats").stdout
    line = next(ln for ln in text.splitlines() if ln.startswith(f"TCP  {VIP}:80"))
    return int(line.split()[2])


def many_gets(n: int) -> Counter:
    proc = rvslab.in_ns("client", ["python3", "-c", MANY_GETS, str(n), VIP], timeout=120)
    assert proc.returncode == 0, f"client failed: {proc.stderr}"
    return Counter(json.loads(proc.stdout))


def rvsd_pid(n: int) -> int | None:
    try:
        pid = int((RUN / f"rvsd-lb{n}.pid").read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # A zombie (killed, not yet reaped by init) no longer runs.
    return None if stat.rsplit(")", 1)[1].split()[0] == "Z" else pid


def start(n: int) -> None:
    rvslab.lab("start-rvsd", "--node", f"lb{n}")


@contextlib.contextmanager
def pinned(ports: range, appliance: int):
    """Router rules sending the client's flows from PORTS to APPLIANCE."""
    table = str(200 + appliance)
    rules = [["rule", "add", "pref", "100", "iif", "eth0", "ipproto", "tcp", "sport", str(p), "lookup", table]
             for p in ports]
    for r in rules:
        rvslab.in_ns("rt", ["ip", *r], check=True)
    try:
        yield
    finally:
        for r in rules:
            rvslab.in_ns("rt", ["ip", *(["rule", "del"] + r[2:])])


# GET / from each given client port; the connection is reset on close
# (SO_LINGER 0) so the port can be used again at once, from the same
# address to the same VIP. Prints {port: body} as JSON.
GETS_FROM = r"""
import json, socket, struct, sys
host, ports = sys.argv[1], [int(p) for p in sys.argv[2:]]
out = {}
for p in ports:
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.settimeout(5)
    s.bind(("", p))
    s.connect((host, 80))
    s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data or not data.split(b"\r\n\r\n", 1)[1].endswith(b"\n"):
        chunk = s.recv(4096)
        if not chunk:
            break
        data += chunk
    s.close()
    out[p] = data.split(b"\r\n\r\n", 1)[1].decode().strip()
print(json.dumps(out))
"""


def gets_from(ports: range) -> dict[str, str]:
    proc = rvslab.in_ns("client", ["python3", "-c", GETS_FROM, VIP, *map(str, ports)], timeout=60)
    assert proc.returncode == 0, f"client failed: {proc.stderr}"
    return json.loads(proc.stdout)


@pytest.fixture(scope="module")
def ecmp(request):
    failed_before = request.session.testsfailed
    try:
        rvslab.lab("up", "--ecmp", "2")
        for n, ip in APPLIANCES.items():
            # Per-appliance tables for pinned flows (see `pinned`).
            rvslab.in_ns("rt", ["ip", "route", "add", VIP, "via", ip, "table", str(200 + n)], check=True)
            start(n)
        wait_next_hops(set(APPLIANCES.values()), timeout=30)
        yield
    finally:
        if request.session.testsfailed > failed_before:
            for name in ["rvsd-lb1.log", "rvsd-lb2.log", "ecmp/bird-rt.log", "ecmp/bird-lb1.log"]:
                with contextlib.suppress(OSError):
                    print(f"---- {name} ----\n{(RUN / name).read_text()[-4000:]}")
        rvslab.lab("down")


def test_router_learns_the_vip_from_every_appliance(ecmp):
    assert router_next_hops() == set(APPLIANCES.values())
    for n in APPLIANCES:
        out = rvsadm(n, "vips").stdout
        assert f"{VIP:<40} announced" in out, out
        assert "table 100" in out, out
        metrics = rvslab.in_ns(f"lb{n}", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
        assert f'rvs_vip_route_announced{{vip="{VIP}"}} 1' in metrics
        assert "rvs_draining 0" in metrics
        # rvsd's route in its table, for its BIRD.
        table = rvslab.in_ns(f"lb{n}", ["ip", "route", "show", "table", "100"]).stdout
        assert f"{VIP} dev dpdk0 proto 250" in table, table


def session_line(n: int, port: int) -> str | None:
    """Appliance N's connection-table line of the client's flow from PORT."""
    out = rvsadm(n, "-L", "-n", "-c").stdout
    return next((ln for ln in out.splitlines() if f"10.81.0.10:{port} " in ln), None)


def router_via(dst: str) -> str | None:
    """The router's next hop toward DST."""
    m = re.search(r"via (\d+\.\d+\.\d+\.\d+)", rvslab.in_ns("rt", ["ip", "route", "show", dst]).stdout)
    return m.group(1) if m else None


def test_new_connections_spread_over_appliances_and_servers(ecmp):
    before = {n: conns(n) for n in APPLIANCES}
    bodies = many_gets(300)
    assert sum(bodies.values()) == 300
    taken = {n: conns(n) - before[n] for n in APPLIANCES}
    assert sum(taken.values()) == 300, taken
    for n, k in taken.items():
        assert 0.35 * 300 <= k <= 0.65 * 300, f"appliance {n} took {k} of 300: {taken}"
    # mh with mh-port over two equal servers: both serve about half.
    for name in SERVERS:
        assert 0.30 * 300 <= bodies[name] <= 0.70 * 300, bodies


# Runs after the spread test and the kill -9 on purpose: appliance 2 then
# still holds copies of the restarted appliance 1's earlier sessions, on
# ports appliance 1 lends again (its entry must replace the stale copy).
@pytest.mark.parametrize("sig", ["KILL", "TERM"])
def test_a_dead_or_draining_boxs_flows_carry_on_at_the_survivor_through_sync(ecmp, sig):
    """kill -9 (or SIGTERM: a drain) of the appliance carrying a download:
    the router moves the flow to the survivor (and, once the box is gone,
    its local address), which received the session by sync and serves it,
    to the same real server. After kill -9 the box comes back during the
    download and takes its local address back: the survivor sends it the
    flow it carried (marked carried) and the download still completes."""
    port = 42301 if sig == "KILL" else 42302
    # Slower after kill -9: the box is back before the download ends.
    rate = "400K" if sig == "KILL" else "1M"
    want = hashlib.sha256(BIG.read_bytes()).hexdigest()
    # The boxes route their own local addresses; a peer's only as a backup.
    rvslab.wait_until("the router to learn the local addresses",
                      lambda: router_via("10.83.0.1") == APPLIANCES[1]
                      and router_via("10.83.0.2") == APPLIANCES[2] or None, timeout=15)
    with contextlib.ExitStack() as pin:
        pin.enter_context(pinned(range(port, port + 1), 1))
        dl = subprocess.Popen(
            ["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", rate, "--local-port", str(port),
             "--max-time", "60", f"http://{VIP}/big.bin"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        # The session reaches appliance 2 by sync, to the server appliance 1 chose.
        rvslab.wait_until("appliance 1 to hold the download", lambda: session_line(1, port), timeout=5)
        try:
            synced = rvslab.wait_until("appliance 2 to receive the session",
                                       lambda: session_line(2, port), timeout=10)
        except AssertionError:
            for n in (1, 2):
                m = rvslab.in_ns(f"lb{n}", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
                print(f"---- lb{n} sync metrics ----")
                print("\n".join(l for l in m.splitlines() if l.startswith("rvs_sync")))
                print(rvsadm(n, "-L", "-n", "-c").stdout[-3000:])
            raise
        server = session_line(1, port).split()[-1]
        assert synced.split()[-1] == server, (synced, server)
        pid = rvsd_pid(1)
        assert pid
        subprocess.run(["kill", f"-{sig}", str(pid)], check=True)
        took = wait_next_hops({APPLIANCES[2]}, timeout=6)
        # The router's own choice for the flow from now on (the pin stood
        # for its hash): every path it has left leads to appliance 2.
        pin.close()
        if sig == "TERM":
            # Draining: the local address stays with its box until it stops.
            assert router_via("10.83.0.1") == APPLIANCES[1]
            rvslab.wait_until("appliance 1 to stop after its grace period",
                              lambda: rvsd_pid(1) is None, timeout=15)
        rvslab.wait_until("the dead box's local address to move",
                          lambda: router_via("10.83.0.1") == APPLIANCES[2] or None, timeout=6)
        if sig == "KILL":
            # A killed process takes a moment to go (its memory freed).
            rvslab.wait_until("the killed appliance 1 to be gone",
                              lambda: rvsd_pid(1) is None, timeout=15)
            start(1)
            back_in = back()
            assert dl.poll() is None, "the download ended before appliance 1 came back"
            taken = rvslab.wait_until("appliance 1 to take the carried session back",
                                      lambda: session_line(1, port), timeout=10)
            assert taken.split()[-1] == server, (taken, server)
        body, err = dl.communicate(timeout=90)
    assert dl.returncode == 0, err
    assert hashlib.sha256(body).hexdigest() == want
    print(f"route removed {took:.1f} s after SIG{sig}; the download finished through appliance 2"
          + (f", appliance 1 back in {back_in:.1f} s" if sig == "KILL" else ""))
    if sig == "TERM":
        start(1)
        back()


# Runs right after the flow-survival tests restarted appliance 1: a
# restarted box once scheduled one to nine more connections than the
# twenty this test sends it (its local ports started at the same place
# again, and a server still in TIME_WAIT for such a tuple reset the
# connection); each start now lends from a random point.
def test_mh_picks_the_same_server_on_every_appliance(ecmp):
    ports = range(41001, 41021)
    # Appliance 2 takes no synced sessions meanwhile: its choices are its
    # scheduler's own, not sessions appliance 1 sent it.
    rvsadm(2, "--stop-daemon", "backup", check=True)
    try:
        before = {n: conns(n) for n in APPLIANCES}
        with pinned(ports, 1):
            via1 = gets_from(ports)
        with pinned(ports, 2):
            via2 = gets_from(ports)
        # Each appliance did schedule each flow once.
        took = {n: conns(n) - before[n] for n in APPLIANCES}
        if took != {1: 20, 2: 20}:
            print("DIAG", took, before, via1, via2)
            for n in APPLIANCES:
                print(rvsadm(n, "-L", "-n", "--stats").stdout)
                print(rvsadm(n, "--stats-dp").stdout)
        assert took == {1: 20, 2: 20}
    finally:
        rvsadm(2, "--start-daemon", "backup", check=True)
    assert "backup sync daemon" in rvsadm(2, "-L", "--daemon").stdout
    assert via1 == via2
    assert set(via1.values()) == set(SERVERS), via1


def back() -> float:
    """Waits until appliance 1, started again, is a next hop for the VIP and
    routes its local address; returns the seconds it took."""
    t0 = time.monotonic()
    wait_next_hops(set(APPLIANCES.values()), timeout=30)
    rvslab.wait_until("appliance 1 to route its local address again",
                      lambda: router_via("10.83.0.1") == APPLIANCES[1] or None, timeout=15)
    return time.monotonic() - t0


def test_drain_withdraws_the_route_and_undrain_restores_it(ecmp):
    out = rvsadm(1, "drain", "--stay").stdout
    assert "withdrawn (draining)" in out and "until rvsadm undrain" in out, out
    took = wait_next_hops({APPLIANCES[2]}, timeout=10)
    # New connections all go to the other appliance now.
    before = {n: conns(n) for n in APPLIANCES}
    many_gets(20)
    assert conns(1) == before[1] and conns(2) == before[2] + 20
    metrics = rvslab.in_ns("lb1", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
    assert "rvs_draining 1" in metrics and f'rvs_vip_route_announced{{vip="{VIP}"}} 0' in metrics
    rvsadm(1, "undrain")
    wait_next_hops(set(APPLIANCES.values()), timeout=10)
    print(f"route withdrawn {took:.1f} s after rvsadm drain")


@contextlib.contextmanager
def download_on_appliance_2(port: int):
    """A throttled 10 MB download from client PORT, pinned to appliance 2,
    running while the block runs; afterwards it must have completed with
    the right sha256."""
    want = hashlib.sha256(BIG.read_bytes()).hexdigest()
    with pinned(range(port, port + 1), 2):
        dl = subprocess.Popen(
            ["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", "2M", "--local-port", str(port),
             "--max-time", "60", f"http://{VIP}/big.bin"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(1)
        yield
        body, err = dl.communicate(timeout=60)
    assert dl.returncode == 0, err
    assert hashlib.sha256(body).hexdigest() == want


def test_sigterm_drains_then_stops_and_survivor_flows_are_untouched(ecmp):
    # A throttled 10 MB download pinned to appliance 2 runs throughout.
    with download_on_appliance_2(42001):
        pid = rvsd_pid(1)
        assert pid
        subprocess.run(["kill", "-TERM", str(pid)], check=True)
        took = wait_next_hops({APPLIANCES[2]}, timeout=6)
        # Draining, not stopped: the appliance still answers during the grace period.
        assert rvsd_pid(1) == pid
        assert "draining: rvsd stops in" in rvsadm(1, "vips").stdout
        rvslab.wait_until("appliance 1 to stop after its grace period",
                          lambda: rvsd_pid(1) is None, timeout=15)
    log = (RUN / "rvsd-lb1.log").read_text()
    assert "routes withdrawn, stopping in 8 s" in log and "grace period over" in log
    print(f"route withdrawn {took:.1f} s after SIGTERM")
    start(1)
    wait_next_hops(set(APPLIANCES.values()), timeout=30)


def test_all_servers_down_on_one_appliance_withdraws_its_route_only(ecmp):
    # The servers stop answering appliance 1's health probes (from its
    # interface address) only.
    for rs in SERVERS:
        rvslab.in_ns(rs, ["ip", "route", "add", "blackhole", APPLIANCES[1]], check=True)
    try:
        wait_next_hops({APPLIANCES[2]}, timeout=15)
        out = rvsadm(1, "vips").stdout
        assert "withdrawn (no usable real server)" in out, out
        assert "announced" in rvsadm(2, "vips").stdout
    finally:
        for rs in SERVERS:
            rvslab.in_ns(rs, ["ip", "route", "del", "blackhole", APPLIANCES[1]])
    wait_next_hops(set(APPLIANCES.values()), timeout=15)


def test_kill_9_is_removed_by_the_hold_timer(ecmp):
    with download_on_appliance_2(42101):
        pid = rvsd_pid(1)
        assert pid
        subprocess.run(["kill", "-KILL", str(pid)], check=True)
        # Hold time 3 s (the session ran over the appliance's TAP, gone with rvsd).
        took = wait_next_hops({APPLIANCES[2]}, timeout=6)
        before = conns(2)
        many_gets(20)
        assert conns(2) == before + 20
    print(f"route removed {took:.1f} s after kill -9")
    start(1)
    wait_next_hops(set(APPLIANCES.values()), timeout=30)


# A request sent in two halves from one client port: the headers but the
# last line, then (after a line on stdin) the blank line that ends them;
# prints the body. The connection is idle in between.
IDLE_GET = r"""
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.settimeout(20)
s.bind(("", port))
s.connect((host, 80))
s.sendall(b"GET / HTTP/1.0\r\nHost: x\r\n")
print("half", flush=True)
sys.stdin.readline()
s.sendall(b"\r\n")
data = b""
while True:
    chunk = s.recv(4096)
    if not chunk:
        break
    data += chunk
print(data.split(b"\r\n\r\n", 1)[1].decode().strip(), flush=True)
"""


def test_an_idle_connection_survives_its_appliances_restart(ecmp):
    """A connection idle while its appliance is killed and started again
    (no packet of it passes the survivor meanwhile, which holds it only as
    the peer's copy) finds its session on the restarted box: the box's
    resync request says it has just started, and the survivor's resync
    sends it the sessions held for its local address."""
    port = 42311
    # Last in the module: the hold-timer test restarted appliance 1 just
    # before; its local address is routed to it again first.
    back()
    with pinned(range(port, port + 1), 1):
        cl = subprocess.Popen(["ip", "netns", "exec", "rvs-client", "python3", "-c", IDLE_GET, VIP, str(port)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert cl.stdout.readline().strip() == "half", cl.stderr.read()
            rvslab.wait_until("appliance 1 to hold the connection", lambda: session_line(1, port), timeout=5)
            synced = rvslab.wait_until("appliance 2 to receive it", lambda: session_line(2, port), timeout=10)
            server = synced.split()[-1]
            pid = rvsd_pid(1)
            assert pid
            subprocess.run(["kill", "-KILL", str(pid)], check=True)
            rvslab.wait_until("the killed appliance 1 to be gone", lambda: rvsd_pid(1) is None, timeout=15)
            start(1)
            back()
            restored = rvslab.wait_until("appliance 1 to hold the connection again",
                                         lambda: session_line(1, port), timeout=10)
            assert restored.split()[-1] == server, (restored, server)
            # The rest of the request, through appliance 1 both ways.
            out, err = cl.communicate("go\n", timeout=30)
        finally:
            cl.kill()
    assert cl.returncode == 0, err
    assert out.split()[-1] == next(n for n, ip in SERVERS.items() if server.startswith(ip)), (out, server)
