//! IP fragments, forwarded without reassembly.
//!
//! ```text
//!  fragment ─┬─ first (offset 0): TCP/UDP ─> described by its transport
//!            │   header as any packet, through the session lookup and the
//!            │   slow path (handle_flow); filed in the fragment table
//!            │   ([`crate::frag`]) with what its later fragments do
//!            ├─ first: ICMP error (IPv4) ─> relayed (icmp_relay.rs), filed
//!            └─ later (offset > 0) ─> the table: through the first one's
//!                session, or to the worker that owns it; not filed yet:
//!                held by the worker (Verdict::HoldFragment) until its
//!                first one is filed, then sent on right after it
//! ```
//!
//! Every forwarding method carries fragments: FULLNAT and NAT rewrite the
//! first fragment's addresses and ports (its transport checksum updated
//! incrementally for the whole datagram) and the later fragments'
//! addresses only ([`crate::xmit::fragment`]); DR sends them on untouched,
//! TUN wraps each in its own outer header; FULLNAT64 translates each
//! fragment to the other family, with or without a fragment header
//! ([`crate::xmit::nat64`], RFC 7915). Sessions are created and their
//! state moved by first fragments only; a server's traffic counts each
//! datagram as one packet (as IPVS, which sees it reassembled) and every
//! fragment's bytes.
//!
//! Out of order: a later fragment whose datagram is not filed is held by
//! the worker ([`crate::frag_hold`]): when a first fragment is filed, the
//! worker asks [`Pipeline::take_filed_datagram`] and offers the frames
//! waiting for it again ([`Pipeline::process_released_buf`]). A first
//! fragment that waits for its server's MAC (the neighbour hold) is filed
//! only when it is released, so its later fragments wait for it too.
//!
//! Not carried (dropped as `fragment`): later fragments whose first one
//! does not come within the hold time or that find the hold full, fragments
//! that overlap what their datagram sent already (and, but for exact
//! duplicates, the rest of that datagram: [`crate::frag`]), fragments of
//! services that insert the client's address (a TOA option or PROXY header
//! cannot be inserted into a fragment without reassembling the datagram;
//! counted `client_address`, the datagram's later fragments with it), a
//! FULLNAT64 first fragment of a UDP datagram without checksum, IPv6
//! fragment headers after other extension headers, fragmented ICMPv6
//! errors, and ICMP errors that quote a later fragment (no ports to find a
//! session by; the kernel's IPVS does not relay them either). An ICMP error
//! that quotes a first fragment is relayed as any.

use super::icmp_relay::{self, quoted};
use super::{Decision, Desc, Pipeline, Reshape, Step, Verdict};
use crate::addr::Addr;
use crate::frag::{Follow, FragKey, Piece, Unfollowed};
use crate::packet::PacketBuf;
use crate::session::{ClientAddress, Direction, Endpoint, FlowKey, Lookup, SlotId};
use crate::stats::DropReason;
use crate::tables::Forward;
use crate::time::Millis;
use crate::wire::{icmpv6, ipv4, ipv6, tcp, udp};
use crate::xmit::{self, fragment, Leg};

/// What became of a later fragment held for its first one, for
/// [`Pipeline::count_fragment_hold`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FragHoldEvent {
    /// Kept in the hold (`held`).
    Held,
    /// Dropped: no room in the hold (`hold_full`).
    Full,
    /// Dropped: its first fragment did not come in time (`no_first`).
    Expired,
}

/// A fragment as its IP header (and IPv6 fragment header) describes it.
#[derive(Debug, Clone, Copy)]
struct Frag {
    key: FragKey,
    piece: Piece,
    /// Offset of its data from the start of the IP header.
    data: usize,
    ttl: u8,
}

/// The fragment fields of an IPv4 packet (header checked by the caller).
fn frag_v4(l3: &[u8]) -> Option<Frag> {
    let ip = ipv4::Packet::new_checked(l3).ok()?;
    let data = ip.header_len();
    Some(Frag {
        key: FragKey {
            src: Addr::v4(ip.src()),
            dst: Addr::v4(ip.dst()),
            id: u32::from(ip.ident()),
            proto: ip.protocol(),
        },
        piece: Piece {
            offset: ip.frag_offset() as u32,
            len: (ip.total_len() - data) as u32,
            more: ip.more_frags(),
        },
        data,
        ttl: ip.ttl(),
    })
}

