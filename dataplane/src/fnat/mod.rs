//! The FULLNAT pipeline of one worker: classify a frame, then answer it (ARP,
//! ICMP echo), forward it through a session, create a session, or drop it
//! with a reason.
//!
//! ```text
//!  frame ─┬─ ARP ────────── owned target? reply in place : learn + drop
//!         ├─ IPv4/ICMP ──── error quoting a session? relay it (see icmp_relay)
//!         │                 echo request to an owned address? reply in place
//!         └─ IPv4/TCP, UDP ─ session lookup (both keys)
//!                            ├─ hit, client side ─> rewrite inbound  ─> RS
//!                            ├─ hit, RS side ─────> rewrite outbound ─> client
//!                            └─ miss ─ SYN (any UDP datagram) to a VIP?
//!                                      create (cold path) : drop
//! ```
//!
//! Forwarding methods, per real server ([`Forward`]), chosen when the
//! session is created and kept in it ([`Session::forward`]):
//!
//! - FULLNAT: `client → vip` becomes `laddr:lport → rs`; replies come to
//!   the local address.
//! - NAT (masquerading): `client → vip` becomes `client → rs`; the real
//!   server's gateway is the appliance, and its replies `rs → client` become
//!   `vip → client`. The session's `laddr` is the client itself, so its RS
//!   key is `(rs, client)` and the same four-field rewrite serves both
//!   methods; no local port is borrowed.
//! - DR (direct routing): the frame goes to the real server's MAC with the
//!   IP packet untouched (TTL included); the server answers the client
//!   directly, so only client packets are seen and TCP state follows IPVS's
//!   INPUT-ONLY table ([`tcp_state::next_state_input_only`]).
//!
//! UDP sessions stay ESTABLISHED and live for the UDP timeout after their
//! last datagram; a UDP checksum of 0 (none) stays 0.
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
//! Owner of a NAT reply: it names no local port, but its session was created
//! by the owner of the client flow. A reply `rs:rport → client:cport` that
//! misses a worker's table is looked up as a NAT server of a service
//! ([`Tables::nat_service_of`]; configuration keeps that unique per
//! protocol), and the inverse key `client:cport → vip:vport` gives the owner
//! by the client rule below ([`client_owner`], or [`persistent_owner`]).
//!
//! Everything here is plain Rust over `&mut [u8]`: the DPDK worker loop feeds
//! it mbuf data, tests feed it byte vectors. The per-packet path allocates
//! nothing and takes no lock; session creation (scheduling, port allocation,
//! neighbour lookup, insert) is a separate `#[cold]` function.
//!
//! Layer 2: each session caches its next hops when created. Toward the real
//! server, the published neighbour snapshot gives the MAC (a miss is
//! reported to control, which resolves it, and the SYN is dropped; the
//! client retransmits it). Toward the client, the session keeps the source
//! MAC and port of the client's first packet, as DPVS's `fast_xmit` does:
//! replies leave the way requests came in.
//!
//! Several workers: every flow has one owning worker, computable by any
//! worker from the packet alone. A client flow belongs to worker
//! `stable_hash(client, vip) % workers` ([`client_owner`]); the session is
//! created there and borrows a local port from that worker's slice, so the
//! real server's replies belong to `lport % workers`
//! ([`crate::laddr::owner_of`]). A packet on its owner hits the session
//! table at once; one that RSS put elsewhere misses, and only then is the
//! owner computed and the verdict [`Verdict::Redirect`]. Correctness thus
//! never depends on how a device spreads traffic (af_packet's fanout even
//! moves flows between queues when one fills); good spreading only makes
//! redirects rare.
//!
//! Persistent services (`-p`): the owner of a client flow is
//! `stable_hash(client & netmask, vip) % workers` ([`persistent_owner`]), the
//! client's port left out, so every connection of one (masked) client meets
//! the same worker and its persistence template
//! ([`crate::session::template`]), whichever queue it arrived on. Changing a
//! live service's persistence or netmask changes its flows' owners: existing
//! connections whose packets arrive on their owner's queue carry on; one that
//! af_packet or RSS moves to another queue is redirected by the new rule
//! and dropped as `no_session` (rare; a reload is the usual way to change it).
//!
//! Scheduling happens only here, in the cold session-creation path, reading
//! this worker's connection counts (see [`crate::sched`] for what per-worker
//! counts mean for the aggregate).
//!
//! Thresholds (`-x`/`-y`) are per worker too: worker `w` of `W` enforces a
//! share of each server's thresholds, `upper / W` plus one for
//! `upper % W` of the workers (rotated by server, so no worker is always
//! short), over the connections it created. The shares add up to the
//! configured number, so the aggregate never exceeds `upper`; the price is
//! that a worker may refuse a server while another still has room in its
//! share (at most `W - 1` connections of headroom unused). A share of 0
//! (`upper < W`) means that worker sends that server nothing. The hysteresis
//! is the kernel's: overloaded once the worker's count reaches its upper
//! share; cleared when it falls below its lower share (at least 1), or below
//! 3/4 of the upper share when no lower threshold is set.

mod flush;
mod icmp_relay;
pub mod nat64;
pub mod read_ahead;
pub mod rewrite;
pub mod tunnel;

use std::sync::Arc;

use crate::laddr::{owner_of, PortPool};
use crate::neigh::{self, NeighEntry, NeighEvent, NeighMap};
use crate::packet::PacketBuf;
use crate::sched::{Backends, Flow, Scheduler};
use crate::session::template::{Template, TemplateKey, TemplateSlot, TemplateTable, NO_TEMPLATE};
use crate::session::{
    tcp_state, Addr, Direction, Endpoint, FlowKey, InsertError, Lookup, Session, SessionTable,
    SlotId, TcpState, LADDR_DR, LADDR_NAT, LADDR_TUN,
};
use crate::stats::{Counters, DropReason};
use crate::tables::{Forward, RealServer, Service, Tables, Thresholds};
use crate::time::Millis;
use crate::wire::{arp, ethernet, icmp, icmpv6, ipv4, ipv6, tcp, udp, MacAddr};

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
    /// asked): keep the frame, unchanged, and offer it again when a new
    /// neighbour snapshot resolves [`Pipeline::held_for`] (the worker's
    /// [`crate::hold::HoldQueue`]; what does not fit or waits too long is
    /// dropped as `neighbour_miss`).
    Hold,
    /// Hand the frame to the kernel through the interface's exception path
    /// (a TAP device carrying the interface's address): traffic for the
    /// appliance itself that the load balancer does not consume.
    Punt,
    /// Free the frame and count the reason.
    Drop(DropReason),
}

