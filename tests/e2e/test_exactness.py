"""LVS exactness (issue #17): what the kernel's IPVS does that an operator's
scripts rely on, typed as the operator types it.

- A real server added at run time (`rvsadm -a`) is resolved at once, as the
  servers of the file are at start-up: its neighbour entry appears before any
  traffic, and the first connection to it goes straight through.
"""

from __future__ import annotations

import subprocess

import rvslab
from rvslab import RUN, VIP

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
