//! Strict ingress checks: what the kernel (`ip_rcv`, `tcp_v4_rcv`,
//! `udp_rcv`, `ip_route_input`'s martian checks, netfilter's TCP flag
//! table) would refuse before IPVS ever saw the packet, each refused with
//! its own [`DropReason`].
//!
//! Where each check runs, and what it costs:
//!
//! | check | reason | where |
//! |---|---|---|
//! | IPv4 header checksum (20 bytes) | `ip_checksum` | every IPv4 packet ([`Pipeline::describe`] refuses, the long way names it) |
//! | IPv4 options that route (LSRR, SSRR) | `source_route` | IPv4 packets with options only (IHL > 5) |
//! | malformed IPv4 options | `malformed` | likewise |
//! | IPv4 total length vs frame and IHL, IPv6 payload length vs frame, TCP data offset, UDP length vs IP payload | `bad_length` | every packet (the checks `describe` makes anyway) |
//! | TCP flags that no stack sends (netfilter's `tcp_valid_flags`) | `tcp_flags` | every TCP segment (one table lookup) |
//! | martian source (0/8, 127/8, 224/4, 240/4, 255.255.255.255, an interface's subnet broadcast; `::`, `::1`, `ff00::/8`) | `martian_source` | session miss only |
//! | own source (a VIP, a local address, an interface address) | `own_source` | session miss only |
//! | TCP or UDP checksum | `l4_checksum` | before a session is created only |
//!
//! The per-packet cost on the session-hit path is the IPv4 header checksum
//! and the flag lookup; established packets keep the incremental checksum
//! update ([`crate::checksum`]) and are not summed over their payload.
//! Ethernet padding (frame longer than the IP total length) is not a
//! disagreement; a UDP length shorter than the IP payload is (the kernel
//! trims, a load balancer would forward the trailing bytes).

use super::{Desc, Pipeline};
use crate::addr::Addr;
use crate::checksum;
use crate::stats::DropReason;
use crate::wire::{ipv4, ipv6, tcp, udp, WireError};

/// IPv4 option: end of list.
const OPT_EOL: u8 = 0;
/// IPv4 option: no operation.
const OPT_NOP: u8 = 1;
/// IPv4 option: loose source and record route (RFC 791).
const OPT_LSRR: u8 = 0x83;
/// IPv4 option: strict source and record route (RFC 791).
const OPT_SSRR: u8 = 0x89;

/// `tcp_valid_flags` of netfilter's `nf_conntrack_proto_tcp.c`, indexed by
/// the flags masked to FIN, SYN, RST, ACK and URG (PSH, ECE and CWR go with
/// anything): SYN, SYN|URG, SYN|ACK, RST, RST|ACK, FIN|ACK, FIN|ACK|URG,
/// ACK, ACK|URG. Everything else (SYN+FIN, SYN+RST, no flag, FIN without
/// ACK, ...) no TCP sends.
const VALID_FLAGS: u64 = (1 << 0x02)
    | (1 << 0x22)
    | (1 << 0x12)
    | (1 << 0x04)
    | (1 << 0x14)
    | (1 << 0x11)
    | (1 << 0x31)
    | (1 << 0x10)
    | (1 << 0x30);
/// The flags [`VALID_FLAGS`] is indexed by.
const FLAG_MASK: u8 = 0x37;

/// True if a TCP segment with these flags could come from a real stack.
#[inline]
#[must_use]
pub fn tcp_flags_valid(flags: tcp::TcpFlags) -> bool {
    VALID_FLAGS >> (flags.bits() & FLAG_MASK) & 1 == 1
}

