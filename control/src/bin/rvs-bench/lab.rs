//! The DPDK side shared by every method: EAL and its devices (net_null0,
//! net_ring0..15), workers launched through the data plane's runtime as
//! rvsd launches them, their published counters, and the feeders that
//! generate into a worker's RX queues.

use crate::gen::{neigh, owned_clients, tables, Gen, Traffic, N_RS};
use crate::procfs::{cpu_ns, thread_id};
use crate::Res;
use crossbeam_channel::{bounded, Receiver, Sender};
use dataplane::dpdk::{
    rdtsc, Eal, LcoreId, MbufBatch, Mempool, Port, PortConfig, QueueId, TxQueue,
};
use dataplane::pipeline::Pipeline;
use dataplane::runtime;
use dataplane::stats::DropReason;
use dataplane::worker::{Event, Idle, Request, Retired, WorkerShared};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// RX queues per worker in the pause method (8 net_ring devices x 16 queues).
pub(crate) const PAUSE_QUEUES: usize = 128;
/// Packets a net_ring queue holds (its ring has 1024 slots).
pub(crate) const RING_SLOTS: usize = 1023;
/// Queues per net_ring device.
const RING_QUEUES: usize = 16;
/// net_ring devices (16 x 16 queues = 2 workers x 128).
pub(crate) const RING_DEVS: usize = 16;
/// Worker lcores (lcore 1 runs on CPU 1, lcore 2 on CPU 0; see EAL args).
pub(crate) const WORKER_LCORES: [u32; 2] = [1, 2];

// ---------------------------------------------------------------------------
// DPDK: devices, workers, generator.

/// Everything the DPDK part shares between experiments.
pub(crate) struct Lab {
    pub(crate) eal: Eal,
    pub(crate) rings: Vec<Port>,
    pub(crate) null: Port,
    pub(crate) small: Arc<Mempool>,
    big: Arc<Mempool>,
    pub(crate) tsc_hz: u64,
    pub(crate) seq: u32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct Snap {
    pub(crate) rx: u64,
    pub(crate) tx: u64,
    pub(crate) drops: [u64; DropReason::COUNT],
    pub(crate) created: u64,
    pub(crate) polls: u64,
    pub(crate) empty: u64,
    pub(crate) redirected: u64,
    pub(crate) cpu_ns: u64,
    pub(crate) tsc: u64,
}

impl Snap {
    pub(crate) fn dropped_since(&self, before: &Snap) -> Option<String> {
        let parts: Vec<String> = DropReason::ALL
            .iter()
            .filter_map(|r| {
                let d = self.drops[*r as usize] - before.drops[*r as usize];
                (d > 0).then(|| format!("{} {d}", r.name()))
            })
            .collect();
        (!parts.is_empty()).then(|| parts.join(", "))
    }
}

/// A launched worker, seen from the main lcore.
pub(crate) struct Running {
    pub(crate) lcore: u32,
    pub(crate) tid: u32,
    pub(crate) shared: Arc<WorkerShared>,
    req: Sender<Request>,
    _events: (Receiver<Event>, Receiver<Retired>),
}

impl Running {
    /// Starts the workers of `plan` through the data plane's runtime, as
    /// rvsd does, and learns each one's thread id (for CPU time).
    pub(crate) fn launch(eal: &Eal, mut plan: runtime::Plan) -> Res<Vec<Self>> {
        let mut tids = Vec::new();
        for w in &mut plan.workers {
            let (tid_tx, tid_rx) = bounded(1);
            w.on_start = Some(Box::new(move || {
                let _ = tid_tx.send(thread_id());
            }));
            tids.push(tid_rx);
        }
        let handles = runtime::start(eal, plan).map_err(|e| match e {
            runtime::StartError::Launch(lcore, e, handles) => {
                handles.stop();
                eal.wait_all();
                format!("cannot launch worker on lcore {lcore}: {e}")
            }
            e => e.to_string(),
        })?;
        let mut running = Vec::new();
        for (w, tid_rx) in handles.workers.into_iter().zip(tids) {
            let tid = tid_rx
                .recv_timeout(Duration::from_secs(5))
                .map_err(|_| "worker did not start")?;
            if tid == 0 {
                return Err("cannot find the worker's thread id (/proc/thread-self)".into());
            }
            running.push(Self {
                lcore: w.lcore,
                tid,
                shared: w.shared,
                req: w.requests,
                _events: (handles.events.clone(), handles.retired.clone()),
            });
        }
        Ok(running)
    }

