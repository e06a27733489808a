//! `rvs-bench`: the data-path benchmark of issue #3, run by `scripts/bench`.
//!
//! Not a test: it prints figures, and fails (exit 1) only when a run is
//! broken (a device or worker misbehaves, a packet the generator meant to hit
//! a session is dropped). Missing a target is never a failure. What each
//! figure means is written down in BENCHMARKS.md. One module per method:
//! [`table`] (the session table in-process, no DPDK), [`cycle`] (the loop
//! method, the headline figures), [`stream`], [`pause`] and [`scrape`]; the
//! frames come from [`gen`], the DPDK devices and workers from [`lab`], the
//! summary from [`report`].

mod cycle;
mod frame;
mod gen;
mod lab;
mod pause;
mod procfs;
mod report;
mod scrape;
mod stream;
mod table;

type Res<T> = Result<T, Box<dyn std::error::Error>>;

use crate::cycle::loop_run;
use crate::frame::Kind;
use crate::gen::{neigh, port_capacity, self_check, tables, Traffic};
use crate::lab::{Lab, RING_DEVS, WORKER_LCORES};
use crate::pause::{pause_run, PauseRow};
use crate::procfs::rss_bytes;
use crate::report::{human, list, print_report, Report};
use crate::scrape::scrape_run;
use crate::stream::{stream, stream_ceiling};
use crate::table::table_bench;
use clap::Parser;
use dataplane::pipeline::Pipeline;
use std::process::ExitCode;
use std::time::Duration;

// ---------------------------------------------------------------------------
// Command line, orchestration, report.

/// The data-path benchmark of issue #3 (run by scripts/bench): the session
/// table in-process, then the DPDK part (EAL with --no-huge --no-pci, lcores
/// 0@0,1@1,2@0, net_null0 and net_ring0..15); prints a summary with the
/// targets of issue #3 (see BENCHMARKS.md).
#[derive(Debug, Parser)]
#[command(name = "rvs-bench")]
struct Opts {
    /// testpmd's rate on net_ring (Mpps), printed beside rvs's for reference.
    #[arg(long, value_name = "MPPS")]
    testpmd_ring: Option<f64>,
    /// testpmd's rate on net_null (Mpps), printed beside rvs's.
    #[arg(long, value_name = "MPPS")]
    testpmd_null: Option<f64>,
    /// What the loop method's frames carry, each measured at every
    /// --loop-flows count (one worker; two only for tcp4).
    #[arg(
        long,
        value_name = "KIND,..",
        value_enum,
        value_delimiter = ',',
        default_value = "tcp4"
    )]
    kinds: Vec<Kind>,
    /// Session counts of the one-worker loop method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000,10000000")]
    loop_flows: ::std::vec::Vec<u32>,
    /// Session counts of the two-worker loop method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000")]
    loop2_flows: ::std::vec::Vec<u32>,
    /// Flow counts of the stream method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,100000")]
    stream_flows: ::std::vec::Vec<u32>,
    /// Flow counts of the pause method.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000")]
    pause_flows: ::std::vec::Vec<u32>,
    /// Session-table sizes of the in-process part.
    #[arg(long, value_name = "N,..", value_parser = parse_list, default_value = "1000,1000000,10000000,16777216")]
    table_sizes: ::std::vec::Vec<u32>,
    /// Seconds per measuring window.
    #[arg(long, value_name = "S", default_value_t = 2.0)]
    secs: f64,
    /// Session-table capacity of the loop runs, when larger than their
    /// session count (0: the session count). A deployed worker's table has
    /// its configured capacity (`session_capacity`, 1 M by default) however
    /// few sessions are live.
    #[arg(long, value_name = "N", default_value_t = 0)]
    loop_capacity: u32,
    /// Session table size of the new-connection runs (pause method).
    #[arg(long, value_name = "N", default_value_t = 4_000_000)]
    syn_capacity: u32,
    /// DPDK file prefix (must start with rvs-bench).
    #[arg(long = "file-prefix", value_name = "P", default_value = "rvs-bench")]
    prefix: String,
    /// Skip the session-table part.
    #[arg(long)]
    skip_table: bool,
    /// Skip everything that needs DPDK.
    #[arg(long)]
    skip_dpdk: bool,
    /// Skip the stream method.
    #[arg(long)]
    skip_stream: bool,
    /// Skip the pause method.
    #[arg(long)]
    skip_pause: bool,
    /// Skip the loop method.
    #[arg(long)]
    skip_loop: bool,
    /// Total seconds of the scrape scenario (issue #8; none without it).
    #[arg(long, value_name = "SECS")]
    scrape: Option<f64>,
    /// Sessions of the scrape scenario.
    #[arg(long, value_name = "N", default_value_t = 1_000_000)]
    scrape_flows: u32,
}

