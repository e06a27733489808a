//! The FULLNAT and NAT header rewrites for TCP and UDP over IPv4.
//!
//! Inbound (client → RS) a packet `client:cport → vip:vport` leaves as
//! `laddr:lport → rs:rport`; outbound (RS → client) `rs:rport → laddr:lport`
//! leaves as `vip:vport → client:cport`. Both are the same operation — set
//! the four fields — so one function does it. Checksums are updated
//! incrementally (RFC 1624), each in one update for all the words that
//! change: the IPv4 header checksum for the two addresses and the TTL, the
//! TCP or UDP checksum for the two ports and, through the pseudo-header, the
//! two addresses. Nothing is recomputed over the payload (debug builds check
//! every rewrite against a full recompute). The pipeline's fast path calls
//! the `_leg` forms (the new addresses and ports as a session holds them,
//! the headers taken as fixed-size arrays), the other methods the `_at`
//! forms, both with the header offsets classification found; the others
//! check the headers first.
//!
//! NAT is the same operation with the client kept as the source inbound
//! (`client:cport → rs:rport`) and the client kept as the destination
//! outbound (`vip:vport → client:cport`): a field rewritten to its own value
//! changes nothing, checksums included.
//!
//! UDP over IPv4 may carry no checksum (0, RFC 768): it stays 0; a
//! checksum that the update makes 0 is sent as 0xffff (the same value in
//! one's complement), as [`udp::Packet`]'s setters do.

use crate::checksum;
use crate::session::{Endpoint, V4Leg, V6Leg};
use crate::wire::{ipv4, ipv6, tcp, udp, WireError};

/// Where a transport header keeps its checksum, by IP protocol.
#[inline]
fn checksum_at(proto: u8) -> Result<(usize, usize), WireError> {
    match proto {
        ipv4::PROTO_TCP => Ok((16, tcp::MIN_HEADER_LEN)),
        ipv4::PROTO_UDP => Ok((6, udp::HEADER_LEN)),
        _ => Err(WireError::Malformed),
    }
}

#[inline]
fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn put_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The transport checksum at `at` updated by `delta`; a UDP datagram
/// without checksum (0) keeps none, and an update that gives 0 is sent
/// as 0xffff (the same value in one's complement).
#[inline]
fn update_l4(l3: &mut [u8], at: usize, proto: u8, delta: u32) {
    let old = u16_at(l3, at);
    if proto == ipv4::PROTO_UDP && old == 0 {
        return;
    }
    let mut c = checksum::apply(old, delta);
    if proto == ipv4::PROTO_UDP && c == 0 {
        c = 0xffff;
    }
    put_u16(l3, at, c);
}

/// Rewrites an IPv4 TCP or UDP packet whose headers classification has
/// already validated (`l3` starts at the IPv4 header, the transport header
/// starts at `l4`) to carry `src` → `dst`, decrementing the TTL: one
/// incremental update of the header checksum for the two addresses and the
/// TTL, one of the transport checksum for the pseudo-header's addresses and
/// the two ports (RFC 1624). Debug builds check both against a full
/// recompute.
///
/// # Errors
/// If `l4` or the length of `l3` cannot hold the headers, or `proto` is
/// neither TCP nor UDP; the packet is unchanged then.
#[inline]
pub fn rewrite_v4_at(
    l3: &mut [u8],
    l4: usize,
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), WireError> {
    let leg = V4Leg {
        src: src.ip.v4_bits(),
        src_port: src.port,
        dst: dst.ip.v4_bits(),
        dst_port: dst.port,
        seq_off: 0,
        ack_off: 0,
    };
    rewrite_v4_leg(l3, l4, proto, &leg)
}

/// [`rewrite_v4_at`] with the new addresses and ports as an established
/// session's hot line holds them ([`crate::session::SessionHot::v4_leg`]):
/// the IPv4 fast path, no 16-byte endpoints built. The IPv4 header and the
/// transport header's first bytes are taken as fixed-size arrays (one
/// length check each), and every checksum term is summed as 32-bit words
/// and folded once.
///
/// # Errors
/// As [`rewrite_v4_at`].
#[inline]
pub fn rewrite_v4_leg(l3: &mut [u8], l4: usize, proto: u8, leg: &V4Leg) -> Result<(), WireError> {
    match proto {
        ipv4::PROTO_TCP => rewrite_v4_fixed::<{ tcp::MIN_HEADER_LEN }, 16>(l3, l4, false, leg),
        ipv4::PROTO_UDP => rewrite_v4_fixed::<{ udp::HEADER_LEN }, 6>(l3, l4, true, leg),
        _ => Err(WireError::Malformed),
    }
}

