"""The SYN proxy (issue #21, docs/synproxy.md) with real clients and
servers: `syn_proxy = true` on the lab's FULLNAT service and on FULLNAT and
NAT services over IPv4 and IPv6.

- A download through each proxied service arrives with the right sha256,
  and the services show `synproxy` in `rvsadm -L -n` and `syn_proxy = true`
  in `--export-config`.
- The options the client offered reach the server: tcpdump shows the
  server's SYN (from the proxy) with the client's MSS, SACK-permitted,
  timestamps and window scale, and `ss -ti` on both ends agrees on the
  window scales (the client's own reaches the server; the client reads the
  server's windows at the proxy's 7).
- `hping3 --flood --rand-source -S` (the lab's maximum rate, ~84,000 SYN/s
  here) against the proxied VIP for 60 s from an attacker host while wrk
  opens new connections (`Connection: close`): every wrk request
  succeeds; the servers never hold more half-open connections than wrk has
  connections in flight (the flood's SYNs never reach them, and their own
  SYN cookies are never needed); the appliance's sessions, and so its
  local ports in use, stay within what wrk's connections account for,
  while it answered hundreds of thousands of SYNs with cookies.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import subprocess
import threading
import time

import pytest

import rvslab
from rvslab import RUN, VIP, VIP6, LOCAL_ADDR6
from test_flood import attacker, spawn  # noqa: F401  (the attacker host fixture)

NAT_PORT = 81
CLIENT_NAT, APPLIANCE = "10.88.0.10", "10.77.0.2"
CLIENT_NAT6, APPLIANCE6 = "fd88::10", "fd77::2"
VIP6_NAT = "fd77::103"
FLOOD_SECS = 60
WRK_CONNECTIONS = 4


def service(vip: str, port: int, forward: str, servers: list[str], laddr: str | None) -> str:
    text = (f"\n[[service]]\nvip = {rvslab.toml_str(rvslab.endpoint(vip, port))}\nprotocol = \"tcp\"\n"
            f"scheduler = \"rr\"\nforward = \"{forward}\"\nsyn_proxy = true\n")
    if laddr:
        text += f"local_addresses = [{rvslab.toml_str(laddr)}]\n"
    for s in servers:
        text += f"\n[[service.real_server]]\naddress = {rvslab.toml_str(rvslab.endpoint(s, 80))}\n"
    return text


SERVICES = [
    service(VIP, NAT_PORT, "nat", list(rvslab.REAL_SERVERS.values()), None),
    service(VIP6, 80, "fullnat", list(rvslab.REAL_SERVERS6.values()), LOCAL_ADDR6),
    service(VIP6_NAT, 80, "nat", list(rvslab.REAL_SERVERS6.values()), None),
]


def rvsd_config(text: str) -> str:
    text = text.replace("[[service]]\n", "[[service]]\nsyn_proxy = true\n", 1)
    for s in SERVICES:
        text = rvslab.append_service(text, s)
    return text


@pytest.fixture(scope="module", autouse=True)
def nat_topology(lab):
    """NAT clients on a second subnet (10.88.0.10, fd88::10), the servers'
    way back to them through the appliance; restored afterwards."""
    saved = {n: rvslab.in_ns(n, ["ip", "route", "show", "default"], check=True).stdout.strip()
             for n in rvslab.REAL_SERVERS}
    try:
        rvslab.in_ns("client", ["ip", "addr", "add", f"{CLIENT_NAT}/24", "dev", "eth0"], check=True)
        rvslab.in_ns("client", ["ip", "-6", "addr", "add", f"{CLIENT_NAT6}/64", "dev", "eth0", "nodad"], check=True)
        for n in rvslab.REAL_SERVERS:
            rvslab.in_ns(n, ["ip", "route", "replace", "10.88.0.0/24", "via", APPLIANCE], check=True)
            rvslab.in_ns(n, ["ip", "-6", "route", "replace", "fd88::/64", "via", APPLIANCE6], check=True)
        yield
    finally:
        rvslab.in_ns("client", ["ip", "addr", "del", f"{CLIENT_NAT}/24", "dev", "eth0"])
        rvslab.in_ns("client", ["ip", "-6", "addr", "del", f"{CLIENT_NAT6}/64", "dev", "eth0"])
        for n in rvslab.REAL_SERVERS:
            rvslab.in_ns(n, ["ip", "route", "del", "10.88.0.0/24"])
            rvslab.in_ns(n, ["ip", "-6", "route", "del", "fd88::/64"])
        assert all(rvslab.in_ns(n, ["ip", "route", "show", "default"]).stdout.strip() == saved[n]
                   for n in saved)


def synproxy_totals(lab) -> tuple[dict, int, int]:
    """SYN-proxy counters summed over workers, sessions now, sessions created."""
    workers = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)
    totals: dict = {}
    for w in workers:
        for k, v in w.synproxy.items():
            totals[k] = totals.get(k, 0) + v
    return totals, sum(w.sessions for w in workers), sum(w.created for w in workers)


def curl(url: str, *extra: str, source: str | None = None, max_time: float = 60):
    args = ["curl", "-s", "-g", "--max-time", str(max_time)]
    if source:
        args += ["--interface", source]
    return rvslab.in_ns("client", [*args, *extra, url], timeout=max_time + 10)


@pytest.mark.parametrize("name,vip,port,source", [
    ("fullnat-v4", VIP, 80, None),
    ("nat-v4", VIP, NAT_PORT, CLIENT_NAT),
    ("fullnat-v6", VIP6, 80, None),
    ("nat-v6", VIP6_NAT, 80, CLIENT_NAT6),
])
def test_download_through_a_proxied_service(lab, name, vip, port, source):
    served = hashlib.sha256((RUN / "rs1" / "big.bin").read_bytes()).hexdigest()
    before, _, _ = synproxy_totals(lab)
    target = lab.workdir / f"{name}.bin"
    r = curl(rvslab.http_url(vip, "/big.bin", port), "-o", str(target), source=source)
    assert r.returncode == 0, f"curl exit {r.returncode}\n{lab.rvsadm('--stats-dp').stdout}"
    assert hashlib.sha256(target.read_bytes()).hexdigest() == served, "download corrupted"
    target.unlink()
    bodies = {curl(rvslab.http_url(vip, "/", port), source=source, max_time=5).stdout.strip() for _ in range(4)}
    assert bodies == {"rs1", "rs2"}, bodies
    after, _, _ = synproxy_totals(lab)
    for k in ("cookies_sent", "acks_valid", "sessions_opened", "server_handshakes"):
        assert after.get(k, 0) - before.get(k, 0) >= 5, (k, before, after)
    listing = lab.rvsadm("-L", "-n", check=True).stdout
    line = next(l for l in listing.splitlines() if l.startswith("TCP  ") and rvslab.endpoint(vip, port) in l)
    assert line.split()[3:] == ["synproxy"], line
    assert lab.rvsadm("--export-config", check=True).stdout.count("syn_proxy = true") == 4


def capture_syn(node: str, bpf: str) -> subprocess.Popen:
    """tcpdump in rvs-NODE for the first SYN (no ACK) matching BPF."""
    return subprocess.Popen(["ip", "netns", "exec", f"rvs-{node}", "tcpdump", "-nn", "-v", "-l", "-c", "1", "-i", "eth0",
                             f"({bpf}) and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def syn_options(cap: subprocess.Popen) -> str:
    try:
        out, err = cap.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(cap.pid, signal.SIGTERM)
        out, err = cap.communicate()
    m = re.search(r"options \[([^\]]*)\]", out)
    assert m, f"no SYN captured: {out!r} {err!r}"
    return m.group(1)


def test_the_clients_options_reach_the_server(lab):
    """The SYN as the client sent it and as a server received it from the
    proxy: the same MSS, SACK-permitted, timestamps and window scale (the
    TSval is the client's clock, a few ms on); then, on a live connection,
    each end's kernel agrees on the window scales (`ss -ti`)."""
    client_cap = capture_syn("client", f"dst host {VIP} and dst port 80")
    server_caps = [capture_syn(n, f"src host {rvslab.LOCAL_ADDR} and dst port 80") for n in rvslab.REAL_SERVERS]
    time.sleep(1.5)  # tcpdump listening
    dl = subprocess.Popen(["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", "500k",
                           "-o", "/dev/null", rvslab.http_url(VIP, "/big.bin")], start_new_session=True)
    try:
        sent = syn_options(client_cap)
        # Only the server scheduled sees a SYN: the other capture is not
        # waited for (its 10 s were long enough for the whole download to
        # reach the client's socket buffer, and the server to close, before
        # the probe below began).
        done = rvslab.wait_until("a server's capture of the SYN",
                                 lambda: [c for c in server_caps if c.poll() is not None], timeout=10)
        got = [syn_options(cap) for cap in done]
        assert len(got) == 1, got
        unclock = lambda o: re.sub(r"TS val \d+", "TS val -", o)  # noqa: E731
        assert unclock(got[0]) == unclock(sent), f"client sent [{sent}], server got [{got[0]}]"
        for opt in ("mss 1460", "sackOK", "TS val", "wscale"):
            assert opt in got[0], got[0]

        def both():
            c = rvslab.in_ns("client", ["ss", "-Htin", "state", "established", "dst", f"{VIP}:80"],
                             check=True).stdout
            s = "".join(rvslab.in_ns(n, ["ss", "-Htin", "state", "established", "src", f"{ip}:80", "dst",
                                         rvslab.LOCAL_ADDR], check=True).stdout for n, ip in rvslab.REAL_SERVERS.items())
            return (c, s) if "wscale" in c and "wscale" in s else None
        client, server = rvslab.wait_until("the download's connection on both ends", both, timeout=10)
    finally:
        for p in [dl, client_cap, *server_caps]:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
                p.wait(timeout=10)
    wscale = lambda text: tuple(map(int, re.search(r"wscale:(\d+),(\d+)", text).groups()))  # noqa: E731
    c_snd, c_rcv = wscale(client)
    s_snd, _ = wscale(server)
    assert c_snd == 7, f"the proxy announces window scale 7 to the client:\n{client}"
    assert s_snd == c_rcv, f"the server got the client's window scale:\nclient {client}\nserver {server}"
    # 1448: the MSS less the timestamp option, on both ends.
    assert "mss:1448" in client and "mss:1448" in server, f"client {client}\nserver {server}"


def half_open(node: str) -> int:
    out = rvslab.in_ns(node, ["ss", "-Htan", "state", "syn-recv"], check=True).stdout
    return len(out.splitlines())


def nstat(node: str, name: str) -> int:
    out = rvslab.in_ns(node, ["nstat", "-az", name], check=True).stdout
    m = re.search(rf"^{name}\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def test_syn_flood_at_full_rate_while_wrk_opens_connections(lab, attacker):  # noqa: F811
    before, _, created_before = synproxy_totals(lab)
    cookies_before = {n: nstat(n, "TcpExtSyncookiesSent") for n in rvslab.REAL_SERVERS}
    samples: list[tuple[int, int]] = []
    stop = threading.Event()

    def watch():
        while not stop.is_set():
            _, sessions, _ = synproxy_totals(lab)
            samples.append((max(half_open(n) for n in rvslab.REAL_SERVERS), sessions))
            time.sleep(0.5)

    flood = spawn(attacker, ["hping3", "--flood", "--rand-source", "-S", "-p", "80", VIP], subprocess.DEVNULL)
    watcher = threading.Thread(target=watch, daemon=True)
    try:
        time.sleep(2)  # the flood is on before wrk starts
        watcher.start()
        wrk = rvslab.in_ns("client", ["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{FLOOD_SECS - 5}s",
                                      "--timeout", "20s", "-H", "Connection: close",
                                      rvslab.http_url(VIP)], timeout=FLOOD_SECS + 60)
        assert flood.poll() is None, f"hping3 stopped early: {flood.stderr.read()!r}"
    finally:
        stop.set()
        if flood.poll() is None:
            os.killpg(flood.pid, signal.SIGINT)
            flood.wait(timeout=10)
        if watcher.is_alive():
            watcher.join(timeout=10)
    after, _, created_after = synproxy_totals(lab)
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    out = wrk.stdout
    assert wrk.returncode == 0, out + wrk.stderr
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    assert requests >= 100, out
    assert "Socket errors" not in out and "Non-2xx" not in out, f"wrk saw failures:\n{out}"
    assert delta["cookies_sent"] > 20 * FLOOD_SECS * 1000 // 10, \
        f"the flood did not reach the proxy: {delta}\n{lab.rvsadm('--stats-dp').stdout}"
    # Sessions come from valid ACKs only: wrk's connections (and nothing
    # of the flood); so do the local ports they hold. wrk counts completed
    # requests: the connections in flight when it stops, and one it may
    # reopen as it stops, come on top (a few per connection).
    created = created_after - created_before
    slack = 2 * WRK_CONNECTIONS
    assert created == delta["sessions_opened"] <= requests + slack, (created, delta, requests)
    worst_half_open = max(s[0] for s in samples)
    most_sessions = max(s[1] for s in samples)
    assert len(samples) >= 20, samples
    assert worst_half_open <= WRK_CONNECTIONS, f"half-open connections on a server: {samples}"
    assert most_sessions <= requests + slack, (most_sessions, requests)
    assert all(nstat(n, "TcpExtSyncookiesSent") == cookies_before[n] for n in rvslab.REAL_SERVERS), \
        "a server had to send SYN cookies of its own"
    metrics = rvslab.in_ns("lb", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
    assert re.search(r'rvs_worker_synproxy_total\{event="cookies_sent",worker="\d+"\} [1-9]', metrics), \
        [m for m in metrics.splitlines() if "synproxy" in m]
