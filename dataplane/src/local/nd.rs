//! IPv6 neighbour discovery for owned addresses: a solicitation is
//! answered with a solicited advertisement carrying the port's MAC (hop
//! limit 255 required; not while the address is tentative in duplicate
//! address detection); another host's DAD probe for an owned address is
//! answered with an advertisement to all nodes, and a claim on one is
//! reported to control ([`NeighEvent::Duplicate`]); solicitations and
//! advertisements teach on-link neighbours to control, as ARP does.

use crate::addr::Addr;
use crate::neigh::{self, NeighEntry, NeighEvent};
use crate::packet::PacketBuf;
use crate::pipeline::{Pipeline, Reshape, Step, Verdict};
use crate::stats::DropReason;
use crate::wire::{ethernet, icmpv6, ipv6, MacAddr};

impl Pipeline {
    /// A neighbour solicitation or advertisement (`l3`, its checksum
    /// already checked).
    pub(crate) fn neighbour_discovery(
        &mut self,
        l2: &mut [u8],
        l3: &mut [u8],
        in_port: u16,
    ) -> Step {
        let Ok(ip) = ipv6::Packet::new_checked(&*l3) else {
            return Step::drop(DropReason::Malformed);
        };
        let (src, hop_limit) = (ip.src(), ip.hop_limit());
        let msg = ip.payload();
        let Some(target) = icmpv6::nd_target(msg).filter(|_| hop_limit == icmpv6::ND_HOP_LIMIT)
        else {
            return Step::drop(DropReason::Malformed);
        };
        let ip6 = Addr::v6(target);
        let (own, smac) = (
            self.port_mac(in_port),
            ethernet::Frame::new_checked(&*l2).map_or([0; 6], |e| e.src()),
        );
        if msg[0] == icmpv6::NEIGHBOR_ADVERTISEMENT {
            let tlla = icmpv6::link_layer_option(msg, icmpv6::OPT_TARGET_LL);
            if self.tables.holds(ip6) {
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
            return Step::Done(if self.punt {
                Verdict::Punt
            } else {
                Verdict::Consumed
            });
        }
        let ours = self.tables.holds(ip6) && smac != own;
        if src == [0; 16] {
            // Someone's duplicate address detection (RFC 4862 §5.4.3).
            if !ours {
                return Step::drop(DropReason::ArpNotForUs);
            }
            if self.tables.is_tentative(ip6) {
                // Probing for an address we are probing for (or
                // found duplicate): neither of us may use it.
                self.report(NeighEvent::Duplicate {
                    ip: ip6,
                    mac: smac,
                    port: in_port,
                });
                return Step::Done(Verdict::Consumed);
            }
            // Defend it: an advertisement to all nodes, which the
            // prober takes for a duplicate (RFC 4861 §7.2.4).
            self.counters.arp_replies += 1;
            let Ok(mut eth) = ethernet::Frame::new_checked(l2) else {
                return Step::drop(DropReason::Malformed);
            };
            eth.set_dst(neigh::multicast_mac(neigh::ALL_NODES));
            eth.set_src(own);
            return Step::Forward {
                port: in_port,
                reshape: Some(Reshape::Advertise {
                    target,
                    dst: neigh::ALL_NODES,
                    mac: own,
                }),
            };
        }
        if let Some(mac) = icmpv6::link_layer_option(msg, icmpv6::OPT_SOURCE_LL) {
            self.learn_v6(src, mac, in_port);
        }
        if !ours || self.tables.is_tentative(ip6) {
            return Step::drop(DropReason::ArpNotForUs);
        }
        // The advertisement (with our MAC, which a multicast
        // solicitation requires) may be longer or shorter than the
        // solicitation: [`Pipeline::process_buf`] sizes the frame and writes it.
        self.counters.arp_replies += 1;
        match self.reply_l2(l2, in_port) {
            Step::Forward { port, .. } => Step::Forward {
                port,
                reshape: Some(Reshape::Advertise {
                    target,
                    dst: src,
                    mac: own,
                }),
            },
            other => other,
        }
    }

    /// Reports an IPv6 neighbour seen on `port` if it is on that link and new.
    fn learn_v6(&mut self, ip: [u8; 16], mac: MacAddr, port: u16) {
        let ip = Addr::v6(ip);
        if self.tables.next_hop(ip) == Some((port, ip)) && self.neigh.lookup(ip) != Some(mac) {
            self.report(NeighEvent::Learned(NeighEntry { ip, mac, port }));
        }
    }
}

/// Writes a solicited neighbour advertisement for `target` to `dst` after
/// the frame's Ethernet header, sized exactly: with the target link-layer
/// option when the buffer has room for it (it always has in an mbuf).
#[cold]
pub(crate) fn write_na(pkt: &mut PacketBuf<'_>, target: [u8; 16], dst: [u8; 16], mac: MacAddr) {
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
