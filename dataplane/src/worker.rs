//! The poll-mode worker: one per lcore, owning one RX and one TX queue on
//! every port and its own [`Pipeline`].
//!
//! ```text
//! loop {
//!     now = TSC → ms                  (once per iteration)
//!     for each port: rx_burst → process each frame → per-port TX batch
//!     flush TX batches                 (unsent frames dropped as tx_full)
//!     every ms: housekeeping           (session sweep, ARP requests,
//!                                       control requests, stop flag)
//!     every 100 ms: publish counters   (plain stores into shared atomics)
//!     idle back-off, if configured and nothing arrived for a while
//! }
//! ```
//!
//! Nothing on the per-packet path allocates, locks, makes a syscall or logs.
//! Counters are plain fields of the pipeline; the worker copies them into
//! [`WorkerShared`] with relaxed stores (no read-modify-write on shared lines)
//! and the control side reads them whenever it likes. Requests from control
//! (session listings) arrive on a channel polled in housekeeping, so a
//! listing costs the worker one copy of its table, between bursts.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::dpdk::{rdtsc, Mempool, MbufBatch, RxQueue, TxQueue};
use crate::fnat::{Pipeline, Verdict};
use crate::session::Session;
use crate::stats::DropReason;
use crate::time::Millis;

/// What a worker does when its queues are empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idle {
    /// Keep polling.
    Busy,
    /// After [`BACKOFF_AFTER`] empty polls, sleep [`BACKOFF_SLEEP`] per poll.
    Backoff,
}

/// Empty polls before backing off.
pub const BACKOFF_AFTER: u32 = 1024;
/// Sleep per empty poll once backing off.
pub const BACKOFF_SLEEP: Duration = Duration::from_micros(200);
/// Session slots examined per housekeeping round (each millisecond).
pub const SWEEP_BUDGET: usize = 1024;
const PUBLISH_EVERY_MS: u64 = 100;

/// A worker's published state, read by control.
#[derive(Debug)]
pub struct WorkerShared {
    /// Set by control to stop the worker.
    pub stop: AtomicBool,
    /// Packets received.
    pub rx_packets: AtomicU64,
    /// Packets transmitted.
    pub tx_packets: AtomicU64,
    /// Drops by [`DropReason`].
    pub drops: [AtomicU64; DropReason::COUNT],
    /// Sessions in the table.
    pub sessions: AtomicU64,
    /// Sessions created.
    pub sessions_created: AtomicU64,
    /// Sessions removed.
    pub sessions_expired: AtomicU64,
    /// Active connections per real server (global index).
    pub rs_active: Vec<AtomicU32>,
    /// Inactive connections per real server.
    pub rs_inactive: Vec<AtomicU32>,
    /// Iterations that received nothing.
    pub empty_polls: AtomicU64,
    /// Iterations in all.
    pub polls: AtomicU64,
}

impl WorkerShared {
    /// Zeroed state for `rs_count` real servers.
    #[must_use]
    pub fn new(rs_count: usize) -> Self {
        Self {
            stop: AtomicBool::new(false),
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            sessions: AtomicU64::new(0),
            sessions_created: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            rs_active: (0..rs_count).map(|_| AtomicU32::new(0)).collect(),
            rs_inactive: (0..rs_count).map(|_| AtomicU32::new(0)).collect(),
            empty_polls: AtomicU64::new(0),
            polls: AtomicU64::new(0),
        }
    }
}

/// A copy of a worker's sessions at a moment.
#[derive(Debug, Clone)]
pub struct SessionDump {
    /// The worker's clock when the copy was taken.
    pub now: Millis,
    /// The sessions.
    pub sessions: Vec<Session>,
}

/// Requests control sends a worker.
#[derive(Debug)]
pub enum Request {
    /// Send back a copy of the session table.
    DumpSessions(Sender<SessionDump>),
    /// Publish counters now, then acknowledge (so a listing is current).
    Publish(Sender<()>),
}

/// Everything a worker owns.
pub struct Worker {
    /// RX queue of each port, in port order.
    pub rx: Vec<RxQueue>,
    /// TX queue of each port, in port order.
    pub tx: Vec<TxQueue>,
    /// Pool for frames the worker originates (ARP requests).
    pub pool: Arc<Mempool>,
    /// The packet path.
    pub pipeline: Pipeline,
    /// Published state.
    pub shared: Arc<WorkerShared>,
    /// Control requests.
    pub requests: Receiver<Request>,
    /// Idle policy.
    pub idle: Idle,
    /// TSC ticks per second.
    pub tsc_hz: u64,
}

