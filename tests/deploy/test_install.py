"""scripts/install into a temporary root (--destdir), and the rvsd.service it
installs: layout, never overwriting a config, the ipvsadm link rule, prefix
substitution, and `systemd-analyze verify` accepting the unit."""

from __future__ import annotations

import configparser
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from deploylib import REPO, SCRIPTS, run

INSTALL = SCRIPTS / "install"
UNIT = "etc/systemd/system/rvsd.service"
SYSTEM_UNITS = Path("/usr/lib/systemd/system")


def install(dest: Path, release_bins: Path, *args: str, check: bool = True):
    return run([INSTALL, "--destdir", dest, "--no-build", *args], check=check,
               env={"CARGO_TARGET_DIR": str(release_bins.parent)}, timeout=120)


def unit_values(text: str) -> dict[str, list[str]]:
    """KEY -> every value it is given (systemd allows repeated keys)."""
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line[0] in "#;[" or "=" not in line:
            continue
        k, v = line.split("=", 1)
        out.setdefault(k.strip(), []).append(v.strip())
    return out


def verify(root: Path, unit: str = "/" + UNIT) -> subprocess.CompletedProcess:
    """systemd-analyze verify --root=ROOT UNIT. The root needs the standard
    targets the unit is ordered against, and the two system commands it calls
    (/bin/sh, /bin/kill): copies of the host's."""
    if shutil.which("systemd-analyze") is None:
        pytest.fail("systemd-analyze missing: apt-get install systemd")
    units = root / SYSTEM_UNITS.relative_to("/")
    if not units.exists():
        shutil.copytree(SYSTEM_UNITS, units, symlinks=True)
    for cmd in ("/bin/sh", "/bin/kill"):
        dst = root / cmd.lstrip("/")
        if not dst.exists():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(cmd), dst)
    return run(["systemd-analyze", "verify", "--man=no", f"--root={root}", unit], timeout=60)


@pytest.fixture
def staged(tmp_path, release_bins) -> Path:
    dest = tmp_path / "root"
    proc = install(dest, release_bins)
    assert "staged in" in proc.stdout, proc.stdout
    return dest


def test_layout(staged, release_bins):
    sbin = staged / "usr/local/sbin"
    for name in ("rvsd", "rvsadm", "rvs-hugepages", "rvs-bind-nic"):
        f = sbin / name
        assert f.is_file(), f"{f} not installed"
        assert stat.S_IMODE(f.stat().st_mode) == 0o755, f"{f} mode {oct(f.stat().st_mode)}"
    assert (sbin / "rvsd").read_bytes() == (release_bins / "rvsd").read_bytes()
    assert (sbin / "rvs-hugepages").read_text() == (SCRIPTS / "hugepages").read_text()
    # No real ipvsadm in the new root: the compatibility link.
    assert os.readlink(sbin / "ipvsadm") == "rvsadm"
    conf = staged / "etc/rvs/rvs.toml"
    assert conf.read_text() == (REPO / "deploy/rvs.toml").read_text()
    assert stat.S_IMODE(conf.stat().st_mode) == 0o640
    assert stat.S_IMODE((staged / "etc/rvs").stat().st_mode) == 0o750
    doc = staged / "usr/local/share/doc/rvs"
    assert (doc / "deployment.md").is_file() and (doc / "examples/rvs.toml").is_file()
    assert (doc / "examples/vagrant-lb1.toml").is_file()
    # The active/backup examples an operator adapts.
    assert (doc / "examples/keepalived.conf").read_text() == (REPO / "deploy/keepalived.conf").read_text()
    assert ((doc / "examples/keepalived.service.d/rvsd.conf").read_text()
            == (REPO / "deploy/keepalived.service.d/rvsd.conf").read_text())
    assert (staged / UNIT).read_text() == (REPO / "deploy/rvsd.service").read_text()
    # Nothing outside the staging root's expected trees.
    top = sorted(p.name for p in staged.iterdir())
    assert top == ["etc", "usr"], top


def test_installed_rvs_tools_run(staged):
    sbin = staged / "usr/local/sbin"
    proc = run([sbin / "rvsd", "--check-config", staged / "etc/rvs/rvs.toml"], check=True)
    assert proc.stdout.endswith(": ok\n")
    proc = run([sbin / "rvsadm", "-h"])
    assert "rvsadm" in proc.stdout + proc.stderr
    proc = run([sbin / "rvs-hugepages", "--help"], check=True)
    assert "rvs-hugepages" in proc.stdout
    proc = run([sbin / "rvs-bind-nic", "--help"], check=True)
    assert "vfio-pci" in proc.stdout


