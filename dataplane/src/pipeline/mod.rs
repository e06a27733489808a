//! One worker's packet pipeline: every frame goes through the same stages,
//! and each stage lives in a module of its own.
//!
//! ```text
//!  frame ─ classify ─┬─ ARP, ND, echo to an owned address ─> local/ (reply in place)
//!   (classify.rs)    ├─ ICMP error quoting a session ──────> icmp_relay.rs
//!                    └─ TCP, UDP: session lookup (both keys)
//!                        ├─ hit ──> fast path (fast.rs): state, expiry,
//!                        │          then xmit/ by the session's mode
//!                        │          (fullnat, nat, dr, tun, nat64)
//!                        └─ miss ─> owner? (owner.rs) else redirect;
//!                                   SYN or datagram to a VIP: slow path
//!                                   (slow.rs): schedule, borrow a local
//!                                   port, resolve the next hop, insert
//!  handler's Step ─ process_buf: reshape the frame in its buffer
//!                   (TUN encapsulation, NAT64, a neighbour advertisement)
//!                   ─> Verdict for the worker
//! ```
//!
//! A handler answers with a `Step`: what the worker should do with the
//! frame ([`Verdict`]), and for a frame to transmit, the change of length
//! that only [`Pipeline::process_buf`] (which holds the whole buffer) can
//! make (`Reshape`). Nothing travels between stages through fields of
//! the pipeline.
//!
//! Forwarding methods, per real server ([`Forward`]), chosen when the
//! session is created and kept in it ([`Session::forward`]); see
//! [`crate::xmit`] for what each does to a packet. UDP sessions stay
//! ESTABLISHED and live for the UDP timeout after their last datagram.
//!
//! One-packet scheduling (`ipvsadm -o`, UDP services): every datagram from a
//! client is scheduled on its own. Its session is indexed under the RS key
//! only ([`SessionTable::insert_rs_only`]), so the server's reply still finds
//! its way back (FULLNAT, NAT) while the client's next datagram misses and
//! is scheduled again; the first reply ends the session (its local port
//! goes back to the pool), or the UDP timeout does if none comes. DR and TUN
//! sessions, which never see a reply, end as soon as the datagram is sent.
//! The kernel frees one-packet connections at once and so cannot translate
//! NAT replies; rvs keeps them until the reply.
//!
//! Layer 2: each session caches its next hops when created. Toward the real
//! server, the published neighbour snapshot gives the MAC. A miss is
//! reported to control, which resolves it, and the frame is held
//! ([`Verdict::Hold`]) with the [`Decision`] made for it (server, template,
//! local address and port): when the worker releases it
//! ([`Pipeline::process_held_buf`]) the session is created by that decision,
//! not scheduled a second time. Toward the client, the session keeps the
//! source MAC and port of the client's first packet, as DPVS's `fast_xmit`
//! does: replies leave the way requests came in.
//!
//! Several workers: every flow has one owning worker, computable by any
//! worker from the packet alone (see [`owner`]). A packet on its owner hits
//! the session table at once; one that RSS put elsewhere misses, and only
//! then is the owner computed and the verdict [`Verdict::Redirect`].
//!
//! Scheduling happens only in the slow path, reading this worker's
//! connection counts (see [`crate::sched`] for what per-worker counts mean
//! for the aggregate), and thresholds (`-x`/`-y`) are per worker too (see
//! [`RsLimit`]).
//!
//! Everything here is plain Rust over `&mut [u8]`: the DPDK worker loop feeds
//! it mbuf data, tests feed it byte vectors. The per-packet path allocates
//! nothing and takes no lock; session creation is `#[cold]`.

mod admit;
mod classify;
mod client_addr;
mod counts;
mod fast;
mod flood;
mod flush;
mod fragments;
pub(crate) mod icmp_relay;
pub mod ingress_check;
mod own_addrs;
pub mod owner;
mod slow;
mod staged;
pub mod sync;
mod synproxy;
pub mod unreach;

use std::sync::Arc;

pub use classify::Desc;
pub use counts::{ConnCount, RsLimit, RsTraffic};
pub use fragments::FragHoldEvent;
pub use owner::{client_owner, persistent_owner};
pub use slow::Decision;

