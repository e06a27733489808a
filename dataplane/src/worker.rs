//! The poll-mode worker: one per lcore, owning one RX and one TX queue on
//! every port and its own [`Pipeline`].
//!
//! ```text
//! loop {
//!     now = TSC → ms                  (once per iteration)
//!     for each port: (its burst received two ports ahead: rx_burst of
//!                    port + 2; while a burst is processed, each frame asks
//!                    for one frame of the next port's burst and one mbuf
//!                    header of the following one's)
//!                    read ahead, stage by stage over the whole
//!                    burst: prefetch every frame's first line; describe
//!                    each once (flow key, hash, offsets); big tables only:
//!                    prefetch every index bucket, then every session
//!                    (or the second bucket, where the first has none);
//!                    look up every frame's session but a SYN's, all in a
//!                    row (kept in its descriptor) →
//!                    count the burst as received (once) → process each
//!                    frame with its descriptor (the lookup made ahead
//!                    taken unless the table changed under it) → per-port TX batch or
//!                    redirect batch (TX packets counted once per batch) →
//!                    file the server-side keys of the burst's new FULLNAT
//!                    sessions (pipeline/staged.rs: their misses overlap)
//!     for each ring from another worker: dequeue → read ahead → process → TX batch
//!     flush TX batches                 (unsent frames dropped as tx_full)
//!     flush redirect batches           (unsent dropped as redirect_full)
//!     every ms: housekeeping           (session sweep, neighbour events out,
//!                                       snapshots and requests in, stop flag),
//!               held frames            (expired: dropped, decision given back;
//!                                       resolved: processed with their decision)
//!     every 100 ms: publish counters   (plain stores into shared atomics)
//!     idle back-off, if configured and nothing arrived for a while
//! }
//! ```
//!
//! Nothing on the per-packet path allocates, locks, makes a syscall or logs.
//! Counters are plain fields of the pipeline; the worker copies them into
//! [`WorkerShared`] with relaxed stores (no read-modify-write on shared lines)
//! and the control side reads them whenever it likes. Requests from control
//! (new table or neighbour snapshots, session listings, ARP requests and
//! gratuitous announcements to send) arrive on a channel polled in
//! housekeeping. Each is bounded work: a session listing is paged
//! ([`Request::DumpSessions`], at most [`DUMP_SCAN`] slots and
//! [`DUMP_TAKE`] sessions a round). A replaced snapshot is sent back to
//! control ([`Retired`], on a channel of its own that never refuses it)
//! rather than dropped here: control frees it once every worker has moved
//! on (the `Arc` count tells), and no worker ever runs its deallocation.
//!
//! Redirect rings: one single-producer/single-consumer ring per ordered
//! pair of workers. A reply that RSS delivered to the wrong worker (see
//! [`crate::pipeline::owner`]) is enqueued, untouched, on the ring to its owner.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender};

use crate::addr::Addr;
use crate::dpdk::{
    prefetch, rdtsc, Mbuf, MbufBatch, MbufRing, Mempool, PortId, RxQueue, TxQueue, BURST,
};
use crate::frag::FragKey;
use crate::frag_hold::FragHold;
use crate::hold::HoldQueue;
use crate::neigh::{self, NeighEvent, NeighMap, ARP_FRAME_LEN};
use crate::packet::PacketBuf;
use crate::pipeline::sync::InstallReport;
use crate::pipeline::{Decision, Desc, FragHoldEvent, Pipeline, Verdict};
use crate::session::{Session, SessionTable, Side};
use crate::stats::DropReason;
use crate::sync_feed::{SyncRecord, SyncRing};
use crate::sync_policy::SyncPolicy;
use crate::tables::Tables;
use crate::time::{unix_ms, Millis};
use crate::vlan;
use crate::wire::tcp::TcpFlags;

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
/// Session slots a listing page examines (one page per request, one
/// request per housekeeping round at most as control sends them).
pub const DUMP_SCAN: usize = 65536;
/// Sessions a listing page copies at most.
pub const DUMP_TAKE: usize = 4096;
const PUBLISH_EVERY_MS: u64 = 100;
/// How often the ISN clock is set back in step with the wall clock
/// ([`Pipeline::set_isn_epoch`]).
const ISN_EPOCH_EVERY_MS: u64 = 1000;

/// A worker's published state, read by control.
#[derive(Debug)]
pub struct WorkerShared {
    /// Set by control to stop the worker.
    pub stop: AtomicBool,
    /// Packets received.
    pub rx_packets: AtomicU64,
    /// Packets transmitted.
    pub tx_packets: AtomicU64,
    /// Bytes received.
    pub rx_bytes: AtomicU64,
    /// Bytes transmitted.
    pub tx_bytes: AtomicU64,
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
    /// Connections created per real server.
    pub rs_created: Vec<AtomicU64>,
    /// Per real server: packets in, packets out, bytes in, bytes out.
    pub rs_traffic: [Vec<AtomicU64>; 4],
    /// Iterations that received nothing.
    pub empty_polls: AtomicU64,
    /// Iterations in all.
    pub polls: AtomicU64,
    /// Packets handed to other workers.
    pub redirected_out: AtomicU64,
    /// Packets taken from other workers' rings.
    pub redirected_in: AtomicU64,
    /// Packets handed to the kernel (exception path).
    pub punted: AtomicU64,
    /// Flood guard on (see [`crate::guard`]).
    pub guard_on: AtomicBool,
    /// Flood-guard counters, in [`crate::guard::GuardCounters::NAMES`] order.
    pub guard: [AtomicU64; 3],
    /// Feature events, in [`crate::stats::EVENT_NAMES`] order.
    pub events: [AtomicU64; crate::stats::EVENT_NAMES.len()],
    /// Fragment counters, in [`crate::frag::FragCounters::NAMES`] order.
    pub frags: [AtomicU64; crate::frag::FragCounters::NAMES.len()],
    /// Hit counters of ACL rules and limits, by the index control gave
    /// each ([`crate::limits::MAX_COUNTERS`] of them).
    pub access_hits: Vec<AtomicU64>,
    /// SYN-proxy counters, in [`crate::synproxy::Counters::NAMES`] order.
    pub synproxy: [AtomicU64; crate::synproxy::Counters::NAMES.len()],
    /// Generation of the tables in force.
    pub generation: AtomicU64,
}

