//! The **loop** method (the headline figures): the real
//! [`dataplane::worker::Worker::run`], built as rvsd builds it, transmitting
//! into the net_ring queue it receives from, as testpmd's `--tx-first` loop
//! does; a cycle of sessions makes each output packet the next hop's valid
//! input. Rates per second of the worker's own CPU time; 1 and 2 workers, the
//! two-worker windows interleaved with one-worker windows for the scaling.

use crate::frame::{Kind, Template};
use crate::gen::{
    client_tuple, laddr_ip, laddr_of, rs, CLIENT_MAC, IF_ADDR, IF_MAC, LPORT, N_LADDR, VIP,
};
use crate::lab::{median, Lab, Running, Snap, WORKER_LCORES};
use crate::pause::{pause, resume};
use crate::table::{below, xorshift};
use crate::Res;
use crossbeam_channel::bounded;
use dataplane::addr::Addr;
use dataplane::dpdk::{LcoreId, MbufBatch, Mempool, Port, QueueId, TxQueue};
use dataplane::neigh::{NeighEntry, NeighMap};
use dataplane::pipeline::sync::InstallOutcome;
use dataplane::pipeline::{Pipeline, Verdict};
use dataplane::route::{NextHop, Route, RouteTable, Routes};
use dataplane::runtime;
use dataplane::sched::SchedKind;
use dataplane::session::{Endpoint, TcpState, Timeouts};
use dataplane::stats::DropReason;
use dataplane::sync_feed::{RecordKind, SyncRecord, SyncRing};
use dataplane::sync_policy::SyncPolicy;
use dataplane::tables::{Forward, Interface, RealServer, Service, Tables};
use dataplane::time::Millis;
use dataplane::wire::{ipv4, ipv6, tcp, udp};
use dataplane::worker::Idle;
use std::sync::Arc;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// The loop method: packets stay on the worker's CPU, as in testpmd's
// `--tx-first` loop.
//
// A worker's output is made valid input again: its service's one real
// server is the VIP itself, so an inbound packet client -> VIP leaves as
// local address -> VIP, which is the next client of the same service. The
// cycle of n sessions is installed in-process before launch (the pipeline is
// plain Rust) through the connection-sync path: session k's client is
// session k-1's local address, and the last local address is the first
// session's client. (A SYN cannot build it: a new flow from an address the
// appliance owns, a local address, is refused as `own_source` since the
// strict ingress checks; the same check is why the loop method measures no
// new connections, which the pause and stream methods do.) The worker
// transmits on a net_ring queue and receives from the same queue, so a packet
// goes round the cycle, one session lookup and rewrite per hop, until its TTL
// (255) runs out. The main lcore keeps LOOP_TOKENS packets in flight by
// injecting new ones on a second net_ring device the worker also polls: about
// one packet in 255.

/// Packets kept in flight per worker in the loop method.
const LOOP_TOKENS: u64 = 128;
/// TTL of loop packets: each is forwarded 254 times, then dropped (counted
/// as `ttl_exceeded`).
const LOOP_TTL: u8 = 255;
/// The service used only to scatter session slots before the cycle is built.
const SCRAMBLE_VIP: Endpoint = Endpoint::new([10, 77, 0, 101], 80);
/// In-process time of the cycle's creation (after the scatter sessions expired).
const BUILT_AT: Millis = Millis(61_000);
/// Lifetime of the cycle's sessions (seconds from [`BUILT_AT`]): longer than any run.
const CYCLE_TIMEOUT_S: u32 = 7 * 86_400;

