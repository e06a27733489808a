"""The seeds' direct-routing labs, typed verbatim against the lab appliance:
seed 000 §五 (a DR web cluster) and §六 (persistence), and seed 003 (DR
real servers, then ipvsadm's -A/-E/-D and -a/-e/-d with -g/-i/-m and -w).

Each seed line is kept below as the seed prints it, prompt included, with
its line number; seedops.Operator runs it with bash on the host the prompt
names (`ipvsadm` is the link scripts/install makes to rvsadm). Only the
addresses change, through the mappings below. rvsd starts with an empty
table, as a freshly installed director does.

Seed 000 §五/§六 (one segment 192.168.140.0/24, as the lab's 10.77.0.0/24):

    192.168.140.100  VIP                → 10.77.0.100
    192.168.140.11   web01              → 10.77.0.11 (rvs-rs1, page "rs1")
    192.168.140.12   web02              → 10.77.0.12 (rvs-rs2, page "rs2")
    redis_server     the client         → rvs-client 10.77.0.10

Seed 003 (its generic example VIP and its lab's VIP name one service):

    172.16.100.1, 192.168.116.200  VIP  → 10.77.0.101
    192.168.116.100 (`route add -host`, a slip for .200) → 10.77.0.101
    192.168.116.3, 192.168.116.4   RS   → 10.77.0.11, 10.77.0.12

Director-side kernel steps have no counterpart: seed 000 §五.4 puts the VIP
on the director's `lo` and seed 003 on `eth0:1`; rvsd owns the VIP in its
data plane and answers ARP for every VIP in its table
(test_director_answers_arp_for_the_vip checks it). `yum install` lines are
left out. The pages the seed's web servers return (`<h1> web01</h1>`) are
the lab's "rs1"/"rs2".
"""

from __future__ import annotations

import pytest

import rvslab
import seedops
from seedops import bodies, connections_settled, same_listing

CLIENT = rvslab.CLIENT_IP
VIP_000 = "10.77.0.100"
VIP_003 = "10.77.0.101"

MAP_000 = {
    "192.168.140.100": VIP_000,
    "192.168.140.11": "10.77.0.11",
    "192.168.140.12": "10.77.0.12",
}
HOSTS_000 = {"lvs": "director", "web01": "rs1", "web02": "rs2", "redis_server": "client"}

MAP_003 = {
    "172.16.100.1": VIP_003,
    "192.168.116.200": VIP_003,
    "192.168.116.100": VIP_003,
    "192.168.116.3": "10.77.0.11",
    "192.168.116.4": "10.77.0.12",
}

# seed 000 §五.1, lines 291-292: the VIP on every real server's lo.
SEED_000_RS_VIP = [
    "[root@web01 ~]# ip addr add dev lo 192.168.140.100/32",  # 291
    "[root@web02 ~]# ip addr add dev lo 192.168.140.100/32",  # 292
]
# line 298, in the output of `ip addr show lo` (293, 303)
SEED_000_LO_INET = "inet 192.168.140.100/32 scope global lo"

# seed 000 §五.2, lines 317-326: the ARP sysctls, written into
# /etc/sysctl.conf with vim (lines 318-319), then `sysctl -p`. The test
# writes those two lines into a file and types `sysctl -p FILE` (the lab's
# namespaces share the host's /etc).
SEED_000_SYSCTL_CONF = [
    "net.ipv4.conf.all.arp_ignore = 1",  # 318, 323
    "net.ipv4.conf.all.arp_announce = 2",  # 319, 324
]
SEED_000_SYSCTL_P = [
    "[root@web01 ~]# sysctl -p /etc/sysctl.conf",  # 321 `sysctl -p`
    "[root@web02 ~]# sysctl -p /etc/sysctl.conf",  # 326 `sysctl -p`
]

# seed 000 §五.5, lines 350-354, and the listing it prints (355-360).
SEED_000_DR = [
    "[root@lvs ~]# ipvsadm -A -t 192.168.140.100:80 -s rr",  # 350
    "[root@lvs ~]# ipvsadm -a -t 192.168.140.100:80 -r 192.168.140.11:80 -g",  # 352
    "[root@lvs ~]# ipvsadm -a -t 192.168.140.100:80 -r 192.168.140.12:80 -g",  # 353
]
SEED_000_DR_LIST = "[root@lvs ~]# ipvsadm -L -n"  # 354
SEED_000_DR_LISTING = [
    "IP Virtual Server version 1.2.1 (size=4096)",  # 355
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  192.168.140.100:80 rr",
    "  -> 192.168.140.11:80            Route   1      0          0         ",
    "  -> 192.168.140.12:80            Route   1      0          0    ",  # 360
]