def test_systemd_analyze_verify_accepts_unit(staged):
    proc = verify(staged)
    assert proc.returncode == 0, f"systemd-analyze verify refused the unit:\n{proc.stdout}{proc.stderr}"


def test_verify_catches_a_missing_binary(staged):
    """The check is real: without rvsd in the root, verify fails."""
    (staged / "usr/local/sbin/rvsd").unlink()
    proc = verify(staged)
    assert proc.returncode != 0
    assert "rvsd" in proc.stdout + proc.stderr


def test_unit_contract():
    """What the issue asks of the unit, and the hardening DPDK can live with."""
    text = (REPO / "deploy/rvsd.service").read_text()
    v = unit_values(text)
    assert v["Restart"] == ["on-failure"]
    assert v["ExecStartPre"] == ["/usr/local/sbin/rvsd --check-config ${RVS_CONFIG}"]
    assert v["ExecStart"] == ["/usr/local/sbin/rvsd --config ${RVS_CONFIG}"]
    assert v["Environment"] == ["RVS_CONFIG=/etc/rvs/rvs.toml"]
    assert v["ExecReload"][0] == "/usr/local/sbin/rvsd --check-config ${RVS_CONFIG}"
    assert set(v["CapabilityBoundingSet"][0].split()) == {
        "CAP_NET_ADMIN", "CAP_NET_RAW", "CAP_SYS_ADMIN", "CAP_IPC_LOCK"}
    assert v["LimitMEMLOCK"] == ["infinity"]
    assert v["NoNewPrivileges"] == ["yes"]
    assert "AF_PACKET" in v["RestrictAddressFamilies"][0]
    assert v["WantedBy"] == ["multi-user.target"]
    # These would hide /dev/vfio, /dev/hugepages or /dev/infiniband from DPDK.
    for key in ("PrivateDevices", "DevicePolicy", "DeviceAllow", "ProtectClock", "ProtectSystem"):
        if key == "ProtectSystem":
            assert v[key] == ["full"], "ProtectSystem=strict would make /run/dpdk read-only"
        else:
            assert key not in v, f"{key}= would cut DPDK off its devices"
    # The Exec lines use only paths the installer rewrites or system ones.
    for key in ("ExecStartPre", "ExecStart", "ExecStartPost", "ExecReload"):
        for cmd in v[key]:
            assert cmd.split()[0] in ("/usr/local/sbin/rvsd", "/bin/sh", "/bin/kill"), cmd


def readiness_script(unit_text: str, rvsadm: Path) -> str:
    post = unit_values(unit_text)["ExecStartPost"][0]
    m = re.fullmatch(r"/bin/sh -c '(.*)'", post)
    assert m, post
    # systemd turns $$ into $; point it at a stand-in rvsadm.
    return m.group(1).replace("$$", "$").replace("/usr/local/sbin/rvsadm", str(rvsadm))


@pytest.mark.parametrize("answers_after", [0, 3])
def test_readiness_check_waits_for_the_socket(tmp_path, answers_after):
    """ExecStartPost polls rvsadm until it answers while rvsd lives."""
    counter = tmp_path / "calls"
    fake = tmp_path / "rvsadm"
    fake.write_text(f"#!/bin/sh\nn=$(($(cat {counter} 2>/dev/null || echo 0) + 1))\n"
                    f"echo $n > {counter}\n[ $n -gt {answers_after} ]\n")
    fake.chmod(0o755)
    script = readiness_script((REPO / "deploy/rvsd.service").read_text(), fake)
    alive = subprocess.Popen(["sleep", "30"])
    try:
        proc = run(["/bin/sh", "-c", script], env={"MAINPID": str(alive.pid)}, timeout=20)
    finally:
        alive.kill()
        alive.wait()
    assert proc.returncode == 0, proc.stderr
    assert int(counter.read_text()) == answers_after + 1


def test_readiness_check_fails_when_rvsd_died(tmp_path):
    fake = tmp_path / "rvsadm"
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    script = readiness_script((REPO / "deploy/rvsd.service").read_text(), fake)
    dead = subprocess.Popen(["true"])
    dead.wait()
    proc = run(["/bin/sh", "-c", script], env={"MAINPID": str(dead.pid)}, timeout=20)
    assert proc.returncode == 1


