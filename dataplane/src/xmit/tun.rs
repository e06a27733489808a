//! TUN forwarding (`ipvsadm -i`): IPv4-in-IPv4 (RFC 2003) or IPv6-in-IPv6
//! (RFC 2473) encapsulation of the client's packet toward the real server,
//! and the ICMP "fragmentation needed" / ICMPv6 "packet too big" the sender
//! gets when the encapsulated packet would not fit.
//!
//! ```text
//!  in:  | eth | ip client→vip | l4 ... |
//!  out: | eth | ip dip→rip, proto 4 | ip client→vip | l4 ... |
//! ```
//!
//! The outer header is the kernel's (`ip_vs_tunnel_xmit`): source the
//! egress interface's address, TTL 64, TOS copied, DF copied from the inner
//! packet, no options. The inner packet is left untouched (TTL included, as
//! in DR); the server decapsulates it (`tunl0` with the VIP) and answers the
//! client directly.
//!
//! When the inner packet plus 20 bytes exceeds the egress MTU and the inner
//! packet has DF set, the frame is turned in place into an ICMP
//! "fragmentation needed" (type 3, code 4) from the VIP to the client,
//! quoting the inner IP header and 8 bytes of its payload, with next-hop MTU
//! `mtu - 20`, as the kernel does; the client's path-MTU discovery then
//! shrinks its segments. Without DF the packet is dropped (rvs does not
//! fragment). Both count as [`DropReason::TooBig`].
//!
//! IPv6 is the same with a 40-byte outer header (next header 41, hop limit
//! 64, traffic class copied) and no DF: a packet that does not fit always
//! gets "packet too big" (type 2) from the VIP with MTU `mtu - 40`, quoting
//! as much of it as keeps the error within the IPv6 minimum MTU (1280).

use super::Leg;
use crate::addr::Addr;
use crate::checksum;
use crate::packet::PacketBuf;
use crate::pipeline::Reshape;
use crate::session::{Direction, SessionHot};
use crate::stats::DropReason;
use crate::tables::Tables;
use crate::wire::{ethernet, icmp, icmpv6, ipv4, ipv6, MacAddr};

/// A TUN session's packet going `dir`: the client's are wrapped toward the
/// server (the pipeline applies the [`Encap`]); anything else leaves as DR.
#[inline]
pub(crate) fn xmit(tables: &Tables, s: &SessionHot, dir: Direction, leg: &Leg) -> Option<Reshape> {
    (dir == Direction::Inbound).then(|| {
        Reshape::Encap(encap_toward(
            tables,
            leg.port,
            leg.dst.ip,
            s.client_port,
            s.client_mac,
        ))
    })
}

/// How a TUN session's packets leave on `port` toward `rs`: the outer
/// source is the port's address of the family of `rs`.
#[must_use]
pub fn encap_toward(
    tables: &Tables,
    port: u16,
    rs: Addr,
    client_port: u16,
    client_mac: MacAddr,
) -> Encap {
    let iface = tables.interfaces.get(usize::from(port));
    let mtu = iface.map_or(1500, |i| i.mtu);
    let src = if rs.is_v4() {
        Addr::v4(iface.map_or([0; 4], |i| i.addr))
    } else {
        tables.port_addr6(port).map_or(Addr::UNSPECIFIED, Addr::v6)
    };
    Encap {
        src,
        dst: rs,
        mtu,
        port,
        client_port,
        client_port_mac: super::port_mac(tables, client_port),
        client_mac,
    }
}

/// Bytes the encapsulation adds.
pub const OUTER_LEN: usize = ipv4::MIN_HEADER_LEN;
/// IP protocol number of IPv4-in-IPv4.
pub const PROTO_IPIP: u8 = 4;
/// ICMP destination unreachable.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// Code of "fragmentation needed and DF set".
pub const ICMP_FRAG_NEEDED: u8 = 4;

