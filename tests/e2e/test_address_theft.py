"""rvsd refuses to take addresses that belong to other hosts or to other
roles: a VIP or local address at a real server's address (rvsd would answer
ARP for it and take that server's traffic), a local address at a VIP or at
the interface's address, a real server at a VIP or local address. Refused
by `rvsd --check-config` with FILE:LINE:COL, by `rvsadm` with the reason and
ipvsadm's exit code 255 for a refused change, and by `rvsadm addr add`;
nothing changes."""

from __future__ import annotations

import re
import subprocess
import time

import pytest

import rvslab
from rvslab import VIP

SVC = f"{VIP}:80"
RS1, RS2 = rvslab.REAL_SERVERS["rs1"], rvslab.REAL_SERVERS["rs2"]


def rules(lab) -> str:
    return lab.rvsadm("-S", "-n").stdout


@pytest.mark.parametrize("args, message", [
    # -A at a real server's address (another port): would hijack rs1.
    (["-A", "-t", f"{RS1}:8080", "-s", "rr"],
     f"{RS1} cannot be a VIP of service TCP/{RS1}:8080: it is the real server {RS1}:80 of service TCP/{SVC}"),
    # -P -z: a local address at a real server's, the VIP, the interface's.
    (["-P", "-t", SVC, "-z", RS2],
     f"{RS2} cannot be a local address of service TCP/{SVC}: it is the real server {RS2}:80"),
    (["-P", "-t", SVC, "-z", VIP],
     f"{VIP} cannot be a local address of service TCP/{SVC}: it is the VIP of service TCP/{SVC}"),
    (["-P", "-t", SVC, "-z", "10.77.0.2"],
     "10.77.0.2 cannot be a local address of service TCP/10.77.0.100:80: it is the interface address of dpdk0"),
    # -a: a real server at the VIP or the local address.
    (["-a", "-t", SVC, "-r", f"{VIP}:8080", "-m"],
     f"{VIP} cannot be a real server {VIP}:8080 of service TCP/{SVC}: it is the VIP"),
    (["-a", "-t", SVC, "-r", f"{rvslab.LOCAL_ADDR}:80"],
     f"{rvslab.LOCAL_ADDR} cannot be a real server {rvslab.LOCAL_ADDR}:80 of service TCP/{SVC}: it is the local address"),
])
def test_rvsadm_refuses_addresses_it_would_steal(lab, args, message):
    before = rules(lab)
    p = lab.rvsadm(*args, check=False)
    assert (p.returncode, p.stdout) == (255, ""), (args, p.returncode, p.stdout, p.stderr)
    assert p.stderr.startswith(message), (args, p.stderr)
    assert rules(lab) == before


def test_addr_add_refuses_a_real_servers_address(lab):
    p = lab.rvsadm("addr", "add", f"{RS1}/24", "dev", "dpdk0", check=False)
    assert p.returncode != 0 and f"{RS1} cannot be an interface address of dpdk0: it is the real server {RS1}:80" in p.stderr, p
    assert f"inet {RS1}/" not in lab.rvsadm("addr", "show", "dev", "dpdk0").stdout


def test_a_hijacking_vip_is_never_announced(lab):
    """After the refused -A, rs1 still gets its own traffic: a client
    reaching rs1 directly is answered by rs1, and the client's ARP entry for
    rs1 is rs1's MAC, not the appliance's."""
    lab.rvsadm("-A", "-t", f"{RS1}:8080", "-s", "rr", check=False)
    rvslab.in_ns("client", ["ip", "neigh", "flush", "dev", "eth0"])
    r = rvslab.in_ns("client", ["curl", "-s", "--max-time", "3", f"http://{RS1}/"], timeout=10)
    assert r.returncode == 0 and "rs1" in r.stdout, r
    rs1_mac = rvslab.in_ns("rs1", ["cat", "/sys/class/net/eth0/address"]).stdout.strip()
    neigh = rvslab.in_ns("client", ["ip", "neigh", "show", RS1]).stdout
    assert rs1_mac in neigh, (rs1_mac, neigh)


def second_service(vip: str, laddr: str, rs: str) -> str:
    return (f'\n[[service]]\nvip = "{vip}"\nprotocol = "tcp"\nlocal_addresses = ["{laddr}"]\n'
            f'[[service.real_server]]\naddress = "{rs}"\n')


@pytest.mark.nolab
@pytest.mark.parametrize("vip, laddr, rs, bad, reason", [
    (f"{RS1}:8080", "10.77.0.201", "10.77.0.13:80", f'vip = "{RS1}:8080"', f"{RS1} cannot be a VIP"),
    ("10.77.0.101:80", RS2, "10.77.0.13:80", f'["{RS2}"]', f"{RS2} cannot be a local address"),
    ("10.77.0.101:80", VIP, "10.77.0.13:80", f'["{VIP}"]', f"{VIP} cannot be a local address"),
    ("10.77.0.101:80", "10.77.0.2", "10.77.0.13:80", '["10.77.0.2"]', "10.77.0.2 cannot be a local address"),
    ("10.77.0.101:80", "10.77.0.201", SVC, f'address = "{SVC}"', f"{VIP} cannot be a real server"),
])
def test_check_config_refuses_them_at_file_line_col(tmp_path, vip, laddr, rs, bad, reason):
    text = rvslab.make_test_config(socket=tmp_path / "rvsd.sock", file_prefix="rvs-e2e-theft")
    text += second_service(vip, laddr, rs)
    path = tmp_path / "rvs.toml"
    path.write_text(text)
    p = subprocess.run([str(rvslab.RVSD), "--check-config", str(path)], capture_output=True, text=True, timeout=10)
    assert p.returncode == 2, p
    # The later of the two uses, in the second service.
    offset = text.rindex(bad) + bad.index('"')
    line = text.count("\n", 0, offset) + 1
    col = offset - (text.rfind("\n", 0, offset) + 1) + 1
    m = re.fullmatch(rf"rvsd: error: {re.escape(str(path))}:(\d+):(\d+): (.+)\n", p.stderr)
    assert m and (int(m[1]), int(m[2])) == (line, col) and m[3].startswith(reason), (p.stderr, line, col)


