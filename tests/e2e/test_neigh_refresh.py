"""Neighbour entries age like the kernel's: REACHABLE for 30 s after an
answer, then STALE (still forwarded by, asked again by broadcast ARP each
second), REACHABLE again when answered — with the new MAC if it changed —
or FAILED (no MAC) after three unanswered requests; a failed host is asked
again when traffic needs it. `rvsadm neigh show` prints the states as
`ip neigh` does.

Measured, not slept: every wait polls `rvsadm neigh show` against a
deadline of one refresh period plus the three requests and some slack."""

from __future__ import annotations

import re
import time

import rvslab

REFRESH = 30  # control/src/neigh.rs REACHABLE_TIME
DEADLINE = REFRESH + 3 + 7
RS1, RS2 = "10.77.0.11", "10.77.0.12"
NEW_MAC = "02:00:00:77:00:12"


def entries(lab) -> dict[str, tuple[str | None, str]]:
    """`rvsadm neigh show` as {address: (lladdr or None, STATE)}, checking
    every line has `ip neigh`'s shape."""
    out = {}
    for line in lab.rvsadm("neigh", "show").stdout.splitlines():
        m = re.fullmatch(r"(\S+) dev dpdk0(?: lladdr ([0-9a-f:]{17}))? (INCOMPLETE|REACHABLE|STALE|FAILED|PERMANENT)", line)
        assert m, f"not ip neigh's format: {line!r}"
        out[m.group(1)] = (m.group(2), m.group(3))
    return out


def kernel_mac(node: str) -> str:
    text = rvslab.in_ns(node, ["ip", "link", "show", "dev", "eth0"], check=True).stdout
    return re.search(r"link/ether ([0-9a-f:]{17})", text).group(1)


def test_a_changed_mac_is_followed_and_a_vanished_host_goes_stale_then_failed(lab):
    rs1_mac, rs2_mac = kernel_mac("rs1"), kernel_mac("rs2")
    rvslab.wait_until("both real servers resolved", lambda: entries(lab).get(RS1) == (rs1_mac, "REACHABLE")
                      and entries(lab).get(RS2) == (rs2_mac, "REACHABLE"), timeout=10)
    # rs2 gets a new MAC (it sends nothing about it: arp_notify is off);
    # rs1 vanishes (its cable pulled: the bridge port goes down).
    rvslab.in_ns("rs2", ["ip", "link", "set", "dev", "eth0", "address", NEW_MAC], check=True)
    rvslab.in_ns("sw", ["ip", "link", "set", "dev", "p-rs1", "down"], check=True)
    try:
        seen1: list[tuple[str | None, str]] = []

        def settled():
            e = entries(lab)
            if not seen1 or seen1[-1] != e.get(RS1):
                seen1.append(e.get(RS1))
            return e.get(RS2) == (NEW_MAC, "REACHABLE") and e.get(RS1) == (None, "FAILED")

        rvslab.wait_until("rs2 re-resolved to its new MAC and rs1 failed", settled, timeout=DEADLINE)
        # rs1 went REACHABLE → STALE (old MAC kept while asked) → FAILED.
        assert (rs1_mac, "STALE") in seen1 and seen1[-1] == (None, "FAILED"), seen1
        assert seen1.index((rs1_mac, "STALE")) < seen1.index((None, "FAILED")), seen1
    finally:
        rvslab.in_ns("sw", ["ip", "link", "set", "dev", "p-rs1", "up"], check=True)
    # Traffic reaches rs2 at its new MAC, and rs1, back, is found again by
    # the traffic that needs it.
    answers: set[str] = set()

    def both_answer():
        r = rvslab.client_curl(f"http://{rvslab.VIP}/", max_time=3)
        if r.returncode == 0:
            answers.add(r.stdout.strip())
        return answers >= {"rs1", "rs2"}

    rvslab.wait_until("both real servers answering through the VIP", both_answer, timeout=30)
    e = entries(lab)
    assert e[RS1] == (rs1_mac, "REACHABLE") and e[RS2] == (NEW_MAC, "REACHABLE"), e


def test_an_ipv6_neighbour_answering_its_refresh_stays_resolved(lab):
    """The client's neighbour solicitation teaches the appliance its MAC;
    30 s later control asks again and the advertisement that answers keeps
    the entry (never FAILED, never without its MAC)."""
    client6, client_mac = "fd77::10", kernel_mac("client")
    r = rvslab.in_ns("client", ["ping", "-6", "-c", "1", "-W", "2", "fd77::2"], timeout=10)
    assert r.returncode == 0, r.stdout + r.stderr
    rvslab.wait_until("the client's IPv6 address learned", lambda: entries(lab).get(client6) == (client_mac, "REACHABLE"), timeout=5)
    # Watch it through one refresh period and the three requests that
    # would fail it (the time must pass; the states are polled meanwhile).
    seen: list[tuple[str | None, str] | None] = []
    deadline = time.monotonic() + REFRESH + 5
    while time.monotonic() < deadline:
        e = entries(lab).get(client6)
        if not seen or seen[-1] != e:
            seen.append(e)
        time.sleep(0.2)
    assert all(s in ((client_mac, "REACHABLE"), (client_mac, "STALE")) for s in seen), seen
    assert entries(lab)[client6] == (client_mac, "REACHABLE"), seen


def test_states_reach_the_metrics(lab):
    text = rvslab.in_ns("lb", ["curl", "-s", "http://127.0.0.1:9477/metrics"], check=True).stdout
    for state in ("incomplete", "reachable", "stale", "failed"):
        assert re.search(rf'^rvs_neighbours\{{state="{state}"\}} \d+$', text, re.M), text
