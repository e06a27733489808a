//! Telling a real server behind FULLNAT who the client is.
//!
//! FULLNAT's servers see the local address, not the client. Per service
//! (`client_address` in the config), rvs can carry the client's address to
//! them in one of three ways:
//!
//! | mode | what the server gets | server side |
//! |---|---|---|
//! | `toa` | TCP option 254 on the packets that complete the handshake and carry the first data | a TOA kernel module |
//! | `proxy-v1` | HAProxy's PROXY protocol text header before the first payload byte | `listen ... proxy_protocol` (nginx, HAProxy, Envoy) |
//! | `proxy-v2` | the binary PROXY header, the same way | likewise |
//!
//! See docs/client-address.md for the layouts and the reasons.

/// How a service tells its servers the client's address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ClientAddress {
    /// Not at all (LVS's behaviour).
    #[default]
    None,
    /// The TOA TCP option (kind 254).
    Toa,
    /// PROXY protocol version 1 (text).
    ProxyV1,
    /// PROXY protocol version 2 (binary).
    ProxyV2,
}

impl ClientAddress {
    /// Every mode, in config-word order.
    pub const ALL: [Self; 4] = [Self::None, Self::Toa, Self::ProxyV1, Self::ProxyV2];

    /// The word the config and rvsadm use.
    #[must_use]
    pub const fn word(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Toa => "toa",
            Self::ProxyV1 => "proxy-v1",
            Self::ProxyV2 => "proxy-v2",
        }
    }

    /// The mode named `word`.
    #[must_use]
    pub fn from_word(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.word() == word)
    }

    /// True for the PROXY protocol modes (which shift sequence numbers).
    #[inline]
    #[must_use]
    pub const fn is_proxy(self) -> bool {
        matches!(self, Self::ProxyV1 | Self::ProxyV2)
    }
}

use super::seq_shift::{self, SeqShift};
use crate::checksum;
use crate::packet::PacketBuf;
use crate::session::ext::{SessionExt, CLIENT_ISN, HEADER_SENT, SERVER_ISN};
use crate::session::{Direction, Endpoint};
use crate::wire::tcp::opt::MSS as OPT_MSS;
use crate::wire::{ethernet, ipv4, tcp, udp};

/// TCP option kind of TOA (the TOA kernel modules' `TCPOPT_TOA`).
pub const TOA_KIND: u8 = 254;
/// TOA option length for an IPv4 client: kind, length, port, address.
pub const TOA_LEN_V4: usize = 8;
/// TOA option length for an IPv6 client (DPVS's `TCPOLEN_IP6_TOA`).
pub const TOA_LEN_V6: usize = 20;
/// The PROXY protocol v2 signature (HAProxy's proxy-protocol.txt, 2.2).
pub const PROXY_V2_SIG: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest header rvs inserts: a PROXY v1 line for two IPv6
/// addresses (`PROXY TCP6 ` + 2 × 39 + 2 × 5 + 3 spaces + CRLF = 104,
/// the specification's bound is 107).
pub const MAX_INSERT: usize = 108;
/// The longest a TCP header may be (data offset 15).
const TCP_MAX_HEADER: usize = 60;

/// The bytes to insert for a session, built on the stack.
#[derive(Clone, Copy)]
pub struct Insert {
    buf: [u8; MAX_INSERT],
    len: usize,
}

impl Insert {
    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl std::fmt::Debug for Insert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Insert").field(&self.bytes()).finish()
    }
}

/// The TOA option for `client`: kind 254, then the port and the address in
/// network order (8 bytes for IPv4, 20 for IPv6: DPVS's layout, see
/// docs/client-address.md).
#[must_use]
pub fn toa_option(client: Endpoint) -> Insert {
    let mut buf = [0u8; MAX_INSERT];
    buf[0] = TOA_KIND;
    buf[2..4].copy_from_slice(&client.port.to_be_bytes());
    let len = if let Some(v4) = client.ip.to_v4() {
        buf[4..8].copy_from_slice(&v4);
        TOA_LEN_V4
    } else {
        buf[4..20].copy_from_slice(&client.ip.octets());
        TOA_LEN_V6
    };
    buf[1] = len as u8;
    Insert { buf, len }
}

