//! The summary rvs-bench prints at the end: every method's rows side by side
//! and the targets of the issues, each `met` or `NOT met` (a missed target
//! is a figure, never a failure).

use crate::cycle::LoopRow;
use crate::frame::Kind;
use crate::gen::Traffic;
use crate::pause::PauseRow;
use crate::procfs::cpu_model;
use crate::stream::StreamRow;
use crate::table::TableRow;
use crate::Opts;

pub(crate) fn human(n: u32) -> String {
    match n {
        n if n >= 1 << 20 && n.is_power_of_two() => format!("2^{}", n.trailing_zeros()),
        n if n >= 1_000_000 && n % 1_000_000 == 0 => format!("{}M", n / 1_000_000),
        n if n >= 1_000 && n % 1_000 == 0 => format!("{}K", n / 1_000),
        n => n.to_string(),
    }
}

pub(crate) fn list(v: &[f64], scale: f64, prec: usize) -> String {
    v.iter()
        .map(|x| format!("{:.*}", prec, x / scale))
        .collect::<Vec<_>>()
        .join(" + ")
}

#[derive(Default)]
pub(crate) struct Report {
    pub(crate) cpus: usize,
    pub(crate) table: Vec<TableRow>,
    pub(crate) fixed_pipeline_bytes: u64,
    pub(crate) loops: Vec<LoopRow>,
    pub(crate) ceiling: Option<StreamRow>,
    pub(crate) stream: Vec<StreamRow>,
    pub(crate) pause: Vec<PauseRow>,
    pub(crate) tsc_hz: u64,
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT met"
    }
}

