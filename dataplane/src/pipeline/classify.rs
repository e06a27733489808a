//! Classification: what a frame is, from its headers, checked once.
//!
//! The common case, a TCP segment or UDP datagram over IPv4 or IPv6 that is
//! not a fragment, is described by [`Pipeline::describe`] in a small `Copy`
//! [`Desc`]: its flow key, the key's session-index hash, the offset of its
//! transport header, its TCP flags and TTL. The worker describes a whole
//! burst first (its read-ahead prefetches by the hashes) and makes every
//! frame's session lookup ahead ([`Desc::ahead`]), then hands each frame to
//! the pipeline with its descriptor; the lookup uses the hash (or the answer
//! made ahead, while still valid) and the rewrite the offsets, so no header
//! is parsed or hashed twice.
//! A frame without a descriptor (ARP, ICMP, a fragment, something malformed
//! or unknown) is classified here the long way: ARP goes to the responders
//! ([`crate::local`]), ICMP to the relay or the responders, fragments to
//! their own stage (`fragments.rs`), the rest is dropped with its reason or
//! handed to the kernel.

use super::{ingress_check, Decision, Pipeline, Step};
use crate::addr::Addr;
use crate::session::{Ahead, Endpoint, FlowKey};
use crate::stats::DropReason;
use crate::time::Millis;
use crate::wire::{ethernet, icmpv6, ipv4, ipv6, tcp, udp};

/// A TCP or UDP packet over IPv4 or IPv6 (no fragment, headers checked) as
/// classification found it: all that the read-ahead, the session lookup
/// and the rewrite need to know about its headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Desc {
    /// The flow key as the packet carries it.
    pub key: FlowKey,
    /// The session-index hash of `key` in the describing worker's table.
    pub hash: u32,
    /// Offset of the transport header from the start of the IP header.
    pub l4: u16,
    /// TCP flags (empty for UDP).
    pub flags: tcp::TcpFlags,
    /// TTL or hop limit.
    pub ttl: u8,
    /// The session lookup, if the worker's lookup stage made it ahead
    /// ([`Ahead::NONE`] otherwise).
    pub ahead: Ahead,
}

impl Pipeline {
    /// The descriptor of an untagged frame that is TCP or UDP over IPv4 or
    /// IPv6 with well-formed headers and no fragment; `None` for anything
    /// else (which [`Self::process_desc`] classifies the long way).
    #[inline(always)]
    #[must_use]
    pub fn describe(&self, frame: &[u8]) -> Option<Desc> {
        let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
        let l3 = frame.get(ethernet::HEADER_LEN..)?;
        match ethertype {
            ethernet::ETHERTYPE_IPV4 => self.describe_v4(l3),
            ethernet::ETHERTYPE_IPV6 => self.describe_v6(l3),
            _ => None,
        }
    }

    /// Makes the session lookup of `d` now, ahead of its frame's turn
    /// ([`Desc::ahead`]; the worker's lookup stage): processing the frame
    /// later takes this answer unless the table changed in between in a way
    /// that can alter it ([`crate::session::SessionTable::lookup_ahead`]).
    #[inline(always)]
    pub fn look_ahead(&self, d: &mut Desc) {
        d.ahead = self.sessions.look_ahead(&d.key, d.hash);
    }

    /// [`Self::describe`] into `out`. Each family's descriptor is written
    /// where it goes, whole: built once for either family and then stored,
    /// it was assembled byte by byte (the two families' addresses merged)
    /// and copied over some fifty moves a frame.
    #[inline(always)]
    pub fn describe_into(&self, frame: &[u8], out: &mut Option<Desc>) {
        let ethertype = match frame.get(12..14) {
            Some(&[hi, lo]) => u16::from_be_bytes([hi, lo]),
            _ => 0,
        };
        let l3 = frame.get(ethernet::HEADER_LEN..).unwrap_or_default();
        match ethertype {
            ethernet::ETHERTYPE_IPV4 => *out = self.describe_v4(l3),
            ethernet::ETHERTYPE_IPV6 => *out = self.describe_v6(l3),
            _ => *out = None,
        }
    }

