"""LVS exactness (issue #17): what the kernel's IPVS does that an operator's
scripts rely on, typed as the operator types it.

- A real server added at run time (`rvsadm -a`) is resolved at once, as the
  servers of the file are at start-up: its neighbour entry appears before any
  traffic, and the first connection to it goes straight through.
- A service with no usable real server answers a new TCP connection or UDP
  datagram with ICMP (ICMPv6) port unreachable, as the kernel's
  `ip_vs_leave` does: a real client sees "connection refused" at once.
"""

from __future__ import annotations

import re
import socket
import subprocess
import time

import pytest

import rvslab
from rvslab import RUN, VIP, VIP6

ADDED_RS = "10.77.0.15"


def neigh_state(lab, ip: str) -> str:
    """The state `rvsadm neigh show` lists for IP ('' when not listed)."""
    for line in lab.rvsadm("neigh", "show", check=True).stdout.splitlines():
        words = line.split()
        if words and words[0] == ip:
            return words[-1]
    return ""


def misses(lab) -> int:
    stats = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout)
    return sum(w.drops.get("neighbour_miss", 0) for w in stats)


def created(lab) -> int:
    return sum(w.created for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout))


def test_a_server_added_at_run_time_is_resolved_before_any_traffic(lab):
    rvslab.in_ns("rs1", ["ip", "addr", "add", f"{ADDED_RS}/24", "dev", "eth0"], check=True)
    server = subprocess.Popen(["ip", "netns", "exec", "rvs-rs1", "python3", "-m", "http.server", "80", "--bind", ADDED_RS,
                               "--directory", str(RUN / "rs1")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    svc = f"{VIP}:80"
    try:
        rvslab.wait_until(f"HTTP on {ADDED_RS}", lambda: rvslab.in_ns("rs1", ["curl", "-s", "--max-time", "1", f"http://{ADDED_RS}/"]).stdout.strip() == "rs1", timeout=10)
        assert neigh_state(lab, ADDED_RS) == "", "the new address is unknown before the test"
        sessions_before = created(lab)
        lab.rvsadm("-a", "-t", svc, "-r", f"{ADDED_RS}:80", "-w", "1", "--fullnat", check=True)
        # No packet to the server yet: the entry comes from the -a alone.
        state = rvslab.wait_until(f"{ADDED_RS} resolved", lambda: neigh_state(lab, ADDED_RS) if neigh_state(lab, ADDED_RS) == "REACHABLE" else None, timeout=5)
        assert state == "REACHABLE"
        assert created(lab) == sessions_before, "no connection was made while the server was resolved"
        for rs in ("10.77.0.11:80", "10.77.0.12:80"):
            lab.rvsadm("-e", "-t", svc, "-r", rs, "-w", "0", "--fullnat", check=True)
        before = misses(lab)
        proc = rvslab.client_curl(f"http://{VIP}/", "-w", " %{time_connect}")
        assert proc.returncode == 0, proc
        body, connect = proc.stdout.split()
        assert body == "rs1"
        assert misses(lab) == before
        assert float(connect) < 0.9, f"connect took {connect} s"
    finally:
        server.terminate()
        server.wait(timeout=5)
        lab.rvsadm("-d", "-t", svc, "-r", f"{ADDED_RS}:80")
        for rs in ("10.77.0.11:80", "10.77.0.12:80"):
            lab.rvsadm("-e", "-t", svc, "-r", rs, "-w", "1", "--fullnat")
        rvslab.in_ns("rs1", ["ip", "addr", "del", f"{ADDED_RS}/24", "dev", "eth0"])


EMPTY_PORT = 81

UDP_REFUSED = """
import socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.connect((host, port))
s.send(b"hello")
try:
    s.recv(100)
    print("answered")
except ConnectionRefusedError:
    print("refused")
except socket.timeout:
    print("timeout")
"""


def drops(lab, reason: str) -> int:
    return sum(w.drops.get(reason, 0) for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout))


@pytest.mark.parametrize("vip", [VIP, VIP6], ids=["ipv4", "ipv6"])
def test_a_service_without_real_servers_refuses_at_once(lab, vip):
    tcp = rvslab.endpoint(vip, EMPTY_PORT)
    lab.rvsadm("-A", "-t", tcp, "-s", "rr", check=True)
    lab.rvsadm("-A", "-u", tcp, "-s", "rr", check=True)
    try:
        before = drops(lab, "port_unreachable")
        start = time.monotonic()
        proc = rvslab.client_curl(rvslab.http_url(vip, port=EMPTY_PORT))
        took = time.monotonic() - start
        # curl: exit 7, "Failed to connect ... Connection refused".
        assert proc.returncode == 7, proc
        assert took < 1.0, f"refused after {took:.2f} s (a silent drop waits for the SYN retries)"
        out = rvslab.in_ns("client", ["python3", "-c", UDP_REFUSED, vip, str(EMPTY_PORT)], check=True).stdout.strip()
        assert out == "refused", out
        rvslab.wait_until("both counted", lambda: drops(lab, "port_unreachable") >= before + 2, timeout=5)
        assert drops(lab, "port_unreachable") == before + 2
    finally:
        lab.rvsadm("-D", "-t", tcp)
        lab.rvsadm("-D", "-u", tcp)


SYN_BURST = """
import errno, select, socket, sys, time
src, dst, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
socks = []
for _ in range(n):
    s = socket.socket()
    s.bind((src, 0))
    s.setblocking(False)
    s.connect_ex((dst, 80))
    socks.append(s)
time.sleep(0.5)  # before the first SYN retransmission (1 s)
print(sum(s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == errno.ECONNREFUSED for s in socks))
"""

BURST_SRC = "10.77.0.31"


def test_all_servers_at_weight_zero_refuse_and_answers_are_rate_limited(lab):
    """Ten SYNs from one client at once: six refused (the kernel's burst of
    ICMP errors per peer), four dropped silently as no_real_server."""
    svc = f"{VIP}:80"
    rvslab.in_ns("client", ["ip", "addr", "add", f"{BURST_SRC}/24", "dev", "eth0"], check=True)
    for rs in ("10.77.0.11:80", "10.77.0.12:80"):
        lab.rvsadm("-e", "-t", svc, "-r", rs, "-w", "0", "--fullnat", check=True)
    try:
        before = (drops(lab, "port_unreachable"), drops(lab, "no_real_server"))
        refused = rvslab.in_ns("client", ["python3", "-c", SYN_BURST, BURST_SRC, VIP, "10"], check=True).stdout.strip()
        assert refused == "6"
        rvslab.wait_until("all counted", lambda: drops(lab, "port_unreachable") + drops(lab, "no_real_server") >= sum(before) + 10, timeout=5)
        assert drops(lab, "port_unreachable") - before[0] == 6
        assert drops(lab, "no_real_server") - before[1] == 4
    finally:
        for rs in ("10.77.0.11:80", "10.77.0.12:80"):
            lab.rvsadm("-e", "-t", svc, "-r", rs, "-w", "1", "--fullnat")
        rvslab.in_ns("client", ["ip", "addr", "del", f"{BURST_SRC}/24", "dev", "eth0"])


def restore(lab, text: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(rvslab.RVSADM), "-R"], input=text, text=True, capture_output=True,
                          env={"RVS_SOCKET": str(lab.socket)}, timeout=10)


