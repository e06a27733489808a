"""A full session table and an exhausted local-port pool refuse new
connections with counters, keep memory bounded, and leave established
connections alone. One worker, 4 sessions, plenty of ports (the table fills
first); the port-pool case is in test_port_pool.py."""

from __future__ import annotations

import hashlib
import subprocess

import rvslab
from rvslab import VIP, RUN

LIMIT = 4


def rvsd_config(text: str) -> str:
    return rvslab.set_key(text, "dataplane", "session_capacity", str(LIMIT))


def hold_downloads(lab, n: int):
    procs = []
    for i in range(n):
        target = lab.workdir / f"hold{i}.bin"
        procs.append((target, subprocess.Popen(
            ["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", "1M",
             "--max-time", "60", "-o", str(target), f"http://{VIP}/big.bin"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)))
    def established():
        conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
        live = [c for c in conns if c.state == "ESTABLISHED"]
        assert len(live) == n, f"{len(live)} established: {conns}"
        return True
    rvslab.wait_until(f"{n} downloads established", established, timeout=15)
    return procs


def check_limit(lab, reason: str):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    held = hold_downloads(lab, LIMIT)
    try:
        before = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)[0]
        rss_before = rvslab.rvsd_rss_kib(lab.rvsd.proc.pid)
        rvslab.syn_burst(300)
        refused = rvslab.client_curl(f"http://{VIP}/", max_time=2)
        assert refused.returncode != 0, "a connection got through a full table"
        after = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)[0]
        grew = rvslab.rvsd_rss_kib(lab.rvsd.proc.pid) - rss_before
        assert after.drops.get(reason, 0) - before.drops.get(reason, 0) >= 300, after.drops
        assert after.sessions <= LIMIT, after
        assert grew < 4096, f"rvsd grew by {grew} KiB under a refused SYN flood"
        for target, proc in held:
            assert proc.wait(timeout=60) == 0, f"established download hurt: {proc.stderr.read()!r}"
            assert hashlib.sha256(target.read_bytes()).hexdigest() == served
    finally:
        for _, proc in held:
            if proc.poll() is None:
                proc.kill()
    # Once the held sessions expire, new connections get through again.
    def accepted():
        p = rvslab.client_curl(f"http://{VIP}/", max_time=2)
        assert p.returncode == 0, f"curl exit {p.returncode}"
        return True
    rvslab.wait_until("a new connection after the table drained", accepted, timeout=20)


def test_full_session_table_refuses_new_keeps_established(lab):
    check_limit(lab, "session_table_full")