/// Walks IPv4 options (the bytes after the 20-byte header): `Ok` if none
/// routes, [`DropReason::SourceRoute`] for LSRR or SSRR,
/// [`DropReason::Malformed`] for an option that overruns the header or has
/// a length below 2 (`ip_options_compile`'s refusals).
pub fn ipv4_options(opts: &[u8]) -> Result<(), DropReason> {
    let mut i = 0;
    while i < opts.len() {
        match opts[i] {
            OPT_EOL => return Ok(()),
            OPT_NOP => i += 1,
            kind => {
                let len = usize::from(*opts.get(i + 1).ok_or(DropReason::Malformed)?);
                if len < 2 || i + len > opts.len() {
                    return Err(DropReason::Malformed);
                }
                if kind == OPT_LSRR || kind == OPT_SSRR {
                    return Err(DropReason::SourceRoute);
                }
                i += len;
            }
        }
    }
    Ok(())
}

/// The checks an IPv4 packet passes before anything reads its addresses:
/// header, lengths, checksum, options. `l3` runs from the IP header to the
/// frame's end.
pub fn ipv4_header(l3: &[u8]) -> Result<ipv4::Packet<&[u8]>, DropReason> {
    let ip = ipv4::Packet::new_checked(l3).map_err(|e| {
        // A whole 20-byte header whose total length disagrees with the
        // frame or its IHL: lengths; anything shorter or not version 4:
        // malformed.
        let header_fits = l3.len() >= ipv4::MIN_HEADER_LEN && l3[0] >> 4 == 4;
        let ihl_ok = header_fits && usize::from(l3[0] & 0x0f) * 4 >= ipv4::MIN_HEADER_LEN;
        if ihl_ok && (e == WireError::Truncated || e == WireError::Malformed) {
            DropReason::BadLength
        } else {
            DropReason::Malformed
        }
    })?;
    if !ip_checksum_ok(&ip) {
        return Err(DropReason::IpChecksum);
    }
    if ip.header_len() > ipv4::MIN_HEADER_LEN {
        ipv4_options(&l3[ipv4::MIN_HEADER_LEN..ip.header_len()])?;
    }
    Ok(ip)
}

/// True if the IPv4 header checksum verifies (always under `cfg(fuzzing)`:
/// the fuzzer explores what lies behind it).
#[inline]
#[must_use]
pub fn ip_checksum_ok<T: AsRef<[u8]>>(ip: &ipv4::Packet<T>) -> bool {
    cfg!(fuzzing) || ip.verify_checksum()
}

/// Why an IPv6 header was refused: a whole fixed header with a payload
/// length past the frame is a length disagreement.
pub fn ipv6_refusal(l3: &[u8]) -> DropReason {
    match ipv6::Packet::new_checked(l3) {
        Err(WireError::Truncated) if l3.len() >= ipv6::HEADER_LEN && l3[0] >> 4 == 6 => {
            DropReason::BadLength
        }
        _ => DropReason::Malformed,
    }
}

/// Why a TCP or UDP header (`l4`, the IP payload) was refused:
/// [`DropReason::BadLength`] when its own length field (TCP data offset,
/// UDP length) disagrees with the IP payload, [`DropReason::Malformed`]
/// when not even the fixed header is there.
pub fn l4_refusal(l4: &[u8], is_udp: bool) -> DropReason {
    let fixed = if is_udp {
        udp::HEADER_LEN
    } else {
        tcp::MIN_HEADER_LEN
    };
    if l4.len() < fixed {
        DropReason::Malformed
    } else {
        DropReason::BadLength
    }
}

/// True if the UDP length field (`udp_len`) matches the IP payload.
#[inline]
#[must_use]
pub fn udp_len_agrees(udp_len: u16, payload_len: usize) -> bool {
    usize::from(udp_len) == payload_len
}

/// True for an IPv4 source no host sends from (RFC 1122 3.2.1.3,
/// RFC 5735, the kernel's martian list): "this network" 0/8, loopback
/// 127/8, multicast 224/4 and class E 240/4 (which holds the limited
/// broadcast 255.255.255.255).
#[inline]
#[must_use]
pub fn martian_v4(src: [u8; 4]) -> bool {
    matches!(src[0], 0 | 127) || src[0] >= 224
}

/// True for an IPv6 source no host sends from: unspecified `::` (only
/// duplicate address detection uses it, and that never reaches a service),
/// loopback `::1`, multicast `ff00::/8`.
#[inline]
#[must_use]
pub fn martian_v6(src: [u8; 16]) -> bool {
    let u = u128::from_be_bytes(src);
    u == 0 || u == 1 || src[0] == 0xff
}

