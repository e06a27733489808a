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

/// Option kinds (RFC 9293 §3.1 and the RFCs named).
pub mod opt {
    /// End of the option list.
    pub const END: u8 = 0;
    /// No operation (padding).
    pub const NOP: u8 = 1;
    /// Maximum segment size (length 4).
    pub const MSS: u8 = 2;
    /// Window scale, RFC 7323 (length 3).
    pub const WSCALE: u8 = 3;
    /// SACK permitted, RFC 2018 (length 2).
    pub const SACK_PERM: u8 = 4;
    /// SACK blocks, RFC 2018 (length 2 + 8 per block).
    pub const SACK: u8 = 5;
    /// Timestamps, RFC 7323 (length 10).
    pub const TS: u8 = 8;
}

/// One option of a TCP header: its kind, the offset of its kind byte from
/// the header's start, and its whole length (kind and length bytes
/// included). The next option starts at `at + len`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpOption {
    /// The kind byte (see [`opt`]).
    pub kind: u8,
    /// Offset of the kind byte.
    pub at: usize,
    /// Length, at least 2, within the header.
    pub len: usize,
}

/// A walk over the options of the TCP header at the start of a buffer,
/// the one every option reader and rewriter in rvs uses. It holds
/// offsets, not the buffer, so a caller can rewrite an option between
/// two steps:
///
/// ```
/// # use rvs_dataplane::wire::tcp::{opt, OptionWalk};
/// let mut t = [0u8; 32];
/// t[12] = 8 << 4; // 32-byte header: 12 bytes of options
/// t[20..32].copy_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
/// let mut walk = OptionWalk::new(&t);
/// while let Some(o) = walk.next(&t) {
///     if o.kind == opt::TS {
///         t[o.at..o.at + o.len].fill(opt::NOP);
///     }
/// }
/// assert_eq!(&t[20..32], &[opt::NOP; 12]);
/// ```
///
/// NOPs are skipped. The walk ends at END, at the header's end (its data
/// offset, or the buffer's end if that comes first), and at a malformed
/// option (no length byte, a length below 2, or one that runs past the
/// header's end): what came before still counts, as the kernel's
/// `tcp_parse_options` reads them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptionWalk {
    at: usize,
    end: usize,
}

impl OptionWalk {
    /// The walk over the options of the TCP header at the start of `t`
    /// (none if `t` is shorter than [`MIN_HEADER_LEN`]).
    #[inline]
    #[must_use]
    pub fn new(t: &[u8]) -> Self {
        let end = match t.get(12) {
            Some(b) if t.len() >= MIN_HEADER_LEN => (usize::from(b >> 4) * 4).min(t.len()),
            _ => 0,
        };
        Self {
            at: MIN_HEADER_LEN,
            end,
        }
    }

    /// The header's end the walk stops at: its data offset in bytes, at
    /// most `t.len()` (0 for a buffer shorter than a header).
    #[inline]
    #[must_use]
    pub fn header_end(&self) -> usize {
        self.end
    }

    /// The next option of `t` (the buffer given to [`OptionWalk::new`],
    /// rewritten or not in between), or `None` where the walk ends.
    #[inline]
    #[allow(clippy::should_implement_trait)] // it takes the buffer: not an Iterator
    pub fn next(&mut self, t: &[u8]) -> Option<TcpOption> {
        while self.at < self.end {
            let at = self.at;
            match t[at] {
                opt::END => break,
                opt::NOP => self.at += 1,
                kind => {
                    let len = usize::from(*t.get(at + 1)?);
                    if len < 2 || at + len > self.end {
                        break;
                    }
                    self.at = at + len;
                    return Some(TcpOption { kind, at, len });
                }
            }
        }
        self.at = self.end;
        None
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

    /// Every option of `t` by the walk.
    fn walk(t: &[u8]) -> Vec<TcpOption> {
        let mut w = OptionWalk::new(t);
        std::iter::from_fn(|| w.next(t)).collect()
    }

    fn header(opts: &[u8]) -> Vec<u8> {
        let mut t = vec![0u8; 20];
        t[12] = (((20 + opts.len()).div_ceil(4)) as u8) << 4;
        t.extend_from_slice(opts);
        t.resize(20 + opts.len().div_ceil(4) * 4, 0);
        t
    }

    #[test]
    fn the_walk_skips_nops_and_stops_at_end() {
        let t = header(&[
            1, 2, 4, 5, 0xb4, 1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8, 0, 3, 3, 7,
        ]);
        let got = walk(&t);
        let kinds: Vec<_> = got.iter().map(|o| (o.kind, o.at, o.len)).collect();
        assert_eq!(kinds, [(opt::MSS, 21, 4), (opt::TS, 27, 10)]);
    }

    #[test]
    fn a_malformed_option_ends_the_walk_keeping_what_came_before() {
        // A length below 2.
        assert_eq!(walk(&header(&[3, 3, 7, 5, 1])).len(), 1);
        // A length past the header's end.
        assert_eq!(walk(&header(&[3, 3, 7, 8, 10, 0, 0, 0])).len(), 1);
        // No length byte: the kind is the header's last byte.
        assert_eq!(walk(&header(&[1, 1, 1, 8])).len(), 0);
        // A data offset past the buffer: the buffer's end is the header's.
        let mut t = header(&[2, 4, 5, 0xb4, 8, 10, 0, 0]);
        t[12] = 15 << 4;
        assert_eq!(OptionWalk::new(&t).header_end(), 28);
        assert_eq!(walk(&t).len(), 1);
        // No header at all, or a data offset below 5.
        assert_eq!(walk(&t[..19]).len(), 0);
        t[12] = 4 << 4;
        assert_eq!(walk(&t).len(), 0);
    }

    proptest::proptest! {
        /// The walk never reads out of bounds, returns options in order
        /// inside the header, and ends for good.
        #[test]
        fn any_bytes_walk_in_bounds(body in proptest::collection::vec(proptest::num::u8::ANY, 0..64)) {
            let mut w = OptionWalk::new(&body);
            let mut last = 0;
            while let Some(o) = w.next(&body) {
                proptest::prop_assert!(o.at >= last.max(MIN_HEADER_LEN));
                proptest::prop_assert!(o.len >= 2 && o.at + o.len <= w.header_end());
                proptest::prop_assert!(o.kind != opt::END && o.kind != opt::NOP);
                last = o.at + o.len;
            }
            proptest::prop_assert_eq!(w.next(&body), None);
        }
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
