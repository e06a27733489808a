"""Active/backup failover with connection sync, in `scripts/lab up --ha`:
two appliances (rvs-lb1, rvs-lb2), each with rvsd and Debian's keepalived
(VRRP only) on its exception-path TAP. keepalived moves the VIPs, rvsd
follows the kernel's addresses (`[sync] follow_kernel_addresses`) and syncs
its connections to the other appliance (IPVS sync v1, unicast, SyncID 77).

What a user sees: a throttled 10 MB download and an idle-then-active TCP
connection survive `kill -9` of the active appliance's rvsd (FULLNAT, NAT,
DR; FULLNAT's own server-side ISN, the same function of the tuple and the wall clock on both appliances; PROXY v2 and SYN-proxied services with their offsets; IPv6 FULLNAT), a UDP request/response stream keeps answering from the same server, and
the same after a graceful switchover (the active's keepalived stopped);
tshark decodes the sync datagrams on the wire; bad sync input is dropped and
counted, never installed; the backup forwards nothing for a VIP it does not
hold."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest

import rvslab
from rvslab import CLIENT_IP, RUN, in_ns, wait_until

LAB = rvslab.LAB
HA = RUN / "ha"
LBS = ("lb1", "lb2")
LB_IP = {"lb1": "10.77.0.3", "lb2": "10.77.0.4"}
RS_IP = {"rs1": "10.77.0.11", "rs2": "10.77.0.12"}
VIP_FULLNAT, VIP_NAT, VIP_DR, VIP_UDP = "10.77.0.100", "10.77.0.101", "10.77.0.102", "10.77.0.103"
LADDR = "10.77.0.200"
ECHO_PORT = 9000
PROXY_PORT = 8002  # FULLNAT on VIP_FULLNAT, client_address = "proxy-v2"
VIP6 = "fd77::100"  # FULLNAT, port 80, local address fd77::200 (keepalived moves it too)
SYNPROXY_PORT = 8003  # FULLNAT on VIP_FULLNAT, syn_proxy = true, to the servers' HTTP (80)
PROXIED_PROXY_PORT = 8004  # both: syn_proxy = true and "proxy-v2", to the PROXY servers (8002)
PROXIED_TOA_PORT = 8005  # syn_proxy = true and "toa", to the servers' HTTP (80)

# A TCP and a UDP echo server on every real server (port 9000, all
# addresses: the DR VIP on lo too); UDP answers "NAME PAYLOAD".
ECHO_SERVER = r"""
import socket, socketserver, sys, threading
name = sys.argv[1]
class H(socketserver.BaseRequestHandler):
    def handle(self):
        while True:
            d = self.request.recv(4096)
            if not d:
                return
            self.request.sendall(d)
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
t = S(("0.0.0.0", 9000), H)
threading.Thread(target=t.serve_forever, daemon=True).start()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 9000))
while True:
    d, a = u.recvfrom(4096)
    u.sendto(name.encode() + b" " + d, a)
"""

# The servers behind the PROXY v2 service (port 8002): every connection
# must open with exactly one PROXY v2 header (IPv4, TCP) naming the client
# and the VIP; then `GET /big.bin` gets the 10 MB file over HTTP/1.0, and
# anything else is echoed. A connection whose header is missing, repeated
# or wrong is closed, and logged.
PROXY_SERVER = r"""
import socket, socketserver, sys
big, log = sys.argv[1], sys.argv[2]
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
def note(line):
    with open(log, "a") as f:
        f.write(line + "\n")
def read(r, n):
    got = b""
    while len(got) < n:
        d = r.recv(n - len(got))
        if not d:
            raise ConnectionError("closed")
        got += d
    return got