# seed 000 §五.6, lines 366-374: four requests from the client, answered
# web01, web02, web01, web02.
SEED_000_CURL = "[root@redis_server ~]# curl 192.168.140.100"  # 366, 368, 371, 373
SEED_000_CURL_ANSWERS = ["rs1", "rs2", "rs1", "rs2"]  # web01 web02 web01 web02 (367-374)

# seed 000 §六, lines 386-393.
SEED_000_PERSIST = "[root@lvs ~]# ipvsadm -E -t 192.168.140.100:80 -s rr -p 300"  # 386
SEED_000_PERSIST_LIST = "[root@lvs ~]# ipvsadm -L -n"  # 387
SEED_000_PERSIST_LISTING = [
    "IP Virtual Server version 1.2.1 (size=4096)",  # 388
    "Prot LocalAddress:Port Scheduler Flags",
    "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn",
    "TCP  192.168.140.100:80 rr persistent 300",
    "  -> 192.168.140.11:80            Route   1      0          0         ",
    "  -> 192.168.140.12:80            Route   1      0          0    ",  # 393
]

# seed 003 b), lines 42-45: the ARP sysctls on both real servers, and c)/d),
# lines 49 and 53: the VIP on lo:0 and a host route (the seed's route names
# .100 where it means the VIP .200; both map to the lab VIP). The seed
# prints them without a prompt, to type on "两台机器（RS）" (both RS).
SEED_003_RS = [
    'echo "1" >/proc/sys/net/ipv4/conf/eth0/arp_ignore',  # 42
    'echo "1" >/proc/sys/net/ipv4/conf/all/arp_ignore',  # 43
    'echo "2" >/proc/sys/net/ipv4/conf/all/arp_announce',  # 44
    'echo "2" >/proc/sys/net/ipv4/conf/eth0/arp_announce',  # 45
    "ifconfig lo:0 192.168.116.200 netmask 255.255.255.255 broadcast 192.168.116.200",  # 49
    "route add -host 192.168.116.100 dev lo:0",  # 53
]


def rvsd_config(text: str) -> str:
    return seedops.without_services(text)


@pytest.fixture(scope="module")
def op(lab):
    return seedops.Operator(lab.socket, lab.workdir, HOSTS_000, MAP_000)


@pytest.fixture(scope="module")
def op003(lab):
    return seedops.Operator(lab.socket, lab.workdir, {}, MAP_003)


@pytest.fixture(scope="module")
def web(lab, op):
    """The real servers of seed 000 §五.1-3, set up by typing the seed's
    lines, and their httpd on the VIP."""
    op.type_all(SEED_000_RS_VIP)
    for host in ("web01", "web02"):
        shown = op.type(f"[root@{host} ~]# ip addr show lo")  # 293, 303
        assert op.adapt(SEED_000_LO_INET) in shown.stdout, shown.stdout
    conf = lab.workdir / "sysctl.conf"
    conf.write_text("\n".join(SEED_000_SYSCTL_CONF) + "\n")
    op.mapping["/etc/sysctl.conf"] = str(conf)
    for typed in op.type_all(SEED_000_SYSCTL_P):
        assert typed.stdout.split("\n")[:2] == ["net.ipv4.conf.all.arp_ignore = 1", "net.ipv4.conf.all.arp_announce = 2"], typed.stdout
    servers = {n: seedops.VipHttp(n, VIP_000) for n in ("rs1", "rs2")}
    yield servers
    for s in servers.values():
        s.stop()


def test_rvsd_starts_with_an_empty_table(lab, op):
    out = op.type("[root@lvs ~]# ipvsadm -L -n").stdout
    same_listing(out, SEED_000_DR_LISTING[:3], op)


