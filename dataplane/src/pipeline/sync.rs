//! Connection sync in the pipeline: the master side ([`Pipeline::sync_note`]
//! on each inbound packet of a session: when [`crate::sync_policy`] says
//! so, the session (and the persistence template controlling it) goes into
//! the worker's [`SyncRing`] toward control) and the backup side
//! ([`Pipeline::install_synced`]: a session or template received from a
//! master, installed or refreshed in this worker's tables).
//!
//! Which worker installs an entry: every worker is offered every batch and
//! takes the entries whose client flow it owns ([`Pipeline::owner_of_client`],
//! the rule its own packets follow). A FULLNAT session also keeps the
//! master's local port, which must come from this worker's slice of the
//! port range (the replies' owner rule, `lport % workers`): with the same
//! worker count on both boxes the two rules agree, as they did on the
//! master; with different counts the entries for which they disagree are
//! refused and counted ([`InstallOutcome::OwnerMismatch`]), since the
//! backup could not deliver both directions of such a connection to one
//! worker.
//!
//! Layer 2: a master's entry names no MAC. The next hops toward the real
//! server and the client are taken from the backup's neighbour snapshot
//! when it has them; a missing one is asked of control and left zero, and
//! [`Pipeline::repair_l2`] fills it in on the session's first packet.

use std::sync::Arc;

use super::Pipeline;
use crate::neigh::NeighEvent;
use crate::session::ext::{SessionExt, SYN_PROXY};
use crate::session::template::{Template, TemplateKey, NO_TEMPLATE};
use crate::session::ClientAddress;
use crate::session::{Direction, Endpoint, Lookup, Session, SlotId, TcpState};
use crate::sync_feed::{RecordKind, SyncRecord, SyncRing};
use crate::sync_policy::{SyncInput, SyncMark, SyncPolicy, SyncProto};
use crate::tables::{Forward, Tables};
use crate::time::Millis;
use crate::wire::{ipv4, MacAddr};

const NO_MAC: MacAddr = [0; 6];

/// A worker's sync feed: the ring, the policy, and per session slot what
/// the policy remembers and the inbound packet count.
#[derive(Debug)]
pub(crate) struct SyncTap {
    ring: Arc<SyncRing>,
    policy: SyncPolicy,
    marks: Vec<SyncMark>,
    pkts: Vec<u32>,
    /// Per slot: installed from a peer's entry and not forwarded here
    /// since (a box that is master and backup at once sends only the
    /// sessions it carries: not back what a peer sent it).
    from_peer: Vec<bool>,
}

/// What became of one received entry on the worker that owns it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum InstallOutcome {
    /// A new session or template.
    Installed,
    /// An existing one refreshed (state, expiry).
    Updated,
    /// Another worker owns it (not counted anywhere).
    NotMine,
    /// No such service here.
    NoService,
    /// The service here has no such real server.
    NoServer,
    /// FULLNAT: the local address is not the service's here.
    NoLocalAddress,
    /// FULLNAT: the client rule and the local-port rule name different
    /// workers (the boxes' worker counts differ).
    OwnerMismatch,
    /// FULLNAT: the local port is lent to another session.
    PortInUse,
    /// The session or template table is full.
    TableFull,
    /// An inactive entry for a connection that a newer one, on the same
    /// client tuple, has replaced here (ignored, as the kernel does).
    Stale,
}

/// Counts of [`InstallOutcome`]s, as a worker reports a batch.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct InstallReport {
    /// New sessions and templates.
    pub installed: u64,
    /// Refreshed ones.
    pub updated: u64,
    /// Refused: no service, server or local address here.
    pub unknown: u64,
    /// Refused: owner rules disagree (worker counts differ).
    pub owner_mismatch: u64,
    /// Refused: local port in use, or table full.
    pub conflict: u64,
}

