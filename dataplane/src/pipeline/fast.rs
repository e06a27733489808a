//! The fast path: a TCP segment or UDP datagram looked up by its flow key
//! in the two-key session table. A hit moves the session's TCP state and
//! expiry on, counts the server's traffic and hands the packet to the
//! session's forwarding method ([`crate::xmit`]); a miss goes to the owner
//! check and the slow path ([`super::slow`]). A plain FULLNAT or NAT
//! session (the common case: see `forward_plain`) is forwarded in one pass
//! over its hot line; any other the long way (`forward_any`).

use super::classify::is_new_syn;
use super::synproxy;
use super::{Decision, Desc, Pipeline, Reshape, Step, Verdict};
use crate::session::{tcp_state, ClientAddress, Direction, End, Lookup, SlotId, TcpState};
use crate::session::{V4Leg, V6Leg};
use crate::stats::DropReason;
use crate::tables::Forward;
use crate::time::Millis;
use crate::wire::{ethernet, ipv4, ipv6};
use crate::xmit::{self, isn, rewrite, Leg};

/// The new addresses and ports of a plain session's packet (see
/// [`Pipeline::forward_plain`]).
enum PlainLeg {
    V4(V4Leg),
    V6(V6Leg),
}

impl Pipeline {
    /// A TCP segment or UDP datagram of either family, by its flow key:
    /// forward through its session, or create one (by `held`'s decision
    /// for a frame released from the hold queue), or say why not.
    #[inline(always)]
    pub(super) fn handle_flow(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        d: &Desc,
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        // The key is used where it lies in the descriptor (a copy cost ~20
        // instructions a packet).
        let (key, flags) = (&d.key, d.flags);
        let (proto, is_udp) = (key.proto, key.proto == ipv4::PROTO_UDP);
        // A VIP or local address another appliance holds now (active/backup):
        // never forwarded for, synced sessions or not.
        if self.tables.is_standby(key.dst.ip) {
            return Step::drop(DropReason::NotForUs);
        }
        if !self.staged.is_empty() {
            self.file_staged_for(key, d.hash);
        }
        match self.sessions.lookup_ahead(key, d.hash, d.ahead, now) {
            Lookup::Hit(slot, Direction::Outbound) => {
                let v = self.forward(l2, l3, slot, Direction::Outbound, d, in_port, now);
                if self.sessions.is_rs_only(slot) {
                    // One-packet scheduling: the reply ends the session.
                    self.expire(slot);
                }
                return v;
            }
            Lookup::Hit(slot, Direction::Inbound) => {
                if is_udp || !is_new_syn(flags) || !self.is_reusable(slot) {
                    return self.forward(l2, l3, slot, Direction::Inbound, d, in_port, now);
                }
                // A new SYN on a closed session's tuple: the client reuses
                // its port; start over (IPVS conn_reuse_mode).
                self.expire(slot);
            }
            Lookup::Expired(slot) => self.expire(slot),
            Lookup::Miss => {}
        }
        let svc = match self.tables.service_at(key.dst, proto) {
            Some(svc) => svc,
            None => match self.miss_not_a_service(key) {
                Ok(svc) => svc,
                Err(step) => return step,
            },
        };
        let owner = self.owner_of_client(svc, key);
        if owner != usize::from(self.worker) {
            return Step::Done(Verdict::Redirect {
                worker: owner as u16,
            });
        }
        let syn_proxy = !is_udp && self.tables.services[svc].syn_proxy;
        if !is_udp && !is_new_syn(flags) {
            if syn_proxy && synproxy::is_cookie_ack(flags) {
                return self.synproxy_ack(l2, l3, d, svc, in_port, held, now);
            }
            return Step::drop(DropReason::NoSession);
        }
        if let Some(reason) = self.new_flow_refusal(l3, d) {
            return Step::drop(reason);
        }
        if syn_proxy {
            return self.synproxy_syn(svc, key, in_port, now);
        }
        let src_mac = ethernet::Frame::new_checked(&*l2).map_or([0; 6], |e| e.src());
        match self.create_session(svc, d, src_mac, in_port, held.take(), now) {
            Ok(slot) => {
                let v = self.forward(l2, l3, slot, Direction::Inbound, d, in_port, now);
                // One-packet DR/TUN: no reply comes this way; nothing to keep.
                if self.sessions.is_rs_only(slot)
                    && self
                        .sessions
                        .hot(slot)
                        .is_some_and(|s| matches!(s.forward, Forward::Dr | Forward::Tun))
                {
                    self.expire(slot);
                }
                v
            }
            // No server for it: the client is told at once (`ip_vs_leave`).
            Err(Verdict::Drop(DropReason::NoRealServer)) => {
                let l = self.tables.services[svc].limits;
                if self
                    .unreach
                    .allow_at(key.src.ip, now, l.icmp_rate, l.icmp_burst)
                {
                    Step::Forward {
                        port: in_port,
                        reshape: Some(Reshape::Unreachable),
                    }
                } else {
                    self.limits.icmp_limited(&l);
                    Step::drop(DropReason::NoRealServer)
                }
            }
            Err(v) => Step::Done(v),
        }
    }