impl Worker {
    /// Runs until [`WorkerShared::stop`] is set. Returns 0.
    pub fn run(mut self) -> i32 {
        let ticks_per_ms = (self.tsc_hz / 1000).max(1);
        let start = rdtsc();
        let mut rx = MbufBatch::new();
        let mut tx: Vec<MbufBatch> = self.tx.iter().map(|_| MbufBatch::new()).collect();
        let mut last_house = Millis(0);
        let mut last_publish = Millis(0);
        let mut empty_run: u32 = 0;
        let (mut polls, mut empty_polls) = (0u64, 0u64);
        loop {
            let now = Millis(rdtsc().wrapping_sub(start) / ticks_per_ms);
            let mut got = 0;
            for port in 0..self.rx.len() {
                got += self.rx[port].rx_burst(&mut rx);
                for mut m in rx.drain() {
                    if m.nb_segs() != 1 {
                        self.pipeline.counters.rx_packets += 1;
                        self.pipeline.counters.drop(DropReason::MultiSegment);
                        continue;
                    }
                    match self.pipeline.process(m.data_mut(), port as u16, now) {
                        Verdict::Forward { port: out } => {
                            let out = usize::from(out);
                            if tx[out].is_full() {
                                flush(&mut self.tx[out], &mut tx[out], &mut self.pipeline);
                            }
                            if tx[out].push(m).is_err() {
                                self.pipeline.counters.drop(DropReason::TxFull);
                            }
                        }
                        Verdict::Consumed | Verdict::Drop(_) => {}
                    }
                }
            }
            for (q, batch) in self.tx.iter_mut().zip(tx.iter_mut()) {
                if !batch.is_empty() {
                    flush(q, batch, &mut self.pipeline);
                }
            }
            polls += 1;
            if got == 0 {
                empty_polls += 1;
                empty_run = empty_run.saturating_add(1);
            } else {
                empty_run = 0;
            }
            if now.0 != last_house.0 {
                last_house = now;
                if self.housekeeping(now, &mut tx, polls, empty_polls) {
                    break;
                }
                if now.0 - last_publish.0 >= PUBLISH_EVERY_MS {
                    last_publish = now;
                    self.publish(polls, empty_polls);
                }
            }
            if self.idle == Idle::Backoff && empty_run > BACKOFF_AFTER {
                std::thread::sleep(BACKOFF_SLEEP);
            }
        }
        self.publish(polls, empty_polls);
        0
    }

    /// Between bursts: sweep, ARP, requests. True when asked to stop.
    #[cold]
    fn housekeeping(&mut self, now: Millis, tx: &mut [MbufBatch], polls: u64, empty_polls: u64) -> bool {
        let pool = &self.pool;
        self.pipeline.housekeeping(now, SWEEP_BUDGET, |port, frame| {
            let Some(mut m) = pool.alloc() else { return };
            // Pad to the 60-byte Ethernet minimum.
            if !m.set_len(60) {
                return;
            }
            let d = m.data_mut();
            d.fill(0);
            d[..frame.len()].copy_from_slice(frame);
            if let Some(b) = tx.get_mut(usize::from(port)) {
                let _ = b.push(m);
            }
        });
        for (q, batch) in self.tx.iter_mut().zip(tx.iter_mut()) {
            if !batch.is_empty() {
                flush(q, batch, &mut self.pipeline);
            }
        }
        while let Ok(req) = self.requests.try_recv() {
            match req {
                Request::DumpSessions(reply) => {
                    let sessions = self.pipeline.sessions().iter().copied().collect();
                    let _ = reply.send(SessionDump { now, sessions });
                }
                Request::Publish(ack) => {
                    self.publish(polls, empty_polls);
                    let _ = ack.send(());
                }
            }
        }
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn publish(&self, polls: u64, empty_polls: u64) {
        let c = &self.pipeline.counters;
        let s = &self.shared;
        s.rx_packets.store(c.rx_packets, Ordering::Relaxed);
        s.tx_packets.store(c.tx_packets, Ordering::Relaxed);
        for (a, v) in s.drops.iter().zip(c.drops.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
        s.sessions.store(self.pipeline.sessions().len() as u64, Ordering::Relaxed);
        s.sessions_created.store(c.sessions_created, Ordering::Relaxed);
        s.sessions_expired.store(c.sessions_expired, Ordering::Relaxed);
        for (i, cc) in self.pipeline.rs_conns().iter().enumerate() {
            if let (Some(a), Some(ia)) = (s.rs_active.get(i), s.rs_inactive.get(i)) {
                a.store(cc.active, Ordering::Relaxed);
                ia.store(cc.inactive, Ordering::Relaxed);
            }
        }
        s.polls.store(polls, Ordering::Relaxed);
        s.empty_polls.store(empty_polls, Ordering::Relaxed);
    }
}

/// Sends a batch; what the queue does not take is dropped and counted.
fn flush(q: &mut TxQueue, batch: &mut MbufBatch, pipeline: &mut Pipeline) {
    let sent = q.tx_burst(batch);
    pipeline.counters.tx_packets += sent as u64;
    for _ in batch.drain() {
        pipeline.counters.drop(DropReason::TxFull);
    }
}
