"""Typing the seeds' commands into the lab, as an operator would.

The seed tests (test_seeds_*.py) keep each seed section as a list of the
lines its author typed, prompt included (`[root@lvs ~]# ipvsadm -L -n`),
copied from the seed with its line number. `Operator.type` runs one such
line with bash on the host the prompt names:

- the director (`lvs`, `node1`): in the root namespace, with `rvsadm` and an
  `ipvsadm` link to it first on PATH — the link scripts/install makes
  (`ln -sfn rvsadm $SBIN/ipvsadm`) — and RVS_SOCKET naming the test rvsd;
- a real server (`web01`, `node2`, ...) or the client (`redis_server`): in
  that lab namespace.

Before running, every seed address (and path) is replaced through the
section's mapping (seed → lab), longest first, only where it stands as a
whole address (so 192.168.10.20 never rewrites 192.168.10.200).

Listings are compared with `same_listing`: the seed's printed lines, with
the same mapping applied, against rvsadm's output, after the normalisations
documented there.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import rvslab

PROMPT = re.compile(r"^\[root@([\w-]+) ~\]#\s*(.*)$")


@dataclass
class Typed:
    line: str        # as the seed prints it (with the prompt)
    command: str     # what ran, addresses mapped
    host: str        # where it ran: director, client, rs1, rs2
    proc: subprocess.CompletedProcess

    @property
    def stdout(self) -> str:
        return self.proc.stdout


class Operator:
    """Runs seed lines; HOSTS maps the prompt's host name to a lab node
    ("director", "client", "rs1", "rs2"); MAPPING maps seed addresses and
    paths to the lab's."""

    def __init__(self, socket: Path, workdir: Path, hosts: dict[str, str], mapping: dict[str, str]):
        self.socket = socket
        self.hosts = hosts
        self.mapping = mapping
        self.sbin = workdir / "sbin"
        self.sbin.mkdir(exist_ok=True)
        if not (self.sbin / "rvsadm").exists():
            (self.sbin / "rvsadm").symlink_to(rvslab.RVSADM)
            # As scripts/install links it: a relative link next to rvsadm.
            (self.sbin / "ipvsadm").symlink_to("rvsadm")

    def adapt(self, text: str, extra: dict[str, str] | None = None) -> str:
        mapping = {**self.mapping, **(extra or {})}
        for seed in sorted(mapping, key=len, reverse=True):
            text = re.sub(rf"(?<![\w.]){re.escape(seed)}(?![\w])", mapping[seed], text)
        return text

    def type(self, line: str, on: str | None = None, check: bool = True, timeout: float = 60,
             extra: dict[str, str] | None = None) -> Typed:
        """Run LINE on the host its prompt names, or (a line the seed
        prints without a prompt) on ON: "director", "client", "rs1", "rs2".
        EXTRA adds mappings for this line only (a path on one host)."""
        m = PROMPT.match(line.strip())
        if m:
            host, command = self.hosts[m.group(1)], m.group(2)
        else:
            assert on, f"no prompt in {line!r}: say where it runs"
            host, command = on, line
        command = self.adapt(command, extra)
        if host == "director":
            env = {"PATH": f"{self.sbin}:/usr/sbin:/usr/bin:/sbin:/bin", "RVS_SOCKET": str(self.socket)}
            proc = rvslab.run(["bash", "-c", command], timeout=timeout, env=env)
        else:
            proc = rvslab.in_ns(host, ["bash", "-c", command], timeout=timeout)
        if check and proc.returncode != 0:
            raise AssertionError(f"seed line {line!r} ran as {command!r} on {host}: exit {proc.returncode}\n"
                                 f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
        return Typed(line, command, host, proc)

    def type_all(self, lines: list[str]) -> list[Typed]:
        return [self.type(line) for line in lines]


def _normalise(line: str) -> list[str]:
    # A markdown list number ("  1. ") in front of a printed line, a
    # U+2010 hyphen for ipvsadm's "->", the version line's table size.
    line = re.sub(r"^\s*\d+\.\s", "", line).replace("\u2010", "-")
    line = re.sub(r"\(size=\d+\)", "(size=N)", line)
    return line.split()


def same_listing(actual: str, seed_lines: list[str], op: Operator) -> None:
    """Assert rvsadm's listing ACTUAL says what the seed printed.

    Normalisations, each needed for a reason outside rvs:
    - the seed's addresses are mapped to the lab's; ipvsadm pads addresses
      to 28 columns, so the seed's spacing fits its own (longer) addresses:
      lines are compared word by word, and the exact ipvsadm layout of
      every line is checked separately (`ipvsadm_layout`);
    - `size=` is ipvsadm's connection hash size (4096), rvs's session
      capacity: the number is not compared;
    - seed 001 prints its listing as a numbered list with the spacing lost
      and "‐>" (U+2010): the numbering goes and the hyphen is read as "-".
    Counters (ActiveConn, InActConn) are compared as printed: the tests
    list only when the seed's counters hold (no connection in the table).
    """
    want = [_normalise(op.adapt(line)) for line in seed_lines if line.strip()]
    got = [_normalise(line) for line in actual.splitlines() if line.strip()]
    assert got == want, f"listing differs from the seed's\nseed (mapped):\n" + \
        "\n".join(" ".join(w) for w in want) + f"\nrvsadm:\n{actual}"
    ipvsadm_layout(actual)


def ipvsadm_layout(listing: str) -> None:
    """Every line of a `-L -n` listing is laid out with ipvsadm's printf
    formats (header lines, `%s  %s %s` services, `  -> %-28s %-7s %-6d
    %-10u %-10u` servers)."""
    services = rvslab.parse_services(listing)  # header lines exact, service lines "PROT  ADDR SCHED ..."
    servers = [line.rstrip() for line in listing.splitlines() if line.startswith("  -> ") and "RemoteAddress" not in line]
    assert servers == [rvslab.ipvsadm_server_line(rs) for s in services for rs in s.servers], listing


def connections_settled(socket: Path, timeout: float = 20) -> None:
    """Wait until the connection table is empty (so listings show the
    seed's zero counters). Persistence templates (state NONE, client port
    0) are listed too, as the kernel lists them, but are no connections."""
    def empty():
        conns = [c for c in rvslab.parse_connections(rvslab.rvsadm(socket, "-L", "-n", "-c").stdout)
                 if not (c.state == "NONE" and c.source.endswith(":0"))]
        assert not conns, conns
        return True
    rvslab.wait_until("an empty connection table", empty, timeout=timeout)


def bodies(typed: Typed) -> list[str]:
    """The pages a `curl` line (or loop of them) printed, one per request
    (the lab's pages are one line: "rs1", "rs2")."""
    return [line.strip() for line in typed.stdout.splitlines() if line.strip()]


def without_services(text: str) -> str:
    """A config TEXT with every [[service]] (and its real servers) removed:
    rvsd starts with an empty table, as the seeds' directors do."""
    out, skipping = [], False
    header = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
    for line in text.splitlines(keepends=True):
        m = header.match(line)
        if m:
            skipping = m.group(1) in ("service", "service.real_server")
        if not skipping:
            out.append(line)
    return "".join(out)


class VipHttp:
    """The seeds' httpd on a real server that holds the VIP (DR, TUN): a
    Python HTTP server on VIP:80 in rvs-NODE serving the lab's page ("rs1"),
    its access log in /run/rvs-lab/NODE/seed-VIP.log. stop() ends it by pid."""

    def __init__(self, node: str, vip: str):
        self.node, self.vip = node, vip
        self.log = rvslab.RUN / node / f"seed-{vip}.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                ["ip", "netns", "exec", f"rvs-{node}", "python3", "-u", "-m", "http.server", "80",
                 "--bind", vip, "--directory", str(rvslab.RUN / node)],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True)
        rvslab.wait_until(f"HTTP on {vip}:80 in rvs-{node}",
                          lambda: rvslab.in_ns(node, ["curl", "-s", "--max-time", "1", f"http://{vip}/"]).stdout.strip() == node,
                          timeout=10)
        self.mark()

    def mark(self) -> None:
        """Forget the requests logged so far (sources() returns newer ones)."""
        self.seen = len(self._all())

    def _all(self) -> list[str]:
        text = self.log.read_text(errors="replace")
        return re.findall(r"^(\d+\.\d+\.\d+\.\d+) - - \[", text, re.M)

    def sources(self) -> list[str]:
        """Client addresses of the requests since mark(), oldest first."""
        return self._all()[self.seen:]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
