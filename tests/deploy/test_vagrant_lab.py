"""The Vagrant lab's files agree with each other: the addresses in the
Vagrantfile, the appliances' configs in deploy/vagrant/ and what the
provisioner expects of them. (`vagrant validate` itself runs in scripts/test.)"""

from __future__ import annotations

import ipaddress
import re
import tomllib

import pytest

from deploylib import REPO, run

VAGRANTFILE = REPO / "Vagrantfile"
PROVISION = REPO / "deploy/vagrant/provision"
LAB_NET = ipaddress.ip_network("10.77.0.0/24")
HUGEPAGES_2M = 256  # what the provisioner reserves on an appliance


def nodes() -> dict[str, tuple[str, str, str, int]]:
    """name -> (role, address, memory, vCPUs) from the Vagrantfile's NODES."""
    text = VAGRANTFILE.read_text()
    found = re.findall(r'^\s*"([a-z0-9]+)" => \["(\w+)", "([\d.]+)", (\w+), (\d+)\],', text, re.M)
    assert found, "no NODES entries found in the Vagrantfile"
    return {n: (role, addr, mem, int(cpus)) for n, role, addr, mem, cpus in found}


def test_topology_mirrors_the_namespace_lab():
    n = nodes()
    assert {k: v[0] for k, v in n.items()} == {
        "client": "client", "lb1": "lb", "lb2": "lb", "rs1": "rs", "rs2": "rs"}
    # Same addresses as scripts/lab for the client and the real servers.
    assert n["client"][1] == "10.77.0.10"
    assert n["rs1"][1] == "10.77.0.11" and n["rs2"][1] == "10.77.0.12"
    addrs = [v[1] for v in n.values()]
    assert len(set(addrs)) == len(addrs)
    assert all(ipaddress.ip_address(a) in LAB_NET for a in addrs)


@pytest.mark.parametrize("name", ["lb1", "lb2"])
def test_appliance_config_matches_vagrantfile(name):
    n = nodes()
    role, addr, _mem, cpus = n[name]
    cfg = tomllib.loads((REPO / f"deploy/vagrant/{name}.toml").read_text())
    (iface,) = cfg["interface"]
    assert iface["address"] == f"{addr}/24", "rvsd's address is the VM's lab address"
    # The provisioner rewrites exactly this to the VM's NIC name.
    assert iface["device"].startswith("net_af_packet") and iface["device"].endswith("iface=eth1")
    assert 'iface=eth1"' in (REPO / f"deploy/vagrant/{name}.toml").read_text()
    assert cfg["dpdk"]["no_pci"] is True and cfg["dpdk"]["no_huge"] is False
    assert cfg["dpdk"]["memory_mb"] < HUGEPAGES_2M * 2, "memory_mb must fit the reserved pages"
    lcores = [cfg["dpdk"]["main_lcore"], *cfg["dataplane"]["worker_lcores"]]
    if "lcore_map" in cfg["dpdk"]:
        placed = dict(e.split("@") for e in cfg["dpdk"]["lcore_map"].split(","))
        assert sorted(int(l) for l in placed) == sorted(lcores)
        used = [int(c) for c in placed.values()]
    else:
        used = lcores
    assert max(used) < cpus, f"lcores on CPUs {used} of a {cpus}-vCPU VM"
    assert cfg["dataplane"]["idle"] == "backoff"
    (svc,) = cfg["service"]
    rs = sorted(r["address"] for r in svc["real_server"])
    assert rs == sorted(f"{n[x][1]}:80" for x in n if n[x][0] == "rs")
    taken = {v[1] for v in n.values()}
    for a in [svc["vip"].split(":")[0], *svc["local_addresses"]]:
        assert ipaddress.ip_address(a) in LAB_NET and a not in taken, a


