//! The rewrite of a later fragment (offset > 0) of a FULLNAT or NAT
//! datagram: it carries no transport header, so only the IP addresses
//! change (and the TTL or hop limit, as for the first fragment): the IPv4
//! header checksum is updated incrementally; IPv6 has none. The transport
//! checksum, in the first fragment, was updated for the new addresses with
//! it ([`super::rewrite`]), so the datagram the server reassembles sums
//! right. DR leaves fragments untouched, TUN wraps each one as it comes
//! (see [`crate::pipeline`]'s fragment stage).

use crate::addr::Addr;
use crate::checksum;
use crate::wire::{ipv4, ipv6, WireError};

/// Sets the addresses of the IPv4 packet `l3` to `src` → `dst` and
/// decrements its TTL, with one incremental update of the header checksum.
///
/// # Errors
/// [`WireError::Truncated`] if `l3` has no IPv4 header.
pub fn rewrite_addrs_v4(l3: &mut [u8], src: [u8; 4], dst: [u8; 4]) -> Result<(), WireError> {
    if l3.len() < ipv4::MIN_HEADER_LEN {
        return Err(WireError::Truncated);
    }
    let word = |b: &[u8], at: usize| u16::from_be_bytes([b[at], b[at + 1]]);
    let (mut old_src, mut old_dst) = ([0; 4], [0; 4]);
    old_src.copy_from_slice(&l3[12..16]);
    old_dst.copy_from_slice(&l3[16..20]);
    let ttl_proto = word(l3, 8);
    let ttl_proto_new = ttl_proto.wrapping_sub(0x0100);
    let sum = checksum::apply(
        word(l3, 10),
        checksum::delta(&old_src, &src)
            + checksum::delta(&old_dst, &dst)
            + checksum::delta_u16(ttl_proto, ttl_proto_new),
    );
    l3[8..10].copy_from_slice(&ttl_proto_new.to_be_bytes());
    l3[10..12].copy_from_slice(&sum.to_be_bytes());
    l3[12..16].copy_from_slice(&src);
    l3[16..20].copy_from_slice(&dst);
    Ok(())
}

/// Sets the addresses of the IPv6 packet `l3` to `src` → `dst` and
/// decrements its hop limit.
///
/// # Errors
/// [`WireError::Truncated`] if `l3` has no IPv6 header.
pub fn rewrite_addrs_v6(l3: &mut [u8], src: [u8; 16], dst: [u8; 16]) -> Result<(), WireError> {
    if l3.len() < ipv6::HEADER_LEN {
        return Err(WireError::Truncated);
    }
    l3[7] = l3[7].saturating_sub(1);
    l3[8..24].copy_from_slice(&src);
    l3[24..40].copy_from_slice(&dst);
    Ok(())
}

/// [`rewrite_addrs_v4`] or [`rewrite_addrs_v6`] by the packet's version.
///
/// # Errors
/// [`WireError::Malformed`] if `src` and `dst` are not of the packet's
/// family (FULLNAT64 does not translate fragments), else as those.
pub fn rewrite_addrs(l3: &mut [u8], src: Addr, dst: Addr) -> Result<(), WireError> {
    let v4 = l3.first().map(|b| b >> 4) == Some(4);
    match (v4, src.to_v4(), dst.to_v4()) {
        (true, Some(s), Some(d)) => rewrite_addrs_v4(l3, s, d),
        (false, None, None) => rewrite_addrs_v6(l3, src.octets(), dst.octets()),
        _ => Err(WireError::Malformed),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_header_checksum_stays_right() {
        let mut b = [0u8; 28];
        ipv4::emit_header(&mut b, ipv4::PROTO_UDP, [10, 0, 0, 1], [10, 0, 0, 100], 8);
        b[6] = 0x00;
        b[7] = 0xb9; // offset 185 * 8
        let ttl = b[8];
        // emit_header fills the checksum; the offset changed it: refill.
        b[10..12].fill(0);
        let c = checksum::checksum(&b[..20]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
        let payload = b[20..].to_vec();
        rewrite_addrs(&mut b, Addr::v4([10, 0, 0, 200]), Addr::v4([10, 0, 0, 11])).unwrap();
        assert_eq!(checksum::checksum(&b[..20]), 0);
        assert_eq!(
            (&b[12..16], &b[16..20], b[8]),
            (&[10, 0, 0, 200][..], &[10, 0, 0, 11][..], ttl - 1)
        );
        assert_eq!(&b[20..], &payload[..], "the data is not touched");
    }

    #[test]
    fn v6_addresses_and_hop_limit() {
        let mut b = [0u8; 56];
        let (a, z) = (
            [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10],
            [0xfd; 16],
        );
        ipv6::emit_header(&mut b, ipv6::NEXT_FRAGMENT, a, z, 16);
        rewrite_addrs(&mut b, Addr::v6(z), Addr::v6(a)).unwrap();
        assert_eq!((&b[8..24], &b[24..40], b[7]), (&z[..], &a[..], 63));
        assert_eq!(
            rewrite_addrs(&mut b, Addr::v4([1, 2, 3, 4]), Addr::v6(a)),
            Err(WireError::Malformed)
        );
    }
}