class H(socketserver.BaseRequestHandler):
    def handle(self):
        r = self.request
        try:
            h = r.recv(16)
            if not h:
                return  # a probe: connected and closed
            h += read(r, 16 - len(h))
            if h[:12] != SIG or h[12] != 0x21 or h[13] != 0x11:
                note(f"bad header {h.hex()}"); return
            a = read(r, int.from_bytes(h[14:16], "big"))
            client = socket.inet_ntoa(a[0:4]) + ":" + str(int.from_bytes(a[8:10], "big"))
            first = read(r, 4)
            if first.startswith(SIG[:4]):
                note(f"header twice from {client}"); return
            note(f"ok {client}")
            if first == b"GET ":
                req = first
                while not req.endswith(b"\r\n\r\n"):
                    req += read(r, 1)
                with open(big, "rb") as f:
                    body = f.read()
                r.sendall(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
                return
            r.sendall(first)
            while True:
                d = r.recv(4096)
                if not d:
                    return
                r.sendall(d)
        except (ConnectionError, OSError) as e:
            note(f"error {e}")
class S(socketserver.ThreadingTCPServer):
    allow_reuse_address = True
    daemon_threads = True
S(("0.0.0.0", 8002), H).serve_forever()
"""

# One long-lived TCP connection: an echo, IDLE seconds of silence (the
# failover happens then), then ROUNDS echoes; prints a JSON verdict.
LONG_LIVED = r"""
import json, socket, sys, time
vip, idle, rounds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
port = int(sys.argv[4]) if len(sys.argv) > 4 else 9000
out = {"ok": 0, "error": None}
try:
    s = socket.create_connection((vip, port), timeout=5)
    s.settimeout(20)
    def echo(i):
        msg = f"msg-{i}\n".encode()
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            d = s.recv(4096)
            if not d:
                raise ConnectionError("closed by peer")
            got += d
        assert got == msg, got
        out["ok"] += 1
    echo(0)
    time.sleep(idle)
    for i in range(1, rounds + 1):
        echo(i)
        time.sleep(0.3)
    s.close()
except Exception as e:
    out["error"] = f"{type(e).__name__}: {e}"
print(json.dumps(out))
"""

# A UDP request/response stream from one source port for SECS seconds: a
# request every 0.1 s; prints the servers that answered and the longest
# silence.
UDP_STREAM = r"""
import json, socket, sys, time
vip, secs = sys.argv[1], float(sys.argv[2])
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("0.0.0.0", 0))
u.settimeout(0.1)
servers, answered, sent = {}, 0, 0
last = time.monotonic(); gap = 0.0
end = time.monotonic() + secs
while time.monotonic() < end:
    u.sendto(f"req-{sent}".encode(), (vip, 9000)); sent += 1
    t = time.monotonic() + 0.1
    while time.monotonic() < t:
        try:
            d, _ = u.recvfrom(4096)
        except socket.timeout:
            break
        name = d.split(b" ")[0].decode()
        servers[name] = servers.get(name, 0) + 1
        answered += 1
        now = time.monotonic(); gap = max(gap, now - last); last = now
print(json.dumps({"servers": servers, "answered": answered, "sent": sent, "gap": round(gap, 2)}))
"""


def sock(lb: str) -> str:
    return str(HA / f"{lb}.sock")


def adm(lb: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return rvslab.run([rvslab.RVSADM, "--socket", sock(lb), *args], timeout=10, check=check)


def metrics(lb: str) -> str:
    return in_ns(lb, ["curl", "-s", "--max-time", "3", "http://127.0.0.1:9477/metrics"], check=True).stdout


def metric(lb: str, name: str, labels: str = "") -> float:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", metrics(lb), re.M)
    assert m, f"{name}{labels} not in {lb}'s metrics"
    return float(m.group(1))


def worker_drops(lb: str, reason: str) -> float:
    total = 0.0
    for m in re.finditer(rf'^rvs_worker_drops_total\{{[^}}]*reason="{reason}"[^}}]*\}} (\S+)$', metrics(lb), re.M):
        total += float(m.group(1))
    return total


def holds(lb: str, ip: str) -> bool:
    out = in_ns(lb, ["ip", "-o", "-4", "addr", "show", "dev", "dpdk0"]).stdout
    return f" {ip}/" in out


def active() -> str:
    """The appliance whose kernel side holds the VIPs (exactly one)."""
    def probe():
        owners = [lb for lb in LBS if holds(lb, VIP_FULLNAT)]
        return owners[0] if len(owners) == 1 else None
    return wait_until("exactly one appliance holding the VIPs", probe, timeout=20)


def other(lb: str) -> str:
    return "lb2" if lb == "lb1" else "lb1"


def rvsd_pid(lb: str) -> int:
    return int((RUN / f"rvsd-{lb}.pid").read_text().strip())


def kill9(lb: str) -> None:
    os.kill(rvsd_pid(lb), signal.SIGKILL)


def keepalived_log(lb: str) -> str:
    return (HA / f"keepalived-{lb}.log").read_text()


def restart_keepalived(lb: str) -> None:
    """keepalived again, as systemd restarts it with rvsd (deploy/keepalived.conf):
    it starts backup and stays so (nopreempt)."""
    rvslab.lab("stop-keepalived", lb)
    seen = len(keepalived_log(lb))
    rvslab.lab("start-keepalived", lb)
    wait_until(f"{lb}'s keepalived in BACKUP", lambda: "Entering BACKUP STATE" in keepalived_log(lb)[seen:],
               timeout=20)


def sync_report() -> str:
    """Both appliances' sync counters, session listings and worker drops:
    what a failed wait for a synced connection prints."""
    out = []
    for lb in LBS:
        m = metrics(lb)
        out.append(f"---- {lb} sync metrics ----")
        out += [l for l in m.splitlines() if l.startswith("rvs_sync") and not l.endswith(" 0")]
        out += [l for l in m.splitlines() if l.startswith("rvs_worker_drops_total") and not l.endswith(" 0")]
        out.append(f"---- {lb} -L -n -c ----")
        out.append(adm(lb, "-L", "-n", "-c", check=False).stdout[-3000:])
        out.append(adm(lb, "neigh", "show", check=False).stdout[-2000:])
    for rs in RS_IP:
        out.append(f"---- {rs} ss / neigh ----")
        out.append(in_ns(rs, ["ss", "-tan"]).stdout[-2000:])
        out.append(in_ns(rs, ["ip", "neigh"]).stdout[-2000:])
    return "\n".join(out)


def wait_synced(backup: str, what: str, probe) -> None:
    """Wait (8 s) until PROBE says BACKUP holds the connections; on timeout,
    say what both appliances' sync saw."""
    try:
        wait_until(f"{backup} holds {what}", probe, timeout=8)
    except AssertionError as e:
        raise AssertionError(f"{e}\n{sync_report()}") from None


