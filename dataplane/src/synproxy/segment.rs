//! The TCP segments of a SYN proxy: reading a segment's options, writing
//! whole frames (the SYN-ACK answered to a client, the SYN sent to a real
//! server, the client's ACK rebuilt for the server), and the per-packet
//! adjustments of a proxied connection beyond its sequence numbers (those
//! are [`crate::xmit::seq_shift`]'s): timestamps and window scale.
//!
//! Options written, in Linux's order (`tcp_options_write`): MSS; then
//! SACK-permitted and timestamps (`SACK_PERM TS`, or `NOP NOP TS`, or
//! `NOP NOP SACK_PERM`); then `NOP WSCALE`.

use crate::checksum;
use crate::session::Endpoint;
use crate::wire::{ethernet, ipv4, ipv6, tcp, MacAddr};

use crate::wire::tcp::opt::{
    MSS as OPT_MSS, NOP as OPT_NOP, SACK_PERM as OPT_SACK_PERM, TS as OPT_TS, WSCALE as OPT_WSCALE,
};

/// The options of a segment that matter to a SYN proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Options {
    /// Maximum segment size.
    pub mss: Option<u16>,
    /// Window scale shift.
    pub wscale: Option<u8>,
    /// SACK-permitted.
    pub sack_perm: bool,
    /// Timestamps: TSval, TSecr.
    pub ts: Option<(u32, u32)>,
}

/// The options of the TCP header at the start of `t` (a malformed option
/// ends the walk; what was read before it counts).
#[must_use]
pub fn options(t: &[u8]) -> Options {
    let mut o = Options::default();
    let mut walk = tcp::OptionWalk::new(t);
    while let Some(opt) = walk.next(t) {
        let v = &t[opt.at + 2..opt.at + opt.len];
        match (opt.kind, opt.len) {
            (OPT_MSS, 4) => o.mss = Some(u16::from_be_bytes([v[0], v[1]])),
            (OPT_WSCALE, 3) => o.wscale = Some(v[0]),
            (OPT_SACK_PERM, 2) => o.sack_perm = true,
            (OPT_TS, 10) => {
                o.ts = Some((
                    u32::from_be_bytes([v[0], v[1], v[2], v[3]]),
                    u32::from_be_bytes([v[4], v[5], v[6], v[7]]),
                ));
            }
            _ => {}
        }
    }
    o
}

/// Option bytes to write (at most 40, a multiple of 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OptBytes {
    buf: [u8; 40],
    len: usize,
}

impl OptBytes {
    /// The bytes.
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    fn push(&mut self, b: &[u8]) {
        self.buf[self.len..self.len + b.len()].copy_from_slice(b);
        self.len += b.len();
    }
}

/// The options of a SYN or SYN-ACK: `mss` always, the others if given.
#[must_use]
pub fn syn_options(
    mss: u16,
    wscale: Option<u8>,
    sack_perm: bool,
    ts: Option<(u32, u32)>,
) -> OptBytes {
    let mut o = OptBytes {
        buf: [0; 40],
        len: 0,
    };
    o.push(&[OPT_MSS, 4]);
    o.push(&mss.to_be_bytes());
    match (ts, sack_perm) {
        (Some(ts), sack) => {
            o.push(if sack {
                &[OPT_SACK_PERM, 2]
            } else {
                &[OPT_NOP, OPT_NOP]
            });
            push_ts(&mut o, ts);
        }
        (None, true) => o.push(&[OPT_NOP, OPT_NOP, OPT_SACK_PERM, 2]),
        (None, false) => {}
    }
    if let Some(w) = wscale {
        o.push(&[OPT_NOP, OPT_WSCALE, 3, w]);
    }
    o
}

/// The options of an ACK: `NOP NOP TS` with timestamps, none without.
#[must_use]
pub fn ack_options(ts: Option<(u32, u32)>) -> OptBytes {
    let mut o = OptBytes {
        buf: [0; 40],
        len: 0,
    };
    if let Some(ts) = ts {
        o.push(&[OPT_NOP, OPT_NOP]);
        push_ts(&mut o, ts);
    }
    o
}

fn push_ts(o: &mut OptBytes, (val, ecr): (u32, u32)) {
    o.push(&[OPT_TS, 10]);
    o.push(&val.to_be_bytes());
    o.push(&ecr.to_be_bytes());
}

/// A TCP segment to write as a whole frame.
#[derive(Debug, Clone, Copy)]
pub struct Segment<'a> {
    /// Destination MAC.
    pub dst_mac: MacAddr,
    /// Source MAC.
    pub src_mac: MacAddr,
    /// Source address and port (its family is the frame's).
    pub src: Endpoint,
    /// Destination address and port.
    pub dst: Endpoint,
    /// Sequence number.
    pub seq: u32,
    /// Acknowledgement number (sent as 0 without the ACK flag).
    pub ack: u32,
    /// Flags.
    pub flags: tcp::TcpFlags,
    /// Window field.
    pub window: u16,
    /// TTL or hop limit.
    pub ttl: u8,
    /// Options.
    pub options: &'a OptBytes,
    /// Payload.
    pub payload: &'a [u8],
}