impl InstallReport {
    /// Counts one outcome.
    pub fn count(&mut self, o: InstallOutcome) {
        match o {
            InstallOutcome::Installed => self.installed += 1,
            InstallOutcome::Updated => self.updated += 1,
            InstallOutcome::NotMine | InstallOutcome::Stale => {}
            InstallOutcome::NoService
            | InstallOutcome::NoServer
            | InstallOutcome::NoLocalAddress => {
                self.unknown += 1;
            }
            InstallOutcome::OwnerMismatch => self.owner_mismatch += 1,
            InstallOutcome::PortInUse | InstallOutcome::TableFull => self.conflict += 1,
        }
    }

    /// Adds another report.
    pub fn add(&mut self, o: &Self) {
        self.installed += o.installed;
        self.updated += o.updated;
        self.unknown += o.unknown;
        self.owner_mismatch += o.owner_mismatch;
        self.conflict += o.conflict;
    }
}

/// The sync entry for a session (its rarely used part `ext`), `timeout_s`
/// from now.
#[must_use]
pub fn record_of(s: &Session, ext: &SessionExt, timeout_s: u32) -> SyncRecord {
    let udp = s.proto == ipv4::PROTO_UDP;
    SyncRecord {
        kind: RecordKind::Conn,
        proto: s.proto,
        forward: s.forward,
        // UDP has one IPVS state, 0.
        state: if udp { 0 } else { s.state as u8 },
        client: s.client,
        vip: s.vip,
        rs: s.rs,
        laddr: (s.forward == Forward::FullNat).then_some(s.laddr),
        timeout_s,
        client_addr: s.client_addr,
        ext: if keeps_ext(s.client_addr, ext) {
            *ext
        } else {
            SessionExt::default()
        },
        isn_off: s.isn_off,
    }
}

/// True if a session with `client_addr` and `ext` keeps state there that
/// sync carries: a PROXY/TOA insertion's, or a SYN proxy's.
#[must_use]
pub fn keeps_ext(client_addr: ClientAddress, ext: &SessionExt) -> bool {
    client_addr != ClientAddress::None || ext.has(SYN_PROXY)
}

/// The sync entry for a persistence template, `timeout_s` from now.
#[must_use]
pub fn template_record(t: &Template, forward: Forward, timeout_s: u32) -> SyncRecord {
    SyncRecord {
        kind: RecordKind::Template,
        proto: t.key.proto,
        forward,
        state: 0,
        client: Endpoint::at(t.key.client, 0),
        vip: t.key.vip,
        rs: t.rs,
        laddr: None,
        timeout_s,
        client_addr: ClientAddress::None,
        ext: SessionExt::default(),
        isn_off: 0,
    }
}

impl Pipeline {
    /// The rarely used part of session `s` (a copy from a page), found by
    /// its client key; the default when it has none (a session that does
    /// not tell its server the client's address, on a worker without SYN
    /// proxy, keeps nothing there).
    #[must_use]
    pub fn session_ext(&self, s: &Session) -> SessionExt {
        if s.client_addr == ClientAddress::None && !self.synproxy.active {
            return SessionExt::default();
        }
        match self.sessions.lookup(&s.client_key(), Millis(0)) {
            Lookup::Hit(slot, _) | Lookup::Expired(slot) => {
                self.sessions.ext(slot).copied().unwrap_or_default()
            }
            Lookup::Miss => SessionExt::default(),
        }
    }

    /// True if session `s` (a copy from a page) was installed from a
    /// peer's sync entry and has not been forwarded here since: a full
    /// resync leaves it out (it is the peer's to send).
    #[must_use]
    pub fn session_from_peer(&self, s: &Session) -> bool {
        let Some(tap) = self.sync.as_deref() else {
            return false;
        };
        match self.sessions.lookup(&s.client_key(), Millis(0)) {
            Lookup::Hit(slot, _) | Lookup::Expired(slot) => {
                tap.from_peer.get(slot.0 as usize).copied().unwrap_or(false)
            }
            Lookup::Miss => false,
        }
    }