def restart(lb: str) -> None:
    """Start a killed appliance's rvsd again, then its keepalived."""
    rvslab.lab("start-rvsd", "--node", lb)
    restart_keepalived(lb)


def connections(lb: str, vip: str, port: int) -> list:
    conns = rvslab.parse_connections(adm(lb, "-L", "-n", "-c").stdout)
    return [c for c in conns if c.virtual == f"{vip}:{port}"]


def client_bg(code: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(["ip", "netns", "exec", "rvs-client", "python3", "-c", code, *args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def download_bg(vip: str, port: int = 80) -> subprocess.Popen:
    # 10 MB at 1 MB/s: about ten seconds.
    return subprocess.Popen(["ip", "netns", "exec", "rvs-client", "sh", "-c",
                             f"curl -sS --max-time 60 --limit-rate 1000K http://{vip}:{port}/big.bin | sha256sum"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(p: subprocess.Popen, timeout: float = 60) -> str:
    out, err = p.communicate(timeout=timeout)
    assert p.returncode == 0, f"exit {p.returncode}: {out} {err}"
    return out


def rst_count() -> int:
    """TCP resets the client's kernel received or sent (its netstat counters)."""
    text = in_ns("client", ["cat", "/proc/net/snmp"]).stdout
    rows = [l.split() for l in text.splitlines() if l.startswith("Tcp:")]
    head, vals = rows[0], rows[1]
    return int(vals[head.index("EstabResets")]) + int(vals[head.index("OutRsts")])


@pytest.fixture(scope="module")
def ha(request):
    rvslab.lab("up", "--ha", timeout=180)
    try:
        for rs, ip in RS_IP.items():
            subprocess.Popen(["ip", "netns", "exec", f"rvs-{rs}", "setsid", "python3", "-c", ECHO_SERVER, rs],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.Popen(["ip", "netns", "exec", f"rvs-{rs}", "setsid", "python3", "-c", PROXY_SERVER,
                              str(RUN / rs / "big.bin"), str(RUN / rs / "proxy.log")],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # DR: the VIP on lo, only the appliance answers ARP for it, and
            # an HTTP server on it (the lab's listens on the server's address).
            in_ns(rs, ["sysctl", "-qw", "net.ipv4.conf.all.arp_ignore=1", "net.ipv4.conf.all.arp_announce=2"], check=True)
            in_ns(rs, ["ip", "addr", "add", f"{VIP_DR}/32", "dev", "lo"], check=True)
            subprocess.Popen(["ip", "netns", "exec", f"rvs-{rs}", "setsid", "python3", "-m", "http.server", "80",
                              "--bind", VIP_DR, "--directory", str(RUN / rs)],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            # NAT: replies to the client go back through the active
            # appliance, by way of the NAT VIP that follows it.
            in_ns(rs, ["ip", "route", "add", f"{CLIENT_IP}/32", "via", VIP_NAT, "table", "101"], check=True)
            in_ns(rs, ["ip", "rule", "add", "from", ip, "to", CLIENT_IP, "lookup", "101"], check=True)
        lb = active()
        assert lb == "lb1", "lb1 has the higher priority"
        for rs in RS_IP:
            for port in (ECHO_PORT, PROXY_PORT):
                wait_until(f"server on {rs}:{port}", lambda rs=rs, port=port: in_ns(
                    rs, ["python3", "-c", f"import socket; socket.create_connection(('127.0.0.1', {port}), 1)"]
                ).returncode == 0, timeout=10)
            wait_until(f"HTTP on {VIP_DR} in {rs}", lambda rs=rs: in_ns(
                rs, ["curl", "-s", "--max-time", "1", f"http://{VIP_DR}/"]).stdout.strip() == rs, timeout=10)
        yield
    finally:
        failed = request.session.testsfailed
        if failed:
            for lb in LBS:
                for f in (RUN / f"rvsd-{lb}.log", HA / f"keepalived-{lb}.log"):
                    if f.exists():
                        print(f"---- {f} ----\n{f.read_text()[-6000:]}")
        rvslab.lab("down")


def test_both_daemons_run_on_both_appliances_as_ipvsadm_lists_them(ha):
    for lb in LBS:
        assert adm(lb, "-L", "--daemon").stdout.splitlines() == [
            "master sync daemon (mcast=dpdk0, syncid=77, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
            "backup sync daemon (mcast=dpdk0, syncid=77, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
        ]


def failover(vip: str, kill) -> None:
    """A throttled download and a long-lived connection through VIP:
    survive KILL(active) with the right bytes and no reset."""
    lb = active()
    backup = other(lb)
    want = in_ns("rs1", ["sha256sum", str(RUN / "rs1" / "big.bin")], check=True).stdout.split()[0]
    resets = rst_count()
    dl = download_bg(vip)
    ll = client_bg(LONG_LIVED, vip, "9", "5")
    # Both connections reach the backup's tables before the failover.
    wait_synced(backup, f"both connections to {vip}", lambda:
                len(connections(backup, vip, 80)) >= 1 and len(connections(backup, vip, ECHO_PORT)) >= 1)
    kill(lb)
    wait_until(f"{backup} takes over {vip}", lambda: holds(backup, vip), timeout=15)
    assert finish(dl, timeout=60).split()[0] == want, "the download's bytes changed"
    verdict = json.loads(finish(ll, timeout=60))
    assert verdict == {"ok": 6, "error": None}, verdict
    assert rst_count() == resets, "a TCP connection was reset"
    assert not holds(lb, vip)


class FirstSyn:
    """tcpdump in rvs-NODE for the first SYN (no ACK) matching FILTER: its
    sequence number once seen."""

    def __init__(self, node: str, bpf: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", f"rvs-{node}", "tcpdump", "-i", "eth0", "-n", "-S", "-l", "-c", "1",
             f"({bpf}) and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        # tcpdump says when it captures.
        for line in self.proc.stderr:
            if "listening on" in line:
                break

    def seq(self, timeout: float = 5) -> int | None:
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return None
        m = re.search(r"seq (\d+)", out)
        return int(m.group(1)) if m else None


@pytest.mark.parametrize("vip", [VIP_FULLNAT, VIP_NAT, VIP_DR], ids=["fullnat", "nat", "dr"])
def test_tcp_survives_kill_9_of_the_active_rvsd(ha, vip):
    lb = active()
    fullnat = vip == VIP_FULLNAT
    if fullnat:
        # The download's SYN as the client sent it and as a server got it.
        sent = FirstSyn("client", f"dst host {vip} and dst port 80")
        got = [FirstSyn(rs, f"src host {LADDR} and dst port 80") for rs in RS_IP]
    failover(vip, kill9)
    if fullnat:
        # FULLNAT numbered the client's stream from its own ISN, and the
        # backup carried on with the master's offset (the download's bytes
        # and no reset, above).
        client_isn = sent.seq()
        server_isns = [s for s in (g.seq(timeout=1) for g in got) if s is not None]
        assert client_isn is not None and len(server_isns) == 1, (client_isn, server_isns)
        assert server_isns[0] != client_isn, "the server saw the client's own ISN"
    restart(lb)


def pair_secret() -> bytes:
    """The FULLNAT ISN key both appliances' configs share (`isn_secret`,
    scripts/lab's ha_config)."""
    found = {re.search(r'^isn_secret = "([0-9a-f]{32})"$', (HA / f"{lb}.toml").read_text(), re.M).group(1)
             for lb in LBS}
    assert len(found) == 1, "the appliances of a pair share one isn_secret"
    return bytes.fromhex(found.pop())


def modelled_isn(secret: bytes, laddr: str, lport: int, rs: str, rport: int, wall_ms: int) -> int:
    """rvs's FULLNAT server-side ISN (dataplane/src/xmit/isn.rs), from the
    golden files' independent model: hsiphash(key; laddr, rs, lport,
    rport) + wall-clock ms x 15 625."""
    import sys
    sys.path.insert(0, str(rvslab.REPO / "tests" / "golden"))
    import gen  # noqa: E402 (the golden generator's model, not a copy)
    key = (int.from_bytes(secret[:8], "little"), int.from_bytes(secret[8:], "little"))
    data = gen.isn_input(laddr, lport, rs, rport)
    return (gen.hsiphash(data, key) + wall_ms * gen.ISN_STEPS_PER_MS) & 0xFFFFFFFF


class ServerSyn:
    """tcpdump in rvs-RS for the first SYN (no ACK) from the local address:
    (wall-clock ms it arrived, local port, server address, server port,
    sequence number) once seen, or None."""

    def __init__(self, rs: str):
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", f"rvs-{rs}", "tcpdump", "-i", "eth0", "-n", "-S", "-tt", "-l", "-c", "1",
             f"src host {LADDR} and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "listening on" in line:
                break

    def get(self, timeout: float = 3):
        try:
            out, _ = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate()
            return None
        m = re.search(r"^(\d+)\.(\d{6}) IP [\d.]+\.(\d+) > ([\d.]+)\.(\d+): Flags \[S\], seq (\d+)", out, re.M)
        assert m, out
        return (int(m[1]) * 1000 + int(m[2]) // 1000, int(m[3]), m[4], int(m[5]), int(m[6]))


def test_both_appliances_number_a_fullnat_tuple_alike_by_wall_time(ha):
    """With one `isn_secret`, the active appliance and, after kill -9, the
    backup give a server the ISN that key and the wall clock give the
    tuple: a tuple the old master used just before failover gets a later
    ISN from the new one, which the server's TIME_WAIT accepts."""
    secret = pair_secret()
    lb = active()
    for who in (lb, other(lb)):
        caps = [ServerSyn(rs) for rs in RS_IP]
        got = in_ns("client", ["curl", "-sS", "--max-time", "5", f"http://{VIP_FULLNAT}/"])
        assert got.returncode == 0 and got.stdout.strip() in RS_IP, got
        syns = [s for s in (c.get() for c in caps) if s is not None]
        assert len(syns) == 1, syns
        wall_ms, lport, rs, rport, seq = syns[0]
        want = modelled_isn(secret, LADDR, lport, rs, rport, wall_ms)
        # Signed distance in sequence space: within 250 ms of ISN clock
        # (a wrong key lands there once in ~550 tries).
        off = (seq - want + (1 << 31)) % (1 << 32) - (1 << 31)
        assert abs(off) <= 250 * 15_625, f"{who}: ISN {seq}, the key and wall clock give {want} ({off / 15_625:+.0f} ms)"
        if who == lb:
            kill9(lb)
            wait_until(f"{other(lb)} takes over {VIP_FULLNAT}", lambda: holds(other(lb), VIP_FULLNAT), timeout=15)
    restart(lb)


def proxy_log() -> list[str]:
    lines = []
    for rs in RS_IP:
        f = RUN / rs / "proxy.log"
        if f.exists():
            lines += f.read_text().splitlines()
    return lines


@pytest.mark.parametrize("port", [PROXY_PORT, PROXIED_PROXY_PORT], ids=["proxy-v2", "syn-proxy+proxy-v2"])
def test_proxy_protocol_sessions_survive_kill_9_with_their_sequence_shift(ha, port):
    """A download and an idle-then-active connection through the PROXY v2
    service: the servers got one header each before the failover; after
    it, the backup shifts the client's numbers by the header's length and
    takes the server's acknowledgements back, as the master did (the
    shift travels in sync), so both finish intact, without a reset and
    without a second header. Through the service that is SYN-proxied too,
    the backup applies both shifts (the proxy's, the header's) at once."""
    lb = active()
    backup = other(lb)
    want = in_ns("rs1", ["sha256sum", str(RUN / "rs1" / "big.bin")], check=True).stdout.split()[0]
    seen = len(proxy_log())
    resets = rst_count()
    opened = synproxy_opened(lb)
    dl = download_bg(VIP_FULLNAT, port)
    ll = client_bg(LONG_LIVED, VIP_FULLNAT, "9", "5", str(port))
    wait_synced(backup, "both PROXY connections", lambda:
                len(connections(backup, VIP_FULLNAT, port)) >= 2)
    assert synproxy_opened(lb) == opened + (2 if port == PROXIED_PROXY_PORT else 0)
    kill9(lb)
    wait_until(f"{backup} takes over {VIP_FULLNAT}", lambda: holds(backup, VIP_FULLNAT), timeout=15)
    assert finish(dl, timeout=60).split()[0] == want, "the download's bytes changed"
    verdict = json.loads(finish(ll, timeout=60))
    assert verdict == {"ok": 6, "error": None}, verdict
    assert rst_count() == resets, "a TCP connection was reset"
    log = proxy_log()[seen:]
    assert len(log) == 2 and all(l.startswith(f"ok {CLIENT_IP}:") for l in log), log
    restart(lb)


def synproxy_opened(lb: str) -> float:
    total = 0.0
    for m in re.finditer(r'^rvs_worker_synproxy_total\{[^}]*event="sessions_opened"[^}]*\} (\S+)$', metrics(lb), re.M):
        total += float(m.group(1))
    return total


def inserted(lb: str) -> float:
    """TOA options and PROXY headers LB's workers inserted toward servers."""
    total = 0.0
    for m in re.finditer(r'^rvs_worker_events_total\{[^}]*event="client_addr_inserted"[^}]*\} (\S+)$',
                         metrics(lb), re.M):
        total += float(m.group(1))
    return total


@pytest.mark.parametrize("port", [SYNPROXY_PORT, PROXIED_TOA_PORT], ids=["syn-proxy", "syn-proxy+toa"])
def test_syn_proxied_download_survives_kill_9_with_its_offsets(ha, port):
    """A download through the SYN-proxied service: the client's numbers,
    timestamps and windows are the proxy's, not the server's. After the
    failover the backup applies the same offsets (they travel in sync, rvs's
    SYN-proxy option), so the client's TCP (PAWS, sequence checks) takes
    the server's segments and the download finishes intact, without a reset.
    Through the service that tells its servers the client by TOA, the master
    put the option in (in the segments that acknowledge only the server's
    SYN), and the backup, which learnt where the server's stream stands by
    sync, never puts it in again."""
    lb = active()
    backup = other(lb)
    want = in_ns("rs1", ["sha256sum", str(RUN / "rs1" / "big.bin")], check=True).stdout.split()[0]
    resets = rst_count()
    opened = synproxy_opened(lb)
    toa = (inserted(lb), inserted(backup))
    dl = download_bg(VIP_FULLNAT, port)
    wait_synced(backup, "the SYN-proxied connection", lambda:
                len(connections(backup, VIP_FULLNAT, port)) >= 1)
    assert synproxy_opened(lb) == opened + 1, "the proxy opened the connection"
    if port == PROXIED_TOA_PORT:
        # In the ACK that completes the server's handshake, and in the
        # request if that came after it (both acknowledge only its SYN).
        wait_until("the master to count the TOA option it put in",
                   lambda: inserted(lb) > toa[0] or None, timeout=3)
    kill9(lb)
    wait_until(f"{backup} takes over {VIP_FULLNAT}", lambda: holds(backup, VIP_FULLNAT), timeout=15)
    assert finish(dl, timeout=60).split()[0] == want, "the download's bytes changed"
    assert rst_count() == resets, "a TCP connection was reset"
    assert inserted(backup) == toa[1], "the backup put a TOA option in again"
    restart(lb)


def holds6(lb: str, ip: str) -> bool:
    out = in_ns(lb, ["ip", "-o", "-6", "addr", "show", "dev", "dpdk0"]).stdout
    return f" {ip}/" in out


def test_an_ipv6_download_survives_kill_9_through_ipv6_sync_entries(ha):
    """A download from the IPv6 FULLNAT VIP: the backup holds it from the
    master's IPv6 entries (72 bytes, the IPv6 local address in rvs's option,
    over the IPv4 sync link), takes the IPv6 VIP with the IPv4 ones and
    finishes the download intact, without a reset."""
    lb = active()
    backup = other(lb)
    wait_until(f"{lb} holds {VIP6}", lambda: holds6(lb, VIP6), timeout=10)
    want = in_ns("rs1", ["sha256sum", str(RUN / "rs1" / "big.bin")], check=True).stdout.split()[0]
    resets = rst_count()
    dl = subprocess.Popen(["ip", "netns", "exec", "rvs-client", "sh", "-c",
                           f"curl -gsS --max-time 60 --limit-rate 1000K http://[{VIP6}]/big.bin | sha256sum"],
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_synced(backup, "the IPv6 connection", lambda:
                len(connections(backup, f"[{VIP6}]", 80)) >= 1)
    kill9(lb)
    wait_until(f"{backup} takes over {VIP6}", lambda: holds6(backup, VIP6), timeout=15)
    assert finish(dl, timeout=60).split()[0] == want, "the download's bytes changed"
    assert rst_count() == resets, "a TCP connection was reset"
    restart(lb)


def test_a_reload_that_changes_sync_restarts_the_daemons_and_asks_for_a_resync(ha):
    """SIGHUP with a changed [sync] on the backup appliance: its daemons
    start over with the file's settings (--export-config shows them), its
    backup asks the active appliance for a full resync (three empty sync
    messages), and the active's master sends one at once; the connection
    the backup held is still there. The config is put back the same way."""
    lb = active()
    backup = other(lb)
    path = HA / f"{backup}.toml"
    original = path.read_text()
    # DR: the tshark test below counts NAT entries only.
    held = client_bg(LONG_LIVED, VIP_DR, "8", "1")
    try:
        wait_until(f"{backup} holds the connection", lambda: connections(backup, VIP_DR, ECHO_PORT), timeout=8)
        asked = metric(lb, "rvs_sync_resync_requests_total", '{direction="received"}')
        sent = metric(backup, "rvs_sync_resync_requests_total", '{direction="sent"}')
        log_at = len((RUN / f"rvsd-{backup}.log").read_text())
        assert "sync_threshold = [3, 50]" in adm(backup, "--export-config").stdout
        path.write_text(original.replace("resync_interval = 5\n",
                                         "resync_interval = 5\nsync_threshold = [2, 20]\nsync_qlen_max = 1000\n"))
        os.kill(rvsd_pid(backup), signal.SIGHUP)
        wait_until("the new [sync] applied", lambda: "sync_threshold = [2, 20]" in adm(
            backup, "--export-config").stdout, timeout=5)
        assert "sync daemons restarted" in (RUN / f"rvsd-{backup}.log").read_text()[log_at:]
        assert adm(backup, "-L", "--daemon").stdout.splitlines() == [
            "master sync daemon (mcast=dpdk0, syncid=77, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
            "backup sync daemon (mcast=dpdk0, syncid=77, maxlen=1472, group=224.0.0.81, port=8848, ttl=1)",
        ]
        wait_until("three resync requests sent and heard", lambda:
                   metric(backup, "rvs_sync_resync_requests_total", '{direction="sent"}') == sent + 3 and
                   metric(lb, "rvs_sync_resync_requests_total", '{direction="received"}') == asked + 3, timeout=6)
        assert connections(backup, VIP_DR, ECHO_PORT), "the synced connection is still there"
    finally:
        path.write_text(original)
        os.kill(rvsd_pid(backup), signal.SIGHUP)
        wait_until("the original [sync] back", lambda: "sync_threshold = [3, 50]" in adm(
            backup, "--export-config").stdout, timeout=5)
    assert json.loads(finish(held, timeout=30))["error"] is None


def test_udp_keeps_answering_from_the_same_server_across_kill_9(ha):
    lb = active()
    stream = client_bg(UDP_STREAM, VIP_UDP, "12")
    wait_until(f"{other(lb)} holds the UDP flow", lambda: connections(other(lb), VIP_UDP, ECHO_PORT), timeout=8)
    kill9(lb)
    r = json.loads(finish(stream, timeout=40))
    assert len(r["servers"]) == 1, f"answered by more than one server: {r}"
    # Answers resumed after the takeover (keepalived needs about 3.5 s).
    assert r["answered"] > r["sent"] * 0.4 and r["gap"] < 8, r
    restart(lb)


def test_graceful_switchover(ha):
    def stop_keepalived(lb: str) -> None:
        rvslab.lab("stop-keepalived", lb)
    lb = active()
    failover(VIP_FULLNAT, stop_keepalived)
    restart_keepalived(lb)
    assert active() == other(lb), "the returning appliance does not preempt"


def test_tshark_decodes_the_sync_datagrams(ha, tmp_path):
    lb = active()
    backup = other(lb)
    # Wireshark reads no entry after one with options (docs/sync.md): let
    # the FULLNAT sessions of earlier tests (rvs's local-address option)
    # expire first, so that the datagrams carry NAT entries only.
    def no_fullnat_left():
        left = [c for vip in (VIP_FULLNAT, VIP_UDP) for port in (80, ECHO_PORT) for c in connections(lb, vip, port)]
        assert not left, f"left on {lb}: {left}"
        return True
    # (UDP 30 s, closing TCP states 2 s, from their last packet or sync.)
    wait_until("no FULLNAT session left", no_fullnat_left, timeout=75)
    pcap = tmp_path / "sync.pcap"
    cap = subprocess.Popen(["ip", "netns", "exec", f"rvs-{backup}", "tshark", "-i", "lb0", "-f",
                            "udp port 8848", "-w", str(pcap), "-a", "duration:12"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    # tshark says when it captures.
    for line in cap.stderr:
        if "Capturing on" in line:
            break
    # Three NAT connections, held open: no options in their entries, so
    # Wireshark reads every entry (see docs/sync.md on its limit).
    held = [client_bg(LONG_LIVED, VIP_NAT, "6", "1") for _ in range(3)]
    for p in held:
        assert json.loads(finish(p, timeout=30))["error"] is None
    cap.wait(timeout=30)
    out = rvslab.run(["tshark", "-r", str(pcap), "-d", "udp.port==8848,ipvs", "-T", "fields",
                      "-e", "ip.src", "-e", "ipvs.conncount", "-e", "ipvs.caddr", "-e", "ipvs.cport",
                      "-e", "ipvs.vaddr", "-e", "ipvs.vport", "-e", "ipvs.daddr", "-e", "ipvs.dport",
                      "-e", "ipvs.syncid", "-E", "aggregator=;"], check=True).stdout
    entries = set()
    for line in out.splitlines():
        src, count, caddr, cport, vaddr, vport, daddr, dport, syncid = line.split("\t")
        if count == "0":
            continue  # a starting backup's resync request: no entries
        assert src == LB_IP[lb] and syncid.split(";")[0] == "77", line
        rows = list(zip(caddr.split(";"), cport.split(";"), vaddr.split(";"), vport.split(";"),
                        daddr.split(";"), dport.split(";")))
        if not any(r[2] in (VIP_FULLNAT, VIP_UDP) for r in rows):
            assert len(rows) == int(count), line
        entries |= {r for r in rows if r[3] == str(ECHO_PORT) and r[2] == VIP_NAT}
    clients = {r[1] for r in entries}
    assert len(clients) == 3, entries
    assert all(r[0] == CLIENT_IP and r[4] in RS_IP.values() and r[5] == str(ECHO_PORT) for r in entries), entries


def test_bad_sync_input_is_dropped_counted_and_never_installed(ha):
    lb = active()
    backup = other(lb)
    before = {r: metric(backup, "rvs_sync_dropped_total", f'{{reason="{r}"}}')
              for r in ("wrong_syncid", "malformed", "unconfigured_peer")}
    entries = metric(backup, "rvs_sync_entries_received_total")
    # A valid one-entry message (a NAT connection the backup would take),
    # then the same with another SyncID, cut short, and from the client.
    entry = bytes([0, 6, 0, 36, 0, 0, 0, 0, 0, 1, 0xa4, 0x10, 0, 80, 0, 80, 0, 0, 0, 0, 0, 0, 3, 0x84,
                   10, 77, 0, 10, 10, 77, 0, 101, 10, 77, 0, 11])
    good = bytes([0, 77, 0, 44, 1, 1, 0, 0]) + entry
    send = ("import socket,sys; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); "
            "s.bind((sys.argv[1],0)); s.sendto(bytes.fromhex(sys.argv[2]),(sys.argv[3],8848))")
    wrong_id = bytes([0, 78]) + good[2:]
    in_ns(lb, ["python3", "-c", send, LB_IP[lb], wrong_id.hex(), LB_IP[backup]], check=True)
    in_ns(lb, ["python3", "-c", send, LB_IP[lb], good[:-4].hex(), LB_IP[backup]], check=True)
    in_ns("client", ["python3", "-c", send, CLIENT_IP, good.hex(), LB_IP[backup]], check=True)
    wait_until("the three drops counted", lambda: all(
        metric(backup, "rvs_sync_dropped_total", f'{{reason="{r}"}}') == before[r] + 1 for r in before), timeout=5)
    assert metric(backup, "rvs_sync_entries_received_total") == entries
    assert not [c for c in connections(backup, VIP_NAT, 80) if c.source == f"{CLIENT_IP}:42000"]


def test_the_backup_never_forwards_for_a_vip_it_does_not_hold(ha):
    lb = active()
    backup = other(lb)
    assert not holds(backup, VIP_FULLNAT)
    mac = {"lb1": "02:77:00:00:00:01", "lb2": "02:77:00:00:00:02"}[backup]
    drops = worker_drops(backup, "not_for_us")
    in_ns("client", ["ip", "neigh", "replace", VIP_FULLNAT, "lladdr", mac, "dev", "eth0", "nud", "permanent"], check=True)
    try:
        r = rvslab.client_curl(f"http://{VIP_FULLNAT}/", max_time=2)
        assert r.returncode != 0, "the backup answered for a VIP it does not hold"
    finally:
        in_ns("client", ["ip", "neigh", "del", VIP_FULLNAT, "dev", "eth0"])
    wait_until("the SYNs counted as not_for_us", lambda: worker_drops(backup, "not_for_us") > drops, timeout=5)
    assert rvslab.client_curl(f"http://{VIP_FULLNAT}/").stdout.strip() in ("rs1", "rs2")