/// The length of `s` as a frame.
#[must_use]
pub fn frame_len(s: &Segment<'_>) -> usize {
    let ip = if s.src.ip.is_v4() {
        ipv4::MIN_HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    ethernet::HEADER_LEN + ip + tcp::MIN_HEADER_LEN + s.options.len + s.payload.len()
}

/// Writes `s` as an untagged Ethernet frame at the start of `buf` (at least
/// [`frame_len`] long; `s.payload` must not lie in `buf`), checksums
/// computed, and returns its length.
pub fn write(buf: &mut [u8], s: &Segment<'_>) -> usize {
    let len = frame_len(s);
    let f = &mut buf[..len];
    f[..6].copy_from_slice(&s.dst_mac);
    f[6..12].copy_from_slice(&s.src_mac);
    let v4 = s.src.ip.is_v4();
    let ethertype = if v4 {
        ethernet::ETHERTYPE_IPV4
    } else {
        ethernet::ETHERTYPE_IPV6
    };
    f[12..14].copy_from_slice(&ethertype.to_be_bytes());
    let l3 = &mut f[ethernet::HEADER_LEN..];
    let ip_len = if v4 {
        ipv4::MIN_HEADER_LEN
    } else {
        ipv6::HEADER_LEN
    };
    let tcp_len = l3.len() - ip_len;
    let hlen = tcp::MIN_HEADER_LEN + s.options.len;
    {
        let t = &mut l3[ip_len..];
        t[..2].copy_from_slice(&s.src.port.to_be_bytes());
        t[2..4].copy_from_slice(&s.dst.port.to_be_bytes());
        t[4..8].copy_from_slice(&s.seq.to_be_bytes());
        let ack = if s.flags.contains(tcp::ACK) { s.ack } else { 0 };
        t[8..12].copy_from_slice(&ack.to_be_bytes());
        t[12] = ((hlen / 4) as u8) << 4;
        t[13] = s.flags.bits();
        t[14..16].copy_from_slice(&s.window.to_be_bytes());
        t[16..20].fill(0);
        t[20..hlen].copy_from_slice(s.options.bytes());
        t[hlen..].copy_from_slice(s.payload);
    }
    if let (Some(src), Some(dst)) = (s.src.ip.to_v4(), s.dst.ip.to_v4()) {
        ipv4::emit_header(l3, ipv4::PROTO_TCP, src, dst, tcp_len as u16);
        l3[8] = s.ttl;
        l3[6] = 0x40; // DF
        l3[10..12].fill(0);
        let c = checksum::checksum(&l3[..ipv4::MIN_HEADER_LEN]);
        l3[10..12].copy_from_slice(&c.to_be_bytes());
        if let Ok(mut t) = tcp::Packet::new_checked(&mut l3[ip_len..]) {
            t.fill_checksum_v4(src, dst);
        }
    } else {
        let (src, dst) = (s.src.ip.octets(), s.dst.ip.octets());
        l3[..4].copy_from_slice(&[0x60, 0, 0, 0]);
        l3[4..6].copy_from_slice(&(tcp_len as u16).to_be_bytes());
        l3[6] = ipv4::PROTO_TCP;
        l3[7] = s.ttl;
        l3[8..24].copy_from_slice(&src);
        l3[24..40].copy_from_slice(&dst);
        if let Ok(mut t) = tcp::Packet::new_checked(&mut l3[ip_len..]) {
            t.fill_checksum_v6(src, dst);
        }
    }
    len
}

/// What [`adjust`] does to a segment of a proxied connection besides its
/// sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Adjust {
    /// Added to the TSval (server to client: the server's clock as the
    /// client was told it).
    pub tsval_add: u32,
    /// Taken from the TSecr (client to server: the echo of the server's
    /// clock).
    pub tsecr_sub: u32,
    /// The window field's scale as sent and as the receiver reads it:
    /// the field becomes `window << from >> to` (capped at 65535).
    pub window: Option<(u8, u8)>,
}

