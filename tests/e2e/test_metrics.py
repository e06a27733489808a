"""rvsd's /metrics as an operator's monitoring sees it: a real Prometheus
(Debian's package) scrapes rvsd in the lab while traffic flows, and its HTTP
API shows the connection rate and the per-server split; promtool accepts the
exposition; every metric the Grafana dashboard queries exists."""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.parse

import pytest

import rvslab
from rvslab import REPO, VIP

METRICS = "http://127.0.0.1:9477/metrics"
PROM = "http://127.0.0.1:9090"
DASHBOARD = REPO / "config" / "grafana" / "rvs-dashboard.json"


def scrape() -> str:
    p = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", METRICS], check=True)
    return p.stdout


def families(text: str) -> set[str]:
    return {m.group(1) for m in re.finditer(r"^# TYPE (\S+) ", text, re.M)}


@pytest.fixture(scope="module")
def prometheus(lab):
    cfg = lab.workdir / "prometheus.yml"
    cfg.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: rvsd\n    static_configs:\n"
        "      - targets: ['127.0.0.1:9477']\n")
    data = lab.workdir / "prometheus-data"
    log = open(lab.workdir / "prometheus.log", "wb")
    proc = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-lb", "prometheus", f"--config.file={cfg}",
         f"--storage.tsdb.path={data}", "--web.listen-address=127.0.0.1:9090"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        def up():
            assert proc.poll() is None, f"prometheus exited: {(lab.workdir / 'prometheus.log').read_text()[-2000:]}"
            r = query("up")
            assert r and r[0]["value"][1] == "1", r
            return True
        rvslab.wait_until("Prometheus scraping rvsd (up == 1)", up, timeout=60)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def query(q: str):
    url = f"{PROM}/api/v1/query?query={urllib.parse.quote(q)}"
    p = rvslab.in_ns("lb", ["curl", "-s", "--max-time", "5", url])
    if p.returncode != 0:
        return None
    body = json.loads(p.stdout)
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_promtool_accepts_the_exposition(lab):
    text = scrape()
    p = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
    assert p.returncode == 0 and not p.stdout.strip() and not p.stderr.strip(), p.stdout + p.stderr


def test_prometheus_sees_connection_rate_and_split(lab, prometheus):
    for _ in range(40):
        assert rvslab.client_curl(f"http://{VIP}/", max_time=5).returncode == 0
    def rate_positive():
        r = query('sum by (service) (rate(rvs_real_server_connections_total[20s]))')
        assert r, "no series yet"
        (svc,) = r
        assert svc["metric"]["service"] == f"TCP/{VIP}:80", svc
        assert float(svc["value"][1]) > 0, svc
        return True
    rvslab.wait_until("a connection rate > 0 in Prometheus", rate_positive, timeout=30)
    def split():
        r = query("rvs_real_server_connections_total")
        per = {s["metric"]["server"]: int(float(s["value"][1])) for s in r}
        assert sum(per.values()) >= 40, per
        return per
    per = rvslab.wait_until("40 connections counted", split, timeout=15)
    # Round robin on one worker: an even split.
    assert set(per) == {"10.77.0.11:80", "10.77.0.12:80"}, per
    assert abs(per["10.77.0.11:80"] - per["10.77.0.12:80"]) <= 1, per


def test_dashboard_queries_only_existing_metrics(lab):
    dash = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    assert exprs, "dashboard has no queries"
    used = {m for e in exprs for m in re.findall(r"\brvs_[a-z0-9_]+", e)}
    present = families(scrape())
    missing = used - present
    assert not missing, f"dashboard queries metrics rvsd does not expose: {missing}"
    titles = {p["title"] for p in dash["panels"]}
    for want in ("Connections per second by service", "Throughput", "Connections by real server",
                 "Drops by reason", "Worker busy ratio", "Session table fill"):
        assert want in titles, titles


def test_rvsadm_top_shows_live_rates(lab):
    """`rvsadm top` prints testpmd's port block and a worker table, with
    non-zero rates while traffic flows."""
    load = subprocess.Popen(
        ["ip", "netns", "exec", "rvs-client", "curl", "-s", "--limit-rate", "2M", "--max-time", "20",
         "-o", "/dev/null", f"http://{VIP}/big.bin"], stdin=subprocess.DEVNULL)
    try:
        out = lab.rvsadm("top", "--interval", "1", "--count", "2", timeout=20).stdout
    finally:
        load.kill()
        load.wait()
    assert "NIC statistics for port dpdk0" in out, out
    last_block = out.strip().split("NIC statistics for port")[-1]
    rx_pps = int(re.search(r"Rx-pps:\s+(\d+)", last_block).group(1))
    assert rx_pps > 100, f"no rate while a 2 MB/s download ran:\n{out}"
    rows = [l.split() for l in last_block.splitlines() if re.match(r"^\s+1\s+\d", l)]
    assert rows and int(rows[-1][1]) > 100, f"worker row shows no rx rate:\n{out}"