impl WorkerShared {
    /// Zeroed state for `rs_count` real servers.
    #[must_use]
    pub fn new(rs_count: usize) -> Self {
        Self {
            stop: AtomicBool::new(false),
            rx_packets: AtomicU64::new(0),
            tx_packets: AtomicU64::new(0),
            rx_bytes: AtomicU64::new(0),
            tx_bytes: AtomicU64::new(0),
            drops: std::array::from_fn(|_| AtomicU64::new(0)),
            sessions: AtomicU64::new(0),
            sessions_created: AtomicU64::new(0),
            sessions_expired: AtomicU64::new(0),
            rs_active: (0..rs_count).map(|_| AtomicU32::new(0)).collect(),
            rs_inactive: (0..rs_count).map(|_| AtomicU32::new(0)).collect(),
            rs_created: (0..rs_count).map(|_| AtomicU64::new(0)).collect(),
            rs_traffic: std::array::from_fn(|_| (0..rs_count).map(|_| AtomicU64::new(0)).collect()),
            empty_polls: AtomicU64::new(0),
            polls: AtomicU64::new(0),
            redirected_out: AtomicU64::new(0),
            redirected_in: AtomicU64::new(0),
            punted: AtomicU64::new(0),
            guard_on: AtomicBool::new(false),
            guard: std::array::from_fn(|_| AtomicU64::new(0)),
            events: std::array::from_fn(|_| AtomicU64::new(0)),
            frags: std::array::from_fn(|_| AtomicU64::new(0)),
            access_hits: (0..crate::limits::MAX_COUNTERS)
                .map(|_| AtomicU64::new(0))
                .collect(),
            synproxy: std::array::from_fn(|_| AtomicU64::new(0)),
            generation: AtomicU64::new(0),
        }
    }
}

/// One page of a worker's sessions ([`Request::DumpSessions`]).
#[derive(Debug, Clone)]
pub struct SessionPage {
    /// The worker's clock when the page was copied.
    pub now: Millis,
    /// The sessions.
    pub sessions: Vec<Session>,
    /// Beside each session, its rarely used part (sequence shifts; the
    /// default for a session that has none), for connection sync.
    pub exts: Vec<crate::session::ext::SessionExt>,
    /// Beside each session: installed from a peer's sync entry and not
    /// forwarded here since (a full resync leaves it out).
    pub from_peer: Vec<bool>,
    /// The slot the next page starts at; `None`: this was the last page.
    pub next: Option<u32>,
    /// The live persistence templates (`ipvsadm -L -c` lists them too),
    /// on the first page only (a template table is small and bounded).
    pub templates: Vec<crate::session::template::Template>,
}

/// Requests control sends a worker.
#[derive(Debug)]
pub enum Request {
    /// Send back a page of the session table: the live sessions among at
    /// most [`DUMP_SCAN`] slots from slot `from` on (at most [`DUMP_TAKE`]
    /// of them). Control asks again from [`SessionPage::next`] until it is
    /// `None`.
    DumpSessions {
        /// First slot of the page (0 for the first page).
        from: u32,
        /// Where the page goes.
        reply: Sender<SessionPage>,
    },
    /// Publish counters now, then acknowledge (so a listing is current).
    Publish(Sender<()>),
    /// Count live persistence templates per real server (global index).
    CountTemplates(Sender<Vec<u32>>),
    /// Forward by these tables from now on.
    Tables(Arc<Tables>),
    /// Use this neighbour snapshot from now on.
    Neigh(Arc<NeighMap>),
    /// Remove the sessions to the real server with this global index (its
    /// health check failed and its service resets connections) among at
    /// most [`DUMP_SCAN`] slots from slot `from` on; the reply is how many
    /// there were and where the next page starts (`None`: done). Control
    /// asks again until `None`.
    FlushServer {
        /// Global real-server index.
        rs_index: u16,
        /// First slot of the page (0 for the first page).
        from: u32,
        /// Sessions removed, next page.
        reply: Sender<(usize, Option<u32>)>,
    },
    /// Broadcast an ARP request for `target` on port position `port`.
    SendArp {
        /// Port position.
        port: u16,
        /// Address to resolve.
        target: [u8; 4],
    },
    /// Send a Neighbor Solicitation for `target` out of `port`, from the
    /// port's IPv6 address `source` (control picks it: the address whose
    /// subnet holds the target). From the unspecified address `::`, it is
    /// a duplicate address detection probe for an own address `target`.
    SendNs {
        /// Port position.
        port: u16,
        /// Address to resolve.
        target: [u8; 16],
        /// The solicitation's source address.
        source: [u8; 16],
    },
    /// Announce that `ip` is at this port's MAC: a gratuitous ARP (IPv4)
    /// or an unsolicited Neighbor Advertisement (IPv6) out of `port`.
    Announce {
        /// Port position.
        port: u16,
        /// The address the appliance now holds.
        ip: Addr,
    },
    /// Connection sync: feed this ring by this policy from now on (`None`:
    /// stop). Allocates the per-session marks (a daemon start is rare).
    SyncFeed(Option<(Arc<SyncRing>, SyncPolicy)>),
    /// Connection sync: install the entries of this batch this worker owns
    /// (see [`crate::pipeline::sync`]); the batch goes back with the counts
    /// (control frees it).
    InstallSynced {
        /// Entries a master sent.
        batch: Arc<Vec<SyncRecord>>,
        /// Where the counts (and the batch) go.
        reply: Sender<(InstallReport, Arc<Vec<SyncRecord>>)>,
    },
}

/// What a worker tells control.
#[derive(Debug)]
pub enum Event {
    /// Something about a neighbour.
    Neigh(NeighEvent),
}

/// A snapshot a worker no longer uses, handed back for control to drop
/// (on [`Worker::retired`], which must be unbounded: a worker never
/// waits for control and never frees a snapshot itself).
#[derive(Debug)]
pub enum Retired {
    /// Forwarding tables.
    Tables(Arc<Tables>),
    /// A neighbour snapshot.
    Neigh(Arc<NeighMap>),
}

impl Retired {
    /// Hands `self` to control. Only when control is gone (shutting down)
    /// does the snapshot drop here.
    fn send(self, to: &Sender<Retired>) {
        let _ = to.send(self);
    }
}

