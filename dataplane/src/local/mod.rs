//! Answers for the appliance's own addresses (VIPs, local addresses,
//! interface addresses), made in place in the received frame: ARP
//! ([`arp`]), IPv6 neighbour discovery ([`nd`]) and ICMP echo ([`echo`]).
//! Neighbours are learned from what they send (reported to control as
//! [`crate::neigh::NeighEvent`]s). ICMP errors quoting a session go to the
//! pipeline's relay first; what is for an interface address and not
//! answered here goes to the kernel when the exception path is on.

pub mod arp;
pub mod echo;
pub mod nd;

use crate::pipeline::icmp_relay;
use crate::pipeline::{Pipeline, Step};
use crate::stats::DropReason;
use crate::time::Millis;
use crate::wire::{icmpv6, ipv4, ipv6};

impl Pipeline {
    /// ICMPv4: an error quoting a session is relayed; anything else is
    /// echo or not ours ([`echo`]).
    pub(crate) fn handle_icmp(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        in_port: u16,
        now: Millis,
    ) -> Step {
        let Ok(ip) = ipv4::Packet::new_checked(&*l3) else {
            return Step::drop(DropReason::Malformed);
        };
        let msg_type = ip.payload().first().copied();
        if !ip.is_fragment() && msg_type.is_some_and(icmp_relay::is_error) {
            if let Some(v) = self.relay_icmp_error(l2, l3, now) {
                return v;
            }
        }
        self.echo_v4(l2, l3, in_port)
    }

    /// ICMPv6: an error quoting a session is relayed; neighbour discovery
    /// for owned addresses ([`nd`]), echo to owned addresses ([`echo`]); the
    /// rest goes to the kernel when it is for an interface address.
    #[cold]
    pub(crate) fn handle_icmpv6(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        in_port: u16,
        now: Millis,
    ) -> Step {
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Step::drop(DropReason::Malformed);
        };
        let (src, dst) = (ip.src(), ip.dst());
        let msg = ip.payload();
        if msg.len() < 8 || icmpv6::checksum(msg, src, dst) != 0 {
            return Step::drop(DropReason::Malformed);
        }
        let kind = msg[0];
        if (1..=4).contains(&kind) {
            if let Some(v) = self.relay_icmpv6_error(l2, l3, now) {
                return v;
            }
        }
        match kind {
            icmpv6::NEIGHBOR_SOLICITATION | icmpv6::NEIGHBOR_ADVERTISEMENT => {
                self.neighbour_discovery(l2, l3, in_port)
            }
            _ => self.echo_v6(l2, l3, in_port),
        }
    }

    /// Turns the Ethernet header around for a reply on the ingress port.
    pub(crate) fn reply_l2(&self, l2: &mut [u8], in_port: u16) -> Step {
        if l2.len() < 12 {
            return Step::drop(DropReason::Malformed);
        }
        let peer: [u8; 6] = l2[6..12].try_into().unwrap_or_default();
        crate::xmit::set_l2(l2, peer, self.port_mac(in_port));
        Step::forward(in_port)
    }
}