/// The PROXY protocol header (v1 text or v2 binary, by `mode`) saying that
/// `client` connected to `vip` over TCP; `None` for the other modes.
#[must_use]
pub fn proxy_header(mode: ClientAddress, client: Endpoint, vip: Endpoint) -> Option<Insert> {
    proxy_header_for(mode, client, vip, false)
}

/// [`proxy_header`] for a TCP (`dgram` false) or UDP (`dgram` true, v2
/// only: `0x12`/`0x22`) session.
#[must_use]
pub fn proxy_header_for(
    mode: ClientAddress,
    client: Endpoint,
    vip: Endpoint,
    dgram: bool,
) -> Option<Insert> {
    let mut buf = [0u8; MAX_INSERT];
    let v4 = client.ip.to_v4().zip(vip.ip.to_v4());
    let len = match mode {
        ClientAddress::ProxyV1 if !dgram => {
            use std::io::Write as _;
            let mut w = std::io::Cursor::new(&mut buf[..]);
            let fam = if v4.is_some() { "TCP4" } else { "TCP6" };
            let written = write!(
                w,
                "PROXY {fam} {} {} {} {}\r\n",
                client.ip.ip(),
                vip.ip.ip(),
                client.port,
                vip.port
            );
            debug_assert!(written.is_ok(), "a v1 line fits MAX_INSERT");
            w.position() as usize
        }
        ClientAddress::ProxyV2 => {
            buf[..12].copy_from_slice(&PROXY_V2_SIG);
            buf[12] = 0x21; // version 2, PROXY
            let at = if let Some((c, v)) = v4 {
                buf[13] = if dgram { 0x12 } else { 0x11 }; // TCP/UDP over IPv4
                buf[16..20].copy_from_slice(&c);
                buf[20..24].copy_from_slice(&v);
                24
            } else {
                buf[13] = if dgram { 0x22 } else { 0x21 }; // TCP/UDP over IPv6
                buf[16..32].copy_from_slice(&client.ip.octets());
                buf[32..48].copy_from_slice(&vip.ip.octets());
                48
            };
            buf[at..at + 2].copy_from_slice(&client.port.to_be_bytes());
            buf[at + 2..at + 4].copy_from_slice(&vip.port.to_be_bytes());
            let addr_len = (at + 4 - 16) as u16;
            buf[14..16].copy_from_slice(&addr_len.to_be_bytes());
            at + 4
        }
        _ => return None,
    };
    Some(Insert { buf, len })
}

/// What a session's mode inserts for `client` reaching `vip` over `proto`
/// (UDP: PROXY v2 only).
#[must_use]
pub fn insertion(
    mode: ClientAddress,
    client: Endpoint,
    vip: Endpoint,
    proto: u8,
) -> Option<Insert> {
    let dgram = proto == ipv4::PROTO_UDP;
    match mode {
        ClientAddress::Toa if !dgram => Some(toa_option(client)),
        _ => proxy_header_for(mode, client, vip, dgram),
    }
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Length of the transport payload of the IP packet `l3` whose TCP header
/// starts at `l4`, by the IP header's own length (not the frame's: an
/// Ethernet frame may be padded).
fn ip_end(l3: &[u8]) -> usize {
    let end = if l3.first().map(|b| b >> 4) == Some(4) {
        usize::from(u16::from_be_bytes([l3[2], l3[3]]))
    } else {
        40 + usize::from(u16::from_be_bytes([l3[4], l3[5]]))
    };
    end.min(l3.len())
}

/// What [`on_packet`] asks the pipeline to do next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Send the packet as it is now.
    Send,
    /// Insert the session's bytes ([`insertion`]) into it first
    /// ([`insert`]): as a TCP option (TOA) or in front of the payload.
    Insert,
}

