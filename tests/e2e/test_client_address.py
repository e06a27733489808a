"""Client addresses through FULLNAT (issue #20), with real servers and
real clients: nginx in rvs-rs1 listens with `proxy_protocol` behind
services that insert PROXY v1 and v2 headers (IPv4, IPv6, FULLNAT64) and
logs `$proxy_protocol_addr` (the client) beside `$remote_addr` (the local
address); a 10 MB upload and download through a PROXY v2 service survive
2 % loss and reordering on both sides (sequence shifting under
retransmission and SACK); tshark decodes the PROXY headers and the TOA
option in a capture on the server, and a small TOA reader here recovers the
client from the option's bytes.

Loss and reordering: this kernel has no netem, so nft drops a random 2 %
of the service's segments in the client's and the server's output, and an
htb qdisc with a slow class that nft sends a random eighth of them to
delays those behind the rest (reordering)."""

from __future__ import annotations

import hashlib
import ipaddress
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

import rvslab
from rvslab import CLIENT_IP, CLIENT_IP6, LOCAL_ADDR, LOCAL_ADDR6, VIP, VIP6

UDP_PORT = 5302
RS = "10.77.0.11"
RS6 = "fd77::11"
V1, V2, TOA, V64 = 8001, 8002, 8003, 8064
# The same modes behind the SYN proxy (docs/synproxy.md).
SP1, SP2, SPTOA = 8011, 8012, 8013
CONNECTIONS = 100
BIG = 10 * 1024 * 1024


def service(vip: str, port: int, mode: str, rs: str, laddr: str, syn_proxy: bool = False) -> str:
    return f"""
[[service]]
vip = {rvslab.toml_str(rvslab.endpoint(vip, port))}
protocol = "tcp"
scheduler = "rr"
forward = "fullnat"
client_address = "{mode}"
local_addresses = [{rvslab.toml_str(laddr)}]
syn_proxy = {str(syn_proxy).lower()}

[[service.real_server]]
address = {rvslab.toml_str(rvslab.endpoint(rs, port))}
"""


def rvsd_config(text: str) -> str:
    for svc in (
        service(VIP, V1, "proxy-v1", RS, LOCAL_ADDR),
        service(VIP, V2, "proxy-v2", RS, LOCAL_ADDR),
        service(VIP, TOA, "toa", RS, LOCAL_ADDR),
        service(VIP6, V1, "proxy-v1", RS6, LOCAL_ADDR6),
        service(VIP6, V2, "proxy-v2", RS6, LOCAL_ADDR6),
        service(VIP6, V64, "proxy-v2", RS, LOCAL_ADDR),  # FULLNAT64
        service(VIP, SP1, "proxy-v1", RS, LOCAL_ADDR, syn_proxy=True),
        service(VIP, SP2, "proxy-v2", RS, LOCAL_ADDR, syn_proxy=True),
        service(VIP, SPTOA, "toa", RS, LOCAL_ADDR, syn_proxy=True),
    ):
        text = rvslab.append_service(text, svc)
    udp = service(VIP, UDP_PORT, "proxy-v2", RS, LOCAL_ADDR).replace('protocol = "tcp"', 'protocol = "udp"')
    return rvslab.append_service(text, udp)


NGINX_CONF = """
worker_processes 1;
user root;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 512; }}
http {{
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
    default_type application/octet-stream;
    log_format pp '$server_port $proxy_protocol_addr $proxy_protocol_port $remote_addr';
    server {{
        listen {rs}:{v1} proxy_protocol;
        listen [{rs6}]:{v1} proxy_protocol;
        listen {rs}:{v2} proxy_protocol;
        listen [{rs6}]:{v2} proxy_protocol;
        listen {rs}:{v64} proxy_protocol;
        listen {rs}:{sp1} proxy_protocol;
        listen {rs}:{sp2} proxy_protocol;
        access_log {dir}/pp.log pp;
        root {dir}/www;
        client_max_body_size 64m;
        location /up/ {{ dav_methods PUT; create_full_put_path on; }}
        location = /who {{ return 200 "$proxy_protocol_addr\\n"; }}
    }}
    server {{
        listen {rs}:{toa};
        listen {rs}:{sptoa};
        access_log {dir}/toa.log;
        location / {{ return 200 "toa\\n"; }}
    }}
}}
"""