/// The loop method's tables for frames of `kind`: the cycle's service (its
/// one real server is its own VIP) and the scatter service, in `kind`'s
/// family and protocol (the scatter service is TCP).
pub(crate) fn loop_tables(kind: Kind) -> Arc<Tables> {
    let rs0 = kind.endpoint(rs(0).0);
    let vip = kind.endpoint(VIP);
    let mut routes = Routes::default();
    if kind.v6() {
        // Every address of the plan is in fd77::/96 (see Kind::addr).
        routes.v6 = RouteTable::new([Route {
            prefix: kind.addr([0; 4]).octets(),
            len: 32,
            hop: NextHop::OnLink { port: 0 },
        }])
        .expect("one IPv6 route");
    }
    Arc::new(Tables {
        interfaces: (0..2)
            .map(|p| Interface {
                port: p,
                mac: IF_MAC,
                addr: IF_ADDR,
                prefix_len: 16,
                gateway: None,
                mtu: 1500,
            })
            .collect(),
        services: vec![
            Service {
                vip,
                proto: kind.proto(),
                sched: SchedKind::RoundRobin,
                laddrs: (0..N_LADDR as u16).collect(),
                servers: vec![RealServer {
                    addr: vip,
                    weight: 1,
                    index: 0,
                    ..Default::default()
                }],
                ..Default::default()
            },
            Service {
                vip: kind.endpoint(SCRAMBLE_VIP),
                proto: ipv4::PROTO_TCP,
                sched: SchedKind::RoundRobin,
                laddrs: (N_LADDR as u16..2 * N_LADDR as u16).collect(),
                servers: vec![RealServer {
                    addr: rs0,
                    weight: 1,
                    index: 1,
                    ..Default::default()
                }],
                ..Default::default()
            },
        ],
        laddrs: (0..N_LADDR)
            .map(laddr_ip)
            .chain((0..N_LADDR).map(|i| [10, 201, i as u8, 1]))
            .map(|a| kind.addr(a))
            .collect(),
        lport_range: LPORT,
        timeouts: Timeouts::default(),
        rs_count: 2,
        generation: 1,
        routes,
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: Default::default(),
    })
}

pub(crate) fn loop_neigh(kind: Kind) -> Arc<NeighMap> {
    let (r, mac) = rs(0);
    Arc::new(NeighMap::new(vec![
        NeighEntry {
            ip: kind.addr(VIP.ip.v4_bits()),
            mac: [0x02, 0, 0, 0, 0, 0x64],
            port: 0,
        },
        NeighEntry {
            ip: kind.addr(r.ip.v4_bits()),
            mac,
            port: 0,
        },
    ]))
}

/// Local address of the `k`-th session of a loop worker (one worker's
/// whole port range, addresses round robin, ports FIFO).
fn cycle_laddr(k: u32, kind: Kind) -> Endpoint {
    kind.endpoint(laddr_of(k, u32::from(LPORT.0), 1))
}

/// Client of session `k` of a cycle of `n`: the local address of the one before.
fn cycle_client(k: u32, n: u32, kind: Kind) -> Endpoint {
    cycle_laddr(if k == 0 { n - 1 } else { k - 1 }, kind)
}

/// Fills every slot with a session of the scatter service, then lets them
/// expire in random order: the free list is then a random permutation, so
/// the cycle's consecutive sessions sit in unrelated slots (as after churn)
/// rather than side by side.
pub(crate) fn scatter(p: &mut Pipeline, n: u32, seed: u64, kind: Kind) -> Res<()> {
    let tcp_kind = if kind.v6() { Kind::Tcp6 } else { Kind::Tcp4 };
    let syn = Template::of(tcp_kind, tcp::SYN, 0, 64);
    let ack = Template::of(tcp_kind, tcp::ACK, 10, 64);
    let (vip, mut f) = (kind.endpoint(SCRAMBLE_VIP), [0u8; 96]);
    for c in 0..n {
        syn.write(&mut f, CLIENT_MAC, kind.endpoint(client_tuple(c)), vip);
        let v = p.process(&mut f[..syn.len], 0, Millis(0));
        if v != (Verdict::Forward { port: 0 }) {
            return Err(format!("scatter: SYN {c}: {v:?}").into());
        }
    }
    let mut order: Vec<u32> = (0..n).collect();
    let mut x = seed | 1;
    for i in (1..order.len()).rev() {
        order.swap(i, below(xorshift(&mut x), i as u32 + 1) as usize);
    }
    for c in order {
        ack.write(&mut f, CLIENT_MAC, kind.endpoint(client_tuple(c)), vip);
        let v = p.process(&mut f[..ack.len], 0, BUILT_AT);
        if v != Verdict::Drop(DropReason::NoSession) {
            return Err(format!("scatter: expiry of {c}: {v:?}").into());
        }
    }
    if !p.sessions().is_empty() {
        return Err("scatter: sessions left".into());
    }
    Ok(())
}