/// Everything a worker owns; built and launched by [`crate::runtime::start`].
pub struct Worker {
    /// RX queue of each port, in port order.
    pub(crate) rx: Vec<RxQueue>,
    /// TX queue of each port, in port order.
    pub(crate) tx: Vec<TxQueue>,
    /// DPDK id of each port, in port order.
    pub(crate) port_ids: Vec<PortId>,
    /// This worker's RX queue on each port's exception-path TAP (frames the
    /// kernel sends out through that port), if the port has one; then those
    /// of the 802.1Q sub-interfaces' TAPs, in logical port order.
    pub(crate) tap_rx: Vec<Option<RxQueue>>,
    /// This worker's TX queue on each port's TAP (frames punted to the kernel).
    pub(crate) tap_tx: Vec<Option<TxQueue>>,
    /// Ring to each other worker (`None` at this worker's own index).
    pub(crate) redirect_out: Vec<Option<Arc<MbufRing>>>,
    /// Rings from the other workers.
    pub(crate) redirect_in: Vec<Arc<MbufRing>>,
    /// Where events for control go (lossy: a full channel drops them).
    pub(crate) events: Sender<Event>,
    /// Where replaced snapshots go: an unbounded channel (see [`Retired`]).
    pub(crate) retired: Sender<Retired>,
    /// Pool for frames the worker originates (ARP requests).
    pub(crate) pool: Arc<Mempool>,
    /// The packet path.
    pub(crate) pipeline: Pipeline,
    /// Published state.
    pub(crate) shared: Arc<WorkerShared>,
    /// Control requests.
    pub(crate) requests: Receiver<Request>,
    /// Idle policy.
    pub(crate) idle: Idle,
    /// TSC ticks per second.
    pub(crate) tsc_hz: u64,
    /// Frames of new connections waiting for their next hop's MAC.
    pub(crate) held: HeldFrames,
    /// Later fragments waiting for their first one (see [`crate::frag_hold`]).
    pub(crate) frag_held: FragHold<Mbuf>,
}

