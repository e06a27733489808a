"""rvsadm as an operator uses it against the running lab appliance:
ipvsadm's command sequences (seed 000 §7-10 with rvs's FULLNAT in place of
-m, which rvs does not forward yet), save/restore round trip, bad input
that changes nothing, config reload, the `ipvsadm` name, -Z, and
--export-config back into a config that reloads to the same rules."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import rvslab
from rvslab import VIP

SVC = f"{VIP}:80"


def rules(lab) -> str:
    return lab.rvsadm("-S", "-n").stdout


def answers(n: int = 4) -> set[str]:
    out = set()
    for _ in range(n):
        p = rvslab.client_curl(f"http://{VIP}/", max_time=5)
        out.add(p.stdout.strip() if p.returncode == 0 else f"curl exit {p.returncode}")
    return out


def test_build_a_service_step_by_step(lab):
    # Start from nothing, as the seed does after installing ipvsadm.
    lab.rvsadm("-C")
    assert rvslab.parse_services(lab.rvsadm("-L", "-n").stdout) == []
    assert answers(1) == {"curl exit 28"} or answers(1) == {"curl exit 7"}
    lab.rvsadm("-A", "-t", SVC, "-s", "rr")
    out = lab.rvsadm("-L", "-n").stdout
    assert out.splitlines()[3] == f"TCP  {SVC} rr", out
    lab.rvsadm("-P", "-t", SVC, "-z", "10.77.0.200")
    lab.rvsadm("-a", "-t", SVC, "-r", "10.77.0.11:80", "--fullnat")
    lab.rvsadm("-a", "-t", SVC, "-r", "10.77.0.12:80", "--fullnat")
    services = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    assert [(s.address, s.forward, s.weight) for s in services[0].servers] == [
        ("10.77.0.11:80", "FullNat", 1), ("10.77.0.12:80", "FullNat", 1)]
    assert answers() == {"rs1", "rs2"}


def test_save_restore_round_trip(lab):
    saved = rules(lab)
    assert saved.splitlines() == [
        f"-A -t {SVC} -s rr",
        f"-P -t {SVC} -z 10.77.0.200",
        f"-a -t {SVC} -r 10.77.0.11:80 --fullnat -w 1",
        f"-a -t {SVC} -r 10.77.0.12:80 --fullnat -w 1",
    ], saved
    lab.rvsadm("-C")
    assert rules(lab) == ""
    proc = subprocess.run([str(rvslab.RVSADM), "-R"], input=saved, text=True, capture_output=True,
                          env={**os.environ, "RVS_SOCKET": str(lab.socket)}, timeout=10)
    assert proc.returncode == 0, proc.stderr
    assert rules(lab) == saved
    assert answers() == {"rs1", "rs2"}


def test_bad_input_changes_nothing(lab):
    before = rules(lab)
    for args, code, message in [
        (["-a", "-t", SVC, "-r", "10.77.0.11:80", "--fullnat"], 255, "Destination already exists"),
        (["-a", "-t", "10.77.0.100:81", "-r", "10.77.0.11:80"], 255, "Service not defined"),
        (["-A", "-t", SVC, "-s", "rr"], 255, "Service already exists"),
        (["-A", "-t", "10.77.0.100:81", "-s", "bogus"], 255, "Scheduler or persistence engine not found"),
        (["-a", "-t", "10.77.0.300:80", "-r", "10.77.0.11:80"], 2, "illegal virtual server address[:port] specified"),
        (["-d", "-t", SVC, "-r", "10.77.0.13:80"], 255, "No such destination"),
        (["-a", "-t", SVC, "-r", "10.77.0.13:80", "-w", "x"], 2, "illegal weight"),
        (["-a", "-t", SVC, "-r", "10.77.0.13:8080", "-i"], 255, "cannot map port 80 to 8080"),
        (["-A", "-t", "10.77.0.100:82", "-s", "rr", "-o"], 255, "only for UDP"),
        (["-a", "-t", SVC, "-r", "10.77.0.13:8080", "-g"], 255, "cannot map port 80 to 8080"),
        # ipvsadm 1.31's refusals, word for word: a command first, each option once,
        # only what the command takes (-C -t used to clear every service).
        (["--frobnicate"], 255, "Try `rvsadm -h' or 'rvsadm --help' for more information."),
        (["-Y"], 255, "Try `rvsadm -h'"),
        (["-L", "--frobnicate"], 255, "--frobnicate: unknown option"),
        (["-A", "-t", "10.77.0.100:82", "-s", "rr", "-s", "wrr"], 2, "multiple 'scheduler' options specified"),
        (["-a", "-t", SVC, "-r", "10.77.0.13:80", "-m", "-g"], 2, "multiple 'forwarding-method' options specified"),
        (["-C", "-t", SVC], 2, "Illegal 'service-address' option with the 'flush' command"),
        (["-D", "-t", SVC, "-s", "rr"], 2, "Illegal 'scheduler' option with the 'delete-service' command"),
        (["-a", "-t", SVC], 2, "You need to supply the 'real-server' option for the 'add-server' command"),
        (["-A", "-t", "10.77.0.100:82", "-p", "0"], 2, "invalid timeout value `0' specified"),
        (["--set", "4294967295", "120", "300"], 2, "invalid timeout value `4294967295' specified"),
    ]:
        p = lab.rvsadm(*args, check=False)
        assert p.returncode == code, (args, p.returncode, p.stderr)
        assert message in p.stderr, (args, p.stderr)
        assert rules(lab) == before, f"{args} changed the rules"
    # A restore line the daemon refuses: its reason, and (the last line) exit 255,
    # as ipvsadm's restore_table (more in test_exactness).
    proc = subprocess.run([str(rvslab.RVSADM), "-R"], input=f"-a -t {SVC} -r 10.77.0.11:80 --fullnat\n",
                          text=True, capture_output=True, env={**os.environ, "RVS_SOCKET": str(lab.socket)})
    assert (proc.returncode, proc.stderr) == (255, "Destination already exists\n"), proc
    assert rules(lab) == before


def test_reload_applies_a_good_file_and_refuses_a_bad_one(lab):
    original = lab.config.read_text()
    try:
        # Bad TOML: refused with file:line, nothing changes.
        before = rules(lab)
        lab.config.write_text(original.replace('scheduler = "rr"', 'scheduler = "rr'))
        p = lab.rvsadm("--reload", check=False)
        assert p.returncode == 255 and f"{lab.config}:" in p.stderr, p.stderr
        assert rules(lab) == before
        # A key that needs a restart: refused, nothing changes.
        lab.config.write_text(original.replace("session_capacity = 65536", "session_capacity = 1000"))
        p = lab.rvsadm("--reload", check=False)
        assert p.returncode == 255 and "[dataplane] cannot change at run time" in p.stderr, p.stderr
        assert rules(lab) == before
        # A good file with rs2 removed: applied, sessions of others untouched.
        lines = original.splitlines(keepends=True)
        cut = next(i for i, l in enumerate(lines) if l.startswith('address = "10.77.0.12:80"'))
        good = "".join(lines[:cut - 1] + lines[cut + 2:])
        assert 'address = "10.77.0.12' not in good
        assert "rs2" in answers(), "rs2 served before it is removed"
        assert stats_rows(lab, "--stats")["-> 10.77.0.12:80"][0] > 0
        lab.config.write_text(good)
        lab.rvsadm("--reload")
        servers = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers
        assert [s.address for s in servers] == ["10.77.0.11:80"]
        assert answers() == {"rs1"}
        # rs2's finished connections leave the table (2 s close timeouts).
        rvslab.wait_until("rs2's sessions to expire", lambda: not [
            c for c in rvslab.parse_connections(lab.rvsadm("-L", "-n", "-c").stdout) if c.destination == "10.77.0.12:80"], timeout=15)
        # SIGHUP does the same from the original file.
        lab.config.write_text(original)
        os.kill(lab.rvsd.proc.pid, signal.SIGHUP)
        def back():
            servers = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers
            assert len(servers) == 2, servers
            return True
        rvslab.wait_until("SIGHUP reload", back, timeout=5)
        assert "SIGHUP: reloaded" in lab.rvsd.log_text()
        # Added back by the file, rs2 counts from zero, as after `-a`.
        assert stats_rows(lab, "--stats")["-> 10.77.0.12:80"] == [0] * 5
    finally:
        lab.config.write_text(original)


def test_works_under_the_name_ipvsadm(lab, tmp_path):
    link = tmp_path / "ipvsadm"
    link.symlink_to(rvslab.RVSADM)
    env = {**os.environ, "RVS_SOCKET": str(lab.socket)}
    p = subprocess.run([str(link), "-L", "-n"], capture_output=True, text=True, env=env)
    assert p.returncode == 0 and p.stdout.startswith("IP Virtual Server version 1.2.1"), p
    p = subprocess.run([str(link), "-Y"], capture_output=True, text=True, env=env)
    assert p.returncode == 255 and p.stderr == "Try `ipvsadm -h' or 'ipvsadm --help' for more information.\n", p.stderr


def test_persistence_on_and_off_as_in_seed_000(lab):
    """Seed 000 §六: `ipvsadm -E -t VIP:80 -s rr -p 300` pins a client to one
    server; editing back to plain rr resumes alternation."""
    lab.rvsadm("-E", "-t", SVC, "-s", "rr", "-p", "300")
    out = lab.rvsadm("-L", "-n").stdout
    assert f"TCP  {SVC} rr persistent 300" in out.splitlines(), out
    seen = [rvslab.client_curl(f"http://{VIP}/", max_time=5).stdout.strip() for _ in range(10)]
    assert len(set(seen)) == 1 and seen[0] in ("rs1", "rs2"), seen
    pc = lab.rvsadm("-L", "-n", "--persistent-conn").stdout
    assert pc.splitlines()[1].rstrip() == "Prot LocalAddress:Port            Weight    PersistConn ActiveConn InActConn", pc
    counts = [int(l.split()[3]) for l in pc.splitlines() if l.startswith("  -> ") and "RemoteAddress" not in l]
    assert sorted(counts) == [0, 1], pc
    assert " -p 300" in rules(lab).splitlines()[0]
    lab.rvsadm("-E", "-t", SVC, "-s", "rr")
    assert f"TCP  {SVC} rr" in lab.rvsadm("-L", "-n").stdout.splitlines()
    seen = [rvslab.client_curl(f"http://{VIP}/", max_time=5).stdout.strip() for _ in range(6)]
    assert all(a != b for a, b in zip(seen, seen[1:])), f"rr did not resume: {seen}"


def test_thresholds_listing_and_scheduler_flags(lab):
    lab.rvsadm("-e", "-t", SVC, "-r", "10.77.0.11:80", "--fullnat", "-x", "100", "-y", "50")
    out = lab.rvsadm("-L", "-n", "--thresholds").stdout
    assert out.splitlines()[1].rstrip() == "Prot LocalAddress:Port            Uthreshold Lthreshold ActiveConn InActConn", out
    assert out.splitlines()[2] == "  -> RemoteAddress:Port", out
    row = next(l for l in out.splitlines() if "10.77.0.11:80" in l).split()
    assert row[2:4] == ["100", "50"], out
    assert "-a -t 10.77.0.100:80 -r 10.77.0.11:80 --fullnat -w 1 -x 100 -y 50" in rules(lab).splitlines()
    bad = lab.rvsadm("-E", "-t", SVC, "-s", "rr", "-b", "sh-port", check=False)
    assert bad.returncode == 255 and "sh" in bad.stderr, bad.stderr
    lab.rvsadm("-E", "-t", SVC, "-s", "sh", "-b", "sh-port")
    assert f"TCP  {SVC} sh (sh-port)" in lab.rvsadm("-L", "-n").stdout.splitlines()
    # Save/restore keeps the flags.
    assert f"-A -t {SVC} -s sh -b sh-port" == rules(lab).splitlines()[0]
    lab.rvsadm("-E", "-t", SVC, "-s", "rr")
    # -e sets what it is given and ipvsadm's defaults for the rest (weight 1, no thresholds).
    lab.rvsadm("-e", "-t", SVC, "-r", "10.77.0.11:80", "--fullnat")


def test_forwarding_method_per_server_as_ipvsadm(lab):
    """Seed 000 §五 / seed 003: `-a ... -g` adds a direct-routing server; the
    listing says Route, -S writes -g, and -e can change the method."""
    lab.rvsadm("-a", "-t", SVC, "-r", "10.77.0.13:80", "-g", "-w", "0")
    servers = {s.address: s.forward for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers}
    assert servers["10.77.0.13:80"] == "Route", servers
    assert f"-a -t {SVC} -r 10.77.0.13:80 -g -w 0" in rules(lab).splitlines()
    lab.rvsadm("-e", "-t", SVC, "-r", "10.77.0.13:80", "-m")
    servers = {s.address: s.forward for s in rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)[0].servers}
    assert servers["10.77.0.13:80"] == "Masq", servers
    lab.rvsadm("-d", "-t", SVC, "-r", "10.77.0.13:80")
    assert answers() == {"rs1", "rs2"}


def test_stats_and_rate_listings(lab):
    before = rvslab.parse_services(lab.rvsadm("-L", "-n").stdout)
    for _ in range(6):
        assert rvslab.client_curl(f"http://{VIP}/", max_time=5).returncode == 0
    out = lab.rvsadm("-L", "-n", "--stats", "--exact").stdout
    lines = out.splitlines()
    assert lines[1] == "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes", out
    svc = lines[3].split()
    assert svc[:2] == ["TCP", SVC], out
    conns, inpkts, outpkts, inbytes, outbytes = map(int, svc[2:7])
    assert conns >= 6 and inpkts >= 6 * 5 and outpkts >= 6 * 4 and outbytes > inbytes > 0, out
    rows = [l.split() for l in lines[4:] if l.startswith("  -> ")]
    assert sum(int(r[2]) for r in rows) == conns, out
    rate = lab.rvsadm("-L", "-n", "--rate").stdout
    assert rate.splitlines()[1] == "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS", rate


def stats_rows(lab, *args: str) -> dict[str, list[int]]:
    """`-L -n --stats --exact` (or `--rate`): the five figures of each
    service (`TCP 10.77.0.100:80`) and real server (`-> 10.77.0.11:80`)."""
    out = lab.rvsadm("-L", "-n", *args, "--exact").stdout
    rows = {}
    for line in out.splitlines()[3:]:
        words = line.split()
        key = " ".join(words[:2])
        rows[key] = [int(w) for w in words[2:]]
        assert len(rows[key]) == 5, out
    return rows


def settled_stats(lab) -> dict[str, list[int]]:
    """--stats once two readings 0.5 s apart agree (the last ACKs and FINs
    of finished connections are in)."""
    last = stats_rows(lab, "--stats")

    def same():
        nonlocal last
        time.sleep(0.5)
        now = stats_rows(lab, "--stats")
        agree = now == last
        last = now
        return agree or None

    rvslab.wait_until("--stats to settle", same, timeout=10)
    return last


def metric_sum(name: str) -> int:
    text = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", "http://127.0.0.1:9477/metrics"], check=True).stdout
    return sum(int(float(l.split()[-1])) for l in text.splitlines() if l.startswith(name + "{"))


def test_zero_counters_as_ipvsadm_z(lab):
    """`-Z` zeroes what --stats and --rate show (all services, or one with
    -t); traffic after it is counted from zero; /metrics keeps counting."""
    for _ in range(4):
        assert rvslab.client_curl(f"http://{VIP}/", max_time=5).returncode == 0
    before = settled_stats(lab)
    assert before[f"TCP {SVC}"][0] >= 4, before
    metric_before = metric_sum("rvs_real_server_connections_total")
    assert metric_before >= 4
    lab.rvsadm("-Z")
    zeroed = stats_rows(lab, "--stats")
    assert all(v == [0] * 5 for v in zeroed.values()), zeroed
    assert set(zeroed) == set(before), zeroed
    # The rate estimators restart from 0 too (ip_vs_zero_estimator).
    rates = stats_rows(lab, "--rate")
    assert all(v == [0] * 5 for v in rates.values()), rates
    # Three more connections: counted from the zero, exactly.
    for _ in range(3):
        assert rvslab.client_curl(f"http://{VIP}/", max_time=5).returncode == 0
    after = settled_stats(lab)
    conns, inpkts, outpkts, inbytes, outbytes = after[f"TCP {SVC}"]
    assert conns == 3, after
    assert inpkts >= 3 * 5 and outpkts >= 3 * 4 and outbytes > inbytes > 0, after
    servers = [v for k, v in after.items() if k.startswith("->")]
    assert sum(v[0] for v in servers) == 3, after
    # Counters below the listing were never reset: Prometheus sees them grow.
    assert metric_sum("rvs_real_server_connections_total") >= metric_before + 3
    # -Z of one service, and of a service that does not exist (changes nothing).
    lab.rvsadm("--zero", "--tcp-service", SVC)
    assert all(v == [0] * 5 for v in stats_rows(lab, "--stats").values())
    assert rvslab.client_curl(f"http://{VIP}/", max_time=5).returncode == 0
    counted = settled_stats(lab)
    p = lab.rvsadm("-Z", "-t", f"{VIP}:81", check=False)
    assert p.returncode == 255 and "No such service" in p.stderr, (p.returncode, p.stderr)
    assert stats_rows(lab, "--stats") == counted
    p = lab.rvsadm("-Z", "-L", check=False)
    assert p.returncode == 2 and "multiple commands" in p.stderr, p.stderr
    # -L of one service: ipvsadm's list_service, no version line.
    one = lab.rvsadm("-L", "-n", "-t", SVC).stdout.splitlines()
    assert one[0] == "Prot LocalAddress:Port Scheduler Flags" and one[2] == f"TCP  {SVC} rr", one
    p = lab.rvsadm("-L", "-n", "-t", f"{VIP}:81", check=False)
    assert p.returncode == 1 and "No such service" in p.stderr, p.stderr


def without_services(text: str) -> str:
    """A config without its [[service]] tables (and their sub-tables) and
    [timeouts]: what --export-config's output replaces."""
    keep, out = True, []
    for line in text.splitlines(keepends=True):
        header = line.strip()
        if header.startswith("["):
            name = header.strip("[]").strip()
            keep = not (name == "timeouts" or name == "service" or name.startswith("service."))
        if keep:
            out.append(line)
    return "".join(out)