def test_seed_000_dr_web_cluster(lab, op, web):
    """§五.5-6: the service and its two -g servers, the listing as the seed
    prints it, then four requests answered web01, web02, web01, web02 by
    servers that see the client's own address."""
    for typed in op.type_all(SEED_000_DR):
        assert typed.stdout == "" and typed.proc.stderr == "", typed
    same_listing(op.type(SEED_000_DR_LIST).stdout, SEED_000_DR_LISTING, op)

    for s in web.values():
        s.mark()
    answers = [bodies(op.type(SEED_000_CURL)) for _ in range(4)]
    assert answers == [[a] for a in SEED_000_CURL_ANSWERS], answers

    def logged():
        seen = {n: s.sources() for n, s in web.items()}
        assert sum(map(len, seen.values())) == 4, seen
        return seen
    seen = rvslab.wait_until("the four requests in the servers' logs", logged, timeout=10)
    assert seen == {"rs1": [CLIENT, CLIENT], "rs2": [CLIENT, CLIENT]}, f"DR servers see the client: {seen}"


def test_director_answers_arp_for_the_vip(lab, web):
    """§五.4's VIP on the director's lo: rvsd answers ARP for it, the real
    servers (arp_ignore=1) do not."""
    rvslab.in_ns("client", ["ip", "neigh", "flush", "dev", "eth0"])
    assert rvslab.in_ns("client", ["ping", "-c", "1", "-W", "2", VIP_000]).returncode == 0
    neigh = rvslab.in_ns("client", ["ip", "neigh", "show", VIP_000], check=True).stdout.split()
    lb_mac = rvslab.in_ns("lb", ["cat", "/sys/class/net/lb0/address"], check=True).stdout.strip()
    assert lb_mac in neigh, f"VIP resolved to {neigh}, not the appliance's {lb_mac}"


def test_seed_000_persistence(lab, op, web):
    """§六: `-E ... -p 300`, the listing with `persistent 300`, then one
    client's requests all go to one server."""
    connections_settled(lab.socket)  # the seed's listing shows 0 0
    typed = op.type(SEED_000_PERSIST)
    assert typed.stdout == "", typed
    same_listing(op.type(SEED_000_PERSIST_LIST).stdout, SEED_000_PERSIST_LISTING, op)

    answers = [a for _ in range(10) for a in bodies(op.type(SEED_000_CURL))]
    assert len(answers) == 10 and len(set(answers)) == 1 and answers[0] in ("rs1", "rs2"), answers
    # The template is what holds the client: -L -n --persistent-conn counts it.
    pc = op.type("[root@lvs ~]# ipvsadm -L -n --persistent-conn").stdout
    counts = {l.split()[1]: int(l.split()[3]) for l in pc.splitlines() if l.startswith("  -> ") and "Remote" not in l}
    assert counts == {f"{MAP_000['192.168.140.11']}:80": int(answers[0] == "rs1"),
                      f"{MAP_000['192.168.140.12']}:80": int(answers[0] == "rs2")}, pc
    # Back to plain rr (not in the seed): the rotation resumes.
    op.type("[root@lvs ~]# ipvsadm -E -t 192.168.140.100:80 -s rr")
    answers = [a for _ in range(4) for a in bodies(op.type(SEED_000_CURL))]
    assert sorted(answers) == ["rs1", "rs1", "rs2", "rs2"] and all(a != b for a, b in zip(answers, answers[1:])), answers


@pytest.fixture(scope="module")
def web003(lab, op003, web):
    """Seed 003's real servers: its sysctl and lo:0 lines typed on both,
    and httpd on its VIP."""
    for node in ("rs1", "rs2"):
        for line in SEED_003_RS:
            op003.type(line, on=node)
        shown = rvslab.in_ns(node, ["ip", "addr", "show", "lo"], check=True).stdout
        assert f"inet {VIP_003}/32 brd {VIP_003} scope global lo:0" in shown, shown
        for key, want in [("eth0/arp_ignore", "1"), ("all/arp_ignore", "1"), ("all/arp_announce", "2"), ("eth0/arp_announce", "2")]:
            got = rvslab.in_ns(node, ["cat", f"/proc/sys/net/ipv4/conf/{key}"], check=True).stdout.strip()
            assert got == want, (node, key, got)
    servers = {n: seedops.VipHttp(n, VIP_003) for n in ("rs1", "rs2")}
    yield servers
    for s in servers.values():
        s.stop()


def curl_003(op003, n: int) -> list[str]:
    # seed 003 line 115: "访问VIP：192.168.116.200" (visit the VIP)
    return [a for _ in range(n) for a in bodies(op003.type("curl -s --max-time 5 192.168.116.200", on="client", check=False))]