/// The fragment fields of an IPv6 packet with a fragment header.
fn frag_v6(l3: &[u8]) -> Option<Frag> {
    let ip = ipv6::Packet::new_checked(l3).ok()?;
    let f = ipv6::Fragment::new_checked(&ip)?;
    Some(Frag {
        key: FragKey {
            src: Addr::v6(ip.src()),
            dst: Addr::v6(ip.dst()),
            id: f.ident,
            proto: f.next_header,
        },
        piece: Piece {
            offset: f.offset as u32,
            len: f.data_len as u32,
            more: f.more,
        },
        data: ipv6::HEADER_LEN + ipv6::FRAGMENT_LEN,
        ttl: ip.hop_limit(),
    })
}

/// Ports and TCP flags of a first fragment's transport header, which must
/// lie whole in it (RFC 1858: no tiny first fragments). UDP's length field
/// is the datagram's, not the fragment's: not checked against it.
fn first_ports(data: &[u8], proto: u8) -> Option<(u16, u16, tcp::TcpFlags)> {
    if proto == ipv4::PROTO_UDP {
        let h = data.get(..udp::HEADER_LEN)?;
        Some((
            u16::from_be_bytes([h[0], h[1]]),
            u16::from_be_bytes([h[2], h[3]]),
            tcp::TcpFlags::empty(),
        ))
    } else {
        let t = tcp::Packet::new_checked(data).ok()?;
        Some((t.src_port(), t.dst_port(), t.flags()))
    }
}

/// True for an IPv4 fragment or an IPv6 packet with a fragment header
/// (for the checks a whole packet gets and a fragment cannot).
#[must_use]
pub(super) fn is_fragment(l3: &[u8]) -> bool {
    match l3.first().map(|b| b >> 4) {
        Some(4) => l3.len() >= 8 && u16::from_be_bytes([l3[6], l3[7]]) & 0x3fff != 0,
        Some(6) => l3.get(6) == Some(&ipv6::NEXT_FRAGMENT),
        _ => false,
    }
}

