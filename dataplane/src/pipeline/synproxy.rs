//! The pipeline's side of the SYN proxy (`syn_proxy = true` on a TCP
//! service, FULLNAT or NAT; the packet logic is [`crate::synproxy`]).
//!
//! ```text
//!  client                     rvs                          real server
//!  SYN ─────────────────────> answered in place, no state
//!      <── SYN-ACK (ISN = cookie, TSval low bits = wscale/sack)
//!  ACK ─────────────────────> cookie checked ── session created,
//!                             the ACK rewritten as the client's SYN ──> SYN
//!  data ────────────────────> held (one frame per connection)
//!                             <─────────────────────────── SYN-ACK
//!                             answered with the held data (or the ACK
//!                             rebuilt): it completes the handshake ──> ACK
//!  then every segment: server's sequence numbers (and SACK edges the
//!  other way) shifted by cookie - server ISN, timestamps by our TSval -
//!  the server's, windows rescaled when the scales differ.
//! ```
//!
//! A SYN costs a hash and a reply, never a session or a local port. The
//! session exists only after an ACK whose cookie checks, and starts in
//! `SYN_SENT` (toward the server); the server's SYN-ACK makes it
//! `ESTABLISHED`. Client segments that arrive between the ACK and the
//! server's SYN-ACK: the first with data is kept (a frame-sized buffer
//! from a small per-worker stash, [`STASH_SLOTS`]) and sent as the ACK
//! that completes the server's handshake, so a request that follows the
//! handshake at once does not wait for the client's retransmission; others
//! (pure ACKs, further data, a FIN) are dropped as `syn_proxy_pending`
//! and the client retransmits them; a retransmission sends the SYN to the
//! server again (at most once a second), and a server's ACK of an older
//! connection on the tuple (TIME_WAIT) is answered with a reset, as a TCP
//! in `SYN_SENT` does. A server RST to the proxy's SYN reaches the client
//! with a sequence number it accepts. A retransmitted SYN-ACK is answered
//! again.

use super::{Desc, Pipeline, Reshape, Step, Verdict};
use crate::packet::PacketBuf;
use crate::session::ext::{ExtFlags, CLIENT_ISN, PROXY_TS, SERVER_ISN, SYN_PROXY};
use crate::session::{Direction, FlowKey, SlotId, TcpState};
use crate::stats::DropReason;
use crate::synproxy::cookie::{self, Secret, SynOptions, Tuple, NO_WSCALE};
use crate::synproxy::segment::{self, Adjust, Segment};
use crate::synproxy::{Counters, ProxyState, CLIENT_WSCALE};
use crate::tables::Tables;
use crate::time::Millis;
use crate::wire::{ethernet, ipv4, tcp};
use crate::xmit::client_addr as ca;
use crate::xmit::seq_shift::{self, SeqShift};
use crate::xmit::Leg;

/// Frames a worker can hold for connections whose server has not
/// answered yet.
pub const STASH_SLOTS: usize = 64;
/// The largest frame held (larger first data is dropped; the client
/// retransmits it).
pub const STASH_BYTES: usize = 2048;
/// How long a held frame waits for its server's SYN-ACK.
const STASH_MS: u64 = 3_000;
/// The least time between two SYNs to a server that has not answered
/// (each sent on a client retransmission).
const SYN_RETRY_MS: u64 = 1_000;

/// One held frame.
#[derive(Debug)]
struct Stashed {
    slot: u32,
    until: Millis,
    len: usize,
    buf: Box<[u8]>,
}

/// A worker's SYN-proxy state: its cookie secret, the held frames and
/// the counters.
#[derive(Debug)]
pub(crate) struct SynProxy {
    secret: Secret,
    /// True once a service of the tables has the SYN proxy on (or a
    /// proxied session exists): the fast path then reads each session's
    /// ext flags.
    pub(super) active: bool,
    stash: Vec<Stashed>,
    /// What it counted.
    pub(super) counters: Counters,
}

impl SynProxy {
    pub(super) fn new(seed: u64) -> Self {
        Self {
            secret: Secret::new(seed),
            active: false,
            stash: Vec::new(),
            counters: Counters::default(),
        }
    }