def services(lab) -> set[str]:
    return {s.address for s in rvslab.parse_services(lab.rvsadm("-L", "-n", check=True).stdout)}


def test_restore_goes_on_past_a_refused_line_as_ipvsadm_does(lab):
    """ipvsadm's restore_table: a line the kernel refuses prints the reason,
    the next line goes on; the exit code is the last line's."""
    a, b = f"{VIP}:8001", f"{VIP}:8002"
    try:
        proc = restore(lab, f"-A -t {VIP}:80 -s rr   # exists already\n-A -t {a} -s rr\n")
        assert (proc.returncode, proc.stderr) == (0, "Service already exists\n"), proc
        assert a in services(lab)
        proc = restore(lab, f"-A -t {b} -s wlc\n-A -t {a} -s rr\n")
        assert (proc.returncode, proc.stderr) == (255, "Service already exists\n"), proc
        assert b in services(lab)
        # popt's own errors do not stop it either.
        lab.rvsadm("-D", "-t", b, check=True)
        proc = restore(lab, f"-A -t {VIP}:8003 --bogus\n-A -t {b} -s rr\n")
        assert (proc.returncode, proc.stderr) == (0, "--bogus: unknown option\n"), proc
        assert b in services(lab) and f"{VIP}:8003" not in services(lab)
    finally:
        for svc in (a, b, f"{VIP}:8003"):
            lab.rvsadm("-D", "-t", svc, check=False)