    /// Starts (`Some`) or stops (`None`) feeding sync entries into `ring`.
    /// Allocates the per-slot marks: call it from housekeeping, not per packet.
    pub fn set_sync_feed(&mut self, feed: Option<(Arc<SyncRing>, SyncPolicy)>) {
        self.sync = feed.map(|(ring, policy)| {
            let n = self.sessions.capacity();
            Box::new(SyncTap {
                ring,
                policy,
                marks: vec![SyncMark::default(); n],
                pkts: vec![0; n],
                from_peer: vec![false; n],
            })
        });
    }

    /// A new session took `slot`: its sync count starts over.
    #[inline]
    pub(super) fn sync_reset(&mut self, slot: SlotId) {
        if let Some(t) = self.sync.as_deref_mut() {
            let i = slot.0 as usize;
            if let (Some(m), Some(p)) = (t.marks.get_mut(i), t.pkts.get_mut(i)) {
                *m = SyncMark::default();
                *p = 0;
            }
            if let Some(f) = t.from_peer.get_mut(i) {
                *f = false;
            }
        }
    }

    /// An inbound packet of the session in `slot` was forwarded: counts
    /// it and, when the policy says so, pushes the session (and its
    /// template) toward control. Allocation-, lock- and syscall-free.
    #[inline]
    pub(super) fn sync_note(&mut self, slot: SlotId, now: Millis) {
        let Some(tap) = self.sync.as_deref_mut() else {
            return;
        };
        let i = slot.0 as usize;
        let (Some(s), Some(mark), Some(pkts)) = (
            self.sessions.get(slot),
            tap.marks.get_mut(i),
            tap.pkts.get_mut(i),
        ) else {
            return;
        };
        *pkts = pkts.saturating_add(1);
        // Forwarded here: this box carries it now, whoever sent it first.
        if let Some(f) = tap.from_peer.get_mut(i) {
            *f = false;
        }
        let udp = s.proto == ipv4::PROTO_UDP;
        let template = self.session_template.get(i).copied().unwrap_or(NO_TEMPLATE);
        let timeout_ms = now.until(s.expires);
        let input = SyncInput {
            proto: if udp {
                SyncProto::Other
            } else {
                SyncProto::Tcp
            },
            state: if udp { 0 } else { s.state as u8 },
            template: false,
            in_persistence: template != NO_TEMPLATE,
            pkts: *pkts,
            timeout_ms,
        };
        if !tap.policy.needed(mark, &input, now.0) {
            return;
        }
        let timeout_s = u32::try_from(timeout_ms.div_ceil(1000)).unwrap_or(u32::MAX);
        if !(tap.policy.persist_mode && template != NO_TEMPLATE) {
            let ext = self.sessions.ext(slot).copied().unwrap_or_default();
            tap.ring.push(&record_of(&s, &ext, timeout_s));
        }
        // The kernel sends the controlling template with the connection,
        // with its full timeout as it sends a connection's.
        if let Some(t) = self.templates.get(template) {
            tap.ring
                .push(&template_record(t, s.forward, t.timeout_secs));
        }
    }

    /// Fills in a synced session's missing next-hop MAC when its first
    /// packet going `dir` arrives (see the module doc): toward the client
    /// from the client's own frame (`src_mac`, `in_port`), toward the real
    /// server from the neighbour snapshot. False when the MAC is still
    /// unknown (control was asked; the packet is dropped).
    #[cold]
    #[inline(never)]
    pub(super) fn repair_l2(
        &mut self,
        slot: SlotId,
        dir: Direction,
        src_mac: MacAddr,
        in_port: u16,
    ) -> bool {
        let Some(s) = self.sessions.get(slot) else {
            return false;
        };
        let (mut client_mac, mut client_port) = (s.client_mac, s.client_port);
        if dir == Direction::Inbound && client_mac == NO_MAC && src_mac != NO_MAC {
            (client_mac, client_port) = (src_mac, in_port);
        }
        let mut ok = true;
        let want_rs = dir == Direction::Inbound && s.rs_mac == NO_MAC;
        let want_client = dir == Direction::Outbound && client_mac == NO_MAC;
        let (mut rs_mac, mut rs_port) = (s.rs_mac, s.rs_port);
        if want_rs {
            match self.next_hop_mac(s.rs.ip) {
                Some((p, m)) => (rs_port, rs_mac) = (p, m),
                None => ok = false,
            }
        }
        if want_client {
            match self.next_hop_mac(s.client.ip) {
                Some((p, m)) => (client_port, client_mac) = (p, m),
                None => ok = false,
            }
        }
        if let Some(m) = self.sessions.get_mut(slot) {
            (m.client_mac, m.client_port, m.rs_mac, m.rs_port) =
                (client_mac, client_port, rs_mac, rs_port);
        }
        ok
    }

