"""`rvsadm link|addr|route|neigh`, the iproute-style view, against the
one-arm lab through the real DPDK path.

`addr add` gives the address to the exception path's kernel interface (the
TAP named like the DPDK interface, in rvs-lb) and to the data plane as an
owned address (ARP replies, punting): the client can then ping it through
the DPDK port. `addr del` undoes both. Bad input (unknown interface,
malformed prefix, an address already in use) is refused with ip's words and
exit status 2, and changes nothing, on either side."""

from __future__ import annotations

import re

import rvslab
from rvslab import VIP

DEV = "dpdk0"
NEW = "10.77.0.3"


def addr_show(lab) -> str:
    return lab.rvsadm("addr", "show").stdout


def kernel_addrs() -> list[str]:
    out = rvslab.in_ns("lb", ["ip", "-4", "-o", "addr", "show", "dev", DEV], check=True).stdout
    return re.findall(r"inet (\S+)", out)


def port_mac(lab) -> str:
    m = re.search(r"link/ether ([0-9a-f:]{17})", lab.rvsadm("link", "show", "dev", DEV).stdout)
    assert m, "no MAC in link show"
    return m.group(1)


def ping(addr: str, count: int = 2):
    """ping from the client; the CompletedProcess (truthy when answered)."""
    r = rvslab.in_ns("client", ["ping", "-c", str(count), "-i", "0.3", "-W", "2", addr], timeout=15)

    class Answer:
        def __bool__(self):
            return r.returncode == 0

        def __repr__(self):
            return f"ping {addr}: exit {r.returncode}\n{r.stdout}{r.stderr}"
    return Answer()


def test_link_show_counts_traffic(lab):
    def counters():
        text = lab.rvsadm("link", "show", "-s").stdout
        lines = text.splitlines()
        rx = int(lines[lines.index(next(line for line in lines if line.strip().startswith("RX:"))) + 1].split()[1])
        tx = int(lines[lines.index(next(line for line in lines if line.strip().startswith("TX:"))) + 1].split()[1])
        return rx, tx

    text = lab.rvsadm("link", "show").stdout
    assert re.match(r"1: dpdk0: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu \d+ state UP\n    link/ether [0-9a-f:]{17} brd ff:ff:ff:ff:ff:ff\n", text), text
    assert "RX:" not in text, "counters only with -s"
    rx0, tx0 = counters()
    for _ in range(3):
        assert rvslab.client_curl(f"http://{VIP}/").returncode == 0
    rx1, tx1 = counters()
    assert rx1 - rx0 >= 3 * 6 and tx1 - tx0 >= 3 * 6, ((rx0, tx0), (rx1, tx1))
    r = lab.rvsadm("link", "show", "dev", "nosuch", check=False)
    assert (r.returncode, r.stderr.strip()) == (1, 'Device "nosuch" does not exist.'), r


def test_addr_add_answers_through_dpdk_and_del_undoes_it(lab):
    assert not ping(NEW), f"{NEW} answers before it is added"
    r = lab.rvsadm("addr", "add", f"{NEW}/24", "dev", DEV, check=False)
    assert r.returncode == 0, r.stderr
    # In use once its ARP probes found no other holder (a few seconds).
    rvslab.wait_until("the address in use", lambda: f"inet {NEW}/24 brd 10.77.0.255 scope global secondary dpdk0" in addr_show(lab), timeout=15)
    shown = addr_show(lab)
    assert "    inet 10.77.0.2/24 brd 10.77.0.255 scope global dpdk0\n" in shown, shown
    assert f"    inet {NEW}/24 brd 10.77.0.255 scope global secondary dpdk0\n" in shown, shown
    assert f"{NEW}/24" in kernel_addrs()
    # The client's failed ARP entry from the first ping would answer "host
    # unreachable" for a while (rvsd sends no gratuitous ARP yet): forget it.
    rvslab.in_ns("client", ["ip", "neigh", "flush", "to", NEW], check=True)
    answer = ping(NEW)
    assert answer, f"ping through the DPDK port failed: {answer!r}\n{lab.rvsadm('--stats-dp').stdout}"
    # The data plane answered the client's ARP for it with the port's MAC.
    neigh = rvslab.in_ns("client", ["ip", "neigh", "show", NEW], check=True).stdout
    assert port_mac(lab) in neigh, neigh
    r = lab.rvsadm("addr", "del", f"{NEW}/24", "dev", DEV, check=False)
    assert r.returncode == 0, r.stderr
    assert NEW not in addr_show(lab)
    assert f"{NEW}/24" not in kernel_addrs()
    assert not ping(NEW), f"{NEW} still answers after addr del"