impl Pipeline {
    /// The source checks of a flow that missed every session: martian
    /// sources (including an interface's subnet broadcast) and sources
    /// the appliance owns (a VIP, a local address, an interface address:
    /// forged, or a loop).
    #[cold]
    pub(super) fn source_refusal(&self, src: Addr) -> Option<DropReason> {
        // The snapshot's lists, as sets (see `own_addrs`).
        let martian = match src.to_v4() {
            Some(v4) => martian_v4(v4) || self.own.is_broadcast(v4),
            None => martian_v6(src.octets()),
        };
        if martian {
            return Some(DropReason::MartianSource);
        }
        if self.own.owns(&src) {
            return Some(DropReason::OwnSource);
        }
        None
    }
}

impl Pipeline {
    /// What a flow must pass before a session is created for it: its
    /// source ([`Self::source_refusal`]) and its TCP or UDP checksum.
    /// `l3` is the frame from the IP header on, `d` its descriptor.
    #[cold]
    pub(super) fn new_flow_refusal(&self, l3: &[u8], d: &Desc) -> Option<DropReason> {
        if let Some(r) = self.source_refusal(d.key.src.ip) {
            return Some(r);
        }
        // A first fragment's transport checksum covers data it lacks.
        if super::fragments::is_fragment(l3) {
            return None;
        }
        let end = if d.key.src.ip.is_v4() {
            ipv4::Packet::new_checked(l3).ok()?.total_len()
        } else {
            ipv6::HEADER_LEN + ipv6::Packet::new_checked(l3).ok()?.payload_len()
        };
        let l4 = l3.get(usize::from(d.l4)..end)?;
        (!l4_checksum_ok(l4, d.key.proto, d.key.src.ip, d.key.dst.ip))
            .then_some(DropReason::L4Checksum)
    }
}

/// The broadcast address of `addr/len`.
pub(super) fn subnet_broadcast(addr: [u8; 4], len: u8) -> [u8; 4] {
    let host = u32::MAX.checked_shr(u32::from(len)).unwrap_or(0);
    (u32::from_be_bytes(addr) | host).to_be_bytes()
}

