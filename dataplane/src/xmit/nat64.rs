//! FULLNAT64: IPv6 clients of a VIP whose real servers and local addresses
//! are IPv4 (DPVS's "fullnat64"). The session's client and VIP are IPv6,
//! its local address and server IPv4; each packet changes family on the way
//! through, with its addresses and ports rewritten as in FULLNAT:
//!
//! ```text
//!  in:  | eth | ipv6 client → vip (40) | l4 |  ─>  | eth | ipv4 laddr → rs (20) | l4 |
//!  out: | eth | ipv4 rs → laddr (20)   | l4 |  ─>  | eth | ipv6 vip → client (40) | l4 |
//! ```
//!
//! The header is rebuilt (RFC 7915's mapping, without options or
//! extension headers): traffic class ↔ TOS, hop limit ↔ TTL (decremented),
//! next header ↔ protocol; the IPv4 header gets DF (IPv6 is never
//! fragmented on the way) and identification 0. The transport checksum is
//! updated incrementally: the two pseudo-headers differ only in their
//! addresses (length and protocol sum alike), so the update swaps the old
//! addresses' sum for the new ones' and the ports as usual. An IPv4 UDP
//! datagram without checksum gets one computed, as IPv6 requires.
//!
//! The frame shrinks by 20 bytes toward IPv4 (the front moves) and grows by
//! 20 toward IPv6 (into the buffer's headroom). Anything that does not fit
//! these shapes (IPv4 options, IPv6 extension headers other than a
//! fragment header) is refused and counted.
//!
//! Fragments are translated one by one, as RFC 7915 does (§4.1, §5.1.1):
//!
//! ```text
//!  | ipv6 (40) | frag: nh M off id (8) | data |  <─>  | ipv4 (20): id MF off | data |
//! ```
//!
//! toward IPv4 the identification's low 16 bits, the offset and M become
//! the IPv4 fields (DF clear: a fragment may be fragmented further); toward
//! IPv6 a fragment header carries the protocol, offset, MF and the
//! identification (high 16 bits zero). The frame moves by 28 bytes. Only
//! the first fragment (offset 0) carries the transport header: its
//! checksum is updated as a whole packet's (the pseudo-headers' lengths are
//! the whole datagram's either way), its ports rewritten; later fragments
//! keep their data untouched. A first fragment of a UDP datagram without
//! checksum is refused (the checksum IPv6 needs covers data it does not
//! carry; RFC 7915 §4.5 lets a stateless translator drop it).

use crate::checksum;
use crate::packet::PacketBuf;
use crate::session::Endpoint;
use crate::stats::DropReason;
use crate::wire::{ethernet, ipv4, ipv6, tcp, udp};

/// Bytes the IPv6 header has over the IPv4 one.
pub const GROWTH: usize = ipv6::HEADER_LEN - ipv4::MIN_HEADER_LEN;

/// The IPv6 address as 16 bytes, the IPv4 one as 12 zero bytes and itself:
/// the one's-complement sums of these equal those of the pseudo-headers'
/// address fields, so one 128-bit update swaps one for the other.
fn sum_form(e: Endpoint) -> [u8; 16] {
    match e.ip.to_v4() {
        Some(a) => {
            let mut b = [0u8; 16];
            b[12..].copy_from_slice(&a);
            b
        }
        None => e.ip.octets(),
    }
}

