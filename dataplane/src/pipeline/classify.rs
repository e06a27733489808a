//! Classification: what a frame is, from its headers, checked once. ARP
//! goes to the responders ([`crate::local`]), ICMP to the relay or the
//! responders, TCP and UDP over IPv4 or IPv6 to the session path
//! ([`super::fast`]) with their flow key; the rest is dropped with its
//! reason or handed to the kernel.

use super::{Decision, Pipeline, Step};
use crate::addr::Addr;
use crate::session::{Endpoint, FlowKey};
use crate::stats::DropReason;
use crate::time::Millis;
use crate::wire::{ethernet, icmpv6, ipv4, ipv6, tcp, udp};

impl Pipeline {
    /// The stage every frame enters. `held` is the decision a released
    /// frame was held with (taken by the slow path if it creates the
    /// session).
    #[inline]
    pub(super) fn classify(
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
            ethernet::ETHERTYPE_IPV4 => self.handle_ipv4(frame, in_port, held, now),
            ethernet::ETHERTYPE_IPV6 => self.handle_ipv6(frame, in_port, held, now),
            ethernet::ETHERTYPE_ARP => self.handle_arp(frame, in_port),
            _ => Step::drop(DropReason::UnsupportedL3),
        }
    }

    #[inline]
    fn handle_ipv4(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(ip) = ipv4::Packet::new_checked(&*l3) else {
            return Step::drop(DropReason::Malformed);
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
            return Step::drop(DropReason::Fragment);
        }
        let is_udp = proto == ipv4::PROTO_UDP;
        let Some((sport, dport, flags)) = l4_ports(ip.payload(), is_udp) else {
            return Step::drop(DropReason::Malformed);
        };
        let key = FlowKey {
            src: Endpoint::new(src, sport),
            dst: Endpoint::new(dst, dport),
            proto,
        };
        if ip.ttl() <= 1 {
            return Step::drop(DropReason::TtlExceeded);
        }
        self.handle_flow(l2, l3, key, flags, in_port, held, now)
    }

    /// An IPv6 frame: TCP and UDP take the same session path as IPv4;
    /// ICMPv6 carries echo and neighbour discovery ([`Self::handle_icmpv6`]).
    /// Extension headers are not walked: a fragment header counts as
    /// `fragment`, any other as `unsupported_l4` (or goes to the kernel when
    /// it is for an interface address).
    #[inline]
    fn handle_ipv6(
        &mut self,
        frame: &mut [u8],
        in_port: u16,
        held: &mut Option<Decision>,
        now: Millis,
    ) -> Step {
        let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Step::drop(DropReason::Malformed);
        };
        let (src, dst, proto) = (Addr::v6(ip.src()), Addr::v6(ip.dst()), ip.next_header());
        if src.is_v4() || dst.is_v4() {
            // IPv4-mapped addresses never travel in IPv6 headers (RFC 4291).
            return Step::drop(DropReason::Malformed);
        }
        match proto {
            ipv4::PROTO_TCP | ipv4::PROTO_UDP => {}
            icmpv6::NEXT_HEADER => return self.handle_icmpv6(l2, l3, in_port, now),
            ipv6::NEXT_FRAGMENT => return Step::drop(DropReason::Fragment),
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
            return Step::drop(DropReason::Malformed);
        };
        if ip.hop_limit() <= 1 {
            return Step::drop(DropReason::TtlExceeded);
        }
        let key = FlowKey {
            src: Endpoint::at(src, sport),
            dst: Endpoint::at(dst, dport),
            proto,
        };
        self.handle_flow(l2, l3, key, flags, in_port, held, now)
    }
}

/// Source port, destination port and TCP flags (0 for UDP) of a validated
/// L4 header, or `None` if it is truncated or malformed.
#[inline]
pub(super) fn l4_ports(l4: &[u8], is_udp: bool) -> Option<(u16, u16, u8)> {
    if is_udp {
        let d = udp::Packet::new_checked(l4).ok()?;
        Some((d.src_port(), d.dst_port(), 0))
    } else {
        let t = tcp::Packet::new_checked(l4).ok()?;
        Some((t.src_port(), t.dst_port(), t.flags()))
    }
}

pub(super) fn is_new_syn(flags: u8) -> bool {
    flags & (tcp::SYN | tcp::ACK | tcp::RST) == tcp::SYN
}