#[inline]
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Applies `a` to the TCP header at the start of `t`, updating the
/// checksum incrementally.
pub fn adjust(t: &mut [u8], a: &Adjust) {
    if t.len() < tcp::MIN_HEADER_LEN {
        return;
    }
    let mut sum = 0u32;
    if let Some((from, to)) = a.window {
        let old = u16::from_be_bytes([t[14], t[15]]);
        let w = (u64::from(old) << from >> to).min(0xffff) as u16;
        if w != old {
            t[14..16].copy_from_slice(&w.to_be_bytes());
            sum += checksum::delta_u16(old, w);
        }
    }
    if a.tsval_add != 0 || a.tsecr_sub != 0 {
        let mut walk = tcp::OptionWalk::new(t);
        while let Some(o) = walk.next(t) {
            if o.kind != OPT_TS || o.len != 10 {
                continue;
            }
            let at = o.at;
            let (v, e) = (get_u32(t, at + 2), get_u32(t, at + 6));
            let (nv, ne) = (v.wrapping_add(a.tsval_add), e.wrapping_sub(a.tsecr_sub));
            // The option may sit at any offset: sum the bytes as they fall
            // in 16-bit words.
            let (lo, odd) = ((at + 2) & !1, (at + 2) % 2 == 1);
            if lo + 10 > t.len() && odd {
                break;
            }
            let mut before = [0u8; 10];
            let n = if odd { 10 } else { 8 };
            before[..n].copy_from_slice(&t[lo..lo + n]);
            t[at + 2..at + 6].copy_from_slice(&nv.to_be_bytes());
            t[at + 6..at + 10].copy_from_slice(&ne.to_be_bytes());
            let mut after = [0u8; 10];
            after[..n].copy_from_slice(&t[lo..lo + n]);
            sum += checksum::delta(&before, &after);
            break;
        }
    }
    if sum != 0 {
        let c = checksum::apply(u16::from_be_bytes([t[16], t[17]]), sum);
        t[16..18].copy_from_slice(&c.to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::addr::Addr;
    use crate::wire::tcp::opt::END as OPT_END;

    fn ep(ip: [u8; 4], port: u16) -> Endpoint {
        Endpoint::new(ip, port)
    }

    #[test]
    fn written_options_read_back() {
        for ts in [None, Some((5, 6))] {
            for sack in [false, true] {
                for ws in [None, Some(0), Some(7), Some(14)] {
                    let o = syn_options(1460, ws, sack, ts);
                    assert_eq!(o.len % 4, 0);
                    let seg = Segment {
                        dst_mac: [1; 6],
                        src_mac: [2; 6],
                        src: ep([10, 0, 0, 1], 80),
                        dst: ep([10, 0, 0, 2], 4000),
                        seq: 1,
                        ack: 2,
                        flags: tcp::SYN | tcp::ACK,
                        window: 65535,
                        ttl: 64,
                        options: &o,
                        payload: &[],
                    };
                    let mut buf = [0u8; 128];
                    let n = write(&mut buf, &seg);
                    let l3 = &buf[14..n];
                    let ip = ipv4::Packet::new_checked(l3).unwrap();
                    assert!(ip.verify_checksum());
                    let t = tcp::Packet::new_checked(ip.payload()).unwrap();
                    assert!(t.verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]));
                    let got = options(ip.payload());
                    assert_eq!(
                        got,
                        Options {
                            mss: Some(1460),
                            wscale: ws,
                            sack_perm: sack,
                            ts
                        }
                    );
                }
            }
        }
    }

    #[test]
    fn v6_frames_check() {
        let a = Addr::from("2001:db8::1".parse::<std::net::IpAddr>().unwrap());
        let b = Addr::from("2001:db8::2".parse::<std::net::IpAddr>().unwrap());
        let o = ack_options(Some((1, 2)));
        let seg = Segment {
            dst_mac: [1; 6],
            src_mac: [2; 6],
            src: Endpoint::at(a, 1),
            dst: Endpoint::at(b, 2),
            seq: 1,
            ack: 2,
            flags: tcp::ACK,
            window: 100,
            ttl: 64,
            options: &o,
            payload: b"hello",
        };
        let mut buf = [0u8; 128];
        let n = write(&mut buf, &seg);
        let ip = ipv6::Packet::new_checked(&buf[14..n]).unwrap();
        let t = tcp::Packet::new_checked(ip.payload()).unwrap();
        assert!(t.verify_checksum_v6(a.octets(), b.octets()));
        assert_eq!(&ip.payload()[32..], b"hello");
    }

    proptest! {
        // Timestamps and window move as asked wherever the option sits,
        // and the incremental checksum equals a full one.
        #[test]
        fn adjust_keeps_the_checksum(
            nops in 0usize..4, val in any::<u32>(), ecr in any::<u32>(),
            add in any::<u32>(), sub in any::<u32>(), win in any::<u16>(),
            from in 0u8..15, to in 0u8..15,
        ) {
            let mut opts = OptBytes { buf: [0; 40], len: 0 };
            for _ in 0..nops {
                opts.push(&[OPT_NOP]);
            }
            push_ts(&mut opts, (val, ecr));
            while !opts.len.is_multiple_of(4) {
                opts.push(&[OPT_END]);
            }
            let seg = Segment {
                dst_mac: [1; 6], src_mac: [2; 6],
                src: ep([10, 0, 0, 1], 80), dst: ep([10, 0, 0, 2], 4000),
                seq: 1, ack: 2, flags: tcp::ACK, window: win, ttl: 64,
                options: &opts, payload: b"xyz",
            };
            let mut buf = [0u8; 128];
            let n = write(&mut buf, &seg);
            let t = &mut buf[34..n];
            adjust(t, &Adjust { tsval_add: add, tsecr_sub: sub, window: Some((from, to)) });
            prop_assert_eq!(options(t).ts, Some((val.wrapping_add(add), ecr.wrapping_sub(sub))));
            let w = u16::from_be_bytes([t[14], t[15]]);
            prop_assert_eq!(u64::from(w), (u64::from(win) << from >> to).min(0xffff));
            prop_assert!(tcp::Packet::new_checked(&t[..]).unwrap().verify_checksum_v4([10, 0, 0, 1], [10, 0, 0, 2]));
        }
    }
}
