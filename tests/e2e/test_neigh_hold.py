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