    /// The counters as last published, and the worker's CPU time now.
    pub(crate) fn read(&self) -> Res<Snap> {
        let s = &self.shared;
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let mut drops = [0u64; DropReason::COUNT];
        for (d, a) in drops.iter_mut().zip(s.drops.iter()) {
            *d = l(a);
        }
        Ok(Snap {
            rx: l(&s.rx_packets),
            tx: l(&s.tx_packets),
            drops,
            created: l(&s.sessions_created),
            polls: l(&s.polls),
            empty: l(&s.empty_polls),
            redirected: l(&s.redirected_out),
            cpu_ns: cpu_ns(self.tid)?,
            tsc: rdtsc(),
        })
    }

    pub(crate) fn ask_publish(&self, ack: Sender<()>) -> Res<()> {
        self.req
            .send_timeout(Request::Publish(ack), Duration::from_secs(1))
            .map_err(|_| format!("worker on lcore {} is not taking requests", self.lcore).into())
    }

    /// Asks the worker to publish, waits for it, and reads.
    pub(crate) fn publish(&self) -> Res<Snap> {
        let (tx, rx) = bounded(1);
        self.ask_publish(tx)?;
        rx.recv_timeout(Duration::from_secs(2))
            .map_err(|_| format!("worker on lcore {} did not publish", self.lcore))?;
        self.read()
    }