use crate::addr::Addr;
use crate::frag::{FragCounters, FragTable};
use crate::guard::FloodGuard;
use crate::laddr::{PortPool, PortPools};
use crate::limits::WorkerLimits;
use crate::neigh::{NeighEvent, NeighMap};
use crate::packet::PacketBuf;
use crate::sched::Scheduler;
use crate::session::template::{TemplateSlot, TemplateTable, NO_TEMPLATE};
use crate::session::{Endpoint, Session, SessionTable, SlotId};
use crate::stats::{Counters, DropReason};
use crate::tables::{Forward, Tables};
use crate::time::Millis;
use crate::wire::MacAddr;
use crate::xmit::isn::IsnKey;
use crate::xmit::{self, nat64, tun};
use counts::View;

/// What to do with a frame after [`Pipeline::process`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Transmit the (rewritten) frame on this port.
    Forward {
        /// Port position in the worker's port list.
        port: u16,
    },
    /// The frame belongs to another worker's session: hand it over.
    Redirect {
        /// Index of the owning worker.
        worker: u16,
    },
    /// The frame was used up (learned from); free it.
    Consumed,
    /// A new connection whose next hop's MAC is being resolved (control was
    /// asked): keep the frame, unchanged, with its decision, and offer both
    /// to [`Pipeline::process_held_buf`] when a new neighbour snapshot
    /// resolves `next_hop` (the worker's [`crate::hold::HoldQueue`]); a frame
    /// that does not fit or waits too long is dropped as `neighbour_miss`
    /// and its decision given back ([`Pipeline::abandon`]).
    Hold {
        /// The address whose MAC the frame waits for.
        next_hop: Addr,
        /// The scheduling decision made for the frame, kept for its release.
        decision: Decision,
    },
    /// A later fragment that came before its datagram's first one: keep
    /// the frame, unchanged, until that first fragment is filed
    /// ([`Pipeline::take_filed_datagram`]), then offer it to
    /// [`Pipeline::process_released_buf`] (the worker's
    /// [`crate::frag_hold::FragHold`]); one that does not fit or waits too
    /// long is dropped and counted ([`Pipeline::count_fragment_hold`]).
    HoldFragment {
        /// The datagram it belongs to.
        datagram: crate::frag::FragKey,
    },
    /// Hand the frame to the kernel through the interface's exception path
    /// (a TAP device carrying the interface's address): traffic for the
    /// appliance itself that the load balancer does not consume.
    Punt,
    /// Free the frame and count the reason.
    Drop(DropReason),
}

/// A handler's answer: the worker's [`Verdict`], and for a frame to send,
/// the change of its length in the buffer that [`Pipeline::process_buf`]
/// applies.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Step {
    /// Transmit on `port`, reshaped first if asked.
    Forward {
        /// Port position in the worker's port list.
        port: u16,
        /// What to do to the frame's extent first.
        reshape: Option<Reshape>,
    },
    /// Anything else, as the worker will see it.
    Done(Verdict),
}

impl Step {
    /// Transmit on `port` as it is.
    #[inline]
    pub(crate) const fn forward(port: u16) -> Self {
        Self::Forward {
            port,
            reshape: None,
        }
    }

    /// Free the frame and count `reason`.
    #[inline]
    pub(crate) const fn drop(reason: DropReason) -> Self {
        Self::Done(Verdict::Drop(reason))
    }
}

impl From<Verdict> for Step {
    #[inline]
    fn from(v: Verdict) -> Self {
        match v {
            Verdict::Forward { port } => Self::forward(port),
            v => Self::Done(v),
        }
    }
}

