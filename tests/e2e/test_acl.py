"""ACLs and limits per service (issue #21), IPv4 and IPv6, with real
clients: the lab's client gets a second address (10.77.0.30, fd77::30) so
that one host can be two clients. Each rule kind is set at run time with
`rvsadm acl|limit` (the IPv6 service's first rule comes from the file) and
judged the way an operator would: a denied or refused client gets no
connection and no answer at all (its connect times out: silent drop, as
DPVS's blacklist or an nftables `drop`), an allowed one connects; an
established connection is never cut by a later deny; the concurrent limit
refuses the N+1th connection and takes connections again once one ends; the
rate limit admits the burst and refuses the rest until a token comes back;
`icmp_rate = 0` silences the port unreachable of a service with no server.
Every refusal moves its rule's or limit's counter in `rvsadm acl|limit
list`, the drop reason in `--stats-dp` and the counter in /metrics."""

from __future__ import annotations

import json
import re
import subprocess

import pytest

import rvslab
from rvslab import CLIENT_IP, CLIENT_IP6, VIP, VIP6

OTHER = {4: "10.77.0.30", 6: "fd77::30"}
ME = {4: CLIENT_IP, 6: CLIENT_IP6}
VIPS = {4: VIP, 6: VIP6}
METRICS = "http://127.0.0.1:9477/metrics"


def rvsd_config(text: str) -> str:
    # The IPv6 service's first rule comes from the file (a prefix no lab
    # host is in: it shows the file's rules load, list and stay first).
    return rvslab.append_service(text, rvslab.v6_service(extra='acl = ["deny fd99::/16"]'))


@pytest.fixture
def other_client(lab):
    addrs = ([f"{OTHER[4]}/24"], [f"{OTHER[6]}/64", "nodad"])
    for a in addrs:
        rvslab.in_ns("client", ["ip", "addr", "replace", *a, "dev", "eth0"], check=True)
    try:
        yield OTHER
    finally:
        for a in addrs:
            rvslab.in_ns("client", ["ip", "addr", "del", a[0], "dev", "eth0"])


# Connects from SRC to HOST:PORT: first HOLD connections kept open, then
# TRIES more, each closed at once, every connect with TIMEOUT seconds (no
# SYN is retransmitted within it: the first retransmission is 1 s on). Prints {"held": n, "tries": [bool...]};
# with KEEP, waits for a line on stdin before closing the held ones.
CONNECT = r"""
import json, socket, sys
host, port, src = sys.argv[1], int(sys.argv[2]), sys.argv[3]
hold, ntries, timeout, keep = int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6]), sys.argv[7] == "1"
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
def connect():
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.bind((src, 0))
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        return s
    except OSError:
        s.close()
        return None
held = [connect() for _ in range(hold)]
tries = []
for _ in range(ntries):
    s = connect()
    tries.append(s is not None)
    if s:
        s.close()
print(json.dumps({"held": sum(1 for s in held if s), "tries": tries}), flush=True)
if keep:
    sys.stdin.readline()
"""


def connects(family: int, src: str, tries: int, timeout: float = 0.7) -> list[bool]:
    p = rvslab.in_ns("client", ["python3", "-c", CONNECT, VIPS[family], "80", src, "0",
                                str(tries), str(timeout), "0"], timeout=30, check=True)
    return json.loads(p.stdout.strip().splitlines()[-1])["tries"]


class Holder:
    """HOLD connections from SRC kept open, then TRIES more, reported."""

    def __init__(self, family: int, src: str, hold: int, tries: int, timeout: float = 0.7):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", "rvs-client", "python3", "-c", CONNECT, VIPS[family], "80",
             src, str(hold), str(tries), str(timeout), "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line, self.proc.stderr.read()
        self.result = json.loads(line)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.communicate("done\n", timeout=10)


def service_arg(family: int, port: int = 80) -> list[str]:
    return ["-t", rvslab.endpoint(VIPS[family], port)]


def acl_hits(lab, family: int) -> dict[str, int]:
    text = lab.rvsadm("acl", "list", *service_arg(family)).stdout
    return {m.group(1): int(m.group(2))
            for m in re.finditer(r"^\s+\d+\s+((?:allow|deny) \S+)\s+(\d+)$", text, re.M)}


def limit_refused(lab, family: int, port: int = 80) -> dict[str, int]:
    text = lab.rvsadm("limit", "list", *service_arg(family, port)).stdout
    return {m.group(1): int(m.group(3))
            for m in re.finditer(r"^  (\w+)\s+(\d+)\s+(\d+)$", text, re.M)}


def drops(lab, reason: str) -> int:
    return sum(w.drops.get(reason, 0)
               for w in rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout))


def metric(pattern: str) -> int:
    text = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", METRICS], check=True).stdout
    m = re.search("^" + re.escape(pattern) + r" (\d+)$", text, re.M)
    assert m, f"no {pattern} in:\n{text}"
    return int(m.group(1))


