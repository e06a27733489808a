//! ARP for IPv4 over Ethernet (RFC 826); other hardware/protocol types are
//! refused as malformed.
//!
//! ```text
//!  0       2       4   5   6       8           14      18          24      28
//! +-------+-------+---+---+-------+-----------+-------+-----------+-------+
//! | htype | ptype |hln|pln|  op   | sender MAC|sndr IP| target MAC|tgt IP |
//! +-------+-------+---+---+-------+-----------+-------+-----------+-------+
//! ```

use super::{get_4, get_6, get_u16, set_u16, MacAddr, WireError};

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = 28;
/// ARP request opcode.
pub const OP_REQUEST: u16 = 1;
/// ARP reply opcode.
pub const OP_REPLY: u16 = 2;

/// A view of an Ethernet/IPv4 ARP packet.
#[derive(Debug)]
pub struct Packet<T: AsRef<[u8]>> {
    buf: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    /// Wraps `buf`, checking length and the Ethernet/IPv4 type fields.
    ///
    /// # Errors
    /// [`WireError::Truncated`] if short, [`WireError::Malformed`] if not
    /// Ethernet/IPv4 ARP.
    pub fn new_checked(buf: T) -> Result<Self, WireError> {
        let b = buf.as_ref();
        if b.len() < PACKET_LEN {
            return Err(WireError::Truncated);
        }
        if get_u16(b, 0) != 1 || get_u16(b, 2) != 0x0800 || b[4] != 6 || b[5] != 4 {
            return Err(WireError::Malformed);
        }
        Ok(Self { buf })
    }

    /// Wraps `buf` without checks, for writing a packet with [`Packet::emit`].
    /// Accessors may panic if `buf` is shorter than [`PACKET_LEN`].
    pub fn new_unchecked(buf: T) -> Self {
        Self { buf }
    }

    /// Operation (request 1, reply 2).
    pub fn op(&self) -> u16 {
        get_u16(self.buf.as_ref(), 6)
    }
    /// Sender hardware address.
    pub fn sender_mac(&self) -> MacAddr {
        get_6(self.buf.as_ref(), 8)
    }
    /// Sender protocol address.
    pub fn sender_ip(&self) -> [u8; 4] {
        get_4(self.buf.as_ref(), 14)
    }
    /// Target hardware address.
    pub fn target_mac(&self) -> MacAddr {
        get_6(self.buf.as_ref(), 18)
    }
    /// Target protocol address.
    pub fn target_ip(&self) -> [u8; 4] {
        get_4(self.buf.as_ref(), 24)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    /// Writes a whole Ethernet/IPv4 ARP packet.
    pub fn emit(
        &mut self,
        op: u16,
        sender_mac: MacAddr,
        sender_ip: [u8; 4],
        target_mac: MacAddr,
        target_ip: [u8; 4],
    ) {
        let b = self.buf.as_mut();
        set_u16(b, 0, 1);
        set_u16(b, 2, 0x0800);
        b[4] = 6;
        b[5] = 4;
        set_u16(b, 6, op);
        b[8..14].copy_from_slice(&sender_mac);
        b[14..18].copy_from_slice(&sender_ip);
        b[18..24].copy_from_slice(&target_mac);
        b[24..28].copy_from_slice(&target_ip);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emit_then_parse() {
        let mut b = [0u8; PACKET_LEN];
        Packet { buf: &mut b[..] }.emit(
            OP_REQUEST,
            [1, 2, 3, 4, 5, 6],
            [10, 0, 0, 1],
            [0; 6],
            [10, 0, 0, 2],
        );
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.op(), OP_REQUEST);
        assert_eq!(p.sender_mac(), [1, 2, 3, 4, 5, 6]);
        assert_eq!(p.sender_ip(), [10, 0, 0, 1]);
        assert_eq!(p.target_ip(), [10, 0, 0, 2]);
    }

    #[test]
    fn refuses_short_and_non_ipv4() {
        assert_eq!(
            Packet::new_checked(&[0u8; 27][..]).unwrap_err(),
            WireError::Truncated
        );
        let mut b = [0u8; PACKET_LEN];
        Packet { buf: &mut b[..] }.emit(OP_REQUEST, [0; 6], [0; 4], [0; 6], [0; 4]);
        b[2] = 0x86; // ptype 0x86dd
        assert_eq!(
            Packet::new_checked(&b[..]).unwrap_err(),
            WireError::Malformed
        );
    }
}
