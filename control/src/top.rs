//! The live view in testpmd's style (`rvsadm top`, and rvsd's periodic
//! print): per-port and per-worker packet and bit rates and drops, computed
//! from two successive counter readings.

use std::fmt::Write;

use crate::api::{PortStatsView, WorkerStatsView};

/// Counters at one moment.
#[derive(Debug, Clone, Default)]
pub struct Reading {
    /// Ports.
    pub ports: Vec<PortStatsView>,
    /// Workers.
    pub workers: Vec<WorkerStatsView>,
}

fn per_sec(now: u64, before: u64, secs: f64) -> u64 {
    if secs <= 0.0 {
        return 0;
    }
    (now.saturating_sub(before) as f64 / secs).round() as u64
}

fn drops(w: &WorkerStatsView) -> u64 {
    w.drops.iter().map(|(_, n)| n).sum()
}

/// The block testpmd prints with `show port stats all`, plus a worker table.
#[must_use]
pub fn render(now: &Reading, before: &Reading, secs: f64) -> String {
    let mut out = String::new();
    for p in &now.ports {
        let b = before
            .ports
            .iter()
            .find(|x| x.name == p.name)
            .cloned()
            .unwrap_or_else(|| PortStatsView { ..p.clone() });
        let _ = writeln!(
            out,
            "  ######################## NIC statistics for port {:<8} ########################",
            p.name
        );
        let _ = writeln!(
            out,
            "  RX-packets: {:<14} RX-missed: {:<14} RX-bytes:  {}",
            p.rx_packets, p.rx_missed, p.rx_bytes
        );
        let kernel = p
            .rx_kernel_dropped
            .map_or_else(String::new, |n| format!("   RX-kernel-dropped: {n}"));
        let _ = writeln!(out, "  RX-errors: {}{kernel}", p.rx_errors);
        let _ = writeln!(
            out,
            "  TX-packets: {:<14} TX-errors: {:<14} TX-bytes:  {}",
            p.tx_packets, p.tx_errors, p.tx_bytes
        );
        let _ = writeln!(out);
        let _ = writeln!(out, "  Throughput (since last show)");
        let _ = writeln!(
            out,
            "  Rx-pps: {:>12}          Rx-bps: {:>12}",
            per_sec(p.rx_packets, b.rx_packets, secs),
            per_sec(p.rx_bytes * 8, b.rx_bytes * 8, secs)
        );
        let _ = writeln!(
            out,
            "  Tx-pps: {:>12}          Tx-bps: {:>12}",
            per_sec(p.tx_packets, b.tx_packets, secs),
            per_sec(p.tx_bytes * 8, b.tx_bytes * 8, secs)
        );
        let _ = writeln!(
            out,
            "  ############################################################################"
        );
    }
    let _ = writeln!(out, "  worker   rx-pps     tx-pps     rx-bps       tx-bps       drops/s  redirect/s  sessions  busy");
    for w in &now.workers {
        let b = before.workers.iter().find(|x| x.lcore == w.lcore);
        let g = |f: fn(&WorkerStatsView) -> u64| per_sec(f(w), b.map_or(0, f), secs);
        let polls = g(|x| x.polls);
        let empty = g(|x| x.empty_polls);
        let busy = if polls == 0 {
            0.0
        } else {
            100.0 * (1.0 - empty as f64 / polls as f64)
        };
        let _ = writeln!(
            out,
            "  {:<8} {:<10} {:<10} {:<12} {:<12} {:<8} {:<11} {:<9} {:.1}%",
            w.lcore,
            g(|x| x.rx_packets),
            g(|x| x.tx_packets),
            g(|x| x.rx_bytes * 8),
            g(|x| x.tx_bytes * 8),
            g(drops),
            g(|x| x.redirected_out),
            w.sessions,
            busy
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn worker(rx: u64, polls: u64, empty: u64) -> WorkerStatsView {
        WorkerStatsView {
            lcore: 1,
            rx_packets: rx,
            tx_packets: rx,
            rx_bytes: rx * 100,
            tx_bytes: rx * 100,
            sessions: 3,
            sessions_created: 0,
            sessions_expired: 0,
            redirected_out: 0,
            redirected_in: 0,
            generation: 1,
            polls,
            empty_polls: empty,
            drops: vec![("no_session".into(), rx / 10)],
            guard_on: false,
            guard: Vec::new(),
            events: Vec::new(),
            frags: Vec::new(),
            synproxy: Vec::new(),
        }
    }

    #[test]
    fn rates_from_two_readings() {
        let port = |n: u64| PortStatsView {
            name: "dpdk0".into(),
            rx_packets: n,
            tx_packets: n,
            rx_bytes: n * 64,
            tx_bytes: n * 64,
            rx_missed: 0,
            rx_kernel_dropped: None,
            rx_errors: 0,
            tx_errors: 0,
        };
        let before = Reading {
            ports: vec![port(1000)],
            workers: vec![worker(1000, 100, 50)],
        };
        let now = Reading {
            ports: vec![port(3000)],
            workers: vec![worker(3000, 300, 100)],
        };
        let text = render(&now, &before, 2.0);
        assert!(text.contains("NIC statistics for port dpdk0"), "{text}");
        assert!(
            text.contains("Rx-pps:         1000          Rx-bps:       512000"),
            "{text}"
        );
        let row = text.lines().last().unwrap();
        let cols: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cols,
            ["1", "1000", "1000", "800000", "800000", "100", "0", "3", "75.0%"],
            "{row}"
        );
    }
}