@pytest.fixture(scope="module")
def nginx(lab):
    d = lab.workdir / "nginx"
    for sub in ("tmp", "www/up"):
        (d / sub).mkdir(parents=True, exist_ok=True)
    (d / "www" / "big.bin").write_bytes(os.urandom(BIG))
    conf = d / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=d, rs=RS, rs6=RS6, v1=V1, v2=V2, v64=V64, toa=TOA,
                                sp1=SP1, sp2=SP2, sptoa=SPTOA))
    err = open(d / "stderr.log", "w")
    proc = subprocess.Popen(["ip", "netns", "exec", "rvs-rs1", "nginx", "-c", str(conf), "-e", str(d / "error.log")],
                            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
    try:
        rvslab.wait_until("nginx to listen", lambda: proc.poll() is not None or (
            f":{V2} " in rvslab.in_ns("rs1", ["ss", "-ltnH"]).stdout) or None, timeout=10)
        assert proc.poll() is None, (d / "stderr.log").read_text() + (d / "error.log").read_text()
        yield d
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()


def log_lines(d: Path, port: int) -> list[list[str]]:
    text = (d / "pp.log").read_text() if (d / "pp.log").exists() else ""
    return [l.split() for l in text.splitlines() if l.split()[:1] == [str(port)]]


def curl_loop(url: str, n: int) -> list[str]:
    """N separate connections (a new curl each) from the client; their bodies."""
    script = f"for i in $(seq {n}); do curl -sS -g --max-time 5 {url}; done"
    proc = rvslab.in_ns("client", ["sh", "-c", script], timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


@pytest.mark.parametrize("vip,port,client,local", [
    (VIP, V1, CLIENT_IP, LOCAL_ADDR),
    (VIP, V2, CLIENT_IP, LOCAL_ADDR),
    (VIP6, V1, CLIENT_IP6, LOCAL_ADDR6),
    (VIP6, V2, CLIENT_IP6, LOCAL_ADDR6),
    (VIP6, V64, CLIENT_IP6, LOCAL_ADDR),
], ids=["v1-ipv4", "v2-ipv4", "v1-ipv6", "v2-ipv6", "v2-fullnat64"])
def test_nginx_logs_the_client_over_100_connections(lab, nginx, vip, port, client, local):
    family = [l for l in log_lines(nginx, port) if (":" in l[3]) == (":" in local)]
    before = len(family)
    bodies = curl_loop(rvslab.http_url(vip, "/who", port), CONNECTIONS)
    assert bodies == [client] * CONNECTIONS
    lines = [l for l in log_lines(nginx, port) if (":" in l[3]) == (":" in local)][before:]
    assert len(lines) == CONNECTIONS, lines[-3:]
    assert {l[1] for l in lines} == {client}, "$proxy_protocol_addr"
    assert {l[3] for l in lines} == {local}, "$remote_addr is the local address"
    assert len({l[2] for l in lines}) == CONNECTIONS, "each from its own client port"


def test_rvsadm_shows_and_sets_the_mode(lab):
    listing = lab.rvsadm("-L", "-n").stdout
    assert f"TCP  {VIP}:{V2} rr client-address proxy-v2\n" in listing, listing
    assert f"TCP  {VIP}:80 rr\n" in listing, "a service without one lists as ipvsadm"
    assert f"-A -t {VIP}:{V1} -s rr --client-address proxy-v1\n" in lab.rvsadm("-S", "-n").stdout
    assert 'client_address = "toa"' in lab.rvsadm("--export-config").stdout
    lab.rvsadm("-E", "-t", f"{VIP}:{TOA}", "-s", "wrr", "--client-address", "proxy-v1")
    assert f"TCP  {VIP}:{TOA} wrr client-address proxy-v1\n" in lab.rvsadm("-L", "-n").stdout
    lab.rvsadm("-E", "-t", f"{VIP}:{TOA}", "-s", "rr")
    assert f"TCP  {VIP}:{TOA} rr client-address proxy-v1\n" in lab.rvsadm("-L", "-n").stdout, \
        "an -E without it keeps it"
    lab.rvsadm("-E", "-t", f"{VIP}:{TOA}", "-s", "rr", "--client-address", "toa")
    bad = lab.rvsadm("-E", "-t", f"{VIP}:{TOA}", "--client-address", "proxy", check=False)
    assert bad.returncode != 0 and "client_address must be" in bad.stderr, bad


# ---- loss and reordering ----------------------------------------------------

def impair(node: str, port: int) -> None:
    """2 % loss and reordering of the service's TCP segments leaving rvs-NODE."""
    cmds = [
        ["tc", "qdisc", "add", "dev", "eth0", "root", "handle", "1:", "htb", "default", "10"],
        ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:10", "htb", "rate", "1gbit"],
        ["tc", "class", "add", "dev", "eth0", "parent", "1:", "classid", "1:20", "htb", "rate", "8mbit"],
        ["nft", "add", "table", "inet", "rvsimpair"],
        ["nft", "add", "chain", "inet", "rvsimpair", "out", "{ type filter hook output priority 0; }"],
        ["nft", "add", "rule", "inet", "rvsimpair", "out", "tcp", "dport", str(port),
         "numgen", "random", "mod", "50", "==", "0", "counter", "drop"],
        ["nft", "add", "rule", "inet", "rvsimpair", "out", "tcp", "sport", str(port),
         "numgen", "random", "mod", "50", "==", "0", "counter", "drop"],
        ["nft", "add", "rule", "inet", "rvsimpair", "out", "numgen", "random", "mod", "8", "==", "0",
         "meta", "priority", "set", "1:20"],
    ]
    for c in cmds:
        rvslab.in_ns(node, c, check=True)


def unimpair(node: str) -> str:
    """Removes impair()'s rules; what nft and the slow htb class counted."""
    counted = rvslab.in_ns(node, ["nft", "list", "table", "inet", "rvsimpair"]).stdout
    counted += rvslab.in_ns(node, ["tc", "-s", "class", "show", "dev", "eth0", "classid", "1:20"]).stdout
    rvslab.in_ns(node, ["nft", "delete", "table", "inet", "rvsimpair"])
    rvslab.in_ns(node, ["tc", "qdisc", "del", "dev", "eth0", "root"])
    return counted


def drops(counted: str) -> int:
    return sum(int(n) for n in re.findall(r"counter packets (\d+) bytes \d+ drop", counted))


def delayed(counted: str) -> int:
    """Packets the slow htb class sent (each overtaken by later ones)."""
    return sum(int(n) for n in re.findall(r"Sent \d+ bytes (\d+) pkt", counted))


def tcp_counter(node: str, name: str) -> int:
    """A TCP counter of rvs-NODE's network namespace (nstat, absolute)."""
    out = rvslab.in_ns(node, ["nstat", "-asz", name]).stdout
    m = re.search(rf"^{name}\s+(\d+)", out, re.M)
    return int(m.group(1)) if m else 0


def test_10mb_up_and_down_under_loss_and_reordering(lab, nginx):
    src = lab.workdir / "upload.bin"
    src.write_bytes(os.urandom(BIG))
    got = lab.workdir / "download.bin"
    url = rvslab.http_url(VIP, "", V2)
    sack = {n: tcp_counter(n, "TcpExtTCPSackRecovery") for n in ("client", "rs1")}
    for node in ("client", "rs1"):
        impair(node, V2)
    try:
        up = rvslab.in_ns("client", ["curl", "-sS", "--max-time", "150", "-T", str(src), f"{url}/up/upload.bin"],
                          timeout=160)
        down = rvslab.in_ns("client", ["curl", "-sS", "--max-time", "150", "-o", str(got), f"{url}/big.bin"],
                            timeout=160)
    finally:
        counted = {node: unimpair(node) for node in ("client", "rs1")}
    assert up.returncode == 0, up.stderr
    assert down.returncode == 0, down.stderr
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert sha(nginx / "www" / "up" / "upload.bin") == sha(src)
    assert sha(got) == sha(nginx / "www" / "big.bin")
    # The loss and the reordering were real, both ways, and the senders
    # recovered with SACK (blocks that rvs mapped back toward the client).
    assert drops(counted["client"]) > 20 and drops(counted["rs1"]) > 20, counted
    assert delayed(counted["client"]) > 100 and delayed(counted["rs1"]) > 100, counted
    recovered = {n: tcp_counter(n, "TcpExtTCPSackRecovery") - sack[n] for n in sack}
    assert recovered["client"] > 0 and recovered["rs1"] > 0, recovered
    # And the connections carried their PROXY headers (one log line each).
    assert [l[1] for l in log_lines(nginx, V2)[-2:]] == [CLIENT_IP, CLIENT_IP]


# ---- on the wire ------------------------------------------------------------

class Capture:
    """tcpdump on rvs-rs1's eth0 into a pcap file (`-w -`: ours)."""

    def __init__(self, workdir: Path, *filt: str):
        self.path = workdir / f"rs1-{time.monotonic_ns()}.pcap"
        self.err = self.path.with_suffix(".err")
        with open(self.path, "wb") as out, open(self.err, "w") as err:
            self.proc = subprocess.Popen(["ip", "netns", "exec", "rvs-rs1", "tcpdump", "-i", "eth0", "-n", "-U", "--immediate-mode",
                                          "-w", "-", *filt], stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        rvslab.wait_until("tcpdump to listen", lambda: "listening on" in self.err.read_text()
                          or self.proc.poll() is not None, timeout=10)
        assert self.proc.poll() is None, self.err.read_text()

    def stop(self) -> None:
        time.sleep(0.3)
        self.proc.terminate()
        self.proc.wait(timeout=5)


def tshark(pcap: Path, *args: str) -> list[list[str]]:
    proc = rvslab.run(["tshark", "-r", str(pcap), "-n", *args], timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [l.split("\t") for l in proc.stdout.splitlines() if l.strip()]


def toa_reader(options_hex: str) -> tuple[str, int] | None:
    """The client a TOA option names, from a TCP header's options (hex, as
    tshark prints `tcp.options`): kind 254, length 8 (port, IPv4 address)
    or 20 (port, IPv6 address), as the TOA kernel modules read it."""
    b = bytes.fromhex(options_hex.replace(":", ""))
    i = 0
    while i < len(b):
        kind = b[i]
        if kind == 0:
            break
        if kind == 1:
            i += 1
            continue
        if i + 1 >= len(b) or b[i + 1] < 2:
            break
        length = b[i + 1]
        if kind == 254 and length in (8, 20):
            port = int.from_bytes(b[i + 2:i + 4], "big")
            return str(ipaddress.ip_address(b[i + 4:i + length])), port
        i += length
    return None


def test_tshark_decodes_proxy_headers_and_toa_on_the_server(lab, nginx):
    cap = Capture(lab.workdir, "tcp", "and", "(", "port", str(V1), "or", "port", str(V2), "or",
                  "port", str(TOA), ")")
    try:
        for port in (V1, V2, TOA):
            out = rvslab.in_ns("client", ["curl", "-sS", "--max-time", "5", "--local-port", f"{61001 + port - V1}",
                                          rvslab.http_url(VIP, "/who", port)])
            assert out.returncode == 0, out.stderr
    finally:
        cap.stop()
    # Wireshark's PROXY dissector is a TCP heuristic (on by default).
    rows = tshark(cap.path, "-o", "tcp.try_heuristic_first:TRUE", "-Y", "proxy",
                  "-T", "fields", "-e", "tcp.dstport", "-e", "ip.src", "-e", "proxy.v1.proto", "-e", "proxy.version",
                  "-e", "proxy.src.ipv4", "-e", "proxy.srcport", "-e", "proxy.dst.ipv4", "-e", "proxy.dstport")
    seen = {r[0]: r[1:] for r in rows}
    assert seen[str(V1)] == [LOCAL_ADDR, "TCP4", "", CLIENT_IP, "61001", VIP, str(V1)], rows
    assert seen[str(V2)] == [LOCAL_ADDR, "", "2", CLIENT_IP, "61002", VIP, str(V2)], rows
    # TOA: tshark sees option 254 (8 bytes) on the handshake's ACK at least;
    # the reader recovers the client from its bytes.
    rows = tshark(cap.path, "-Y", f"tcp.dstport=={TOA} && tcp.option_kind==254", "-T", "fields",
                  "-e", "tcp.flags", "-e", "tcp.len", "-e", "tcp.options", "-e", "tcp.option_len")
    assert rows, "no TOA option seen"
    assert any(r[1] == "0" and int(r[0], 16) & 0x10 for r in rows), "the handshake's ACK carries it"
    for r in rows:
        assert toa_reader(r[2]) == (CLIENT_IP, 61003), r
        assert "8" in r[3].split(","), r
    # The insertions are counted, in --stats-dp and the metrics.
    stats = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)
    assert sum(w.events["client_addr_inserted"] for w in stats) >= 3, stats
    metrics = rvslab.in_ns("lb", ["curl", "-s", "http://127.0.0.1:9477/metrics"]).stdout
    assert re.search(r'rvs_worker_events_total\{event="client_addr_inserted",worker="\d+"\} [1-9]', metrics), \
        metrics


# ---- behind the SYN proxy ---------------------------------------------------

def synproxy_opened(lab) -> int:
    """Connections the SYN proxy opened to servers, over all workers."""
    workers = rvslab.parse_worker_stats(lab.rvsadm("--stats-dp").stdout)
    return sum(w.synproxy.get("sessions_opened", 0) for w in workers)


@pytest.mark.parametrize("port", [SP1, SP2], ids=["v1", "v2"])
def test_proxy_header_behind_the_syn_proxy(lab, nginx, port):
    """nginx logs the client through a SYN-proxied PROXY service, and a
    10 MB download (the server's stream shifted by the proxy, the client's
    acknowledgements by the header) arrives intact."""
    listing = lab.rvsadm("-L", "-n").stdout
    assert re.search(rf"TCP  {VIP}:{port} rr .*synproxy.*client-address proxy-v{port - SP1 + 1}\n", listing), listing
    opened = synproxy_opened(lab)
    before = len(log_lines(nginx, port))
    bodies = curl_loop(rvslab.http_url(VIP, "/who", port), 20)
    assert bodies == [CLIENT_IP] * 20
    got = lab.workdir / f"sp-{port}.bin"
    down = rvslab.in_ns("client", ["curl", "-sS", "--max-time", "60", "-o", str(got),
                                   rvslab.http_url(VIP, "/big.bin", port)], timeout=70)
    assert down.returncode == 0, down.stderr
    sha = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()  # noqa: E731
    assert sha(got) == sha(nginx / "www" / "big.bin")
    lines = log_lines(nginx, port)[before:]
    assert len(lines) == 21, lines[-3:]
    assert {l[1] for l in lines} == {CLIENT_IP}, "$proxy_protocol_addr"
    assert {l[3] for l in lines} == {LOCAL_ADDR}, "$remote_addr is the local address"
    assert synproxy_opened(lab) - opened == 21, "every connection went through the SYN proxy"


def test_toa_behind_the_syn_proxy(lab, nginx):
    """The ACK that completes the server's handshake (rebuilt or the held
    request) carries TOA; the reader recovers the client from it."""
    opened = synproxy_opened(lab)
    cap = Capture(lab.workdir, "tcp", "and", "port", str(SPTOA))
    try:
        out = rvslab.in_ns("client", ["curl", "-sS", "--max-time", "5", "--local-port", "61013",
                                      rvslab.http_url(VIP, "/", SPTOA)])
        assert out.returncode == 0 and out.stdout == "toa\n", out
    finally:
        cap.stop()
    assert synproxy_opened(lab) - opened == 1
    rows = tshark(cap.path, "-Y", f"tcp.dstport=={SPTOA} && tcp.option_kind==254", "-T", "fields",
                  "-e", "tcp.flags", "-e", "tcp.len", "-e", "tcp.options")
    assert rows, "no TOA option seen"
    assert all(int(r[0], 16) & 0x10 and not int(r[0], 16) & 0x02 for r in rows), rows
    for r in rows:
        assert toa_reader(r[2]) == (CLIENT_IP, 61013), r


# ---- UDP ---------------------------------------------------------------------

UDP_ASK_RAW = r"""
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(3)
s.sendto(b"hello", (sys.argv[1], int(sys.argv[2])))
data, _ = s.recvfrom(65535)
print(s.getsockname()[1], data.hex())
"""


def test_udp_datagrams_carry_proxy_v2(lab):
    echo = rvslab.UdpEcho("rs1", UDP_PORT)
    try:
        for _ in range(3):
            out = rvslab.in_ns("client", ["python3", "-c", UDP_ASK_RAW, VIP, str(UDP_PORT)], timeout=15)
            assert out.returncode == 0, out.stderr
            port, reply = out.stdout.split()
            header = (b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x12, 0, 12])
                      + ipaddress.ip_address(CLIENT_IP).packed + ipaddress.ip_address(VIP).packed
                      + int(port).to_bytes(2, "big") + UDP_PORT.to_bytes(2, "big"))
            # The echo server answers "NAME PEER " + what it received.
            assert bytes.fromhex(reply) == f"rs1 {LOCAL_ADDR} ".encode() + header + b"hello"
    finally:
        echo.stop()