    /// [`Self::describe`] of an IPv4 packet (`l3`, from its IP header on).
    // The hash is computed from the header's fields as they are read (the
    // addresses folded as the key's hash folds them), never from the key
    // just written: reading that back would stall.
    #[inline(always)]
    fn describe_v4(&self, l3: &[u8]) -> Option<Desc> {
        let ip = ipv4::Packet::new_checked(l3).ok()?;
        let proto = ip.protocol();
        if !is_tcp_or_udp(proto) || ip.is_fragment() || !ingress_check::ip_checksum_ok(&ip) {
            return None;
        }
        if ip.header_len() > ipv4::MIN_HEADER_LEN
            && ingress_check::ipv4_options(&l3[ipv4::MIN_HEADER_LEN..ip.header_len()]).is_err()
        {
            return None;
        }
        let (s, d) = (ip.src(), ip.dst());
        let (sport, dport, flags) = l4_ports(ip.payload(), proto == ipv4::PROTO_UDP)?;
        let hash =
            self.sessions
                .hash_parts(Addr::fold_v4(s), Addr::fold_v4(d), sport, dport, proto);
        Some(self.desc(
            Addr::v4(s),
            Addr::v4(d),
            (sport, dport, flags),
            proto,
            hash,
            ip.header_len(),
            ip.ttl(),
        ))
    }

    /// [`Self::describe`] of an IPv6 packet (`l3`, from its IP header on).
    #[inline(always)]
    fn describe_v6(&self, l3: &[u8]) -> Option<Desc> {
        let ip = ipv6::Packet::new_checked(l3).ok()?;
        let (s, d) = (ip.src(), ip.dst());
        let (src, dst, proto) = (Addr::v6(s), Addr::v6(d), ip.next_header());
        if !is_tcp_or_udp(proto) || src.is_v4() || dst.is_v4() {
            return None;
        }
        let (sport, dport, flags) = l4_ports(ip.payload(), proto == ipv4::PROTO_UDP)?;
        let hash = self.sessions.hash_parts(
            Addr::fold_bytes(&s),
            Addr::fold_bytes(&d),
            sport,
            dport,
            proto,
        );
        Some(self.desc(
            src,
            dst,
            (sport, dport, flags),
            proto,
            hash,
            ipv6::HEADER_LEN,
            ip.hop_limit(),
        ))
    }

