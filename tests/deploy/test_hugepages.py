"""scripts/hugepages without touching the machine: argument handling, --status
and --clear against a fake sysfs (RVS_SYSFS), and --dry-run for what would
change the kernel (writes, mounts) or /etc (RVS_ETC). The mount unit that
--persist writes must pass systemd-analyze verify."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploylib import SCRIPTS, run

HP = SCRIPTS / "hugepages"
SIZES = {"2M": "hugepages-2048kB", "1G": "hugepages-1048576kB"}


def default_kb() -> int:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("Hugepagesize:"):
            return int(line.split()[1])
    raise AssertionError("no Hugepagesize in /proc/meminfo")


@pytest.fixture
def fake(tmp_path):
    sys_ = tmp_path / "sys"
    etc = tmp_path / "etc"
    etc.mkdir()

    def make(sizes=("2M", "1G"), nodes=(0,), total=0, free=None):
        for label in sizes:
            dirs = [sys_ / "kernel/mm/hugepages" / SIZES[label]]
            dirs += [sys_ / f"devices/system/node/node{n}/hugepages" / SIZES[label] for n in nodes]
            for d in dirs:
                d.mkdir(parents=True, exist_ok=True)
                (d / "nr_hugepages").write_text(f"{total}\n")
                (d / "free_hugepages").write_text(f"{total if free is None else free}\n")
                (d / "resv_hugepages").write_text("0\n")
                (d / "surplus_hugepages").write_text("0\n")
        return sys_

    # No hugetlbfs mounted as far as the script can tell (tests that need one
    # write their own mounts file).
    mounts = tmp_path / "mounts"
    mounts.write_text("proc /proc proc rw 0 0\n")

    class Fake:
        root, etc_dir, mounts_file = sys_, etc, mounts
        env = {"RVS_SYSFS": str(sys_), "RVS_ETC": str(etc), "RVS_PROC_MOUNTS": str(mounts)}

        @staticmethod
        def hp(*args):
            return run([HP, *args], env=Fake.env)

        @staticmethod
        def nr(label: str, node: int | None = None) -> int:
            base = sys_ / "kernel/mm/hugepages" if node is None else \
                sys_ / f"devices/system/node/node{node}/hugepages"
            return int((base / SIZES[label] / "nr_hugepages").read_text())

    Fake.make = staticmethod(make)
    return Fake


def test_dry_run_reserves_and_mounts(fake):
    fake.make()
    proc = fake.hp("--2m", "512", "--1g", "2", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert f"+ echo 512 > {fake.root}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" in out
    assert f"+ echo 2 > {fake.root}/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages" in out
    if default_kb() == 2048:
        assert "+ mount -t hugetlbfs -o pagesize=2M nodev /dev/hugepages\n" in out
        assert "+ mount -t hugetlbfs -o pagesize=1G nodev /dev/hugepages1G\n" in out


def test_existing_mount_is_used(fake):
    fake.make()
    fake.mounts_file.write_text("nodev /mnt/huge hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    proc = fake.hp("--2m", "8", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert "hugetlbfs for 2M pages already mounted on /mnt/huge" in proc.stdout
    assert "+ mount" not in proc.stdout
    assert fake.nr("2M") == 0 and fake.nr("1G") == 0, "--dry-run wrote to sysfs"
    assert list(fake.etc_dir.iterdir()) == []


def test_per_node(fake):
    fake.make(nodes=(0, 1))
    proc = fake.hp("--2m", "64", "--node", "1", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"+ echo 64 > {fake.root}/devices/system/node/node1/hugepages/hugepages-2048kB/nr_hugepages" in proc.stdout
    proc = fake.hp("--2m", "64", "--node", "2", "--dry-run")
    assert proc.returncode == 1 and "no NUMA node 2 (nodes: 0 1)" in proc.stderr


def test_no_1g_pages(fake):
    fake.make(sizes=("2M",))
    proc = fake.hp("--1g", "1", "--dry-run")
    assert proc.returncode == 1
    assert "no 1 GiB huge pages" in proc.stderr and "pdpe1gb" in proc.stderr


def test_persist_dry_run(fake, tmp_path):
    fake.make()
    proc = fake.hp("--2m", "300", "--1g", "4", "--persist", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    if default_kb() == 2048:
        assert f"+ cat > {fake.etc_dir}/sysctl.d/80-rvs-hugepages.conf <<EOF" in out
        assert "vm.nr_hugepages = 300" in out
        assert "hugepagesz=1G hugepages=4 hugepagesz=2M hugepages=300" in out
        unit = re.search(r"\+ cat > (\S+/dev-hugepages1G\.mount) <<EOF\n(.*?)\nEOF\n", out, re.S)
        assert unit, out
        # The unit it would write is one systemd accepts.
        if shutil.which("systemd-analyze") is None:
            pytest.fail("systemd-analyze missing: apt-get install systemd")
        root = tmp_path / "root"
        units = root / "etc/systemd/system"
        units.mkdir(parents=True)
        shutil.copytree("/usr/lib/systemd/system", root / "usr/lib/systemd/system", symlinks=True)
        (units / "dev-hugepages1G.mount").write_text(unit.group(2) + "\n")
        v = run(["systemd-analyze", "verify", "--man=no", f"--root={root}",
                 "/etc/systemd/system/dev-hugepages1G.mount"])
        assert v.returncode == 0, v.stdout + v.stderr
        assert "Where=/dev/hugepages1G" in unit.group(2)
    assert list(fake.etc_dir.iterdir()) == [], "--dry-run wrote to /etc"


def test_status(fake):
    fake.make(total=6, free=2)
    proc = fake.hp("--status")
    assert proc.returncode == 0, proc.stderr
    assert "2M pages: total 6 free 2" in proc.stdout
    assert "1G pages: total 6 free 2" in proc.stdout
    assert "node 0: total 6 free 2" in proc.stdout
    assert f"default huge page size: {default_kb()} kB" in proc.stdout


def test_status_on_this_machine():
    """Read-only, the real sysfs: works without root too."""
    proc = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "bash", HP, "--status"], cwd="/")
    if "Permission denied" in proc.stderr:
        pytest.skip("the checkout is not readable by nobody")
    assert proc.returncode == 0, proc.stderr
    assert "pages: total" in proc.stdout


def test_clear_refuses_pages_in_use(fake):
    fake.make(total=4, free=1)
    proc = fake.hp("--clear", "--dry-run")
    assert proc.returncode == 1
    assert "3 2M pages are in use" in proc.stderr


def test_clear(fake):
    fake.make(total=4)
    proc = fake.hp("--clear", "--dry-run")
    assert proc.returncode == 0, proc.stderr
    assert f"+ echo 0 > {fake.root}/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages" in proc.stdout
    assert fake.nr("2M") == 4
    # For real (the fake sysfs only: --clear mounts nothing).
    proc = fake.hp("--clear")
    assert proc.returncode == 0, proc.stderr
    assert fake.nr("2M") == 0 and fake.nr("1G") == 0 and fake.nr("2M", node=0) == 0


def test_clear_persist_removes_files(fake):
    fake.make()
    sysctl = fake.etc_dir / "sysctl.d/80-rvs-hugepages.conf"
    unit = fake.etc_dir / "systemd/system/dev-hugepages1G.mount"
    for f in (sysctl, unit):
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("x\n")
    proc = fake.hp("--status")
    assert str(sysctl) in proc.stdout and str(unit) in proc.stdout
    proc = fake.hp("--clear", "--persist")
    assert proc.returncode == 0, proc.stderr
    assert not sysctl.exists() and not unit.exists()


@pytest.mark.parametrize("args, code, message", [
    ([], 2, "Usage"),
    (["--2m"], 1, "--2m needs a page count"),
    (["--2m", "x"], 1, "non-negative integer"),
    (["--1g", "-1"], 1, "non-negative integer"),
    (["--persist"], 1, "say how many pages"),
    (["--status", "--2m", "4"], 1, "--status takes no other option"),
    (["--clear", "--2m", "4"], 1, "--clear takes no page counts"),
    (["--2m", "4", "--node", "0", "--persist"], 1, "cannot keep a per-node reservation"),
    (["--node", "x"], 1, "--node needs"),
    (["--bogus"], 1, "unknown argument"),
])
def test_argument_errors(fake, args, code, message):
    fake.make()
    proc = fake.hp(*args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert message in proc.stdout + proc.stderr


def test_setup_needs_root(fake):
    fake.make()
    proc = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "bash", HP, "--2m", "4"], env=fake.env, cwd="/")
    if "Permission denied" in proc.stderr:
        pytest.skip("the checkout is not readable by nobody")
    assert proc.returncode == 1 and "run as root" in proc.stderr, proc.stderr


def test_clear_removes_leftover_page_files(fake, tmp_path):
    """DPDK leaves its page files behind when it exits; --clear removes those
    no process maps, and keeps a mapped one (then refuses: pages in use)."""
    fake.make(sizes=("2M",), total=4, free=1)
    mnt = tmp_path / "huge"
    mnt.mkdir()
    fake.mounts_file.write_text(f"nodev {mnt} hugetlbfs rw,relatime,pagesize=2M 0 0\n")
    for i in range(3):
        (mnt / f"rvsmap_{i}").write_bytes(b"\0" * 4096)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import mmap, sys; f = open(sys.argv[1], 'r+b'); m = mmap.mmap(f.fileno(), 4096);"
         " print('mapped', flush=True); sys.stdin.read()", str(mnt / "rvsmap_2")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "mapped"
        dry = fake.hp("--clear", "--dry-run")
        assert f"+ rm -f -- {mnt}/rvsmap_0" in dry.stdout and f"{mnt}/rvsmap_2" not in dry.stdout
        assert (mnt / "rvsmap_0").exists()
        proc = fake.hp("--clear")
        assert proc.returncode == 1, "the kernel still counts the pages in use"
        assert "2 page files no process maps" in proc.stdout
        assert sorted(p.name for p in mnt.iterdir()) == ["rvsmap_2"]
    finally:
        holder.stdin.close()
        holder.wait(timeout=10)