def test_existing_config_is_kept(staged, release_bins):
    conf = staged / "etc/rvs/rvs.toml"
    mine = conf.read_text().replace("session_capacity = 1048576", "session_capacity = 131072")
    assert mine != conf.read_text()
    conf.write_text(mine)
    proc = install(staged, release_bins, "--config", REPO / "deploy/vagrant/lb1.toml")
    assert conf.read_text() == mine
    assert "exists: kept" in proc.stdout


def test_existing_bad_config_is_reported(staged, release_bins):
    """An upgrade checks the kept config with the new rvsd."""
    conf = staged / "etc/rvs/rvs.toml"
    conf.write_text(conf.read_text().replace('scheduler = "rr"', 'scheduler = "nosuch"'))
    proc = install(staged, release_bins, check=False)
    assert proc.returncode != 0
    assert "rvs.toml:" in proc.stderr and "nosuch" in proc.stderr, proc.stderr
    assert conf.read_text().count("nosuch") == 1, "the config was touched"


def test_config_option(tmp_path, release_bins):
    dest = tmp_path / "root"
    install(dest, release_bins, "--config", REPO / "deploy/vagrant/lb2.toml")
    assert (dest / "etc/rvs/rvs.toml").read_text() == (REPO / "deploy/vagrant/lb2.toml").read_text()


def test_no_ipvsadm_link_over_a_real_ipvsadm(tmp_path, release_bins):
    dest = tmp_path / "root"
    real = dest / "usr/sbin/ipvsadm"
    real.parent.mkdir(parents=True)
    real.write_text("#!/bin/sh\necho real\n")
    real.chmod(0o755)
    proc = install(dest, release_bins)
    assert not (dest / "usr/local/sbin/ipvsadm").exists()
    assert "real ipvsadm is installed" in proc.stdout
    assert real.read_text() == "#!/bin/sh\necho real\n"


def test_own_ipvsadm_link_is_refreshed(staged, release_bins):
    link = staged / "usr/local/sbin/ipvsadm"
    assert os.readlink(link) == "rvsadm"
    install(staged, release_bins)
    assert os.readlink(link) == "rvsadm"


def test_prefix(tmp_path, release_bins):
    dest = tmp_path / "root"
    install(dest, release_bins, "--prefix", "/opt/rvs")
    assert (dest / "opt/rvs/sbin/rvsd").is_file()
    text = (dest / UNIT).read_text()
    assert "/usr/local" not in text, "a /usr/local path left in the unit"
    v = unit_values(text)
    assert v["ExecStart"] == ["/opt/rvs/sbin/rvsd --config ${RVS_CONFIG}"]
    assert "/opt/rvs/sbin/rvsadm" in v["ExecStartPost"][0]
    assert v["Documentation"] == ["file:/opt/rvs/share/doc/rvs/deployment.md"]
    proc = verify(dest)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_destdir_from_environment(tmp_path, release_bins):
    dest = tmp_path / "envroot"
    run([INSTALL, "--no-build"], check=True,
        env={"DESTDIR": str(dest), "CARGO_TARGET_DIR": str(release_bins.parent)})
    assert (dest / "usr/local/sbin/rvsd").is_file()


@pytest.mark.parametrize("args, message", [
    (["--start"], "--start cannot be used with --destdir"),
    (["--prefix", "relative"], "absolute"),
    (["--config", "/nonexistent.toml"], "no config file"),
    (["--bogus"], "unknown argument"),
    (["--prefix"], "needs a value"),
])
def test_argument_errors(tmp_path, release_bins, args, message):
    proc = install(tmp_path / "root", release_bins, *args, check=False)
    assert proc.returncode != 0
    assert message in proc.stderr, proc.stderr


def test_missing_binaries_are_named(tmp_path):
    proc = run([INSTALL, "--destdir", tmp_path / "root", "--no-build"],
               env={"CARGO_TARGET_DIR": str(tmp_path / "empty")})
    assert proc.returncode != 0
    assert "rvsd missing" in proc.stderr, proc.stderr


def test_real_install_needs_root(tmp_path):
    """Without --destdir the script refuses to run as a normal user."""
    proc = run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                "bash", INSTALL, "--no-build"], cwd="/")
    if "Permission denied" in proc.stderr:
        pytest.skip("the checkout is not readable by nobody")
    assert proc.returncode != 0
    assert "run as root" in proc.stderr, proc.stderr


def test_unit_file_parses_as_ini():
    """No duplicate sections, every line in a section (configparser is
    stricter than systemd about sections, lenient about repeated keys)."""
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.read_string((REPO / "deploy/rvsd.service").read_text())
    assert cp.sections() == ["Unit", "Service", "Install"]
