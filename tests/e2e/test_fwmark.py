"""Firewall-mark services (`ipvsadm -A -f 1`) on the real DPDK path.

Config: beside the lab's TCP service at 10.77.0.100:80, mark 1 is given by
two `[[mark]]` rules (rvs has no netfilter: they stand for `iptables -t
mangle -A PREROUTING -d 10.77.0.110 -p tcp -m multiport --dports 80,8080
-j MARK --set-mark 1`, and the same for UDP 5353) to TCP 80 and 8080 and
UDP 5353 at 10.77.0.110, and the service of mark 1 is FULLNAT, rr,
persistent, with rs1 and rs2 without a port: each connection keeps the port
it was sent to (HTTP on 80, a second HTTP server on 8080, a UDP echo on
5353, all on both servers). The classic use: one client sticks to one
server over every port of the mark (http + https).

What a client sees: it reaches 10.77.0.110 at all (rvsd answers ARP for a
mark's host address, as for a VIP); all its connections, TCP and UDP, to
either port land on one server; what rvsadm prints is ipvsadm's (`FWM  1`,
the template `IP ... 0.0.0.1:0`), and `-S` | `-R` and `--export-config`
round-trip.
"""

from __future__ import annotations

import re
import subprocess

import pytest

import rvslab
from rvslab import CLIENT_IP, LOCAL_ADDR

MARKED = "10.77.0.110"
ECHO_PORT = 5353
RS = rvslab.REAL_SERVERS

MARK_CONFIG = f"""
[[mark]]
mark = 1
addresses = ["{MARKED}"]
protocol = "tcp"
ports = [80, 8080]

[[mark]]
mark = 1
addresses = ["{MARKED}/32"]
protocol = "udp"
ports = [{ECHO_PORT}]

[[service]]
fwmark = 1
scheduler = "rr"
persistent = 300
local_addresses = ["{LOCAL_ADDR}"]

[[service.real_server]]
address = "{RS['rs1']}"

[[service.real_server]]
address = "{RS['rs2']}"
"""


def rvsd_config(text: str) -> str:
    return rvslab.append_service(text, MARK_CONFIG)


@pytest.fixture(scope="module")
def servers(lab):
    """HTTP on 8080 (the lab's pages) and a UDP echo on 5353, on rs1 and rs2."""
    procs = [subprocess.Popen(["ip", "netns", "exec", f"rvs-{n}", "python3", "-m", "http.server", "8080",
                               "--bind", ip, "--directory", str(rvslab.RUN / n)],
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True) for n, ip in RS.items()]
    echoes = [rvslab.UdpEcho(n, ECHO_PORT) for n in RS]
    try:
        for n, ip in RS.items():
            rvslab.wait_until(f"HTTP on {ip}:8080", lambda: rvslab.in_ns(
                n, ["curl", "-s", "--max-time", "1", f"http://{ip}:8080/"]).stdout.strip() == n, timeout=10)
        yield
    finally:
        for e in echoes:
            e.stop()
        for p in procs:
            p.terminate()
            p.wait(timeout=10)


def server(addr: str, forward: str = "FullNat", weight: int = 1) -> str:
    """ipvsadm's server line: "  -> %-28s %-7s %-6d %-10d %-10d", no connections."""
    return f"  -> {addr:<28} {forward:<7} {weight:<6} {0:<10} {0:<10}"


def listing(lab, *extra: str) -> list[str]:
    """`rvsadm -L -n` without its version line."""
    return lab.rvsadm("-L", "-n", *extra).stdout.splitlines()[1:]


def test_listing_is_ipvsadms(lab):
    assert listing(lab) == [
        "Prot LocalAddress:Port Scheduler Flags",
        "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
        "TCP  10.77.0.100:80 rr",
        server("10.77.0.11:80"),
        server("10.77.0.12:80"),
        "FWM  1 rr persistent 300",
        server("10.77.0.11:0"),
        server("10.77.0.12:0"),
    ]
    one = lab.rvsadm("-L", "-n", "-f", "1").stdout.splitlines()
    assert one[2:] == ["FWM  1 rr persistent 300", server("10.77.0.11:0"), server("10.77.0.12:0")], one
    missing = lab.rvsadm("-L", "-n", "-f", "2", check=False)
    assert (missing.returncode, missing.stderr.strip()) == (1, "No such service"), missing


def test_one_client_sticks_to_one_server_over_every_port_of_the_mark(lab, servers):
    names = []
    for i in range(4):
        for port in (80, 8080):
            p = rvslab.client_curl(f"http://{MARKED}:{port}/")
            assert p.returncode == 0, (port, p)
            names.append(p.stdout.strip())
        u = rvslab.socat_udp(MARKED, ECHO_PORT, f"u{i}")
        assert u.returncode == 0 and u.stdout, u
        names.append(u.stdout.split()[0])
    assert len(set(names)) == 1 and names[0] in RS, f"the client moved between servers: {names}"
    # The template is the kernel's fwmark template: protocol IP, the masked
    # client with port 0, the mark as the address, the server with port 0.
    conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
    templates = [c for c in conns if c.state == "NONE"]
    assert [(c.protocol, c.source, c.virtual, c.destination) for c in templates] == [
        ("IP", f"{CLIENT_IP}:0", "0.0.0.1:0", f"{RS[names[0]]}:0")], conns
    # The connections name the address and port they went to.
    virtuals = {c.virtual for c in conns if c.state != "NONE"}
    assert virtuals <= {f"{MARKED}:80", f"{MARKED}:8080", f"{MARKED}:{ECHO_PORT}"}, virtuals
    stats = listing(lab, "--stats")
    fwm = next(l for l in stats if l.startswith("FWM  1 "))
    assert re.fullmatch(r"FWM  1 {27}\s+12\s+\d+\s+\d+\s+\d+\s+\d+", fwm), stats
    # --persistent-conn: Weight PersistConn ActiveConn InActConn.
    persist = listing(lab, "--persistent-conn")
    row = next(l for l in persist if l.startswith(f"  -> {RS[names[0]]}:0 "))
    assert row.split()[2:4] == ["1", "1"], persist