def test_restore_stops_where_ipvsadm_fails(lab):
    """A line ipvsadm `fail`s on ends the restore with exit 2; the lines
    before it stay applied, those after it are not run. `Try ...` (exit
    255) likewise, as for `-R` inside a restore."""
    a, b = f"{VIP}:8004", f"{VIP}:8005"
    try:
        proc = restore(lab, f"-A -t {a} -s rr\n-a -t {a} -r 10.77.0.11:80 -w 65536\n-A -t {b} -s rr\n")
        assert (proc.returncode, proc.stderr) == (2, "illegal weight specified\n"), proc
        assert a in services(lab) and b not in services(lab)
        proc = restore(lab, f"-R\n-A -t {b} -s rr\n")
        assert proc.returncode == 255, proc
        assert proc.stderr == "Try `rvsadm -h' or 'rvsadm --help' for more information.\n", proc
        assert b not in services(lab)
    finally:
        for svc in (a, b):
            lab.rvsadm("-D", "-t", svc, check=False)


def rvsadm_with_hosts(lab, hosts: str, *args: str) -> subprocess.CompletedProcess:
    """rvsadm ARGS seeing HOSTS as /etc/hosts and a resolv.conf whose only
    nameserver (127.0.0.1 in rvs-client) refuses at once: names come from
    the hosts file or not at all. A private mount namespace keeps the
    machine's files untouched."""
    h = lab.workdir / "hosts"
    r = lab.workdir / "resolv.conf"
    h.write_text(hosts)
    r.write_text("nameserver 127.0.0.1\n")
    script = f'mount --bind {h} /etc/hosts && mount --bind {r} /etc/resolv.conf && exec "$@"'
    return subprocess.run(["ip", "netns", "exec", "rvs-client", "unshare", "-m", "sh", "-c", script, "sh",
                           str(rvslab.RVSADM), *args], capture_output=True, text=True, timeout=20,
                          env={"RVS_SOCKET": str(lab.socket), "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


def test_listing_without_n_prints_names_as_ipvsadm(lab):
    hosts = f"{VIP}\tvip.lab\n10.77.0.11 rs1.lab rs1\n"
    proc = rvsadm_with_hosts(lab, hosts, "-L")
    assert proc.returncode == 0, proc
    lines = proc.stdout.splitlines()
    assert "TCP  vip.lab:http rr" in lines, proc.stdout
    # ipvsadm's "  -> %-28s %-7s %-6d %-10d %-10d".
    assert any(l.startswith(f"  -> {'rs1.lab:http':<28} FullNat ") for l in lines), proc.stdout
    assert any(l.startswith(f"  -> {'10.77.0.12:http':<28} FullNat ") for l in lines), proc.stdout
    saved = rvsadm_with_hosts(lab, hosts, "-S").stdout
    assert "-A -t vip.lab:http -s rr\n" in saved, saved
    # -n: numbers, whatever the hosts file says.
    numeric = rvsadm_with_hosts(lab, hosts, "-L", "-n").stdout
    assert f"TCP  {VIP}:80 rr" in numeric.splitlines() and "rs1.lab" not in numeric, numeric


def test_connection_listing_shows_persistence_templates_as_the_kernel(lab):
    """`-L -n -c` lists a persistent service's templates as the kernel's
    /proc/net/ip_vs_conn does: state NONE, the client with port 0."""
    svc = f"{VIP}:80"
    lab.rvsadm("-E", "-t", svc, "-s", "rr", "-p", "60", check=True)
    try:
        body = rvslab.client_curl(f"http://{VIP}/").stdout.strip()
        assert body in ("rs1", "rs2")
        rs = rvslab.REAL_SERVERS[body]
        lines = lab.rvsadm("-L", "-n", "-c", check=True).stdout.splitlines()
        templates = [l for l in lines if " NONE " in l]
        assert len(templates) == 1, lines
        t = templates[0]
        # ipvsadm's "%-3s %-6s %-11s %-18s %-18s %s".
        assert re.fullmatch(r"TCP (00:[0-5]\d|01:00)  ", t[:11]), t
        assert t[11:] == f"{'NONE':<11} {rvslab.CLIENT_IP + ':0':<18} {svc:<18} {rs}:80", t
        # `--persistent-conn` adds ipvsadm's pe columns to the header
        # (list_conn: "%-18s %-16s %s", "destination", "pe name", "pe_data");
        # lines without a persistence engine keep the plain format
        # (print_conn with n != 11), the same lines as without it.
        pc = lab.rvsadm("-L", "-n", "-c", "--persistent-conn", check=True).stdout.splitlines()
        assert pc[:2] == [
            "IPVS connection entries",
            f"pro expire {'state':<11} {'source':<18} {'virtual':<18} {'destination':<18} {'pe name':<16} pe_data",
        ], pc
        assert [l[11:] for l in pc if " NONE " in l] == [t[11:]], pc
    finally:
        lab.rvsadm("-E", "-t", svc, "-s", "rr", check=True)