/// Where an encapsulated frame goes, decided by the session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    /// Outer source: the egress interface's address (of the session's family).
    pub src: Addr,
    /// Outer destination: the real server.
    pub dst: Addr,
    /// MTU of the egress link.
    pub mtu: u16,
    /// Egress port and the MAC address of ours there.
    pub port: u16,
    /// Port and our MAC toward the client, for an ICMP error.
    pub client_port: u16,
    /// Our MAC on the client's port.
    pub client_port_mac: MacAddr,
    /// The client's next-hop MAC.
    pub client_mac: MacAddr,
}

/// What became of an encapsulation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Encapsulated: transmit on the egress port.
    Encapsulated,
    /// Too big with DF: the frame is now an ICMP error for the client's port.
    FragNeeded,
    /// Dropped for this reason.
    Dropped(DropReason),
}

/// Encapsulates the IPv4 frame in `pkt` (Ethernet addresses already set
/// for the egress), or answers it with "fragmentation needed".
pub fn encapsulate(pkt: &mut PacketBuf<'_>, e: &Encap, ip_id: u16) -> Outcome {
    if !e.dst.is_v4() {
        return encapsulate_v6(pkt, e);
    }
    let frame = pkt.frame();
    let Ok(inner) = ipv4::Packet::new_checked(&frame[ethernet::HEADER_LEN..]) else {
        return Outcome::Dropped(DropReason::Malformed);
    };
    let inner_len = inner.total_len().min(frame.len() - ethernet::HEADER_LEN);
    let (tos, df) = (
        frame[ethernet::HEADER_LEN + 1],
        frame[ethernet::HEADER_LEN + 6] & 0x40 != 0,
    );
    if inner_len + OUTER_LEN > usize::from(e.mtu) {
        if !df {
            return Outcome::Dropped(DropReason::TooBig);
        }
        frag_needed(pkt, e);
        return Outcome::FragNeeded;
    }
    // Drop anything past the IP packet (Ethernet padding) before growing.
    pkt.truncate(ethernet::HEADER_LEN + inner_len);
    if !pkt.prepend(OUTER_LEN) {
        return Outcome::Dropped(DropReason::NoHeadroom);
    }
    let f = pkt.frame_mut();
    f.copy_within(OUTER_LEN..OUTER_LEN + ethernet::HEADER_LEN, 0);
    let outer = &mut f[ethernet::HEADER_LEN..ethernet::HEADER_LEN + OUTER_LEN];
    outer[0] = 0x45;
    outer[1] = tos;
    outer[2..4].copy_from_slice(&((inner_len + OUTER_LEN) as u16).to_be_bytes());
    outer[4..6].copy_from_slice(&ip_id.to_be_bytes());
    outer[6..8].copy_from_slice(&(if df { 0x4000u16 } else { 0 }).to_be_bytes());
    outer[8] = 64;
    outer[9] = PROTO_IPIP;
    outer[10..12].fill(0);
    outer[12..16].copy_from_slice(&e.src.v4_bits());
    outer[16..20].copy_from_slice(&e.dst.v4_bits());
    let c = checksum::checksum(outer);
    outer[10..12].copy_from_slice(&c.to_be_bytes());
    Outcome::Encapsulated
}

/// Bytes the IPv6 encapsulation adds.
pub const OUTER_LEN_V6: usize = ipv6::HEADER_LEN;
/// IPv6 next header of IPv6-in-IPv6.
pub const NEXT_IPV6: u8 = 41;
/// ICMPv6 "packet too big".
pub const ICMPV6_PACKET_TOO_BIG: u8 = 2;
/// The IPv6 minimum MTU, which bounds an ICMPv6 error.
pub const IPV6_MIN_MTU: usize = 1280;