pub(crate) fn print_report(o: &Opts, rep: &Report) {
    let ghz = if rep.tsc_hz > 0 {
        rep.tsc_hz as f64 / 1e9
    } else {
        2.1
    };
    let tp = |x: Option<f64>| x.map_or_else(|| "n/a".to_string(), |v| format!("{v:.1} Mpps"));
    println!();
    println!("==================== rvs-bench summary ====================");
    println!(
        "machine: {}, {} CPUs, TSC {ghz:.2} GHz; cycles below are TSC cycles",
        cpu_model(),
        rep.cpus
    );
    println!("frames: TCP/IPv4 64 bytes (Ethernet + IPv4 + TCP + 10 B data; SYNs 60 B) unless a row says otherwise; UDP/IPv4 64 B");
    println!("(22 B data), TCP/IPv6 and UDP/IPv6 84 B (IPv6 addresses in fd77::/96); the stream and pause methods send TCP/IPv4.");
    println!();
    println!(
        "I/O ceiling, dpdk-testpmd macswap, 1 forwarding core, per second of its CPU time: net_ring loop (--tx-first) {}; net_null {}",
        tp(o.testpmd_ring),
        tp(o.testpmd_null)
    );
    if !rep.loops.is_empty() {
        println!();
        println!("rvs FULLNAT, loop method (packets stay on the worker's CPU, net_ring loop as testpmd's; rate per second of worker CPU;");
        println!("scaling: both workers' sum against one worker alone, in windows interleaved in the same run):");
        println!(
            "  {:<34} | {:>2} | {:>18} | {:>13} | {:>11} | {:>14} | {:>7} | {:>9}",
            "case",
            "w",
            "per worker, median",
            "best window",
            "cycles",
            "all, wall",
            "scaling",
            "x testpmd"
        );
        for r in &rep.loops {
            let kind = r.kind.unwrap_or(Kind::Tcp4);
            let case = format!("{}, {} sessions/worker", kind.name(), human(r.flows));
            let scaling = r
                .scaling()
                .map_or_else(|| "-".into(), |s| format!("{s:.2}x"));
            let x = match (r.workers, o.testpmd_ring) {
                (1, Some(t)) => format!("{:.2}", r.total() / 1e6 / t),
                _ => "-".into(),
            };
            println!(
                "  {:<34} | {:>2} | {:>18} | {:>13} | {:>11} | {:>14} | {:>7} | {:>9}",
                case,
                r.workers,
                format!("{} Mpps", list(&r.rate, 1e6, 2)),
                list(&r.best, 1e6, 2),
                list(&r.cycles, 1.0, 0),
                format!("{:.2} Mpps", r.wall_rate / 1e6),
                scaling,
                x
            );
        }
    }
    if let Some(c) = &rep.ceiling {
        println!();
        println!("Generator-fed (stream method: generator on CPU 0 -> net_ring -> 1 worker on CPU 1 -> net_null):");
        println!(
            "  harness ceiling (worker drops every frame after the Ethernet header): {:.2} Mpps, {:.1} pkts/poll; generator alone {:.1} Mpps",
            c.mpps,
            c.per_poll,
            c.gen_alone / 1e6
        );
        println!("  (cycles/pkt is the worker's CPU time per packet, idle polling included: a cost only when pkts/poll is near 32)");
        println!(
            "  {:>6} | {:>8} | {:>10} | {:>9} | {:>11} | {:>12} | {:>11}",
            "flows", "Mpps", "cycles/pkt", "pkts/poll", "empty polls", "new conn/s", "cycles/conn"
        );
        for r in &rep.stream {
            let syn = if r.flows >= 100_000 {
                format!("{:.2} M", r.syn_rate / 1e6)
            } else {
                "-".into()
            };
            let sync = if r.flows >= 100_000 {
                format!("{:.0}", r.syn_cycles)
            } else {
                "-".into()
            };
            println!(
                "  {:>6} | {:>8.2} | {:>10.1} | {:>9.1} | {:>10.1}% | {:>12} | {:>11}",
                human(r.flows),
                r.mpps,
                r.cycles,
                r.per_poll,
                r.empty_pct,
                syn,
                sync
            );
        }
    }
    if !rep.pause.is_empty() {
        println!();
        println!("Pause method (rvs's own 2-worker flow ownership; 128 queues pre-filled per worker, packets cold in cache):");
        println!(
            "  {:<26} | {:>2} | {:>20} | {:>11} | {:>16} | {:>7}",
            "case", "w", "per worker", "cycles", "total", "scaling"
        );
        for r in &rep.pause {
            let (case, unit) = if r.traffic == Some(Traffic::Syn) {
                ("new connections".to_string(), "M/s")
            } else {
                (format!("established, {} flows", human(r.flows)), "Mpps")
            };
            let scaling = r
                .scaling()
                .map_or_else(|| "-".into(), |s| format!("{s:.2}x"));
            println!(
                "  {:<26} | {:>2} | {:>20} | {:>11} | {:>16} | {:>7}",
                case,
                r.workers,
                format!("{} {unit}", list(&r.rate, 1e6, 2)),
                list(&r.cycles, 1.0, 0),
                format!("{:.2} {unit}", r.total() / 1e6),
                scaling
            );
        }
    }
    if !rep.table.is_empty() {
        println!();
        println!("Session table alone (in-process, no DPDK; a worker's pipeline adds {:.1} MiB fixed, mostly 256 local-port pools):", rep.fixed_pipeline_bytes as f64 / 1048576.0);
        println!(
            "  {:>8} | {:>9} | {:>10} | {:>9} | {:>9} | {:>9} | {:>12} | {:>10}",
            "sessions",
            "B/session",
            "B/sess RSS",
            "total MiB",
            "insert ns",
            "lookup ns",
            "dependent ns",
            "memory ns"
        );
        for r in &rep.table {
            let rss = if r.rss_bytes >= 1.0 {
                format!("{:.1}", r.rss_bytes)
            } else {
                "-".into()
            };
            println!(
                "  {:>8} | {:>9.1} | {:>10} | {:>9.1} | {:>9.1} | {:>9.1} | {:>12.1} | {:>10.1}",
                human(r.n),
                r.sized_bytes,
                rss,
                r.sized_bytes * f64::from(r.n) / 1048576.0,
                r.insert_ns,
                r.lookup_ns,
                r.lookup_dep_ns,
                r.mem_ns
            );
        }
        println!("  (lookup: independent random keys; dependent: each key depends on the last result; memory: a dependent random");
        println!("   read in a buffer of the table's size, this machine's floor for one cache miss there)");
    }
    println!();
    println!("Targets (issue #3):");
    let est1: Vec<&LoopRow> = rep
        .loops
        .iter()
        .filter(|r| r.kind == Some(Kind::Tcp4) && r.workers == 1)
        .collect();
    if !est1.is_empty() {
        let budget = 140.0 * ghz / 2.1;
        for r in &est1 {
            println!(
                "  established >= 15 Mpps/worker (<= {budget:.0} cycles/pkt), {} sessions: {:.2} Mpps (best window {:.2}), {:.0} cycles/pkt -> {} (x{:.2} of target)",
                human(r.flows),
                r.total() / 1e6,
                r.best.iter().sum::<f64>() / 1e6,
                r.cycles[0],
                verdict(r.total() >= 15e6),
                r.total() / 15e6
            );
        }
        if let (Some(t), Some(r)) = (o.testpmd_ring, est1.first()) {
            println!(
                "  >= 0.5x testpmd macswap on the same net_ring loop ({t:.1} Mpps), {} sessions: {:.2}x -> {}",
                human(r.flows),
                r.total() / 1e6 / t,
                verdict(r.total() / 1e6 >= 0.5 * t)
            );
        }
    }
    if let Some(r) = rep
        .pause
        .iter()
        .find(|r| r.traffic == Some(Traffic::Syn) && r.workers == 1)
    {
        println!(
            "  >= 1 M new connections/s per worker (pause method): {:.2} M/s ({:.0} cycles each) -> {}",
            r.total() / 1e6,
            r.cycles[0],
            verdict(r.total() >= 1e6)
        );
    }
    if let Some(t) = rep
        .table
        .iter()
        .filter(|r| r.n >= 10_000_000)
        .min_by_key(|r| r.n)
    {
        let gib = t.sized_bytes * f64::from(t.n) / f64::from(1u32 << 30);
        println!(
            "  >= 10 M sessions in <= 2 GiB: {} sessions take {gib:.2} GiB -> {}",
            human(t.n),
            verdict(gib <= 2.0)
        );
        if let Some(k) = rep.table.first() {
            println!(
                "  lookup at {} within 1.3x of {}: {:.2}x (independent lookups), {:.2}x (dependent chain) -> {}",
                human(t.n),
                human(k.n),
                t.lookup_ns / k.lookup_ns,
                t.lookup_dep_ns / k.lookup_dep_ns,
                verdict(t.lookup_ns <= 1.3 * k.lookup_ns)
            );
        }
    }
    if let (Some(a), Some(b)) = (est1.first(), est1.iter().rfind(|r| r.flows >= 10_000_000)) {
        println!(
            "     end to end (loop, cycles/pkt at {} vs {} sessions): {:.2}x",
            human(b.flows),
            human(a.flows),
            b.cycles[0] / a.cycles[0]
        );
    }
    for (what, s) in scalings(rep) {
        println!(
            "  two workers >= 1.8x one ({what}): {s:.2}x -> {}",
            verdict(s >= 1.8)
        );
    }
    issue18_targets(o, rep);
}

