"""Health checks of TUN (IP-in-IP) servers on the appliance's subnet reach
the service on the VIP, as for DR (test_health_dr.py): the probe is
policy-routed to the server's MAC with the VIP as destination, not
encapsulated (this lab's kernel has no ipip module to do that), and the
server, which holds the VIP on its decapsulator's TUN device
(test_tun.py's fixture), answers from the VIP.

A TUN service on VIP:8080 with an http check, HTTP servers on VIP:8080 in
both servers (rs1's also on RIP:8080): stopping rs1's VIP listener takes rs1
down although its own address still serves; starting it brings rs1 back."""

from __future__ import annotations

import subprocess

import rvslab
from rvslab import RUN, VIP
from test_tun import tun_servers  # noqa: F401 (module fixture: decapsulators, VIP on the servers)

PORT = 8080
INTERVAL, RISE, FALL = 0.5, 2, 2
RS1, RS2 = rvslab.REAL_SERVERS["rs1"], rvslab.REAL_SERVERS["rs2"]

SERVICE = f"""
[[service]]
vip = "{VIP}:{PORT}"
scheduler = "rr"
forward = "tun"

[service.health_check]
kind = "http"
interval = {INTERVAL}
timeout = 0.4
rise = {RISE}
fall = {FALL}

[[service.real_server]]
address = "{RS1}:{PORT}"

[[service.real_server]]
address = "{RS2}:{PORT}"
"""


def rvsd_config(text: str) -> str:
    return rvslab.append_service(text, SERVICE)


def http_on(node: str, ip: str) -> subprocess.Popen:
    return subprocess.Popen(
        ["ip", "netns", "exec", f"rvs-{node}", "python3", "-m", "http.server", str(PORT), "--bind", ip,
         "--directory", str(RUN / node)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


def serving(node: str, ip: str) -> bool:
    p = rvslab.in_ns(node, ["curl", "-s", "--max-time", "1", f"http://{ip}:{PORT}/"])
    assert p.stdout.strip() == node, p
    return True


def weights(lab) -> dict[str, int]:
    services = [s for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout) if s.address == f"{VIP}:{PORT}"]
    assert len(services) == 1, services
    return {s.address: s.weight for s in services[0].servers}


def test_stopping_the_vip_listener_takes_a_tun_server_down(lab):
    servers = {n: http_on(n, VIP) for n in ("rs1", "rs2")}
    rip_server = http_on("rs1", RS1)
    try:
        for n in ("rs1", "rs2"):
            rvslab.wait_until(f"HTTP on {VIP}:{PORT} in rvs-{n}", lambda n=n: serving(n, VIP), timeout=10)
        rvslab.wait_until(f"HTTP on {RS1}:{PORT}", lambda: serving("rs1", RS1), timeout=10)
        both = {f"{RS1}:{PORT}": 1, f"{RS2}:{PORT}": 1}
        rvslab.wait_until("both TUN servers up", lambda: weights(lab) == both or None, 10)
        servers["rs1"].terminate()
        servers["rs1"].wait(timeout=5)
        rvslab.wait_until("rs1 inhibited", lambda: weights(lab)[f"{RS1}:{PORT}"] == 0 or None, INTERVAL * FALL + 1 + 5)
        assert f"real server {RS1}:{PORT} of TCP/{VIP}:{PORT} is DOWN (connect:" in lab.rvsd.log_text()
        servers["rs1"] = http_on("rs1", VIP)
        rvslab.wait_until("rs1 back", lambda: weights(lab) == both or None, INTERVAL * RISE + 1 + 5)
    finally:
        for p in [*servers.values(), rip_server]:
            p.terminate()
            p.wait(timeout=5)