fn encapsulate_v6(pkt: &mut PacketBuf<'_>, e: &Encap) -> Outcome {
    const L2: usize = ethernet::HEADER_LEN;
    let frame = pkt.frame();
    let Ok(inner) = ipv6::Packet::new_checked(&frame[L2..]) else {
        return Outcome::Dropped(DropReason::Malformed);
    };
    let inner_len = ipv6::HEADER_LEN + inner.payload_len();
    let tclass = (frame[L2] & 0x0f) << 4 | frame[L2 + 1] >> 4;
    if inner_len + OUTER_LEN_V6 > usize::from(e.mtu) {
        too_big_v6(pkt, e, inner_len);
        return Outcome::FragNeeded;
    }
    pkt.truncate(L2 + inner_len);
    if !pkt.prepend(OUTER_LEN_V6) {
        return Outcome::Dropped(DropReason::NoHeadroom);
    }
    let f = pkt.frame_mut();
    f.copy_within(OUTER_LEN_V6..OUTER_LEN_V6 + L2, 0);
    let outer = &mut f[L2..L2 + OUTER_LEN_V6];
    ipv6::emit_header(
        outer,
        NEXT_IPV6,
        e.src.octets(),
        e.dst.octets(),
        inner_len as u16,
    );
    outer[0] = 0x60 | tclass >> 4;
    outer[1] = tclass << 4;
    Outcome::Encapsulated
}

/// The frame in place becomes an ICMPv6 "packet too big" from the inner
/// packet's destination to its source, for the client's next hop.
fn too_big_v6(pkt: &mut PacketBuf<'_>, e: &Encap, inner_len: usize) {
    const L2: usize = ethernet::HEADER_LEN;
    let head = ipv6::HEADER_LEN + 8;
    // Within the minimum MTU, and within the frame once moved behind the new headers.
    let quoted = inner_len
        .min(IPV6_MIN_MTU - head)
        .min(pkt.frame().len().saturating_sub(L2 + head));
    let f = pkt.frame_mut();
    let (src, dst) = (
        <[u8; 16]>::try_from(&f[L2 + 8..L2 + 24]).unwrap_or_default(),
        <[u8; 16]>::try_from(&f[L2 + 24..L2 + 40]).unwrap_or_default(),
    );
    // The error is shorter than the packet (it was too big): move the quote
    // back to front so it does not overwrite itself.
    f.copy_within(L2..L2 + quoted, L2 + head);
    let msg_len = 8 + quoted;
    ipv6::emit_header(&mut f[L2..], icmpv6::NEXT_HEADER, dst, src, msg_len as u16);
    let m = &mut f[L2 + ipv6::HEADER_LEN..L2 + ipv6::HEADER_LEN + msg_len];
    m[0] = ICMPV6_PACKET_TOO_BIG;
    m[1] = 0;
    m[4..8].copy_from_slice(&u32::from(e.mtu.saturating_sub(OUTER_LEN_V6 as u16)).to_be_bytes());
    icmpv6::fill_checksum(m, dst, src);
    f[0..6].copy_from_slice(&e.client_mac);
    f[6..12].copy_from_slice(&e.client_port_mac);
    pkt.truncate(L2 + ipv6::HEADER_LEN + msg_len);
}

/// Rewrites the frame in place into an ICMP "fragmentation needed" from the
/// inner packet's destination (the VIP) to its source, addressed to the
/// client's next hop.
fn frag_needed(pkt: &mut PacketBuf<'_>, e: &Encap) {
    let mtu = e.mtu.saturating_sub(OUTER_LEN as u16);
    let len = icmp_error_in_place(pkt, ICMP_DEST_UNREACH, ICMP_FRAG_NEEDED, u32::from(mtu));
    let f = pkt.frame_mut();
    f[0..6].copy_from_slice(&e.client_mac);
    f[6..12].copy_from_slice(&e.client_port_mac);
    pkt.truncate(len);
}