    /// The port and MAC of `ip`'s next hop, from the neighbour snapshot;
    /// `None` (control asked) when the MAC is unknown.
    fn next_hop_mac(&mut self, ip: crate::addr::Addr) -> Option<(u16, MacAddr)> {
        let (port, nh) = self.tables.next_hop(ip)?;
        match self.neigh.lookup(nh) {
            Some(m) => Some((port, m)),
            None => {
                self.report(NeighEvent::Wanted { ip: nh, port });
                None
            }
        }
    }

    /// Installs or refreshes one entry received from a master, if this
    /// worker owns it (see the module doc).
    pub fn install_synced(&mut self, r: &SyncRecord, now: Millis) -> InstallOutcome {
        // A firewall-mark service's connection names the address it went
        // to: its service is the one this box's mark rules give it.
        let found = self
            .tables
            .service_at(r.vip, r.proto)
            .or_else(|| self.tables.marked_service(r.vip, r.proto));
        let Some(svc_idx) = found else {
            // Counted once, by worker 0.
            return if self.worker == 0 {
                InstallOutcome::NoService
            } else {
                InstallOutcome::NotMine
            };
        };
        let key = crate::session::FlowKey {
            src: r.client,
            dst: r.vip,
            proto: r.proto,
        };
        if self.owner_of_client(svc_idx, &key) != usize::from(self.worker) {
            return InstallOutcome::NotMine;
        }
        match r.kind {
            RecordKind::Template => self.install_template(svc_idx, r, now),
            RecordKind::Conn => self.install_conn(svc_idx, &key, r, now),
        }
    }

    /// Whether the session at SLOT is another connection than the one R
    /// describes, for the same client tuple: another real server, or
    /// another FULLNAT local address and port.
    fn superseded(&self, slot: SlotId, r: &SyncRecord) -> bool {
        self.sessions.get(slot).is_some_and(|s| {
            s.rs != r.rs || (s.forward == Forward::FullNat && Some(s.laddr) != r.laddr)
        })
    }

    /// Expires the session holding FULLNAT local address and port L here
    /// (found by its server-side key, among the real servers of every
    /// service, both protocols: the conflict path only); whether there was
    /// one.
    fn expire_holder(&mut self, tables: &Tables, l: Endpoint, now: Millis) -> bool {
        let holder = tables
            .services
            .iter()
            .flat_map(|svc| svc.servers.iter())
            .flat_map(|rs| {
                [ipv4::PROTO_TCP, ipv4::PROTO_UDP].map(|proto| crate::session::FlowKey {
                    src: rs.addr,
                    dst: l,
                    proto,
                })
            })
            .find_map(|k| match self.sessions.lookup(&k, now) {
                Lookup::Hit(slot, Direction::Outbound) | Lookup::Expired(slot) => Some(slot),
                _ => None,
            });
        holder.is_some_and(|slot| {
            self.expire(slot);
            true
        })
    }