/// True if the TCP or UDP checksum of `l4` (the IP payload, exactly) is
/// right for the pseudo-header of `src` and `dst` (both of one family).
/// A UDP checksum of 0 means none over IPv4 and is accepted; over IPv6 it
/// is refused (RFC 8200 8.1).
#[must_use]
pub fn l4_checksum_ok(l4: &[u8], proto: u8, src: Addr, dst: Addr) -> bool {
    if cfg!(fuzzing) {
        // The fuzzer explores what lies behind the checksum.
        return true;
    }
    let acc = match (src.to_v4(), dst.to_v4()) {
        (Some(s), Some(d)) => {
            if proto == ipv4::PROTO_UDP && l4.len() >= udp::HEADER_LEN && l4[6..8] == [0, 0] {
                return true;
            }
            let Ok(len) = u16::try_from(l4.len()) else {
                return false;
            };
            checksum::pseudo_header_v4(s, d, proto, len)
        }
        _ => {
            if proto == ipv4::PROTO_UDP && l4.len() >= udp::HEADER_LEN && l4[6..8] == [0, 0] {
                return false;
            }
            let Ok(len) = u32::try_from(l4.len()) else {
                return false;
            };
            checksum::pseudo_header_v6(src.octets(), dst.octets(), proto, len)
        }
    };
    checksum::finish(checksum::sum(l4, acc)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_table_is_netfilters() {
        use tcp::{TcpFlags, ACK, CWR, ECE, FIN, PSH, RST, SYN, URG};
        for ok in [
            SYN,
            SYN | ACK,
            ACK,
            ACK | PSH,
            FIN | ACK,
            RST,
            RST | ACK,
            SYN | ECE | CWR,
        ] {
            assert!(tcp_flags_valid(ok), "{ok:#04x} refused");
        }
        for ok in [SYN | URG, FIN | ACK | URG, ACK | URG | PSH] {
            assert!(tcp_flags_valid(ok), "{ok:#04x} refused");
        }
        for bad in [
            TcpFlags::empty(),
            PSH,
            FIN,
            SYN | FIN,
            SYN | RST,
            SYN | FIN | ACK,
            SYN | RST | ACK,
            FIN | RST,
            FIN | RST | ACK,
            FIN | PSH | URG, // the "Xmas" scan
            TcpFlags::all(),
            URG,
        ] {
            assert!(!tcp_flags_valid(bad), "{bad:#04x} accepted");
        }
    }

    #[test]
    fn options_that_route_are_refused() {
        // NOP, then LSRR with one hop (len 7, pointer 4).
        let lsrr = [1, 0x83, 7, 4, 10, 0, 0, 1];
        assert_eq!(ipv4_options(&lsrr), Err(DropReason::SourceRoute));
        let ssrr = [0x89, 7, 4, 10, 0, 0, 1, 0];
        assert_eq!(ipv4_options(&ssrr), Err(DropReason::SourceRoute));
        // Record route (7) and router alert (0x94) do not route.
        let rr = [7, 7, 4, 0, 0, 0, 0, 0];
        assert_eq!(ipv4_options(&rr), Ok(()));
        assert_eq!(ipv4_options(&[0x94, 4, 0, 0]), Ok(()));
        // End of list stops the walk; what follows is padding.
        assert_eq!(ipv4_options(&[0, 0x83, 0, 0]), Ok(()));
        // Lengths that overrun or are below 2.
        assert_eq!(ipv4_options(&[7, 9, 4, 0]), Err(DropReason::Malformed));
        assert_eq!(ipv4_options(&[7, 1, 0, 0]), Err(DropReason::Malformed));
        assert_eq!(ipv4_options(&[1, 1, 1, 7]), Err(DropReason::Malformed));
    }

    fn header(opts: &[u8], payload: usize) -> Vec<u8> {
        let ihl = 20 + opts.len();
        let mut b = vec![0u8; ihl + payload];
        ipv4::emit_header(&mut b, ipv4::PROTO_TCP, [10, 0, 0, 1], [10, 0, 0, 2], 0);
        b[0] = 0x40 | (ihl / 4) as u8;
        b[2..4].copy_from_slice(&((ihl + payload) as u16).to_be_bytes());
        b[20..ihl].copy_from_slice(opts);
        ipv4::Packet::new_checked(&mut b[..])
            .unwrap()
            .fill_checksum();
        b
    }

    #[test]
    fn ipv4_header_reasons() {
        let good = header(&[], 8);
        assert!(ipv4_header(&good).is_ok());
        let mut bad_sum = good.clone();
        bad_sum[10] ^= 1;
        assert_eq!(ipv4_header(&bad_sum).unwrap_err(), DropReason::IpChecksum);
        // Total length past the frame, and below the IHL.
        assert_eq!(ipv4_header(&good[..24]).unwrap_err(), DropReason::BadLength);
        let mut short_total = good.clone();
        short_total[2..4].copy_from_slice(&16u16.to_be_bytes());
        assert_eq!(
            ipv4_header(&short_total).unwrap_err(),
            DropReason::BadLength
        );
        // Not even a header; IHL below 5; version 5.
        assert_eq!(ipv4_header(&good[..19]).unwrap_err(), DropReason::Malformed);
        let mut ihl4 = good.clone();
        ihl4[0] = 0x44;
        assert_eq!(ipv4_header(&ihl4).unwrap_err(), DropReason::Malformed);
        let mut v5 = good.clone();
        v5[0] = 0x55;
        assert_eq!(ipv4_header(&v5).unwrap_err(), DropReason::Malformed);
        // Options: source routes refused (checksum right), others pass.
        let lsrr = header(&[0x83, 7, 4, 10, 0, 0, 1, 0], 8);
        assert_eq!(ipv4_header(&lsrr).unwrap_err(), DropReason::SourceRoute);
        let nops = header(&[1, 1, 1, 0], 8);
        assert!(ipv4_header(&nops).is_ok());
        // Padding after the total length is not a disagreement.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 18]);
        assert!(ipv4_header(&padded).is_ok());
    }

    #[test]
    fn ipv6_and_l4_length_reasons() {
        let mut v6 = vec![0u8; 48];
        v6[0] = 0x60;
        v6[4..6].copy_from_slice(&20u16.to_be_bytes()); // 20 > 8 bytes there
        assert_eq!(ipv6_refusal(&v6), DropReason::BadLength);
        assert_eq!(ipv6_refusal(&v6[..30]), DropReason::Malformed);
        assert_eq!(l4_refusal(&[0; 19], false), DropReason::Malformed);
        assert_eq!(l4_refusal(&[0; 20], false), DropReason::BadLength);
        assert_eq!(l4_refusal(&[0; 7], true), DropReason::Malformed);
        assert_eq!(l4_refusal(&[0; 8], true), DropReason::BadLength);
        assert!(udp_len_agrees(12, 12));
        assert!(!udp_len_agrees(8, 12));
    }

    #[test]
    fn martians() {
        for m in [
            [0, 0, 0, 0],
            [0, 1, 2, 3],
            [127, 0, 0, 1],
            [224, 0, 0, 1],
            [239, 255, 255, 250],
            [240, 0, 0, 1],
            [255, 255, 255, 255],
        ] {
            assert!(martian_v4(m), "{m:?}");
        }
        for ok in [
            [10, 0, 0, 1],
            [1, 1, 1, 1],
            [223, 255, 255, 254],
            [126, 0, 0, 1],
        ] {
            assert!(!martian_v4(ok), "{ok:?}");
        }
        let mut a = [0u8; 16];
        assert!(martian_v6(a));
        a[15] = 1;
        assert!(martian_v6(a));
        a[0] = 0xff;
        assert!(martian_v6(a));
        a[0] = 0xfd;
        assert!(!martian_v6(a));
        assert_eq!(subnet_broadcast([10, 77, 0, 2], 24), [10, 77, 0, 255]);
        assert_eq!(subnet_broadcast([10, 77, 0, 2], 0), [255; 4]);
        assert_eq!(subnet_broadcast([10, 77, 0, 2], 32), [10, 77, 0, 2]);
    }

    #[test]
    fn l4_checksums() {
        let (s, d) = (Addr::v4([10, 0, 0, 1]), Addr::v4([10, 0, 0, 2]));
        let mut u = vec![0u8; 12];
        udp::emit_header(&mut u, 1000, 53, 4);
        u[8..].copy_from_slice(b"abcd");
        // Checksum 0 over IPv4: none, accepted; over IPv6: refused.
        u[6..8].copy_from_slice(&[0, 0]);
        assert!(l4_checksum_ok(&u, ipv4::PROTO_UDP, s, d));
        let (s6, d6) = (Addr::v6([0xfd; 16]), Addr::v6([0xfe; 16]));
        assert!(!l4_checksum_ok(&u, ipv4::PROTO_UDP, s6, d6));
        udp::Packet::new_checked(&mut u[..])
            .unwrap()
            .fill_checksum_v4(s.v4_bits(), d.v4_bits());
        assert!(l4_checksum_ok(&u, ipv4::PROTO_UDP, s, d));
        u[9] ^= 0x40;
        assert!(!l4_checksum_ok(&u, ipv4::PROTO_UDP, s, d));
        u[9] ^= 0x40;
        udp::Packet::new_checked(&mut u[..])
            .unwrap()
            .fill_checksum_v6(s6.octets(), d6.octets());
        assert!(l4_checksum_ok(&u, ipv4::PROTO_UDP, s6, d6));
        // Another source, same bytes: the pseudo-header counts.
        assert!(!l4_checksum_ok(
            &u,
            ipv4::PROTO_UDP,
            Addr::v6([0xfc; 16]),
            d6
        ));
    }
}
