//! Ethernet II frames (no 802.1Q yet: tagged frames show their TPID as the
//! ethertype and are dropped by the pipeline as unsupported).
//!
//! ```text
//!  0                   6                  12      14
//! +-------------------+-------------------+-------+---------
//! |  destination MAC  |    source MAC     | type  | payload
//! +-------------------+-------------------+-------+---------
//! ```

use super::{get_6, get_u16, set_u16, MacAddr, WireError};

/// Length of the Ethernet II header.
pub const HEADER_LEN: usize = 14;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
/// Ethertype of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// A view of an Ethernet II frame.
#[derive(Debug)]
pub struct Frame<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wraps `buf` after checking it holds a whole header.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if `buf` is shorter than [`HEADER_LEN`].
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        if buf.as_ref().len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        Ok(Self { buf })
    }

    /// Destination MAC.
    pub fn dst(&self) -> MacAddr {
        get_6(self.buf.as_ref(), 0)
    }

    /// Source MAC.
    pub fn src(&self) -> MacAddr {
        get_6(self.buf.as_ref(), 6)
    }

    /// Ethertype.
    pub fn ethertype(&self) -> u16 {
        get_u16(self.buf.as_ref(), 12)
    }

    /// The bytes after the header.
    pub fn payload(&self) -> &[u8] {
        &self.buf.as_ref()[HEADER_LEN..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    /// Sets the destination MAC.
    pub fn set_dst(&mut self, mac: MacAddr) {
        self.buf.as_mut()[0..6].copy_from_slice(&mac);
    }

    /// Sets the source MAC.
    pub fn set_src(&mut self, mac: MacAddr) {
        self.buf.as_mut()[6..12].copy_from_slice(&mac);
    }

    /// Sets the ethertype.
    pub fn set_ethertype(&mut self, t: u16) {
        set_u16(self.buf.as_mut(), 12, t);
    }

    /// The bytes after the header, writable.
    pub fn payload_mut(&mut self) -> &mut [u8] {
        &mut self.buf.as_mut()[HEADER_LEN..]
    }
}