/// Turns the IPv4 frame in `pkt` into an ICMP error about it (RFC 792:
/// the original header and 8 bytes of its data), from its destination to
/// its source; `rest` is the 4 bytes after the checksum. Returns the new
/// frame length; the Ethernet addresses are left to the caller.
pub fn icmp_error_in_place(pkt: &mut PacketBuf<'_>, msg_type: u8, code: u8, rest: u32) -> usize {
    const L2: usize = ethernet::HEADER_LEN;
    let f = pkt.frame_mut();
    let ihl = usize::from(f[L2] & 0x0f) * 4;
    let quoted = (ihl + 8).min(f.len() - L2);
    let (src, dst) = (
        [f[L2 + 12], f[L2 + 13], f[L2 + 14], f[L2 + 15]],
        [f[L2 + 16], f[L2 + 17], f[L2 + 18], f[L2 + 19]],
    );
    let head = ipv4::MIN_HEADER_LEN + icmp::HEADER_LEN;
    // The frame is longer than the error (it was too big), so the quote fits.
    f.copy_within(L2..L2 + quoted, L2 + head);
    let msg_len = icmp::HEADER_LEN + quoted;
    ipv4::emit_header(&mut f[L2..], ipv4::PROTO_ICMP, dst, src, msg_len as u16);
    let m = &mut f[L2 + ipv4::MIN_HEADER_LEN..L2 + head + quoted];
    m[0] = msg_type;
    m[1] = code;
    m[2..4].fill(0);
    m[4..8].copy_from_slice(&rest.to_be_bytes());
    let c = checksum::checksum(m);
    m[2..4].copy_from_slice(&c.to_be_bytes());
    L2 + head + quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::ETHERTYPE_IPV4;

    const E: Encap = Encap {
        src: Addr::v4([10, 0, 0, 2]),
        dst: Addr::v4([10, 0, 0, 11]),
        mtu: 1500,
        port: 0,
        client_port: 0,
        client_port_mac: [2, 0, 0, 0, 0, 2],
        client_mac: [2, 0, 0, 0, 0, 10],
    };

    /// A frame with `payload` bytes of TCP-ish data, DF as given, in a
    /// buffer with 64 bytes of headroom.
    fn frame(payload: usize, df: bool) -> Vec<u8> {
        let mut v = vec![0u8; 64 + ethernet::HEADER_LEN + 20 + payload];
        let f = &mut v[64..];
        f[0..6].copy_from_slice(&[2, 0, 0, 0, 0, 11]);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        ipv4::emit_header(
            &mut f[14..],
            6,
            [10, 0, 0, 10],
            [10, 0, 0, 100],
            payload as u16,
        );
        if !df {
            f[14 + 6] = 0;
            f[14 + 10..14 + 12].fill(0);
            let c = checksum::checksum(&f[14..34]);
            f[14 + 10..14 + 12].copy_from_slice(&c.to_be_bytes());
        }
        for (i, b) in f[34..].iter_mut().enumerate() {
            *b = i as u8;
        }
        v
    }

    #[test]
    fn encapsulation_prepends_a_valid_outer_header() {
        let mut v = frame(100, true);
        let before = v[64..].to_vec();
        let mut p = PacketBuf::new(&mut v, 64, before.len());
        assert_eq!(encapsulate(&mut p, &E, 7), Outcome::Encapsulated);
        assert_eq!(p.window(), (44, before.len() + 20));
        let f = p.frame();
        assert_eq!(
            &f[..14],
            &before[..14],
            "Ethernet header moved to the new front"
        );
        let outer = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(outer.verify_checksum());
        assert_eq!(
            (
                outer.src(),
                outer.dst(),
                outer.protocol(),
                outer.ttl(),
                outer.total_len()
            ),
            ([10, 0, 0, 2], [10, 0, 0, 11], PROTO_IPIP, 64, 140)
        );
        assert_eq!(f[14 + 6] & 0x40, 0x40, "DF copied");
        assert_eq!(&f[34..], &before[14..], "inner packet untouched");
    }

    #[test]
    fn too_big_with_df_becomes_frag_needed_quoting_the_packet() {
        let mut v = frame(1480, true);
        let before = v[64..].to_vec();
        let mut p = PacketBuf::new(&mut v, 64, before.len());
        assert_eq!(encapsulate(&mut p, &E, 0), Outcome::FragNeeded);
        let f = p.frame();
        assert_eq!(f.len(), 14 + 20 + 8 + 28);
        assert_eq!(
            (&f[0..6], &f[6..12]),
            (&E.client_mac[..], &E.client_port_mac[..])
        );
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src(), ip.dst(), ip.protocol()),
            ([10, 0, 0, 100], [10, 0, 0, 10], ipv4::PROTO_ICMP)
        );
        let m = &f[34..];
        assert_eq!((m[0], m[1], u16::from_be_bytes([m[6], m[7]])), (3, 4, 1480));
        assert_eq!(checksum::checksum(m), 0);
        assert_eq!(
            &m[8..],
            &before[14..14 + 28],
            "quotes the original header and 8 bytes"
        );
    }

    #[test]
    fn too_big_without_df_is_dropped_and_no_headroom_is_refused() {
        let mut v = frame(1480, false);
        let n = v.len() - 64;
        assert_eq!(
            encapsulate(&mut PacketBuf::new(&mut v, 64, n), &E, 0),
            Outcome::Dropped(DropReason::TooBig)
        );
        let mut w = frame(100, true);
        assert_eq!(
            encapsulate(&mut PacketBuf::whole(&mut w[64..]), &E, 0),
            Outcome::Dropped(DropReason::NoHeadroom)
        );
    }
}