/// Installs the cycle of `n` sessions (see above), then walks it once with
/// a frame of `kind` to check that it closes.
pub(crate) fn build_cycle(p: &mut Pipeline, n: u32, kind: Kind) -> Res<()> {
    let vip = kind.endpoint(VIP);
    let established = TcpState::ALL
        .iter()
        .position(|s| *s == TcpState::Established)
        .ok_or("no ESTABLISHED state")? as u8;
    for k in 0..n {
        let r = SyncRecord {
            kind: RecordKind::Conn,
            proto: kind.proto(),
            forward: Forward::FullNat,
            state: if kind.proto() == ipv4::PROTO_TCP {
                established
            } else {
                0
            },
            client: cycle_client(k, n, kind),
            vip,
            rs: vip,
            laddr: Some(cycle_laddr(k, kind)),
            timeout_s: CYCLE_TIMEOUT_S,
            client_addr: Default::default(),
            ext: Default::default(),
            // As every FULLNAT TCP connection has one (dataplane's
            // xmit/isn.rs): its sequence numbers move on each hop.
            isn_off: if kind.proto() == ipv4::PROTO_TCP {
                0x9e37_79b9
            } else {
                0
            },
        };
        let o = p.install_synced(&r, BUILT_AT);
        if o != InstallOutcome::Installed {
            return Err(format!("cycle: session {k}: {o:?}").into());
        }
    }
    if p.sessions().len() != n as usize {
        return Err(format!("cycle: {} sessions, wanted {n}", p.sessions().len()).into());
    }
    let t = Template::of(kind, tcp::ACK, kind.payload(), LOOP_TTL);
    let mut f = [0u8; 96];
    let mut client = cycle_client(0, n, kind);
    for k in 0..=n {
        t.write(&mut f, CLIENT_MAC, client, vip);
        let v = p.process(&mut f[..t.len], 0, BUILT_AT);
        if v != (Verdict::Forward { port: 0 }) {
            return Err(format!("cycle: hop {k}: {v:?}").into());
        }
        let (src, dst) = out_tuple(&f[..t.len], kind)?;
        if src != cycle_laddr(k % n, kind) || dst != vip {
            return Err(format!("cycle: hop {k} left as {src:?} -> {dst:?}").into());
        }
        client = src;
    }
    Ok(())
}

fn out_tuple(f: &[u8], kind: Kind) -> Res<(Endpoint, Endpoint)> {
    let e = |e: dataplane::wire::WireError| format!("{e:?}");
    let (src, dst, l4) = if kind.v6() {
        let ip = ipv6::Packet::new_checked(&f[14..]).map_err(e)?;
        (Addr::v6(ip.src()), Addr::v6(ip.dst()), &f[54..])
    } else {
        let ip = ipv4::Packet::new_checked(&f[14..]).map_err(e)?;
        let ihl = usize::from(f[14] & 0x0f) * 4;
        (Addr::v4(ip.src()), Addr::v4(ip.dst()), &f[14 + ihl..])
    };
    let (sp, dp) = if kind.proto() == ipv4::PROTO_TCP {
        let s = tcp::Packet::new_checked(l4).map_err(e)?;
        (s.src_port(), s.dst_port())
    } else {
        let s = udp::Packet::new_checked(l4).map_err(e)?;
        (s.src_port(), s.dst_port())
    };
    Ok((Endpoint::at(src, sp), Endpoint::at(dst, dp)))
}

/// Keeps a loop worker supplied with packets.
pub(crate) struct Injector {
    txq: TxQueue,
    loop_dev: usize,
    inj_dev: usize,
    pub(crate) pool: Arc<Mempool>,
    kind: Kind,
    n: u32,
    x: u64,
    frame: Template,
    batch: MbufBatch,
}