/// What [`Pipeline::process_buf`] does to a frame once its handler is done:
/// the changes that move the frame's start or end in its buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Reshape {
    /// Wrap it for a TUN session (see [`crate::xmit::tun`]).
    Encap(tun::Encap),
    /// Rebuild its header in the other family (FULLNAT64, see [`nat64`]).
    Translate {
        /// Transport protocol.
        proto: u8,
        /// New source.
        src: Endpoint,
        /// New destination.
        dst: Endpoint,
    },
    /// Insert session `slot`'s TOA option or PROXY header (see
    /// [`crate::xmit::client_addr`]), then translate it if `translate`
    /// (FULLNAT64, the session's inbound leg).
    Insert {
        /// The session.
        slot: SlotId,
        /// Whether the method asked for [`Reshape::Translate`] too.
        translate: bool,
    },
    /// Replace it with a neighbour advertisement for `target` to `dst`.
    Advertise {
        /// The address advertised.
        target: [u8; 16],
        /// The solicitation's source.
        dst: [u8; 16],
        /// Our MAC on the port.
        mac: MacAddr,
    },
    /// Replace it with an ICMP (ICMPv6) port unreachable back to its
    /// sender (see [`unreach`]).
    Unreachable,
    /// SYN proxy: replace the client's SYN with the SYN-ACK carrying its
    /// cookie (see `synproxy.rs`).
    SynCookie {
        /// The time, for the cookie.
        now: Millis,
        /// Bytes the MSS leaves for what the service tells its servers
        /// (a TOA option, a PROXY header).
        room: u16,
    },
    /// SYN proxy: replace the client's ACK with its SYN to session
    /// `slot`'s server (holding the ACK first if it carries data).
    SynProxyOpen {
        /// The session.
        slot: SlotId,
        /// The MSS the cookie kept.
        mss: u16,
        /// SACK-permitted, as the cookie kept it.
        sack: bool,
        /// The time, for the held frame.
        now: Millis,
    },
    /// SYN proxy: replace the server's stray ACK (to the proxy's SYN) with
    /// a reset back to it, sequence number `seq`.
    SynProxyReset {
        /// The ACK's acknowledgement number.
        seq: u32,
    },
    /// SYN proxy: replace the server's SYN-ACK with the client's held
    /// frame or rebuilt ACK, sent through session `slot`.
    SynProxyRelease {
        /// The session.
        slot: SlotId,
        /// The TSecr of a rebuilt ACK, in the client's view.
        tsecr: u32,
        /// The time.
        now: Millis,
    },
}

/// One worker's state and packet path.
#[derive(Debug)]
pub struct Pipeline {
    pub(crate) tables: Arc<Tables>,
    /// What `tables` owns, as sets (see `own_addrs`).
    own: own_addrs::OwnAddrs,
    pub(crate) sessions: SessionTable,
    pub(crate) pools: PortPools,
    scheds: Vec<Scheduler>,
    sched_seed: u64,
    /// Where new local-address pools start lending (see
    /// [`Pipeline::randomize_port_start`]); `None`: at the range's start.
    port_start: Option<u64>,
    /// Flows whose first frame waits for its next hop, and since when
    /// (see `slow.rs`): their retransmissions are not scheduled again.
    held_flows: Vec<(crate::session::FlowKey, crate::addr::Addr, Millis)>,
    laddr_cursor: Vec<usize>,
    pub(crate) neigh: Arc<NeighMap>,
    neigh_events: Vec<NeighEvent>,
    rs_conns: Vec<ConnCount>,
    rs_traffic: Vec<RsTraffic>,
    rs_limits: Vec<RsLimit>,
    templates: TemplateTable,
    session_template: Vec<TemplateSlot>,
    /// In a burst ([`Pipeline::begin_burst`]): new FULLNAT sessions wait in
    /// `staged` for their server-side keys to be filed (`staged.rs`).
    staging: bool,
    staged: Vec<staged::Staged>,
    worker: u16,
    workers: u16,
    /// Whether an exception path exists (rvsd: one TAP per interface).
    pub(crate) punt: bool,
    /// Identification field of the next outer IPv4 header.
    ip_id: u16,
    /// This worker's counters.
    pub counters: Counters,
    /// Rate limits of the port unreachable answers (see [`unreach`]).
    unreach: unreach::Limiter,
    /// The flood guard (see [`crate::guard`]).
    guard: FloodGuard,
    /// Datagrams whose later fragments follow their first one (see
    /// [`crate::frag`]).
    frags: FragTable,
    /// ACL and limit state: client prefixes, hit counters (see [`crate::limits`]).
    limits: WorkerLimits,
    /// Connections of a persistent service scheduled without a template
    /// because the template table was full (they lose their affinity).
    pub templates_full: u64,
    /// Connection sync's feed toward control, when a master runs.
    sync: Option<Box<sync::SyncTap>>,
    /// The SYN proxy's secret, held frames and counters.
    synproxy: synproxy::SynProxy,
    /// The key of FULLNAT's server-side ISNs (see [`crate::xmit::isn`]).
    isn_key: IsnKey,
    /// The wall clock at `Millis(0)` (ms since the Unix epoch): the ISN
    /// clock runs on wall time, so two appliances with one key number a
    /// tuple alike (0 in tests: the ISN clock is `now`).
    isn_epoch: u64,
    /// Tests: every session the long way (`forward_any`), to check the
    /// one-pass path against it.
    #[cfg(test)]
    long_way: bool,
}

