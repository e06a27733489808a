"""The command line of issue #17, item by item, against ipvsadm 1.31: each
case is typed as an operator types it, and its exit code and error text
must be ipvsadm's.

Every expected text is given with the C format ipvsadm (or libipvs, or
popt) prints it with; `test_expected_texts_follow_their_c_formats` checks
that each text is an instance of its format, and
`tests/e2e/check_ipvsadm_texts.sh IPVSADM_SRC_DIR` checks that every
format is in ipvsadm 1.31's source (`ipvsadm.c`, `libipvs/libipvs.c`;
popt's texts are popt's), as `control/tests/golden/check-against-c.sh`
cross-checks the listing goldens.

Refusals of the command line itself need no daemon (`nolab`: rvsadm stops
before it connects); what ipvsadm leaves to the kernel ("Service already
exists", exit 255) and what the listing shows after a change run against
the lab.
"""

from __future__ import annotations

import re
import subprocess

import pytest

import rvslab
from rvslab import VIP

SVC = f"{VIP}:80"
NEW = f"{VIP}:90"
TRY = "Try `rvsadm -h' or 'rvsadm --help' for more information."

# (arguments, exit code, stderr, the C format it is printed with)
PARSE_CASES = [
    # Repeated or conflicting options are refused, not last-one-wins.
    (f"-A -t {NEW} -s rr -s wrr", 2, "multiple 'scheduler' options specified", "multiple '%s' options specified"),
    (f"-A -t {NEW} -u {NEW}", 2, "multiple 'service-address' options specified", "multiple '%s' options specified"),
    (f"-a -t {SVC} -r 10.77.0.13 -m -g", 2, "multiple 'forwarding-method' options specified", "multiple '%s' options specified"),
    (f"-a -t {SVC} -r 10.77.0.13 -r 10.77.0.14", 2, "multiple 'real-server' options specified", "multiple '%s' options specified"),
    ("-L -L", 2, "multiple commands specified", "multiple commands specified"),
    # Options that do not belong to the command.
    (f"-C -t {SVC}", 2, "Illegal 'service-address' option with the 'flush' command", "Illegal '%s' option with the '%s' command"),
    (f"-S -t {SVC}", 2, "Illegal 'service-address' option with the 'save' command", "Illegal '%s' option with the '%s' command"),
    (f"-D -t {SVC} -s rr", 2, "Illegal 'scheduler' option with the 'delete-service' command", "Illegal '%s' option with the '%s' command"),
    (f"-a -t {SVC}", 2, "You need to supply the 'real-server' option for the 'add-server' command", "You need to supply the '%s' option for the '%s' command"),
    (f"-L -c -t {SVC}", 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command", "The option '%s' conflicts with the '%s' option in the '%s' command"),
    ("-L -c --stats", 2, "options conflicts in the list command", "options conflicts in the list command"),
    # Not a command first: popt's "Try ..." of ipvsadm, exit 255.
    (f"-c -t {SVC}", 255, TRY, "Try `%s -h' or '%s --help' for more information.\\n"),
    (f"-t {SVC} -A", 255, TRY, "Try `%s -h' or '%s --help' for more information.\\n"),
    # Ranges: -p as the kernel's, --set, -w, -x.
    (f"-A -t {NEW} -p 0", 2, "invalid timeout value `0' specified", "invalid timeout value `%s' specified"),
    (f"-A -t {NEW} -p 2678401", 2, "invalid timeout value `2678401' specified", "invalid timeout value `%s' specified"),
    ("--set 900 120", 2, "--set option requires 3 timeout values", "--set option requires 3 timeout values"),
    ("--set 900 120 4294967295", 2, "invalid timeout value `4294967295' specified", "invalid timeout value `%s' specified"),
    (f"-a -t {SVC} -r 10.77.0.13 -w 65536", 2, "illegal weight specified", "illegal weight specified"),
    (f"-a -t {SVC} -r 10.77.0.13 -w -1", 2, "illegal weight specified", "illegal weight specified"),
    (f"-a -t {SVC} -r 10.77.0.13 -x -1", 2, "illegal u_threshold specified", "illegal u_threshold specified"),
    (f"-a -t {SVC} -r 10.77.0.13 -y 2147483648", 2, "illegal l_threshold specified", "illegal l_threshold specified"),
    # Names that do not resolve, numbers that are not addresses.
    ("-A -t 10.77.0.300:80", 2, "illegal virtual server address[:port] specified", "illegal virtual server address[:port] specified"),
    (f"-a -t {SVC} -r 10.77.0.13:nosuchservice", 2, "illegal real server address[:port] specified", "illegal real server address[:port] specified"),
    # popt's own errors, exit 255.
    ("-A -t", 255, "-t: missing argument", "%s: %s\\n"),
    ("-L --bogus", 255, "--bogus: unknown option", "%s: %s\\n"),
]


def c_format_regex(fmt: str) -> str:
    fmt = fmt.replace("\\n", "")
    parts = re.split(r"(%s|%d|%u)", fmt)
    return "".join(r".+" if p in ("%s", "%d", "%u") else re.escape(p) for p in parts)


@pytest.mark.nolab
def test_expected_texts_follow_their_c_formats():
    for args, _, text, fmt in PARSE_CASES:
        assert re.fullmatch(c_format_regex(fmt), text), (args, text, fmt)


def run(*args: str, socket: str = "/nonexistent/rvsd.sock") -> subprocess.CompletedProcess:
    return subprocess.run([str(rvslab.RVSADM), *args], capture_output=True, text=True, timeout=10,
                          env={"RVS_SOCKET": socket, "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})


@pytest.mark.nolab
@pytest.mark.parametrize("args,code,text,fmt", PARSE_CASES, ids=[c[0] for c in PARSE_CASES])
def test_the_command_line_is_refused_as_ipvsadm_refuses_it(args, code, text, fmt):
    # No daemon at that socket: a refusal of the command line comes first.
    p = run(*args.split())
    assert (p.returncode, p.stderr, p.stdout) == (code, text + "\n", ""), p


def rules(lab) -> str:
    return lab.rvsadm("-S", "-n", check=True).stdout


# What the kernel refuses: libipvs's ipvs_strerror texts, exit 255.
KERNEL_CASES = [
    (f"-A -t {SVC} -s rr", "Service already exists"),
    (f"-A -t {NEW} -s nosuch", "Scheduler or persistence engine not found"),
    (f"-E -t {NEW} -s rr", "No such service"),
    (f"-D -t {NEW}", "No such service"),
    (f"-a -t {NEW} -r 10.77.0.11", "Service not defined"),
    (f"-a -t {SVC} -r 10.77.0.11:80 --fullnat", "Destination already exists"),
    (f"-e -t {SVC} -r 10.77.0.13:80", "No such destination"),
    (f"-d -t {SVC} -r 10.77.0.13:80", "No such destination"),
]


def test_the_kernels_refusals_are_libipvs_texts_and_change_nothing(lab):
    before = rules(lab)
    for args, text in KERNEL_CASES:
        p = lab.rvsadm(*args.split(), check=False)
        assert (p.returncode, p.stderr) == (255, text + "\n"), (args, p)
        assert rules(lab) == before, args


def test_defaults_as_ipvsadm_sets_them(lab):
    try:
        # -p alone is 360 s; -M without -p is accepted (and means nothing).
        lab.rvsadm("-A", "-t", NEW, "-s", "rr", "-p", check=True)
        assert f"-A -t {NEW} -s rr -p 360\n" in rules(lab)
        lab.rvsadm("-E", "-t", NEW, "-s", "rr", "-M", "255.255.255.0", check=True)
        assert f"-A -t {NEW} -s rr\n" in rules(lab), "-E takes the whole definition: no -p, no persistence"
        # No forwarding method: -g (the port follows the service's).
        lab.rvsadm("-a", "-t", NEW, "-r", "10.77.0.11", "-w", "3", "-x", "10", "-y", "5", check=True)
        assert f"-a -t {NEW} -r 10.77.0.11:90 -g -w 3 -x 10 -y 5\n" in rules(lab)
        # -e without -w: weight 1, thresholds 0, as ipvsadm sends them.
        lab.rvsadm("-e", "-t", NEW, "-r", "10.77.0.11", check=True)
        assert f"-a -t {NEW} -r 10.77.0.11:90 -g -w 1\n" in rules(lab)
        # Names: -t host:service, -r host:service.
        lab.rvsadm("-A", "-t", "localhost:http", "-s", "rr", check=True)
        assert "-A -t 127.0.0.1:80 -s rr\n" in rules(lab)
        lab.rvsadm("-a", "-t", "localhost:www", "-r", "10.77.0.11:http", "-m", check=True)
        assert "-a -t 127.0.0.1:80 -r 10.77.0.11:80 -m -w 1\n" in rules(lab)
    finally:
        lab.rvsadm("-D", "-t", NEW, check=False)
        lab.rvsadm("-D", "-t", "127.0.0.1:80", check=False)