/// Updates the transport checksum at `l4` (TCP or UDP) for addresses
/// `old` → `new` and ports, and writes the new ports.
fn rewrite_l4(
    l4: &mut [u8],
    proto: u8,
    old: (Endpoint, Endpoint),
    new: (Endpoint, Endpoint),
) -> Result<(), DropReason> {
    let (os, od) = (sum_form(old.0), sum_form(old.1));
    let (ns, nd) = (sum_form(new.0), sum_form(new.1));
    match proto {
        ipv4::PROTO_TCP => {
            let mut t = tcp::Packet::new_checked(&mut *l4).map_err(|_| DropReason::Malformed)?;
            let mut c = t.checksum();
            c = checksum::update_u128(c, os, ns);
            c = checksum::update_u128(c, od, nd);
            l4[16..18].copy_from_slice(&c.to_be_bytes());
            t = tcp::Packet::new_checked(&mut *l4).map_err(|_| DropReason::Malformed)?;
            t.set_src_port(new.0.port);
            t.set_dst_port(new.1.port);
        }
        ipv4::PROTO_UDP => {
            let mut u = udp::Packet::new_checked(&mut *l4).map_err(|_| DropReason::Malformed)?;
            if u.checksum() == 0 {
                // No checksum (IPv4 only): ports now, the whole sum after.
                u.set_src_port(new.0.port);
                u.set_dst_port(new.1.port);
                if !new.0.ip.is_v4() {
                    u.fill_checksum_v6(new.0.ip.octets(), new.1.ip.octets());
                }
                return Ok(());
            }
            let mut c = u.checksum();
            c = checksum::update_u128(c, os, ns);
            c = checksum::update_u128(c, od, nd);
            l4[6..8].copy_from_slice(&(if c == 0 { 0xffff } else { c }).to_be_bytes());
            let mut u = udp::Packet::new_checked(&mut *l4).map_err(|_| DropReason::Malformed)?;
            u.set_src_port(new.0.port);
            u.set_dst_port(new.1.port);
        }
        _ => return Err(DropReason::UnsupportedL4),
    }
    Ok(())
}

