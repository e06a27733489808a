//! IPv4 headers (RFC 791).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |Version|  IHL  |Type of Service|          Total Length         |
//! |         Identification        |Flags|      Fragment Offset    |
//! |  Time to Live |    Protocol   |         Header Checksum       |
//! |                       Source Address                          |
//! |                    Destination Address                        |
//! |                    Options (IHL > 5)                          |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! `new_checked` guarantees: version 4, IHL ≥ 5, IHL×4 ≤ total length ≤ the
//! buffer. Bytes past the total length (Ethernet padding) are not part of the
//! packet: [`Packet::payload`] stops at the total length.

use super::{get_4, get_u16, set_u16, WireError};
use crate::checksum;

/// Minimum header length.
pub const MIN_HEADER_LEN: usize = 20;
/// Protocol number of ICMP.
pub const PROTO_ICMP: u8 = 1;
/// Protocol number of TCP.
pub const PROTO_TCP: u8 = 6;
/// Protocol number of UDP.
pub const PROTO_UDP: u8 = 17;

/// A view of an IPv4 packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf` after the checks listed in the module doc.
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`].
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 4 {
            return Err(WireError::Malformed);
        }
        let ihl = usize::from(b[0] & 0x0f) * 4;
        let total = usize::from(get_u16(b, 2));
        if ihl < MIN_HEADER_LEN || total < ihl {
            return Err(WireError::Malformed);
        }
        if total > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Self { buf })
    }

    /// Header length in bytes.
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[0] & 0x0f) * 4
    }
    /// Total length (header and payload).
    pub fn total_len(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 2))
    }
    /// True for any fragment (MF set or non-zero offset).
    pub fn is_fragment(&self) -> bool {
        get_u16(self.buf.as_ref(), 6) & 0x3fff != 0
    }
    /// Identification.
    pub fn ident(&self) -> u16 {
        get_u16(self.buf.as_ref(), 4)
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 6) & 0x1fff) * 8
    }
    /// More fragments follow (MF).
    pub fn more_frags(&self) -> bool {
        get_u16(self.buf.as_ref(), 6) & 0x2000 != 0
    }
    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[8]
    }
    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[9]
    }
    /// Header checksum as stored.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 10)
    }
    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        get_4(self.buf.as_ref(), 12)
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        get_4(self.buf.as_ref(), 16)
    }
    /// True if the header checksum verifies. Inline for the 20-byte header
    /// (every established packet's first read of its IP header).
    #[inline]
    pub fn verify_checksum(&self) -> bool {
        let b = self.buf.as_ref();
        let len = self.header_len();
        match b.first_chunk::<20>() {
            Some(h) if len == 20 => checksum::ipv4_header_ok(h),
            _ => header_sum_ok(&b[..len]),
        }
    }
    /// The payload, up to the total length.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[self.header_len()..self.total_len()]
    }
}

/// The checksum check of a header with options (the long way).
#[cold]
fn header_sum_ok(h: &[u8]) -> bool {
    checksum::checksum(h) == 0
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_checksum(&mut self, c: u16) {
        set_u16(self.buf.as_mut(), 10, c);
    }
    /// Rewrites the source address, updating the header checksum incrementally.
    pub fn set_src(&mut self, a: [u8; 4]) {
        let c = checksum::update_u32(self.checksum(), self.src(), a);
        self.buf.as_mut()[12..16].copy_from_slice(&a);
        self.set_checksum(c);
    }
    /// Rewrites the destination address, updating the header checksum incrementally.
    pub fn set_dst(&mut self, a: [u8; 4]) {
        let c = checksum::update_u32(self.checksum(), self.dst(), a);
        self.buf.as_mut()[16..20].copy_from_slice(&a);
        self.set_checksum(c);
    }
    /// Decrements the TTL, updating the header checksum incrementally.
    pub fn decrement_ttl(&mut self) {
        let b = self.buf.as_ref();
        let old = u16::from_be_bytes([b[8], b[9]]);
        let new = old.wrapping_sub(0x0100);
        let c = checksum::update_u16(self.checksum(), old, new);
        set_u16(self.buf.as_mut(), 8, new);
        self.set_checksum(c);
    }
    /// Recomputes the header checksum from scratch.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let h = self.header_len();
        let c = checksum::checksum(&self.buf.as_ref()[..h]);
        self.set_checksum(c);
    }
    /// The payload, up to the total length, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let (h, t) = (self.header_len(), self.total_len());
        &mut self.buf.as_mut()[h..t]
    }
    /// Swaps source and destination (the checksum is unchanged by a swap).
    pub fn swap_addrs(&mut self) {
        let (s, d) = (self.src(), self.dst());
        let b = self.buf.as_mut();
        b[12..16].copy_from_slice(&d);
        b[16..20].copy_from_slice(&s);
    }
}

/// Writes a 20-byte IPv4 header (no options, DF set, TTL 64) with its checksum.
pub fn emit_header(buf: &mut [u8], proto: u8, src: [u8; 4], dst: [u8; 4], payload_len: u16) {
    buf[0] = 0x45;
    buf[1] = 0;
    set_u16(buf, 2, payload_len + MIN_HEADER_LEN as u16);
    set_u16(buf, 4, 0);
    set_u16(buf, 6, 0x4000);
    buf[8] = 64;
    buf[9] = proto;
    set_u16(buf, 10, 0);
    buf[12..16].copy_from_slice(&src);
    buf[16..20].copy_from_slice(&dst);
    let c = checksum::checksum(&buf[..MIN_HEADER_LEN]);
    set_u16(buf, 10, c);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 24] {
        let mut b = [0u8; 24];
        emit_header(&mut b, PROTO_TCP, [10, 0, 0, 1], [10, 0, 0, 2], 4);
        b
    }

    #[test]
    fn parse_emitted_header() {
        let b = header();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.header_len(), 20);
        assert_eq!(p.total_len(), 24);
        assert_eq!(p.protocol(), PROTO_TCP);
        assert_eq!(p.src(), [10, 0, 0, 1]);
        assert!(p.verify_checksum());
        assert!(!p.is_fragment());
        assert_eq!(p.payload().len(), 4);
    }

    #[test]
    fn padding_is_not_payload() {
        let mut b = [0u8; 60];
        emit_header(&mut b, PROTO_TCP, [1; 4], [2; 4], 20);
        assert_eq!(Packet::new_checked(&b[..]).unwrap().payload().len(), 20);
    }

    #[test]
    fn refuses_bad_headers() {
        let b = header();
        assert_eq!(
            Packet::new_checked(&b[..19]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&b[..23]).unwrap_err(),
            WireError::Truncated
        );
        let mut v6 = b;
        v6[0] = 0x65;
        assert_eq!(
            Packet::new_checked(&v6[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut short_ihl = b;
        short_ihl[0] = 0x44;
        assert_eq!(
            Packet::new_checked(&short_ihl[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut small_total = b;
        small_total[3] = 10;
        assert_eq!(
            Packet::new_checked(&small_total[..]).unwrap_err(),
            WireError::Malformed
        );
    }

    #[test]
    fn rewrites_keep_checksum_valid() {
        let mut b = header();
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_src([192, 168, 1, 1]);
        p.set_dst([172, 16, 0, 9]);
        p.decrement_ttl();
        assert!(p.verify_checksum());
        assert_eq!(p.ttl(), 63);
    }

    #[test]
    fn fragments_are_seen() {
        let mut b = header();
        b[6] = 0x20; // MF
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
        let mut b = header();
        b[7] = 0x10; // offset
        assert!(Packet::new_checked(&b[..]).unwrap().is_fragment());
    }
}
