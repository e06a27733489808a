"""No silent loss before the PMD: frames the kernel drops because the
appliance's receive ring is full (the worker stopped polling) show in
`rvsadm --stats-dp` (`rx-kernel-dropped`) and in /metrics
(`rvs_port_rx_kernel_dropped_total`), for both of the lab's I/O paths:
af_packet (the packet socket's PACKET_STATISTICS) and af_xdp (the veth's
rx_dropped when the XDP socket's ring is full). rvsd is stopped (SIGSTOP)
while the client sends far more datagrams than the ring holds; afterwards
every frame the appliance's veth received is either counted as received
by the PMD or as dropped by the kernel."""

from __future__ import annotations

import os
import re
import signal

import rvslab
from rvslab import VIP

# Datagrams sent while rvsd is stopped: several times any ring (af_packet
# 4096 frames, af_xdp 2048 descriptors).
BURST = 30000
PORT_RE = re.compile(r"^port dpdk0: rx (\d+) .* rx-missed (\d+) rx-kernel-dropped (\d+) ")


def port_counters(lab) -> tuple[int, int]:
    """(rx, rx-kernel-dropped) of dpdk0 from --stats-dp."""
    text = lab.rvsadm("--stats-dp", check=True).stdout
    for line in text.splitlines():
        m = PORT_RE.match(line)
        if m:
            return int(m.group(1)), int(m.group(3))
    raise AssertionError(f"no dpdk0 line with rx-kernel-dropped in --stats-dp:\n{text}")


def veth_rx() -> int:
    p = rvslab.in_ns("lb", ["cat", "/sys/class/net/lb0/statistics/rx_packets"], check=True)
    return int(p.stdout)


def metric_kernel_dropped() -> int:
    p = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", "http://127.0.0.1:9477/metrics"], check=True)
    m = re.search(r'^rvs_port_rx_kernel_dropped_total\{port="dpdk0"\} (\d+)$', p.stdout, re.M)
    assert m, "no rvs_port_rx_kernel_dropped_total for dpdk0 in /metrics"
    return int(m.group(1))


def send_burst(n: int) -> None:
    """N 18-byte UDP datagrams from the client to the VIP's port 9 (no
    service: the appliance drops what it receives, which is not the point)."""
    rvslab.in_ns("client", [
        "python3", "-c",
        "import socket, sys\n"
        "s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n"
        f"for _ in range({n}):\n"
        f"    s.sendto(b'x' * 18, ('{VIP}', 9))\n",
    ], timeout=60, check=True)


def overflow_and_count(lab, pid: int) -> None:
    # The client knows the VIP's MAC before rvsd stops answering ARP.
    assert rvslab.client_curl(rvslab.http_url(VIP)).returncode == 0
    rx0, dropped0 = port_counters(lab)
    veth0 = veth_rx()
    os.kill(pid, signal.SIGSTOP)
    try:
        send_burst(BURST)
    finally:
        os.kill(pid, signal.SIGCONT)

    def settled():
        rx, dropped = port_counters(lab)
        seen = veth_rx() - veth0
        got = (rx - rx0) + (dropped - dropped0)
        # The counters are read one after the other while the lab's own
        # frames (ARP, ND) may arrive between two reads: a few either way.
        assert abs(got - seen) <= 8 and seen >= BURST, \
            f"veth received {seen}, PMD rx {rx - rx0} + kernel-dropped {dropped - dropped0} = {got}"
        return (rx - rx0, dropped - dropped0, seen)

    rx, dropped, seen = rvslab.wait_until(
        "every frame the veth received counted by the PMD (rx) or the kernel (rx-kernel-dropped)",
        settled, timeout=15)
    # Most of the burst did not fit: the kernel dropped it, and said so.
    assert dropped >= BURST - 8192, (rx, dropped, seen)
    assert metric_kernel_dropped() >= dropped0 + dropped


def test_af_packet_ring_overflow_is_counted(lab):
    overflow_and_count(lab, lab.rvsd.proc.pid)


def test_af_xdp_ring_overflow_is_counted(lab):
    # The same lab and config, the port through net_af_xdp instead.
    assert lab.rvsd.stop(grace=5) == 0
    text = lab.config.read_text().replace('"net_af_packet0,', '"net_af_xdp0,')
    assert "net_af_xdp0,iface=lb0" in text
    config = lab.workdir / "af-xdp.toml"
    config.write_text(text)
    rvsd = rvslab.Rvsd(config, lab.socket, lab.workdir / "rvsd-af-xdp.log")
    rvsd.start()
    try:
        rvsd.wait_ready(timeout=30)
        overflow_and_count(lab, rvsd.proc.pid)
    except BaseException:
        print(rvsd.log_text())
        raise
    finally:
        rvsd.stop(grace=5)
