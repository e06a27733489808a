"""`rvsadm -L -n -c` pages through the workers' session tables.

A worker copies at most 4096 sessions and examines at most 65536 slots per
housekeeping round (dataplane/src/worker.rs, `DUMP_TAKE`, `DUMP_SCAN`);
control asks each worker page by page. Here two workers with 200000 slots
each (four scan pages per table) hold more than 4096 sessions between them,
and the listing shows every one of them, once, while `rvsadm -L -n` keeps
answering.
"""

from __future__ import annotations

import subprocess
import time

import rvslab
from rvslab import VIP, VIP_PORT

CONNS = 9000

# Opens N connections to the VIP (non-blocking connects from distinct
# ports), says "open", and keeps them until stdin closes.
MANY = r"""
import resource, socket, sys
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
resource.setrlimit(resource.RLIMIT_NOFILE, (n + 100, n + 100))
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    socks.append(s)
print("open", flush=True)
sys.stdin.read()
"""


def rvsd_config(text: str) -> str:
    text = rvslab.set_key(text, "dataplane", "worker_lcores", "[1, 2]")
    text = rvslab.set_key(text, "dataplane", "session_capacity", "200000")
    return rvslab.set_key(text, "dpdk", "lcore_map", '"0@0,1@1,2@1"')


def sessions_in_table(lab) -> int:
    return sum(w.sessions for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout))


def test_listing_pages_through_many_sessions(lab):
    client = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-client", "python3", "-c", MANY, str(CONNS), VIP,
         str(VIP_PORT)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = client.stdout.readline().strip()
        assert line == "open", f"client: {line!r} {client.stderr.read()!r}"

        def all_in():
            n = sessions_in_table(lab)
            assert n >= CONNS, f"{n} sessions of {CONNS} so far"
            return n

        rvslab.wait_until(f"{CONNS} sessions in the tables", all_in, timeout=30)
        t0 = time.monotonic()
        out = lab.rvsadm("-L", "-n", "-c", timeout=30).stdout
        took = time.monotonic() - t0
        conns = rvslab.parse_connections(out)
        mine = [c for c in conns if c.virtual == f"{VIP}:{VIP_PORT}"]
        sources = {c.source for c in mine}
        assert len(sources) == len(mine), "a session listed twice"
        assert len(mine) >= CONNS, f"listed {len(mine)} of at least {CONNS} sessions"
        # Both workers' tables were paged (flows spread by hash).
        workers = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)
        assert all(w.sessions > 0 for w in workers), workers
        assert took < 10, f"listing {len(mine)} sessions took {took:.1f} s"
        # The control loop is not held by the listing: quick answers after it.
        for _ in range(5):
            t0 = time.monotonic()
            lab.rvsadm("-L", "-n")
            assert time.monotonic() - t0 < 1
    finally:
        client.stdin.close()
        client.kill()
        client.wait(timeout=10)
