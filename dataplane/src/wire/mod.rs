//! Zero-copy views over packet bytes.
//!
//! Each protocol module has a `Packet<T: AsRef<[u8]>>` wrapper with a
//! `new_checked` constructor that validates lengths once, after which the
//! field accessors index without further checks failing (they slice within
//! the validated length). No `unsafe`, no allocation, no `#[repr(packed)]`
//! structs over buffers: fields are read and written at named byte offsets,
//! in network byte order, as smoltcp's `wire` does.
//!
//! Direction-neutral names (`src`, `dst`) are used only here; everything above
//! `wire` speaks FULLNAT's vocabulary (client, vip, laddr, rs).

pub mod arp;
pub mod ethernet;
pub mod icmp;
pub mod icmpv6;
pub mod ipv4;
pub mod ipv6;
pub mod tcp;
pub mod udp;

pub use arp::Packet as ArpPacket;
pub use ethernet::Frame as EthernetFrame;
pub use icmp::Packet as IcmpPacket;
pub use ipv4::Packet as Ipv4Packet;
pub use ipv6::Packet as Ipv6Packet;
pub use tcp::Packet as TcpPacket;
pub use udp::Packet as UdpPacket;

/// Why a header could not be viewed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The buffer is shorter than the header (or than a length field claims).
    #[error("truncated header")]
    Truncated,
    /// A field holds a value the protocol does not allow (version, header length).
    #[error("malformed header")]
    Malformed,
}

/// A MAC address.
pub type MacAddr = [u8; 6];

/// The Ethernet broadcast address.
pub const BROADCAST_MAC: MacAddr = [0xff; 6];

// The readers index once (one bounds check, then fixed-size reads) and are
// always inlined: `get_4` as four indexed reads was an out-of-line call of
// ~12 instructions, four times an established IPv4 packet.
#[inline(always)]
pub(crate) fn get_u16(b: &[u8], at: usize) -> u16 {
    let s = &b[at..at + 2];
    u16::from_be_bytes([s[0], s[1]])
}

#[inline]
pub(crate) fn set_u16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

#[inline(always)]
pub(crate) fn get_4(b: &[u8], at: usize) -> [u8; 4] {
    let s = &b[at..at + 4];
    [s[0], s[1], s[2], s[3]]
}

#[inline(always)]
pub(crate) fn get_6(b: &[u8], at: usize) -> [u8; 6] {
    let s = &b[at..at + 6];
    [s[0], s[1], s[2], s[3], s[4], s[5]]
}