def test_appliances_are_an_active_backup_pair():
    """lb1 and lb2 share the services (VIP and local address: a synced
    FULLNAT connection keeps them), sync to each other and follow the VIP
    that keepalived moves."""
    n = nodes()
    cfgs = {name: tomllib.loads((REPO / f"deploy/vagrant/{name}.toml").read_text()) for name in ("lb1", "lb2")}
    assert cfgs["lb1"]["service"] == cfgs["lb2"]["service"]
    assert cfgs["lb1"]["dataplane"] == cfgs["lb2"]["dataplane"], "sync needs the same worker count"
    for name, peer in (("lb1", "lb2"), ("lb2", "lb1")):
        sync = cfgs[name]["sync"]
        assert sync["roles"] == ["master", "backup"]
        assert sync["syncid"] == 77 and sync["interface"] == "dpdk0"
        assert sync["peers"] == [n[peer][1]], "unicast to the other appliance"
        assert sync["follow_kernel_addresses"] is True
        assert cfgs[name]["interface"][0]["name"] == "dpdk0"


KEEPALIVED = REPO / "deploy/keepalived.conf"
KEEPALIVED_DROPIN = REPO / "deploy/keepalived.service.d/rvsd.conf"


def test_keepalived_example_is_what_the_lab_runs():
    """deploy/keepalived.conf parses (keepalived --config-test) and still has
    each line the provisioner adapts for lb1/lb2 exactly once; the
    Vagrantfile uploads it and its systemd drop-in."""
    proc = run(["keepalived", "--config-test", "-f", KEEPALIVED])
    assert proc.returncode == 0, proc.stderr
    text = KEEPALIVED.read_text()
    for pattern in (r"^ *router_id rvs-lb1( |$)", r"^ *priority 150( |$)", r"^ *198\.51\.100\.100/32 dev dpdk0$"):
        assert len(re.findall(pattern, text, re.M)) == 1, pattern
    assert re.search(r"^ *interface dpdk0$", text, re.M) and re.search(r"^ *nopreempt$", text, re.M)
    vagrantfile = VAGRANTFILE.read_text()
    assert '"deploy/keepalived.conf"' in vagrantfile
    assert '"deploy/keepalived.service.d/rvsd.conf"' in vagrantfile
    provision = PROVISION.read_text()
    assert "/tmp/keepalived.conf" in provision and "/tmp/keepalived-rvsd.conf" in provision


def test_keepalived_dropin_ties_it_to_rvsd_vrrp_only():
    import configparser
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(KEEPALIVED_DROPIN.read_text())
    assert cp["Unit"]["BindsTo"] == "rvsd.service" and cp["Unit"]["After"] == "rvsd.service"
    assert cp["Install"]["WantedBy"] == "rvsd.service"
    # ExecStart= emptied, then keepalived VRRP only (configparser keeps the last).
    assert cp["Service"]["ExecStart"].split()[:3] == ["/usr/sbin/keepalived", "--dont-fork", "--vrrp"]
    assert re.search(r"^ExecStart=$", KEEPALIVED_DROPIN.read_text(), re.M)


def test_provisioner_rejects_bad_arguments():
    for args in ([], ["lb"], ["bogus", "x", "10.77.0.9"], ["rs", "Bad Name", "10.77.0.9"]):
        proc = run([PROVISION, *args])
        assert proc.returncode == 1, (args, proc.stdout, proc.stderr)
        assert "provision: error:" in proc.stderr


@pytest.mark.parametrize("script, args, reason", [
    ("vagrant-box", ["--size", "1"], "--size takes whole GiB"),
    ("vagrant-box", ["--name", "a b"], "bad box name"),
    ("vagrant-box", ["--bogus"], "unknown argument '--bogus'"),
    ("vagrant-check", ["--bogus"], "unknown argument '--bogus'"),
    ("vagrant-check", ["--box"], "--box needs a value"),
    ("deb", ["--bogus"], "unknown argument '--bogus'"),
])
def test_lab_scripts_reject_bad_arguments(script, args, reason):
    """Refused before anything is built, booted or destroyed."""
    proc = run([REPO / "scripts" / script, *args])
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"{script}: error: {reason}" in proc.stderr, proc.stderr


def test_vagrantfile_boots_one_vcpu_per_vm_and_a_bare_vm():
    n = nodes()
    assert all(cpus == 1 for _r, _a, _m, cpus in n.values()), n
    text = VAGRANTFILE.read_text()
    assert 'config.vm.define "bare", autostart: false' in text
    assert 'ENV.fetch("RVS_BOX", "debian/bookworm64")' in text
