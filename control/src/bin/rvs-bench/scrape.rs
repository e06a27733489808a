//! The **scrape** method (`--scrape SECS`, issue #8): the loop method's one
//! worker on an established cycle, run in alternating windows with and
//! without a Prometheus-style scraper: a thread that sends `GET /metrics` over
//! HTTP every second to a listener on the main lcore, which answers as rvsd's
//! metrics server does (a `Publish` request to the worker and a wait for it,
//! the worker's counters, every port's ethdev stats and xstats, the
//! `prometheus` text encoding of `rvs_control::metrics`). Prints the median
//! per-CPU-second and wall-clock rates of both kinds of window.

use crate::cycle::{
    build_cycle, loop_neigh, loop_snap, loop_tables, loop_ticks, scatter, Injector,
};
use crate::frame::Kind;
use crate::lab::{median, Lab, Running};
use crate::Res;
use crossbeam_channel::{bounded, Receiver};
use dataplane::pipeline::Pipeline;
use dataplane::stats::DropReason;
use rvs_control::metrics;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The scrape method: forwarding with and without GET /metrics every second.

/// Scrape-method figures.
#[derive(Debug, Default)]
pub(crate) struct ScrapeRow {
    /// Median rates (packets forwarded per second of the worker's CPU time,
    /// and per wall-clock second) of the windows without scraping.
    pub(crate) none_cpu: f64,
    pub(crate) none_wall: f64,
    /// The same with a scrape every second.
    pub(crate) scraped_cpu: f64,
    pub(crate) scraped_wall: f64,
    /// Windows of each kind, and their length.
    pub(crate) windows: usize,
    pub(crate) window_s: f64,
    /// Per round: (no scrape, scraped) rate per CPU second.
    pub(crate) pairs: Vec<(f64, f64)>,
    /// Scrapes answered, body bytes in all, mean time to answer one.
    pub(crate) scrapes: u64,
    pub(crate) bytes: u64,
    pub(crate) serve_ms: f64,
}

/// Answers one `GET /metrics` as rvsd's metrics server does: ask every
/// worker to publish and wait, read its counters and every port's ethdev
/// stats and xstats, encode with `rvs_control::metrics`, reply over HTTP.
/// Returns the body's length.
fn serve_scrape(
    lab: &Lab,
    running: &[Running],
    inj: &mut [Injector],
    stream: std::net::TcpStream,
) -> Res<usize> {
    use std::io::{BufRead, BufReader, Write};
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let mut header = String::new();
    while reader.read_line(&mut header).is_ok_and(|n| n > 2) {
        header.clear();
    }
    // The publish round trip goes on while the injection does (as in rvsd,
    // where the workers keep forwarding while control waits for them).
    let snaps = loop_snap(lab, running, inj)?;
    let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
    let workers = running
        .iter()
        .zip(&snaps)
        .map(|(w, s)| {
            let sh = &w.shared;
            metrics::WorkerSample {
                lcore: w.lcore,
                rx_packets: s.rx,
                tx_packets: s.tx,
                rx_bytes: l(&sh.rx_bytes),
                tx_bytes: l(&sh.tx_bytes),
                drops: DropReason::ALL
                    .iter()
                    .map(|r| (r.name(), s.drops[*r as usize]))
                    .collect(),
                redirected_out: s.redirected,
                redirected_in: l(&sh.redirected_in),
                polls: s.polls,
                empty_polls: s.empty,
                sessions: l(&sh.sessions),
                session_capacity: 0,
                sessions_created: s.created,
                sessions_expired: l(&sh.sessions_expired),
                generation: l(&sh.generation),
                guard_on: false,
                guard: Vec::new(),
            }
        })
        .collect();
    let mut ports = Vec::new();
    for (i, p) in lab
        .rings
        .iter()
        .chain(std::iter::once(&lab.null))
        .enumerate()
    {
        let st = p.stats()?;
        ports.push(metrics::PortSample {
            name: format!("port{i}"),
            basic: [
                st.ipackets,
                st.opackets,
                st.ibytes,
                st.obytes,
                st.imissed,
                st.ierrors,
                st.oerrors,
                st.rx_nombuf,
            ],
            link_up: p.link_up(),
            xstats: p.xstats()?,
        });
    }
    let body = metrics::render(&metrics::Snapshot {
        workers,
        ports,
        generation: 1,
        last_reload_ok: true,
        ..metrics::Snapshot::default()
    })?;
    let mut w = stream;
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    w.write_all(head.as_bytes())?;
    w.write_all(body.as_bytes())?;
    Ok(body.len())
}

/// A Prometheus stand-in: `GET /metrics` every second until told to stop;
/// fails on any answer but a 200 with a body.
fn scraper(addr: std::net::SocketAddr, stop: Receiver<()>) -> Result<u64, String> {
    scrape_loop(addr, stop).map_err(|e| e.to_string())
}