impl Pipeline {
    /// Pipeline of worker `worker` (of `workers`) forwarding by `tables`
    /// and `neigh`, with room for `capacity` sessions.
    #[must_use]
    pub fn new(
        tables: Arc<Tables>,
        neigh: Arc<NeighMap>,
        capacity: u32,
        seed: u64,
        worker: u16,
        workers: u16,
    ) -> Self {
        let mut p = Self {
            sessions: SessionTable::new(capacity, seed),
            own: own_addrs::OwnAddrs::default(),
            pools: PortPools::new(crate::guard::GuardConfig::default().port_high_water),
            scheds: Vec::new(),
            sched_seed: seed ^ (u64::from(worker) << 48 | 0x5c4e_d000),
            port_start: None,
            held_flows: Vec::new(),
            laddr_cursor: Vec::new(),
            neigh,
            neigh_events: Vec::with_capacity(NEIGH_EVENTS_MAX),
            rs_conns: Vec::new(),
            rs_traffic: Vec::new(),
            rs_limits: Vec::new(),
            templates: TemplateTable::new(template_capacity(capacity)),
            session_template: vec![NO_TEMPLATE; capacity.max(1) as usize],
            staging: false,
            staged: Vec::with_capacity(staged::STAGED_MAX),
            counters: Counters::default(),
            guard: FloodGuard::new(Default::default(), capacity.max(1) as usize),
            frags: FragTable::new(),
            templates_full: 0,
            unreach: unreach::Limiter::default(),
            limits: WorkerLimits::new(capacity.max(1) as usize, seed ^ u64::from(worker)),
            sync: None,
            synproxy: synproxy::SynProxy::new(seed ^ u64::from(worker).rotate_left(32)),
            isn_key: IsnKey::from_seed(seed ^ u64::from(worker).rotate_left(16)),
            isn_epoch: 0,
            #[cfg(test)]
            long_way: false,
            worker,
            workers: workers.max(1),
            punt: false,
            ip_id: worker.wrapping_mul(0x1000),
            tables: Arc::clone(&tables),
        };
        p.adopt(&tables);
        p
    }

    /// Switches to new tables and returns the old ones (for control to
    /// free). Sessions keep their endpoints and go on forwarding; a service
    /// that keeps its scheduler keeps its scheduler state (adjusted as the
    /// kernel's `upd_dest` hooks do when its servers changed), others start
    /// afresh; local addresses and real servers keep their indices (control
    /// numbers them append-only), so pools, counters and thresholds carry
    /// over; persistence templates stay until they expire.
    pub fn set_tables(&mut self, tables: Arc<Tables>) -> Arc<Tables> {
        self.adopt(&tables);
        std::mem::replace(&mut self.tables, tables)
    }

    /// Local-address pools start lending at a port derived from `seed`
    /// (rvsd: a new one each start), not at the range's first port: a
    /// restarted appliance then rarely reuses a tuple its servers still
    /// hold in TIME_WAIT. Pools made before this call are rotated too.
    pub fn randomize_port_start(&mut self, seed: u64) {
        let start = seed | 1;
        self.port_start = Some(start);
        for i in 0..self.pools.len() {
            self.pools.rotate(i, start.rotate_left(i as u32 * 7));
        }
    }

    /// Sets the key of FULLNAT's server-side ISNs (rvsd: 16 bytes from the
    /// kernel's random source at start; by default one derived from the
    /// seed, which tests rely on).
    pub fn set_isn_key(&mut self, key: [u8; 16]) {
        self.isn_key = IsnKey::from_bytes(key);
    }

    /// Sets the wall-clock time (ms since the Unix epoch) of `Millis(0)`,
    /// the worker's time zero: the ISN clock is then wall time, as Linux's
    /// (`ktime_get_real`). The worker sets it at start and again every
    /// second, so that its TSC-derived `now` cannot drift from the wall
    /// clock (which NTP keeps in step across the appliances of a pair).
    pub fn set_isn_epoch(&mut self, unix_ms_at_zero: u64) {
        self.isn_epoch = unix_ms_at_zero;
    }

    /// Switches to a new neighbour snapshot and returns the old one.
    pub fn set_neigh(&mut self, neigh: Arc<NeighMap>) -> Arc<NeighMap> {
        std::mem::replace(&mut self.neigh, neigh)
    }

