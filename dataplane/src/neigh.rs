//! Neighbours as the data plane sees them: a read-only snapshot of resolved
//! (IP → MAC) entries published by control, and the events a worker sends
//! control about them.
//!
//! Workers never resolve anything themselves. A worker that sees an ARP
//! packet from an on-link host reports what it learned ([`NeighEvent::Learned`]);
//! one that needs a MAC it does not have reports [`NeighEvent::Wanted`] and
//! hands the frame back as [`crate::pipeline::Verdict::Hold`]; the worker keeps it
//! (a bounded queue) with the decision made for it, and offers both again
//! when the next snapshot arrives (the connection is not scheduled twice).
//! Control keeps the table (states, retries, refresh), asks a worker to send
//! ARP requests, and publishes a new [`NeighMap`] to every worker when an
//! entry changes, so all workers agree whichever one the reply reached.

use crate::addr::Addr;
use crate::checksum;
use crate::wire::{arp, ethernet, icmpv6, ipv6, MacAddr, BROADCAST_MAC};

/// Length of an ARP frame (Ethernet header + ARP), without padding.
pub const ARP_FRAME_LEN: usize = ethernet::HEADER_LEN + arp::PACKET_LEN;

/// A resolved neighbour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NeighEntry {
    /// Address.
    pub ip: Addr,
    /// Its MAC.
    pub mac: MacAddr,
    /// Port position it was seen on.
    pub port: u16,
}

/// The published neighbour snapshot.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NeighMap {
    entries: Vec<NeighEntry>,
}

impl NeighMap {
    /// A snapshot of `entries`.
    #[must_use]
    pub fn new(mut entries: Vec<NeighEntry>) -> Self {
        entries.sort_unstable_by_key(|e| e.ip);
        entries.dedup_by_key(|e| e.ip);
        Self { entries }
    }

    /// The MAC of `ip`, if resolved.
    #[inline]
    #[must_use]
    pub fn lookup(&self, ip: Addr) -> Option<MacAddr> {
        self.entries
            .binary_search_by_key(&ip, |e| e.ip)
            .ok()
            .map(|i| self.entries[i].mac)
    }

    /// All entries, sorted by address.
    #[must_use]
    pub fn entries(&self) -> &[NeighEntry] {
        &self.entries
    }
}

/// What a worker tells control about neighbours.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NeighEvent {
    /// An ARP packet showed `ip` at `mac` on `port`.
    Learned(NeighEntry),
    /// A packet needed the MAC of `ip` (next hop on `port`).
    Wanted {
        /// Address to resolve.
        ip: Addr,
        /// Port position to ask on.
        port: u16,
    },
    /// Another host on `port` (at `mac`) claims the appliance's own IPv6
    /// address `ip`: it advertised it, or probed for it while it was
    /// tentative (RFC 4862 §5.4.3, §5.4.4). Control's duplicate address
    /// detection decides what it means.
    Duplicate {
        /// The address claimed.
        ip: Addr,
        /// The claimant's MAC.
        mac: MacAddr,
        /// Port position it was seen on.
        port: u16,
    },
}

/// Length of a Neighbor Solicitation frame: Ethernet, IPv6, the ICMPv6
/// message (RFC 4861 §4.3: 24 bytes) and a source link-layer address
/// option (8 bytes).
pub const NS_FRAME_LEN: usize = ethernet::HEADER_LEN + IPV6_HEADER_LEN + NS_ICMP_LEN;

const IPV6_HEADER_LEN: usize = 40;
const NS_ICMP_LEN: usize = 24 + 8;
/// ICMPv6 type of a Neighbor Solicitation.
pub const ICMPV6_NEIGHBOR_SOLICITATION: u8 = 135;
const NEXT_HEADER_ICMPV6: u8 = 58;

/// The solicited-node multicast address of `target` (RFC 4291 §2.7.1):
/// `ff02::1:ff` followed by the target's last 24 bits.
#[must_use]
pub fn solicited_node(target: [u8; 16]) -> [u8; 16] {
    let mut a = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, 0, 0, 0];
    a[13..].copy_from_slice(&target[13..]);
    a
}

/// The Ethernet address of IPv6 multicast group `group` (RFC 2464 §7):
/// `33:33` followed by its last 32 bits.
#[must_use]
pub fn multicast_mac(group: [u8; 16]) -> MacAddr {
    [0x33, 0x33, group[12], group[13], group[14], group[15]]
}