/// Two workers against one, each run that measured it: (what, scaling).
fn scalings(rep: &Report) -> Vec<(String, f64)> {
    let loops = rep.loops.iter().filter_map(|r| {
        r.scaling()
            .map(|s| (format!("loop, established, {}", human(r.flows)), s))
    });
    let pauses = rep.pause.iter().filter_map(|r| {
        let what = if r.traffic == Some(Traffic::Syn) {
            "pause, new connections".to_string()
        } else {
            format!("pause, established, {}", human(r.flows))
        };
        r.scaling().map(|s| (what, s))
    });
    loops.chain(pauses).collect()
}

/// Issue #18's targets: the established path's cycles at 1 K sessions
/// (and against testpmd), 10 M against 1 K, the 10 M table's size, new
/// connections per worker, two workers against one, and the frame kinds
/// ([`kind_targets`]).
fn issue18_targets(o: &Opts, rep: &Report) {
    println!("Targets (issue #18):");
    let tcp1: Vec<&LoopRow> = rep
        .loops
        .iter()
        .filter(|r| r.kind == Some(Kind::Tcp4) && r.workers == 1)
        .collect();
    if let Some(k) = tcp1.iter().find(|r| r.flows == 1000) {
        println!(
            "  established TCP/IPv4 at 1K sessions <= 110 cycles/pkt (loop, median): {:.0} -> {}",
            k.cycles[0],
            verdict(k.cycles[0] <= 110.0)
        );
        if let Some(t) = o.testpmd_ring {
            let x = k.total() / 1e6 / t;
            println!(
                "  >= 0.4x testpmd macswap on the same net_ring loop ({t:.1} Mpps), 1K sessions: {x:.2}x -> {}",
                verdict(x >= 0.4)
            );
        }
        if let Some(b) = tcp1.iter().find(|r| r.flows >= 10_000_000) {
            let x = b.cycles[0] / k.cycles[0];
            println!(
                "  {} sessions <= 1.5x the 1K cost: {:.0} vs {:.0} cycles, {x:.2}x -> {}",
                human(b.flows),
                b.cycles[0],
                k.cycles[0],
                verdict(x <= 1.5)
            );
        }
    }
    if let Some(t) = rep.table.iter().find(|r| r.n == 10_000_000) {
        let gib = t.sized_bytes * f64::from(t.n) / f64::from(1u32 << 30);
        println!(
            "  10M sessions in <= 1.25 GiB: {gib:.2} GiB -> {}",
            verdict(gib <= 1.25)
        );
    }
    if let Some(r) = rep
        .pause
        .iter()
        .find(|r| r.traffic == Some(Traffic::Syn) && r.workers == 1)
    {
        println!(
            "  >= 3 M new connections/s per worker (pause method): {:.2} M/s ({:.0} cycles each) -> {}",
            r.total() / 1e6,
            r.cycles[0],
            verdict(r.total() >= 3e6)
        );
    }
    for (what, s) in scalings(rep) {
        println!(
            "  two workers >= 1.9x one ({what}): {s:.2}x -> {}",
            verdict(s >= 1.9)
        );
    }
    kind_targets(rep);
}

