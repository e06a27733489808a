//! Frame templates: Ethernet + IPv4 or IPv6 + TCP or UDP, everything but
//! the source MAC, the addresses, the ports and the checksums written once;
//! [`Template::write`] fills those in per frame, the checksums from partial
//! sums of the fixed part (no pass over the payload per frame).

use dataplane::addr::Addr;
use dataplane::session::Endpoint;
use dataplane::wire::ipv4;

use crate::gen::IF_MAC;

/// What the generated frames carry. TCP over IPv4 is the default and the
/// figure the targets are stated for; the others are reported beside it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Kind {
    /// TCP over IPv4: 64-byte frames (10 bytes of data; SYNs 60).
    Tcp4,
    /// UDP over IPv4: 64-byte frames (22 bytes of data).
    Udp4,
    /// TCP over IPv6: 84-byte frames (10 bytes of data; SYNs 74).
    Tcp6,
    /// UDP over IPv6: 84-byte frames (22 bytes of data).
    Udp6,
}

impl Kind {
    pub(crate) fn v6(self) -> bool {
        matches!(self, Self::Tcp6 | Self::Udp6)
    }

    pub(crate) fn proto(self) -> u8 {
        match self {
            Self::Tcp4 | Self::Tcp6 => ipv4::PROTO_TCP,
            Self::Udp4 | Self::Udp6 => ipv4::PROTO_UDP,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Tcp4 => "TCP/IPv4",
            Self::Udp4 => "UDP/IPv4",
            Self::Tcp6 => "TCP/IPv6",
            Self::Udp6 => "UDP/IPv6",
        }
    }

    /// Data bytes of an established frame: TCP 10, UDP 22 (both 64-byte
    /// frames over IPv4).
    pub(crate) fn payload(self) -> usize {
        if self.proto() == ipv4::PROTO_TCP {
            10
        } else {
            22
        }
    }

    /// The address `a` in this kind's family: itself, or embedded in
    /// fd77::/96 for IPv6 (so both families share one addressing plan).
    pub(crate) fn addr(self, a: [u8; 4]) -> Addr {
        if self.v6() {
            let mut o = [0u8; 16];
            o[..2].copy_from_slice(&[0xfd, 0x77]);
            o[12..].copy_from_slice(&a);
            Addr::v6(o)
        } else {
            Addr::v4(a)
        }
    }

    /// [`Self::addr`] of an endpoint's IPv4 address.
    pub(crate) fn endpoint(self, e: Endpoint) -> Endpoint {
        Endpoint::at(self.addr(e.ip.v4_bits()), e.port)
    }
}

fn sum16(b: &[u8]) -> u32 {
    b.chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum()
}

#[inline]
fn fold(mut s: u32) -> u16 {
    s = (s & 0xffff) + (s >> 16);
    s = (s & 0xffff) + (s >> 16);
    s as u16
}

/// A frame with everything but the MAC source, addresses, ports and
/// checksums filled in, and the partial checksums of the fixed part.
pub(crate) struct Template {
    f: [u8; 96],
    pub(crate) len: usize,
    v6: bool,
    /// Offset of the L4 header and of its checksum.
    l4: usize,
    l4_csum: usize,
    udp: bool,
    ip_sum: u32,
    l4_sum: u32,
}

impl Template {
    /// Ethernet + IPv4 + TCP with `payload` bytes, padded to 60 bytes.
    pub(crate) fn new(flags: u8, payload: usize, ttl: u8) -> Self {
        Self::of(Kind::Tcp4, flags, payload, ttl)
    }