impl Injector {
    /// Tops the packets in this worker's two rings up to [`LOOP_TOKENS`].
    fn top_up(&mut self, rings: &[Port]) -> Res<()> {
        let (l, i) = (rings[self.loop_dev].stats()?, rings[self.inj_dev].stats()?);
        let queued = l.opackets.saturating_sub(l.ipackets) + i.opackets.saturating_sub(i.ipackets);
        let mut want = LOOP_TOKENS.saturating_sub(queued);
        let vip = self.kind.endpoint(VIP);
        while want > 0 {
            if !self.pool.alloc_fill(&mut self.batch) {
                return Err("loop: mbuf pool exhausted".into());
            }
            while self.batch.len() as u64 > want {
                drop(self.batch.pop());
            }
            want -= self.batch.len() as u64;
            for m in self.batch.iter_mut() {
                let k = below(xorshift(&mut self.x), self.n);
                if m.set_len(self.frame.len) {
                    let client = cycle_client(k, self.n, self.kind);
                    self.frame.write(m.data_mut(), CLIENT_MAC, client, vip);
                }
            }
            self.txq.tx_burst(&mut self.batch);
            self.batch.clear();
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Default)]
pub(crate) struct LoopRow {
    pub(crate) workers: usize,
    pub(crate) flows: u32,
    /// What the frames carry (`None` only in a default row).
    pub(crate) kind: Option<Kind>,
    /// Per worker: packets forwarded per second of its CPU time, median window.
    pub(crate) rate: Vec<f64>,
    /// Per worker: the best window.
    pub(crate) best: Vec<f64>,
    pub(crate) windows: usize,
    /// Per worker: TSC cycles per packet received, median window.
    pub(crate) cycles: Vec<f64>,
    /// With two workers, per worker: the median window in which it ran
    /// alone (the other one paused), interleaved with the windows above.
    pub(crate) alone: Vec<f64>,
    /// All workers: packets forwarded per wall-clock
    /// second, in the windows where all of them ran (the snapshot exchange
    /// at both ends of a window included).
    pub(crate) wall_rate: f64,
    pub(crate) ttl_drop_pct: f64,
    pub(crate) setup_s: f64,
}

impl LoopRow {
    pub(crate) fn total(&self) -> f64 {
        self.rate.iter().sum()
    }

