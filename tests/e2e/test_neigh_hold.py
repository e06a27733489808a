"""Resolution on demand without losing the packet: a new connection to a real
server whose MAC the appliance does not know yet waits in the worker's hold
queue while control resolves it (ARP), and goes on as soon as the new
neighbour snapshot arrives — the client's SYN is not dropped (no
`neighbour_miss`), so it does not have to retransmit."""

from __future__ import annotations

import subprocess

import rvslab
from rvslab import RUN, VIP

NEW_RS = "10.77.0.13"


def misses(lab) -> int:
    stats = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout)
    return sum(w.drops.get("neighbour_miss", 0) for w in stats)


def test_first_packet_to_an_unresolved_server_waits_instead_of_dropping(lab):
    # rs1 answers on a second address the appliance has never seen.
    rvslab.in_ns("rs1", ["ip", "addr", "add", f"{NEW_RS}/24", "dev", "eth0"], check=True)
    server = subprocess.Popen(["ip", "netns", "exec", "rvs-rs1", "python3", "-m", "http.server", "80", "--bind", NEW_RS,
                               "--directory", str(RUN / "rs1")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    svc = f"{VIP}:80"
    try:
        rvslab.wait_until(f"HTTP on {NEW_RS}", lambda: rvslab.in_ns("rs1", ["curl", "-s", "--max-time", "1", f"http://{NEW_RS}/"]).stdout.strip() == "rs1", timeout=10)
        assert NEW_RS not in lab.rvsadm("neigh", "show").stdout
        lab.rvsadm("-a", "-t", svc, "-r", f"{NEW_RS}:80", "-w", "1", "--fullnat", check=True)
        for rs in ("10.77.0.11:80", "10.77.0.12:80"):
            lab.rvsadm("-e", "-t", svc, "-r", rs, "-w", "0", "--fullnat", check=True)
        before = misses(lab)
        proc = rvslab.client_curl(f"http://{VIP}/", "-w", " %{time_connect}")
        assert proc.returncode == 0 and len(proc.stdout.split()) == 2, (proc, misses(lab), lab.rvsadm("neigh", "show").stdout, lab.rvsadm("--stats-dp").stdout)
        body, connect = proc.stdout.split()
        assert body == "rs1", proc
        assert misses(lab) == before, "the SYN was dropped while the server was resolved"
        # No SYN retransmission (Linux waits 1 s before the first one).
        assert float(connect) < 0.9, f"connect took {connect} s"
        assert NEW_RS in lab.rvsadm("neigh", "show").stdout
    finally:
        server.terminate()
        server.wait(timeout=5)
        lab.rvsadm("-d", "-t", svc, "-r", f"{NEW_RS}:80")
        for rs in ("10.77.0.11:80", "10.77.0.12:80"):
            lab.rvsadm("-e", "-t", svc, "-r", rs, "-w", "1", "--fullnat")
        rvslab.in_ns("rs1", ["ip", "addr", "del", f"{NEW_RS}/24", "dev", "eth0"])


HELD_RS = "10.77.0.14"


def change(lab, *args: str) -> None:
    """rvsadm ARGS, then wait until the worker runs the tables it published."""
    gen = lambda: min(w.generation for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp", check=True).stdout))
    before = gen()
    lab.rvsadm(*args, check=True)
    rvslab.wait_until("the worker takes the new tables", lambda: gen() > before, timeout=10)


def test_a_held_connection_keeps_its_server_so_rr_alternates(lab):
    """rr over a resolved server (rs2) and an unresolved one: the SYN held for
    the unresolved server goes there once it is resolved, and is not
    scheduled a second time (which would send two connections in a row to
    rs2): the bodies alternate."""
    rvslab.in_ns("rs1", ["ip", "addr", "add", f"{HELD_RS}/24", "dev", "eth0"], check=True)
    server = subprocess.Popen(["ip", "netns", "exec", "rvs-rs1", "python3", "-m", "http.server", "80", "--bind", HELD_RS,
                               "--directory", str(RUN / "rs1")], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL, start_new_session=True)
    svc = f"{VIP}:80"
    try:
        rvslab.wait_until(f"HTTP on {HELD_RS}", lambda: rvslab.in_ns("rs1", ["curl", "-s", "--max-time", "1", f"http://{HELD_RS}/"]).stdout.strip() == "rs1", timeout=10)
        assert HELD_RS not in lab.rvsadm("neigh", "show").stdout
        change(lab, "-e", "-t", svc, "-r", "10.77.0.11:80", "--fullnat", "-w", "0")
        # rs2 is the only server now: rr's cursor moves past it.
        assert rvslab.client_curl(f"http://{VIP}/").stdout.strip() == "rs2"
        change(lab, "-a", "-t", svc, "-r", f"{HELD_RS}:80", "--fullnat", "-w", "1")
        before = misses(lab)
        bodies = []
        for _ in range(4):
            proc = rvslab.client_curl(f"http://{VIP}/")
            assert proc.returncode == 0, (proc, lab.rvsadm("--stats-dp").stdout)
            bodies.append(proc.stdout.strip())
        assert sorted(set(bodies)) == ["rs1", "rs2"], bodies
        assert all(a != b for a, b in zip(bodies, bodies[1:])), f"rr did not alternate: {bodies}"
        assert misses(lab) == before, "a SYN was dropped while the server was resolved"
        assert HELD_RS in lab.rvsadm("neigh", "show").stdout
    finally:
        server.terminate()
        server.wait(timeout=5)
        lab.rvsadm("-d", "-t", svc, "-r", f"{HELD_RS}:80")
        lab.rvsadm("-e", "-t", svc, "-r", "10.77.0.11:80", "--fullnat", "-w", "1")
        rvslab.in_ns("rs1", ["ip", "addr", "del", f"{HELD_RS}/24", "dev", "eth0"])
