//! ICMPv4 (RFC 792): just enough to answer echo requests to owned addresses.
//!
//! ```text
//! +--------+--------+-----------------+
//! |  type  |  code  |    checksum     |  then type-specific data
//! +--------+--------+-----------------+
//! ```

use super::{get_u16, set_u16, WireError};
use crate::checksum;

/// Echo reply type.
pub const ECHO_REPLY: u8 = 0;
/// Echo request type.
pub const ECHO_REQUEST: u8 = 8;
/// Minimum header length (type, code, checksum, rest-of-header).
pub const HEADER_LEN: usize = 8;

/// A view of an ICMPv4 message.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf` after checking the 8-byte header fits.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if short.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self { buf })
    }
    /// Message type.
    pub fn msg_type(&self) -> u8 {
        self.buf.as_ref()[0]
    }
    /// Message code.
    pub fn code(&self) -> u8 {
        self.buf.as_ref()[1]
    }
    /// True if the checksum over the whole message verifies.
    pub fn verify_checksum(&self) -> bool {
        checksum::checksum(self.buf.as_ref()) == 0
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Turns an echo request into an echo reply in place (type 8 → 0),
    /// updating the checksum incrementally.
    pub fn make_echo_reply(&mut self) {
        let b = self.buf.as_mut();
        let old = u16::from_be_bytes([b[0], b[1]]);
        b[0] = ECHO_REPLY;
        let new = u16::from_be_bytes([b[0], b[1]]);
        let c = checksum::update_u16(get_u16(b, 2), old, new);
        set_u16(b, 2, c);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_reply_keeps_checksum_valid() {
        let mut b = [ECHO_REQUEST, 0, 0, 0, 0x12, 0x34, 0, 1, b'h', b'i'];
        let c = checksum::checksum(&b);
        set_u16(&mut b, 2, c);
        let mut p = Packet::new_checked(&mut b[..]).unwrap();
        assert!(p.verify_checksum());
        p.make_echo_reply();
        assert_eq!(p.msg_type(), ECHO_REPLY);
        assert!(p.verify_checksum());
    }
}
