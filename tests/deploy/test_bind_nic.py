"""scripts/bind-nic against a fake sysfs (RVS_SYSFS) and a stand-in for
dpdk-devbind.py (DPDK_DEVBIND) that moves the fake driver links like the
kernel would: the whole bind / record / restore cycle without a NIC. The
real dpdk-devbind.py is only asked for --status."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from deploylib import SCRIPTS, run

BIND = SCRIPTS / "bind-nic"

FAKE_DEVBIND = r'''#!/usr/bin/env python3
"""Stand-in for dpdk-devbind.py over the fake sysfs in $FAKE_SYS."""
import os, sys
sysfs, log = os.environ["FAKE_SYS"], os.environ["FAKE_LOG"]
args = sys.argv[1:]
with open(log, "a") as f:
    f.write(" ".join(args) + "\n")
if args == ["--status-dev", "net"]:
    print("Network devices using DPDK-compatible driver\n(fake)")
    sys.exit(0)
if args and args[0] == "--force":
    args = args[1:]
dev = os.path.realpath(os.path.join(sysfs, "bus/pci/devices", args[-1]))
drv = os.path.join(dev, "driver")
if os.path.islink(drv):
    os.unlink(drv)
net, hidden = None, None
for sub in ("", "virtio3"):
    if os.path.isdir(os.path.join(dev, sub, "net")) or os.path.isdir(os.path.join(dev, sub, ".net")):
        net, hidden = os.path.join(dev, sub, "net"), os.path.join(dev, sub, ".net")
if args[0] == "-b":
    os.symlink(os.path.relpath(os.path.join(sysfs, "bus/pci/drivers", args[1]), dev), drv)
    kernel = args[1] not in ("vfio-pci", "uio_pci_generic", "igb_uio")
else:
    kernel = False
if net:  # interfaces exist only while a kernel driver drives the device
    if kernel and os.path.isdir(hidden):
        os.rename(hidden, net)
    elif not kernel and os.path.isdir(net):
        os.rename(net, hidden)
'''


def link(path: Path, target: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(target, path)


@pytest.fixture
def fake(tmp_path):
    """sys/ with an ixgbe port 0000:03:00.0 (eth9, IOMMU group 7), a virtio
    NIC 0000:00:06.0 (eth8 under virtio3) and a veth; vfio-pci loaded."""
    sys_ = tmp_path / "sys"
    for d in ("bus/pci/drivers/ixgbe", "bus/pci/drivers/vfio-pci", "bus/pci/drivers/virtio-pci",
              "bus/virtio", "kernel/iommu_groups/7", "module/vfio_pci", "module/vfio/parameters",
              "devices/virtual/net/veth0"):
        (sys_ / d).mkdir(parents=True)
    (sys_ / "module/vfio/parameters/enable_unsafe_noiommu_mode").write_text("N\n")
    pci = sys_ / "devices/pci0000:00"
    ixgbe = pci / "0000:03:00.0"
    (ixgbe / "net/eth9").mkdir(parents=True)
    link(ixgbe / "driver", "../../../bus/pci/drivers/ixgbe")
    link(ixgbe / "subsystem", "../../../bus/pci")
    link(ixgbe / "iommu_group", "../../../kernel/iommu_groups/7")
    link(ixgbe / "net/eth9/device", "../../../0000:03:00.0")
    link(sys_ / "bus/pci/devices/0000:03:00.0", "../../../devices/pci0000:00/0000:03:00.0")
    link(sys_ / "class/net/eth9", "../../devices/pci0000:00/0000:03:00.0/net/eth9")
    virtio = pci / "0000:00:06.0"
    (virtio / "virtio3/net/eth8").mkdir(parents=True)
    link(virtio / "driver", "../../../bus/pci/drivers/virtio-pci")
    link(virtio / "subsystem", "../../../bus/pci")
    link(virtio / "virtio3/subsystem", "../../../../bus/virtio")
    link(virtio / "virtio3/net/eth8/device", "../../../virtio3")
    link(sys_ / "bus/pci/devices/0000:00:06.0", "../../../devices/pci0000:00/0000:00:06.0")
    link(sys_ / "class/net/eth8", "../../devices/pci0000:00/0000:00:06.0/virtio3/net/eth8")
    link(sys_ / "class/net/veth0", "../../devices/virtual/net/veth0")
    devbind = tmp_path / "dpdk-devbind.py"
    devbind.write_text(FAKE_DEVBIND)
    devbind.chmod(0o755)
    log = tmp_path / "devbind.log"
    state = tmp_path / "state/bind-nic.state"
    env = {"RVS_SYSFS": str(sys_), "DPDK_DEVBIND": str(devbind), "RVS_BIND_STATE": str(state),
           "FAKE_SYS": str(sys_), "FAKE_LOG": str(log)}

    class Fake:
        root = sys_

        def __init__(self):
            self.env, self.state, self.log, self.devbind = env, state, log, devbind

        def bind(self, *args, **kw):
            return run([BIND, *args], env=self.env, **kw)

        def driver(self, pci: str) -> str:
            return os.readlink(sys_ / "bus/pci/devices" / pci / "driver").rsplit("/", 1)[-1]

        def calls(self) -> list[str]:
            return log.read_text().splitlines() if log.exists() else []

        def records(self) -> list[str]:
            return [l for l in state.read_text().splitlines() if l] if state.exists() else []

    return Fake()


def test_bind_by_interface_and_restore(fake):
    proc = fake.bind("eth9")
    assert proc.returncode == 0, proc.stderr
    assert fake.calls() == [f"-b vfio-pci 0000:03:00.0"]
    assert fake.driver("0000:03:00.0") == "vfio-pci"
    assert fake.records() == ["0000:03:00.0 ixgbe eth9"]
    assert "/dev/vfio/7" in proc.stdout
    assert 'device = "0000:03:00.0"' in proc.stdout
    assert not (fake.root / "class/net/eth9/device").exists(), "the fake kernel kept eth9"

    again = fake.bind("0000:03:00.0")
    assert again.returncode == 0 and "already bound to vfio-pci" in again.stdout
    assert len(fake.calls()) == 1

    back = fake.bind("--restore")
    assert back.returncode == 0, back.stderr
    assert fake.calls()[-1] == "-b ixgbe 0000:03:00.0"
    assert fake.driver("0000:03:00.0") == "ixgbe"
    assert fake.records() == []
    assert "back on ixgbe" in back.stdout and "eth9" in back.stdout


def test_short_pci_address(fake):
    proc = fake.bind("03:00.0")
    assert proc.returncode == 0, proc.stderr
    assert fake.calls() == ["-b vfio-pci 0000:03:00.0"]


def test_virtio_interface_resolves_to_its_pci_device(fake):
    proc = fake.bind("eth8")
    assert proc.returncode == 0, proc.stderr
    assert fake.calls() == ["-b vfio-pci 0000:00:06.0"]
    assert fake.records() == ["0000:00:06.0 virtio-pci eth8"]
    back = fake.bind("--restore", "0000:00:06.0")
    assert back.returncode == 0, back.stderr
    assert fake.driver("0000:00:06.0") == "virtio-pci"


def test_rebinding_keeps_the_kernel_driver(fake):
    """vfio-pci -> uio_pci_generic must not record vfio-pci as 'the kernel driver'."""
    (fake.root / "bus/pci/drivers/uio_pci_generic").mkdir()
    fake.bind("eth9", check=True)
    fake.bind("--driver", "uio_pci_generic", "0000:03:00.0", check=True)
    assert fake.records() == ["0000:03:00.0 ixgbe eth9"]
    fake.bind("--restore", check=True)
    assert fake.driver("0000:03:00.0") == "ixgbe"


@pytest.mark.parametrize("dev, message", [
    ("veth0", "not a PCI device"),
    ("nosuch0", "no interface nosuch0"),
    ("0000:99:00.0", "no PCI device 0000:99:00.0"),
    ("eth9;rm", "neither a PCI address nor an interface name"),
])
def test_bad_devices(fake, dev, message):
    proc = fake.bind(dev)
    assert proc.returncode == 1
    assert message in proc.stderr, proc.stderr
    assert fake.calls() == [] and fake.records() == []


def test_no_iommu(fake):
    shutil.rmtree(fake.root / "kernel/iommu_groups/7")
    proc = fake.bind("eth9")
    assert proc.returncode == 1
    assert "intel_iommu=on" in proc.stderr and "--noiommu" in proc.stderr
    assert fake.calls() == []
    proc = fake.bind("--noiommu", "eth9")
    assert proc.returncode == 0, proc.stderr
    assert (fake.root / "module/vfio/parameters/enable_unsafe_noiommu_mode").read_text().strip() == "1"
    assert "no DMA isolation" in proc.stdout


def test_dry_run_changes_nothing(fake):
    proc = fake.bind("--dry-run", "eth9", "eth8")
    assert proc.returncode == 0, proc.stderr
    assert f"+ {fake.devbind} -b vfio-pci 0000:03:00.0" in proc.stdout
    assert f"+ {fake.devbind} -b vfio-pci 0000:00:06.0" in proc.stdout
    assert fake.calls() == [] and fake.records() == []
    assert fake.driver("0000:03:00.0") == "ixgbe"
    proc = fake.bind("--dry-run", "--restore", "--driver", "ixgbe", "0000:03:00.0")
    assert proc.returncode == 0 and "already bound to ixgbe" in proc.stdout


def test_restore_without_record(fake):
    proc = fake.bind("--restore")
    assert proc.returncode == 1 and "nothing recorded" in proc.stderr
    fake.bind("--driver", "vfio-pci", "eth9", check=True)
    fake.state.unlink()
    proc = fake.bind("--restore", "0000:03:00.0")
    assert proc.returncode == 1 and "pass --driver" in proc.stderr
    proc = fake.bind("--restore", "--driver", "ixgbe", "0000:03:00.0")
    assert proc.returncode == 0, proc.stderr
    assert fake.driver("0000:03:00.0") == "ixgbe"


def test_unbind(fake):
    proc = fake.bind("--unbind", "eth9")
    assert proc.returncode == 0, proc.stderr
    assert fake.calls() == ["-u 0000:03:00.0"]
    assert not (fake.root / "bus/pci/devices/0000:03:00.0/driver").exists()


def test_interface_in_use_is_refused(fake):
    """An interface with an address (here a veth eth9 in a private network
    namespace, matching the fake sysfs) is not taken unless --force."""
    shell = (f'ip link add eth9 type veth peer name eth9p && ip addr add 192.0.2.9/24 dev eth9 && '
             f'ip link set eth9 up && exec "$@"')
    proc = run(["unshare", "--net", "sh", "-c", shell, "sh", BIND, "eth9"], env=fake.env)
    assert proc.returncode == 1
    assert "192.0.2.9/24" in proc.stderr and "--force" in proc.stderr, proc.stderr
    assert fake.calls() == []
    proc = run(["unshare", "--net", "sh", "-c", shell, "sh", BIND, "--force", "eth9"], env=fake.env)
    assert proc.returncode == 0, proc.stderr
    assert fake.calls() == ["--force -b vfio-pci 0000:03:00.0"]


def test_status(fake):
    fake.bind("eth9", check=True)
    proc = fake.bind("--status")
    assert proc.returncode == 0, proc.stderr
    assert "(fake)" in proc.stdout
    assert "IOMMU: on (1 groups)" in proc.stdout
    assert "0000:03:00.0 ixgbe eth9" in proc.stdout


def test_status_on_this_machine():
    """Read-only: the real dpdk-devbind.py and sysfs."""
    if not (shutil.which("dpdk-devbind.py") or Path("/usr/bin/dpdk-devbind.py").exists()):
        pytest.skip("no dpdk-devbind.py (package dpdk)")
    proc = run([BIND, "--status"], env={"RVS_BIND_STATE": "/nonexistent/state"})
    assert proc.returncode == 0, proc.stderr
    assert "Network devices" in proc.stdout and "IOMMU:" in proc.stdout


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "Usage"),
    (["--bogus"], 1, "unknown option"),
    (["--driver"], 1, "--driver needs"),
    (["--status", "eth9"], 1, "--status takes no DEVICE"),
    (["--restore", "--force"], 1, "--restore takes no"),
])
def test_argument_errors(fake, args, code, message):
    proc = fake.bind(*args)
    assert proc.returncode == code, proc.stderr
    assert message in proc.stdout + proc.stderr


def test_needs_root(fake):
    proc = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "bash", BIND, "eth9"], env=fake.env, cwd="/")
    if "Permission denied" in proc.stderr:
        pytest.skip("the checkout is not readable by nobody")
    assert proc.returncode == 1 and "run as root" in proc.stderr, proc.stderr