/// How a frame reaches [`Worker::handle`]: with its descriptor from the
/// burst's read-ahead (`None`: the pipeline describes it), counted as
/// received with its burst or not yet (a fragment released from the
/// fragment hold comes uncounted, without a descriptor); or released from
/// the neighbour hold queue with the decision it was held with.
enum Arrival<'a> {
    Counted(Option<&'a Desc>),
    Uncounted(Option<&'a Desc>),
    Held(Decision),
}

/// Frames waiting for a neighbour ([`Verdict::Hold`]), bounded per next
/// hop and per worker (see [`crate::hold`]).
pub type HeldFrames = HoldQueue<HeldFrame>;

/// A frame in the hold queue with the decision the pipeline made for it.
#[derive(Debug)]
pub struct HeldFrame {
    mbuf: Mbuf,
    decision: Decision,
}

/// A TCP segment with SYN and without ACK: a connection's first (or a
/// retransmission of it), whose flow the index rarely has.
#[inline(always)]
fn is_syn(d: &Desc) -> bool {
    d.flags & (TcpFlags::SYN | TcpFlags::ACK) == TcpFlags::SYN
}

/// The three batches of [`Worker::run`]'s RX ports as (this port's burst,
/// the next port's, the one after's), rotating with `port`.
#[inline(always)]
fn ahead_of<T>(ahead: &mut [T; 3], port: usize) -> [&mut T; 3] {
    let [a, b, c] = ahead;
    match port % 3 {
        0 => [a, b, c],
        1 => [b, c, a],
        _ => [c, a, b],
    }
}

/// Asks for frame `i` of the next burst (its first line; its header,
/// asked for one burst earlier, gives the address) and the header of frame
/// `i` of the one after.
#[inline(always)]
fn prefetch_ahead(next: &MbufBatch, after: &MbufBatch, i: usize) {
    if let Some(m) = next.as_slice().get(i) {
        if let Some(first) = m.data().first() {
            prefetch(first);
        }
    }
    if let Some(m) = after.as_slice().get(i) {
        m.prefetch_header();
    }
}

/// Bytes of session table (hot slab and index, [`SessionTable::reach_bytes`])
/// from which [`Worker::read_ahead`]'s prefetches pay: the L2 of one core
/// here. Decided by the table's footprint, not its population: a deployed
/// worker's table has its configured capacity however few sessions are
/// live, and 1 K sessions scattered over a 1 M table took 269-282 cycles a
/// packet with the read-ahead against 279-341 without, where a 1 K table
/// (84 KB) gained nothing from it (BENCHMARKS.md, issue #18).
///
/// [`SessionTable::reach_bytes`]: crate::session::SessionTable::reach_bytes
const READ_AHEAD_BYTES: usize = 2 << 20;

// [`Worker::read_ahead`] marks a burst's frames in one `u64`.
const _: () = assert!(BURST <= 64, "a burst's frames are bits of a u64");

impl Worker {
    /// Runs until [`WorkerShared::stop`] is set. Returns 0.
    pub fn run(mut self) -> i32 {
        let ticks_per_ms = (self.tsc_hz / 1000).max(1);
        let start = rdtsc();
        self.pipeline.set_isn_epoch(unix_ms());
        let mut rx = MbufBatch::new();
        // The RX ports' bursts, two ahead of the one handled (`ahead`).
        let mut ahead: [MbufBatch; 3] = [MbufBatch::new(), MbufBatch::new(), MbufBatch::new()];
        let mut descs: [Option<Desc>; BURST] = [None; BURST];
        let mut tx: Vec<MbufBatch> = self.tx.iter().map(|_| MbufBatch::new()).collect();
        let mut redir: Vec<MbufBatch> =
            self.redirect_out.iter().map(|_| MbufBatch::new()).collect();
        let mut punt: Vec<MbufBatch> = self.tap_tx.iter().map(|_| MbufBatch::new()).collect();
        let mut last_house = Millis(0);
        let mut last_publish = Millis(0);
        let mut last_epoch = Millis(0);
        let mut empty_run: u32 = 0;
        let (mut polls, mut empty_polls) = (0u64, 0u64);
        self.shared
            .generation
            .store(self.pipeline.tables().generation, Ordering::Relaxed);
        loop {
            let now = Millis(rdtsc().wrapping_sub(start) / ticks_per_ms);
            let mut got = 0;
            let ports = self.rx.len();
            for (q, batch) in self.rx.iter_mut().zip(&mut ahead).take(2) {
                q.rx_burst(batch);
                for m in batch.iter() {
                    m.prefetch_header();
                }
            }
            for port in 0..ports {
                let [rx, next, after] = ahead_of(&mut ahead, port);
                if port + 2 < ports {
                    self.rx[port + 2].rx_burst(after);
                }
                let n = rx.len();
                got += n;
                // Counted as received once per burst, before any is handled.
                let bytes = self.read_ahead(rx, &mut descs);
                self.pipeline.counters.rx_packets += n as u64;
                self.pipeline.counters.rx_bytes += bytes;
                // New sessions' server-side keys are filed at the burst's
                // end, their misses overlapping (pipeline/staged.rs).
                self.pipeline.begin_burst();
                let mut i = 0;
                for (m, d) in rx.drain().zip(&descs) {
                    // One frame at a time, interleaved with this burst's work
                    // so that its misses (and page walks) overlap it: the
                    // next burst's frame (its header was asked for one burst
                    // ago) and the one after's header.
                    prefetch_ahead(next, after, i);
                    i += 1;
                    match d {
                        Some(d) if m.is_plain() => {
                            let p = port as u16;
                            self.handle_plain(m, p, d, now, &mut tx, &mut redir, &mut punt);
                        }
                        _ => {
                            let how = Arrival::Counted(d.as_ref());
                            self.handle(m, port as u16, how, now, &mut tx, &mut redir, &mut punt);
                        }
                    }
                }
                self.pipeline.end_burst();
                for i in i..next.len().max(after.len()) {
                    prefetch_ahead(next, after, i);
                }
            }
            // Kernel -> wire: frames the exception path's kernel side sends
            // leave through the port as they are (a sub-interface's tagged,
            // out of its parent port).
            for port in 0..self.tap_rx.len() {
                let Some(q) = self.tap_rx[port].as_mut() else {
                    continue;
                };
                got += q.rx_burst(&mut rx);
                for mut m in rx.drain() {
                    let Some(out) = self.egress_port(&mut m, port) else {
                        continue;
                    };
                    push_tx(&mut self.tx[out], &mut tx[out], m, &mut self.pipeline);
                }
            }
            for ring in 0..self.redirect_in.len() {
                let n = self.redirect_in[ring].dequeue_burst(&mut rx);
                got += n;
                self.pipeline.counters.redirected_in += n as u64;
                self.read_ahead(&rx, &mut descs);
                for (m, d) in rx.drain().zip(&descs) {
                    let Some(port) = self.port_ids.iter().position(|p| *p == m.port()) else {
                        continue;
                    };
                    let how = Arrival::Uncounted(d.as_ref());
                    self.handle(m, port as u16, how, now, &mut tx, &mut redir, &mut punt);
                }
            }
            self.flush_all(&mut tx, &mut redir);
            self.flush_punted(&mut punt);
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
                self.release_held(now, &mut tx, &mut redir, &mut punt);
                self.expire_fragments(now);
                if now.0 - last_epoch.0 >= ISN_EPOCH_EVERY_MS {
                    last_epoch = now;
                    self.pipeline.set_isn_epoch(unix_ms().wrapping_sub(now.0));
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

    /// Held frames: those past their time are dropped (their decisions
    /// given back); after a new neighbour snapshot the others go through the
    /// pipeline again with their decisions (those still unresolved come back
    /// to the queue).
    #[cold]
    fn release_held(
        &mut self,
        now: Millis,
        tx: &mut [MbufBatch],
        redir: &mut [MbufBatch],
        punt: &mut [MbufBatch],
    ) {
        let pipeline = &mut self.pipeline;
        self.held.expire(now, |f| {
            pipeline.abandon(f.decision);
            pipeline.counters.drop(DropReason::NeighbourMiss);
        });
        let pipeline = &self.pipeline;
        if self.held.ready(|hop| pipeline.resolves(hop)) == 0 {
            return;
        }
        while let Some((f, port)) = self.held.take_released() {
            self.handle(
                f.mbuf,
                port,
                Arrival::Held(f.decision),
                now,
                tx,
                redir,
                punt,
            );
        }
        self.flush_all(tx, redir);
        self.flush_punted(punt);
    }

    /// The burst's first stages, before any frame is handled (the DPDK/VPP
    /// pattern): every frame's first line prefetched, so that the burst's
    /// misses on packet data overlap; every frame described once
    /// ([`Pipeline::describe`]: flow key, hash, header offsets; the pipeline
    /// then uses the descriptor instead of parsing the frame again); in a
    /// table of [`READ_AHEAD_BYTES`] or more, the lookups' lines prefetched
    /// ([`Self::prefetch_sessions`]); then every frame's session lookup
    /// made but a SYN's, all in a row ([`Pipeline::look_ahead`], kept in
    /// the descriptor): the lookups of a burst overlap each other instead
    /// of each waiting inside its frame's work, and the pipeline takes a
    /// lookup's answer unless the table changed after it in a way that can
    /// alter it (an earlier frame of the burst created a session, for a
    /// miss, or ended one, for a hit: it looks again). A
    /// descriptor is read long after it was written, never straight back
    /// from the store buffer. Returns the burst's bytes (for the received
    /// counters).
    #[inline]
    fn read_ahead(&self, burst: &MbufBatch, descs: &mut [Option<Desc>; BURST]) -> u64 {
        let mut bytes = 0;
        // The headers first: the loop below reads each one's lengths and
        // data address, which would otherwise miss one after the other.
        for m in burst.iter() {
            m.prefetch_header();
        }
        for m in burst.iter() {
            bytes += m.len() as u64;
            if let Some(first) = m.data().first() {
                prefetch(first);
            }
        }
        for (d, m) in descs.iter_mut().zip(burst.iter()) {
            self.pipeline.describe_into(m.data(), d);
        }
        let n = burst.len();
        let sessions = self.pipeline.sessions();
        if sessions.reach_bytes() >= READ_AHEAD_BYTES {
            Self::prefetch_sessions(sessions, &descs[..n]);
        }
        // Not a SYN's: a new flow's misses, and the session it creates
        // would make every later miss of the burst stale.
        for d in descs.iter_mut().take(n).flatten() {
            if !is_syn(d) {
                self.pipeline.look_ahead(d);
            }
        }
        bytes
    }

    /// The read-ahead's prefetches in a large table: the session-index
    /// bucket each lookup of `descs` starts at, then the session that
    /// bucket points to (its hot line; for an IPv6 packet its cold line of
    /// addresses too); where that bucket points to none (a new flow, or a
    /// key filed in its second bucket), the second bucket is prefetched
    /// instead of read, and its session asked for afterwards (not for a
    /// SYN's), so that the lookups' misses overlap.
    #[inline(always)]
    fn prefetch_sessions(sessions: &SessionTable, descs: &[Option<Desc>]) {
        for d in descs.iter().flatten() {
            prefetch(sessions.bucket(d.hash));
        }
        // Frames whose first bucket has no candidate (bit i: frame i): a new
        // flow's SYN, or an entry in its second bucket. That bucket is
        // prefetched, not read here: read at once, its miss would stall
        // this pass frame by frame.
        let mut away = 0u64;
        for (i, d) in descs.iter().enumerate() {
            let Some(d) = d else { continue };
            if !Self::prefetch_candidate(sessions, d, Side::Home) {
                prefetch(sessions.second_bucket(d.hash));
                away |= 1 << i;
            }
        }
        // Their candidates in the second bucket, but not for a SYN's: a
        // new flow has none, and the lookup reads that bucket anyway.
        while away != 0 {
            let i = away.trailing_zeros() as usize;
            away &= away - 1;
            if let Some(d) = &descs[i] {
                if !is_syn(d) {
                    Self::prefetch_candidate(sessions, d, Side::Away);
                }
            }
        }
    }

    /// Prefetches the candidate session of `d` in its `side` bucket (its
    /// hot line; for an IPv6 packet its cold line of addresses too). False
    /// if that bucket has none.
    #[inline(always)]
    fn prefetch_candidate(sessions: &SessionTable, d: &Desc, side: Side) -> bool {
        if d.key.src.ip.is_v4() {
            let Some(s) = sessions.candidate_in(d.hash, side) else {
                return false;
            };
            prefetch(s);
        } else {
            let Some((s, cold)) = sessions.candidate_v6_in(d.hash, side) else {
                return false;
            };
            // An IPv6 session's addresses are on a second line.
            prefetch(s);
            prefetch(cold);
        }
        true
    }

    /// [`Self::handle`] for the common case: a frame of a received burst
    /// (counted with it) that has a descriptor, in one segment, without a
    /// VLAN tag in its metadata ([`Mbuf::is_plain`]); its ethertype is
    /// IPv4's or IPv6's (the descriptor says so), so it has no in-band tag
    /// either. What `handle` would do, without the checks that cannot fail
    /// for it; a frame forwarded on a physical port is queued here, any
    /// other verdict goes to [`Self::dispatch`].
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn handle_plain(
        &mut self,
        mut m: Mbuf,
        port: u16,
        d: &Desc,
        now: Millis,
        tx: &mut [MbufBatch],
        redir: &mut [MbufBatch],
        punt: &mut [MbufBatch],
    ) {
        // Only fragments are released from the fragment hold, within `handle`.
        debug_assert!(self.frag_held.releasing().is_none());
        let verdict = {
            let (room, off, len) = m.room_mut();
            let mut pkt = PacketBuf::new(room, off, len);
            let v = self.pipeline.process_counted(&mut pkt, port, Some(d), now);
            let window = pkt.window();
            if window != (off, len) && !m.set_window(window.0, window.1) {
                self.pipeline.counters.drop(DropReason::Malformed);
                return;
            }
            v
        };
        match verdict {
            Verdict::Forward { port: out } if usize::from(out) < self.tx.len() => {
                let out = usize::from(out);
                push_tx(&mut self.tx[out], &mut tx[out], m, &mut self.pipeline);
            }
            v => {
                if !self.dispatch(m, port, v, now, tx, redir, punt) {
                    return;
                }
            }
        }
        if let Some(datagram) = self.pipeline.take_filed_datagram() {
            self.release_fragments(&datagram, now, tx, redir, punt);
        }
    }

    /// One frame through the pipeline, into a TX or redirect batch; `how`
    /// it came (see [`Arrival`]).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn handle(
        &mut self,
        mut m: Mbuf,
        port: u16,
        how: Arrival<'_>,
        now: Millis,
        tx: &mut [MbufBatch],
        redir: &mut [MbufBatch],
        punt: &mut [MbufBatch],
    ) {
        if m.nb_segs() != 1 {
            self.refused(m.len(), &how, DropReason::MultiSegment);
            return;
        }
        // The length its burst counted (an in-band tag popped below changes it).
        let len = m.len();
        // 802.1Q: the (logical) port the frame belongs to, its tag consumed.
        let Some(port) = vlan::mbuf::ingress(&mut m, port, &self.pipeline.tables().vlans) else {
            self.refused(len, &how, DropReason::UnknownVlan);
            return;
        };
        let verdict = {
            let (room, off, len) = m.room_mut();
            let mut pkt = PacketBuf::new(room, off, len);
            let v = match how {
                Arrival::Held(d) => self.pipeline.process_held_buf(&mut pkt, port, d, now),
                _ if self.frag_held.releasing().is_some() => {
                    self.pipeline.process_released_buf(&mut pkt, port, now)
                }
                Arrival::Counted(desc) => self.pipeline.process_counted(&mut pkt, port, desc, now),
                Arrival::Uncounted(desc) => self.pipeline.process_desc(&mut pkt, port, desc, now),
            };
            let window = pkt.window();
            if window != (off, len) && !m.set_window(window.0, window.1) {
                self.pipeline.counters.drop(DropReason::Malformed);
                return;
            }
            v
        };
        if !self.dispatch(m, port, verdict, now, tx, redir, punt) {
            return;
        }
        if let Some(datagram) = self.pipeline.take_filed_datagram() {
            self.release_fragments(&datagram, now, tx, redir, punt);
        }
    }

    /// Does what `verdict` says with frame `m` of (logical) port `port`.
    /// False for a frame to forward that has no way out (an unknown
    /// sub-interface, no headroom for its tag: dropped and counted), after
    /// which the caller stops as `handle` always has (a datagram filed by
    /// it frees its held fragments with the next frame).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    fn dispatch(
        &mut self,
        mut m: Mbuf,
        port: u16,
        verdict: Verdict,
        now: Millis,
        tx: &mut [MbufBatch],
        redir: &mut [MbufBatch],
        punt: &mut [MbufBatch],
    ) -> bool {
        match verdict {
            Verdict::Forward { port: out } => {
                let Some(out) = self.egress_port(&mut m, usize::from(out)) else {
                    return false;
                };
                push_tx(&mut self.tx[out], &mut tx[out], m, &mut self.pipeline);
            }
            Verdict::Redirect { worker } => {
                let w = usize::from(worker);
                if usize::from(port) >= self.tx.len() {
                    vlan::mbuf::mark(&mut m, port, &self.pipeline.tables().vlans);
                }
                if redir.get(w).is_some_and(MbufBatch::is_full) {
                    self.flush_redirect(w, &mut redir[w]);
                }
                match redir.get_mut(w).map(|b| b.push(m)) {
                    Some(Ok(())) => {}
                    _ => self.pipeline.counters.drop(DropReason::RedirectFull),
                }
            }
            Verdict::Punt => {
                let p = usize::from(port);
                if punt.get(p).is_some_and(MbufBatch::is_full) {
                    self.flush_punt(p, &mut punt[p]);
                }
                match punt.get_mut(p).map(|b| b.push(m)) {
                    Some(Ok(())) => self.pipeline.counters.punted += 1,
                    _ => self.pipeline.counters.drop(DropReason::PuntFull),
                }
            }
            Verdict::Hold { next_hop, decision } => {
                // A released frame that must wait again keeps its first arrival time.
                let since = self.held.releasing().unwrap_or(now);
                let f = HeldFrame { mbuf: m, decision };
                if let Err((f, _)) = self.held.hold(f, port, next_hop, since) {
                    self.pipeline.abandon(f.decision);
                    self.pipeline.counters.drop(DropReason::NeighbourMiss);
                }
            }
            Verdict::HoldFragment { datagram } => self.hold_fragment(m, port, datagram, now),
            Verdict::Consumed | Verdict::Drop(_) => {}
        }
        true
    }

    /// Keeps a later fragment that came before its first one, or drops
    /// (frees) it and counts why.
    #[cold]
    fn hold_fragment(&mut self, m: Mbuf, port: u16, datagram: FragKey, now: Millis) {
        let event = match self.frag_held.hold(m, port, datagram, now) {
            Ok(()) => FragHoldEvent::Held,
            Err(_) => FragHoldEvent::Full,
        };
        self.pipeline.count_fragment_hold(event);
    }

    /// The first fragment of `datagram` was filed: the later fragments held
    /// for it go through the pipeline now, in the order they came, right
    /// after it.
    #[cold]
    fn release_fragments(
        &mut self,
        datagram: &FragKey,
        now: Millis,
        tx: &mut [MbufBatch],
        redir: &mut [MbufBatch],
        punt: &mut [MbufBatch],
    ) {
        if self.frag_held.is_empty() || self.frag_held.release(datagram) == 0 {
            return;
        }
        while let Some((m, port)) = self.frag_held.take_released() {
            self.handle(m, port, Arrival::Uncounted(None), now, tx, redir, punt);
        }
    }

    /// Drops (frees) the held fragments whose first one did not come in time.
    fn expire_fragments(&mut self, now: Millis) {
        if self.frag_held.is_empty() {
            return;
        }
        let pipeline = &mut self.pipeline;
        self.frag_held.expire(now, |_| {
            pipeline.count_fragment_hold(FragHoldEvent::Expired)
        });
    }

    /// A frame of `len` bytes (as it came) dropped before the pipeline saw
    /// it: counted as received (packets, not bytes, as the pipeline would
    /// not have seen them) and dropped for `reason`.
    #[cold]
    fn refused(&mut self, len: usize, how: &Arrival<'_>, reason: DropReason) {
        let c = &mut self.pipeline.counters;
        match how {
            // Its burst counted its bytes (`len`, as it came) too.
            Arrival::Counted(_) => c.rx_bytes -= len as u64,
            Arrival::Uncounted(_) | Arrival::Held(_) => c.rx_packets += 1,
        }
        c.drop(reason);
    }

    /// The physical port a frame for logical `port` leaves by: `port`
    /// itself, or for an 802.1Q sub-interface its parent, the frame tagged.
    #[inline]
    fn egress_port(&mut self, m: &mut Mbuf, port: usize) -> Option<usize> {
        if port < self.tx.len() {
            return Some(port);
        }
        self.vlan_egress(m, port)
    }

    /// A frame for an 802.1Q sub-interface (logical `port`): tagged in-band;
    /// the parent port it leaves by. `None` (dropped and counted) for a
    /// port that is not a sub-interface, or without headroom for the tag.
    #[cold]
    fn vlan_egress(&mut self, m: &mut Mbuf, port: usize) -> Option<usize> {
        let vlan = u16::try_from(port)
            .ok()
            .and_then(|p| vlan::egress(p, &self.pipeline.tables().vlans));
        match vlan {
            Some((parent, vid)) if vlan::mbuf::push(m, vid) => Some(usize::from(parent)),
            Some(_) => {
                self.pipeline.counters.drop(DropReason::NoHeadroom);
                None
            }
            None => {
                self.pipeline.counters.drop(DropReason::UnknownVlan);
                None
            }
        }
    }

    /// Queues a frame the worker built itself (ARP, NS, announcements) on
    /// `port`, tagged if `port` is a sub-interface.
    fn send_own(&mut self, port: u16, mut m: Mbuf, tx: &mut [MbufBatch]) {
        let Some(p) = self.egress_port(&mut m, usize::from(port)) else {
            return;
        };
        if let (Some(q), Some(b)) = (self.tx.get_mut(p), tx.get_mut(p)) {
            push_tx(q, b, m, &mut self.pipeline);
        }
    }

    fn flush_punted(&mut self, punt: &mut [MbufBatch]) {
        for (p, batch) in punt.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.flush_punt(p, batch);
            }
        }
    }

    /// Hands punted frames to the port's TAP; what it does not take is dropped.
    fn flush_punt(&mut self, port: usize, batch: &mut MbufBatch) {
        if let Some(Some(q)) = self.tap_tx.get_mut(port) {
            q.tx_burst(batch);
        }
        for _ in batch.drain() {
            self.pipeline.counters.drop(DropReason::PuntFull);
        }
    }

    fn flush_all(&mut self, tx: &mut [MbufBatch], redir: &mut [MbufBatch]) {
        for (q, batch) in self.tx.iter_mut().zip(tx.iter_mut()) {
            if !batch.is_empty() {
                flush(q, batch, &mut self.pipeline);
            }
        }
        for (w, batch) in redir.iter_mut().enumerate() {
            if !batch.is_empty() {
                self.flush_redirect(w, batch);
            }
        }
    }

    fn flush_redirect(&mut self, w: usize, batch: &mut MbufBatch) {
        let sent = match self.redirect_out.get(w) {
            Some(Some(ring)) => ring.enqueue_burst(batch),
            _ => 0,
        };
        self.pipeline.counters.redirected_out += sent as u64;
        for _ in batch.drain() {
            self.pipeline.counters.drop(DropReason::RedirectFull);
        }
    }

    /// Between bursts: sweep, neighbour events, control requests. True
    /// when asked to stop.
    #[cold]
    fn housekeeping(
        &mut self,
        now: Millis,
        tx: &mut [MbufBatch],
        polls: u64,
        empty_polls: u64,
    ) -> bool {
        self.pipeline.housekeeping(now, SWEEP_BUDGET);
        for e in self.pipeline.take_neigh_events() {
            // A full channel loses the event; the next packet reports again.
            let _ = self.events.try_send(Event::Neigh(e));
        }
        while let Ok(req) = self.requests.try_recv() {
            match req {
                Request::DumpSessions { from, reply } => {
                    let mut sessions = Vec::new();
                    let next = self.pipeline.sessions().page(
                        from as usize,
                        DUMP_SCAN,
                        DUMP_TAKE,
                        &mut sessions,
                    );
                    let templates = if from == 0 {
                        self.pipeline
                            .templates()
                            .iter()
                            .filter(|t| t.is_live(now))
                            .copied()
                            .collect()
                    } else {
                        Vec::new()
                    };
                    let exts = sessions
                        .iter()
                        .map(|s| self.pipeline.session_ext(s))
                        .collect();
                    let from_peer = sessions
                        .iter()
                        .map(|s| self.pipeline.session_from_peer(s))
                        .collect();
                    let _ = reply.send(SessionPage {
                        now,
                        sessions,
                        exts,
                        from_peer,
                        next: next.map(|n| n as u32),
                        templates,
                    });
                }
                Request::Publish(ack) => {
                    self.publish(polls, empty_polls);
                    let _ = ack.send(());
                }
                Request::CountTemplates(reply) => {
                    let mut counts = vec![0u32; usize::from(self.pipeline.tables().rs_count)];
                    for t in self.pipeline.templates().iter().filter(|t| t.is_live(now)) {
                        if let Some(c) = counts.get_mut(usize::from(t.rs_index)) {
                            *c += 1;
                        }
                    }
                    let _ = reply.send(counts);
                }
                Request::Tables(t) => {
                    let generation = t.generation;
                    let old = self.pipeline.set_tables(t);
                    self.shared.generation.store(generation, Ordering::Relaxed);
                    Retired::Tables(old).send(&self.retired);
                }
                Request::Neigh(n) => {
                    let old = self.pipeline.set_neigh(n);
                    Retired::Neigh(old).send(&self.retired);
                    self.held.snapshot_arrived();
                }
                Request::FlushServer {
                    rs_index,
                    from,
                    reply,
                } => {
                    let _ = reply.send(self.pipeline.flush_server_page(rs_index, from, DUMP_SCAN));
                }
                Request::SendArp { port, target } => self.send_arp(port, target, tx),
                Request::SendNs {
                    port,
                    target,
                    source,
                } => self.send_ns(port, target, source, tx),
                Request::Announce { port, ip } => self.announce(port, ip, tx),
                Request::SyncFeed(feed) => self.pipeline.set_sync_feed(feed),
                Request::InstallSynced { batch, reply } => {
                    let mut report = InstallReport::default();
                    for r in batch.iter() {
                        report.count(self.pipeline.install_synced(r, now));
                    }
                    let _ = reply.send((report, batch));
                }
            }
        }
        let mut none: [MbufBatch; 0] = [];
        self.flush_all(tx, &mut none);
        self.shared.stop.load(Ordering::Relaxed)
    }

    fn send_arp(&mut self, port: u16, target: [u8; 4], tx: &mut [MbufBatch]) {
        let Some(i) = self.pipeline.tables().interfaces.get(usize::from(port)) else {
            return;
        };
        let mut frame = [0u8; ARP_FRAME_LEN];
        neigh::emit_request(&mut frame, i.mac, i.addr, target);
        let Some(mut m) = self.pool.alloc() else {
            return;
        };
        // Pad to the 60-byte Ethernet minimum.
        if !m.set_len(60) {
            return;
        }
        let d = m.data_mut();
        d.fill(0);
        d[..frame.len()].copy_from_slice(&frame);
        self.send_own(port, m, tx);
    }

    fn send_ns(&mut self, port: u16, target: [u8; 16], source: [u8; 16], tx: &mut [MbufBatch]) {
        let Some(i) = self.pipeline.tables().interfaces.get(usize::from(port)) else {
            return;
        };
        let mut ns = [0u8; neigh::NS_FRAME_LEN];
        let mut probe = [0u8; neigh::DAD_FRAME_LEN];
        let frame: &[u8] = if source == [0; 16] {
            neigh::emit_dad_probe(&mut probe, i.mac, target);
            &probe
        } else {
            neigh::emit_solicitation(&mut ns, i.mac, source, target);
            &ns
        };
        let Some(mut m) = self.pool.alloc() else {
            return;
        };
        if !m.set_len(frame.len()) {
            return;
        }
        m.data_mut().copy_from_slice(frame);
        self.send_own(port, m, tx);
    }

    /// Sends a gratuitous ARP or unsolicited NA for `ip` out of `port`.
    fn announce(&mut self, port: u16, ip: Addr, tx: &mut [MbufBatch]) {
        let Some(i) = self.pipeline.tables().interfaces.get(usize::from(port)) else {
            return;
        };
        let mut arp = [0u8; ARP_FRAME_LEN];
        let mut na = [0u8; neigh::NA_FRAME_LEN];
        let frame: &[u8] = match ip.to_v4() {
            Some(v4) => {
                neigh::emit_gratuitous_arp(&mut arp, i.mac, v4);
                &arp
            }
            None => {
                neigh::emit_unsolicited_na(&mut na, i.mac, ip.octets());
                &na
            }
        };
        let Some(mut m) = self.pool.alloc() else {
            return;
        };
        // At least the 60-byte Ethernet minimum.
        if !m.set_len(frame.len().max(60)) {
            return;
        }
        let d = m.data_mut();
        d.fill(0);
        d[..frame.len()].copy_from_slice(frame);
        self.send_own(port, m, tx);
    }

    fn publish(&self, polls: u64, empty_polls: u64) {
        let c = &self.pipeline.counters;
        let s = &self.shared;
        s.rx_packets.store(c.rx_packets, Ordering::Relaxed);
        s.tx_packets.store(c.tx_packets, Ordering::Relaxed);
        s.rx_bytes.store(c.rx_bytes, Ordering::Relaxed);
        s.tx_bytes.store(c.tx_bytes, Ordering::Relaxed);
        for (a, v) in s.drops.iter().zip(c.drops.iter()) {
            a.store(*v, Ordering::Relaxed);
        }
        s.sessions
            .store(self.pipeline.sessions().len() as u64, Ordering::Relaxed);
        s.sessions_created
            .store(c.sessions_created, Ordering::Relaxed);
        s.sessions_expired
            .store(c.sessions_expired, Ordering::Relaxed);
        for (i, cc) in self.pipeline.rs_conns().iter().enumerate() {
            if let (Some(a), Some(ia), Some(cr)) = (
                s.rs_active.get(i),
                s.rs_inactive.get(i),
                s.rs_created.get(i),
            ) {
                a.store(cc.active, Ordering::Relaxed);
                ia.store(cc.inactive, Ordering::Relaxed);
                cr.store(cc.created, Ordering::Relaxed);
            }
        }
        for (i, t) in self.pipeline.rs_traffic().iter().enumerate() {
            for (slot, v) in
                s.rs_traffic
                    .iter()
                    .zip([t.in_pkts, t.out_pkts, t.in_bytes, t.out_bytes])
            {
                if let Some(a) = slot.get(i) {
                    a.store(v, Ordering::Relaxed);
                }
            }
        }
        s.polls.store(polls, Ordering::Relaxed);
        s.empty_polls.store(empty_polls, Ordering::Relaxed);
        s.redirected_out.store(c.redirected_out, Ordering::Relaxed);
        s.redirected_in.store(c.redirected_in, Ordering::Relaxed);
        s.punted.store(c.punted, Ordering::Relaxed);
        let g = self.pipeline.flood_guard();
        s.guard_on.store(g.is_on(), Ordering::Relaxed);
        for (a, v) in s.guard.iter().zip(g.counters.values()) {
            a.store(v, Ordering::Relaxed);
        }
        for (a, v) in s.events.iter().zip(c.events()) {
            a.store(v, Ordering::Relaxed);
        }
        for (a, v) in s.frags.iter().zip(self.pipeline.frag_counters().values()) {
            a.store(v, Ordering::Relaxed);
        }
        for (a, v) in s.access_hits.iter().zip(self.pipeline.access_hits()) {
            a.store(*v, Ordering::Relaxed);
        }
        let sp = self.pipeline.synproxy_counters().values();
        for (a, v) in s.synproxy.iter().zip(sp) {
            a.store(v, Ordering::Relaxed);
        }
    }
}