    /// The descriptor of these parts.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn desc(
        &self,
        src: Addr,
        dst: Addr,
        (sport, dport, flags): (u16, u16, tcp::TcpFlags),
        proto: u8,
        hash: u32,
        l4: usize,
        ttl: u8,
    ) -> Desc {
        let key = FlowKey {
            src: Endpoint::at(src, sport),
            dst: Endpoint::at(dst, dport),
            proto,
        };
        debug_assert_eq!(hash, self.sessions.hash_of(&key));
        Desc {
            key,
            hash,
            l4: l4 as u16,
            flags,
            ttl,
            ahead: Ahead::NONE,
        }
    }

    /// The stage every frame enters, with its descriptor if the worker
    /// made one. `held` is the decision a released frame was held with
    /// (taken by the slow path if it creates the session).
    #[inline(always)]
    pub(super) fn classify(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        desc: Option<&Desc>,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        // The worker's descriptor is used where it lies (a copy would read
        // back what describing wrote, field by field).
        let described;
        let d = match desc {
            Some(d) => d,
            None => match self.describe(frame) {
                Some(d) => {
                    described = d;
                    &described
                }
                None => {
                    // ICMP errors quote a flow, and the rest is rare:
                    // every session's keys are filed first (`staged.rs`).
                    self.file_staged();
                    return self.classify_other(frame, in_port, held, now);
                }
            },
        };
        // Forwarding needs a TTL left; what goes to the kernel side does
        // not (eBGP's TTL-1 segments to an interface address; sync's and
        // VRRP's link-local multicast).
        if d.ttl <= 1 && !self.is_kernel_bound(d.key.dst.ip) {
            return Step::drop(DropReason::TtlExceeded);
        }
        if d.key.proto == ipv4::PROTO_TCP && !ingress_check::tcp_flags_valid(d.flags) {
            return Step::drop(DropReason::TcpFlags);
        }
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        self.handle_flow(l2, l3, d, in_port, held, now)
    }

    /// A frame [`Self::describe`] has no descriptor for.
    #[inline(never)]
    fn classify_other(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let Ok(eth) = ethernet::Frame::new_checked(&*frame) else {
            return Step::drop(DropReason::Malformed);
        };
        match eth.ethertype() {
            ethernet::ETHERTYPE_IPV4 => self.other_ipv4(frame, in_port, held, now),
            ethernet::ETHERTYPE_IPV6 => self.other_ipv6(frame, in_port, held, now),
            ethernet::ETHERTYPE_ARP => self.handle_arp(frame, in_port),
            _ => Step::drop(DropReason::UnsupportedL3),
        }
    }

    /// IPv4 that is not a described TCP or UDP packet: ICMP, a fragment
    /// (of TCP, UDP or ICMP: [`Self::handle_fragment`]), another protocol,
    /// or malformed.
    fn other_ipv4(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let ip = match ingress_check::ipv4_header(l3) {
            Ok(ip) => ip,
            Err(reason) => return Step::drop(reason),
        };
        let dst = Addr::v4(ip.dst());
        match ip.protocol() {
            // Described unless a fragment or its transport header is bad.
            ipv4::PROTO_TCP | ipv4::PROTO_UDP | ipv4::PROTO_ICMP if ip.is_fragment() => {
                self.handle_fragment(l2, l3, in_port, held, now)
            }
            p @ (ipv4::PROTO_TCP | ipv4::PROTO_UDP) => Step::drop(ingress_check::l4_refusal(
                ip.payload(),
                p == ipv4::PROTO_UDP,
            )),
            ipv4::PROTO_ICMP => self.handle_icmp(l2, l3, in_port, now),
            _ => self.punt_or(dst, self.unsupported_or_not_ours(dst)),
        }
    }

    /// IPv6 that is not a described TCP or UDP packet: ICMPv6 carries echo
    /// and neighbour discovery ([`Self::handle_icmpv6`]); a fragment header
    /// right after the fixed header goes to [`Self::handle_fragment`].
    /// A routing header right after it, to an address the appliance owns,
    /// is dropped as `source_route` whatever its type (type 0 as the kernel
    /// drops it, RFC 5095; types 2-4 too, which the kernel drops without
    /// Mobile IPv6 or `seg6_enabled`, and which rvs does not walk past);
    /// too short to name its type, `malformed`. Other extension headers
    /// are not walked: they count as `unsupported_l4`. Both go to the
    /// kernel when for an interface address.
    fn other_ipv6(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Step::drop(ingress_check::ipv6_refusal(l3));
        };
        let (src, dst) = (Addr::v6(ip.src()), Addr::v6(ip.dst()));
        if src.is_v4() || dst.is_v4() {
            // IPv4-mapped addresses never travel in IPv6 headers (RFC 4291).
            return Step::drop(DropReason::Malformed);
        }
        match ip.next_header() {
            // Described unless its transport header is bad.
            p @ (ipv4::PROTO_TCP | ipv4::PROTO_UDP) => Step::drop(ingress_check::l4_refusal(
                ip.payload(),
                p == ipv4::PROTO_UDP,
            )),
            icmpv6::NEXT_HEADER => self.handle_icmpv6(l2, l3, in_port, now),
            ipv6::NEXT_FRAGMENT => self.handle_fragment(l2, l3, in_port, held, now),
            ipv6::NEXT_ROUTING if self.tables.owns(dst) => {
                let reason = if ip.payload().len() < 4 {
                    DropReason::Malformed
                } else {
                    DropReason::SourceRoute
                };
                self.punt_or(dst, reason)
            }
            _ => self.punt_or(dst, self.unsupported_or_not_ours(dst)),
        }
    }

    fn unsupported_or_not_ours(&self, dst: Addr) -> DropReason {
        if self.tables.owns(dst) {
            DropReason::UnsupportedL4
        } else {
            DropReason::NotForUs
        }
    }
}

#[inline]
fn is_tcp_or_udp(proto: u8) -> bool {
    proto == ipv4::PROTO_TCP || proto == ipv4::PROTO_UDP
}

/// Source port, destination port and TCP flags (0 for UDP) of a validated
/// L4 header, or `None` if it is truncated or malformed.
#[inline]
pub(super) fn l4_ports(l4: &[u8], is_udp: bool) -> Option<(u16, u16, tcp::TcpFlags)> {
    if is_udp {
        let d = udp::Packet::new_checked(l4).ok()?;
        if !ingress_check::udp_len_agrees(d.len_field(), l4.len()) {
            return None;
        }
        Some((d.src_port(), d.dst_port(), tcp::TcpFlags::empty()))
    } else {
        let t = tcp::Packet::new_checked(l4).ok()?;
        Some((t.src_port(), t.dst_port(), t.flags()))
    }
}

pub(super) fn is_new_syn(flags: tcp::TcpFlags) -> bool {
    flags & (tcp::SYN | tcp::ACK | tcp::RST) == tcp::SYN
}