/// The per-packet work of a session whose mode is not `None`, on its
/// TCP segment (`l3` the IP packet, its TCP header at `l4`) going `dir`,
/// before any reshape: remember the initial sequence numbers, clamp the
/// server's MSS so an insertion always fits, shift sequence and
/// acknowledgement numbers once a PROXY header is in the stream, and say
/// whether this packet gets the insertion. `insert_len` is the length of
/// the session's insertion.
pub fn on_packet(
    mode: ClientAddress,
    ext: &mut SessionExt,
    l3: &mut [u8],
    l4: usize,
    dir: Direction,
    insert_len: usize,
) -> Next {
    let end = ip_end(l3);
    let Some(t) = l3.get_mut(l4..end) else {
        return Next::Send;
    };
    if t.len() < tcp::MIN_HEADER_LEN {
        return Next::Send;
    }
    let flags = tcp::TcpFlags::from_bits_retain(t[13]);
    let (syn, ack, rst) = (
        flags.contains(tcp::SYN),
        flags.contains(tcp::ACK),
        flags.contains(tcp::RST),
    );
    let seq = u32_at(t, 4);
    let hlen = (usize::from(t[12] >> 4) * 4).min(t.len());
    let payload = t.len() - hlen;
    match dir {
        Direction::Inbound => {
            if syn && !ack {
                // The client's SYN: its stream starts after it. A
                // retransmitted SYN names the same ISN.
                let delta = if mode.is_proxy() {
                    insert_len as u32
                } else {
                    0
                };
                ext.to_server = SeqShift::new(seq.wrapping_add(1), delta);
                ext.flags |= CLIENT_ISN;
                return Next::Send;
            }
            if !ext.has(CLIENT_ISN) {
                return Next::Send;
            }
            match mode {
                ClientAddress::Toa => {
                    // The packets acknowledging the server's SYN before it
                    // sent data: the handshake's ACK, the first data.
                    let first = ext.has(SERVER_ISN)
                        && ack
                        && !syn
                        && !rst
                        && u32_at(t, 8) == ext.server_next;
                    if first {
                        Next::Insert
                    } else {
                        Next::Send
                    }
                }
                ClientAddress::ProxyV1 | ClientAddress::ProxyV2 => {
                    let base = ext.to_server.base;
                    if seq == base && payload > 0 && !syn {
                        // The first payload byte: the header goes in front
                        // of it (again, if this is a retransmission).
                        return Next::Insert;
                    }
                    if seq == base && !ext.has(HEADER_SENT) {
                        // No byte of the stream yet (the handshake's ACK,
                        // a FIN or RST before any data): nothing to shift.
                        return Next::Send;
                    }
                    seq_shift::rewrite(t, Some(&ext.to_server), None);
                    Next::Send
                }
                ClientAddress::None => Next::Send,
            }
        }
        Direction::Outbound => {
            if syn && ack {
                ext.server_next = seq.wrapping_add(1);
                ext.flags |= SERVER_ISN;
                clamp_mss(t, insert_len);
            }
            if mode.is_proxy() && ext.has(CLIENT_ISN) {
                seq_shift::rewrite(t, None, Some(&ext.to_server));
            }
            Next::Send
        }
    }
}

/// Lowers the MSS option of the server's SYN-ACK (TCP header at the start
/// of `t`) by `by` bytes: the client sizes its segments by it, so a segment
/// that gets `by` more bytes on the way to the server still fits the
/// server's MTU. The checksum is updated for the changed word.
fn clamp_mss(t: &mut [u8], by: usize) {
    let mut walk = tcp::OptionWalk::new(t);
    while let Some(o) = walk.next(t) {
        if o.kind != OPT_MSS || o.len != 4 {
            continue;
        }
        let at = o.at;
        let old = u16::from_be_bytes([t[at + 2], t[at + 3]]);
        let new = old.saturating_sub(by as u16).max(64);
        // The option may start at an odd offset: update the checksum over
        // the aligned words that hold the value (a byte past the buffer's
        // end counts as the checksum's zero padding).
        let lo = (at + 2) & !1;
        let hi = ((at + 5) & !1).min(t.len());
        let mut before = [0u8; 4];
        before[..hi - lo].copy_from_slice(&t[lo..hi]);
        t[at + 2..at + 4].copy_from_slice(&new.to_be_bytes());
        let mut after = [0u8; 4];
        after[..hi - lo].copy_from_slice(&t[lo..hi]);
        let c = checksum::apply(
            u16::from_be_bytes([t[16], t[17]]),
            checksum::delta(&before, &after),
        );
        t[16..18].copy_from_slice(&c.to_be_bytes());
        return;
    }
}