/// Issue #18: UDP within 10 % of TCP, IPv6 within 20 % (cycles per packet
/// of the loop method, one worker, the same session count).
fn kind_targets(rep: &Report) {
    let one = |kind: Kind, n: u32| {
        rep.loops
            .iter()
            .find(|r| r.workers == 1 && r.flows == n && r.kind == Some(kind))
    };
    let mut header = false;
    for tcp in rep
        .loops
        .iter()
        .filter(|r| r.workers == 1 && r.kind == Some(Kind::Tcp4))
    {
        for (kind, within) in [(Kind::Udp4, 0.10), (Kind::Tcp6, 0.20), (Kind::Udp6, 0.20)] {
            let Some(r) = one(kind, tcp.flows) else {
                continue;
            };
            if !header {
                println!(
                    "  (loop method, cycles per packet against TCP/IPv4 at the same session count)"
                );
                header = true;
            }
            let ratio = r.cycles[0] / tcp.cycles[0];
            println!(
                "  {} within {:.0}% of TCP/IPv4, {} sessions: {:.0} vs {:.0} cycles, {:+.1}% -> {}",
                kind.name(),
                within * 100.0,
                human(tcp.flows),
                r.cycles[0],
                tcp.cycles[0],
                (ratio - 1.0) * 100.0,
                verdict(ratio <= 1.0 + within)
            );
        }
    }
}
