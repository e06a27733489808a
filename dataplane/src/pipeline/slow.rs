//! The slow path: a new connection (a TCP SYN, any UDP datagram) to a
//! service. It is scheduled (through the persistence template, if the
//! service has one), given a local address and port (FULLNAT), its next
//! hop resolved, and its session inserted. The choices made before the next
//! hop is known form a [`Decision`]: when the next hop's MAC is missing the
//! frame is held with it, and on release the session is created by that
//! decision instead of scheduling the connection a second time. Also here:
//! the owner of a packet that misses every session and service (a reply
//! for another worker, or not ours).
//!
//! Thresholds (`-x`/`-y`) are per worker: worker `w` of `W` enforces a
//! share of each server's thresholds, `upper / W` plus one for `upper % W`
//! of the workers (rotated by server, so no worker is always short), over
//! the connections it created ([`super::RsLimit`]). The shares add up to the
//! configured number, so the aggregate never exceeds `upper`; the price is
//! that a worker may refuse a server while another still has room in its
//! share (at most `W - 1` connections of headroom unused). A share of 0
//! (`upper < W`) means that worker sends that server nothing. The
//! hysteresis is the kernel's: overloaded once the worker's count reaches
//! its upper share; cleared when it falls below its lower share (at least
//! 1), or below 3/4 of the upper share when no lower threshold is set.

use super::counts::View;
use super::{Desc, Pipeline, Step, Verdict};
use crate::laddr::owner_of;
use crate::neigh::NeighEvent;
use crate::sched::{Flow, Scheduler};
use crate::session::template::{Template, TemplateKey, TemplateSlot, TemplateTable, NO_TEMPLATE};
use crate::session::{
    ClientAddress, Endpoint, FlowKey, InsertError, Lookup, Session, SlotId, TcpState,
};
use crate::stats::DropReason;
use crate::tables::{Forward, Service, Tables};
use crate::time::Millis;
use crate::wire::{ipv4, MacAddr};

/// [`Decision::laddr`] when no local port was borrowed (NAT, DR, TUN).
const NO_LADDR: u16 = u16::MAX;

/// What the slow path decided for a new connection before its next hop was
/// known: the service and real server (and the persistence template that
/// named it), and for FULLNAT the local address and the port borrowed from
/// it. A frame held for its next hop keeps it ([`Verdict::Hold`]); the
/// port stays borrowed until the session is created or the decision is
/// given back ([`Pipeline::abandon`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    service: u16,
    /// Position in the service's server list.
    server: u16,
    rs_index: u16,
    template: TemplateSlot,
    laddr: u16,
    lport: u16,
}

impl Decision {
    /// The real server chosen (global index).
    #[must_use]
    pub fn rs_index(&self) -> u16 {
        self.rs_index
    }
}

/// Flows whose first frame was held lately, remembered this long (the hold
/// queue's own limit).
const HELD_FLOW_MS: u64 = crate::hold::HoldQueue::<()>::HOLD_MS;
/// At most this many of them (the oldest forgotten first).
const HELD_FLOWS: usize = 128;

impl Pipeline {
    /// Remembers that flow `key`'s first frame waits for next hop `nh`
    /// from `now`.
    fn note_held(&mut self, key: FlowKey, nh: crate::addr::Addr, now: Millis) {
        if self.held_flows.len() == HELD_FLOWS {
            self.held_flows.remove(0);
        }
        self.held_flows.push((key, nh, now));
    }

    /// Whether flow `key`'s first frame still waits: held less than
    /// [`HELD_FLOW_MS`] ago for a next hop still unresolved (once resolved,
    /// the worker has released it, and a flow without a session then lost
    /// its frame: it is scheduled anew). Forgets older entries.
    fn is_held(&mut self, key: &FlowKey, now: Millis) -> bool {
        if self.held_flows.is_empty() {
            return false;
        }
        self.held_flows
            .retain(|(_, _, at)| now.0.saturating_sub(at.0) < HELD_FLOW_MS);
        let neigh = &self.neigh;
        self.held_flows
            .iter()
            .any(|(k, nh, _)| k == key && neigh.lookup(*nh).is_none())
    }

    /// Gives back what a decision borrowed (its local port): for a held
    /// frame that expired or found no room in the hold queue.
    pub fn abandon(&mut self, d: Decision) {
        if d.laddr != NO_LADDR {
            if let Some(released) = self.pools.release(usize::from(d.laddr), d.lport) {
                debug_assert!(
                    released.is_ok(),
                    "decision held a port its pool did not lend"
                );
            }
        }
    }