    #[cold]
    fn adopt(&mut self, tables: &Tables) {
        self.own = own_addrs::OwnAddrs::of(tables);
        let (lo, hi) = tables.lport_range;
        while self.pools.len() < tables.laddrs.len() {
            let mut pool = PortPool::new_slice(lo, hi, self.workers, self.worker);
            if let Some(start) = self.port_start {
                pool.rotate(start.rotate_left(self.pools.len() as u32 * 7));
            }
            self.pools.push(pool);
        }
        self.laddr_cursor = vec![0; tables.services.len()];
        let rs_count = usize::from(tables.rs_count);
        if self.rs_conns.len() < rs_count {
            self.rs_conns.resize(rs_count, ConnCount::default());
            self.rs_traffic.resize(rs_count, RsTraffic::default());
        }
        self.adopt_limits(tables);
        if tables.services.iter().any(|s| s.limits.per_client()) {
            self.limits.ensure_clients();
        }
        self.synproxy.adopt(tables);
        // Scheduler state: kept for a service (same VIP, protocol and
        // policy) that was there before; `self.tables` is still the old
        // snapshot here.
        let mut old = std::mem::take(&mut self.scheds);
        let mut scheds = Vec::with_capacity(tables.services.len());
        for (k, s) in tables.services.iter().enumerate() {
            let view = View {
                servers: &s.servers,
                conns: &self.rs_conns,
                limits: &self.rs_limits,
            };
            let before = self
                .tables
                .services
                .iter()
                .position(|o| o.vip == s.vip && o.proto == s.proto);
            let kept = before
                .filter(|&j| old.get(j).is_some_and(|x| x.kind() == s.sched))
                .map(|j| {
                    let mut sched =
                        std::mem::replace(&mut old[j], Scheduler::WeightedLeastConnection);
                    if self.tables.services[j].servers != s.servers {
                        sched.servers_changed(&view);
                    }
                    sched
                });
            scheds.push(
                kept.unwrap_or_else(|| Scheduler::new(s.sched, &view, self.sched_seed ^ k as u64)),
            );
        }
        self.scheds = scheds;
    }

    /// This worker's threshold shares for every real server of `tables`,
    /// keeping the overload flags (re-judged against the new shares).
    fn adopt_limits(&mut self, tables: &Tables) {
        let rs_count = usize::from(tables.rs_count);
        let mut limits = vec![RsLimit::default(); rs_count.max(self.rs_limits.len())];
        for rs in tables.services.iter().flat_map(|s| &s.servers) {
            let i = usize::from(rs.index);
            if i < limits.len() {
                limits[i] = RsLimit::share(rs.thresholds, rs.index, self.worker, self.workers);
            }
        }
        for (i, l) in limits.iter_mut().enumerate() {
            let was = self.rs_limits.get(i).is_some_and(|o| o.overloaded);
            let c = self.rs_conns.get(i).copied().unwrap_or_default();
            l.overloaded = was;
            l.unbound(&c);
            l.bound(&c);
        }
        self.rs_limits = limits;
    }

    /// Sizes the persistence template table (default:
    /// [`template_capacity`] of the session capacity). Allocates: call it
    /// before traffic; ignored once templates exist.
    pub fn set_template_capacity(&mut self, capacity: u32) {
        if self.templates.is_empty() {
            self.templates = TemplateTable::new(capacity.max(1));
        }
    }

    /// Turns on the exception path: traffic for the interface addresses
    /// that the load balancer does not consume goes to the kernel
    /// ([`Verdict::Punt`]) instead of being dropped.
    pub fn enable_punt(&mut self) {
        self.punt = true;
    }

    pub(crate) fn is_interface_addr(&self, ip: Addr) -> bool {
        self.tables.is_interface_addr(ip)
    }

    /// True when traffic to `dst` that the balancer does not consume goes
    /// to the kernel side: the exception path is on and `dst` is an
    /// interface address or a link-local multicast group.
    #[inline]
    pub(crate) fn is_kernel_bound(&self, dst: Addr) -> bool {
        self.punt && (self.is_interface_addr(dst) || is_link_local_multicast(dst))
    }

    /// `Punt` for an interface address, or a link-local multicast group
    /// (224.0.0.0/24, ff02::/16: VRRP's, connection sync's), when the
    /// exception path is on, else the drop.
    pub(crate) fn punt_or(&self, dst: Addr, reason: DropReason) -> Step {
        if self.is_kernel_bound(dst) {
            Step::Done(Verdict::Punt)
        } else {
            Step::drop(reason)
        }
    }