    /// Publishes repeatedly until `created` sessions exist; the snapshot at
    /// that moment (known to within about a millisecond).
    fn wait_created(&self, created: u64) -> Res<Snap> {
        let mut last = (0u64, Instant::now());
        loop {
            let s = self.publish()?;
            if s.created >= created {
                return Ok(s);
            }
            if s.rx != last.0 {
                last = (s.rx, Instant::now());
            } else if last.1.elapsed() > Duration::from_secs(3) {
                return Err(format!(
                    "worker on lcore {} stalled at {} of {created} sessions",
                    self.lcore, s.created
                )
                .into());
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

/// The generator of one worker: its flows and the TX queues that feed the
/// worker's RX queues (position 0 first).
pub(crate) struct Feeder {
    pub(crate) gen: Gen,
    txqs: Vec<TxQueue>,
    pending: MbufBatch,
    pub(crate) pool: Arc<Mempool>,
    pub(crate) sent: u64,
    generated: u64,
    pub(crate) limit: u64,
}

impl Feeder {
    /// True once the feeder has generated its `limit` and sent it all:
    /// [`Feeder::fill_all`] adds nothing more, however empty the queues.
    pub(crate) fn exhausted(&self) -> bool {
        self.generated >= self.limit && self.pending.is_empty()
    }

    /// Makes sure `pending` holds frames; false when the pool is empty or
    /// the limit is reached.
    #[inline]
    fn ready(&mut self) -> bool {
        if !self.pending.is_empty() {
            return true;
        }
        let left = self.limit.saturating_sub(self.generated);
        if left == 0 || !self.pool.alloc_fill(&mut self.pending) {
            return false;
        }
        while self.pending.len() as u64 > left {
            drop(self.pending.pop());
        }
        let len = self.gen.frame_len();
        let gen = &mut self.gen;
        for m in self.pending.iter_mut() {
            if m.set_len(len) {
                gen.write(m.data_mut());
            }
        }
        self.generated += self.pending.len() as u64;
        true
    }

    /// One burst into queue `q`; returns the number sent.
    #[inline]
    fn pump(&mut self, q: usize) -> usize {
        if !self.ready() {
            return 0;
        }
        let n = self.txqs[q].tx_burst(&mut self.pending);
        self.sent += n as u64;
        n
    }

    /// Fills every queue up (the worker must not be polling them).
    pub(crate) fn fill_all(&mut self) -> Res<u64> {
        let mut added = 0u64;
        for q in 0..self.txqs.len() {
            loop {
                if !self.ready() {
                    if self.generated >= self.limit {
                        return Ok(added);
                    }
                    return Err("generator: mbuf pool exhausted".into());
                }
                let before = self.pending.len();
                let n = self.txqs[q].tx_burst(&mut self.pending);
                self.sent += n as u64;
                added += n as u64;
                if n < before {
                    break;
                }
            }
        }
        Ok(added)
    }

    /// Asks for a publish while generating, and reads when it is done.
    pub(crate) fn snapshot(&mut self, w: &Running) -> Res<Snap> {
        let (tx, rx) = bounded(1);
        w.ask_publish(tx)?;
        let start = Instant::now();
        loop {
            for _ in 0..8 {
                self.pump(0);
            }
            if rx.try_recv().is_ok() {
                return w.read();
            }
            if start.elapsed() > Duration::from_secs(2) {
                return Err(format!("worker on lcore {} did not publish", w.lcore).into());
            }
        }
    }

    /// Generates into queue 0 for `d`.
    pub(crate) fn pump_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end {
            for _ in 0..64 {
                self.pump(0);
            }
        }
    }
}

pub(crate) fn secs(tsc: u64, hz: u64) -> f64 {
    tsc as f64 / hz as f64
}

impl Lab {
    pub(crate) fn new(prefix: &str) -> Res<Self> {
        let mut args: Vec<String> = [
            "rvs-bench",
            "--lcores",
            "0@0,1@1,2@0",
            "-m",
            "2048",
            "--no-huge",
            "--no-pci",
            "--file-prefix",
            prefix,
            "--no-telemetry",
            "--log-level",
            "lib.eal:warning",
            "--vdev=net_null0",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend((0..RING_DEVS).map(|d| format!("--vdev=net_ring{d}")));
        let eal = Eal::init(&args).map_err(|e| format!("EAL ({}): {e}", args[1..].join(" ")))?;
        let small = Arc::new(Mempool::create("rvsb_small", 16_383, 256, 2048 + 128, -1)?);
        // Every pause-method queue full (2 x 128 x 1023) plus caches and bursts.
        let big_n = (WORKER_LCORES.len() * PAUSE_QUEUES * RING_SLOTS + 8192) as u32;
        let big = Arc::new(Mempool::create("rvsb_big", big_n, 256, 2048 + 128, -1)?);
        let mut rings = Vec::new();
        for d in 0..RING_DEVS {
            let id = Port::by_name(&format!("net_ring{d}"))?;
            let conf = PortConfig {
                rx_queues: RING_QUEUES as u16,
                tx_queues: RING_QUEUES as u16,
                rx_desc: 1024,
                tx_desc: 1024,
            };
            let mut p = Port::configure(id, &conf, &small)?;
            p.start()?;
            rings.push(p);
        }
        let id = Port::by_name("net_null0")?;
        let conf = PortConfig {
            rx_queues: 1,
            tx_queues: (RING_DEVS * RING_QUEUES) as u16,
            rx_desc: 1024,
            tx_desc: 1024,
        };
        let mut null = Port::configure(id, &conf, &small)?;
        null.start()?;
        let tsc_hz = eal.tsc_hz();
        Ok(Self {
            eal,
            rings,
            null,
            small,
            big,
            tsc_hz,
            seq: 0,
        })
    }

    /// Builds `workers` workers as rvsd does (one FULLNAT service, neighbour
    /// snapshot with the real servers' MACs, redirect rings between them),
    /// worker `w` polling `positions` net_ring RX queues and sending on
    /// net_null, and launches them. Returns them with their generators.
    pub(crate) fn start(
        &mut self,
        workers: usize,
        positions: usize,
        capacity: u32,
        big_pool: bool,
    ) -> Res<(Vec<Running>, Vec<Feeder>)> {
        self.seq += 1;
        let tables = tables(positions);
        let neigh = neigh();
        let pool = if big_pool { &self.big } else { &self.small };
        let mut plans = Vec::new();
        let mut feeders = Vec::new();
        let mut owned = owned_clients(workers, capacity);
        for wi in 0..workers {
            let (mut rx, mut tx, mut txqs, mut port_ids) =
                (Vec::new(), Vec::new(), Vec::new(), Vec::new());
            for p in 0..positions {
                let g = wi * positions + p;
                let (dev, q) = (
                    &self.rings[g / RING_QUEUES],
                    QueueId((g % RING_QUEUES) as u16),
                );
                rx.push(dev.rx_queue(q)?);
                txqs.push(dev.tx_queue(q)?);
                port_ids.push(dev.id());
                tx.push(self.null.tx_queue(QueueId(g as u16))?);
            }
            let seed = u64::from(self.seq) << 8 | wi as u64;
            plans.push(runtime::WorkerPlan {
                lcore: LcoreId(WORKER_LCORES[wi]),
                rx,
                tx,
                port_ids,
                tap_rx: Vec::new(),
                tap_tx: Vec::new(),
                pipeline: Pipeline::new(
                    Arc::clone(&tables),
                    Arc::clone(&neigh),
                    capacity,
                    seed,
                    wi as u16,
                    workers as u16,
                ),
                on_start: None,
            });
            feeders.push(Feeder {
                gen: Gen::new(
                    wi,
                    workers,
                    capacity,
                    owned.as_mut().map(|o| std::mem::take(&mut o[wi])),
                ),
                txqs,
                pending: MbufBatch::new(),
                pool: Arc::clone(pool),
                sent: 0,
                generated: 0,
                limit: u64::MAX,
            });
        }
        let running = Running::launch(
            &self.eal,
            runtime::Plan {
                workers: plans,
                pool: Arc::clone(&self.small),
                idle: Idle::Busy,
                rs_count: N_RS as usize,
                ring_prefix: format!("rvsb_{}", self.seq),
                ring_size: 4096,
            },
        )?;
        Ok((running, feeders))
    }

    /// Stops the workers and empties every net_ring queue so the next
    /// experiment starts clean (drop the generators first).
    pub(crate) fn stop(&self, running: Vec<Running>) -> Res<()> {
        for r in &running {
            r.shared.stop.store(true, Ordering::Relaxed);
        }
        for r in &running {
            let rc = self.eal.wait(LcoreId(r.lcore))?;
            if rc != 0 {
                return Err(format!("worker on lcore {} returned {rc}", r.lcore).into());
            }
        }
        let mut b = MbufBatch::new();
        for dev in &self.rings {
            for q in 0..RING_QUEUES {
                let mut rxq = dev.rx_queue(QueueId(q as u16))?;
                while rxq.rx_burst(&mut b) > 0 {
                    b.clear();
                }
            }
        }
        Ok(())
    }
}

/// Sends exactly `n` SYNs per worker, in order, through each worker's queue
/// 0, and waits until every worker has created them. Returns the snapshots
/// before and after and the TSC when the first SYN went out.
pub(crate) fn syn_phase(
    running: &[Running],
    feeders: &mut [Feeder],
    n: u32,
) -> Res<(Vec<Snap>, Vec<Snap>, u64)> {
    let before: Vec<Snap> = running.iter().map(Running::publish).collect::<Res<_>>()?;
    for f in feeders.iter_mut() {
        f.gen.traffic = Traffic::Syn;
        f.limit = f.generated + u64::from(n);
    }
    let t0 = rdtsc();
    let target: Vec<u64> = feeders.iter().map(|f| f.sent + u64::from(n)).collect();
    while feeders.iter().zip(&target).any(|(f, t)| f.sent < *t) {
        for f in feeders.iter_mut() {
            f.pump(0);
        }
    }
    let mut after = Vec::new();
    for (w, b) in running.iter().zip(&before) {
        let s = w.wait_created(b.created + u64::from(n))?;
        if let Some(d) = s.dropped_since(b) {
            return Err(format!("SYN phase: worker on lcore {} dropped: {d}", w.lcore).into());
        }
        after.push(s);
    }
    for f in feeders.iter_mut() {
        f.gen.traffic = Traffic::Established;
        f.limit = u64::MAX;
    }
    Ok((before, after, t0))
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}