/// Writes a Neighbor Solicitation for `target` from (`mac`, `source`) into
/// `frame` (RFC 4861 §4.3, §7.2.2): to the target's solicited-node group
/// (and its `33:33:ff:..` MAC), hop limit 255, with a source link-layer
/// address option, ICMPv6 checksum over the pseudo-header.
pub fn emit_solicitation(
    frame: &mut [u8; NS_FRAME_LEN],
    mac: MacAddr,
    source: [u8; 16],
    target: [u8; 16],
) {
    write_solicitation(frame, mac, source, target);
}

/// Length of a duplicate address detection probe: a Neighbor Solicitation
/// from the unspecified address, which carries no link-layer option.
pub const DAD_FRAME_LEN: usize = NS_FRAME_LEN - 8;

/// Writes a duplicate address detection probe for `target` from `mac` into
/// `frame` (RFC 4862 §5.4.2): a Neighbor Solicitation from `::` to the
/// target's solicited-node group, hop limit 255, no source link-layer
/// address option. A host that holds `target` answers it with an
/// advertisement to all nodes; one probing for it at the same time sends
/// the same probe.
pub fn emit_dad_probe(frame: &mut [u8; DAD_FRAME_LEN], mac: MacAddr, target: [u8; 16]) {
    write_solicitation(frame, mac, [0; 16], target);
}

/// A solicitation filling `frame`: with the source link-layer option when
/// the frame has room for it (the two sizes above).
fn write_solicitation(frame: &mut [u8], mac: MacAddr, source: [u8; 16], target: [u8; 16]) {
    let group = solicited_node(target);
    let (l2, rest) = frame.split_at_mut(ethernet::HEADER_LEN);
    if let Ok(mut eth) = ethernet::Frame::new_checked(l2) {
        eth.set_dst(multicast_mac(group));
        eth.set_src(mac);
        eth.set_ethertype(ethernet::ETHERTYPE_IPV6);
    }
    let (ip, icmp) = rest.split_at_mut(IPV6_HEADER_LEN);
    let len = icmp.len();
    ip[..4].copy_from_slice(&[0x60, 0, 0, 0]);
    ip[4..6].copy_from_slice(&(len as u16).to_be_bytes());
    ip[6] = NEXT_HEADER_ICMPV6;
    ip[7] = 255;
    ip[8..24].copy_from_slice(&source);
    ip[24..40].copy_from_slice(&group);
    icmp.fill(0);
    icmp[0] = ICMPV6_NEIGHBOR_SOLICITATION;
    icmp[8..24].copy_from_slice(&target);
    if len == NS_ICMP_LEN {
        // Source link-layer address option: type 1, length 1 (8 bytes).
        icmp[24] = 1;
        icmp[25] = 1;
        icmp[26..32].copy_from_slice(&mac);
    }
    let pseudo = checksum::pseudo_header_v6(source, group, NEXT_HEADER_ICMPV6, len as u32);
    let sum = checksum::finish(checksum::sum(icmp, pseudo));
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
}

/// Writes a broadcast ARP request for `target` from (`mac`, `ip`) into `frame`.
pub fn emit_request(frame: &mut [u8; ARP_FRAME_LEN], mac: MacAddr, ip: [u8; 4], target: [u8; 4]) {
    let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
    if let Ok(mut eth) = ethernet::Frame::new_checked(l2) {
        eth.set_dst(BROADCAST_MAC);
        eth.set_src(mac);
        eth.set_ethertype(ethernet::ETHERTYPE_ARP);
    }
    // `l3` is exactly one ARP packet long; new_checked would refuse the
    // still-zeroed type fields, so write through an unchecked view.
    arp::Packet::new_unchecked(l3).emit(arp::OP_REQUEST, mac, ip, [0; 6], target);
}

/// Writes a gratuitous ARP for `ip` from `mac` into `frame`: a broadcast
/// request whose sender and target address are both `ip` and whose target
/// hardware address is zero, as the kernel sends when an address comes up
/// (`arping -U`, keepalived and RFC 5227 §3's "ARP Announcement" do the
/// same). Hosts that hold an entry for `ip` point it at `mac`; nobody answers.
pub fn emit_gratuitous_arp(frame: &mut [u8; ARP_FRAME_LEN], mac: MacAddr, ip: [u8; 4]) {
    emit_request(frame, mac, ip, ip);
}

/// Length of an unsolicited Neighbor Advertisement frame: Ethernet, IPv6,
/// the ICMPv6 message and a target link-layer address option.
pub const NA_FRAME_LEN: usize = ethernet::HEADER_LEN + ipv6::HEADER_LEN + icmpv6::NA_WITH_TLLA_LEN;