    /// Neighbour events since the last call, for control.
    pub fn take_neigh_events(&mut self) -> std::vec::Drain<'_, NeighEvent> {
        self.neigh_events.drain(..)
    }

    /// True if the current neighbour snapshot has a MAC for `ip`.
    #[must_use]
    pub fn resolves(&self, ip: Addr) -> bool {
        self.neigh.lookup(ip).is_some()
    }

    pub(crate) fn report(&mut self, e: NeighEvent) {
        if self.neigh_events.len() < NEIGH_EVENTS_MAX && !self.neigh_events.contains(&e) {
            self.neigh_events.push(e);
        }
    }

    /// This worker's local-port pools, by local-address index.
    #[must_use]
    pub fn pools(&self) -> &[PortPool] {
        &self.pools
    }

    /// The sessions (for listings, and the worker's read-ahead).
    #[must_use]
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// The session-index hash of `frame`'s flow (its [`Desc`]): `None`
    /// for a frame that is not TCP or UDP over IP.
    #[inline]
    #[must_use]
    pub fn flow_hash(&self, frame: &[u8]) -> Option<u32> {
        self.describe(frame).map(|d| d.hash)
    }

    /// Per-real-server traffic, by global real-server index.
    #[must_use]
    pub fn rs_traffic(&self) -> &[RsTraffic] {
        &self.rs_traffic
    }

    /// Per-real-server connection counts, by global real-server index.
    #[must_use]
    pub fn rs_conns(&self) -> &[ConnCount] {
        &self.rs_conns
    }

    /// Per-real-server threshold state on this worker, by global index.
    #[must_use]
    pub fn rs_limits(&self) -> &[RsLimit] {
        &self.rs_limits
    }

    /// This worker's fragment counters (see [`crate::frag`]).
    #[must_use]
    pub fn frag_counters(&self) -> &FragCounters {
        &self.frags.counters
    }

    /// Hit counters of ACL rules and limits on this worker, by the index
    /// control gave each (see [`crate::limits::MAX_COUNTERS`]).
    #[must_use]
    pub fn access_hits(&self) -> &[u64] {
        &self.limits.hits
    }

    /// This worker's persistence templates (for `--persistent-conn`).
    #[must_use]
    pub fn templates(&self) -> &TemplateTable {
        &self.templates
    }

    /// The neighbour snapshot in force.
    #[must_use]
    pub fn neighbours(&self) -> &NeighMap {
        &self.neigh
    }

    /// The tables in force.
    #[must_use]
    pub fn tables(&self) -> &Tables {
        &self.tables
    }

    /// Handles one received frame in place. The caller transmits, frees or
    /// counts according to the verdict; drops are already counted here.
    /// With no room around the frame, TUN forwarding drops with
    /// [`DropReason::NoHeadroom`]: the worker uses [`Self::process_buf`].
    #[inline]
    pub fn process(&mut self, frame: &mut [u8], in_port: u16, now: Millis) -> Verdict {
        self.process_buf(&mut PacketBuf::whole(frame), in_port, now)
    }

    /// [`Self::process`] for a frame inside a buffer it may grow into
    /// (encapsulation) or shrink (an ICMP error in its place); the caller
    /// takes the new window from `pkt`.
    #[inline]
    pub fn process_buf(&mut self, pkt: &mut PacketBuf<'_>, in_port: u16, now: Millis) -> Verdict {
        self.process_desc(pkt, in_port, None, now)
    }

    /// [`Self::process_buf`] for a frame the caller has described already
    /// ([`Self::describe`], on the frame as it is now): its headers are
    /// not parsed again.
    #[inline]
    pub fn process_desc(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        in_port: u16,
        desc: Option<&Desc>,
        now: Millis,
    ) -> Verdict {
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += pkt.frame().len() as u64;
        self.process_counted(pkt, in_port, desc, now)
    }

    /// [`Self::process_desc`] for a frame already counted as received
    /// (`rx_packets`, `rx_bytes`): the worker counts a burst at once.
    #[inline]
    pub fn process_counted(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        in_port: u16,
        desc: Option<&Desc>,
        now: Millis,
    ) -> Verdict {
        let step = self.classify(pkt.frame_mut(), in_port, desc, &mut None, now);
        self.finish(pkt, step)
    }

    /// A frame held for its next hop ([`Verdict::Hold`]) offered again with
    /// the decision made for it: a new connection is created by that
    /// decision (its server is not scheduled again); if the frame no longer
    /// needs it (its session exists by now, the tables changed under it),
    /// the decision is given back. Not counted as received again.
    pub fn process_held_buf(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        in_port: u16,
        decision: Decision,
        now: Millis,
    ) -> Verdict {
        let mut held = Some(decision);
        let step = self.classify(pkt.frame_mut(), in_port, None, &mut held, now);
        if let Some(d) = held {
            self.abandon(d);
        }
        self.finish(pkt, step)
    }

    /// [`Self::process_held_buf`] for a frame in a byte slice.
    pub fn process_held(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        decision: Decision,
        now: Millis,
    ) -> Verdict {
        self.process_held_buf(&mut PacketBuf::whole(frame), in_port, decision, now)
    }

    /// Applies a handler's reshape and counts a drop.
    #[inline]
    fn finish(&mut self, pkt: &mut PacketBuf<'_>, step: Step) -> Verdict {
        let verdict = match step {
            Step::Forward {
                port,
                reshape: None,
            } => return Verdict::Forward { port },
            Step::Forward {
                port,
                reshape: Some(r),
            } => self.apply_reshape(pkt, r, port),
            Step::Done(v) => v,
        };
        if let Verdict::Drop(r) = verdict {
            self.counters.drop(r);
        }
        verdict
    }

    /// Grows, shrinks or rewrites the frame as the handler asked.
    #[cold]
    fn apply_reshape(&mut self, pkt: &mut PacketBuf<'_>, r: Reshape, port: u16) -> Verdict {
        match r {
            Reshape::Encap(e) => self.encapsulate(pkt, &e),
            Reshape::Unreachable => {
                if unreach::write(pkt, self.port_mac(port)) {
                    self.counters.drop(DropReason::PortUnreachable);
                    Verdict::Forward { port }
                } else {
                    Verdict::Drop(DropReason::NoRealServer)
                }
            }
            Reshape::Insert { slot, translate } => {
                self.insert_client_addr(pkt, slot, translate, port)
            }
            Reshape::Advertise { target, dst, mac } => {
                crate::local::nd::write_na(pkt, target, dst, mac);
                Verdict::Forward { port }
            }
            Reshape::SynCookie { now, room } => self.answer_syn(pkt, port, now, room),
            Reshape::SynProxyOpen {
                slot,
                mss,
                sack,
                now,
            } => self.open_server(pkt, slot, mss, sack, now),
            Reshape::SynProxyReset { seq } => self.reset_server(pkt, seq, port),
            Reshape::SynProxyRelease { slot, tsecr, now } => {
                self.release_to_server(pkt, slot, tsecr, now)
            }
            Reshape::Translate { proto, src, dst } => {
                let done = if src.ip.is_v4() {
                    nat64::to_v4(pkt, proto, src, dst)
                } else {
                    nat64::to_v6(pkt, proto, src, dst)
                };
                done.map_or_else(Verdict::Drop, |()| Verdict::Forward { port })
            }
        }
    }

    /// Applies a TUN session's encapsulation (see [`tun`]).
    #[cold]
    fn encapsulate(&mut self, pkt: &mut PacketBuf<'_>, e: &tun::Encap) -> Verdict {
        self.ip_id = self.ip_id.wrapping_add(1);
        match tun::encapsulate(pkt, e, self.ip_id) {
            tun::Outcome::Encapsulated => Verdict::Forward { port: e.port },
            tun::Outcome::FragNeeded => {
                // The packet itself is dropped; the sender learns the MTU.
                self.counters.drop(DropReason::TooBig);
                Verdict::Forward {
                    port: e.client_port,
                }
            }
            tun::Outcome::Dropped(r) => Verdict::Drop(r),
        }
    }

    /// How a TUN session's packets leave on `port` toward `rs`.
    pub(crate) fn encap_toward(
        &self,
        port: u16,
        rs: Addr,
        client_port: u16,
        client_mac: MacAddr,
    ) -> tun::Encap {
        tun::encap_toward(&self.tables, port, rs, client_port, client_mac)
    }

    /// Our MAC on `port`.
    #[inline]
    pub(crate) fn port_mac(&self, port: u16) -> MacAddr {
        xmit::port_mac(&self.tables, port)
    }

    /// Removes a session and returns what it held.
    fn expire(&mut self, slot: SlotId) {
        // A session removed has both keys filed.
        self.file_staged();
        if let Some(s) = self.sessions.remove(slot) {
            self.release(slot, &s);
            self.counters.sessions_expired += 1;
        }
    }

    fn release(&mut self, slot: SlotId, s: &Session) {
        Held {
            pools: &mut self.pools,
            conns: &mut self.rs_conns,
            limits: &mut self.rs_limits,
            templates: &mut self.templates,
            session_template: &mut self.session_template,
            access: &mut self.limits,
        }
        .release(slot, s);
    }

    /// Periodic work between bursts: examine up to `budget` session slots
    /// and remove what has expired.
    pub fn housekeeping(&mut self, now: Millis, budget: usize) {
        self.file_staged();
        let mut held = Held {
            pools: &mut self.pools,
            conns: &mut self.rs_conns,
            limits: &mut self.rs_limits,
            templates: &mut self.templates,
            session_template: &mut self.session_template,
            access: &mut self.limits,
        };
        let n = self
            .sessions
            .sweep(now, budget, |slot, s| held.release(slot, s));
        self.counters.sessions_expired += n as u64;
        self.judge_guard(now);
        if !self.templates.is_empty() {
            self.templates.sweep(now, budget / 4 + 1);
        }
        self.frags.sweep(now, budget / 8 + 1);
    }
}