    /// Two workers together against one alone, in the same run.
    pub(crate) fn scaling(&self) -> Option<f64> {
        let alone = self.alone.iter().sum::<f64>() / self.alone.len().max(1) as f64;
        (self.workers == 2 && alone > 0.0).then(|| self.total() / alone)
    }
}

impl Lab {
    /// Launches one loop worker per pipeline: worker `w` receives on
    /// `net_ring(2w)` queue 0 (its loop) and `net_ring(2w+1)` queue 0 (the
    /// injector's), and transmits on `net_ring(2w)` queue 0.
    pub(crate) fn start_loop(
        &mut self,
        pipes: Vec<Pipeline>,
        kind: Kind,
        n: u32,
    ) -> Res<(Vec<Running>, Vec<Injector>)> {
        self.seq += 1;
        let mut plans = Vec::new();
        let mut inj = Vec::new();
        for (wi, pipeline) in pipes.into_iter().enumerate() {
            let (ld, id, q0) = (2 * wi, 2 * wi + 1, QueueId(0));
            plans.push(runtime::WorkerPlan {
                lcore: LcoreId(WORKER_LCORES[wi]),
                rx: vec![self.rings[ld].rx_queue(q0)?, self.rings[id].rx_queue(q0)?],
                tx: vec![
                    self.rings[ld].tx_queue(q0)?,
                    self.null.tx_queue(QueueId(wi as u16))?,
                ],
                port_ids: vec![self.rings[ld].id(), self.rings[id].id()],
                tap_rx: Vec::new(),
                tap_tx: Vec::new(),
                pipeline,
                on_start: None,
            });
            inj.push(Injector {
                txq: self.rings[id].tx_queue(q0)?,
                loop_dev: ld,
                inj_dev: id,
                pool: Arc::clone(&self.small),
                kind,
                n,
                x: 0x2545_f491_4f6c_dd1d ^ wi as u64,
                frame: Template::of(kind, tcp::ACK, kind.payload(), LOOP_TTL),
                batch: MbufBatch::new(),
            });
        }
        let running = Running::launch(
            &self.eal,
            runtime::Plan {
                workers: plans,
                pool: Arc::clone(&self.small),
                idle: Idle::Busy,
                rs_count: 2,
                ring_prefix: format!("rvsb_{}", self.seq),
                ring_size: 4096,
            },
        )?;
        Ok((running, inj))
    }
}

/// Top-ups for a while (the main lcore mostly sleeps).
pub(crate) fn loop_ticks(lab: &Lab, inj: &mut [Injector], d: Duration) -> Res<()> {
    let end = Instant::now() + d;
    loop {
        for i in inj.iter_mut() {
            i.top_up(&lab.rings)?;
        }
        if Instant::now() >= end {
            return Ok(());
        }
        std::thread::sleep(Duration::from_micros(300));
    }
}

/// Every worker's counters, published on request while the injection goes on.
pub(crate) fn loop_snap(lab: &Lab, running: &[Running], inj: &mut [Injector]) -> Res<Vec<Snap>> {
    let mut acks = Vec::new();
    for w in running {
        let (tx, rx) = bounded(1);
        w.ask_publish(tx)?;
        acks.push(rx);
    }
    let mut out: Vec<Option<Snap>> = vec![None; running.len()];
    let start = Instant::now();
    while out.iter().any(Option::is_none) {
        for (i, a) in acks.iter().enumerate() {
            if out[i].is_none() && a.try_recv().is_ok() {
                out[i] = Some(running[i].read()?);
            }
        }
        if start.elapsed() > Duration::from_secs(2) {
            return Err("loop: a worker did not publish".into());
        }
        loop_ticks(lab, inj, Duration::ZERO)?;
        std::thread::sleep(Duration::from_micros(20));
    }
    Ok(out.into_iter().flatten().collect())
}

/// The loop method with `workers` workers, each with its own cycle of `n`
/// sessions of `kind`.
pub(crate) fn loop_run(
    lab: &mut Lab,
    workers: usize,
    n: u32,
    capacity: u32,
    kind: Kind,
    wall: Duration,
) -> Res<LoopRow> {
    loop_run_fed(lab, workers, n, capacity, kind, wall, false)
}

/// [`loop_run`], with the connection-sync feed on when `sync`: each worker
/// runs the sync policy on every inbound packet and pushes a session into
/// its ring (rvsd's size) on the kernel's thresholds (the 3rd packet, then
/// every 50th), and a thread drains the rings every 10 ms, as rvsd's
/// control loop does; it prints what was pushed and refused.
pub(crate) fn loop_run_fed(
    lab: &mut Lab,
    workers: usize,
    n: u32,
    capacity: u32,
    kind: Kind,
    wall: Duration,
    sync: bool,
) -> Res<LoopRow> {
    let t = Instant::now();
    let (tables, neigh) = (loop_tables(kind), loop_neigh(kind));
    let mut pipes = Vec::new();
    let mut rings = Vec::new();
    for w in 0..workers {
        let seed = 0x0b5e_55ed ^ (w as u64) << 40 ^ u64::from(n);
        // Built as worker 0 of 1: each worker's cycle uses its own whole
        // port range and never leaves it (see BENCHMARKS.md).
        // In a table of `capacity` slots if that is more, the cycle
        // scattered over all of them.
        let cap = n.max(capacity);
        let mut p = Pipeline::new(Arc::clone(&tables), Arc::clone(&neigh), cap, seed, 0, 1);
        scatter(&mut p, cap, seed, kind)?;
        build_cycle(&mut p, n, kind)?;
        if sync {
            let ring = Arc::new(SyncRing::new(rvs_control::sync::engine::RING_SLOTS));
            p.set_sync_feed(Some((Arc::clone(&ring), SyncPolicy::default())));
            rings.push(ring);
        }
        pipes.push(p);
    }
    let setup_s = t.elapsed().as_secs_f64();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (result, drained) = std::thread::scope(|sc| {
        let drain = sc.spawn(|| {
            let mut popped = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Acquire) {
                for r in &rings {
                    while r.pop().is_some() {
                        popped += 1;
                    }
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            popped
        });
        let result = (|| -> Res<LoopRow> {
            let (running, mut inj) = lab.start_loop(pipes, kind, n)?;
            let result = loop_inner(lab, &running, &mut inj, n, wall);
            drop(inj);
            lab.stop(running)?;
            result
        })();
        stop.store(true, std::sync::atomic::Ordering::Release);
        (result, drain.join().unwrap_or(0))
    });
    if sync {
        let refused: u64 = rings.iter().map(|r| r.dropped()).sum();
        println!("  sync feed: {drained} records drained, {refused} refused (ring full)");
    }
    result.map(|r| LoopRow {
        workers,
        flows: n,
        kind: Some(kind),
        setup_s,
        ..r
    })
}

/// Measurement windows per loop case: the figures are the median window
/// (the machine is shared; the best window is printed too).
const LOOP_WINDOWS: u32 = 5;

fn loop_inner(
    lab: &Lab,
    running: &[Running],
    inj: &mut [Injector],
    n: u32,
    wall: Duration,
) -> Res<LoopRow> {
    let hz = lab.tsc_hz as f64;
    let work_of = |s: &Snap| s.tx;
    // Warm-up: every session of the cycle visited a few times (bounded).
    let warm = (3.0 * f64::from(n) / 15e6).clamp(0.3, 3.0);
    loop_ticks(lab, inj, Duration::from_secs_f64(warm))?;
    let first = loop_snap(lab, running, inj)?;
    // With two workers, each round has three windows: both running, then
    // each alone while the other is paused, so the scaling compares figures
    // taken minutes apart on a shared machine no more.
    let kinds: Vec<Option<usize>> = if running.len() == 2 {
        vec![None, Some(0), Some(1)]
    } else {
        vec![None]
    };
    let win = (wall / (LOOP_WINDOWS * kinds.len() as u32)).max(Duration::from_millis(150));
    let mut together: Vec<Vec<(f64, f64)>> = vec![Vec::new(); running.len()];
    let mut alone: Vec<Vec<f64>> = vec![Vec::new(); running.len()];
    // Work and wall-clock seconds of the windows with every worker running.
    let (mut wall_work, mut wall_s) = (0u64, 0f64);
    for _ in 0..LOOP_WINDOWS {
        for kind in &kinds {
            let (lo, hi) = kind.map_or((0, running.len()), |w| (w, w + 1));
            let paused = match kind {
                Some(w) => pause(&running[1 - w..2 - w])?,
                None => Vec::new(),
            };
            let a = loop_snap(lab, &running[lo..hi], &mut inj[lo..hi])?;
            let tw = Instant::now();
            while tw.elapsed() < win {
                loop_ticks(lab, &mut inj[lo..hi], Duration::from_millis(5))?;
            }
            let b = loop_snap(lab, &running[lo..hi], &mut inj[lo..hi])?;
            if kind.is_none() {
                wall_s += tw.elapsed().as_secs_f64();
                wall_work += b
                    .iter()
                    .zip(&a)
                    .map(|(b, a)| work_of(b) - work_of(a))
                    .sum::<u64>();
            }
            resume(paused)?;
            for (k, (b, a)) in b.iter().zip(&a).enumerate() {
                let cpu_s = (b.cpu_ns - a.cpu_ns) as f64 / 1e9;
                let work = work_of(b) - work_of(a);
                let per = b.rx - a.rx;
                let (rate, cycles) = (work as f64 / cpu_s, cpu_s * hz / per.max(1) as f64);
                match kind {
                    None => together[lo + k].push((rate, cycles)),
                    Some(_) => alone[lo + k].push(rate),
                }
            }
        }
    }
    let last = loop_snap(lab, running, inj)?;
    let ttl_at = DropReason::TtlExceeded as usize;
    let (mut ttl, mut rx_all) = (0u64, 0u64);
    for (w, (a, b)) in last.iter().zip(&first).enumerate() {
        let mut other = *a;
        other.drops[ttl_at] = b.drops[ttl_at];
        if let Some(d) = other.dropped_since(b) {
            return Err(format!("loop: worker {w} dropped: {d}").into());
        }
        ttl += a.drops[ttl_at] - b.drops[ttl_at];
        rx_all += a.rx - b.rx;
    }
    Ok(LoopRow {
        rate: together
            .iter()
            .map(|v| median(v.iter().map(|x| x.0).collect()))
            .collect(),
        best: together
            .iter()
            .map(|v| v.iter().map(|x| x.0).fold(0.0, f64::max))
            .collect(),
        cycles: together
            .iter()
            .map(|v| median(v.iter().map(|x| x.1).collect()))
            .collect(),
        alone: if running.len() == 2 {
            alone.into_iter().map(median).collect()
        } else {
            Vec::new()
        },
        windows: together.first().map_or(0, Vec::len),
        wall_rate: wall_work as f64 / wall_s.max(1e-9),
        ttl_drop_pct: 100.0 * ttl as f64 / rx_all.max(1) as f64,
        ..LoopRow::default()
    })
}