    /// Schedules a new connection of service `svc_idx` and borrows its
    /// local port. On failure nothing is left allocated (a new template
    /// may stay, as in the kernel, and expires on its own).
    fn decide(
        &mut self,
        svc_idx: usize,
        key: &FlowKey,
        now: Millis,
    ) -> Result<Decision, DropReason> {
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
                let tkey = svc.template_key(p, key.src.ip, key.dst, key.proto);
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
        let (mut laddr, mut lport) = (NO_LADDR, 0);
        // NAT, DR and TUN borrow no local port: the client stands for itself.
        if rs.forward == Forward::FullNat {
            // Round robin over the service's local addresses from the
            // cursor: `(cursor + k) % n`, counted without a division per
            // connection.
            let n = svc.laddrs.len();
            let mut pos = self.laddr_cursor[svc_idx];
            if pos >= n && n > 0 {
                pos %= n;
            }
            for _ in 0..n {
                let li = svc.laddrs[pos];
                pos += 1;
                if pos == n {
                    pos = 0;
                }
                if let Some(p) = self.pools.alloc(usize::from(li)) {
                    self.laddr_cursor[svc_idx] = pos;
                    (laddr, lport) = (li, p);
                    break;
                }
            }
            if laddr == NO_LADDR {
                return Err(DropReason::PortExhausted);
            }
        }
        Ok(Decision {
            service: svc_idx as u16,
            server: i as u16,
            rs_index: rs.index,
            template,
            laddr,
            lport,
        })
    }

    /// A held frame's decision, if it still applies to the tables in
    /// force: the same service at the same position, the same server, and
    /// its local address still the service's. Its template is kept only if
    /// the slot still holds the template it named.
    fn still_applies(&self, d: Decision, svc_idx: usize, key: &FlowKey) -> Option<Decision> {
        let svc = self.tables.services.get(svc_idx)?;
        let rs = svc.servers.get(usize::from(d.server))?;
        let fullnat = rs.forward == Forward::FullNat;
        if usize::from(d.service) != svc_idx
            || rs.index != d.rs_index
            || fullnat != (d.laddr != NO_LADDR)
            || (fullnat && !svc.laddrs.contains(&d.laddr))
        {
            return None;
        }
        let mut d = d;
        let same_template = svc.persistence.is_some_and(|p| {
            self.templates.get(d.template).is_some_and(|t| {
                t.rs_index == d.rs_index
                    && t.key == svc.template_key(p, key.src.ip, key.dst, key.proto)
            })
        });
        if !same_template {
            d.template = NO_TEMPLATE;
        }
        Some(d)
    }