def listing_003(op003) -> list[rvslab.Service]:
    out = op003.type("ipvsadm -L -n", on="director").stdout
    seedops.ipvsadm_layout(out)
    return [s for s in rvslab.parse_services(out) if s.address == f"{VIP_003}:80"]


def test_seed_003_commands(lab, op003, web003):
    """Seed 003's ipvsadm commands (lines 83-108 give their syntax, line 92
    the -A example), in an operator's order: add the service and two -g
    servers, edit a weight (-e) and the scheduler (-E), change a server's
    type among -g/-i/-m, delete a server (-d) and the service (-D). The
    traffic that follows each step is checked."""
    op003.type("ipvsadm -C", on="director")  # §五/§六's service goes first (not a seed line)
    connections_settled(lab.socket)
    for line in [
        "ipvsadm -A -t 172.16.100.1:80 -s rr",  # 92
        "ipvsadm -a -t 172.16.100.1:80 -r 192.168.116.3 -g -w 1",  # 99: -a -t service-address -r server-address [-g|i|m] [-w weight]
        "ipvsadm -a -t 172.16.100.1:80 -r 192.168.116.4 -g -w 1",  # 99
    ]:
        assert op003.type(line, on="director").stdout == ""
    (svc,) = listing_003(op003)
    assert svc.scheduler == "rr" and svc.flags == [], svc
    # -r without a port: the service's port, as ipvsadm.
    assert [(r.address, r.forward, r.weight) for r in svc.servers] == [
        ("10.77.0.11:80", "Route", 1), ("10.77.0.12:80", "Route", 1)], svc

    for s in web003.values():
        s.mark()
    answers = curl_003(op003, 4)
    assert sorted(answers) == ["rs1", "rs1", "rs2", "rs2"] and all(a != b for a, b in zip(answers, answers[1:])), answers
    seen = rvslab.wait_until("requests logged", lambda: {n: s.sources() for n, s in web003.items()}
                             if sum(len(s.sources()) for s in web003.values()) == 4 else None, timeout=10)
    assert all(src == CLIENT for v in seen.values() for src in v), seen

    # 修改：-e (107) a weight, -E (89) the scheduler: wrr at 3:1.
    op003.type("ipvsadm -e -t 172.16.100.1:80 -r 192.168.116.3 -g -w 3", on="director")
    op003.type("ipvsadm -E -t 172.16.100.1:80 -s wrr", on="director")
    (svc,) = listing_003(op003)
    assert svc.scheduler == "wrr" and [(r.forward, r.weight) for r in svc.servers] == [("Route", 3), ("Route", 1)], svc
    answers = curl_003(op003, 8)
    assert answers.count("rs1") == 6 and answers.count("rs2") == 2, answers

    # [-g|i|m] (100-105): -e changes the forwarding method; -S writes it.
    for flag, word in [("-i", "Tunnel"), ("-m", "Masq"), ("-g", "Route")]:
        op003.type(f"ipvsadm -e -t 172.16.100.1:80 -r 192.168.116.4 {flag} -w 1", on="director")
        (svc,) = listing_003(op003)
        assert [(r.address, r.forward) for r in svc.servers][1] == ("10.77.0.12:80", word), svc
        saved = op003.type("ipvsadm -S -n", on="director").stdout
        assert f"-a -t {VIP_003}:80 -r 10.77.0.12:80 {flag} -w 1" in saved.splitlines(), saved
    assert sorted(curl_003(op003, 4)) == ["rs1", "rs1", "rs1", "rs2"], "back on -g, rs2 serves again"

    # 删除：-d (108) a server: only rs1 answers.
    op003.type("ipvsadm -d -t 172.16.100.1:80 -r 192.168.116.4", on="director")
    (svc,) = listing_003(op003)
    assert [r.address for r in svc.servers] == ["10.77.0.11:80"], svc
    assert curl_003(op003, 3) == ["rs1"] * 3

    # 删除：-D (90) the service: the table is empty, nothing answers.
    op003.type("ipvsadm -D -t 172.16.100.1:80", on="director")
    assert listing_003(op003) == []
    out = op003.type("ipvsadm -L -n", on="director").stdout
    assert len(out.splitlines()) == 3, out
    failed = op003.type("curl -s --max-time 2 192.168.116.200", on="client", check=False)
    assert failed.proc.returncode != 0 and failed.stdout == "", failed