    fn install_template(&mut self, svc_idx: usize, r: &SyncRecord, now: Millis) -> InstallOutcome {
        let svc = &self.tables.services[svc_idx];
        let Some(rs) = svc.server_reached_at(r.rs) else {
            return InstallOutcome::NoServer;
        };
        let timeout_secs = svc.persistence.map_or(r.timeout_s, |p| p.timeout_secs);
        let key = TemplateKey {
            client: r.client.ip,
            vip: r.vip,
            proto: r.proto,
        };
        let expires = now.plus_secs(r.timeout_s);
        if let Some(t) = self
            .templates
            .find(&key)
            .and_then(|slot| self.templates.get_mut(slot))
        {
            (t.rs, t.rs_index, t.expires) = (rs.addr, rs.index, expires);
            return InstallOutcome::Updated;
        }
        let t = Template {
            key,
            rs: rs.addr,
            rs_index: rs.index,
            expires,
            timeout_secs,
            controls: 0,
        };
        match self.templates.insert(t) {
            Ok(_) => InstallOutcome::Installed,
            Err(_) => InstallOutcome::TableFull,
        }
    }

    fn install_conn(
        &mut self,
        svc_idx: usize,
        key: &crate::session::FlowKey,
        r: &SyncRecord,
        now: Millis,
    ) -> InstallOutcome {
        let udp = r.proto == ipv4::PROTO_UDP;
        let state = if udp {
            TcpState::Established
        } else {
            TcpState::ALL
                .get(usize::from(r.state))
                .copied()
                .unwrap_or(TcpState::None)
        };
        let expires = now.plus_secs(r.timeout_s);
        match self.sessions.lookup(key, now) {
            Lookup::Hit(slot, _) if self.superseded(slot, r) => {
                // The kernel's ip_vs_proc_conn: the same client tuple to
                // another server (or, FULLNAT, local address) is a newer
                // connection that reused the client's port; an active
                // entry replaces ours, an inactive one is an old message
                // about a connection already replaced, and is ignored.
                if !(udp || state == TcpState::Established) {
                    return InstallOutcome::Stale;
                }
                self.expire(slot);
            }
            Lookup::Hit(slot, _) => {
                if let Some((s, ext)) = self.sessions.get_mut_with_ext(slot) {
                    if s.state != state {
                        if let Some(c) = self.rs_conns.get_mut(usize::from(s.rs_index)) {
                            c.moved(s.proto, s.state, state);
                        }
                        s.state = state;
                    }
                    s.expires = expires;
                    if s.forward == Forward::FullNat && !udp && r.isn_off != 0 {
                        s.isn_off = r.isn_off;
                    }
                    // The master's shifts and flags are the stream's as
                    // the server saw it last (a header sent since, say).
                    if (s.client_addr != ClientAddress::None && s.client_addr == r.client_addr)
                        || (ext.has(SYN_PROXY) && r.ext.has(SYN_PROXY))
                    {
                        *ext = r.ext;
                    }
                }
                return InstallOutcome::Updated;
            }
            Lookup::Expired(slot) => self.expire(slot),
            Lookup::Miss => {}
        }
        let tables = Arc::clone(&self.tables);
        let svc = &tables.services[svc_idx];
        let Some(rs) = svc.server_reached_at(r.rs) else {
            return InstallOutcome::NoServer;
        };
        let (laddr_index, laddr) = if rs.forward == Forward::FullNat {
            let Some(l) = r.laddr else {
                return InstallOutcome::NoLocalAddress;
            };
            let Some(li) = tables.laddr_index(l.ip).filter(|&li| {
                svc.laddrs.contains(&(li as u16)) || svc.peer_laddrs.contains(&(li as u16))
            }) else {
                return InstallOutcome::NoLocalAddress;
            };
            if crate::laddr::owner_of(l.port, self.workers) != usize::from(self.worker) {
                return InstallOutcome::OwnerMismatch;
            }
            let mut claim = self.pools.claim(li, l.port);
            // A peer's local address is the peer's to lend: it lends a
            // port again only once its connection there has ended, so a
            // session here holding it is a stale copy (its closing entry
            // lost, or the peer restarted): the peer's entry replaces it.
            if matches!(claim, Some(Err(crate::laddr::ClaimError::InUse(_))))
                && svc.peer_laddrs.contains(&(li as u16))
                && self.expire_holder(&tables, l, now)
            {
                claim = self.pools.claim(li, l.port);
            }
            match claim {
                Some(Ok(())) => {}
                Some(Err(crate::laddr::ClaimError::InUse(_))) => return InstallOutcome::PortInUse,
                _ => return InstallOutcome::OwnerMismatch,
            }
            (li as u16, l)
        } else {
            (0, r.client)
        };
        let (rs_port, rs_mac) = self.next_hop_mac(rs.addr.ip).unwrap_or_else(|| {
            let port = tables.next_hop(rs.addr.ip).map_or(0, |(p, _)| p);
            (port, NO_MAC)
        });
        let (client_port, client_mac) = self.next_hop_mac(r.client.ip).unwrap_or_else(|| {
            let port = tables.next_hop(r.client.ip).map_or(0, |(p, _)| p);
            (port, NO_MAC)
        });
        let session = Session {
            proto: r.proto,
            client: r.client,
            vip: r.vip,
            laddr,
            rs: rs.addr,
            service: svc_idx as u16,
            rs_index: rs.index,
            forward: rs.forward,
            laddr_index,
            state,
            expires,
            client_port,
            client_mac,
            rs_port,
            rs_mac,
            // The master's way of telling the server the client's
            // address, with its sequence shifts (set below): the server
            // has seen the header (or option) already, or will see it
            // exactly once, as on the master. FULLNAT only, as there.
            client_addr: if rs.forward == Forward::FullNat {
                r.client_addr
            } else {
                ClientAddress::None
            },
            // The master's numbering of the client's stream toward the
            // server (FULLNAT TCP; 0 from a master that has none).
            isn_off: if rs.forward == Forward::FullNat && !udp {
                r.isn_off
            } else {
                0
            },
        };
        let slot = match self.sessions.insert(session) {
            Ok(slot) => slot,
            Err(_) => {
                if rs.forward == Forward::FullNat {
                    let _ = self.pools.release(usize::from(laddr_index), laddr.port);
                }
                return InstallOutcome::TableFull;
            }
        };
        if let Some((s, ext)) = self.sessions.get_with_ext(slot) {
            // A SYN-proxied connection's shifts, timestamps and windows
            // (FULLNAT or NAT): the fast path applies them from its first
            // packet here.
            if s.client_addr != ClientAddress::None || r.ext.has(SYN_PROXY) {
                *ext = r.ext;
                if r.ext.has(SYN_PROXY) {
                    self.synproxy.active = true;
                }
            }
        }
        let ri = usize::from(rs.index);
        // Active/inactive counts include it (it is bound to its server, as
        // the kernel's ip_vs_proc_conn binds it); the server's `Conns`
        // statistic does not: the connection was scheduled, and counted,
        // by the box that sent it.
        if let Some(c) = self.rs_conns.get_mut(ri) {
            c.add(r.proto, state);
            if let Some(l) = self.rs_limits.get_mut(ri) {
                l.bound(c);
            }
        }
        // A connection of a persistent service: under its template, if
        // that came first.
        let template = svc.persistence.and_then(|p| {
            self.templates
                .find(&svc.template_key(p, r.client.ip, r.vip, r.proto))
        });
        if let Some(ts) = template {
            if let Some(t) = self.templates.get_mut(ts) {
                t.controls += 1;
            }
        }
        if let Some(st) = self.session_template.get_mut(slot.0 as usize) {
            *st = template.unwrap_or(NO_TEMPLATE);
        }
        self.sync_reset(slot);
        if let Some(f) = self
            .sync
            .as_deref_mut()
            .and_then(|t| t.from_peer.get_mut(slot.0 as usize))
        {
            *f = true;
        }
        self.counters.sessions_created += 1;
        InstallOutcome::Installed
    }
}