impl Pipeline {
    /// An IPv4 fragment of TCP, UDP or ICMP, or an IPv6 packet with a
    /// fragment header. `held` is a released first fragment's decision.
    #[cold]
    pub(super) fn handle_fragment(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let f = if l3[0] >> 4 == 4 {
            frag_v4(l3)
        } else {
            frag_v6(l3)
        };
        let Some(f) = f else {
            return Step::drop(DropReason::Malformed);
        };
        if f.piece.offset != 0 {
            return self.later_fragment(l2, l3, &f, now);
        }
        match f.key.proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => {
                self.first_fragment(l2, l3, &f, in_port, held, now)
            }
            ipv4::PROTO_ICMP if f.key.src.is_v4() => self.first_icmp_fragment(l2, l3, &f, now),
            icmpv6::NEXT_HEADER if !f.key.src.is_v4() => Step::drop(DropReason::Fragment),
            _ => self.punt_or(f.key.dst, DropReason::Fragment),
        }
    }

    /// The first fragment of a TCP segment or UDP datagram: the flow path
    /// of any packet, then filed for the fragments that follow.
    fn first_fragment(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        f: &Frag,
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let proto = f.key.proto;
        let Some((sport, dport, flags)) = l3
            .get(f.data..f.data + f.piece.len as usize)
            .and_then(|d| first_ports(d, proto))
        else {
            return Step::drop(DropReason::Malformed);
        };
        let key = FlowKey {
            src: Endpoint::at(f.key.src, sport),
            dst: Endpoint::at(f.key.dst, dport),
            proto,
        };
        let d = Desc {
            key,
            hash: self.sessions.hash_of(&key),
            l4: f.data as u16,
            flags,
            ttl: f.ttl,
            ahead: crate::session::Ahead::NONE,
        };
        if d.ttl <= 1 && !self.is_kernel_bound(key.dst.ip) {
            return Step::drop(DropReason::TtlExceeded);
        }
        if proto == ipv4::PROTO_TCP && !super::ingress_check::tcp_flags_valid(flags) {
            return Step::drop(DropReason::TcpFlags);
        }
        if self.refuses_fragments(&d, now) {
            // Its later fragments go the same way (counted with it).
            self.frags.counters.client_address += 1;
            return self.file_first(f, Follow::Refused, Step::drop(DropReason::Fragment), now);
        }
        // Sent again while its datagram is filed (a released held frame is
        // the same one, filed by it).
        if held.is_none() && self.frags.first_again(&f.key, f.piece, now) {
            return Step::drop(DropReason::Fragment);
        }
        let step = self.handle_flow(l2, l3, &d, in_port, held, now);
        let follow = match step {
            Step::Forward {
                reshape: Some(Reshape::Insert { .. }),
                ..
            } => {
                self.frags.counters.client_address += 1;
                return Step::drop(DropReason::Fragment);
            }
            // No server: the client is told; the rest is not followed.
            Step::Forward {
                reshape: Some(Reshape::Unreachable),
                ..
            } => return step,
            // Waiting for its server's MAC: filed when released, so that
            // its later fragments wait for it in the fragment hold.
            Step::Done(Verdict::Hold { .. }) => return step,
            Step::Forward { .. } => Follow::Session(key),
            Step::Done(Verdict::Redirect { worker }) => Follow::Worker(worker),
            _ => return step,
        };
        self.file_first(f, follow, step, now)
    }

    /// Files a first fragment that goes on as `step`; a full table drops it
    /// (the datagram could not be delivered whole).
    fn file_first(&mut self, f: &Frag, follow: Follow, step: Step, now: Millis) -> Step {
        if self.frags.insert(f.key, follow, f.piece, now).is_err() {
            return Step::drop(DropReason::Fragment);
        }
        self.frags.filed = Some(f.key);
        if matches!(step, Step::Forward { .. }) {
            self.frags.counters.forwarded += 1;
        }
        step
    }

    /// Whether the session (or, for a new flow, the service) of a first
    /// fragment cannot carry fragments: a client-address mode (nothing can
    /// be inserted into a fragment).
    fn refuses_fragments(&self, d: &Desc, now: Millis) -> bool {
        if let Lookup::Hit(slot, _) = self.sessions.lookup_hashed(&d.key, d.hash, now) {
            return self
                .sessions
                .hot(slot)
                .is_some_and(|s| s.client_addr != ClientAddress::None);
        }
        self.tables
            .service_at(d.key.dst, d.key.proto)
            .or_else(|| self.tables.marked_service(d.key.dst, d.key.proto))
            .and_then(|i| self.tables.services.get(i))
            .is_some_and(|s| s.client_address != ClientAddress::None)
    }

    /// The first fragment of an IPv4 ICMP message: an error quoting a
    /// session is relayed (its checksum updated incrementally, since the
    /// message is not all here) and filed; anything else is dropped.
    fn first_icmp_fragment(&mut self, l2: &mut [u8], l3: &mut [u8], f: &Frag, now: Millis) -> Step {
        let msg = l3
            .get(f.data..f.data + f.piece.len as usize)
            .unwrap_or_default();
        let Some(key) = msg
            .first()
            .filter(|t| icmp_relay::is_error(**t))
            .and_then(|_| quoted(msg))
            .map(|(_, q)| FlowKey {
                src: q.dst,
                dst: q.src,
                proto: q.proto,
            })
        else {
            return self.punt_or(f.key.dst, DropReason::Fragment);
        };
        let step = match self.relay_icmp_error(l2, l3, now) {
            Some(s) => s,
            None => return self.punt_or(f.key.dst, DropReason::Fragment),
        };
        let follow = match step {
            Step::Forward { .. } => Follow::Session(key),
            Step::Done(Verdict::Redirect { worker }) => Follow::Worker(worker),
            _ => return step,
        };
        self.file_first(f, follow, step, now)
    }

    /// A later fragment: where its first one went; held if its first one
    /// has not come.
    fn later_fragment(&mut self, l2: &mut [u8], l3: &mut [u8], f: &Frag, now: Millis) -> Step {
        match self.frags.follow(&f.key, f.piece, now) {
            Err(Unfollowed::NotFiled) if !self.is_kernel_bound(f.key.dst) => {
                Step::Done(Verdict::HoldFragment { datagram: f.key })
            }
            Err(_) => self.punt_or(f.key.dst, DropReason::Fragment),
            Ok(Follow::Refused) => {
                self.frags.counters.client_address += 1;
                Step::drop(DropReason::Fragment)
            }
            Ok(Follow::Worker(w)) => Step::Done(Verdict::Redirect { worker: w }),
            Ok(Follow::Session(key)) => match self.sessions.lookup(&key, now) {
                Lookup::Hit(slot, dir) => self.forward_later(l2, l3, slot, dir, f.key.proto),
                Lookup::Expired(_) | Lookup::Miss => Step::drop(DropReason::NoSession),
            },
        }
    }

    /// The datagram whose first fragment was filed by the frame just
    /// processed, if any: the worker releases the later fragments it holds
    /// for it ([`crate::frag_hold`]) and offers them to
    /// [`Self::process_released_buf`] right after that first one.
    #[inline]
    pub fn take_filed_datagram(&mut self) -> Option<FragKey> {
        // Read, not written, for the frames that file nothing.
        self.frags.filed.as_ref()?;
        self.frags.filed.take()
    }

    /// A later fragment the worker held ([`Verdict::HoldFragment`]),
    /// offered again once its datagram's first fragment was filed. Not
    /// counted as received again (counted `released`). If it still finds
    /// nothing to follow (its datagram ended meanwhile), it is dropped
    /// (`no_first`), not held again.
    pub fn process_released_buf(
        &mut self,
        pkt: &mut PacketBuf<'_>,
        in_port: u16,
        now: Millis,
    ) -> Verdict {
        self.frags.counters.released += 1;
        let mut step = self.classify(pkt.frame_mut(), in_port, None, &mut None, now);
        if let Step::Done(Verdict::HoldFragment { .. }) = step {
            self.frags.counters.no_first += 1;
            step = Step::drop(DropReason::Fragment);
        }
        self.finish(pkt, step)
    }

    /// Counts what became of a later fragment the pipeline asked to hold
    /// ([`Verdict::HoldFragment`]); a dropped one is counted as a
    /// `fragment` drop too.
    pub fn count_fragment_hold(&mut self, event: FragHoldEvent) {
        let c = &mut self.frags.counters;
        match event {
            FragHoldEvent::Held => c.held += 1,
            FragHoldEvent::Full => c.hold_full += 1,
            FragHoldEvent::Expired => c.no_first += 1,
        }
        if event != FragHoldEvent::Held {
            self.counters.drop(DropReason::Fragment);
        }
    }

    /// Sends a later fragment (of protocol `proto`) by its session's
    /// method, going `dir`.
    fn forward_later(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        slot: SlotId,
        dir: Direction,
        proto: u8,
    ) -> Step {
        let Some(s) = self.sessions.hot(slot).copied() else {
            return Step::drop(DropReason::NoSession);
        };
        let leg = Leg::of(&self.sessions, slot, &s, dir);
        let untouched =
            matches!(s.forward, Forward::Dr | Forward::Tun) && dir == Direction::Inbound;
        let mut reshape = None;
        if untouched {
            if s.forward == Forward::Tun {
                reshape = xmit::tun::xmit(&self.tables, &s, dir, &leg);
            }
        } else {
            let v4 = l3[0] >> 4 == 4;
            let ttl = if v4 { l3[8] } else { l3[7] };
            if ttl <= 1 {
                return Step::drop(DropReason::TtlExceeded);
            }
            if leg.src.ip.is_v4() != v4 {
                // FULLNAT64: rebuilt in the other family (no ports here).
                reshape = Some(Reshape::Translate {
                    proto,
                    src: leg.src,
                    dst: leg.dst,
                });
            } else if fragment::rewrite_addrs(l3, leg.src.ip, leg.dst.ip).is_err() {
                return Step::drop(DropReason::Fragment);
            }
        }
        // One datagram is one packet (counted with its first fragment).
        if let Some(t) = self.rs_traffic.get_mut(usize::from(s.rs_index)) {
            let bytes = l3.len() as u64;
            if dir == Direction::Inbound {
                t.in_bytes += bytes;
            } else {
                t.out_bytes += bytes;
            }
        }
        xmit::set_l2(l2, leg.mac, xmit::port_mac(&self.tables, leg.port));
        self.frags.counters.forwarded += 1;
        Step::Forward {
            port: leg.port,
            reshape,
        }
    }
}