/// An IPv6 frame of a FULLNAT64 session becomes IPv4 `src → dst`.
///
/// # Errors
/// The reason to drop it (malformed, hop limit, unsupported).
pub fn to_v4(
    pkt: &mut PacketBuf<'_>,
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), DropReason> {
    const L2: usize = ethernet::HEADER_LEN;
    let f = pkt.frame();
    let ip = ipv6::Packet::new_checked(&f[L2..]).map_err(|_| DropReason::Malformed)?;
    if ip.next_header() == ipv6::NEXT_FRAGMENT {
        return fragment_to_v4(pkt, src, dst);
    }
    let (old_src, old_dst, hop, payload) = (ip.src(), ip.dst(), ip.hop_limit(), ip.payload_len());
    if hop <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let tclass = (f[L2] & 0x0f) << 4 | f[L2 + 1] >> 4;
    let l4_at = L2 + ipv6::HEADER_LEN;
    let (sp, dp) = ports(&f[l4_at..])?;
    let old = (
        Endpoint::at(old_src.into(), sp),
        Endpoint::at(old_dst.into(), dp),
    );
    let total = ipv4::MIN_HEADER_LEN + payload;
    let total16 = u16::try_from(total).map_err(|_| DropReason::Malformed)?;
    let fm = pkt.frame_mut();
    rewrite_l4(&mut fm[l4_at..l4_at + payload], proto, old, (src, dst))?;
    // The Ethernet header moves 20 bytes on; the IPv4 header takes the last
    // 20 of the IPv6 one's place.
    fm.copy_within(0..L2, GROWTH);
    let h = &mut fm[GROWTH + L2..l4_at];
    ipv4::emit_header(h, proto, src.ip.v4_bits(), dst.ip.v4_bits(), payload as u16);
    h[1] = tclass;
    h[2..4].copy_from_slice(&total16.to_be_bytes());
    h[8] = hop - 1;
    h[10..12].fill(0);
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    fm[GROWTH + 12..GROWTH + 14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    pkt.advance(GROWTH);
    pkt.truncate(L2 + total);
    Ok(())
}

/// An IPv4 frame of a FULLNAT64 session becomes IPv6 `src → dst`.
///
/// # Errors
/// The reason to drop it.
pub fn to_v6(
    pkt: &mut PacketBuf<'_>,
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), DropReason> {
    const L2: usize = ethernet::HEADER_LEN;
    let f = pkt.frame();
    let ip = ipv4::Packet::new_checked(&f[L2..]).map_err(|_| DropReason::Malformed)?;
    if ip.header_len() != ipv4::MIN_HEADER_LEN {
        return Err(DropReason::UnsupportedL4);
    }
    if ip.is_fragment() {
        return fragment_to_v6(pkt, proto, src, dst);
    }
    let (old_src, old_dst, ttl, tos) = (ip.src(), ip.dst(), ip.ttl(), f[L2 + 1]);
    if ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let payload = ip.total_len() - ipv4::MIN_HEADER_LEN;
    let l4_at = L2 + ipv4::MIN_HEADER_LEN;
    let (sp, dp) = ports(&f[l4_at..])?;
    let old = (Endpoint::new(old_src, sp), Endpoint::new(old_dst, dp));
    pkt.truncate(l4_at + payload);
    if !pkt.prepend(GROWTH) {
        return Err(DropReason::NoHeadroom);
    }
    let fm = pkt.frame_mut();
    fm.copy_within(GROWTH..GROWTH + L2, 0);
    let l4_at = L2 + ipv6::HEADER_LEN;
    rewrite_l4(&mut fm[l4_at..l4_at + payload], proto, old, (src, dst))?;
    let h = &mut fm[L2..l4_at];
    ipv6::emit_header(h, proto, src.ip.octets(), dst.ip.octets(), payload as u16);
    h[0] = 0x60 | tos >> 4;
    h[1] = tos << 4;
    h[7] = ttl - 1;
    fm[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
    Ok(())
}

/// Bytes the IPv6 header and fragment header have over the IPv4 header.
pub const FRAGMENT_GROWTH: usize = GROWTH + ipv6::FRAGMENT_LEN;

/// Updates the transport checksum of a first fragment's header `l4` (the
/// rest of the datagram not here) for addresses and ports `old` → `new`,
/// and writes the new ports.
fn rewrite_first_fragment(
    l4: &mut [u8],
    proto: u8,
    old: (Endpoint, Endpoint),
    new: (Endpoint, Endpoint),
) -> Result<(), DropReason> {
    let at = match proto {
        ipv4::PROTO_TCP if l4.len() >= tcp::MIN_HEADER_LEN => 16,
        ipv4::PROTO_UDP if l4.len() >= udp::HEADER_LEN => 6,
        ipv4::PROTO_TCP | ipv4::PROTO_UDP => return Err(DropReason::Malformed),
        _ => return Err(DropReason::UnsupportedL4),
    };
    let mut c = u16::from_be_bytes([l4[at], l4[at + 1]]);
    if proto == ipv4::PROTO_UDP && c == 0 {
        return Err(DropReason::Fragment);
    }
    c = checksum::update_u128(c, sum_form(old.0), sum_form(new.0));
    c = checksum::update_u128(c, sum_form(old.1), sum_form(new.1));
    c = checksum::update_u16(c, old.0.port, new.0.port);
    c = checksum::update_u16(c, old.1.port, new.1.port);
    if proto == ipv4::PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    l4[at..at + 2].copy_from_slice(&c.to_be_bytes());
    l4[0..2].copy_from_slice(&new.0.port.to_be_bytes());
    l4[2..4].copy_from_slice(&new.1.port.to_be_bytes());
    Ok(())
}

/// An IPv6 fragment (fragment header right after the fixed one) of a
/// FULLNAT64 session becomes an IPv4 fragment `src → dst`.
fn fragment_to_v4(pkt: &mut PacketBuf<'_>, src: Endpoint, dst: Endpoint) -> Result<(), DropReason> {
    const L2: usize = ethernet::HEADER_LEN;
    const SHRINK: usize = FRAGMENT_GROWTH;
    let f = pkt.frame();
    let ip = ipv6::Packet::new_checked(&f[L2..]).map_err(|_| DropReason::Malformed)?;
    let frag = ipv6::Fragment::new_checked(&ip).ok_or(DropReason::Malformed)?;
    let (old_src, old_dst, hop) = (ip.src(), ip.dst(), ip.hop_limit());
    if hop <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let tclass = (f[L2] & 0x0f) << 4 | f[L2 + 1] >> 4;
    let data_at = L2 + ipv6::HEADER_LEN + ipv6::FRAGMENT_LEN;
    let n = frag.data_len;
    let total = u16::try_from(ipv4::MIN_HEADER_LEN + n).map_err(|_| DropReason::Malformed)?;
    let proto = frag.next_header;
    let fm = pkt.frame_mut();
    if frag.offset == 0 {
        let (sp, dp) = ports(&fm[data_at..data_at + n])?;
        let old = (
            Endpoint::at(old_src.into(), sp),
            Endpoint::at(old_dst.into(), dp),
        );
        rewrite_first_fragment(&mut fm[data_at..data_at + n], proto, old, (src, dst))?;
    }
    fm.copy_within(0..L2, SHRINK);
    let h = &mut fm[SHRINK + L2..data_at];
    ipv4::emit_header(h, proto, src.ip.v4_bits(), dst.ip.v4_bits(), n as u16);
    h[1] = tclass;
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&(frag.ident as u16).to_be_bytes());
    let flags = (frag.offset / 8) as u16 | if frag.more { 0x2000 } else { 0 };
    h[6..8].copy_from_slice(&flags.to_be_bytes());
    h[8] = hop - 1;
    h[10..12].fill(0);
    let c = checksum::checksum(h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    fm[SHRINK + 12..SHRINK + 14].copy_from_slice(&ethernet::ETHERTYPE_IPV4.to_be_bytes());
    pkt.advance(SHRINK);
    pkt.truncate(L2 + ipv4::MIN_HEADER_LEN + n);
    Ok(())
}

/// An IPv4 fragment (no options) of a FULLNAT64 session becomes an IPv6
/// fragment `src → dst`, with a fragment header.
fn fragment_to_v6(
    pkt: &mut PacketBuf<'_>,
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), DropReason> {
    const L2: usize = ethernet::HEADER_LEN;
    const GROW: usize = FRAGMENT_GROWTH;
    let f = pkt.frame();
    let ip = ipv4::Packet::new_checked(&f[L2..]).map_err(|_| DropReason::Malformed)?;
    let (old_src, old_dst, ttl, tos) = (ip.src(), ip.dst(), ip.ttl(), f[L2 + 1]);
    let (ident, offset, more) = (ip.ident(), ip.frag_offset(), ip.more_frags());
    if ttl <= 1 {
        return Err(DropReason::TtlExceeded);
    }
    let n = ip.total_len() - ipv4::MIN_HEADER_LEN;
    let data_at = L2 + ipv4::MIN_HEADER_LEN;
    let old = if offset == 0 {
        let (sp, dp) = ports(&f[data_at..data_at + n])?;
        Some((Endpoint::new(old_src, sp), Endpoint::new(old_dst, dp)))
    } else {
        None
    };
    pkt.truncate(data_at + n);
    if !pkt.prepend(GROW) {
        return Err(DropReason::NoHeadroom);
    }
    let fm = pkt.frame_mut();
    fm.copy_within(GROW..GROW + L2, 0);
    let data_at = L2 + ipv6::HEADER_LEN + ipv6::FRAGMENT_LEN;
    if let Some(old) = old {
        rewrite_first_fragment(&mut fm[data_at..data_at + n], proto, old, (src, dst))?;
    }
    let h = &mut fm[L2..L2 + ipv6::HEADER_LEN];
    let payload = (ipv6::FRAGMENT_LEN + n) as u16;
    ipv6::emit_header(
        h,
        ipv6::NEXT_FRAGMENT,
        src.ip.octets(),
        dst.ip.octets(),
        payload,
    );
    h[0] = 0x60 | tos >> 4;
    h[1] = tos << 4;
    h[7] = ttl - 1;
    let fh = &mut fm[L2 + ipv6::HEADER_LEN..data_at];
    fh[0] = proto;
    fh[1] = 0;
    fh[2..4].copy_from_slice(&(offset as u16 | u16::from(more)).to_be_bytes());
    fh[4..8].copy_from_slice(&u32::from(ident).to_be_bytes());
    fm[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
    Ok(())
}

fn ports(l4: &[u8]) -> Result<(u16, u16), DropReason> {
    if l4.len() < 8 {
        return Err(DropReason::Malformed);
    }
    Ok((
        u16::from_be_bytes([l4[0], l4[1]]),
        u16::from_be_bytes([l4[2], l4[3]]),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::Addr;
    use crate::xmit::rewrite::tests::{tcp_packet, udp_packet};

    fn v6(s: &str, port: u16) -> Endpoint {
        Endpoint::at(Addr::from(s.parse::<std::net::IpAddr>().unwrap()), port)
    }

    fn framed(l3: &[u8], ethertype: u16, headroom: usize) -> Vec<u8> {
        let mut v = vec![0u8; headroom + 14];
        v[headroom..headroom + 6].copy_from_slice(&[2, 0, 0, 0, 0, 0x11]);
        v[headroom + 6..headroom + 12].copy_from_slice(&[2, 0, 0, 0, 0, 2]);
        v[headroom + 12..headroom + 14].copy_from_slice(&ethertype.to_be_bytes());
        v.extend_from_slice(l3);
        v
    }

    #[test]
    fn there_and_back_keeps_checksums_valid() {
        let (c, vip) = (v6("fd77::10", 40000), v6("fd77::100", 80));
        let (l, r) = (
            Endpoint::new([10, 77, 0, 200], 5000),
            Endpoint::new([10, 77, 0, 11], 8080),
        );
        for proto in [ipv4::PROTO_TCP, ipv4::PROTO_UDP] {
            let l3 = if proto == ipv4::PROTO_TCP {
                tcp_packet(c, vip, tcp::SYN, b"hello")
            } else {
                udp_packet(c, vip, b"hello", false)
            };
            let mut v = framed(&l3, ethernet::ETHERTYPE_IPV6, 64);
            let n = v.len() - 64;
            let mut p = PacketBuf::new(&mut v, 64, n);
            to_v4(&mut p, proto, l, r).unwrap();
            assert_eq!(p.window(), (84, n - 20));
            let f = p.frame().to_vec();
            assert_eq!(&f[..14], &[2, 0, 0, 0, 0, 0x11, 2, 0, 0, 0, 0, 2, 8, 0]);
            let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
            assert!(ip.verify_checksum());
            assert_eq!(
                (ip.src(), ip.dst(), ip.ttl(), ip.protocol()),
                ([10, 77, 0, 200], [10, 77, 0, 11], 63, proto)
            );
            let ok = if proto == ipv4::PROTO_TCP {
                tcp::Packet::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_v4(ip.src(), ip.dst())
            } else {
                udp::Packet::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_v4(ip.src(), ip.dst())
            };
            assert!(ok, "v4 checksum, proto {proto}");
            // The reply comes back as IPv6.
            let reply = if proto == ipv4::PROTO_TCP {
                tcp_packet(r, l, tcp::SYN | tcp::ACK, b"world")
            } else {
                udp_packet(r, l, b"world", false)
            };
            let mut v = framed(&reply, ethernet::ETHERTYPE_IPV4, 64);
            let n = v.len() - 64;
            let mut p = PacketBuf::new(&mut v, 64, n);
            to_v6(&mut p, proto, vip, c).unwrap();
            let f = p.frame();
            assert_eq!(
                (f.len(), u16::from_be_bytes([f[12], f[13]])),
                (n + 20, ethernet::ETHERTYPE_IPV6)
            );
            let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
            assert_eq!(
                (ip.src(), ip.dst(), ip.hop_limit()),
                (vip.ip.octets(), c.ip.octets(), 63)
            );
            let ok = if proto == ipv4::PROTO_TCP {
                let t = tcp::Packet::new_checked(ip.payload()).unwrap();
                assert_eq!((t.src_port(), t.dst_port()), (80, 40000));
                t.verify_checksum_v6(ip.src(), ip.dst())
            } else {
                udp::Packet::new_checked(ip.payload())
                    .unwrap()
                    .verify_checksum_v6(ip.src(), ip.dst())
            };
            assert!(ok, "v6 checksum, proto {proto}");
        }
    }

    #[test]
    fn a_udp_reply_without_checksum_gets_one_in_ipv6() {
        let (c, vip) = (v6("fd77::10", 40000), v6("fd77::100", 53));
        let (l, r) = (
            Endpoint::new([10, 77, 0, 200], 5000),
            Endpoint::new([10, 77, 0, 11], 5353),
        );
        let mut v = framed(
            &udp_packet(r, l, b"answer", true),
            ethernet::ETHERTYPE_IPV4,
            32,
        );
        let n = v.len() - 32;
        let mut p = PacketBuf::new(&mut v, 32, n);
        to_v6(&mut p, ipv4::PROTO_UDP, vip, c).unwrap();
        let ip = ipv6::Packet::new_checked(&p.frame()[14..]).unwrap();
        assert!(udp::Packet::new_checked(ip.payload())
            .unwrap()
            .verify_checksum_v6(ip.src(), ip.dst()));
        // No headroom: refused, not corrupted.
        let mut v = framed(
            &udp_packet(r, l, b"answer", true),
            ethernet::ETHERTYPE_IPV4,
            0,
        );
        assert_eq!(
            to_v6(&mut PacketBuf::whole(&mut v), ipv4::PROTO_UDP, vip, c),
            Err(DropReason::NoHeadroom)
        );
    }
}