/// A comma-separated list of counts (empty: none).
fn parse_list(v: &str) -> Result<Vec<u32>, String> {
    v.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| s.trim().parse::<u32>().map_err(|e| format!("{s:?}: {e}")))
        .collect()
}

/// The flags' ranges, which clap does not check.
fn check_args(o: &Opts) -> Res<()> {
    if !o.prefix.starts_with("rvs-bench") {
        return Err("--file-prefix must start with rvs-bench".into());
    }
    let one = port_capacity(1);
    if let Some(n) = o
        .loop_flows
        .iter()
        .chain(&o.loop2_flows)
        .chain(&o.stream_flows)
        .find(|n| **n < 2 || **n > one)
    {
        return Err(format!("{n} flows: must be 2..={one} (local ports of one worker)").into());
    }
    if let Some(n) = o
        .pause_flows
        .iter()
        .find(|n| **n == 0 || **n > port_capacity(2))
    {
        return Err(format!(
            "--pause-flows {n}: must be 1..={} (local ports of a worker of two)",
            port_capacity(2)
        )
        .into());
    }
    if o.loop_capacity > port_capacity(1) {
        return Err(format!(
            "--loop-capacity must be at most {} (local ports of one worker)",
            port_capacity(1)
        )
        .into());
    }
    if o.syn_capacity < 1000 || o.syn_capacity > port_capacity(2) {
        return Err(format!("--syn-capacity must be 1000..={}", port_capacity(2)).into());
    }
    if o.secs.is_nan() || o.secs <= 0.0 {
        return Err("--secs must be positive".into());
    }
    Ok(())
}