/// Active and inactive connection counts of one real server on one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCount {
    /// Sessions in ESTABLISHED.
    pub active: u32,
    /// Sessions in any other state.
    pub inactive: u32,
    /// Sessions ever created to this server on this worker.
    pub created: u64,
}

/// Traffic of one real server on one worker, as `ipvsadm --stats` counts
/// it: inbound is toward the server, outbound back to the client; bytes
/// are IP packet bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RsTraffic {
    /// Packets toward the server.
    pub in_pkts: u64,
    /// Packets back to clients.
    pub out_pkts: u64,
    /// Bytes toward the server.
    pub in_bytes: u64,
    /// Bytes back to clients.
    pub out_bytes: u64,
}

impl ConnCount {
    /// Active plus inactive (`ip_vs_dest_totalconns`).
    #[must_use]
    pub fn total(&self) -> u32 {
        self.active.saturating_add(self.inactive)
    }
    /// Counts a session in `state` of protocol `proto`. As IPVS, only TCP
    /// connections in ESTABLISHED are active: UDP sessions count as
    /// inactive (the kernel never clears `IP_VS_CONN_F_INACTIVE` for them).
    fn add(&mut self, proto: u8, state: TcpState) {
        if proto == ipv4::PROTO_TCP && state.is_active() {
            self.active += 1;
        } else {
            self.inactive += 1;
        }
    }
    fn sub(&mut self, proto: u8, state: TcpState) {
        if proto == ipv4::PROTO_TCP && state.is_active() {
            self.active = self.active.saturating_sub(1);
        } else {
            self.inactive = self.inactive.saturating_sub(1);
        }
    }
}

/// This worker's view of one real server's thresholds: its shares of the
/// configured numbers and whether the server is overloaded here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RsLimit {
    /// A threshold is configured.
    pub limited: bool,
    /// This worker's share of the upper threshold.
    pub upper: u32,
    /// This worker's share of the lower threshold (0: 3/4 of `upper`).
    pub lower: u32,
    /// `IP_VS_DEST_F_OVERLOAD` for this worker.
    pub overloaded: bool,
}

impl RsLimit {
    /// Worker `worker`'s shares of `t` for server `rs_index`, `workers` in all.
    #[must_use]
    pub fn share(t: Thresholds, rs_index: u16, worker: u16, workers: u16) -> Self {
        let w = u32::from(workers.max(1));
        let k = (u32::from(worker) + u32::from(rs_index)) % w;
        let part = |total: u32| total / w + u32::from(k < total % w);
        Self {
            limited: t.upper > 0,
            upper: part(t.upper),
            lower: if t.lower > 0 { part(t.lower).max(1) } else { 0 },
            overloaded: false,
        }
    }

    /// Seen by the scheduler: flagged, or a share of nothing.
    #[inline]
    #[must_use]
    pub fn refuses(&self) -> bool {
        self.overloaded || (self.limited && self.upper == 0)
    }

    /// `ip_vs_bind_dest`: a connection was added.
    fn bound(&mut self, c: &ConnCount) {
        if self.limited && c.total() >= self.upper {
            self.overloaded = true;
        }
    }

    /// `ip_vs_unbind_dest`: a connection went away.
    fn unbound(&mut self, c: &ConnCount) {
        if !self.limited {
            self.overloaded = false;
        } else if self.lower != 0 {
            if c.total() < self.lower {
                self.overloaded = false;
            }
        } else if u64::from(c.total()) * 4 < u64::from(self.upper) * 3 {
            self.overloaded = false;
        }
    }
}

/// A service's servers with this worker's counts, as schedulers see them.
struct View<'a> {
    servers: &'a [RealServer],
    conns: &'a [ConnCount],
    limits: &'a [RsLimit],
}

impl Backends for View<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.servers.len()
    }
    #[inline]
    fn weight(&self, i: usize) -> u32 {
        self.servers[i].weight
    }
    #[inline]
    fn active(&self, i: usize) -> u32 {
        self.conns
            .get(usize::from(self.servers[i].index))
            .map_or(0, |c| c.active)
    }
    #[inline]
    fn inactive(&self, i: usize) -> u32 {
        self.conns
            .get(usize::from(self.servers[i].index))
            .map_or(0, |c| c.inactive)
    }
    #[inline]
    fn overloaded(&self, i: usize) -> bool {
        self.limits
            .get(usize::from(self.servers[i].index))
            .is_some_and(RsLimit::refuses)
    }
    #[inline]
    fn id(&self, i: usize) -> u16 {
        self.servers[i].index
    }
}

/// One worker's FULLNAT state and packet path.
#[derive(Debug)]
pub struct Pipeline {
    tables: Arc<Tables>,
    sessions: SessionTable,
    pools: Vec<PortPool>,
    scheds: Vec<Scheduler>,
    sched_seed: u64,
    laddr_cursor: Vec<usize>,
    neigh: Arc<NeighMap>,
    neigh_events: Vec<NeighEvent>,
    /// The next hop the last [`Verdict::Hold`] waits for.
    held_for: Addr,
    rs_conns: Vec<ConnCount>,
    rs_traffic: Vec<RsTraffic>,
    rs_limits: Vec<RsLimit>,
    templates: TemplateTable,
    session_template: Vec<TemplateSlot>,
    worker: u16,
    workers: u16,
    /// Whether an exception path exists (rvsd: one TAP per interface).
    punt: bool,
    /// A change of the frame's length that the handlers (which see only the
    /// frame) leave for [`Self::process_buf`] (which holds the buffer).
    reshape: Option<Reshape>,
    /// Identification field of the next outer IPv4 header.
    ip_id: u16,
    /// This worker's counters.
    pub counters: Counters,
    /// Connections of a persistent service scheduled without a template
    /// because the template table was full (they lose their affinity).
    pub templates_full: u64,
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
            pools: Vec::new(),
            scheds: Vec::new(),
            sched_seed: seed ^ (u64::from(worker) << 48 | 0x5c4e_d000),
            laddr_cursor: Vec::new(),
            neigh,
            neigh_events: Vec::with_capacity(NEIGH_EVENTS_MAX),
            held_for: Addr::UNSPECIFIED,
            rs_conns: Vec::new(),
            rs_traffic: Vec::new(),
            rs_limits: Vec::new(),
            templates: TemplateTable::new(template_capacity(capacity)),
            session_template: vec![NO_TEMPLATE; capacity.max(1) as usize],
            counters: Counters::default(),
            templates_full: 0,
            worker,
            workers: workers.max(1),
            punt: false,
            reshape: None,
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

