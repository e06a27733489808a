"""Helpers for the rvs end-to-end tests: commands in the lab's namespaces,
rvsd start/stop, rvsadm output parsing and test configs.

The lab itself (namespaces, bridge, HTTP real servers) is built by
`scripts/lab up`; see that script for the topology. Every command here runs
with a timeout so a wedged data path fails a test instead of hanging it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar

REPO = Path(__file__).resolve().parents[2]
LAB = REPO / "scripts" / "lab"
RVSD = Path(os.environ.get("RVSD", REPO / "target" / "release" / "rvsd"))
RVSADM = Path(os.environ.get("RVSADM", REPO / "target" / "release" / "rvsadm"))
LAB_CONFIG = REPO / "config" / "lab.toml"
RUN = Path("/run/rvs-lab")
RVSD_PID = RUN / "rvsd.pid"

CLIENT_IP = "10.77.0.10"
VIP = "10.77.0.100"
VIP_PORT = 80
LOCAL_ADDR = "10.77.0.200"
REAL_SERVERS = {"rs1": "10.77.0.11", "rs2": "10.77.0.12"}

# IPv6 on the same segment (scripts/lab: fd77::/64, nodad everywhere). The
# appliance's interface has IFACE_IP6 (lab.toml's address6); VIP6 and
# LOCAL_ADDR6 are what IPv6 services use by convention (see v6_service).
PREFIX6 = "fd77::"
CLIENT_IP6 = "fd77::10"
IFACE_IP6 = "fd77::2"
VIP6 = "fd77::100"
LOCAL_ADDR6 = "fd77::200"
REAL_SERVERS6 = {"rs1": "fd77::11", "rs2": "fd77::12"}


def endpoint(ip: str, port: int) -> str:
    """IP:PORT as ipvsadm and the config write it: [v6]:port for IPv6."""
    return f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"


def http_url(ip: str, path: str = "/", port: int = 80) -> str:
    """http://IP[:PORT]/PATH with an IPv6 address in brackets."""
    host = f"[{ip}]" if ":" in ip else ip
    return f"http://{host}{'' if port == 80 else f':{port}'}{path}"


def v6_service(forward: str = "fullnat", protocol: str = "tcp", port: int = 80, scheduler: str = "rr",
               vip: str = VIP6, servers: Optional[dict] = None, extra: str = "") -> str:
    """A `[[service]]` block for an IPv6 service on the lab's fd77::/64:
    VIP6:PORT, local address LOCAL_ADDR6 (FULLNAT), rs1 and rs2 at PORT."""
    servers = servers or REAL_SERVERS6
    lines = [
        "[[service]]",
        f"vip = {toml_str(endpoint(vip, port))}",
        f"protocol = {toml_str(protocol)}",
        f"scheduler = {toml_str(scheduler)}",
        f"forward = {toml_str(forward)}",
        f"local_addresses = [{toml_str(LOCAL_ADDR6)}]",
    ]
    if extra:
        lines.append(extra.strip("\n"))
    for ip in servers.values():
        lines += ["", "[[service.real_server]]", f"address = {toml_str(endpoint(ip, port))}"]
    return "\n".join(lines) + "\n"

# Short close timeouts so finished sessions leave the table within seconds.
SHORT_TIMEOUTS = {
    "tcp_time_wait": 2,
    "tcp_close": 2,
    "tcp_fin_wait": 2,
    "tcp_close_wait": 2,
    "tcp_last_ack": 2,
    "tcp_syn_recv": 5,
}

T = TypeVar("T")


# --------------------------------------------------------------------------
# commands


def run(cmd: list[str], timeout: float = 30, env: Optional[dict] = None,
        check: bool = False) -> subprocess.CompletedProcess:
    """Run CMD, capture text output. Never inherits our stdout (so a daemon
    started by CMD cannot hold a pipe open)."""
    full_env = None
    if env:
        full_env = dict(os.environ)
        full_env.update(env)
    proc = subprocess.run([str(c) for c in cmd], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout,
                          env=full_env)
    if check and proc.returncode != 0:
        raise AssertionError(
            f"command failed ({proc.returncode}): {' '.join(map(str, cmd))}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def in_ns(node: str, cmd: list[str], timeout: float = 30,
          check: bool = False) -> subprocess.CompletedProcess:
    """Run CMD inside the lab namespace rvs-NODE (client, lb, rs1, rs2, sw)."""
    return run(["ip", "netns", "exec", f"rvs-{node}", *cmd], timeout=timeout,
               check=check)