fn run(o: &Opts) -> Res<Report> {
    let mut rep = Report {
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
        ..Report::default()
    };
    self_check()?;
    println!(
        "self-check: generated frames have valid checksums and hit the sessions predicted for them"
    );
    if !o.skip_table {
        let before = rss_bytes()?;
        let p = Pipeline::new(tables(1), neigh(), 1, 1, 0, 1);
        rep.fixed_pipeline_bytes = rss_bytes()?.saturating_sub(before);
        drop(p);
        for &n in &o.table_sizes {
            let r = table_bench(n, 2_000_000)?;
            println!(
                "table {:>6}: {:6.1} B/session by size, {:6.1} by RSS; insert {:6.1} ns; lookup {:5.1} ns independent, {:6.1} ns dependent; memory {:6.1} ns",
                human(n),
                r.sized_bytes,
                r.rss_bytes,
                r.insert_ns,
                r.lookup_ns,
                r.lookup_dep_ns,
                r.mem_ns
            );
            rep.table.push(r);
        }
    }
    if o.skip_dpdk {
        return Ok(rep);
    }
    let mut lab = Lab::new(&o.prefix)?;
    rep.tsc_hz = lab.tsc_hz;
    println!(
        "EAL up: TSC {:.3} GHz, net_ring0..{} + net_null0",
        lab.tsc_hz as f64 / 1e9,
        RING_DEVS - 1
    );
    let wall = Duration::from_secs_f64(o.secs);
    let loop_flows: &[u32] = if o.skip_loop { &[] } else { &o.loop_flows };
    for &n in loop_flows {
        for &kind in &o.kinds {
            // Two workers: TCP/IPv4 only (the scaling does not depend on the frames).
            let max_workers = if kind == Kind::Tcp4 && o.loop2_flows.contains(&n) {
                WORKER_LCORES.len()
            } else {
                1
            };
            for workers in 1..=max_workers {
                let r = loop_run(&mut lab, workers, n, o.loop_capacity, kind, wall)?;
                println!(
                    "loop {workers} worker(s), {}, {} sessions{}: per worker {} Mpps of CPU time (best {}{}), {} cycles; all {:.2} Mpps wall; {:.2}% TTL drops; {} windows; setup {:.1} s",
                    kind.name(),
                    human(n),
                    if o.loop_capacity > n { format!(" (table of {})", human(o.loop_capacity)) } else { String::new() },
                    list(&r.rate, 1e6, 2),
                    list(&r.best, 1e6, 2),
                    if r.alone.iter().all(|a| *a <= 0.0) { String::new() } else { format!("; alone {}", list(&r.alone, 1e6, 2)) },
                    list(&r.cycles, 1.0, 0),
                    r.wall_rate / 1e6,
                    r.ttl_drop_pct,
                    r.windows,
                    r.setup_s
                );
                rep.loops.push(r);
            }
        }
    }
    if let Some(total) = o.scrape {
        let r = scrape_run(&mut lab, o.scrape_flows, Duration::from_secs_f64(total))?;
        let pct = |a: f64, b: f64| 100.0 * (a - b) / b.max(1e-9);
        println!(
            "scrape, 1 worker, {} sessions: no scrape {:.3} Mpps of CPU time ({:.3} wall); scrape every 1 s {:.3} Mpps of CPU time ({:.3} wall); difference {:+.2}% ({:+.2}% wall); {} + {} windows of {:.1} s, {} scrapes of {:.0} KiB, {:.2} ms each on the main lcore",
            human(o.scrape_flows),
            r.none_cpu / 1e6,
            r.none_wall / 1e6,
            r.scraped_cpu / 1e6,
            r.scraped_wall / 1e6,
            pct(r.scraped_cpu, r.none_cpu),
            pct(r.scraped_wall, r.none_wall),
            r.windows,
            r.windows,
            r.window_s,
            r.scrapes,
            r.bytes as f64 / 1024.0 / r.scrapes.max(1) as f64,
            r.serve_ms
        );
        println!(
            "scrape windows (Mpps of CPU time, none / scraped): {}",
            r.pairs
                .iter()
                .map(|(a, b)| format!("{:.3}/{:.3}", a / 1e6, b / 1e6))
                .collect::<Vec<_>>()
                .join(" ")
        );
    }
    if !o.skip_stream {
        let c = stream_ceiling(&mut lab, wall)?;
        println!(
            "stream ceiling (frames dropped at L2): {:.2} Mpps, {:.1} pkts/poll, {:.1}% empty polls; generator alone {:.1} Mpps",
            c.mpps,
            c.per_poll,
            c.empty_pct,
            c.gen_alone / 1e6
        );
        rep.ceiling = Some(c);
        for &n in &o.stream_flows {
            let r = stream(&mut lab, n, wall)?;
            println!(
                "stream {:>5} flows: {:6.2} Mpps, {:6.1} cycles/pkt, {:4.1} pkts/poll, {:4.1}% empty polls; SYN phase {:.2} M conn/s, {:.0} cycles/conn",
                human(n),
                r.mpps,
                r.cycles,
                r.per_poll,
                r.empty_pct,
                r.syn_rate / 1e6,
                r.syn_cycles
            );
            rep.stream.push(r);
        }
    }
    if !o.skip_pause {
        let mut cases: Vec<(u32, Traffic, u32)> = o
            .pause_flows
            .iter()
            .map(|&n| (n, Traffic::Established, n))
            .collect();
        cases.push((0, Traffic::Syn, o.syn_capacity));
        for (flows, traffic, capacity) in cases {
            for workers in 1..=WORKER_LCORES.len() {
                let r = pause_run(&mut lab, workers, flows, traffic, capacity, wall)?;
                let (what, unit) = if traffic == Traffic::Syn {
                    ("new connections".to_string(), "M conn/s")
                } else {
                    (format!("{} flows/worker", human(flows)), "Mpps")
                };
                println!(
                    "pause {workers} worker(s), {what}: per worker {} {unit}{}; cycles {}; {} windows ({} dry), {:.2} s measured per worker",
                    list(&r.rate, 1e6, 2),
                    if r.alone.is_empty() { String::new() } else { format!(" (alone {})", list(&r.alone, 1e6, 2)) },
                    list(&r.cycles, 1.0, 0),
                    r.windows,
                    r.dry,
                    r.measured_s
                );
                rep.pause.push(PauseRow { flows, ..r });
            }
        }
    }
    Ok(rep)
}

fn main() -> ExitCode {
    // Usage errors exit with 2 (clap's code), as range errors below.
    let opts = Opts::parse();
    if let Err(e) = check_args(&opts) {
        eprintln!("rvs-bench: {e}");
        return ExitCode::from(2);
    }
    match run(&opts) {
        Ok(rep) => {
            print_report(&opts, &rep);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rvs-bench: broken run: {e}");
            ExitCode::FAILURE
        }
    }
}