    /// Switches to a new neighbour snapshot and returns the old one.
    pub fn set_neigh(&mut self, neigh: Arc<NeighMap>) -> Arc<NeighMap> {
        std::mem::replace(&mut self.neigh, neigh)
    }

    #[cold]
    fn adopt(&mut self, tables: &Tables) {
        let (lo, hi) = tables.lport_range;
        while self.pools.len() < tables.laddrs.len() {
            self.pools
                .push(PortPool::new_slice(lo, hi, self.workers, self.worker));
        }
        self.laddr_cursor = vec![0; tables.services.len()];
        let rs_count = usize::from(tables.rs_count);
        if self.rs_conns.len() < rs_count {
            self.rs_conns.resize(rs_count, ConnCount::default());
            self.rs_traffic.resize(rs_count, RsTraffic::default());
        }
        self.adopt_limits(tables);
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

    fn is_interface_addr(&self, ip: Addr) -> bool {
        self.tables.is_interface_addr(ip)
    }

    /// `Punt` for an interface address when the exception path is on, else
    /// the drop.
    fn punt_or(&self, dst: Addr, reason: DropReason) -> Verdict {
        if self.punt && self.is_interface_addr(dst) {
            Verdict::Punt
        } else {
            Verdict::Drop(reason)
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

    /// The next hop whose MAC the frame of the last [`Verdict::Hold`] waits for.
    #[must_use]
    pub fn held_for(&self) -> Addr {
        self.held_for
    }

    fn report(&mut self, e: NeighEvent) {
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

    /// The session-index hash of `frame`'s flow (see [`read_ahead`]):
    /// `None` for a frame that is not TCP or UDP over IP.
    #[inline]
    #[must_use]
    pub fn flow_hash(&self, frame: &[u8]) -> Option<u32> {
        read_ahead::peek_key(frame).map(|k| self.sessions.hash_of(&k))
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

    /// This worker's persistence templates (for `--persistent-conn`).
    #[must_use]
    pub fn templates(&self) -> &TemplateTable {
        &self.templates
    }

    /// The worker owning the client flow `key` of service `svc` (an index
    /// into the tables in force): [`persistent_owner`] for a persistent
    /// service, [`client_owner`] otherwise.
    #[inline]
    #[must_use]
    pub fn owner_of_client(&self, svc: usize, key: &FlowKey) -> usize {
        match self.tables.services.get(svc).and_then(|s| s.persistence) {
            Some(p) => persistent_owner(p.mask(key.src.ip), key.dst, key.proto, self.workers),
            None => client_owner(key, self.workers),
        }
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
        self.counters.rx_packets += 1;
        self.counters.rx_bytes += pkt.frame().len() as u64;
        let mut verdict = self.classify(pkt.frame_mut(), in_port, now);
        if let Some(r) = self.reshape.take() {
            verdict = self.apply_reshape(pkt, r, verdict);
        }
        if let Verdict::Drop(r) = verdict {
            self.counters.drop(r);
        }
        verdict
    }

    /// How a TUN session's packets leave on `port` toward `rs`.
    fn encap_toward(
        &self,
        port: u16,
        rs: Addr,
        client_port: u16,
        client_mac: MacAddr,
    ) -> tunnel::Encap {
        let iface = self.tables.interfaces.get(usize::from(port));
        let mtu = iface.map_or(1500, |i| i.mtu);
        let src = if rs.is_v4() {
            Addr::v4(iface.map_or([0; 4], |i| i.addr))
        } else {
            self.tables
                .port_addr6(port)
                .map_or(Addr::UNSPECIFIED, Addr::v6)
        };
        tunnel::Encap {
            src,
            dst: rs,
            mtu,
            port,
            client_port,
            client_port_mac: self.port_mac(client_port),
            client_mac,
        }
    }

    /// Grows, shrinks or rewrites the frame as the handler asked.
    fn apply_reshape(&mut self, pkt: &mut PacketBuf<'_>, r: Reshape, verdict: Verdict) -> Verdict {
        match r {
            Reshape::Encap(e) => self.encapsulate(pkt, &e),
            Reshape::Advertise { target, dst, mac } => {
                write_na(pkt, target, dst, mac);
                verdict
            }
            Reshape::Translate { proto, src, dst } => {
                let done = if src.ip.is_v4() {
                    nat64::to_v4(pkt, proto, src, dst)
                } else {
                    nat64::to_v6(pkt, proto, src, dst)
                };
                done.map_or_else(Verdict::Drop, |()| verdict)
            }
        }
    }

    /// Applies a TUN session's encapsulation (see [`tunnel`]).
    #[cold]
    fn encapsulate(&mut self, pkt: &mut PacketBuf<'_>, e: &tunnel::Encap) -> Verdict {
        self.ip_id = self.ip_id.wrapping_add(1);
        match tunnel::encapsulate(pkt, e, self.ip_id) {
            tunnel::Outcome::Encapsulated => Verdict::Forward { port: e.port },
            tunnel::Outcome::FragNeeded => {
                // The packet itself is dropped; the sender learns the MTU.
                self.counters.drop(DropReason::TooBig);
                Verdict::Forward {
                    port: e.client_port,
                }
            }
            tunnel::Outcome::Dropped(r) => Verdict::Drop(r),
        }
    }

    fn classify(&mut self, frame: &mut [u8], in_port: u16, now: Millis) -> Verdict {
        let Ok(eth) = ethernet::Frame::new_checked(&*frame) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 => self.handle_ipv4(frame, in_port, now),
            ethernet::ETHERTYPE_IPV6 => self.handle_ipv6(frame, in_port, now),
            ethernet::ETHERTYPE_ARP => self.handle_arp(frame, in_port),
            _ => Verdict::Drop(DropReason::UnsupportedL3),
        }
    }

    fn port_mac(&self, port: u16) -> MacAddr {
        self.tables
            .interfaces
            .get(usize::from(port))
            .map_or([0; 6], |i| i.mac)
    }

    #[inline]
    fn handle_ipv4(&mut self, frame: &mut [u8], in_port: u16, now: Millis) -> Verdict {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(ip) = ipv4::Packet::new_checked(&*l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let (src, dst, proto) = (ip.src(), ip.dst(), ip.protocol());
        match proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => {}
            ipv4::PROTO_ICMP => return self.handle_icmp(l2, l3, in_port, now),
            _ => {
                return self.punt_or(
                    Addr::v4(dst),
                    if self.tables.owns(Addr::v4(dst)) {
                        DropReason::UnsupportedL4
                    } else {
                        DropReason::NotForUs
                    },
                );
            }
        }
        if ip.is_fragment() {
            return Verdict::Drop(DropReason::Fragment);
        }
        let is_udp = proto == ipv4::PROTO_UDP;
        let Some((sport, dport, flags)) = l4_ports(ip.payload(), is_udp) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let key = FlowKey {
            src: Endpoint::new(src, sport),
            dst: Endpoint::new(dst, dport),
            proto,
        };
        if ip.ttl() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        self.handle_flow(l2, l3, key, flags, in_port, now)
    }

    /// An IPv6 frame: TCP and UDP take the same session path as IPv4;
    /// ICMPv6 carries echo and neighbour discovery ([`Self::handle_icmpv6`]).
    /// Extension headers are not walked: a fragment header counts as
    /// `fragment`, any other as `unsupported_l4` (or goes to the kernel when
    /// it is for an interface address).
    #[inline]
    fn handle_ipv6(&mut self, frame: &mut [u8], in_port: u16, now: Millis) -> Verdict {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let (src, dst, proto) = (Addr::v6(ip.src()), Addr::v6(ip.dst()), ip.next_header());
        if src.is_v4() || dst.is_v4() {
            // IPv4-mapped addresses never travel in IPv6 headers (RFC 4291).
            return Verdict::Drop(DropReason::Malformed);
        }
        match proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => {}
            icmpv6::NEXT_HEADER => return self.handle_icmpv6(l2, l3, in_port, now),
            ipv6::NEXT_FRAGMENT => return Verdict::Drop(DropReason::Fragment),
            _ => {
                return self.punt_or(
                    dst,
                    if self.tables.owns(dst) {
                        DropReason::UnsupportedL4
                    } else {
                        DropReason::NotForUs
                    },
                )
            }
        }
        let is_udp = proto == ipv4::PROTO_UDP;
        let Some((sport, dport, flags)) = l4_ports(ip.payload(), is_udp) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if ip.hop_limit() <= 1 {
            return Verdict::Drop(DropReason::TtlExceeded);
        }
        let key = FlowKey {
            src: Endpoint::at(src, sport),
            dst: Endpoint::at(dst, dport),
            proto,
        };
        self.handle_flow(l2, l3, key, flags, in_port, now)
    }

    /// A TCP segment or UDP datagram of either family, by its flow key:
    /// forward through its session, or create one, or say why not.
    #[inline]
    fn handle_flow(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        key: FlowKey,
        flags: u8,
        in_port: u16,
        now: Millis,
    ) -> Verdict {
        let (proto, is_udp) = (key.proto, key.proto == ipv4::PROTO_UDP);
        match self.sessions.lookup(&key, now) {
            Lookup::Hit(slot, Direction::Outbound) => {
                let v = self.forward(l2, l3, slot, Direction::Outbound, flags, now);
                if self.sessions.is_rs_only(slot) {
                    // One-packet scheduling: the reply ends the session.
                    self.expire(slot);
                }
                return v;
            }
            Lookup::Hit(slot, Direction::Inbound) => {
                if is_udp || !is_new_syn(flags) || !self.is_reusable(slot) {
                    return self.forward(l2, l3, slot, Direction::Inbound, flags, now);
                }
                // A new SYN on a closed session's tuple: the client reuses
                // its port; start over (IPVS conn_reuse_mode).
                self.expire(slot);
            }
            Lookup::Expired(slot) => self.expire(slot),
            Lookup::Miss => {}
        }
        let Some(svc) = self.tables.service_at(key.dst, proto) else {
            return self.miss_not_a_service(&key);
        };
        let owner = self.owner_of_client(svc, &key);
        if owner != usize::from(self.worker) {
            return Verdict::Redirect {
                worker: owner as u16,
            };
        }
        if !is_udp && !is_new_syn(flags) {
            return Verdict::Drop(DropReason::NoSession);
        }
        let src_mac = ethernet::Frame::new_checked(&*l2).map_or([0; 6], |e| e.src());
        match self.create_session(svc, key, src_mac, in_port, now) {
            Ok(slot) => {
                let v = self.forward(l2, l3, slot, Direction::Inbound, flags, now);
                // One-packet DR/TUN: no reply comes this way; nothing to keep.
                if self.sessions.is_rs_only(slot)
                    && self
                        .sessions
                        .get(slot)
                        .is_some_and(|s| matches!(s.forward(), Forward::Dr | Forward::Tun))
                {
                    self.expire(slot);
                }
                v
            }
            Err(DropReason::NeighbourMiss) => Verdict::Hold,
            Err(reason) => Verdict::Drop(reason),
        }
    }

    /// A TCP segment or UDP datagram with no session and no service at its
    /// destination: a reply for another worker's session, a late packet, or
    /// not ours.
    ///
    /// A FULLNAT reply names its owner in its destination port. A NAT reply
    /// (`rs:rport → client:cport`) names nobody directly, but its session
    /// was created by the owner of `client:cport → vip:vport`: the service
    /// that has `rs:rport` as a NAT server gives the VIP, and that inverse
    /// key gives the owner, by the same rule as the client's packets.
    #[cold]
    fn miss_not_a_service(&self, key: &FlowKey) -> Verdict {
        let dst = key.dst.ip;
        if self.tables.laddr_index(dst).is_some() {
            let owner = owner_of(key.dst.port, self.workers);
            if owner != usize::from(self.worker) {
                return Verdict::Redirect {
                    worker: owner as u16,
                };
            }
            return Verdict::Drop(DropReason::NoSession);
        }
        if !self.tables.owns(dst) {
            if let Some(svc) = self.tables.nat_service_of(key.src, key.proto) {
                let vip = self.tables.services[svc].vip;
                let owner = self.owner_of_client(
                    svc,
                    &FlowKey {
                        src: key.dst,
                        dst: vip,
                        proto: key.proto,
                    },
                );
                if owner != usize::from(self.worker) {
                    return Verdict::Redirect {
                        worker: owner as u16,
                    };
                }
                return Verdict::Drop(DropReason::NoSession);
            }
        }
        self.punt_or(
            dst,
            if self.tables.owns(dst) {
                DropReason::NoService
            } else {
                DropReason::NotForUs
            },
        )
    }

    fn is_reusable(&self, slot: SlotId) -> bool {
        self.sessions
            .get(slot)
            .is_some_and(|s| matches!(s.state, TcpState::TimeWait | TcpState::Close))
    }

    /// Rewrites and addresses a frame of an existing session.
    #[inline]
    fn forward(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        slot: SlotId,
        dir: Direction,
        flags: u8,
        now: Millis,
    ) -> Verdict {
        let timeouts = self.tables.timeouts;
        let Some(s) = self.sessions.get_mut(slot) else {
            return Verdict::Drop(DropReason::NoSession);
        };
        let fwd = s.forward();
        let is_udp = s.proto == ipv4::PROTO_UDP;
        let new_state = if is_udp {
            s.state
        } else if matches!(fwd, Forward::Dr | Forward::Tun) && dir == Direction::Inbound {
            tcp_state::next_state_input_only(s.state, flags)
        } else {
            tcp_state::next_state(s.state, dir, flags)
        };
        if new_state != s.state {
            if let Some(c) = self.rs_conns.get_mut(usize::from(s.rs_index)) {
                c.sub(s.proto, s.state);
                c.add(s.proto, new_state);
            }
            s.state = new_state;
        }
        s.expires = now.plus_secs(if is_udp {
            timeouts.udp_secs
        } else {
            timeouts.tcp(new_state)
        });
        // FULLNAT: laddr is the local address; NAT: laddr is the client, so
        // the same four-field rewrite keeps the client's address and port.
        let (src, dst, port, mac) = match dir {
            Direction::Inbound => (s.laddr, s.rs, s.rs_port, s.rs_mac),
            Direction::Outbound => (s.vip, s.client, s.client_port, s.client_mac),
        };
        // DR, TUN: the IP packet goes on untouched; only the Ethernet header
        // changes (and TUN wraps it, once the caller has the whole buffer).
        let untouched = matches!(fwd, Forward::Dr | Forward::Tun);
        let tun = (fwd == Forward::Tun && dir == Direction::Inbound).then_some((
            s.client_port,
            s.client_mac,
            s.rs.ip,
        ));
        // FULLNAT64: the packet changes family, which only the caller (who
        // holds the whole buffer) can do.
        let translate = !untouched && src.ip.is_v4() != (l3.first().map(|b| b >> 4) == Some(4));
        if translate {
            self.reshape = Some(Reshape::Translate {
                proto: s.proto,
                src,
                dst,
            });
        } else if !untouched && rewrite::rewrite(l3, s.proto, src, dst).is_err() {
            return Verdict::Drop(DropReason::Malformed);
        }
        if let Some(t) = self.rs_traffic.get_mut(usize::from(s.rs_index)) {
            let bytes = l3.len() as u64;
            if dir == Direction::Inbound {
                t.in_pkts += 1;
                t.in_bytes += bytes;
            } else {
                t.out_pkts += 1;
                t.out_bytes += bytes;
            }
        }
        let own = self.port_mac(port);
        if let Ok(mut eth) = ethernet::Frame::new_checked(l2) {
            eth.set_dst(mac);
            eth.set_src(own);
        }
        if let Some((client_port, client_mac, outer_dst)) = tun {
            self.reshape = Some(Reshape::Encap(self.encap_toward(
                port,
                outer_dst,
                client_port,
                client_mac,
            )));
        }
        Verdict::Forward { port }
    }

    /// The slow path: schedule (through the persistence template, if the
    /// service has one), resolve the next hop, borrow a local port, insert.
    /// On failure nothing is left allocated (a new template may stay, as in
    /// the kernel, and expires on its own).
    #[cold]
    #[inline(never)]
    fn create_session(
        &mut self,
        svc_idx: usize,
        key: FlowKey,
        client_mac: MacAddr,
        in_port: u16,
        now: Millis,
    ) -> Result<SlotId, DropReason> {
        // Field borrows, not an Arc clone: no shared refcount traffic here.
        let tables: &Tables = &self.tables;
        let svc = &tables.services[svc_idx];
        let view = View {
            servers: &svc.servers,
            conns: &self.rs_conns,
            limits: &self.rs_limits,
        };
        let flow = Flow {
            client: key.src.ip.fold32(),
            client_port: key.src.port,
            vip: key.dst.ip.fold32(),
            vip_port: key.dst.port,
        };
        let sched = &mut self.scheds[svc_idx];
        let (i, template) = match svc.persistence {
            None => (
                sched
                    .pick(&svc.sched_table, svc.sched_flags, &view, &flow, now)
                    .ok_or(DropReason::NoRealServer)?,
                NO_TEMPLATE,
            ),
            Some(p) => {
                let tkey = TemplateKey {
                    client: p.mask(key.src.ip),
                    vip: key.dst,
                    proto: key.proto,
                };
                persist(
                    &mut self.templates,
                    &mut self.templates_full,
                    tkey,
                    p.timeout_secs,
                    svc,
                    sched,
                    &view,
                    &flow,
                    now,
                )?
            }
        };
        let rs = svc.servers[i];
        let (rs_port, nh) = tables.next_hop(rs.addr.ip).ok_or(DropReason::NotForUs)?;
        let Some(rs_mac) = self.neigh.lookup(nh) else {
            self.report(NeighEvent::Wanted {
                ip: nh,
                port: rs_port,
            });
            self.held_for = nh;
            return Err(DropReason::NeighbourMiss);
        };
        let n = if rs.forward == Forward::FullNat {
            svc.laddrs.len()
        } else {
            0
        };
        let mut chosen = None;
        for k in 0..n {
            let pos = (self.laddr_cursor[svc_idx] + k) % n;
            let li = usize::from(svc.laddrs[pos]);
            if let Some(p) = self.pools[li].alloc() {
                self.laddr_cursor[svc_idx] = (pos + 1) % n;
                chosen = Some((li, p));
                break;
            }
        }
        // NAT and DR borrow no local port: the client stands for itself.
        let (li, laddr) = match rs.forward {
            Forward::FullNat => {
                let (li, lport) = chosen.ok_or(DropReason::PortExhausted)?;
                (li, Endpoint::at(tables.laddrs[li], lport))
            }
            Forward::Nat => (usize::from(LADDR_NAT), key.src),
            Forward::Dr => (usize::from(LADDR_DR), key.src),
            Forward::Tun => (usize::from(LADDR_TUN), key.src),
        };
        // UDP sessions stay ESTABLISHED with the UDP timeout (see `Session::state`).
        let state = if key.proto == ipv4::PROTO_UDP {
            TcpState::Established
        } else {
            TcpState::None
        };
        let timeout = if key.proto == ipv4::PROTO_UDP {
            tables.timeouts.udp_secs
        } else {
            tables.timeouts.tcp(state)
        };
        let session = Session {
            proto: key.proto,
            client: key.src,
            vip: key.dst,
            laddr,
            rs: rs.addr,
            service: svc_idx as u16,
            rs_index: rs.index,
            laddr_index: li as u16,
            state,
            expires: now.plus_secs(timeout),
            client_port: in_port,
            client_mac,
            rs_port,
            rs_mac,
        };
        let one_packet = svc.ops && key.proto == ipv4::PROTO_UDP;
        let inserted = if one_packet {
            self.sessions.insert_rs_only(session)
        } else {
            self.sessions.insert(session)
        };
        match inserted {
            // One-packet NAT: the same client port to the same server again
            // before the last reply; that session carries this datagram too.
            Err(InsertError::Duplicate) if one_packet && rs.forward == Forward::Nat => {
                match self.sessions.lookup(&session.rs_key(), now) {
                    Lookup::Hit(slot, _) => Ok(slot),
                    _ => Err(DropReason::SessionTableFull),
                }
            }
            Ok(slot) => {
                let ri = usize::from(rs.index);
                if let Some(c) = self.rs_conns.get_mut(ri) {
                    c.add(key.proto, state);
                    c.created += 1;
                    if let Some(l) = self.rs_limits.get_mut(ri) {
                        l.bound(c);
                    }
                }
                if let Some(t) = self.templates.get_mut(template) {
                    t.controls += 1;
                    t.expires = now.plus_secs(t.timeout_secs);
                }
                if let Some(st) = self.session_template.get_mut(slot.0 as usize) {
                    *st = template;
                }
                self.counters.sessions_created += 1;
                Ok(slot)
            }
            Err(_) => {
                if let Some(pool) = self.pools.get_mut(li) {
                    let _ = pool.release(laddr.port);
                }
                Err(DropReason::SessionTableFull)
            }
        }
    }

    /// Removes a session and returns what it held.
    fn expire(&mut self, slot: SlotId) {
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
        }
        .release(slot, s);
    }

    fn handle_icmp(&mut self, l2: &mut [u8], l3: &mut [u8], in_port: u16, now: Millis) -> Verdict {
        let Ok(ip) = ipv4::Packet::new_checked(&*l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let msg_type = ip.payload().first().copied();
        if !ip.is_fragment() && msg_type.is_some_and(icmp_relay::is_error) {
            if let Some(v) = self.relay_icmp_error(l2, l3, now) {
                return v;
            }
        }
        let Ok(mut ip) = ipv4::Packet::new_checked(&mut *l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if self.punt && self.is_interface_addr(Addr::v4(ip.dst())) {
            // Pings and ICMP for the appliance's own address are the kernel's.
            return Verdict::Punt;
        }
        if !self.tables.owns(Addr::v4(ip.dst())) {
            return Verdict::Drop(DropReason::NotForUs);
        }
        if ip.is_fragment() {
            return Verdict::Drop(DropReason::Fragment);
        }
        let Ok(mut msg) = icmp::Packet::new_checked(ip.payload_mut()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        if msg.msg_type() != icmp::ECHO_REQUEST || msg.code() != 0 {
            return Verdict::Drop(DropReason::UnsupportedL4);
        }
        msg.make_echo_reply();
        ip.swap_addrs();
        self.counters.echo_replies += 1;
        self.reply_l2(l2, in_port)
    }

    /// ICMPv6: neighbour discovery for owned addresses (answer solicitations,
    /// learn from solicitations and advertisements), echo to owned addresses;
    /// the rest goes to the kernel when it is for an interface address.
    #[cold]
    fn handle_icmpv6(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        in_port: u16,
        now: Millis,
    ) -> Verdict {
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let (src, dst, hop_limit) = (ip.src(), ip.dst(), ip.hop_limit());
        let msg = ip.payload();
        if msg.len() < 8 || icmpv6::checksum(msg, src, dst) != 0 {
            return Verdict::Drop(DropReason::Malformed);
        }
        if (1..=4).contains(&msg[0]) {
            if let Some(v) = self.relay_icmpv6_error(l2, l3, now) {
                return v;
            }
        }
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let msg = ip.payload();
        match msg[0] {
            icmpv6::NEIGHBOR_SOLICITATION | icmpv6::NEIGHBOR_ADVERTISEMENT => {
                let Some(target) =
                    icmpv6::nd_target(msg).filter(|_| hop_limit == icmpv6::ND_HOP_LIMIT)
                else {
                    return Verdict::Drop(DropReason::Malformed);
                };
                let ip6 = Addr::v6(target);
                let (own, smac) = (
                    self.port_mac(in_port),
                    ethernet::Frame::new_checked(&*l2).map_or([0; 6], |e| e.src()),
                );
                if msg[0] == icmpv6::NEIGHBOR_ADVERTISEMENT {
                    let tlla = icmpv6::link_layer_option(msg, icmpv6::OPT_TARGET_LL);
                    if self.tables.owns(ip6) {
                        // Another host advertises one of our addresses.
                        if smac != own && tlla != Some(own) {
                            self.report(NeighEvent::Duplicate {
                                ip: ip6,
                                mac: tlla.unwrap_or(smac),
                                port: in_port,
                            });
                        }
                    } else if let Some(mac) = tlla {
                        // Reported even with a known MAC: it confirms the entry (control's refresh).
                        if self.tables.on_link(in_port, ip6) {
                            self.report(NeighEvent::Learned(NeighEntry {
                                ip: ip6,
                                mac,
                                port: in_port,
                            }));
                        }
                    }
                    // The kernel resolves its own neighbours: it needs the answers too.
                    return if self.punt {
                        Verdict::Punt
                    } else {
                        Verdict::Consumed
                    };
                }
                let ours = self.tables.owns(ip6) && smac != own;
                if src == [0; 16] {
                    // Someone's duplicate address detection (RFC 4862 §5.4.3).
                    if !ours {
                        return Verdict::Drop(DropReason::ArpNotForUs);
                    }
                    if self.tables.is_tentative(ip6) {
                        // Probing for an address we are probing for (or
                        // found duplicate): neither of us may use it.
                        self.report(NeighEvent::Duplicate {
                            ip: ip6,
                            mac: smac,
                            port: in_port,
                        });
                        return Verdict::Consumed;
                    }
                    // Defend it: an advertisement to all nodes, which the
                    // prober takes for a duplicate (RFC 4861 §7.2.4).
                    self.reshape = Some(Reshape::Advertise {
                        target,
                        dst: neigh::ALL_NODES,
                        mac: own,
                    });
                    self.counters.arp_replies += 1;
                    let Ok(mut eth) = ethernet::Frame::new_checked(l2) else {
                        return Verdict::Drop(DropReason::Malformed);
                    };
                    eth.set_dst(neigh::multicast_mac(neigh::ALL_NODES));
                    eth.set_src(own);
                    return Verdict::Forward { port: in_port };
                }
                if let Some(mac) = icmpv6::link_layer_option(msg, icmpv6::OPT_SOURCE_LL) {
                    self.learn_v6(src, mac, in_port);
                }
                if !ours || self.tables.is_tentative(ip6) {
                    return Verdict::Drop(DropReason::ArpNotForUs);
                }
                // The advertisement (with our MAC, which a multicast
                // solicitation requires) may be longer or shorter than the
                // solicitation: [`Self::process_buf`] sizes the frame and writes it.
                self.reshape = Some(Reshape::Advertise {
                    target,
                    dst: src,
                    mac: own,
                });
                self.counters.arp_replies += 1;
                self.reply_l2(l2, in_port)
            }
            icmpv6::ECHO_REQUEST
                if self.tables.owns(Addr::v6(dst))
                    && !(self.punt && self.is_interface_addr(Addr::v6(dst))) =>
            {
                let Ok(mut ip) = ipv6::Packet::new_checked(&mut *l3) else {
                    return Verdict::Drop(DropReason::Malformed);
                };
                let m = ip.payload_mut();
                let c = crate::checksum::update_u16(
                    u16::from_be_bytes([m[2], m[3]]),
                    u16::from(icmpv6::ECHO_REQUEST) << 8,
                    u16::from(icmpv6::ECHO_REPLY) << 8,
                );
                m[0] = icmpv6::ECHO_REPLY;
                m[2..4].copy_from_slice(&c.to_be_bytes());
                ip.set_src(dst);
                ip.set_dst(src);
                self.counters.echo_replies += 1;
                self.reply_l2(l2, in_port)
            }
            _ => self.punt_or(
                Addr::v6(dst),
                if self.tables.owns(Addr::v6(dst)) {
                    DropReason::UnsupportedL4
                } else {
                    DropReason::NotForUs
                },
            ),
        }
    }

    /// Reports an IPv6 neighbour seen on `port` if it is on that link and new.
    fn learn_v6(&mut self, ip: [u8; 16], mac: MacAddr, port: u16) {
        let ip = Addr::v6(ip);
        if self.tables.next_hop(ip) == Some((port, ip)) && self.neigh.lookup(ip) != Some(mac) {
            self.report(NeighEvent::Learned(NeighEntry { ip, mac, port }));
        }
    }

    /// Turns the Ethernet header around for a reply on the ingress port.
    fn reply_l2(&self, l2: &mut [u8], in_port: u16) -> Verdict {
        let own = self.port_mac(in_port);
        let Ok(mut eth) = ethernet::Frame::new_checked(l2) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let peer = eth.src();
        eth.set_dst(peer);
        eth.set_src(own);
        Verdict::Forward { port: in_port }
    }

    fn handle_arp(&mut self, frame: &mut [u8], in_port: u16) -> Verdict {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(req) = arp::Packet::new_checked(&*l3) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let (op, smac, sip, tip) = (req.op(), req.sender_mac(), req.sender_ip(), req.target_ip());
        let on_link = self.tables.on_link(in_port, Addr::v4(sip));
        if on_link
            && sip != [0; 4]
            && (op == arp::OP_REPLY || self.neigh.lookup(Addr::v4(sip)) != Some(smac))
        {
            self.report(NeighEvent::Learned(NeighEntry {
                ip: Addr::v4(sip),
                mac: smac,
                port: in_port,
            }));
        }
        if op != arp::OP_REQUEST || !self.tables.owns(Addr::v4(tip)) {
            return match (op == arp::OP_REPLY && on_link, self.punt) {
                // The kernel resolves its own neighbours: it needs the replies too.
                (true, true) => Verdict::Punt,
                (true, false) => Verdict::Consumed,
                _ => Verdict::Drop(DropReason::ArpNotForUs),
            };
        }
        let own = self.port_mac(in_port);
        arp::Packet::new_unchecked(&mut *l3).emit(arp::OP_REPLY, own, tip, smac, sip);
        self.counters.arp_replies += 1;
        self.reply_l2(l2, in_port)
    }

    /// Periodic work between bursts: examine up to `budget` session slots
    /// and remove what has expired.
    pub fn housekeeping(&mut self, now: Millis, budget: usize) {
        let mut held = Held {
            pools: &mut self.pools,
            conns: &mut self.rs_conns,
            limits: &mut self.rs_limits,
            templates: &mut self.templates,
            session_template: &mut self.session_template,
        };
        let n = self
            .sessions
            .sweep(now, budget, |slot, s| held.release(slot, s));
        self.counters.sessions_expired += n as u64;
        if !self.templates.is_empty() {
            self.templates.sweep(now, budget / 4 + 1);
        }
    }
}

/// What [`Pipeline::process_buf`] does to a frame once its handler is done:
/// the changes that move the frame's start or end in its buffer.
#[derive(Debug, Clone, Copy)]
enum Reshape {
    /// Wrap it for a TUN session (see [`tunnel`]).
    Encap(tunnel::Encap),
    /// Rebuild its header in the other family (FULLNAT64, see [`nat64`]).
    Translate {
        /// Transport protocol.
        proto: u8,
        /// New source.
        src: Endpoint,
        /// New destination.
        dst: Endpoint,
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
}

/// Writes a solicited neighbour advertisement for `target` to `dst` after
/// the frame's Ethernet header, sized exactly: with the target link-layer
/// option when the buffer has room for it (it always has in an mbuf).
#[cold]
fn write_na(pkt: &mut PacketBuf<'_>, target: [u8; 16], dst: [u8; 16], mac: MacAddr) {
    const AT: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN;
    if !pkt.set_len(AT + icmpv6::NA_WITH_TLLA_LEN) {
        pkt.truncate(AT + icmpv6::ND_LEN);
    }
    let f = pkt.frame_mut();
    let n = icmpv6::emit_na(&mut f[AT..], target, mac);
    if dst[0] == 0xff {
        // To all nodes (defending against a DAD probe): not solicited.
        f[AT + 4] = icmpv6::NA_OVERRIDE;
    }
    ipv6::emit_header(
        &mut f[ethernet::HEADER_LEN..],
        icmpv6::NEXT_HEADER,
        target,
        dst,
        n as u16,
    );
    f[ethernet::HEADER_LEN + 7] = icmpv6::ND_HOP_LIMIT;
    icmpv6::fill_checksum(&mut f[AT..AT + n], target, dst);
}

/// Template slots per worker for a session capacity: a quarter of it (a
/// template serves all connections of one client network), at least 64.
#[must_use]
pub fn template_capacity(session_capacity: u32) -> u32 {
    (session_capacity / 4).max(64)
}

/// Finds or makes the persistence template for `tkey` and returns the
/// server position it names with its slot, as `ip_vs_sched_persist`: a live
/// template whose server is still in the service decides, even if that
/// server is at weight 0 or over its threshold (the kernel's behaviour with
/// `expire_quiescent_template` off: affinity wins, so a drained server keeps
/// its persistent clients until their templates expire); otherwise the
/// scheduler picks and the template is (re)pointed at its choice. A full
/// template table schedules without one (counted in `templates_full`).
#[allow(clippy::too_many_arguments)]
fn persist(
    templates: &mut TemplateTable,
    templates_full: &mut u64,
    tkey: TemplateKey,
    timeout_secs: u32,
    svc: &Service,
    sched: &mut Scheduler,
    view: &View<'_>,
    flow: &Flow,
    now: Millis,
) -> Result<(usize, TemplateSlot), DropReason> {
    let found = templates.find(&tkey);
    if let Some(slot) = found {
        if let Some(t) = templates.get(slot) {
            if t.is_live(now) {
                if let Some(i) = svc
                    .servers
                    .iter()
                    .position(|r| r.index == t.rs_index && r.addr == t.rs)
                {
                    return Ok((i, slot));
                }
            }
        }
    }
    let i = sched
        .pick(&svc.sched_table, svc.sched_flags, view, flow, now)
        .ok_or(DropReason::NoRealServer)?;
    let rs = svc.servers[i];
    if let Some(t) = found.and_then(|slot| templates.get_mut(slot)) {
        t.rs = rs.addr;
        t.rs_index = rs.index;
        t.timeout_secs = timeout_secs;
        t.expires = now.plus_secs(timeout_secs);
        return Ok((i, found.unwrap_or(NO_TEMPLATE)));
    }
    let t = Template {
        key: tkey,
        rs: rs.addr,
        rs_index: rs.index,
        expires: now.plus_secs(timeout_secs),
        timeout_secs,
        controls: 0,
    };
    match templates.insert(t) {
        Ok(slot) => Ok((i, slot)),
        Err(_) => {
            *templates_full += 1;
            Ok((i, NO_TEMPLATE))
        }
    }
}

/// What a session holds while it lives, to give back when it ends.
struct Held<'a> {
    pools: &'a mut [PortPool],
    conns: &'a mut [ConnCount],
    limits: &'a mut [RsLimit],
    templates: &'a mut TemplateTable,
    session_template: &'a mut [TemplateSlot],
}

impl Held<'_> {
    fn release(&mut self, slot: SlotId, s: &Session) {
        if let Some(p) = self.pools.get_mut(usize::from(s.laddr_index)) {
            let released = p.release(s.laddr.port);
            debug_assert!(
                released.is_ok(),
                "session held a port its pool did not lend"
            );
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
    }
}

/// Neighbour events a worker buffers between housekeeping rounds.
pub const NEIGH_EVENTS_MAX: usize = 64;

/// The worker owning the client flow `key` (client → VIP) among `workers`
/// (services without persistence).
#[inline]
#[must_use]
pub fn client_owner(key: &FlowKey, workers: u16) -> usize {
    if workers <= 1 {
        0
    } else {
        key.stable_hash() as usize % usize::from(workers)
    }
}

/// The worker owning every client flow from the masked client address
/// `client` to the persistent service `vip` (the port plays no part).
#[inline]
#[must_use]
pub fn persistent_owner(client: Addr, vip: Endpoint, proto: u8, workers: u16) -> usize {
    if workers <= 1 {
        0
    } else {
        FlowKey {
            src: Endpoint::at(client, 0),
            dst: vip,
            proto,
        }
        .stable_hash() as usize
            % usize::from(workers)
    }
}

/// Source port, destination port and TCP flags (0 for UDP) of a validated
/// L4 header, or `None` if it is truncated or malformed.
#[inline]
fn l4_ports(l4: &[u8], is_udp: bool) -> Option<(u16, u16, u8)> {
    if is_udp {
        let d = udp::Packet::new_checked(l4).ok()?;
        Some((d.src_port(), d.dst_port(), 0))
    } else {
        let t = tcp::Packet::new_checked(l4).ok()?;
        Some((t.src_port(), t.dst_port(), t.flags()))
    }
}

fn is_new_syn(flags: u8) -> bool {
    flags & (tcp::SYN | tcp::ACK | tcp::RST) == tcp::SYN
}

#[cfg(test)]
mod modes_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod v6_tests;