TAKEN4 = "10.77.0.77"
FREE4 = "10.77.0.78"


def addr_line(lab, ip: str) -> str:
    for line in lab.rvsadm("addr", "show", "dev", "dpdk0").stdout.splitlines():
        if f"inet {ip}/" in line:
            return line.strip()
    return ""


def test_an_ipv4_address_a_lab_host_holds_is_found_in_conflict_and_never_used(lab):
    """rs1's kernel holds TAKEN4. `rvsadm addr add` of it: rvsd's ARP
    probes (RFC 5227) get rs1's answer, the address is shown "dadfailed
    tentative", never answered for nor announced, and rs1 keeps it."""
    from test_garp import Capture, arps, port_mac
    lb_mac = port_mac(lab)
    rs1_mac = rvslab.in_ns("rs1", ["cat", "/sys/class/net/eth0/address"], check=True).stdout.strip()
    rvslab.in_ns("rs1", ["ip", "addr", "add", f"{TAKEN4}/24", "dev", "eth0"], check=True)
    cap = Capture(lab.workdir, "client", "arp")
    try:
        lab.rvsadm("addr", "add", f"{TAKEN4}/24", "dev", "dpdk0")
        shown = rvslab.wait_until("the conflict shown", lambda: "dadfailed" in addr_line(lab, TAKEN4) and addr_line(lab, TAKEN4), timeout=10)
        assert shown == f"inet {TAKEN4}/24 brd 10.77.0.255 scope global secondary dadfailed tentative dpdk0", shown
        assert f"rvsd: dpdk0: IPv4 address conflict: {TAKEN4} is in use by {rs1_mac}; not used" in lab.rvsd.log_text()
        # Past the probing time (3 probes, 1 s apart, then 2 s): still not used.
        time.sleep(5)
        assert "dadfailed" in addr_line(lab, TAKEN4)
        # The client asks for it: only rs1 answers, and it reaches rs1.
        rvslab.in_ns("client", ["ip", "neigh", "flush", "to", TAKEN4])
        r = rvslab.in_ns("client", ["ping", "-c", "1", "-W", "2", TAKEN4], timeout=10)
        assert r.returncode == 0, r
        neigh = rvslab.in_ns("client", ["ip", "neigh", "show", TAKEN4], check=True).stdout
        assert rs1_mac in neigh, neigh
        time.sleep(0.5)
        frames = cap.frames()
        # Never answered for nor announced by the appliance.
        ours = [a for a in arps(frames) if a["spa"] == TAKEN4 and lb_mac in (a["sha"], a["src"])]
        assert not ours, ours
        # The probes: ARP requests for it from the appliance's MAC.
        probes = [a for a in arps(frames) if a["op"] == 1 and a["tpa"] == TAKEN4 and a["sha"] == lb_mac]
        assert probes, arps(frames)
    finally:
        cap.stop()
        lab.rvsadm("addr", "del", f"{TAKEN4}/24", "dev", "dpdk0", check=False)
        rvslab.in_ns("rs1", ["ip", "addr", "del", f"{TAKEN4}/24", "dev", "eth0"])


def test_a_free_ipv4_address_is_probed_then_used(lab):
    from test_garp import Capture, arps, gratuitous, port_mac
    lb_mac = port_mac(lab)
    cap = Capture(lab.workdir, "client", "arp")
    try:
        t0 = time.monotonic()
        lab.rvsadm("addr", "add", f"{FREE4}/24", "dev", "dpdk0")
        assert addr_line(lab, FREE4).endswith("secondary tentative dpdk0"), addr_line(lab, FREE4)
        rvslab.wait_until("the address in use", lambda: addr_line(lab, FREE4) == f"inet {FREE4}/24 brd 10.77.0.255 scope global secondary dpdk0", timeout=15)
        waited = time.monotonic() - t0
        assert waited >= 3.5, f"in use after {waited:.1f} s: before the probes and ANNOUNCE_WAIT were over"
        rvslab.wait_until("an announcement", lambda: gratuitous(cap.frames(), FREE4), timeout=10)
        probes = [a for a in arps(cap.frames()) if a["op"] == 1 and a["tpa"] == FREE4 and a["spa"] != FREE4]
        assert len(probes) == 3 and all(a["sha"] == lb_mac for a in probes), probes
        rvslab.in_ns("client", ["ip", "neigh", "flush", "to", FREE4])
        r = rvslab.in_ns("client", ["ping", "-c", "1", "-W", "2", FREE4], timeout=10)
        assert r.returncode == 0, r
    finally:
        cap.stop()
        lab.rvsadm("addr", "del", f"{FREE4}/24", "dev", "dpdk0", check=False)