@pytest.mark.parametrize("family", [4, 6])
def test_acl_first_match_silent_drop_and_established_kept(lab, other_client, family):
    me, other, svc = ME[family], OTHER[family], service_arg(family)
    if family == 6:
        assert acl_hits(lab, 6) == {"deny fd99::/16": 0}, "the file's rule"
    assert connects(family, other, 1) == [True], "no rule yet"
    lab.rvsadm("acl", "add", *svc, "deny", f"{other}/{32 if family == 4 else 128}")
    before = drops(lab, "acl_deny")
    assert connects(family, other, 2) == [False, False], "denied: no connection"
    assert connects(family, me, 1) == [True], "another client still allowed"
    hits = acl_hits(lab, family)
    deny = f"deny {other}/{32 if family == 4 else 128}"
    assert hits[deny] == 2, hits
    assert drops(lab, "acl_deny") - before == 2
    # Silent: no RST, no ICMP; curl waits out its timeout (28), not refused (7).
    p = rvslab.client_curl(rvslab.http_url(VIPS[family]), "--interface", other, max_time=1.5)
    assert p.returncode == 28, p
    # First match wins: an allow put before the deny lets the client in.
    lab.rvsadm("acl", "add", *svc, "allow", other, "--at", "1")
    assert connects(family, other, 1) == [True]
    lab.rvsadm("acl", "del", *svc, "allow", other)
    assert connects(family, other, 1) == [False]
    # A deny of the whole family never cuts an established connection.
    held = Holder(family, me, hold=1, tries=0)
    try:
        assert held.result["held"] == 1
        lab.rvsadm("acl", "add", *svc, "deny", "0.0.0.0/0" if family == 4 else "::/0")
        assert connects(family, me, 1) == [False], "new connections denied"
        url = rvslab.http_url(VIPS[family])
        assert rvslab.client_curl(url, "--interface", me, max_time=1.5).returncode == 28
    finally:
        held.close()
    label = f'TCP/{rvslab.endpoint(VIPS[family], 80)}'
    assert metric(f'rvs_service_acl_hits_total{{rule="{deny}",service="{label}"}}') >= 3
    lab.rvsadm("acl", "flush", *svc)
    assert connects(family, other, 1) == [True], "flushed: allowed again"


@pytest.mark.parametrize("family", [4, 6])
def test_concurrent_and_rate_limits(lab, other_client, family):
    me, other, svc = ME[family], OTHER[family], service_arg(family)
    # Per client prefix: 2 at once from the /24 (/64), both addresses in it.
    lab.rvsadm("limit", "set", *svc, "--max-conns-per-client", "2",
               "--client-prefix-v4", "24", "--client-prefix-v6", "64")
    held = Holder(family, me, hold=2, tries=1)
    try:
        assert held.result == {"held": 2, "tries": [False]}, held.result
        assert connects(family, other, 1) == [False], "the same prefix"
    finally:
        held.close()
    assert limit_refused(lab, family)["max_conns_per_client"] == 2
    # Closed connections give their room back (after the short close timeouts).
    rvslab.wait_until("room for a new connection", lambda: connects(family, other, 1) == [True],
                      timeout=20, interval=1)
    lab.rvsadm("limit", "set", *svc, "--max-conns-per-client", "0")

    # The service: N = 3 at once, the 4th refused, whoever it comes from.
    before = drops(lab, "conn_limit")
    rvslab.wait_until("the service idle", lambda: connects(family, me, 1) == [True], timeout=20)
    lab.rvsadm("limit", "set", *svc, "--max-conns", "3")
    rvslab.wait_until("closed sessions gone", lambda: _service_conns(lab, family) == 0,
                      timeout=20, interval=1)
    held = Holder(family, me, hold=3, tries=1)
    try:
        assert held.result == {"held": 3, "tries": [False]}, held.result
        assert connects(family, other, 1) == [False]
    finally:
        held.close()
    assert drops(lab, "conn_limit") - before == 2
    assert limit_refused(lab, family)["max_conns"] == 2
    label = f'TCP/{rvslab.endpoint(VIPS[family], 80)}'
    assert metric(f'rvs_service_limit_refused_total{{limit="max_conns",service="{label}"}}') == 2
    lab.rvsadm("limit", "set", *svc, "--max-conns", "0")

    # The rate: a burst of 3, then 1 a second; attempts 0.3 s apart.
    lab.rvsadm("limit", "set", *svc, "--new-conn-rate", "1", "--new-conn-burst", "3")
    got = connects(family, other, 6, timeout=0.3)
    assert got == [True, True, True, False, False, False], got
    assert limit_refused(lab, family)["new_conn_rate"] == 3
    assert drops(lab, "client_rate_limit") >= 3
    rvslab.wait_until("a token back", lambda: connects(family, other, 1) == [True], timeout=5,
                      interval=1.1)


def _service_conns(lab, family: int) -> int:
    for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout):
        if s.address == rvslab.endpoint(VIPS[family], 80):
            return sum(r.active + r.inactive for r in s.servers)
    raise AssertionError("service not listed")


def test_icmp_rate_zero_silences_port_unreachable(lab):
    lab.rvsadm("-A", "-t", f"{VIP}:81", "-s", "rr")
    url = rvslab.http_url(VIP, port=81)
    # No server: refused at once by the port unreachable (curl: 7).
    assert rvslab.client_curl(url, max_time=3).returncode == 7
    lab.rvsadm("limit", "set", "-t", f"{VIP}:81", "--icmp-rate", "0")
    assert rvslab.client_curl(url, max_time=1.5).returncode == 28, "no answer now"
    assert limit_refused(lab, 4, 81)["icmp_rate"] >= 1
    # A service without servers is not exported (a config needs one); the
    # lab's is, with the limits set at run time.
    lab.rvsadm("limit", "set", "-t", f"{VIP}:80", "--icmp-rate", "0", "--max-conns", "7")
    text = lab.rvsadm("--export-config").stdout
    lab_service = next(b for b in text.split("[[service]]") if f'vip = "{VIP}:80"' in b)
    assert "\nmax_conns = 7\n" in lab_service and "\nicmp_rate = 0\n" in lab_service, text
