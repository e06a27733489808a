//! IPv6 fixed headers (RFC 8200 §3).
//!
//! ```text
//! +-------+---------------+---------------------------------------+
//! |Version| Traffic Class |              Flow Label               |
//! +-------+---------------+-------+---------------+---------------+
//! |         Payload Length        |  Next Header  |   Hop Limit   |
//! +-------------------------------+---------------+---------------+
//! |                     Source Address (128 bits)                 |
//! |                  Destination Address (128 bits)               |
//! +---------------------------------------------------------------+
//! ```
//!
//! There is no header checksum; the upper-layer checksums cover the
//! addresses through the pseudo-header. Extension headers are not walked
//! here: the pipeline treats a next header other than TCP, UDP, ICMPv6 or
//! a fragment header as unsupported, and counts it. A fragment header
//! (RFC 8200 §4.5) directly after the fixed header is read by
//! [`Fragment::new_checked`]:
//!
//! ```text
//! +---------------+---------------+-------------------------+-+-+-+
//! |  Next Header  |   Reserved    |      Fragment Offset    |Res|M|
//! +---------------+---------------+-------------------------+---+-+
//! |                         Identification                        |
//! +---------------------------------------------------------------+
//! ```

use super::{get_u16, set_u16, WireError};

/// Fixed header length.
pub const HEADER_LEN: usize = 40;
/// Next header value of ICMPv6.
pub const NEXT_ICMPV6: u8 = 58;
/// Next header value of the fragment extension header.
pub const NEXT_FRAGMENT: u8 = 44;
/// Next-header value of a routing header (RFC 8200 4.4: type 0, RFC 5095
/// deprecated; 2 Mobile IPv6; 3 RPL; 4 segment routing).
pub const NEXT_ROUTING: u8 = 43;

/// A view of an IPv6 packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf`: version 6, the fixed header and the payload length fit.
    ///
    /// # Errors
    /// [`WireError::Truncated`] or [`WireError::Malformed`].
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        if b[0] >> 4 != 6 {
            return Err(WireError::Malformed);
        }
        if HEADER_LEN + usize::from(get_u16(b, 4)) > b.len() {
            return Err(WireError::Truncated);
        }
        Ok(Self { buf })
    }
    /// Payload length.
    pub fn payload_len(&self) -> usize {
        usize::from(get_u16(self.buf.as_ref(), 4))
    }
    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[6]
    }
    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[7]
    }
    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        addr(self.buf.as_ref(), 8)
    }
    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        addr(self.buf.as_ref(), 24)
    }
    /// The payload, up to the payload length.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..HEADER_LEN + self.payload_len()]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Sets the source address.
    pub fn set_src(&mut self, a: [u8; 16]) {
        self.buf.as_mut()[8..24].copy_from_slice(&a);
    }
    /// Sets the destination address.
    pub fn set_dst(&mut self, a: [u8; 16]) {
        self.buf.as_mut()[24..40].copy_from_slice(&a);
    }
    /// Decrements the hop limit (no checksum to fix).
    pub fn decrement_hop_limit(&mut self) {
        let b = self.buf.as_mut();
        b[7] = b[7].saturating_sub(1);
    }
    /// The payload, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let n = self.payload_len();
        &mut self.buf.as_mut()[HEADER_LEN..HEADER_LEN + n]
    }
}

/// Length of the fragment extension header.
pub const FRAGMENT_LEN: usize = 8;

/// The fragment header of an IPv6 packet whose next header is
/// [`NEXT_FRAGMENT`], as fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment {
    /// The protocol of the fragmented datagram.
    pub next_header: u8,
    /// Offset of this fragment's data in the datagram, in bytes.
    pub offset: usize,
    /// More fragments follow (M).
    pub more: bool,
    /// Identification.
    pub ident: u32,
    /// Bytes of data after the fragment header.
    pub data_len: usize,
}

impl Fragment {
    /// The fragment header of `p` (fixed header checked), if its next
    /// header is [`NEXT_FRAGMENT`] and the header fits in the payload.
    #[must_use]
    pub fn new_checked<T: AsRef<[u8]>>(p: &Packet<T>) -> Option<Self> {
        if p.next_header() != NEXT_FRAGMENT || p.payload_len() < FRAGMENT_LEN {
            return None;
        }
        let h = &p.buf.as_ref()[HEADER_LEN..HEADER_LEN + FRAGMENT_LEN];
        let off = get_u16(h, 2);
        Some(Self {
            next_header: h[0],
            offset: usize::from(off & 0xfff8),
            more: off & 1 != 0,
            ident: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
            data_len: p.payload_len() - FRAGMENT_LEN,
        })
    }
}

fn addr(b: &[u8], at: usize) -> [u8; 16] {
    let mut a = [0u8; 16];
    a.copy_from_slice(&b[at..at + 16]);
    a
}

/// Writes a fixed IPv6 header (traffic class and flow label 0, hop limit 64).
pub fn emit_header(
    buf: &mut [u8],
    next_header: u8,
    src: [u8; 16],
    dst: [u8; 16],
    payload_len: u16,
) {
    buf[0] = 0x60;
    buf[1..4].fill(0);
    set_u16(buf, 4, payload_len);
    buf[6] = next_header;
    buf[7] = 64;
    buf[8..24].copy_from_slice(&src);
    buf[24..40].copy_from_slice(&dst);
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const B: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

    #[test]
    fn emit_parse_rewrite() {
        let mut b = [0u8; 48];
        emit_header(&mut b, 6, A, B, 8);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert_eq!(
            (
                p.src(),
                p.dst(),
                p.next_header(),
                p.payload().len(),
                p.hop_limit()
            ),
            (A, B, 6, 8, 64)
        );
        p.set_src(B);
        p.set_dst(A);
        p.decrement_hop_limit();
        assert_eq!((p.src(), p.dst(), p.hop_limit()), (B, A, 63));
    }

    #[test]
    fn fragment_header_fields() {
        let mut b = [0u8; 64];
        emit_header(&mut b, NEXT_FRAGMENT, A, B, 24);
        b[40..48].copy_from_slice(&[17, 0, 0x05, 0xa9, 0xde, 0xad, 0xbe, 0xef]);
        let f = Fragment::new_checked(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        assert_eq!(
            f,
            Fragment {
                next_header: 17,
                offset: 0x05a8,
                more: true,
                ident: 0xdead_beef,
                data_len: 16
            }
        );
        emit_header(&mut b, 17, A, B, 24);
        assert!(Fragment::new_checked(&Packet::new_checked(&b[..]).unwrap()).is_none());
        emit_header(&mut b, NEXT_FRAGMENT, A, B, 4);
        assert!(Fragment::new_checked(&Packet::new_checked(&b[..]).unwrap()).is_none());
    }

    #[test]
    fn refuses_bad_headers() {
        let mut b = [0u8; 48];
        emit_header(&mut b, 6, A, B, 8);
        assert_eq!(
            Packet::new_checked(&b[..39]).unwrap_err(),
            WireError::Truncated
        );
        assert_eq!(
            Packet::new_checked(&b[..47]).unwrap_err(),
            WireError::Truncated
        );
        b[0] = 0x45;
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