fn scrape_loop(addr: std::net::SocketAddr, stop: Receiver<()>) -> Res<u64> {
    use std::io::{Read, Write};
    let mut n = 0;
    loop {
        let t = Instant::now();
        let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        s.set_read_timeout(Some(Duration::from_secs(5)))?;
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nAccept: text/plain\r\n\r\n")?;
        let mut answer = String::new();
        s.read_to_string(&mut answer)?;
        if !answer.starts_with("HTTP/1.1 200 OK") || !answer.contains("rvs_worker_rx_packets_total")
        {
            return Err(
                format!("bad scrape answer: {}", answer.lines().next().unwrap_or("")).into(),
            );
        }
        n += 1;
        match stop.recv_timeout(Duration::from_secs(1).saturating_sub(t.elapsed())) {
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => {}
            _ => return Ok(n),
        }
    }
}

/// The scrape method over `total` seconds: rounds of one window without
/// and one with scraping (in that order, then swapped, so drift on the
/// shared machine falls on both alike).
pub(crate) fn scrape_run(lab: &mut Lab, n: u32, total: Duration) -> Res<ScrapeRow> {
    let kind = Kind::Tcp4;
    let (tables, neigh) = (loop_tables(kind), loop_neigh(kind));
    let seed = 0x5c4a_9e00 ^ u64::from(n);
    let mut p = Pipeline::new(Arc::clone(&tables), Arc::clone(&neigh), n, seed, 0, 1);
    scatter(&mut p, n, seed, kind)?;
    build_cycle(&mut p, n, kind)?;
    let (running, mut inj) = lab.start_loop(vec![p], kind, n)?;
    let result = scrape_inner(lab, &running, &mut inj, n, total);
    drop(inj);
    lab.stop(running)?;
    result
}

fn scrape_inner(
    lab: &Lab,
    running: &[Running],
    inj: &mut [Injector],
    n: u32,
    total: Duration,
) -> Res<ScrapeRow> {
    const ROUNDS: u32 = 6;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let addr = listener.local_addr()?;
    let window = (total / (2 * ROUNDS)).max(Duration::from_secs(3));
    loop_ticks(
        lab,
        inj,
        Duration::from_secs_f64((3.0 * f64::from(n) / 15e6).clamp(0.3, 3.0)),
    )?;
    let first = loop_snap(lab, running, inj)?;
    let mut row = ScrapeRow {
        window_s: window.as_secs_f64(),
        ..ScrapeRow::default()
    };
    let mut none: Vec<(f64, f64)> = Vec::new();
    let mut scraped: Vec<(f64, f64)> = Vec::new();
    let mut serve_s = 0.0;
    for round in 0..ROUNDS {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        let mut pair = (0.0, 0.0);
        for scrape in order {
            let job = scrape.then(|| {
                let (tx, rx) = bounded::<()>(1);
                (tx, std::thread::spawn(move || scraper(addr, rx)))
            });
            let a = loop_snap(lab, running, inj)?;
            let tw = Instant::now();
            while tw.elapsed() < window {
                loop_ticks(lab, inj, Duration::from_millis(5))?;
                while let Ok((stream, _)) = listener.accept() {
                    let t = Instant::now();
                    row.bytes += serve_scrape(lab, running, inj, stream)? as u64;
                    serve_s += t.elapsed().as_secs_f64();
                    row.scrapes += 1;
                }
            }
            let b = loop_snap(lab, running, inj)?;
            let wall = tw.elapsed().as_secs_f64();
            if let Some((tx, handle)) = job {
                let _ = tx.send(());
                // The scraper may be waiting for an answer: keep serving until it is done.
                while !handle.is_finished() {
                    while let Ok((stream, _)) = listener.accept() {
                        row.bytes += serve_scrape(lab, running, inj, stream)? as u64;
                        row.scrapes += 1;
                    }
                    loop_ticks(lab, inj, Duration::from_millis(5))?;
                }
                handle
                    .join()
                    .map_err(|_| "scraper panicked")?
                    .map_err(|e| format!("scraper: {e}"))?;
            }
            let (a, b) = (&a[0], &b[0]);
            let cpu_s = (b.cpu_ns - a.cpu_ns) as f64 / 1e9;
            let rates = ((b.tx - a.tx) as f64 / cpu_s, (b.tx - a.tx) as f64 / wall);
            if scrape {
                scraped.push(rates);
                pair.1 = rates.0;
            } else {
                none.push(rates);
                pair.0 = rates.0;
            }
        }
        row.pairs.push(pair);
    }
    let last = loop_snap(lab, running, inj)?;
    let ttl_at = DropReason::TtlExceeded as usize;
    let mut other = last[0];
    other.drops[ttl_at] = first[0].drops[ttl_at];
    if let Some(d) = other.dropped_since(&first[0]) {
        return Err(format!("scrape: the worker dropped: {d}").into());
    }
    if row.scrapes == 0 {
        return Err("scrape: no scrape was answered".into());
    }
    row.windows = none.len();
    row.none_cpu = median(none.iter().map(|r| r.0).collect());
    row.none_wall = median(none.iter().map(|r| r.1).collect());
    row.scraped_cpu = median(scraped.iter().map(|r| r.0).collect());
    row.scraped_wall = median(scraped.iter().map(|r| r.1).collect());
    row.serve_ms = 1e3 * serve_s / row.scrapes as f64;
    Ok(row)
}