    /// Turns the proxy's per-packet check on when `tables` need it, and
    /// allocates the stash then (once).
    #[cold]
    pub(super) fn adopt(&mut self, tables: &Tables) {
        if tables.services.iter().any(|s| s.syn_proxy) {
            self.active = true;
        }
        if self.active && self.stash.is_empty() {
            self.stash = (0..STASH_SLOTS)
                .map(|_| Stashed {
                    slot: u32::MAX,
                    until: Millis(0),
                    len: 0,
                    buf: vec![0u8; STASH_BYTES].into_boxed_slice(),
                })
                .collect();
        }
    }

    fn hold(&mut self, slot: SlotId, parts: &[&[u8]], now: Millis) -> bool {
        let len: usize = parts.iter().map(|p| p.len()).sum();
        if len > STASH_BYTES
            || self
                .stash
                .iter()
                .any(|e| e.slot == slot.0 && e.until.0 > now.0)
        {
            return false;
        }
        let Some(e) = self
            .stash
            .iter_mut()
            .find(|e| e.slot == u32::MAX || e.until.0 <= now.0)
        else {
            return false;
        };
        let mut at = 0;
        for p in parts {
            e.buf[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        e.slot = slot.0;
        e.len = len;
        e.until = Millis(now.0 + STASH_MS);
        true
    }

    fn take(&mut self, slot: SlotId, now: Millis) -> Option<&Stashed> {
        let e = self
            .stash
            .iter_mut()
            .find(|e| e.slot == slot.0 && e.until.0 > now.0)?;
        e.slot = u32::MAX;
        Some(e)
    }
}

/// The IP packet's end by its own length field.
fn ip_end(l3: &[u8]) -> usize {
    let end = match l3.first().map(|b| b >> 4) {
        Some(4) if l3.len() >= 4 => usize::from(u16::from_be_bytes([l3[2], l3[3]])),
        Some(6) if l3.len() >= 6 => 40 + usize::from(u16::from_be_bytes([l3[4], l3[5]])),
        _ => l3.len(),
    };
    end.min(l3.len())
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn tuple_of(d: &Desc) -> Tuple {
    Tuple {
        client: d.key.src.ip.octets(),
        vip: d.key.dst.ip.octets(),
        client_port: d.key.src.port,
        vip_port: d.key.dst.port,
        v4: d.key.src.ip.is_v4(),
    }
}

/// True for the flags of a client's handshake ACK (possibly with data or
/// PSH; no SYN, RST or FIN).
pub(super) fn is_cookie_ack(flags: tcp::TcpFlags) -> bool {
    flags & (tcp::SYN | tcp::ACK | tcp::RST | tcp::FIN) == tcp::ACK
}

impl Pipeline {
    /// This worker's SYN-proxy counters.
    #[must_use]
    pub fn synproxy_counters(&self) -> &Counters {
        &self.synproxy.counters
    }

    /// A client's SYN of `key` to proxied service `svc` (checked as a new
    /// flow already): answered in place on the port it came from.
    #[cold]
    pub(super) fn synproxy_syn(
        &mut self,
        svc: usize,
        key: &FlowKey,
        in_port: u16,
        now: Millis,
    ) -> Step {
        // Room for what the service's servers are told of the client (a
        // TOA option or a PROXY header on the client's first segments).
        let room = self
            .tables
            .services
            .get(svc)
            .and_then(|s| ca::insertion(s.client_address, key.src, key.dst, ipv4::PROTO_TCP))
            .map_or(0, |i| i.bytes().len() as u16);
        Step::Forward {
            port: in_port,
            reshape: Some(Reshape::SynCookie { now, room }),
        }
    }

    /// Writes the SYN-ACK for the SYN in `pkt` over it.
    #[cold]
    pub(super) fn answer_syn(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        port: u16,
        now: Millis,
        room: u16,
    ) -> Verdict {
        let Some(d) = self.describe(pkt.frame()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let f = pkt.frame();
        let mut client_mac = [0u8; 6];
        client_mac.copy_from_slice(&f[6..12]);
        let l3 = &f[ethernet::HEADER_LEN..];
        let t = &l3[usize::from(d.l4)..ip_end(l3)];
        let isn = u32_at(t, 4);
        let o = segment::options(t);
        let v4 = d.key.src.ip.is_v4();
        let kept = SynOptions::of_syn(v4, o.mss, o.wscale, o.sack_perm);
        let c = self.synproxy.secret.make(&tuple_of(&d), isn, &kept, now.0);
        let ts = o.ts.map(|(val, _)| (cookie::ts_value(now.0, &kept), val));
        let mtu = self
            .tables
            .interfaces
            .get(usize::from(port))
            .map_or(1500, |i| i.mtu);
        let mss = mtu.saturating_sub(if v4 { 40 } else { 60 } + room);
        let opts = segment::syn_options(mss, o.wscale.map(|_| CLIENT_WSCALE), o.sack_perm, ts);
        let seg = Segment {
            dst_mac: client_mac,
            src_mac: self.port_mac(port),
            src: d.key.dst,
            dst: d.key.src,
            seq: c,
            ack: isn.wrapping_add(1),
            flags: tcp::SYN | tcp::ACK,
            window: 65535,
            ttl: 64,
            options: &opts,
            payload: &[],
        };
        if !pkt.set_len(segment::frame_len(&seg)) {
            return Verdict::Drop(DropReason::NoRoom);
        }
        segment::write(pkt.frame_mut(), &seg);
        self.synproxy.counters.cookies_sent += 1;
        Verdict::Forward { port }
    }

    /// A client's ACK with no session to a proxied service: if its cookie
    /// checks, the session is created and the ACK becomes the client's SYN
    /// to the server; otherwise dropped and counted.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn synproxy_ack(
        &mut self,
        l2: &[u8],
        l3: &[u8],
        d: &Desc,
        svc: usize,
        in_port: u16,
        held: &mut Option<super::Decision>,
        now: Millis,
    ) -> Step {
        if let Some(reason) = self.new_flow_refusal(l3, d) {
            return Step::drop(reason);
        }
        let t = &l3[usize::from(d.l4)..ip_end(l3)];
        let (seq, ack) = (u32_at(t, 4), u32_at(t, 8));
        let window = u16::from_be_bytes([t[14], t[15]]);
        let o = segment::options(t);
        let (isn, c) = (seq.wrapping_sub(1), ack.wrapping_sub(1));
        let kept = self
            .synproxy
            .secret
            .check(&tuple_of(d), isn, c, now.0)
            .filter(|k| o.ts.is_none_or(|(_, ecr)| cookie::ts_agrees(ecr, k)));
        let Some(kept) = kept else {
            self.synproxy.counters.acks_invalid += 1;
            return Step::drop(DropReason::SynCookieInvalid);
        };
        if held.is_none() {
            self.synproxy.counters.acks_valid += 1;
        }
        let src_mac = ethernet::Frame::new_checked(l2).map_or([0; 6], |e| e.src());
        let slot = match self.create_session(svc, d, src_mac, in_port, held.take(), now) {
            Ok(slot) => slot,
            Err(v) => return Step::Done(v),
        };
        self.synproxy.active = true;
        self.synproxy.counters.sessions_opened += 1;
        let timeout = self.tables.timeouts.tcp(TcpState::SynSent);
        self.set_state(slot, TcpState::SynSent);
        let Some((s, ext)) = self.sessions.get_mut_with_ext(slot) else {
            return Step::drop(DropReason::NoSession);
        };
        s.expires = now.plus_secs(timeout);
        let port = s.rs_port;
        // A PROXY header goes in front of the client's first byte: the
        // client's stream moves by its length (TOA: by nothing).
        let header = if s.client_addr.is_proxy() {
            ca::insertion(s.client_addr, d.key.src, d.key.dst, d.key.proto)
                .map_or(0, |i| i.bytes().len())
        } else {
            0
        };
        ext.flags = SYN_PROXY
            | CLIENT_ISN
            | if o.ts.is_some() {
                PROXY_TS
            } else {
                ExtFlags::empty()
            };
        ext.to_server = SeqShift::new(seq, header as u32);
        ext.to_client = SeqShift::default();
        ext.syn_proxy = ProxyState {
            isn: c,
            ts_delta: o.ts.map_or(0, |(_, ecr)| ecr),
            client_tsval: o.ts.map_or(0, |(val, _)| val),
            client_win: window,
            client_wscale: kept.wscale,
            server_wscale: NO_WSCALE,
        };
        Step::Forward {
            port,
            reshape: Some(Reshape::SynProxyOpen {
                slot,
                mss: kept.mss,
                sack: kept.sack,
                now,
            }),
        }
    }

    /// Moves session `slot` to `state`, keeping its server's counts.
    fn set_state(&mut self, slot: SlotId, state: TcpState) {
        if let Some(s) = self.sessions.get_mut(slot) {
            if let Some(c) = self.rs_conns.get_mut(usize::from(s.rs_index)) {
                c.moved(s.proto, s.state, state);
            }
            s.state = state;
        }
    }

    /// Writes the client's SYN toward the server over the ACK in `pkt`
    /// (keeping the ACK first if it carries data).
    #[cold]
    pub(super) fn open_server(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        slot: SlotId,
        mss: u16,
        sack: bool,
        now: Millis,
    ) -> Verdict {
        let f = pkt.frame();
        if f.len() > ethernet::HEADER_LEN {
            let l3 = &f[ethernet::HEADER_LEN..];
            let l4 = if l3[0] >> 4 == 4 {
                usize::from(l3[0] & 0x0f) * 4
            } else {
                40
            };
            let end = ip_end(l3);
            let hlen = l3.get(l4 + 12).map_or(0, |b| usize::from(b >> 4) * 4);
            if end > l4 + hlen
                && self
                    .synproxy
                    .hold(slot, &[&f[..ethernet::HEADER_LEN + end]], now)
            {
                self.synproxy.counters.data_held += 1;
            }
        }
        let (Some(s), Some(ext)) = (self.sessions.hot(slot), self.sessions.ext(slot)) else {
            return Verdict::Drop(DropReason::NoSession);
        };
        let (p, flags, base) = (ext.syn_proxy, ext.flags, ext.to_server.base);
        let leg = Leg::of(&self.sessions, slot, s, Direction::Inbound);
        let ws = (p.client_wscale != NO_WSCALE).then_some(p.client_wscale);
        let window = (u32::from(p.client_win) << ws.unwrap_or(0)).min(0xffff) as u16;
        let ts = flags.contains(PROXY_TS).then_some((p.client_tsval, 0));
        let opts = segment::syn_options(mss, ws, sack, ts);
        let seg = Segment {
            dst_mac: leg.mac,
            src_mac: self.port_mac(leg.port),
            src: leg.src,
            dst: leg.dst,
            seq: base.wrapping_sub(1),
            ack: 0,
            flags: tcp::SYN,
            window,
            ttl: 64,
            options: &opts,
            payload: &[],
        };
        if !pkt.set_len(segment::frame_len(&seg)) {
            return Verdict::Drop(DropReason::NoRoom);
        }
        segment::write(pkt.frame_mut(), &seg);
        Verdict::Forward { port: leg.port }
    }

    /// True if session `slot` is a proxied one (read only once the
    /// tables or a session turned the proxy on).
    #[inline]
    pub(super) fn is_proxied(&self, slot: SlotId) -> bool {
        self.synproxy.active
            && self
                .sessions
                .ext(slot)
                .is_some_and(|e| e.flags.contains(SYN_PROXY))
    }

    /// A packet of a proxied session before its method's rewrite: the
    /// handshake's special cases (see the module doc); `None` to go on
    /// as any packet does.
    #[cold]
    pub(super) fn synproxy_before(
        &mut self,
        l2: &[u8],
        l3: &mut [u8],
        slot: SlotId,
        dir: Direction,
        d: &Desc,
        now: Millis,
    ) -> Option<Step> {
        let end = ip_end(l3);
        let l4 = usize::from(d.l4);
        let flags = d.flags;
        let (s, ext) = self.sessions.get_mut_with_ext(slot)?;
        let done = ext.flags.contains(SERVER_ISN);
        let t = l3.get_mut(l4..end)?;
        if t.len() < tcp::MIN_HEADER_LEN {
            return None;
        }
        let payload = t.len().saturating_sub(usize::from(t[12] >> 4) * 4);
        match dir {
            Direction::Outbound if flags & (tcp::SYN | tcp::ACK) == tcp::SYN | tcp::ACK => {
                let o = segment::options(t);
                let server_isn = u32_at(t, 4);
                let port = s.rs_port;
                if !done {
                    if u32_at(t, 8) != ext.to_server.base {
                        return Some(Step::drop(DropReason::SynProxyPending));
                    }
                    let p = &mut ext.syn_proxy;
                    ext.to_client =
                        SeqShift::new(server_isn.wrapping_add(1), p.isn.wrapping_sub(server_isn));
                    ext.server_next = server_isn.wrapping_add(1);
                    p.server_wscale = o.wscale.map_or(NO_WSCALE, |w| w.min(cookie::MAX_WSCALE));
                    p.ts_delta = match o.ts {
                        Some((val, _)) => p.ts_delta.wrapping_sub(val),
                        None => 0,
                    };
                    ext.flags |= SERVER_ISN;
                    s.expires = now.plus_secs(self.tables.timeouts.tcp(TcpState::Established));
                    self.set_state(slot, TcpState::Established);
                    self.synproxy.counters.server_handshakes += 1;
                } else if server_isn.wrapping_add(1) != ext.server_next {
                    return Some(Step::drop(DropReason::SynProxyPending));
                }
                let ts_delta = self.sessions.ext(slot).map_or(0, |e| e.syn_proxy.ts_delta);
                let tsecr = o.ts.map_or(0, |(val, _)| val.wrapping_add(ts_delta));
                Some(Step::Forward {
                    port,
                    reshape: Some(Reshape::SynProxyRelease { slot, tsecr, now }),
                })
            }
            _ if done => None,
            Direction::Outbound if flags.contains(tcp::RST) => {
                // The server refused the proxy's SYN: the client knows the
                // connection by the cookie's numbers.
                let new = ext.syn_proxy.isn.wrapping_add(1);
                seq_shift::rewrite(
                    t,
                    Some(&SeqShift::new(u32_at(t, 4), new.wrapping_sub(u32_at(t, 4)))),
                    None,
                );
                None
            }
            Direction::Outbound
                if flags & (tcp::SYN | tcp::ACK | tcp::RST) == tcp::ACK
                    && u32_at(t, 8) != ext.to_server.base =>
            {
                // An acknowledgement of something the proxy never sent: the
                // server holds an older connection on this tuple (TIME_WAIT
                // after a restart lent the port again, or a half-open one)
                // and answers the SYN so. A TCP in SYN_SENT answers it with
                // a reset, which ends the old connection; the next SYN
                // (on the client's next retransmission) then opens anew.
                self.synproxy.counters.server_stale_acks += 1;
                Some(Step::Forward {
                    port: s.rs_port,
                    reshape: Some(Reshape::SynProxyReset { seq: u32_at(t, 8) }),
                })
            }
            Direction::Inbound if flags.contains(tcp::RST) => None,
            Direction::Inbound => {
                if payload > 0 && self.synproxy.hold(slot, &[l2, &l3[..end]], now) {
                    self.synproxy.counters.data_held += 1;
                    return Some(Step::Done(Verdict::Consumed));
                }
                // A client retransmission while the server has not
                // answered: the SYN again, at most once a second (the
                // session's expiry was set when the last one went).
                let timeout = self.tables.timeouts.tcp(TcpState::SynSent);
                let last_syn = Millis(s.expires.0.saturating_sub(u64::from(timeout) * 1000));
                let kept = (now.0 >= last_syn.0 + SYN_RETRY_MS)
                    .then(|| {
                        let isn = ext.to_server.base.wrapping_sub(1);
                        self.synproxy
                            .secret
                            .check(&tuple_of(d), isn, ext.syn_proxy.isn, now.0)
                    })
                    .flatten();
                let Some(kept) = kept else {
                    return Some(Step::drop(DropReason::SynProxyPending));
                };
                s.expires = now.plus_secs(timeout);
                self.synproxy.counters.server_syn_retries += 1;
                Some(Step::Forward {
                    port: s.rs_port,
                    reshape: Some(Reshape::SynProxyOpen {
                        slot,
                        mss: kept.mss,
                        sack: kept.sack,
                        now,
                    }),
                })
            }
            _ => Some(Step::drop(DropReason::SynProxyPending)),
        }
    }

    /// Replaces the server's segment in `pkt` with a reset back to it,
    /// sequence number `seq` (the segment's acknowledgement), as a TCP in
    /// `SYN_SENT` answers an unacceptable ACK (RFC 9293 3.10.7.3).
    #[cold]
    pub(super) fn reset_server(&mut self, pkt: &mut PacketBuf<'_>, seq: u32, port: u16) -> Verdict {
        let Some(d) = self.describe(pkt.frame()) else {
            return Verdict::Drop(DropReason::Malformed);
        };
        let mut server_mac = [0u8; 6];
        server_mac.copy_from_slice(&pkt.frame()[6..12]);
        let opts = segment::ack_options(None);
        let seg = Segment {
            dst_mac: server_mac,
            src_mac: self.port_mac(port),
            src: d.key.dst,
            dst: d.key.src,
            seq,
            ack: 0,
            flags: tcp::RST,
            window: 0,
            ttl: 64,
            options: &opts,
            payload: &[],
        };
        if !pkt.set_len(segment::frame_len(&seg)) {
            return Verdict::Drop(DropReason::NoRoom);
        }
        segment::write(pkt.frame_mut(), &seg);
        Verdict::Forward { port }
    }

    /// A packet of a proxied session after its method's rewrite: the
    /// server stream's shift, timestamps and windows.
    #[inline(never)]
    pub(super) fn synproxy_after(
        &mut self,
        l3: &mut [u8],
        l4: usize,
        slot: SlotId,
        dir: Direction,
    ) {
        let Some(ext) = self.sessions.ext(slot) else {
            return;
        };
        if !ext.flags.contains(SERVER_ISN) {
            return;
        }
        let (shift, p, ts) = (ext.to_client, ext.syn_proxy, ext.flags.contains(PROXY_TS));
        let end = ip_end(l3);
        let Some(t) = l3.get_mut(l4..end) else {
            return;
        };
        let ts_delta = if ts { p.ts_delta } else { 0 };
        match dir {
            Direction::Inbound => {
                seq_shift::rewrite(t, None, Some(&shift));
                segment::adjust(
                    t,
                    &Adjust {
                        tsval_add: 0,
                        tsecr_sub: ts_delta,
                        window: p.window_to_server(),
                    },
                );
            }
            Direction::Outbound => {
                seq_shift::rewrite(t, Some(&shift), None);
                segment::adjust(
                    t,
                    &Adjust {
                        tsval_add: ts_delta,
                        tsecr_sub: 0,
                        window: p.window_to_client(),
                    },
                );
            }
        }
    }

    /// Replaces the server's SYN-ACK in `pkt` with the client's held frame,
    /// or with its handshake ACK rebuilt (TSecr `tsecr` in the client's
    /// view), and sends it through the session like any client packet.
    #[cold]
    pub(super) fn release_to_server(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        slot: SlotId,
        tsecr: u32,
        now: Millis,
    ) -> Verdict {
        let Some((s, ext)) = self.sessions.get_with_ext(slot) else {
            return Verdict::Drop(DropReason::NoSession);
        };
        let (p, flags, base) = (ext.syn_proxy, ext.flags, ext.to_server.base);
        if let Some(e) = self.synproxy.take(slot, now) {
            if !pkt.set_len(e.len) {
                return Verdict::Drop(DropReason::NoRoom);
            }
            pkt.frame_mut().copy_from_slice(&e.buf[..e.len]);
        } else {
            let opts =
                segment::ack_options(flags.contains(PROXY_TS).then_some((p.client_tsval, tsecr)));
            let seg = Segment {
                dst_mac: [0; 6],
                src_mac: s.client_mac,
                src: s.client,
                dst: s.vip,
                seq: base,
                ack: p.isn.wrapping_add(1),
                flags: tcp::ACK,
                window: p.client_win,
                ttl: 64,
                options: &opts,
                payload: &[],
            };
            if !pkt.set_len(segment::frame_len(&seg)) {
                return Verdict::Drop(DropReason::NoRoom);
            }
            segment::write(pkt.frame_mut(), &seg);
        }
        let step = self.classify(pkt.frame_mut(), s.client_port, None, &mut None, now);
        self.finish(pkt, step)
    }
}