/// A TCP segment's ISN offset (see [`crate::xmit::isn`]) on its fixed
/// header `t` (the callers' 20-byte view): its sequence number forward by
/// `seq_off`, its acknowledgement back by `ack_off`; the checksum term, for
/// the caller's one fold. Nothing for offsets of 0 (every session but a
/// FULLNAT TCP one). The SACK edges are [`sack_terms`]'.
#[inline(always)]
fn isn_terms(t: &mut [u8], seq_off: u32, ack_off: u32) -> u64 {
    let Some(w) = t.get_mut(4..12).and_then(|w| w.first_chunk_mut::<8>()) else {
        return 0;
    };
    let mut sum = 0;
    if seq_off != 0 {
        let old = u32::from_be_bytes([w[0], w[1], w[2], w[3]]);
        let new = old.wrapping_add(seq_off);
        w[..4].copy_from_slice(&new.to_be_bytes());
        sum += checksum::delta_u32(old, new);
    }
    if ack_off != 0 {
        let old = u32::from_be_bytes([w[4], w[5], w[6], w[7]]);
        let new = old.wrapping_sub(ack_off);
        w[4..].copy_from_slice(&new.to_be_bytes());
        sum += checksum::delta_u32(old, new);
    }
    sum
}

/// The SACK edges of a server's segment (`tcp`, its whole header) back by
/// `ack_off`, only when it has options at all; the checksum term.
#[inline(always)]
fn sack_terms(tcp: &mut [u8], ack_off: u32) -> u64 {
    if ack_off != 0 && tcp.get(12).is_some_and(|b| b >> 4 > 5) {
        super::isn::sack_back(tcp, ack_off)
    } else {
        0
    }
}