/// The all-nodes multicast group, `ff02::1`.
pub const ALL_NODES: [u8; 16] = [0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
/// Its Ethernet address (RFC 2464 §7).
const ALL_NODES_MAC: MacAddr = [0x33, 0x33, 0, 0, 0, 1];

/// Writes an unsolicited Neighbor Advertisement for `target` at `mac` into
/// `frame` (RFC 4861 §7.2.6): from `target` itself to all nodes
/// (`ff02::1`, MAC `33:33:00:00:00:01`), hop limit 255, override set,
/// solicited and router clear, with a target link-layer address option. It
/// is IPv6's gratuitous ARP: hosts that hold an entry for `target` update it.
pub fn emit_unsolicited_na(frame: &mut [u8; NA_FRAME_LEN], mac: MacAddr, target: [u8; 16]) {
    let (l2, l3) = frame.split_at_mut(ethernet::HEADER_LEN);
    if let Ok(mut eth) = ethernet::Frame::new_checked(l2) {
        eth.set_dst(ALL_NODES_MAC);
        eth.set_src(mac);
        eth.set_ethertype(ethernet::ETHERTYPE_IPV6);
    }
    let (ip, msg) = l3.split_at_mut(ipv6::HEADER_LEN);
    let n = icmpv6::emit_na(msg, target, mac);
    msg[4] = icmpv6::NA_OVERRIDE;
    ipv6::emit_header(ip, icmpv6::NEXT_HEADER, target, ALL_NODES, n as u16);
    ip[7] = icmpv6::ND_HOP_LIMIT;
    icmpv6::fill_checksum(msg, target, ALL_NODES);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_in_snapshot() {
        let m = NeighMap::new(vec![
            NeighEntry {
                ip: Addr::v4([10, 0, 0, 12]),
                mac: [2; 6],
                port: 0,
            },
            NeighEntry {
                ip: Addr::v4([10, 0, 0, 11]),
                mac: [1; 6],
                port: 0,
            },
        ]);
        assert_eq!(m.lookup(Addr::v4([10, 0, 0, 11])), Some([1; 6]));
        assert_eq!(m.lookup(Addr::v4([10, 0, 0, 12])), Some([2; 6]));
        assert_eq!(m.lookup(Addr::v4([10, 0, 0, 13])), None);
    }

    #[test]
    fn request_frame_parses() {
        let mut f = [0u8; ARP_FRAME_LEN];
        emit_request(&mut f, [1; 6], [10, 0, 0, 2], [10, 0, 0, 11]);
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(eth.dst(), BROADCAST_MAC);
        assert_eq!(eth.ethertype(), ethernet::ETHERTYPE_ARP);
        let a = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (a.op(), a.sender_ip(), a.target_ip()),
            (arp::OP_REQUEST, [10, 0, 0, 2], [10, 0, 0, 11])
        );
    }

    fn hex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn gratuitous_arp_announces_the_address() {
        let mut f = [0u8; ARP_FRAME_LEN];
        emit_gratuitous_arp(&mut f, [2, 0, 0, 0, 0, 2], [10, 77, 0, 100]);
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!((eth.dst(), eth.src()), (BROADCAST_MAC, [2, 0, 0, 0, 0, 2]));
        let a = arp::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (a.op(), a.sender_mac(), a.sender_ip()),
            (arp::OP_REQUEST, [2, 0, 0, 0, 0, 2], [10, 77, 0, 100])
        );
        assert_eq!(
            (a.target_mac(), a.target_ip()),
            ([0; 6], [10, 77, 0, 100]),
            "sender = target address, target MAC zero"
        );
        // bytes(Ether(src="02:00:00:00:00:02", dst="ff:ff:ff:ff:ff:ff") / ARP(op=1,
        //   hwsrc="02:00:00:00:00:02", psrc="10.77.0.100", hwdst="00:00:00:00:00:00", pdst="10.77.0.100"))
        assert_eq!(f.to_vec(), hex("ffffffffffff020000000002080600010800060400010200000000020a4d00640000000000000a4d0064"));
    }

    #[test]
    fn unsolicited_na_is_rfc4861_and_matches_scapy() {
        let mut f = [0u8; NA_FRAME_LEN];
        emit_unsolicited_na(&mut f, [2, 0, 0, 0, 0, 2], v6("fd77::100"));
        assert_eq!(NA_FRAME_LEN, 86);
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(
            (eth.dst(), eth.ethertype()),
            ([0x33, 0x33, 0, 0, 0, 1], ethernet::ETHERTYPE_IPV6)
        );
        let ip = ipv6::Packet::new_checked(eth.payload()).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.hop_limit(), ip.next_header()),
            (v6("fd77::100"), ALL_NODES, 255, icmpv6::NEXT_HEADER)
        );
        let msg = ip.payload();
        assert_eq!(
            (msg[0], msg[4]),
            (icmpv6::NEIGHBOR_ADVERTISEMENT, icmpv6::NA_OVERRIDE),
            "override; not solicited, not a router"
        );
        assert_eq!(icmpv6::checksum(msg, ip.src(), ip.dst()), 0);
        assert_eq!(icmpv6::nd_target(msg), Some(v6("fd77::100")));
        assert_eq!(
            icmpv6::link_layer_option(msg, icmpv6::OPT_TARGET_LL),
            Some([2, 0, 0, 0, 0, 2])
        );
        // bytes(Ether(src="02:00:00:00:00:02", dst="33:33:00:00:00:01")
        //   / IPv6(src="fd77::100", dst="ff02::1", hlim=255) / ICMPv6ND_NA(tgt="fd77::100", R=0, S=0, O=1)
        //   / ICMPv6NDOptDstLLAddr(lladdr="02:00:00:00:00:02"))
        const SCAPY: &str = "33330000000102000000000286dd6000000000203afffd770000000000000000000000000100\
                             ff020000000000000000000000000001880057ae20000000fd7700000000000000000000000001000201020000000002";
        assert_eq!(f.to_vec(), hex(SCAPY));
    }

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn solicitation_frame_is_rfc4861() {
        let mac = [2, 0, 0, 0, 0, 2];
        let (src, target) = (v6("fd77::2"), v6("fd77::12:3456"));
        let mut f = [0u8; NS_FRAME_LEN];
        emit_solicitation(&mut f, mac, src, target);
        assert_eq!(NS_FRAME_LEN, 86);
        let eth = ethernet::Frame::new_checked(&f[..]).unwrap();
        assert_eq!(
            (eth.dst(), eth.src(), eth.ethertype()),
            (
                [0x33, 0x33, 0xff, 0x12, 0x34, 0x56],
                mac,
                ethernet::ETHERTYPE_IPV6
            )
        );
        let ip = &f[14..54];
        assert_eq!(ip[0] >> 4, 6);
        assert_eq!(
            (u16::from_be_bytes([ip[4], ip[5]]), ip[6], ip[7]),
            (32, 58, 255)
        );
        assert_eq!(&ip[8..24], &src);
        assert_eq!(&ip[24..40], &v6("ff02::1:ff12:3456"));
        let icmp = &f[54..];
        assert_eq!((icmp[0], icmp[1]), (135, 0));
        assert_eq!(&icmp[8..24], &target);
        assert_eq!(&icmp[24..32], &[1, 1, 2, 0, 0, 0, 0, 2]);
        // A correct checksum sums (with the pseudo-header) to 0xffff.
        let pseudo = checksum::pseudo_header_v6(src, v6("ff02::1:ff12:3456"), 58, 32);
        assert_eq!(checksum::finish(checksum::sum(icmp, pseudo)), 0);
    }

    #[test]
    fn solicitation_matches_scapy() {
        // bytes(Ether(src="02:00:00:00:00:02", dst="33:33:ff:12:34:56")
        //   / IPv6(src="fd77::2", dst="ff02::1:ff12:3456", hlim=255)
        //   / ICMPv6ND_NS(tgt="fd77::12:3456")
        //   / ICMPv6NDOptSrcLLAddr(lladdr="02:00:00:00:00:02"))
        const SCAPY: &str = "3333ff12345602000000000286dd6000000000203afffd770000000000000000000000000002\
                             ff0200000000000000000001ff123456870013db00000000fd770000000000000000000000123456\
                             0101020000000002";
        let want: Vec<u8> = (0..SCAPY.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&SCAPY[i..i + 2], 16).unwrap())
            .collect();
        let mut f = [0u8; NS_FRAME_LEN];
        emit_solicitation(
            &mut f,
            [2, 0, 0, 0, 0, 2],
            v6("fd77::2"),
            v6("fd77::12:3456"),
        );
        assert_eq!(f.to_vec(), want);
    }

    #[test]
    fn dad_probe_matches_scapy() {
        // bytes(Ether(src="02:00:00:00:00:02", dst="33:33:ff:12:34:56")
        //   / IPv6(src="::", dst="ff02::1:ff12:3456", hlim=255)
        //   / ICMPv6ND_NS(tgt="fd77::12:3456"))
        const SCAPY: &str = "3333ff12345602000000000286dd6000000000183aff00000000000000000000000000000000\
                             ff0200000000000000000001ff1234568700146000000000fd770000000000000000000000123456";
        let mut f = [0u8; DAD_FRAME_LEN];
        emit_dad_probe(&mut f, [2, 0, 0, 0, 0, 2], v6("fd77::12:3456"));
        assert_eq!(f.to_vec(), hex(SCAPY));
    }
}