    /// The slow path: decide (or take the decision a held frame kept),
    /// resolve the next hop, insert. `Err` with the verdict otherwise: a
    /// drop (nothing left allocated), or [`Verdict::Hold`] with the
    /// decision when the next hop's MAC is missing (control was asked).
    /// For the frame described by `desc`, whose flow key's lookup has just
    /// missed (or found a session since removed): the insert does not
    /// search the index for that key again.
    #[cold]
    #[inline(never)]
    pub(super) fn create_session(
        &mut self,
        svc_idx: usize,
        desc: &Desc,
        client_mac: MacAddr,
        in_port: u16,
        held: Option<Decision>,
        now: Millis,
    ) -> Result<SlotId, Verdict> {
        let (key, hc) = (desc.key, desc.hash);
        self.judge_guard(now);
        if !self.room_in_table(now) {
            if let Some(d) = held {
                self.abandon(d);
            }
            return Err(Verdict::Drop(DropReason::SessionTableFull));
        }
        // A retransmission of a connection's first packet while that one
        // waits for its next hop: the held one goes when the MAC comes;
        // scheduling again would move rr on twice for one connection.
        if held.is_none() && self.is_held(&key, now) {
            return Err(Verdict::Drop(DropReason::NeighbourMiss));
        }
        // ACL and limits (admit.rs); a held frame was judged when it came.
        let ticket = self
            .admit(svc_idx, &key, held.is_some(), now)
            .map_err(Verdict::Drop)?;
        let kept = held.and_then(|d| self.still_applies(d, svc_idx, &key));
        let d = match (kept, held) {
            (Some(d), _) => d,
            (None, stale) => {
                if let Some(d) = stale {
                    self.abandon(d);
                }
                match self.decide(svc_idx, &key, now) {
                    // Flood guard: a half-open session's port for this one.
                    Err(DropReason::PortExhausted) if self.room_in_pools(svc_idx, now) => {
                        self.decide(svc_idx, &key, now).map_err(Verdict::Drop)?
                    }
                    r => r.map_err(Verdict::Drop)?,
                }
            }
        };
        let tables: &Tables = &self.tables;
        let svc = &tables.services[svc_idx];
        let rs = svc.servers[usize::from(d.server)];
        let (li, laddr) = if d.laddr == NO_LADDR {
            (0, key.src)
        } else {
            (
                d.laddr,
                Endpoint::at(tables.laddrs[usize::from(d.laddr)], d.lport),
            )
        };
        let template = d.template;
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
        // The next hop's port and MAC are filled in below.
        let mut session = Session {
            proto: key.proto,
            client: key.src,
            vip: key.dst,
            laddr,
            rs: Endpoint::at(rs.addr.ip, svc.server_port(&rs, key.dst)),
            service: svc_idx as u16,
            rs_index: rs.index,
            forward: rs.forward,
            laddr_index: li,
            state,
            expires: now.plus_secs(timeout),
            client_port: in_port,
            client_mac,
            rs_port: 0,
            rs_mac: [0; 6],
            // FULLNAT only (NAT's servers see the client already); UDP
            // takes PROXY v2 alone (config refuses the others).
            client_addr: match (rs.forward, key.proto, svc.client_address) {
                (Forward::FullNat, ipv4::PROTO_TCP, m) => m,
                (Forward::FullNat, ipv4::PROTO_UDP, ClientAddress::ProxyV2) => {
                    ClientAddress::ProxyV2
                }
                _ => ClientAddress::None,
            },
            // Set by the client's SYN on its way through (`fast.rs`).
            isn_off: 0,
        };
        // The RS key is new to the index: its buckets are asked for now, so
        // that their memory misses overlap the next hop's lookups.
        let hr = self.sessions.hash_of(&session.rs_key());
        self.sessions.prefetch_hash(hr);
        let Some((rs_port, nh)) = tables.next_hop(rs.addr.ip) else {
            self.abandon(d);
            return Err(Verdict::Drop(DropReason::NotForUs));
        };
        let Some(rs_mac) = self.neigh.lookup(nh) else {
            self.report(NeighEvent::Wanted {
                ip: nh,
                port: rs_port,
            });
            if held.is_none() {
                self.note_held(key, nh, now);
            }
            return Err(Verdict::Hold {
                next_hop: nh,
                decision: d,
            });
        };
        session.rs_port = rs_port;
        session.rs_mac = rs_mac;
        let tables: &Tables = &self.tables;
        let svc = &tables.services[svc_idx];
        let one_packet = svc.ops && key.proto == ipv4::PROTO_UDP;
        let inserted = if one_packet {
            self.sessions.insert_rs_only(session)
        } else {
            // FULLNAT's server-side key holds a port lent to it alone: in a
            // burst it is filed at the burst's end (`staged.rs`).
            self.insert_session(session, rs.forward == Forward::FullNat, hc, hr)
        };
        match inserted {
            // One-packet NAT: the same client port to the same server again
            // before the last reply; that session carries this datagram too.
            Err(InsertError::Duplicate) if one_packet && rs.forward == Forward::Nat => {
                match self.sessions.lookup(&session.rs_key(), now) {
                    Lookup::Hit(slot, _) => Ok(slot),
                    _ => Err(Verdict::Drop(DropReason::SessionTableFull)),
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
                self.limits.opened(slot.0 as usize, ticket);
                self.sync_reset(slot);
                self.counters.sessions_created += 1;
                self.guard.count_new(now);
                self.guard.born(slot, now);
                Ok(slot)
            }
            Err(_) => {
                self.abandon(d);
                Err(Verdict::Drop(DropReason::SessionTableFull))
            }
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
    ///
    /// Only then are the mark rules asked (see [`crate::marks`]): a flow
    /// they give the mark of a firewall-mark service is that service's
    /// (`Ok`, its index), as a flow to a VIP is its service's.
    #[cold]
    pub(super) fn miss_not_a_service(&self, key: &FlowKey) -> Result<usize, Step> {
        let dst = key.dst.ip;
        if self.tables.laddr_index(dst).is_some() {
            let owner = owner_of(key.dst.port, self.workers);
            if owner != usize::from(self.worker) {
                return Err(Step::Done(Verdict::Redirect {
                    worker: owner as u16,
                }));
            }
            return Err(Step::drop(DropReason::NoSession));
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
                    return Err(Step::Done(Verdict::Redirect {
                        worker: owner as u16,
                    }));
                }
                return Err(Step::drop(DropReason::NoSession));
            }
        }
        // The kernel side's own addresses are never marked away from it.
        if !self.tables.is_interface_addr(dst) {
            if let Some(svc) = self.tables.marked_service(key.dst, key.proto) {
                return Ok(svc);
            }
        }
        Err(self.punt_or(
            dst,
            if self.tables.owns(dst) {
                DropReason::NoService
            } else {
                DropReason::NotForUs
            },
        ))
    }
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