/// [`rewrite_v4_leg`] for a transport header of at least `L4` bytes with
/// its checksum at `CSUM`; `udp`: a checksum of 0 means none.
#[inline(always)]
fn rewrite_v4_fixed<const L4: usize, const CSUM: usize>(
    l3: &mut [u8],
    l4: usize,
    udp: bool,
    leg: &V4Leg,
) -> Result<(), WireError> {
    if l4 < ipv4::MIN_HEADER_LEN || l3.len() < l4 + L4 {
        return Err(WireError::Truncated);
    }
    // Debug builds: the update keeps right checksums right (and wrong
    // ones wrong: packets of a session are forwarded unverified). A first
    // fragment's transport checksum covers data it does not carry.
    let whole = u16_at(l3, 6) & 0x3fff == 0;
    let proto = if udp {
        ipv4::PROTO_UDP
    } else {
        ipv4::PROTO_TCP
    };
    let valid_before = cfg!(debug_assertions) && whole && checksums_verify_v4(l3, l4, proto);
    let (ip, rest) = l3.split_at_mut(l4);
    let sack = if udp {
        0
    } else {
        sack_terms(rest, leg.ack_off)
    };
    let (Some(ip), Some(t)) = (ip.first_chunk_mut::<20>(), rest.first_chunk_mut::<L4>()) else {
        return Err(WireError::Truncated);
    };
    let isn = if udp {
        0
    } else {
        sack + isn_terms(t, leg.seq_off, leg.ack_off)
    };
    let word =
        |b: &[u8; 20], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let (new_src, new_dst) = (u32::from_be_bytes(leg.src), u32::from_be_bytes(leg.dst));
    let addrs =
        checksum::delta_u32(word(ip, 12), new_src) + checksum::delta_u32(word(ip, 16), new_dst);
    let ttl_proto = u16::from_be_bytes([ip[8], ip[9]]);
    let ttl_proto_new = ttl_proto.wrapping_sub(0x0100);
    let ip_sum = checksum::apply_wide(
        u16::from_be_bytes([ip[10], ip[11]]),
        addrs + u64::from(checksum::delta_u16(ttl_proto, ttl_proto_new)),
    );
    let old_ports = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
    let new_ports = u32::from(leg.src_port) << 16 | u32::from(leg.dst_port);
    let old_sum = u16::from_be_bytes([t[CSUM], t[CSUM + 1]]);
    if !(udp && old_sum == 0) {
        let mut c = checksum::apply_wide(
            old_sum,
            addrs + checksum::delta_u32(old_ports, new_ports) + isn,
        );
        if udp && c == 0 {
            c = 0xffff;
        }
        t[CSUM..CSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
    t[..4].copy_from_slice(&new_ports.to_be_bytes());
    ip[8..10].copy_from_slice(&ttl_proto_new.to_be_bytes());
    ip[10..12].copy_from_slice(&ip_sum.to_be_bytes());
    ip[12..16].copy_from_slice(&leg.src);
    ip[16..20].copy_from_slice(&leg.dst);
    debug_assert!(
        !whole || checksums_verify_v4(l3, l4, proto) == valid_before,
        "incremental update went wrong"
    );
    Ok(())
}

/// [`rewrite_v6_at`] with the new addresses and ports as an established
/// session holds them ([`crate::session::SessionTable::v6_leg`]): the IPv6
/// fast path, as [`rewrite_v4_leg`] is IPv4's (fixed-size views, the
/// addresses summed as 32-bit words, one fold).
///
/// # Errors
/// As [`rewrite_v6_at`].
#[inline]
pub fn rewrite_v6_leg(l3: &mut [u8], proto: u8, leg: &V6Leg) -> Result<(), WireError> {
    match proto {
        ipv4::PROTO_TCP => rewrite_v6_fixed::<{ tcp::MIN_HEADER_LEN }, 16>(l3, false, leg),
        ipv4::PROTO_UDP => rewrite_v6_fixed::<{ udp::HEADER_LEN }, 6>(l3, true, leg),
        _ => Err(WireError::Malformed),
    }
}

/// [`rewrite_v6_leg`] for a transport header of at least `L4` bytes with
/// its checksum at `CSUM`, right after the fixed header.
#[inline(always)]
fn rewrite_v6_fixed<const L4: usize, const CSUM: usize>(
    l3: &mut [u8],
    udp: bool,
    leg: &V6Leg,
) -> Result<(), WireError> {
    let proto = if udp {
        ipv4::PROTO_UDP
    } else {
        ipv4::PROTO_TCP
    };
    if l3.len() < ipv6::HEADER_LEN + L4 {
        return Err(WireError::Truncated);
    }
    let valid_before = cfg!(debug_assertions) && checksums_verify_v6(l3, proto);
    let (ip, rest) = l3.split_at_mut(ipv6::HEADER_LEN);
    let sack = if udp {
        0
    } else {
        sack_terms(rest, leg.ack_off)
    };
    let (Some(ip), Some(t)) = (
        ip.first_chunk_mut::<{ ipv6::HEADER_LEN }>(),
        rest.first_chunk_mut::<L4>(),
    ) else {
        return Err(WireError::Truncated);
    };
    let isn = if udp {
        0
    } else {
        sack + isn_terms(t, leg.seq_off, leg.ack_off)
    };
    let mut old = [0u8; 32];
    old.copy_from_slice(&ip[8..40]);
    let mut new = [0u8; 32];
    new[..16].copy_from_slice(&leg.src);
    new[16..].copy_from_slice(&leg.dst);
    let old_ports = u32::from_be_bytes([t[0], t[1], t[2], t[3]]);
    let new_ports = u32::from(leg.src_port) << 16 | u32::from(leg.dst_port);
    let old_sum = u16::from_be_bytes([t[CSUM], t[CSUM + 1]]);
    if !(udp && old_sum == 0) {
        let delta =
            checksum::delta_words(&old, &new) + checksum::delta_u32(old_ports, new_ports) + isn;
        let mut c = checksum::apply_wide(old_sum, delta);
        if udp && c == 0 {
            c = 0xffff;
        }
        t[CSUM..CSUM + 2].copy_from_slice(&c.to_be_bytes());
    }
    t[..4].copy_from_slice(&new_ports.to_be_bytes());
    ip[7] = ip[7].saturating_sub(1);
    ip[8..40].copy_from_slice(&new);
    debug_assert!(
        checksums_verify_v6(l3, proto) == valid_before,
        "incremental update went wrong"
    );
    Ok(())
}

/// Rewrites an IPv6 TCP or UDP packet whose headers classification has
/// already validated (`l3` starts at the fixed IPv6 header, the transport
/// header follows it directly) to carry `src` → `dst`, decrementing the hop
/// limit: one incremental update of the transport checksum for the
/// pseudo-header's addresses and the two ports (IPv6 has no header
/// checksum). Debug builds check it against a full recompute.
///
/// # Errors
/// If `l3` cannot hold the headers or `proto` is neither TCP nor UDP;
/// the packet is unchanged then.
#[inline]
pub fn rewrite_v6_at(
    l3: &mut [u8],
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), WireError> {
    rewrite_v6_l4_at(l3, ipv6::HEADER_LEN, proto, src, dst)
}

/// [`rewrite_v6_at`] with the transport header at `l4`: after a fragment
/// header (the first fragment of a datagram, whose transport checksum
/// covers data it does not carry: debug builds check only whole packets).
///
/// # Errors
/// As [`rewrite_v6_at`].
#[inline]
pub fn rewrite_v6_l4_at(
    l3: &mut [u8],
    l4: usize,
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), WireError> {
    const L4: usize = ipv6::HEADER_LEN;
    let (csum, l4_min) = checksum_at(proto)?;
    if l4 < L4 || l3.len() < l4 + l4_min {
        return Err(WireError::Truncated);
    }
    let whole = l4 == L4;
    let valid_before = cfg!(debug_assertions) && whole && checksums_verify_v6(l3, proto);
    let (new_src, new_dst) = (src.ip.octets(), dst.ip.octets());
    let (mut old_src, mut old_dst) = ([0; 16], [0; 16]);
    old_src.copy_from_slice(&l3[8..24]);
    old_dst.copy_from_slice(&l3[24..40]);
    let delta = checksum::delta(&old_src, &new_src)
        + checksum::delta(&old_dst, &new_dst)
        + checksum::delta_u16(u16_at(l3, l4), src.port)
        + checksum::delta_u16(u16_at(l3, l4 + 2), dst.port);
    update_l4(l3, l4 + csum, proto, delta);
    put_u16(l3, l4, src.port);
    put_u16(l3, l4 + 2, dst.port);
    l3[7] = l3[7].saturating_sub(1);
    l3[8..24].copy_from_slice(&new_src);
    l3[24..40].copy_from_slice(&new_dst);
    debug_assert!(
        !whole || checksums_verify_v6(l3, proto) == valid_before,
        "incremental update went wrong"
    );
    Ok(())
}

/// Debug check of [`rewrite_v4_at`]: the header and transport checksums
/// verify when recomputed in full.
fn checksums_verify_v4(l3: &[u8], l4: usize, proto: u8) -> bool {
    let total = usize::from(u16_at(l3, 2)).clamp(l4, l3.len());
    let header_ok = checksum::checksum(&l3[..l4]) == 0;
    let Ok((csum, _)) = checksum_at(proto) else {
        return false;
    };
    if proto == ipv4::PROTO_UDP && u16_at(l3, l4 + csum) == 0 {
        return header_ok;
    }
    let mut src = [0; 4];
    let mut dst = [0; 4];
    src.copy_from_slice(&l3[12..16]);
    dst.copy_from_slice(&l3[16..20]);
    let pseudo = checksum::pseudo_header_v4(src, dst, proto, (total - l4) as u16);
    header_ok && checksum::finish(checksum::sum(&l3[l4..total], pseudo)) == 0
}

/// Debug check of [`rewrite_v6_at`], as [`checksums_verify_v4`].
fn checksums_verify_v6(l3: &[u8], proto: u8) -> bool {
    const L4: usize = ipv6::HEADER_LEN;
    let total = (L4 + usize::from(u16_at(l3, 4))).min(l3.len());
    let Ok((csum, _)) = checksum_at(proto) else {
        return false;
    };
    if proto == ipv4::PROTO_UDP && u16_at(l3, L4 + csum) == 0 {
        return true;
    }
    let mut src = [0; 16];
    let mut dst = [0; 16];
    src.copy_from_slice(&l3[8..24]);
    dst.copy_from_slice(&l3[24..40]);
    let pseudo = checksum::pseudo_header_v6(src, dst, proto, (total - L4) as u32);
    checksum::finish(checksum::sum(&l3[L4..total], pseudo)) == 0
}

/// Rewrites a whole IPv4/TCP packet (`packet` starts at the IPv4 header) to
/// carry `src` → `dst`, decrementing the TTL.
///
/// # Errors
/// If `packet` is not a valid IPv4 header followed by a TCP header; the
/// packet is unchanged then.
#[inline]
pub fn rewrite_tcp_v4(packet: &mut [u8], src: Endpoint, dst: Endpoint) -> Result<(), WireError> {
    rewrite_v4(packet, ipv4::PROTO_TCP, src, dst)
}

/// Rewrites a whole IPv4/UDP packet (`packet` starts at the IPv4 header) to
/// carry `src` → `dst`, decrementing the TTL. A datagram without checksum
/// (0) keeps none.
///
/// # Errors
/// If `packet` is not a valid IPv4 header followed by a UDP header; the
/// packet is unchanged then.
#[inline]
pub fn rewrite_udp_v4(packet: &mut [u8], src: Endpoint, dst: Endpoint) -> Result<(), WireError> {
    rewrite_v4(packet, ipv4::PROTO_UDP, src, dst)
}

/// [`rewrite_tcp_v4`] or [`rewrite_udp_v4`] by IP protocol: the headers
/// checked, then [`rewrite_v4_at`].
///
/// # Errors
/// As those; [`WireError::Malformed`] for another protocol.
#[inline]
pub fn rewrite_v4(
    packet: &mut [u8],
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), WireError> {
    let ip = ipv4::Packet::new_checked(&*packet)?;
    let l4 = ip.header_len();
    match proto {
        ipv4::PROTO_TCP => tcp::Packet::new_checked(ip.payload()).map(|_| ())?,
        ipv4::PROTO_UDP => udp::Packet::new_checked(ip.payload()).map(|_| ())?,
        _ => return Err(WireError::Malformed),
    }
    rewrite_v4_at(packet, l4, proto, src, dst)
}

/// Rewrites a whole IPv6/TCP or IPv6/UDP packet (`packet` starts at the
/// fixed IPv6 header, which must be followed directly by the transport
/// header) to carry `src` → `dst`, decrementing the hop limit: the headers
/// checked, then [`rewrite_v6_at`].
///
/// # Errors
/// If `packet` is not IPv6 followed by a header of `proto`; unchanged then.
#[inline]
pub fn rewrite_v6(
    packet: &mut [u8],
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), WireError> {
    let ip = ipv6::Packet::new_checked(&*packet)?;
    match proto {
        ipv4::PROTO_TCP => tcp::Packet::new_checked(ip.payload()).map(|_| ())?,
        ipv4::PROTO_UDP => udp::Packet::new_checked(ip.payload()).map(|_| ())?,
        _ => return Err(WireError::Malformed),
    }
    rewrite_v6_at(packet, proto, src, dst)
}

/// [`rewrite_v4`] or [`rewrite_v6`] by the family of the new addresses
/// (sessions never mix families).
///
/// # Errors
/// As those.
#[inline]
pub fn rewrite(
    packet: &mut [u8],
    proto: u8,
    src: Endpoint,
    dst: Endpoint,
) -> Result<(), WireError> {
    if src.ip.is_v4() {
        rewrite_v4(packet, proto, src, dst)
    } else {
        rewrite_v6(packet, proto, src, dst)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::ipv4::{emit_header, PROTO_TCP};

    /// A valid IPv6 packet of `proto` around `l4` (checksum filled).
    fn v6_packet(src: Endpoint, dst: Endpoint, proto: u8, mut l4: Vec<u8>, fill: bool) -> Vec<u8> {
        let (s, d) = (src.ip.octets(), dst.ip.octets());
        if fill && proto == PROTO_TCP {
            tcp::Packet::new_checked(&mut l4[..])
                .unwrap()
                .fill_checksum_v6(s, d);
        } else if fill {
            udp::Packet::new_checked(&mut l4[..])
                .unwrap()
                .fill_checksum_v6(s, d);
        }
        let mut b = vec![0u8; 40];
        ipv6::emit_header(&mut b, proto, s, d, l4.len() as u16);
        b.extend_from_slice(&l4);
        b
    }

    /// A valid IPv4/TCP (or IPv6/TCP, by the addresses' family) packet
    /// with the given tuple and payload.
    pub(crate) fn tcp_packet(
        src: Endpoint,
        dst: Endpoint,
        flags: crate::wire::tcp::TcpFlags,
        payload: &[u8],
    ) -> Vec<u8> {
        if !src.ip.is_v4() {
            let v4 = tcp_packet(
                Endpoint::new([0; 4], src.port),
                Endpoint::new([0; 4], dst.port),
                flags,
                payload,
            );
            return v6_packet(src, dst, PROTO_TCP, v4[20..].to_vec(), true);
        }
        let l4_len = 20 + payload.len();
        let mut b = vec![0u8; 20 + l4_len];
        emit_header(
            &mut b,
            PROTO_TCP,
            src.ip.v4_bits(),
            dst.ip.v4_bits(),
            l4_len as u16,
        );
        let t = &mut b[20..];
        t[0..2].copy_from_slice(&src.port.to_be_bytes());
        t[2..4].copy_from_slice(&dst.port.to_be_bytes());
        t[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
        t[12] = 5 << 4;
        t[13] = flags.bits();
        t[14..16].copy_from_slice(&64240u16.to_be_bytes());
        t[20..].copy_from_slice(payload);
        tcp::Packet::new_checked(&mut b[20..])
            .unwrap()
            .fill_checksum_v4(src.ip.v4_bits(), dst.ip.v4_bits());
        b
    }

    /// A valid IPv4/UDP packet with the given tuple and payload; checksum
    /// left 0 (none) when `no_checksum`.
    pub(crate) fn udp_packet(
        src: Endpoint,
        dst: Endpoint,
        payload: &[u8],
        no_checksum: bool,
    ) -> Vec<u8> {
        if !src.ip.is_v4() {
            let v4 = udp_packet(
                Endpoint::new([0; 4], src.port),
                Endpoint::new([0; 4], dst.port),
                payload,
                true,
            );
            return v6_packet(src, dst, ipv4::PROTO_UDP, v4[20..].to_vec(), !no_checksum);
        }
        let l4_len = 8 + payload.len();
        let mut b = vec![0u8; 20 + l4_len];
        emit_header(
            &mut b,
            ipv4::PROTO_UDP,
            src.ip.v4_bits(),
            dst.ip.v4_bits(),
            l4_len as u16,
        );
        let u = &mut b[20..];
        u[0..2].copy_from_slice(&src.port.to_be_bytes());
        u[2..4].copy_from_slice(&dst.port.to_be_bytes());
        u[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
        u[8..].copy_from_slice(payload);
        if !no_checksum {
            udp::Packet::new_checked(&mut b[20..])
                .unwrap()
                .fill_checksum_v4(src.ip.v4_bits(), dst.ip.v4_bits());
        }
        b
    }

    fn udp_checksums_ok(b: &[u8]) -> bool {
        let ip = ipv4::Packet::new_checked(b).unwrap();
        ip.verify_checksum()
            && udp::Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum_v4(ip.src(), ip.dst())
    }

    #[test]
    fn udp_rewrite_keeps_no_checksum_as_none() {
        let (c, v, r) = (
            Endpoint::new([10, 77, 0, 10], 5000),
            Endpoint::new([10, 77, 0, 100], 53),
            Endpoint::new([10, 77, 0, 11], 5353),
        );
        let mut b = udp_packet(c, v, b"query", true);
        rewrite_udp_v4(&mut b, c, r).unwrap();
        assert_eq!(&b[26..28], &[0, 0], "no checksum stays none");
        let ip = ipv4::Packet::new_checked(&b[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(
            (ip.src(), ip.dst(), ip.ttl()),
            (c.ip.v4_bits(), r.ip.v4_bits(), 63)
        );
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((u.src_port(), u.dst_port()), (c.port, r.port));
    }

    #[test]
    fn rewrite_v4_dispatches_and_refuses_other_protocols() {
        let (a, b) = (
            Endpoint::new([1, 2, 3, 4], 1),
            Endpoint::new([5, 6, 7, 8], 2),
        );
        let mut u = udp_packet(a, b, b"x", false);
        rewrite_v4(&mut u, ipv4::PROTO_UDP, b, a).unwrap();
        assert!(udp_checksums_ok(&u));
        let mut t = tcp_packet(a, b, tcp::ACK, b"x");
        rewrite_v4(&mut t, ipv4::PROTO_TCP, b, a).unwrap();
        assert!(checksums_ok(&t));
        let before = u.clone();
        assert_eq!(
            rewrite_v4(&mut u, ipv4::PROTO_ICMP, a, b),
            Err(WireError::Malformed)
        );
        assert_eq!(u, before);
    }

    fn checksums_ok(b: &[u8]) -> bool {
        let ip = ipv4::Packet::new_checked(b).unwrap();
        ip.verify_checksum()
            && tcp::Packet::new_checked(ip.payload())
                .unwrap()
                .verify_checksum_v4(ip.src(), ip.dst())
    }

    fn endpoint() -> impl Strategy<Value = Endpoint> {
        (any::<[u8; 4]>(), any::<u16>()).prop_map(|(ip, port)| Endpoint::new(ip, port))
    }

    #[test]
    fn rewrites_tuple_and_ttl() {
        let (c, v, l, r) = (
            Endpoint::new([10, 77, 0, 10], 40000),
            Endpoint::new([10, 77, 0, 100], 80),
            Endpoint::new([10, 77, 0, 200], 1025),
            Endpoint::new([10, 77, 0, 11], 8080),
        );
        let mut b = tcp_packet(c, v, tcp::SYN, b"");
        rewrite_tcp_v4(&mut b, l, r).unwrap();
        let ip = ipv4::Packet::new_checked(&b[..]).unwrap();
        assert_eq!(
            (ip.src(), ip.dst(), ip.ttl()),
            (l.ip.v4_bits(), r.ip.v4_bits(), 63)
        );
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!(
            (t.src_port(), t.dst_port(), t.flags()),
            (l.port, r.port, tcp::SYN)
        );
        assert!(checksums_ok(&b));
    }

    #[test]
    fn refuses_non_tcp_garbage_unchanged() {
        let mut b = vec![
            0x45u8, 0, 0, 22, 0, 0, 0, 0, 64, 6, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 0, 0,
        ];
        let before = b.clone();
        assert_eq!(
            rewrite_tcp_v4(&mut b, Endpoint::default(), Endpoint::default()),
            Err(WireError::Truncated)
        );
        assert_eq!(b, before);
    }

    proptest! {
        // The incremental update gives the same checksums as a full recompute.
        #[test]
        fn incremental_equals_full_recompute(src in endpoint(), dst in endpoint(),
                                             nsrc in endpoint(), ndst in endpoint(),
                                             flags in any::<u8>(),
                                             payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = tcp_packet(src, dst, tcp::TcpFlags::from_bits_retain(flags), &payload);
            rewrite_tcp_v4(&mut b, nsrc, ndst).unwrap();
            prop_assert!(checksums_ok(&b));
            let mut full = b.clone();
            ipv4::Packet::new_checked(&mut full[..]).unwrap().fill_checksum();
            tcp::Packet::new_checked(&mut full[20..]).unwrap().fill_checksum_v4(nsrc.ip.v4_bits(), ndst.ip.v4_bits());
            // One's complement has two zeros; a full recompute never yields 0xffff
            // for the IP header, and both encodings verify for TCP.
            let same = |a: &[u8], b: &[u8]| a == b || (a == [0xff, 0xff] && b == [0, 0]) || (a == [0, 0] && b == [0xff, 0xff]);
            prop_assert!(same(&b[10..12], &full[10..12]));
            prop_assert!(same(&b[36..38], &full[36..38]));
        }

        // UDP: the incremental update equals a full recompute (0 sent as
        // 0xffff, both verify), and a datagram without checksum keeps none.
        #[test]
        fn udp_incremental_equals_full_recompute(src in endpoint(), dst in endpoint(),
                                                 nsrc in endpoint(), ndst in endpoint(),
                                                 no_checksum in any::<bool>(),
                                                 payload in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut b = udp_packet(src, dst, &payload, no_checksum);
            rewrite_udp_v4(&mut b, nsrc, ndst).unwrap();
            prop_assert!(udp_checksums_ok(&b));
            if no_checksum {
                prop_assert_eq!(&b[26..28], &[0u8, 0][..]);
            } else {
                let mut full = b.clone();
                udp::Packet::new_checked(&mut full[20..]).unwrap().fill_checksum_v4(nsrc.ip.v4_bits(), ndst.ip.v4_bits());
                let same = |a: &[u8], b: &[u8]| a == b || (a == [0xff, 0xff] && b == [0, 0]) || (a == [0, 0] && b == [0xff, 0xff]);
                prop_assert!(same(&b[26..28], &full[26..28]));
                prop_assert_ne!(&b[26..28], &[0u8, 0][..], "a checksum never becomes none");
            }
        }

        // NAT: inbound keeps the client as source, outbound keeps it as
        // destination; the client sees the VIP both ways, checksums valid.
        #[test]
        fn nat_round_trip(c in endpoint(), v in endpoint(), r in endpoint(), udp_proto in any::<bool>()) {
            let proto = if udp_proto { ipv4::PROTO_UDP } else { ipv4::PROTO_TCP };
            let pkt = |s: Endpoint, d: Endpoint| if udp_proto { udp_packet(s, d, b"ping", false) } else { tcp_packet(s, d, tcp::ACK, b"ping") };
            let ok = |b: &[u8]| if udp_proto { udp_checksums_ok(b) } else { checksums_ok(b) };
            let mut inb = pkt(c, v);
            rewrite_v4(&mut inb, proto, c, r).unwrap();
            let ip = ipv4::Packet::new_checked(&inb[..]).unwrap();
            prop_assert_eq!((ip.src(), ip.dst()), (c.ip.v4_bits(), r.ip.v4_bits()));
            prop_assert_eq!((u16::from_be_bytes([inb[20], inb[21]]), u16::from_be_bytes([inb[22], inb[23]])), (c.port, r.port));
            prop_assert!(ok(&inb));
            let mut reply = pkt(r, c);
            rewrite_v4(&mut reply, proto, v, c).unwrap();
            let ip = ipv4::Packet::new_checked(&reply[..]).unwrap();
            prop_assert_eq!((ip.src(), ip.dst()), (v.ip.v4_bits(), c.ip.v4_bits()));
            prop_assert_eq!((u16::from_be_bytes([reply[20], reply[21]]), u16::from_be_bytes([reply[22], reply[23]])), (v.port, c.port));
            prop_assert!(ok(&reply));
        }

        // Inbound then outbound rewrite gives the client back its own view.
        #[test]
        fn inbound_then_outbound_restores_client_view(c in endpoint(), v in endpoint(),
                                                      l in endpoint(), r in endpoint()) {
            let mut inb = tcp_packet(c, v, tcp::ACK, b"GET / HTTP/1.1\r\n\r\n");
            rewrite_tcp_v4(&mut inb, l, r).unwrap();
            let ip = ipv4::Packet::new_checked(&inb[..]).unwrap();
            let t = tcp::Packet::new_checked(ip.payload()).unwrap();
            // The RS answers to what it saw; the director turns it back.
            let mut reply = tcp_packet(Endpoint::new(ip.dst(), t.dst_port()), Endpoint::new(ip.src(), t.src_port()), tcp::ACK, b"ok");
            rewrite_tcp_v4(&mut reply, v, c).unwrap();
            let ip = ipv4::Packet::new_checked(&reply[..]).unwrap();
            let t = tcp::Packet::new_checked(ip.payload()).unwrap();
            prop_assert_eq!((ip.src(), t.src_port(), ip.dst(), t.dst_port()), (v.ip.v4_bits(), v.port, c.ip.v4_bits(), c.port));
            prop_assert!(checksums_ok(&reply));
        }
    }
}

#[cfg(test)]
mod v6_tests {
    use proptest::prelude::*;

    use super::tests::{tcp_packet, udp_packet};
    use super::*;
    use crate::session::Addr;

    fn v6(s: &str, port: u16) -> Endpoint {
        Endpoint::at(Addr::from(s.parse::<std::net::IpAddr>().unwrap()), port)
    }

    fn endpoint6() -> impl Strategy<Value = Endpoint> {
        (any::<[u8; 16]>(), any::<u16>()).prop_map(|(mut ip, port)| {
            ip[0] = 0xfd; // never IPv4-mapped
            Endpoint::at(Addr::v6(ip), port)
        })
    }

    proptest! {
        // The fast path's IPv6 rewrite (from a session's leg) writes the
        // same bytes as the rewrite by endpoints, for TCP, UDP with and
        // without checksum, right or wrong checksums, any payload.
        #[test]
        fn v6_leg_rewrite_equals_the_endpoint_one(
            c in endpoint6(), v in endpoint6(), l in endpoint6(), r in endpoint6(),
            udp_proto in any::<bool>(), no_sum in any::<bool>(), garble in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let (proto, mut b) = if udp_proto {
                (ipv4::PROTO_UDP, udp_packet(c, v, &payload, no_sum))
            } else {
                (ipv4::PROTO_TCP, tcp_packet(c, v, tcp::ACK, &payload))
            };
            if garble {
                b[ipv6::HEADER_LEN + if udp_proto { 6 } else { 16 }] ^= 0x5a;
            }
            let mut by_leg = b.clone();
            let leg = V6Leg {
                src: l.ip.octets(),
                src_port: l.port,
                dst: r.ip.octets(),
                dst_port: r.port,
                seq_off: 0,
                ack_off: 0,
            };
            prop_assert_eq!(rewrite_v6_leg(&mut by_leg, proto, &leg), Ok(()));
            prop_assert_eq!(rewrite_v6_at(&mut b, proto, l, r), Ok(()));
            prop_assert_eq!(by_leg, b);
        }
    }

    #[test]
    fn the_v6_leg_rewrite_refuses_what_it_cannot_hold() {
        let (c, v) = (v6("fd77::10", 40000), v6("fd77::100", 80));
        let leg = V6Leg {
            src: v6("fd77::200", 5000).ip.octets(),
            src_port: 5000,
            dst: v6("fd77::11", 8080).ip.octets(),
            dst_port: 8080,
            seq_off: 0,
            ack_off: 0,
        };
        let b = tcp_packet(c, v, tcp::ACK, b"");
        let mut short = b[..ipv6::HEADER_LEN + 19].to_vec();
        let before = short.clone();
        assert_eq!(
            rewrite_v6_leg(&mut short, ipv4::PROTO_TCP, &leg),
            Err(WireError::Truncated)
        );
        assert_eq!(short, before, "unchanged");
        let mut b = b.clone();
        assert_eq!(
            rewrite_v6_leg(&mut b, ipv4::PROTO_ICMP, &leg),
            Err(WireError::Malformed)
        );
    }

    #[test]
    fn v6_rewrites_keep_checksums_valid() {
        let (c, v, l, r) = (
            v6("fd77::10", 40000),
            v6("fd77::100", 80),
            v6("fd77::200", 5000),
            v6("fd77::11", 8080),
        );
        for proto in [ipv4::PROTO_TCP, ipv4::PROTO_UDP] {
            let mut b = if proto == ipv4::PROTO_TCP {
                tcp_packet(c, v, tcp::SYN, b"hello")
            } else {
                udp_packet(c, v, b"hello", false)
            };
            rewrite(&mut b, proto, l, r).unwrap();
            let ip = ipv6::Packet::new_checked(&b[..]).unwrap();
            assert_eq!(
                (ip.src(), ip.dst(), ip.hop_limit()),
                (l.ip.octets(), r.ip.octets(), 63)
            );
            let ok = if proto == ipv4::PROTO_TCP {
                let t = tcp::Packet::new_checked(ip.payload()).unwrap();
                assert_eq!((t.src_port(), t.dst_port()), (l.port, r.port));
                t.verify_checksum_v6(ip.src(), ip.dst())
            } else {
                let u = udp::Packet::new_checked(ip.payload()).unwrap();
                assert_eq!((u.src_port(), u.dst_port()), (l.port, r.port));
                u.verify_checksum_v6(ip.src(), ip.dst())
            };
            assert!(ok, "proto {proto}");
        }
        let mut b = tcp_packet(c, v, tcp::SYN, b"");
        assert!(
            rewrite_v6(&mut b[..30], ipv4::PROTO_TCP, l, r).is_err(),
            "truncated"
        );
    }
}
