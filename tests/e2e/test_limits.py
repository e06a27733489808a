"""A full session table and an exhausted local-port pool refuse new
connections with counters, keep memory bounded, and leave established
connections alone. One worker, 4 sessions, plenty of ports (the table fills
first); the port-pool case is in test_port_pool.py."""

from __future__ import annotations

import rvslab
from rvslab import VIP

LIMIT = 4


def rvsd_config(text: str) -> str:
    return rvslab.set_key(text, "dataplane", "session_capacity", str(LIMIT))


def check_limit(lab, reason: str):
    # LIMIT idle connections fill the table (or the port pool) and stay
    # ESTABLISHED; they are used only after the flood.
    held = rvslab.HeldConnections(LIMIT)
    try:
        before = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)[0]
        assert before.sessions == LIMIT, before
        rss_before = rvslab.rvsd_rss_kib(lab.rvsd.proc.pid)
        rvslab.syn_burst(300)
        refused = rvslab.client_curl(f"http://{VIP}/", max_time=2)
        assert refused.returncode != 0, "a connection got through a full table"
        after = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)[0]
        grew = rvslab.rvsd_rss_kib(lab.rvsd.proc.pid) - rss_before
        assert after.drops.get(reason, 0) - before.drops.get(reason, 0) >= 300, after.drops
        assert after.sessions == LIMIT, after
        assert grew < 4096, f"rvsd grew by {grew} KiB under a refused SYN flood"
        # The established connections were not hurt: each still gets its answer.
        result = held.use()
        assert result == {"ok": LIMIT, "errors": []}, result
    finally:
        held.kill()
    # Once the held sessions expire, new connections get through again.
    def accepted():
        p = rvslab.client_curl(f"http://{VIP}/", max_time=2)
        assert p.returncode == 0, f"curl exit {p.returncode}"
        return True
    rvslab.wait_until("a new connection after the table drained", accepted, timeout=20)


def test_full_session_table_refuses_new_keeps_established(lab):
    check_limit(lab, "session_table_full")