    /// A frame of `kind` with `payload` bytes (`flags`: TCP flags, ignored
    /// for UDP); `ttl` is the IPv4 TTL or IPv6 hop limit.
    pub(crate) fn of(kind: Kind, flags: u8, payload: usize, ttl: u8) -> Self {
        let (v6, udp) = (kind.v6(), kind.proto() == ipv4::PROTO_UDP);
        let proto = kind.proto();
        let l3 = 14;
        let l4 = l3 + if v6 { 40 } else { 20 };
        let l4_len = if udp { 8 } else { 20 } + payload;
        let len = (l4 + l4_len).max(60);
        let mut f = [0u8; 96];
        f[0..6].copy_from_slice(&IF_MAC);
        if v6 {
            f[12..14].copy_from_slice(&0x86ddu16.to_be_bytes());
            f[14] = 0x60;
            f[18..20].copy_from_slice(&(l4_len as u16).to_be_bytes());
            f[20] = proto;
            f[21] = ttl;
        } else {
            f[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
            f[14] = 0x45;
            f[16..18].copy_from_slice(&((20 + l4_len) as u16).to_be_bytes());
            f[20] = 0x40; // DF
            f[22] = ttl;
            f[23] = proto;
        }
        let data = if udp {
            f[l4 + 4..l4 + 6].copy_from_slice(&(l4_len as u16).to_be_bytes());
            l4 + 8
        } else {
            f[l4 + 4..l4 + 8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
            f[l4 + 8..l4 + 12].copy_from_slice(&0x0506_0708u32.to_be_bytes());
            f[l4 + 12] = 5 << 4;
            f[l4 + 13] = flags;
            f[l4 + 14..l4 + 16].copy_from_slice(&64240u16.to_be_bytes());
            l4 + 20
        };
        for (i, b) in f[data..data + payload].iter_mut().enumerate() {
            *b = b"rvs-bench!"[i % 10];
        }
        let ip_sum = if v6 { 0 } else { sum16(&f[14..34]) };
        let l4_sum = sum16(&f[l4..l4 + l4_len]) + u32::from(proto) + l4_len as u32;
        Self {
            f,
            len,
            v6,
            l4,
            l4_csum: l4 + if udp { 6 } else { 16 },
            udp,
            ip_sum,
            l4_sum,
        }
    }

    #[inline]
    pub(crate) fn write(&self, d: &mut [u8], smac: [u8; 6], src: Endpoint, dst: Endpoint) {
        let d = &mut d[..self.len];
        d.copy_from_slice(&self.f[..self.len]);
        d[6..12].copy_from_slice(&smac);
        let a = if self.v6 {
            let (s, t) = (src.ip.octets(), dst.ip.octets());
            d[22..38].copy_from_slice(&s);
            d[38..54].copy_from_slice(&t);
            sum16(&s) + sum16(&t)
        } else {
            let (s, t) = (src.ip.v4_bits(), dst.ip.v4_bits());
            d[26..30].copy_from_slice(&s);
            d[30..34].copy_from_slice(&t);
            let a = sum16(&s) + sum16(&t);
            d[24..26].copy_from_slice(&(!fold(self.ip_sum + a)).to_be_bytes());
            a
        };
        let l4 = self.l4;
        d[l4..l4 + 2].copy_from_slice(&src.port.to_be_bytes());
        d[l4 + 2..l4 + 4].copy_from_slice(&dst.port.to_be_bytes());
        let mut c = !fold(self.l4_sum + a + u32::from(src.port) + u32::from(dst.port));
        if self.udp && c == 0 {
            c = 0xffff;
        }
        d[self.l4_csum..self.l4_csum + 2].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use dataplane::wire::{ipv6, tcp, udp};

    use super::*;

    /// Every kind's frames parse and carry valid checksums.
    #[test]
    fn templates_have_valid_checksums() {
        let (src, dst) = (
            Endpoint::new([11, 0, 0, 7], 4321),
            Endpoint::new([10, 77, 0, 100], 80),
        );
        for kind in [Kind::Tcp4, Kind::Udp4, Kind::Tcp6, Kind::Udp6] {
            let t = Template::of(kind, tcp::ACK, kind.payload(), 64);
            let mut f = [0u8; 96];
            t.write(
                &mut f,
                [2, 0, 0, 0, 0, 1],
                kind.endpoint(src),
                kind.endpoint(dst),
            );
            let f = &f[..t.len];
            let l4 = if kind.v6() {
                let ip = ipv6::Packet::new_checked(&f[14..]).unwrap();
                assert_eq!(ip.src(), kind.addr([11, 0, 0, 7]).octets());
                &f[54..54 + ip.payload_len()]
            } else {
                assert!(ipv4::Packet::new_checked(&f[14..])
                    .unwrap()
                    .verify_checksum());
                &f[34..]
            };
            let pseudo: u32 = if kind.v6() {
                sum16(&f[22..54])
            } else {
                sum16(&f[26..34])
            } + u32::from(kind.proto())
                + l4.len() as u32;
            assert_eq!(fold(pseudo + sum16(l4)), 0xffff, "{kind:?}");
            if kind.proto() == ipv4::PROTO_UDP {
                assert_eq!(udp::Packet::new_checked(l4).unwrap().dst_port(), 80);
            } else {
                assert_eq!(tcp::Packet::new_checked(l4).unwrap().dst_port(), 80);
            }
        }
        assert_eq!(Template::of(Kind::Tcp4, tcp::ACK, 10, 64).len, 64);
        assert_eq!(Template::of(Kind::Udp4, 0, 22, 64).len, 64);
    }
}
