//! TCP headers (RFC 9293).
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! |          Source Port          |       Destination Port        |
//! |                        Sequence Number                        |
//! |                    Acknowledgment Number                      |
//! |  Data |       |C|E|U|A|P|R|S|F|                               |
//! | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//! |           Checksum            |         Urgent Pointer        |
//! +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//! ```
//!
//! The checksum covers the IPv4 pseudo-header, so rewriting an address in the
//! IP header also means [`Packet::adjust_checksum_for_addr`] here.

use super::{get_u16, set_u16, WireError};
use crate::checksum;

/// Minimum header length.
pub const MIN_HEADER_LEN: usize = 20;
bitflags::bitflags! {
    /// The flag byte of a TCP header (RFC 9293 §3.1, RFC 3168 for ECE/CWR).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct TcpFlags: u8 {
        /// No more data from the sender.
        const FIN = 0x01;
        /// Synchronize sequence numbers.
        const SYN = 0x02;
        /// Reset the connection.
        const RST = 0x04;
        /// Push.
        const PSH = 0x08;
        /// The acknowledgement field is significant.
        const ACK = 0x10;
        /// The urgent pointer is significant.
        const URG = 0x20;
        /// ECN echo.
        const ECE = 0x40;
        /// Congestion window reduced.
        const CWR = 0x80;
    }
}

/// FIN flag.
pub const FIN: TcpFlags = TcpFlags::FIN;
/// SYN flag.
pub const SYN: TcpFlags = TcpFlags::SYN;
/// RST flag.
pub const RST: TcpFlags = TcpFlags::RST;
/// PSH flag.
pub const PSH: TcpFlags = TcpFlags::PSH;
/// ACK flag.
pub const ACK: TcpFlags = TcpFlags::ACK;
/// URG flag.
pub const URG: TcpFlags = TcpFlags::URG;
/// ECE flag.
pub const ECE: TcpFlags = TcpFlags::ECE;
/// CWR flag.
pub const CWR: TcpFlags = TcpFlags::CWR;

/// A view of a TCP segment (header and payload).
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf`, checking that the header (with options) fits.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if short, [`WireError::Malformed`] if the data
    /// offset is below 5.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < MIN_HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let off = usize::from(b[12] >> 4) * 4;
        if off < MIN_HEADER_LEN {
            return Err(WireError::Malformed);
        }
        if off > b.len() {
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
    /// The flag byte (FIN, SYN, RST, PSH, ACK, URG, ECE, CWR).
    pub fn flags(&self) -> TcpFlags {
        TcpFlags::from_bits_retain(self.buf.as_ref()[13])
    }
    /// Checksum as stored.
    pub fn checksum(&self) -> u16 {
        get_u16(self.buf.as_ref(), 16)
    }
    /// True if the checksum verifies for the given IPv4 addresses.
    pub fn verify_checksum_v4(&self, src: [u8; 4], dst: [u8; 4]) -> bool {
        let b = self.buf.as_ref();
        let Ok(len) = u16::try_from(b.len()) else {
            return false;
        };
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::PROTO_TCP, len);
        checksum::finish(checksum::sum(b, acc)) == 0
    }
    /// True if the checksum verifies for the given IPv6 addresses.
    pub fn verify_checksum_v6(&self, src: [u8; 16], dst: [u8; 16]) -> bool {
        let b = self.buf.as_ref();
        let Ok(len) = u32::try_from(b.len()) else {
            return false;
        };
        let acc = checksum::pseudo_header_v6(src, dst, super::ipv4::PROTO_TCP, len);
        checksum::finish(checksum::sum(b, acc)) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_checksum(&mut self, c: u16) {
        set_u16(self.buf.as_mut(), 16, c);
    }
    /// Rewrites the source port, updating the checksum incrementally.
    pub fn set_src_port(&mut self, p: u16) {
        let c = checksum::update_u16(self.checksum(), self.src_port(), p);
        set_u16(self.buf.as_mut(), 0, p);
        self.set_checksum(c);
    }
    /// Rewrites the destination port, updating the checksum incrementally.
    pub fn set_dst_port(&mut self, p: u16) {
        let c = checksum::update_u16(self.checksum(), self.dst_port(), p);
        set_u16(self.buf.as_mut(), 2, p);
        self.set_checksum(c);
    }
    /// Adjusts the checksum for a pseudo-header address change `old` → `new`.
    pub fn adjust_checksum_for_addr(&mut self, old: [u8; 4], new: [u8; 4]) {
        let c = checksum::update_u32(self.checksum(), old, new);
        self.set_checksum(c);
    }
    /// Adjusts the checksum for a pseudo-header IPv6 address change.
    pub fn adjust_checksum_for_addr_v6(&mut self, old: [u8; 16], new: [u8; 16]) {
        let c = checksum::update_u128(self.checksum(), old, new);
        self.set_checksum(c);
    }
    /// Recomputes the checksum from scratch for the given IPv6 addresses.
    pub fn fill_checksum_v6(&mut self, src: [u8; 16], dst: [u8; 16]) {
        self.set_checksum(0);
        let b = self.buf.as_ref();
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        let acc = checksum::pseudo_header_v6(src, dst, super::ipv4::PROTO_TCP, len);
        let c = checksum::finish(checksum::sum(b, acc));
        self.set_checksum(c);
    }
    /// Recomputes the checksum from scratch for the given IPv4 addresses.
    pub fn fill_checksum_v4(&mut self, src: [u8; 4], dst: [u8; 4]) {
        self.set_checksum(0);
        let b = self.buf.as_ref();
        let len = u16::try_from(b.len()).unwrap_or(u16::MAX);
        let acc = checksum::pseudo_header_v4(src, dst, super::ipv4::PROTO_TCP, len);
        let c = checksum::finish(checksum::sum(b, acc));
        self.set_checksum(c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_refuse() {
        let mut b = [0u8; 24];
        b[0..2].copy_from_slice(&1234u16.to_be_bytes());
        b[2..4].copy_from_slice(&80u16.to_be_bytes());
        b[12] = 5 << 4;
        b[13] = SYN.bits();
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!((p.src_port(), p.dst_port(), p.flags()), (1234, 80, SYN));
        assert_eq!(
            Packet::new_checked(&b[..19]).unwrap_err(),
            WireError::Truncated
        );
        b[12] = 4 << 4;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
        b[12] = 8 << 4; // 32-byte header in a 24-byte buffer
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Truncated
        );
    }

    #[test]
    fn fill_then_verify() {
        let mut b = [0u8; 27];
        b[12] = 5 << 4;
        b[20..].copy_from_slice(b"payload");
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        p.fill_checksum_v4([1, 2, 3, 4], [5, 6, 7, 8]);
        assert!(p.verify_checksum_v4([1, 2, 3, 4], [5, 6, 7, 8]));
        assert!(!p.verify_checksum_v4([1, 2, 3, 5], [5, 6, 7, 8]));
        let (a, b6) = ([0xfd; 16], [0x20; 16]);
        p.fill_checksum_v6(a, b6);
        assert!(p.verify_checksum_v6(a, b6));
        p.adjust_checksum_for_addr_v6(a, [7; 16]);
        assert!(p.verify_checksum_v6([7; 16], b6));
    }
}