/// 224.0.0.0/24 or ff02::/16: groups that never leave the link (VRRP
/// adverts, the sync daemon's default group), for the kernel side.
fn is_link_local_multicast(a: Addr) -> bool {
    match a.to_v4() {
        Some([224, 0, 0, _]) => true,
        Some(_) => false,
        None => a.0[0] == 0xff && a.0[1] & 0x0f == 2,
    }
}

/// Template slots per worker for a session capacity: a quarter of it (a
/// template serves all connections of one client network), at least 64.
#[must_use]
pub fn template_capacity(session_capacity: u32) -> u32 {
    (session_capacity / 4).max(64)
}

/// What a session holds while it lives, to give back when it ends.
struct Held<'a> {
    pools: &'a mut PortPools,
    conns: &'a mut [ConnCount],
    limits: &'a mut [RsLimit],
    templates: &'a mut TemplateTable,
    session_template: &'a mut [TemplateSlot],
    access: &'a mut WorkerLimits,
}

impl Held<'_> {
    fn release(&mut self, slot: SlotId, s: &Session) {
        if s.forward == Forward::FullNat {
            if let Some(released) = self.pools.release(usize::from(s.laddr_index), s.laddr.port) {
                debug_assert!(
                    released.is_ok(),
                    "session held a port its pool did not lend"
                );
            }
        }
        let ri = usize::from(s.rs_index);
        if let Some(c) = self.conns.get_mut(ri) {
            c.sub(s.proto, s.state);
            if let Some(l) = self.limits.get_mut(ri) {
                l.unbound(c);
            }
        }
        if let Some(t) = self.session_template.get_mut(slot.0 as usize) {
            if *t != NO_TEMPLATE {
                self.templates.release(*t);
                *t = NO_TEMPLATE;
            }
        }
        self.access.closed(slot.0 as usize);
    }
}

/// Neighbour events a worker buffers between housekeeping rounds.
pub const NEIGH_EVENTS_MAX: usize = 64;

/// The names the scenario tests use (`use super::*` in each).
#[cfg(test)]
mod test_prelude {
    pub(super) use crate::session::{FlowKey, TcpState};
    pub(super) use crate::wire::{arp, ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp};
    pub(super) use crate::xmit::{rewrite, tun as tunnel};
}
#[cfg(test)]
use test_prelude::*;

#[cfg(test)]
mod admit_tests;
#[cfg(test)]
mod client_addr_tests;
#[cfg(test)]
mod flood_tests;
#[cfg(test)]
mod fragments_tests;
#[cfg(test)]
mod fwmark_tests;
#[cfg(test)]
mod hold_tests;
#[cfg(test)]
mod isn_tests;
#[cfg(test)]
mod modes_tests;
#[cfg(test)]
mod staged_tests;
#[cfg(test)]
mod sync_tests;
#[cfg(test)]
mod synproxy_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v6_tests;