    fn is_reusable(&self, slot: SlotId) -> bool {
        self.sessions
            .hot(slot)
            .is_some_and(|s| matches!(s.state, TcpState::TimeWait | TcpState::Close))
    }

    /// Moves a session's state on and sends its packet by its method: the
    /// common case in one pass ([`Self::forward_plain`]), anything else
    /// the long way ([`Self::forward_any`]).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn forward(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        slot: SlotId,
        dir: Direction,
        d: &Desc,
        in_port: u16,
        now: Millis,
    ) -> Step {
        #[cfg(test)]
        if self.long_way {
            return self.forward_any(l2, l3, slot, dir, d, in_port, now);
        }
        match self.forward_plain(l2, l3, slot, dir, d, now) {
            Some(step) => step,
            None => self.forward_any(l2, l3, slot, dir, d, in_port, now),
        }
    }

    /// [`Self::forward`] for a plain session, the established path's
    /// common case: FULLNAT or NAT with both of the leg's addresses in the
    /// packet's family (rewritten from the hot line, an IPv6 leg's addresses
    /// from the cold entry), not SYN-proxied, no client address to insert,
    /// both next hops' MACs known. Exactly what [`Self::forward_any`] does
    /// for such a session, without the tests and plumbing of the other
    /// cases. `None`, with nothing changed, for any other session.
    #[inline(always)]
    fn forward_plain(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        slot: SlotId,
        dir: Direction,
        d: &Desc,
        now: Millis,
    ) -> Option<Step> {
        if self.synproxy.active && self.is_proxied(slot) {
            return None;
        }
        let h = self.sessions.hot(slot)?;
        if h.client_addr != ClientAddress::None
            || !matches!(h.forward, Forward::FullNat | Forward::Nat)
            || h.client_mac == [0; 6]
            || h.rs_mac == [0; 6]
        {
            return None;
        }
        // A FULLNAT client's SYN gets its server-side ISN and loses its
        // timestamp the long way (once per connection).
        if dir == Direction::Inbound && is_new_syn(d.flags) && h.forward == Forward::FullNat {
            return None;
        }
        let leg = match *l3.first()? >> 4 {
            4 => PlainLeg::V4(h.v4_leg(dir)?),
            6 if usize::from(d.l4) == ipv6::HEADER_LEN => {
                PlainLeg::V6(self.sessions.v6_leg(slot, h, dir)?)
            }
            _ => return None,
        };
        let (out_port, out_mac) = h.next_hop(dir);
        let timeouts = &self.tables.timeouts;
        let s = self.sessions.get_mut(slot)?;
        let (proto, state, rs_index) = (s.proto, s.state, s.rs_index);
        let expires = if proto == ipv4::PROTO_UDP {
            timeouts.udp_secs
        } else {
            let new_state = tcp_state::next_state(state, dir, d.flags);
            let changed = new_state != state;
            if changed {
                s.state = new_state;
                if let Some(c) = self.rs_conns.get_mut(usize::from(rs_index)) {
                    c.moved(proto, state, new_state);
                }
            }
            self.guard
                .tcp_timeout(new_state, timeouts.tcp(new_state), changed)
        };
        s.expires = now.plus_secs(expires);
        let sent = match &leg {
            PlainLeg::V4(v4) => rewrite::rewrite_v4_leg(l3, usize::from(d.l4), proto, v4),
            PlainLeg::V6(v6) => rewrite::rewrite_v6_leg(l3, proto, v6),
        };
        if sent.is_err() {
            return Some(Step::drop(DropReason::Malformed));
        }
        if let Some(t) = self.rs_traffic.get_mut(usize::from(rs_index)) {
            t.count(dir, l3.len() as u64);
        }
        xmit::set_l2(l2, out_mac, xmit::port_mac(&self.tables, out_port));
        if dir == Direction::Inbound && self.sync.is_some() {
            self.sync_note(slot, now);
        }
        Some(Step::forward(out_port))
    }

    /// A FULLNAT client's SYN (`l3`, its TCP header at `l4`) of session
    /// `slot`: the session's ISN offset if it has none yet (a
    /// retransmitted SYN keeps the first one's), and its timestamp option
    /// replaced by NOPs (see [`crate::xmit::isn`]).
    #[cold]
    fn isn_syn(&mut self, l3: &mut [u8], l4: usize, slot: SlotId, now: Millis) {
        let Some(h) = self.sessions.hot(slot) else {
            return;
        };
        if h.forward != Forward::FullNat || h.proto != ipv4::PROTO_TCP {
            return;
        }
        let end = ip_end(l3);
        let Some(t) = l3.get_mut(l4..end).filter(|t| t.len() >= 20) else {
            return;
        };
        if h.isn_off == 0 {
            let (laddr, rs) = (
                self.sessions.endpoint(slot, End::Laddr),
                self.sessions.endpoint(slot, End::Rs),
            );
            let client_isn = u32::from_be_bytes([t[4], t[5], t[6], t[7]]);
            let wall = Millis(now.0.wrapping_add(self.isn_epoch));
            let off = isn::offset(self.isn_key.isn(laddr, rs, wall), client_isn);
            if let Some(h) = self.sessions.get_mut(slot) {
                h.isn_off = off;
            }
        }
        isn::remove_timestamp(t);
    }

    /// [`Self::forward`] for any session: SYN proxy, client-address
    /// insertion, MACs to repair, DR, TUN, FULLNAT64.
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn forward_any(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        slot: SlotId,
        dir: Direction,
        d: &Desc,
        in_port: u16,
        now: Millis,
    ) -> Step {
        let flags = d.flags;
        let proxied = self.is_proxied(slot);
        if proxied {
            if let Some(step) = self.synproxy_before(l2, l3, slot, dir, d, now) {
                return step;
            }
        }
        if dir == Direction::Inbound && is_new_syn(flags) && !proxied {
            self.isn_syn(l3, usize::from(d.l4), slot, now);
        }
        let timeouts = self.tables.timeouts;
        // A session installed from sync may not know a next hop's MAC yet.
        if self
            .sessions
            .hot(slot)
            .is_some_and(|s| s.client_mac == [0; 6] || s.rs_mac == [0; 6])
        {
            let src_mac = ethernet::Frame::new_checked(&*l2).map_or([0; 6], |e| e.src());
            if !self.repair_l2(slot, dir, src_mac, in_port) {
                return Step::drop(DropReason::NeighbourMiss);
            }
        }
        let Some(hot) = self.sessions.hot(slot) else {
            return Step::drop(DropReason::NoSession);
        };
        // IPv4 through FULLNAT or NAT with IPv4 on both ends of the leg (the
        // common case) is rewritten from the hot line's fields; anything
        // else (IPv6, FULLNAT64, DR, TUN) builds the leg's endpoints.
        let packet_v4 = l3.first().map(|b| b >> 4) == Some(4);
        // The ISN offset is applied apart (below), around the other
        // shifts, not with the addresses.
        let v4 = match hot.forward {
            Forward::FullNat | Forward::Nat if packet_v4 => hot.v4_leg(dir).map(|v4| V4Leg {
                seq_off: 0,
                ack_off: 0,
                ..v4
            }),
            _ => None,
        };
        let isn_off = if hot.proto == ipv4::PROTO_TCP {
            hot.isn_off
        } else {
            0
        };
        let (out_port, out_mac) = hot.next_hop(dir);
        let leg = match v4 {
            Some(_) => None,
            None => Some(Leg::of(&self.sessions, slot, hot, dir)),
        };
        let Some(s) = self.sessions.get_mut(slot) else {
            return Step::drop(DropReason::NoSession);
        };
        let is_udp = s.proto == ipv4::PROTO_UDP;
        let new_state = if is_udp {
            s.state
        } else if matches!(s.forward, Forward::Dr | Forward::Tun) && dir == Direction::Inbound {
            tcp_state::next_state_input_only(s.state, flags)
        } else {
            tcp_state::next_state(s.state, dir, flags)
        };
        let changed = new_state != s.state;
        if changed {
            if let Some(c) = self.rs_conns.get_mut(usize::from(s.rs_index)) {
                c.moved(s.proto, s.state, new_state);
            }
            s.state = new_state;
        }
        s.expires = now.plus_secs(if is_udp {
            timeouts.udp_secs
        } else {
            self.guard
                .tcp_timeout(new_state, timeouts.tcp(new_state), changed)
        });
        let (rs_index, client_addr) = (s.rs_index, s.client_addr);
        let sent = match (&v4, &leg) {
            (Some(v4), _) => rewrite::rewrite_v4_leg(l3, usize::from(d.l4), s.proto, v4)
                .map(|()| None)
                .map_err(|_| DropReason::Malformed),
            (None, Some(leg)) => xmit::xmit(&self.tables, l3, usize::from(d.l4), s, dir, leg),
            (None, None) => Err(DropReason::NoSession),
        };
        let mut reshape = match sent {
            Ok(r) => r,
            Err(reason) => return Step::drop(reason),
        };
        // The ISN offset is the outermost numbering of the client's
        // stream: taken off a server's acknowledgement first, so that the
        // shifts below read the client's own numbering, and added to a
        // client's sequence number last.
        let l4 = usize::from(d.l4);
        if isn_off != 0 && dir == Direction::Outbound {
            isn_shift(l3, l4, isn_off, dir);
        }
        // A SYN proxy's shifts first: a client's acknowledgement is then in
        // the server's numbering, as the TOA rule that follows reads it.
        if proxied {
            self.synproxy_after(l3, l4, slot, dir);
        }
        if client_addr != ClientAddress::None {
            reshape = self.client_address(l3, l4, slot, dir, reshape);
        }
        if isn_off != 0 && dir == Direction::Inbound {
            isn_shift(l3, l4, isn_off, dir);
        }
        if let Some(t) = self.rs_traffic.get_mut(usize::from(rs_index)) {
            t.count(dir, l3.len() as u64);
        }
        xmit::set_l2(l2, out_mac, xmit::port_mac(&self.tables, out_port));
        if dir == Direction::Inbound {
            self.sync_note(slot, now);
        }
        match reshape {
            // Written apart so that the common case stores only the tag.
            None => Step::forward(out_port),
            Some(r) => Step::Forward {
                port: out_port,
                reshape: Some(r),
            },
        }
    }
}

/// The IP packet's end by its own length field (Ethernet may pad).
fn ip_end(l3: &[u8]) -> usize {
    let end = match l3.first().map(|b| b >> 4) {
        Some(4) if l3.len() >= 4 => usize::from(u16::from_be_bytes([l3[2], l3[3]])),
        Some(6) if l3.len() >= 6 => {
            ipv6::HEADER_LEN + usize::from(u16::from_be_bytes([l3[4], l3[5]]))
        }
        _ => l3.len(),
    };
    end.min(l3.len())
}

/// The ISN offset `off` applied on its own to the TCP segment in `l3` (its
/// header at `l4`) going `dir` (see [`isn::shift`]).
fn isn_shift(l3: &mut [u8], l4: usize, off: u32, dir: Direction) {
    let end = ip_end(l3);
    if let Some(t) = l3.get_mut(l4..end) {
        isn::shift(t, off, dir == Direction::Inbound);
    }
}