/// Sends a batch; what the queue does not take is dropped and counted.
/// Bytes were counted when frames joined the batch ([`push_tx`]); frames
/// that do not leave are taken off again, so the common case walks the
/// batch once, inside the driver.
fn flush(q: &mut TxQueue, batch: &mut MbufBatch, pipeline: &mut Pipeline) {
    let sent = q.tx_burst(batch);
    pipeline.counters.tx_packets += sent as u64;
    for m in batch.drain() {
        pipeline.counters.tx_bytes -= m.len() as u64;
        pipeline.counters.drop(DropReason::TxFull);
    }
}

/// Queues a frame for `port`, flushing first when the batch is full.
#[inline]
fn push_tx(q: &mut TxQueue, batch: &mut MbufBatch, m: Mbuf, pipeline: &mut Pipeline) {
    if batch.is_full() {
        flush(q, batch, pipeline);
    }
    let len = m.len() as u64;
    match batch.push(m) {
        Ok(()) => pipeline.counters.tx_bytes += len,
        Err(_) => pipeline.counters.drop(DropReason::TxFull),
    }
}

#[cfg(test)]
mod tests {
    use super::ahead_of;

    /// The rotation [`super::Worker::run`] receives and handles the RX
    /// ports' bursts by: every port's burst is handled at its own turn,
    /// once, after the next port's and the one after's were received, and
    /// a batch is received into only when empty.
    #[test]
    fn bursts_two_ports_ahead() {
        for ports in 0..10usize {
            let mut ahead: [Vec<usize>; 3] = Default::default();
            for (p, batch) in (0..ports).zip(&mut ahead).take(2) {
                batch.push(p);
            }
            let mut handled = Vec::new();
            for port in 0..ports {
                let [rx, next, after] = ahead_of(&mut ahead, port);
                assert!(after.is_empty(), "{ports} ports, port {port}");
                if port + 2 < ports {
                    after.push(port + 2);
                }
                assert_eq!(*rx, [port], "{ports} ports");
                let want_next: &[usize] = if port + 1 < ports { &[port + 1] } else { &[] };
                assert_eq!(next.as_slice(), want_next, "{ports} ports, port {port}");
                handled.append(rx);
            }
            assert_eq!(handled, (0..ports).collect::<Vec<_>>());
            assert!(ahead.iter().all(Vec::is_empty));
        }
    }
}