def test_export_config_round_trip(lab, tmp_path):
    """Changes made with rvsadm -> --export-config -> a config file that
    rvsd --check-config accepts and that reloads to the same -S, exactly."""
    original = lab.config.read_text()
    new = "10.77.0.100:8080"
    try:
        lab.rvsadm("-A", "-t", new, "-s", "wrr", "-p", "120", "-M", "255.255.255.0")
        lab.rvsadm("-P", "-t", new, "-z", "10.77.0.200")
        lab.rvsadm("-a", "-t", new, "-r", "10.77.0.11:80", "--fullnat", "-w", "3", "-x", "10", "-y", "2")
        lab.rvsadm("-a", "-t", new, "-r", "10.77.0.12:8080", "-g", "-w", "0")
        lab.rvsadm("-e", "-t", SVC, "-r", "10.77.0.12:80", "--fullnat", "-w", "5")
        lab.rvsadm("-A", "-u", "10.77.0.100:53", "-s", "sh", "-b", "sh-port")  # no real server yet
        lab.rvsadm("--set", "1000", "100", "200")
        saved = rules(lab)
        timeouts = lab.rvsadm("-L", "--timeout").stdout
        p = lab.rvsadm("--export-config")
        exported = p.stdout
        assert "[[service]]" in exported and 'vip = "10.77.0.100:8080"' in exported, exported
        # The UDP service has no real server, which a file cannot hold: said on stderr.
        assert "warning: not exported: UDP 10.77.0.100:53" in p.stderr, p.stderr
        lab.rvsadm("-D", "-u", "10.77.0.100:53")
        saved = rules(lab)
        p = lab.rvsadm("--export-config")
        assert p.stderr == "", p.stderr
        exported = p.stdout
        text = without_services(original).rstrip("\n") + "\n\n" + exported
        path = tmp_path / "exported.toml"
        path.write_text(text)
        check = subprocess.run([str(rvslab.RVSD), "--check-config", str(path)], capture_output=True, text=True, timeout=20)
        assert check.returncode == 0, (check.stderr, text)
        # Back to the file's services, then reload the exported ones.
        lab.rvsadm("--reload")
        assert rules(lab) != saved
        lab.config.write_text(text)
        lab.rvsadm("--reload")
        assert rules(lab) == saved, text
        assert lab.rvsadm("-L", "--timeout").stdout == timeouts
        assert lab.rvsadm("--export-config").stdout == exported
        assert answers() == {"rs1", "rs2"}
    finally:
        lab.config.write_text(original)
        lab.rvsadm("--reload", check=False)
