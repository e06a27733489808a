"""Schedulers on the real DPDK path with two workers: `wrr` with weights 2
and 1 splits new connections 2:1, and weight 0 drains a server while a long
transfer to it completes.

Config (one rvsd for the module): two workers sharing CPU 1, `scheduler =
"wrr"`, rs1 weight 2, rs2 weight 1. The drain test changes a weight at run
time with `rvsadm -e`, then puts it back.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time

import rvslab
from rvslab import REAL_SERVERS, RUN, VIP

SVC = f"{VIP}:80"
ADDR_OF = {name: f"{ip}:80" for name, ip in REAL_SERVERS.items()}
NAME_OF = {addr: name for name, addr in ADDR_OF.items()}


def rvsd_config(text: str) -> str:
    text = rvslab.set_key(text, "dataplane", "worker_lcores", "[1, 2]")
    text = rvslab.set_key(text, "dpdk", "lcore_map", '"0@0,1@1,2@1"')
    text = rvslab.set_key(text, "service", "scheduler", '"wrr"')
    # The first [[service.real_server]] is rs1.
    return rvslab.set_key(text, "service.real_server", "weight", "2")


# N new connections, one after the other, each GET / then close; prints the
# bodies as JSON.
SEQUENTIAL_CLIENT = r"""
import json, socket, sys
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
bodies, errors = [], []
for i in range(n):
    try:
        s = socket.create_connection((host, port), timeout=10)
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.0 200"):
            errors.append(f"answer {i}: {head[:40]!r}")
        bodies.append(body.decode(errors="replace").strip())
    except OSError as e:
        errors.append(f"connection {i}: {e}")
print(json.dumps({"bodies": bodies, "errors": errors}))
"""


def sequential_requests(n: int) -> dict:
    proc = rvslab.in_ns("client", ["python3", "-c", SEQUENTIAL_CLIENT, str(n), VIP, "80"], timeout=180)
    assert proc.returncode == 0, f"client failed: {proc.stderr}"
    return json.loads(proc.stdout)


def stats(lab):
    # Per-worker lines only (newer rvsadm also prints per-port lines).
    out = lab.rvsadm("--stats-dp").stdout
    return rvslab.parse_worker_stats("\n".join(l for l in out.splitlines() if not l.startswith("port ")))


def test_listing_shows_wrr_and_weights(lab):
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    assert services[0].scheduler == "wrr", services[0].line
    assert {s.address: s.weight for s in services[0].servers} == {ADDR_OF["rs1"]: 2, ADDR_OF["rs2"]: 1}


def test_wrr_weights_2_and_1_split_300_connections_2_to_1(lab):
    before = stats(lab)
    result = sequential_requests(300)
    assert not result["errors"], result["errors"][:10]
    bodies = result["bodies"]
    assert len(bodies) == 300
    rs1, rs2 = bodies.count("rs1"), bodies.count("rs2")
    assert rs1 + rs2 == 300, f"unexpected bodies: {set(bodies)}"
    # 2:1 is 200/100; allow +-10 %.
    assert 180 <= rs1 <= 220 and 80 <= rs2 <= 120, f"rs1 {rs1}, rs2 {rs2}"
    created = [a.created - b.created for a, b in zip(stats(lab), before)]
    assert sum(created) == 300, created
    assert all(c > 0 for c in created), f"a worker scheduled nothing: {created}"


def established(lab):
    conns = rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout)
    return [c for c in conns if c.state == "ESTABLISHED"]


def test_weight_zero_drains_while_a_long_transfer_completes(lab):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    target = lab.workdir / "drain.bin"
    # 10 MB at 1 MB/s: about ten seconds on one connection.
    download = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", "1M", "--max-time", "90",
         "-o", str(target), f"http://{VIP}/big.bin"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    weight = {s.address: s.weight for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers}
    drained = None
    try:
        def one_established():
            live = established(lab)
            assert len(live) == 1, f"{len(live)} established: {live}"
            return live[0]
        conn = rvslab.wait_until("the download to be established", one_established, timeout=15)
        drained = conn.destination
        other = next(a for a in ADDR_OF.values() if a != drained)
        lab.rvsadm("-e", "-t", SVC, "-r", drained, "--fullnat", "-w", "0")
        listed = {s.address: s for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers}
        assert listed[drained].weight == 0
        assert listed[drained].active == 1, f"the download is not counted on {drained}: {listed[drained].line}"
        time.sleep(0.2)  # both workers take the snapshot (1 ms housekeeping)
        # New connections all go to the other server while the download runs.
        result = sequential_requests(40)
        assert not result["errors"], result["errors"][:10]
        assert set(result["bodies"]) == {NAME_OF[other]}, \
            f"drained {drained} still got new connections: {result['bodies']}"
        assert download.poll() is None, "the download ended before the drain was tested; make it longer"
        # The download to the drained server completes intact.
        assert download.wait(timeout=90) == 0, f"download failed: {download.stderr.read()!r}"
        assert hashlib.sha256(target.read_bytes()).hexdigest() == served, "download corrupted"

        def drained_idle():
            s = {x.address: x for x in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers}[drained]
            assert s.active == 0, s.line
            return True
        rvslab.wait_until(f"{drained} to have no active connection", drained_idle, timeout=10)
        for w in stats(lab):
            assert w.drops.get("no_real_server", 0) == 0, w.drops
    finally:
        if download.poll() is None:
            download.kill()
        if drained is not None:
            lab.rvsadm("-e", "-t", SVC, "-r", drained, "--fullnat", "-w", str(weight[drained]))