def test_a_port_the_rules_do_not_name_is_not_balanced(lab):
    p = rvslab.client_curl(f"http://{MARKED}:8081/", max_time=2)
    assert p.returncode != 0 and p.stdout == "", p


def without_rules(text: str) -> str:
    """A config without its [[mark]], [[service]] (and sub-tables) and
    [timeouts]: what --export-config's output replaces."""
    keep, out = True, []
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            name = header.strip("[]").strip()
            keep = name not in ("timeouts", "service", "mark") and not name.startswith("service.")
        if keep:
            out.append(line)
    return "".join(out)


def test_save_restore_and_export_round_trip(lab, servers, tmp_path):
    saved = lab.rvsadm("-S", "-n").stdout
    assert "-A -f 1 -s rr -p 300\n" in saved, saved
    assert f"-P -f 1 -z {LOCAL_ADDR}\n-a -f 1 -r {RS['rs1']}:0 --fullnat -w 1\n" in saved, saved
    lab.rvsadm("-C")
    assert listing(lab)[2:] == []
    env = {"RVS_SOCKET": str(lab.socket), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([str(rvslab.RVSADM), "-R"], input=saved, text=True, capture_output=True, env=env, timeout=10)
    assert (proc.returncode, proc.stderr) == (0, ""), proc
    assert lab.rvsadm("-S", "-n").stdout == saved
    p = rvslab.client_curl(f"http://{MARKED}:8080/")
    assert p.returncode == 0 and p.stdout.strip() in RS, p
    # --export-config, as the file's rules, reloads to the same -S.
    original = lab.config.read_text()
    exported = lab.rvsadm("--export-config").stdout
    assert "[[service]]\nfwmark = 1\nscheduler = \"rr\"\n" in exported, exported
    assert (f"[[mark]]\nmark = 1\naddresses = [\"{MARKED}/32\"]\nprotocol = \"tcp\"\nports = [80, 8080]\n"
            in exported), exported
    text = without_rules(original).rstrip("\n") + "\n\n" + exported
    path = tmp_path / "exported.toml"
    path.write_text(text)
    check = subprocess.run([str(rvslab.RVSD), "--check-config", str(path)], capture_output=True, text=True, timeout=20)
    assert check.returncode == 0, (check.stderr, text)
    try:
        lab.rvsadm("-D", "-f", "1")
        lab.config.write_text(text)
        lab.rvsadm("--reload")
        assert lab.rvsadm("-S", "-n").stdout == saved, text
        assert lab.rvsadm("--export-config").stdout == exported
    finally:
        lab.config.write_text(original)
        lab.rvsadm("--reload", check=False)


def test_run_time_changes_answer_as_ipvsadm(lab):
    lab.rvsadm("-A", "-f", "2", "-6", "-s", "wrr")
    lab.rvsadm("-a", "-f", "2", "-6", "-r", "fd77::11", "-g", "-w", "3")
    lab.rvsadm("-E", "-f", "2", "-6", "-s", "sh")
    rows = listing(lab)
    assert rows[rows.index("FWM  2 IPv6 sh"):][:2] == [
        "FWM  2 IPv6 sh", server("[fd77::11]:0", "Route", 3)], rows
    again = lab.rvsadm("-A", "-f", "1", "-s", "rr", check=False)
    assert (again.returncode, again.stderr.strip()) == (255, "Service already exists"), again
    bad = lab.rvsadm("-A", "-f", "0", check=False)
    assert (bad.returncode, bad.stderr.strip()) == (2, "invalid fwmark value `0' specified"), bad
    stolen = lab.rvsadm("-a", "-f", "1", "-r", f"{MARKED}:80", "-m", check=False)
    assert stolen.returncode == 255 and stolen.stderr.startswith(
        f"{MARKED} cannot be a real server {MARKED}:80 of service FWM/1: it is the VIP of mark 1"), stolen
    lab.rvsadm("-D", "-f", "2", "-6")
    gone = lab.rvsadm("-D", "-f", "2", "-6", check=False)
    assert (gone.returncode, gone.stderr.strip()) == (255, "No such service"), gone


def test_an_acl_on_the_mark_refuses_the_client(lab, servers):
    lab.rvsadm("acl", "add", "-f", "1", "deny", f"{CLIENT_IP}/32")
    try:
        assert f"deny {CLIENT_IP}/32" in lab.rvsadm("acl", "list", "-f", "1").stdout
        for port in (80, 8080):
            p = rvslab.client_curl(f"http://{MARKED}:{port}/", max_time=2)
            assert p.returncode != 0 and p.stdout == "", (port, p)
    finally:
        lab.rvsadm("acl", "flush", "-f", "1")
    p = rvslab.client_curl(f"http://{MARKED}:8080/")
    assert p.returncode == 0 and p.stdout.strip() in RS, p
