//! UDP headers (RFC 768).
//!
//! ```text
//!  0      7 8     15 16    23 24    31
//! +--------+--------+--------+--------+
//! |   Source Port   |  Dest. Port     |
//! +--------+--------+--------+--------+
//! |     Length      |    Checksum     |
//! +--------+--------+--------+--------+
//! ```
//!
//! Over IPv4 a checksum of 0 means "none" (RFC 768): a rewrite must leave it
//! 0 rather than adjust it, and a computed checksum of 0 is sent as 0xffff.
//! Over IPv6 the checksum is mandatory (RFC 8200 §8.1).

use super::{get_u16, set_u16, WireError};
use crate::checksum;

/// Header length.
pub const HEADER_LEN: usize = 8;

/// A view of a UDP datagram (header and payload).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf`, checking the header fits and the length field is sane
    /// (at least 8, at most the buffer).
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`].
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = usize::from(get_u16(b, 4));
        if len < HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if len > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Self { buf })
    }
    /// Source port.
    pub fn src_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 0)
    }
    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        get_u16(self.buf.as_ref(), 2)
    }
    /// Length field.
    pub fn len_field(&self) -> u16 {
        get_u16(self.buf.as_ref(), 4)
    }
    /// Checksum as stored (0: none, IPv4 only).
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }
    /// True if the checksum verifies for an IPv4 pseudo-header (or is 0).
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let b = &self.buf.as_ref()[..usize::from(self.len_field())];
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::PROTO_UDP, self.len_field());
        checksum::finish(checksum::sum(b, acc)) == 0
    }
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// True if the checksum verifies for an IPv6 pseudo-header (mandatory
    /// there: 0 does not verify).
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let len = usize::from(self.len_field()).min(self.buf.as_ref().len());
        let b = &self.buf.as_ref()[..len];
        let acc = checksum::pseudo_header_v6(src, dst, super::ipv4::PROTO_UDP, len as u32);
        self.checksum() != 0 && checksum::finish(checksum::sum(b, acc)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Recomputes the checksum for an IPv6 pseudo-header (0 is sent as 0xffff).
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        set_u16(self.buf.as_mut(), 6, 0);
        let len = self.len_field();
        let b = &self.buf.as_ref()[..usize::from(len)];
        let acc = checksum::pseudo_header_v6(src, dst, super::ipv4::PROTO_UDP, u32::from(len));
        let c = match checksum::finish(checksum::sum(b, acc)) {
            0 => 0xffff,
            c => c,
        };
        set_u16(self.buf.as_mut(), 6, c);
    }
    fn adjust(&mut self, f: impl FnOnce(u16) -> u16) {
        let c = self.checksum();
        if c == 0 {
            return; // no checksum (IPv4): stays none
        }
        let mut n = f(c);
        if n == 0 {
            n = 0xffff;
        }
        set_u16(self.buf.as_mut(), 6, n);
    }
    /// Rewrites the source port (checksum adjusted unless absent).
    pub fn set_src_port(&mut self, p: u16) {
        let old = self.src_port();
        self.adjust(|c| checksum::update_u16(c, old, p));
        set_u16(self.buf.as_mut(), 0, p);
    }
    /// Rewrites the destination port (checksum adjusted unless absent).
    pub fn set_dst_port(&mut self, p: u16) {
        let old = self.dst_port();
        self.adjust(|c| checksum::update_u16(c, old, p));
        set_u16(self.buf.as_mut(), 2, p);
    }
    /// Adjusts the checksum for a pseudo-header IPv4 address change.
    pub fn adjust_checksum_for_addr(&mut self, old: [u8; 4], new: [u8; 4]) {
        self.adjust(|c| checksum::update_u32(c, old, new));
    }
    /// Adjusts the checksum for a pseudo-header IPv6 address change.
    pub fn adjust_checksum_for_addr_v6(&mut self, old: [u8; 16], new: [u8; 16]) {
        self.adjust(|c| checksum::update_u128(c, old, new));
    }
    /// Recomputes the checksum for an IPv4 pseudo-header (0 is sent as 0xffff).
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        set_u16(self.buf.as_mut(), 6, 0);
        let len = self.len_field();
        let b = &self.buf.as_ref()[..usize::from(len)];
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::PROTO_UDP, len);
        let c = match checksum::finish(checksum::sum(b, acc)) {
            0 => 0xffff,
            c => c,
        };
        set_u16(self.buf.as_mut(), 6, c);
    }
}

/// Writes an 8-byte UDP header (checksum 0: fill it afterwards if wanted).
pub fn emit_header(buf: &mut [u8], src_port: u16, dst_port: u16, payload_len: u16) {
    set_u16(buf, 0, src_port);
    set_u16(buf, 2, dst_port);
    set_u16(buf, 4, payload_len + HEADER_LEN as u16);
    set_u16(buf, 6, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn datagram(payload: &[u8]) -> Vec<u8> {
        let mut b = vec![0u8; HEADER_LEN + payload.len()];
        emit_header(&mut b, 5353, 53, payload.len() as u16);
        b[HEADER_LEN..].copy_from_slice(payload);
        b
    }

    #[test]
    fn parse_fill_verify_rewrite() {
        let mut b = datagram(b"query");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.len_field()), (5353, 53, 13));
        p.fill_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]);
        assert!(p.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]));
        p.set_src_port(40000);
        p.adjust_checksum_for_addr([10, 0, 0, 1], [192, 168, 0, 1]);
        assert!(p.verify_checksum_v4([192, 168, 0, 1], [10, 0, 0, 2]));
    }

    #[test]
    fn zero_checksum_stays_zero() {
        let mut b = datagram(b"x");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.set_dst_port(9);
        p.adjust_checksum_for_addr([1; 4], [2; 4]);
        assert_eq!(p.checksum(), 0);
        assert!(p.verify_checksum_v4([9; 4], [8; 4]), "no checksum verifies");
    }

    #[test]
    fn refuses_bad_lengths() {
        let b = datagram(b"abc");
        assert_eq!(
            Packet::new_checked(&b[..7]).unwrap_err(),
            WireError::Truncated
        );
        let mut short = b.clone();
        short[5] = 7;
        assert_eq!(
            Packet::new_checked(&short[..]).unwrap_err(),
            WireError::Malformed
        );
        let mut long = b.clone();
        long[5] = 200;
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            WireError::Truncated
        );
    }
}