def test_bad_addr_commands_change_nothing(lab):
    lab.rvsadm("addr", "add", "10.77.0.4/24", "dev", DEV)
    try:
        before, kernel_before = addr_show(lab), kernel_addrs()
        for args, want in [
            (["addr", "add", "10.77.0.5/24", "dev", "nosuch"], 'Cannot find device "nosuch"'),
            (["addr", "add", "10.77.0.300/24", "dev", DEV], 'any valid prefix is expected rather than "10.77.0.300/24"'),
            (["addr", "add", "10.77.0.5/33", "dev", DEV], "any valid prefix is expected"),
            (["addr", "add", "10.77.0.5/24"], "needs dev NAME"),
            (["addr", "add", "10.77.0.2/24", "dev", DEV], "File exists (10.77.0.2 is the address of dpdk0)"),
            (["addr", "add", "10.77.0.4/24", "dev", DEV], "File exists (10.77.0.4/24 is already on dpdk0)"),
            (["addr", "add", f"{VIP}/32", "dev", DEV], "virtual service address"),
            (["addr", "del", "10.77.0.2/24", "dev", DEV], "configured address"),
            (["addr", "del", "10.77.0.6/24", "dev", DEV], "No such process"),
            (["addr", "del", "10.77.0.4/24", "dev", "nosuch"], 'Cannot find device "nosuch"'),
            (["addr", "frob"], 'Command "frob" is unknown'),
        ]:
            r = lab.rvsadm(*args, check=False)
            assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
            assert want in r.stderr, (args, r.stderr)
            assert addr_show(lab) == before, f"{args} changed the addresses"
            assert kernel_addrs() == kernel_before, f"{args} changed the kernel side"
    finally:
        lab.rvsadm("addr", "del", "10.77.0.4/24", "dev", DEV)


def test_route_show_of_the_lab(lab):
    assert lab.rvsadm("route", "show").stdout == "10.77.0.0/24 dev dpdk0 proto kernel scope link src 10.77.0.2\n"


def test_static_neighbour(lab):
    entry = "10.77.0.50 dev dpdk0 lladdr 02:00:00:00:00:50 PERMANENT"
    r = lab.rvsadm("neigh", "add", "10.77.0.50", "lladdr", "02:00:00:00:00:50", "dev", DEV, check=False)
    assert r.returncode == 0, r.stderr
    try:
        shown = lab.rvsadm("neigh", "show").stdout
        assert entry in shown.splitlines(), shown
        # Learned entries are there too (the real servers, after traffic).
        assert rvslab.client_curl(f"http://{VIP}/").returncode == 0
        shown = lab.rvsadm("neigh").stdout
        assert re.search(r"^10\.77\.0\.1[12] dev dpdk0 lladdr [0-9a-f:]{17} REACHABLE$", shown, re.M), shown
        for args, want in [
            (["neigh", "add", "10.77.0.50", "lladdr", "02:00:00:00:00:51", "dev", DEV], "already a permanent neighbour"),
            (["neigh", "add", "10.77.0.51", "lladdr", "02:00:00:00:00", "dev", DEV], "is invalid lladdr"),
            (["neigh", "add", "10.77.0.51", "lladdr", "02:00:00:00:00:51", "dev", "nosuch"], 'Cannot find device "nosuch"'),
            (["neigh", "del", "10.77.0.52", "dev", DEV], "No such process"),
        ]:
            before = lab.rvsadm("neigh").stdout
            r = lab.rvsadm(*args, check=False)
            assert r.returncode == 2, (args, r.returncode, r.stderr)
            assert want in r.stderr, (args, r.stderr)
            assert entry in lab.rvsadm("neigh").stdout.splitlines(), f"{args} touched the static entry"
            assert "10.77.0.51" not in lab.rvsadm("neigh").stdout and before.count("\n") == lab.rvsadm("neigh").stdout.count("\n")
    finally:
        r = lab.rvsadm("neigh", "del", "10.77.0.50", "dev", DEV, check=False)
    assert r.returncode == 0, r.stderr
    assert "10.77.0.50" not in lab.rvsadm("neigh").stdout