#[cfg(test)]
mod v6_tests {
    use super::*;
    use crate::wire::ethernet::ETHERTYPE_IPV6;

    fn a(s: &str) -> Addr {
        s.parse::<std::net::IpAddr>().unwrap().into()
    }

    fn encap(mtu: u16) -> Encap {
        Encap {
            src: a("fd77::2"),
            dst: a("fd77::11"),
            mtu,
            port: 0,
            client_port: 0,
            client_port_mac: [2, 0, 0, 0, 0, 2],
            client_mac: [2, 0, 0, 0, 0, 0x10],
        }
    }

    fn frame(payload: usize) -> Vec<u8> {
        let mut v = vec![0u8; 64 + 14 + 40 + payload];
        let f = &mut v[64..];
        f[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
        ipv6::emit_header(
            &mut f[14..],
            6,
            a("fd77::10").octets(),
            a("fd77::100").octets(),
            payload as u16,
        );
        f[14] = 0x6b; // traffic class 0xb8 (EF)
        f[15] = 0x80;
        v
    }

    #[test]
    fn six_in_six_wraps_the_packet_untouched() {
        let mut v = frame(100);
        let before = v[64..].to_vec();
        let mut p = PacketBuf::new(&mut v, 64, before.len());
        assert_eq!(encapsulate(&mut p, &encap(1500), 0), Outcome::Encapsulated);
        let f = p.frame();
        let outer = ipv6::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(
            (
                outer.src(),
                outer.dst(),
                outer.next_header(),
                outer.payload_len()
            ),
            (
                a("fd77::2").octets(),
                a("fd77::11").octets(),
                NEXT_IPV6,
                140
            )
        );
        assert_eq!((f[14], f[15] & 0xf0), (0x6b, 0x80), "traffic class copied");
        assert_eq!(&f[54..], &before[14..]);
    }

    #[test]
    fn too_big_gets_packet_too_big_within_the_minimum_mtu() {
        let mut v = frame(1460);
        let before = v[64..].to_vec();
        let mut p = PacketBuf::new(&mut v, 64, before.len());
        assert_eq!(encapsulate(&mut p, &encap(1500), 0), Outcome::FragNeeded);
        let f = p.frame();
        assert!(f.len() - 14 <= IPV6_MIN_MTU);
        let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.next_header()),
            (
                a("fd77::100").octets(),
                a("fd77::10").octets(),
                icmpv6::NEXT_HEADER
            )
        );
        let m = ip.payload();
        assert_eq!(
            (m[0], u32::from_be_bytes([m[4], m[5], m[6], m[7]])),
            (2, 1460)
        );
        assert_eq!(icmpv6::checksum(m, ip.src(), ip.dst()), 0);
        assert_eq!(
            &m[8..8 + 60],
            &before[14..74],
            "quotes the packet from its start"
        );
        assert_eq!(&f[0..6], &[2, 0, 0, 0, 0, 0x10]);
        // A small link: the packet is shorter than 1280, the quote shrinks to fit the frame.
        let mut v = frame(600);
        let n = v.len() - 64;
        let mut p = PacketBuf::new(&mut v, 64, n);
        assert_eq!(encapsulate(&mut p, &encap(600), 0), Outcome::FragNeeded);
        assert_eq!(p.frame().len(), n);
        let ip = ipv6::Packet::new_checked(&p.frame()[14..]).unwrap();
        assert_eq!(icmpv6::checksum(ip.payload(), ip.src(), ip.dst()), 0);
    }
}