def lab(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """scripts/lab ARGS..., which must succeed."""
    return run(["bash", str(LAB), *args], timeout=timeout, check=True)


def client_curl(url: str, *extra: str, max_time: float = 5) -> subprocess.CompletedProcess:
    """curl -s from rvs-client; the CompletedProcess has the exit code and body."""
    return in_ns("client", ["curl", "-s", "--max-time", str(max_time), *extra, url],
                 timeout=max_time + 10)


def wait_until(what: str, probe: Callable[[], Optional[T]], timeout: float,
               interval: float = 0.2) -> T:
    """Poll PROBE every INTERVAL s until it returns something truthy, and
    return that; fail after TIMEOUT s. An AssertionError raised by PROBE
    counts as "not yet"; the last one is reported on timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = f"probe returned {value!r}"
        except AssertionError as e:  # not yet
            last = str(e)
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {last}")
        time.sleep(interval)


# --------------------------------------------------------------------------
# configs


def replace_table(text: str, table: str, body: str) -> str:
    """Replace the TOML table [TABLE] (header to the next header or EOF) with
    `[TABLE]\\nBODY`; append it if absent."""
    lines = text.splitlines(keepends=True)
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?\s*(#.*)?$")
    start = end = None
    for i, line in enumerate(lines):
        m = header.match(line)
        if not m:
            continue
        if start is None and m.group(1) == table and not line.lstrip().startswith("[["):
            start = i
        elif start is not None:
            end = i
            break
    new = f"[{table}]\n{body}"
    if not new.endswith("\n"):
        new += "\n"
    if start is None:
        return text.rstrip("\n") + "\n\n" + new
    if end is None:
        end = len(lines)
    # keep blank/comment lines that introduce the next table
    while end > start + 1 and lines[end - 1].strip().startswith("#"):
        end -= 1
    rest = "".join(lines[end:]).lstrip("\n")
    return "".join(lines[:start]) + new + ("\n" + rest if rest else "")


def set_key(text: str, table: str, key: str, value: str) -> str:
    """Set KEY = VALUE (VALUE is TOML text) inside [TABLE], which must exist."""
    lines = text.splitlines(keepends=True)
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    keyre = re.compile(rf"^\s*{re.escape(key)}\s*=")
    current = None
    table_line = None
    for i, line in enumerate(lines):
        m = header.match(line)
        if m:
            if current == table:
                break
            current = m.group(1)
            if current == table:
                table_line = i
            continue
        if current == table and keyre.match(line):
            lines[i] = f"{key} = {value}\n"
            return "".join(lines)
    if table_line is None:
        raise ValueError(f"no [{table}] table in config")
    lines.insert(table_line + 1, f"{key} = {value}\n")
    return "".join(lines)


def toml_str(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def make_test_config(socket: Path, file_prefix: str,
                     base: Path = LAB_CONFIG,
                     timeouts: Optional[dict] = None) -> str:
    """config/lab.toml with short close timeouts, its own control socket and
    DPDK file prefix (so a demo rvsd elsewhere cannot collide with it)."""
    text = base.read_text()
    original = tomllib.loads(text)
    merged = dict(original.get("timeouts", {}))
    merged.update(SHORT_TIMEOUTS if timeouts is None else timeouts)
    body = "".join(f"{k} = {v}\n" for k, v in merged.items())
    text = replace_table(text, "timeouts", body)
    text = set_key(text, "control", "socket", toml_str(str(socket)))
    text = set_key(text, "dpdk", "file_prefix", toml_str(file_prefix))
    parsed = tomllib.loads(text)  # must still be valid TOML
    assert parsed["timeouts"] == merged, parsed["timeouts"]
    assert parsed["control"]["socket"] == str(socket)
    assert parsed.get("service") == original.get("service")
    return text


def line_of(text: str, pattern: str) -> int:
    """1-based number of the first line matching regex PATTERN."""
    for i, line in enumerate(text.splitlines(), 1):
        if re.search(pattern, line):
            return i
    raise ValueError(f"no line matches {pattern!r}")


# --------------------------------------------------------------------------
# rvsadm


def rvsadm(socket: Optional[Path], *args: str, timeout: float = 10,
           check: bool = True) -> subprocess.CompletedProcess:
    env = {"RVS_SOCKET": str(socket)} if socket else None
    return run([str(RVSADM), *args], timeout=timeout, env=env, check=check)


IPVS_HEADER = [
    "IP Virtual Server version 1.2.1 (size=4096)",
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
]
CONN_HEADER = [
    "IPVS connection entries",
    "pro expire state       source             virtual            destination",
]


@dataclass
class RealServer:
    address: str
    forward: str
    weight: int
    active: int
    inactive: int
    line: str


@dataclass
class Service:
    protocol: str
    address: str
    scheduler: str
    flags: list[str]
    line: str
    servers: list[RealServer]


SERVICE_RE = re.compile(r"^(TCP|UDP|SCTP|FWM)  (\S+) (\S+)((?: \S+)*)\s*$")
SERVER_RE = re.compile(r"^  -> (\S+)\s+(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$")


def parse_services(text: str) -> list[Service]:
    """Parse `rvsadm -L -n` (ipvsadm format); raises AssertionError on any
    line that does not fit the format."""
    lines = text.splitlines()
    got = [line.rstrip() for line in lines[:3]]
    # ipvsadm prints the kernel's connection hash table size (4096 by
    # default); any number fits the format.
    normalised = [re.sub(r"^(IP Virtual Server version 1\.2\.1 \(size=)\d+\)$", r"\g<1>4096)", got[0])
                  if got else ""] + got[1:]
    assert normalised == IPVS_HEADER, f"header lines differ:\n{got!r}\nexpected\n{IPVS_HEADER!r}"
    services: list[Service] = []
    for line in lines[3:]:
        if not line.strip():
            continue
        m = SERVICE_RE.match(line)
        if m:
            services.append(Service(m.group(1), m.group(2), m.group(3),
                                    m.group(4).split(), line, []))
            continue
        m = SERVER_RE.match(line)
        assert m, f"line is neither a service nor a real server: {line!r}"
        assert services, f"real server line before any service: {line!r}"
        services[-1].servers.append(RealServer(m.group(1), m.group(2), int(m.group(3)),
                                               int(m.group(4)), int(m.group(5)), line))
    return services


def ipvsadm_server_line(rs: RealServer) -> str:
    """The line ipvsadm prints for RS (`  -> %-28s %-7s %-6d %-10u %-10u`)."""
    return (f"  -> {rs.address:<28} {rs.forward:<7} {rs.weight:<6} "
            f"{rs.active:<10} {rs.inactive:<10}").rstrip()


@dataclass
class Connection:
    protocol: str
    expire: str
    state: str
    source: str
    virtual: str
    destination: str


def parse_connections(text: str) -> list[Connection]:
    """Parse `rvsadm -L -n -c`."""
    lines = text.splitlines()
    got = [line.rstrip() for line in lines[:2]]
    assert [g.split() for g in got] == [h.split() for h in CONN_HEADER], \
        f"connection header differs:\n{got!r}\nexpected\n{CONN_HEADER!r}"
    conns = []
    for line in lines[2:]:
        if not line.strip():
            continue
        f = line.split()
        assert len(f) == 6, f"bad connection line: {line!r}"
        assert re.fullmatch(r"\d+:\d\d", f[1]), f"bad expire field: {line!r}"
        conns.append(Connection(*f))
    return conns


# --------------------------------------------------------------------------
# rvsd


class Rvsd:
    """rvsd running in rvs-lb, output to LOG, pid in /run/rvs-lab/rvsd.pid
    (so `scripts/lab down` stops it too)."""

    def __init__(self, config: Path, socket: Path, log: Path):
        self.config = config
        self.socket = socket
        self.log = log
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        assert RVSD.exists(), f"{RVSD} missing: run cargo build --release"
        assert RVSADM.exists(), f"{RVSADM} missing: run cargo build --release"
        with open(self.log, "wb") as out:
            # `ip netns exec` execs rvsd: the pid is rvsd's.
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", "rvs-lb", str(RVSD), "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)
        RUN.mkdir(parents=True, exist_ok=True)
        RVSD_PID.write_text(f"{self.proc.pid}\n")

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError as e:
            return f"(no log: {e})"

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_ready(self, timeout: float = 30) -> None:
        """Poll `rvsadm -L -n` until it succeeds; fail at once if rvsd exits."""
        def probe():
            if not self.running():
                raise RvsdDied(f"rvsd exited with {self.proc.returncode} during start-up;"
                               f" log:\n{self.log_text()}")
            return rvsadm(self.socket, "-L", "-n", check=False, timeout=5).returncode == 0
        try:
            wait_until("rvsd readiness (rvsadm -L -n exit 0)", probe, timeout)
        except AssertionError as e:
            raise AssertionError(f"{e}\nrvsd log:\n{self.log_text()}") from None

    def stop(self, grace: float = 5) -> Optional[int]:
        """SIGTERM, then SIGKILL after GRACE s. Returns the exit status, or
        None if SIGKILL was needed."""
        if self.proc is None:
            return None
        status: Optional[int] = self.proc.poll()
        if status is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                status = self.proc.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
                status = None
        try:
            if RVSD_PID.read_text().strip() == str(self.proc.pid):
                RVSD_PID.unlink()
        except OSError:
            pass
        return status


class RvsdDied(Exception):
    """rvsd exited while we waited for it (not retried by wait_until)."""


def rvsd_direct(config: Path, timeout: float = 30) -> subprocess.CompletedProcess:
    """Run rvsd in the root namespace and wait for it to exit (bad configs)."""
    assert RVSD.exists(), f"{RVSD} missing: run cargo build --release"
    try:
        return run([str(RVSD), "--config", str(config)], timeout=timeout)
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"rvsd --config {config} still ran after {timeout}s;"
                             f" stderr so far:\n{e.stderr}") from None


# --------------------------------------------------------------------------
# data-plane counters (`rvsadm --stats-dp`)

WORKER_RE = re.compile(
    r"^worker lcore (\d+): rx (\d+) tx (\d+) sessions (\d+) created (\d+) expired (\d+)"
    r" redirected out (\d+) in (\d+) generation (\d+)$")
DROP_RE = re.compile(r"^  drop (\w+): (\d+)$")
BYTES_RE = re.compile(r"^  bytes rx (\d+) tx (\d+)$")
GUARD_RE = re.compile(r"^  flood guard (on|off):((?: \w+ \d+)*)$")
EVENTS_RE = re.compile(r"^  events:((?: \w+ \d+)*)$")
FRAGS_RE = re.compile(r"^  fragments:((?: \w+ \d+)*)$")
SYNPROXY_RE = re.compile(r"^  syn proxy:((?: \w+ \d+)*)$")


@dataclass
class WorkerStats:
    lcore: int
    rx: int
    tx: int
    sessions: int
    created: int
    expired: int
    redirected_out: int
    redirected_in: int
    generation: int
    drops: dict
    rx_bytes: int = 0
    tx_bytes: int = 0
    guard_on: bool = False
    guard: dict = field(default_factory=dict)
    events: dict = field(default_factory=dict)
    frags: dict = field(default_factory=dict)
    synproxy: dict = field(default_factory=dict)


def parse_worker_stats(text: str) -> list[WorkerStats]:
    workers: list[WorkerStats] = []
    for line in text.splitlines():
        if line.startswith("port "):
            continue  # per-port lines: see port_stats()
        m = WORKER_RE.match(line)
        if m:
            workers.append(WorkerStats(*map(int, m.groups()), drops={}))
            continue
        m = BYTES_RE.match(line)
        if m and workers:
            workers[-1].rx_bytes, workers[-1].tx_bytes = map(int, m.groups())
            continue
        m = GUARD_RE.match(line)
        if m and workers:
            words = m.group(2).split()
            workers[-1].guard_on = m.group(1) == "on"
            workers[-1].guard = {k: int(v) for k, v in zip(words[::2], words[1::2])}
            continue
        m = EVENTS_RE.match(line)
        if m and workers:
            words = m.group(1).split()
            workers[-1].events = {k: int(v) for k, v in zip(words[::2], words[1::2])}
            continue
        m = FRAGS_RE.match(line)
        if m and workers:
            words = m.group(1).split()
            workers[-1].frags = {k: int(v) for k, v in zip(words[::2], words[1::2])}
            continue
        m = SYNPROXY_RE.match(line)
        if m and workers:
            words = m.group(1).split()
            workers[-1].synproxy = {k: int(v) for k, v in zip(words[::2], words[1::2])}
            continue
        m = DROP_RE.match(line)
        assert m and workers, f"unexpected --stats-dp line {line!r} in:\n{text}"
        workers[-1].drops[m.group(1)] = int(m.group(2))
    assert workers, f"no workers in --stats-dp output:\n{text}"
    return workers


def rvsd_rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


# A client that holds N connections to the VIP open at once, then sends one
# request on each and reads every answer. Prints one JSON object.
CONCURRENT_CLIENT = r"""
import json, socket, sys, time
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks, errors, bodies = [], [], []
for i in range(n):
    s = socket.socket()
    s.settimeout(20)
    try:
        s.connect((host, port))
        socks.append(s)
    except OSError as e:
        errors.append(f"connect {i}: {e}")
for i, s in enumerate(socks):
    s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
for i, s in enumerate(socks):
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    except OSError as e:
        errors.append(f"recv {i}: {e}")
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.0 200"):
        errors.append(f"answer {i}: {head[:40]!r}")
    bodies.append(body.decode(errors="replace").strip())
print(json.dumps({"connected": len(socks), "errors": errors, "bodies": bodies}))
"""


def concurrent_requests(n: int, timeout: float = 120) -> dict:
    import json
    proc = in_ns("client", ["python3", "-c", CONCURRENT_CLIENT, str(n), VIP, str(VIP_PORT)], timeout=timeout)
    assert proc.returncode == 0, f"client failed: {proc.stderr}"
    return json.loads(proc.stdout)


# Sends N SYNs from distinct ports (non-blocking connects, closed after a
# moment): new-connection load that never completes a handshake.
SYN_BURST = r"""
import socket, sys, time
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.socket()
    s.setblocking(False)
    try:
        s.connect((host, port))
    except BlockingIOError:
        pass
    socks.append(s)
time.sleep(1.5)
for s in socks:
    s.close()
"""


def syn_burst(n: int) -> None:
    proc = in_ns("client", ["python3", "-c", SYN_BURST, str(n), VIP, str(VIP_PORT)], timeout=60)
    assert proc.returncode == 0, proc.stderr


# Opens N connections to the VIP and holds them, idle and ESTABLISHED,
# until a line arrives on stdin; then sends one request on each and prints
# a JSON summary of the answers.
HOLD_CLIENT = r"""
import json, socket, sys
n, host, port = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
socks = []
for i in range(n):
    s = socket.create_connection((host, port), timeout=10)
    socks.append(s)
print("held", flush=True)
sys.stdin.readline()
ok, errors = 0, []
for i, s in enumerate(socks):
    try:
        s.settimeout(10)
        s.sendall(b"GET / HTTP/1.0\r\nHost: vip\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        if data.startswith(b"HTTP/1.0 200"):
            ok += 1
        else:
            errors.append(f"{i}: {data[:40]!r}")
    except OSError as e:
        errors.append(f"{i}: {e}")
    s.close()
print(json.dumps({"ok": ok, "errors": errors}), flush=True)
"""


class HeldConnections:
    """N idle ESTABLISHED connections through the VIP, used at the end."""

    def __init__(self, n: int):
        import subprocess as sp
        self.proc = sp.Popen(["ip", "netns", "exec", "rvs-client", "python3", "-c", HOLD_CLIENT,
                              str(n), VIP, str(VIP_PORT)],
                             stdin=sp.PIPE, stdout=sp.PIPE, stderr=sp.PIPE, text=True)
        line = self.proc.stdout.readline().strip()
        assert line == "held", f"could not hold {n} connections: {line!r} {self.proc.stderr.read()!r}"

    def use(self) -> dict:
        import json
        out, err = self.proc.communicate("go\n", timeout=60)
        assert self.proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# --------------------------------------------------------------------------
# UDP echo servers and clients (test_udp, test_nat, test_dr)

# Answers every datagram with "NAME SOURCE-IP PAYLOAD" to its sender, from
# the address it was sent to (IP_PKTINFO), so a server bound to 0.0.0.0
# answers a DR datagram from the VIP.
UDP_ECHO = r"""
import socket, struct, sys
IP_PKTINFO = 8  # linux/in.h (not exported by every Python)
name, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IP, IP_PKTINFO, 1)
s.bind(("0.0.0.0", port))
print("ready", flush=True)
while True:
    data, anc, _, peer = s.recvmsg(65535, socket.CMSG_SPACE(12))
    pktinfo = [d for (lvl, typ, d) in anc if lvl == socket.IPPROTO_IP and typ == IP_PKTINFO]
    reply = f"{name} {peer[0]} ".encode() + data
    # Answer from the datagram's destination (ipi_spec_dst = its ipi_addr), any interface.
    info = [(socket.IPPROTO_IP, IP_PKTINFO, struct.pack("=I4s4s", 0, pktinfo[0][8:12], bytes(4)))] if pktinfo else []
    s.sendmsg([reply], info, 0, peer)
"""

# UDP_ECHO over IPv6 ([::]:PORT, IPv6 only), answering from the datagram's
# destination (IPV6_PKTINFO), so a DR datagram to the VIP is answered from it.
UDP_ECHO6 = r"""
import socket, struct, sys
IPV6_RECVPKTINFO, IPV6_PKTINFO = 49, 50  # linux/in6.h
name, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
s.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVPKTINFO, 1)
s.bind(("::", port))
print("ready", flush=True)
while True:
    data, anc, _, peer = s.recvmsg(65535, socket.CMSG_SPACE(20))
    pktinfo = [d for (lvl, typ, d) in anc if lvl == socket.IPPROTO_IPV6 and typ == IPV6_PKTINFO]
    reply = f"{name} {peer[0]} ".encode() + data
    info = [(socket.IPPROTO_IPV6, IPV6_PKTINFO, struct.pack("=16sI", pktinfo[0][:16], 0))] if pktinfo else []
    s.sendmsg([reply], info, 0, peer)