/// Why [`insert`] could not insert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoRoom {
    /// A TCP header already too long for the option (60 bytes at most).
    Header,
    /// No room left in the buffer, or the packet would exceed `mtu`.
    Buffer,
}

/// Inserts `bytes` into the untagged Ethernet frame `pkt` (IPv4 or IPv6,
/// TCP or UDP): as TCP options at the end of the TCP header when `as_option`
/// (TOA; `bytes` a multiple of 4), else in front of the payload (PROXY;
/// a UDP datagram's length and checksum follow, a datagram without
/// checksum keeps none).
/// The IP length (and IPv4 header checksum), the data offset and the TCP
/// checksum (recomputed in full: this happens once or twice per
/// connection) are fixed; Ethernet padding after the IP packet is dropped.
/// Nothing changes when it returns `Err`.
///
/// # Errors
/// [`NoRoom`] as it says.
pub fn insert(
    pkt: &mut PacketBuf<'_>,
    bytes: &[u8],
    as_option: bool,
    mtu: u16,
) -> Result<(), NoRoom> {
    const L2: usize = ethernet::HEADER_LEN;
    let n = bytes.len();
    let f = pkt.frame();
    if f.len() < L2 + 20 {
        return Err(NoRoom::Buffer);
    }
    let l3 = &f[L2..];
    let v4 = l3[0] >> 4 == 4;
    let l4 = if v4 {
        usize::from(l3[0] & 0x0f) * 4
    } else {
        40
    };
    let end = ip_end(l3);
    let is_udp = if v4 { l3[9] } else { l3[6] } == ipv4::PROTO_UDP;
    let min = if is_udp {
        udp::HEADER_LEN
    } else {
        tcp::MIN_HEADER_LEN
    };
    if l3.len() < l4 + min || end < l4 + min {
        return Err(NoRoom::Buffer);
    }
    let hlen = if is_udp {
        udp::HEADER_LEN
    } else {
        usize::from(l3[l4 + 12] >> 4) * 4
    };
    if is_udp && as_option {
        return Err(NoRoom::Header);
    }
    if as_option && (hlen + n > TCP_MAX_HEADER || !n.is_multiple_of(4)) {
        return Err(NoRoom::Header);
    }
    if end + n > usize::from(mtu) || !pkt.set_len(L2 + end + n) {
        return Err(NoRoom::Buffer);
    }
    let f = pkt.frame_mut();
    let at = L2 + l4 + hlen;
    f.copy_within(at..L2 + end, at + n);
    f[at..at + n].copy_from_slice(bytes);
    let l3 = &mut f[L2..];
    if as_option {
        l3[l4 + 12] = (((hlen + n) / 4) as u8) << 4 | (l3[l4 + 12] & 0x0f);
    }
    let new_end = end + n;
    let no_udp_checksum = is_udp && v4 && l3[l4 + 6..l4 + 8] == [0, 0];
    if is_udp {
        l3[l4 + 4..l4 + 6].copy_from_slice(&((new_end - l4) as u16).to_be_bytes());
    }
    if v4 {
        l3[2..4].copy_from_slice(&(new_end as u16).to_be_bytes());
        l3[10..12].copy_from_slice(&[0, 0]);
        let c = checksum::checksum(&l3[..l4]);
        l3[10..12].copy_from_slice(&c.to_be_bytes());
        let (mut s, mut d) = ([0; 4], [0; 4]);
        s.copy_from_slice(&l3[12..16]);
        d.copy_from_slice(&l3[16..20]);
        if is_udp {
            if let (false, Ok(mut u)) = (
                no_udp_checksum,
                udp::Packet::new_checked(&mut l3[l4..new_end]),
            ) {
                u.fill_checksum_v4(s, d);
            }
        } else if let Ok(mut t) = tcp::Packet::new_checked(&mut l3[l4..new_end]) {
            t.fill_checksum_v4(s, d);
        }
    } else {
        l3[4..6].copy_from_slice(&((new_end - 40) as u16).to_be_bytes());
        let (mut s, mut d) = ([0; 16], [0; 16]);
        s.copy_from_slice(&l3[8..24]);
        d.copy_from_slice(&l3[24..40]);
        if is_udp {
            if let Ok(mut u) = udp::Packet::new_checked(&mut l3[l4..new_end]) {
                u.fill_checksum_v6(s, d);
            }
        } else if let Ok(mut t) = tcp::Packet::new_checked(&mut l3[l4..new_end]) {
            t.fill_checksum_v6(s, d);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::session::Addr;

    fn v6(s: &str, port: u16) -> Endpoint {
        Endpoint::at(Addr::from(s.parse::<std::net::IpAddr>().unwrap()), port)
    }

    #[test]
    fn words_round_trip() {
        for m in ClientAddress::ALL {
            assert_eq!(ClientAddress::from_word(m.word()), Some(m));
        }
        assert_eq!(ClientAddress::from_word("proxy"), None);
    }

    #[test]
    fn toa_layouts_are_dpvs_ones() {
        let t = toa_option(Endpoint::new([192, 0, 2, 7], 0x1234));
        assert_eq!(t.bytes(), [254, 8, 0x12, 0x34, 192, 0, 2, 7]);
        let t = toa_option(v6("2001:db8::7", 443));
        assert_eq!(&t.bytes()[..4], &[254, 20, 1, 0xbb]);
        assert_eq!(t.bytes()[4..], v6("2001:db8::7", 0).ip.octets());
    }

    #[test]
    fn the_longest_v1_line_fits() {
        let a = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
        let b = v6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd", 65535);
        let h = proxy_header(ClientAddress::ProxyV1, a, b).unwrap();
        assert_eq!(h.bytes().len(), 104);
        assert!(h.bytes().starts_with(b"PROXY TCP6 ffff:"));
        assert!(h.bytes().ends_with(b" 65535 65535\r\n"));
        let h = proxy_header(ClientAddress::ProxyV2, a, b).unwrap();
        assert_eq!(h.bytes().len(), 52);
        assert_eq!(&h.bytes()[12..16], &[0x21, 0x21, 0, 36]);
        assert!(proxy_header(ClientAddress::Toa, a, b).is_none());
    }

    proptest! {
        // The MSS clamp keeps the checksum valid wherever the option sits
        // (after 0..3 NOPs: odd offsets too).
        #[test]
        fn mss_clamp_keeps_the_checksum(nops in 0usize..4, mss in 100u16..9000, by in 0usize..110) {
            let mut opts = vec![1u8; nops];
            opts.extend_from_slice(&[OPT_MSS, 4]);
            opts.extend_from_slice(&mss.to_be_bytes());
            while opts.len() % 4 != 0 {
                opts.push(0);
            }
            let mut t = vec![0u8; 20];
            t[12] = (((20 + opts.len()) / 4) as u8) << 4;
            t[13] = (tcp::SYN | tcp::ACK).bits();
            t.extend_from_slice(&opts);
            t.extend_from_slice(b"x");
            let (s, d) = ([10, 0, 0, 1], [10, 0, 0, 2]);
            tcp::Packet::new_checked(&mut t[..]).unwrap().fill_checksum_v4(s, d);
            clamp_mss(&mut t, by);
            let got = u16::from_be_bytes([t[20 + nops + 2], t[20 + nops + 3]]);
            prop_assert_eq!(got, mss.saturating_sub(by as u16).max(64));
            prop_assert!(tcp::Packet::new_checked(&t[..]).unwrap().verify_checksum_v4(s, d));
        }
    }
}
