//! Read-ahead for a burst: the flow key of a frame, so the worker can
//! prefetch the session each packet will need before it processes the
//! burst, and the burst's memory misses overlap. A wrong or missing key
//! costs nothing but the hint: the pipeline classifies every frame itself.

use super::classify::l4_ports;
use crate::addr::Addr;
use crate::session::{Endpoint, FlowKey};
use crate::wire::{ethernet, ipv4, ipv6};

/// The key the pipeline looks an untagged IPv4/IPv6 TCP or UDP frame up
/// by (source, destination, protocol as the packet carries them); `None`
/// for anything else or a frame too short to tell.
#[inline]
#[must_use]
pub fn peek_key(frame: &[u8]) -> Option<FlowKey> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    match eth.ethertype() {
        ethernet::ETHERTYPE_IPV4 => {
            let ip = ipv4::Packet::new_checked(eth.payload()).ok()?;
            key(
                Addr::v4(ip.src()),
                Addr::v4(ip.dst()),
                ip.protocol(),
                ip.payload(),
            )
        }
        ethernet::ETHERTYPE_IPV6 => {
            let ip = ipv6::Packet::new_checked(eth.payload()).ok()?;
            key(
                Addr::v6(ip.src()),
                Addr::v6(ip.dst()),
                ip.next_header(),
                ip.payload(),
            )
        }
        _ => None,
    }
}

#[inline]
fn key(src: Addr, dst: Addr, proto: u8, l4: &[u8]) -> Option<FlowKey> {
    if proto != ipv4::PROTO_TCP && proto != ipv4::PROTO_UDP {
        return None;
    }
    let (sport, dport, _) = l4_ports(l4, proto == ipv4::PROTO_UDP)?;
    Some(FlowKey {
        src: Endpoint::at(src, sport),
        dst: Endpoint::at(dst, dport),
        proto,
    })
}