"""

# One datagram from rvs-client (optionally from SRC, optionally without
# checksum: SO_NO_CHECK), prints the answer's source and payload.
UDP_ASK = r"""
import socket, sys
dst, port, payload, src, no_check = sys.argv[1], int(sys.argv[2]), sys.argv[3].encode(), sys.argv[4], sys.argv[5] == "1"
s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_DGRAM)
if no_check:
    s.setsockopt(socket.SOL_SOCKET, 11, 1)  # SO_NO_CHECK: send checksum 0
if src:
    s.bind((src, 0))
s.settimeout(3)
s.sendto(payload, (dst, port))
data, peer = s.recvfrom(65535)
print(f"{peer[0]}:{peer[1]} {data.decode()}")
"""


class UdpEcho:
    """UDP_ECHO (FAMILY 6: UDP_ECHO6) on PORT in rvs-NODE; stop() ends it (by its pid)."""

    def __init__(self, node: str, port: int, family: int = 4):
        script = UDP_ECHO6 if family == 6 else UDP_ECHO
        self.proc = subprocess.Popen(["ip", "netns", "exec", f"rvs-{node}", "python3", "-u", "-c", script, node, str(port)],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     text=True, start_new_session=True)
        line = self.proc.stdout.readline().strip()
        assert line == "ready", f"UDP echo on rvs-{node}:{port} did not start: {line!r}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def udp_ask(dst: str, port: int, payload: str, src: str = "", no_check: bool = False,
            node: str = "client") -> subprocess.CompletedProcess:
    """One UDP request/answer from rvs-NODE; stdout "PEER:PORT NAME SOURCE PAYLOAD"."""
    return in_ns(node, ["python3", "-c", UDP_ASK, dst, str(port), payload, src, "1" if no_check else "0"], timeout=15)


def socat_udp(dst: str, port: int, payload: str, node: str = "client") -> subprocess.CompletedProcess:
    """`echo PAYLOAD | socat -T 3 - UDP:DST:PORT` in rvs-NODE (a new source port each time)."""
    target = f"UDP6:[{dst}]:{port}" if ":" in dst else f"UDP:{dst}:{port}"
    return run(["ip", "netns", "exec", f"rvs-{node}", "sh", "-c",
                f"printf '%s' '{payload}' | socat -T 3 - {target}"], timeout=15)


def append_service(text: str, service: str) -> str:
    """TEXT with a `[[service]]` block (and its real servers) appended."""
    return text.rstrip("\n") + "\n\n" + service.strip("\n") + "\n"


def access_sources(node: str) -> list[str]:
    """Client addresses in rvs-NODE's HTTP access log, oldest first."""
    log = (RUN / node / "access.log").read_text(errors="replace")
    return [m.group(1) for m in re.finditer(r"^(\d+\.\d+\.\d+\.\d+) - - \[", log, re.M)]


def access_sources6(node: str) -> list[str]:
    """Client addresses in rvs-NODE's IPv6 HTTP server's access log
    (scripts/lab runs one per family), oldest first."""
    path = RUN / node / "access6.log"
    log = path.read_text(errors="replace") if path.exists() else ""
    return [m.group(1) for m in re.finditer(r"^([0-9a-fA-F:]*:[0-9a-fA-F:.]*) - - \[", log, re.M)]
