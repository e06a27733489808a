//! "Port unreachable" for a new connection no real server can take, as the
//! kernel's `ip_vs_leave` answers it: a TCP SYN or UDP datagram to a
//! service whose scheduler finds no usable server (none, all weight 0, all
//! over their thresholds) is dropped and answered with ICMP destination
//! unreachable / port unreachable (type 3 code 3), or ICMPv6 destination
//! unreachable / port unreachable (type 1 code 4) for an IPv6 service, so
//! the client fails at once ("connection refused") instead of retrying
//! until its timeout. Other failures to create a connection (no local
//! port, a full session table) drop silently, as the kernel's do
//! (`ignored < 0`).
//!
//! The answers are rate-limited as the kernel limits its ICMP errors:
//! per client address a token bucket, by default of one message a second
//! with a burst of six (`net.ipv4.icmp_ratelimit` = 1000 ms,
//! `XRLIM_BURST_FACTOR` 6; a service's `icmp_rate` and `icmp_burst` change
//! them, `icmp_rate = 0` sends none: see [`crate::limits`]; the same for
//! IPv6, where the kernel also scales the interval by the route's
//! prefix length: rvs does not), and overall 1000 messages a second with a
//! burst of 50 (`net.ipv4.icmp_msgs_per_sec`, `icmp_msgs_burst`), here per
//! worker. Client addresses share [`PEER_SLOTS`] buckets by hash: a client
//! whose slot another took starts afresh with a full burst (as a new
//! `inet_peer` does). An answered packet counts as `port_unreachable`, a
//! rate-limited one as `no_real_server`.
//!
//! The message quotes the packet as the kernel does: IPv4 up to 576 bytes
//! in all, IPv6 up to the minimum MTU (1280).

use crate::addr::Addr;
use crate::checksum;
use crate::packet::PacketBuf;
use crate::time::Millis;
use crate::wire::{ethernet, icmpv6, ipv4, ipv6, MacAddr};

/// Client-address buckets per worker.
pub const PEER_SLOTS: usize = 1024;
/// One message per client per this many milliseconds.
pub const PEER_INTERVAL_MS: u64 = 1000;
/// Messages a client may get at once.
pub const PEER_BURST: u64 = 6;
/// Messages per second per worker, all clients together.
pub const GLOBAL_PER_SEC: u64 = 1000;
/// Messages a worker may send at once.
pub const GLOBAL_BURST: u64 = 50;

/// ICMP destination unreachable.
pub const ICMP_DEST_UNREACH: u8 = 3;
/// ICMP code: port unreachable.
pub const ICMP_PORT_UNREACH: u8 = 3;
/// ICMPv6 destination unreachable.
pub const ICMPV6_DEST_UNREACH: u8 = 1;
/// ICMPv6 code: port unreachable.
pub const ICMPV6_PORT_UNREACH: u8 = 4;

/// Largest IPv4 ICMP error datagram (RFC 1812, the kernel's `icmp_send`).
const V4_MAX: usize = 576;
/// Largest ICMPv6 error (the IPv6 minimum MTU).
const V6_MAX: usize = 1280;

#[derive(Debug, Clone, Copy, Default)]
struct Peer {
    addr: Addr,
    used: bool,
    /// Credit in thousandths of a message.
    tokens: u64,
    last: u64,
}

/// The rate limits of one worker's answers.
#[derive(Debug)]
pub struct Limiter {
    peers: Vec<Peer>,
    /// Credit in messages times 1000 (one message per `1000 / GLOBAL_PER_SEC` ms).
    global: u64,
    global_last: u64,
}

impl Default for Limiter {
    fn default() -> Self {
        Self {
            peers: vec![Peer::default(); PEER_SLOTS],
            global: GLOBAL_BURST * 1000,
            global_last: 0,
        }
    }
}

impl Limiter {
    /// True if a message to `client` may go now (and takes its credit), by
    /// the kernel's defaults ([`PEER_INTERVAL_MS`], [`PEER_BURST`]).
    pub fn allow(&mut self, client: Addr, now: Millis) -> bool {
        self.allow_at(
            client,
            now,
            (1000 / PEER_INTERVAL_MS) as u32,
            PEER_BURST as u32,
        )
    }

    /// True if a message to `client` may go now (and takes its credit),
    /// `rate` messages a second per client with a burst of `burst` (a
    /// service's `icmp_rate`, `icmp_burst`; a rate of 0 sends none).
    pub fn allow_at(&mut self, client: Addr, now: Millis, rate: u32, burst: u32) -> bool {
        if rate == 0 {
            return false;
        }
        let now = now.0;
        let g = (self.global + now.saturating_sub(self.global_last) * GLOBAL_PER_SEC)
            .min(GLOBAL_BURST * 1000);
        self.global_last = now;
        self.global = g;
        if g < 1000 {
            return false;
        }
        // Credit in thousandths of a message: `rate` a millisecond.
        let cap = u64::from(burst.max(1)) * 1000;
        let h = client.fold().wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32;
        let p = &mut self.peers[h as usize % PEER_SLOTS];
        if !p.used || p.addr != client {
            *p = Peer {
                addr: client,
                used: true,
                tokens: cap,
                last: now,
            };
        }
        let t = p
            .tokens
            .saturating_add(now.saturating_sub(p.last).saturating_mul(u64::from(rate)))
            .min(cap);
        p.last = now;
        if t < 1000 {
            p.tokens = t;
            return false;
        }
        p.tokens = t - 1000;
        self.global -= 1000;
        true
    }
}

/// Turns the IPv4 or IPv6 frame in `pkt` (untagged Ethernet) into a port
/// unreachable from its destination to its source, sent back to the MAC it
/// came from by `our_mac`. False (the frame unchanged or unusable) if it is
/// not IP or the buffer has no room for the message.
pub fn write(pkt: &mut PacketBuf<'_>, our_mac: MacAddr) -> bool {
    const L2: usize = ethernet::HEADER_LEN;
    let f = pkt.frame();
    if f.len() < L2 + ipv4::MIN_HEADER_LEN {
        return false;
    }
    let v6 = f[12..14] == ethernet::ETHERTYPE_IPV6.to_be_bytes();
    let avail = f.len() - L2;
    let (ip_len, head, max) = if v6 {
        if avail < ipv6::HEADER_LEN {
            return false;
        }
        let payload = usize::from(u16::from_be_bytes([f[L2 + 4], f[L2 + 5]]));
        (ipv6::HEADER_LEN + payload, ipv6::HEADER_LEN + 8, V6_MAX)
    } else {
        let total = usize::from(u16::from_be_bytes([f[L2 + 2], f[L2 + 3]]));
        (total, ipv4::MIN_HEADER_LEN + 8, V4_MAX)
    };
    let quoted = ip_len.min(avail).min(max - head);
    let mac = <[u8; 6]>::try_from(&f[6..12]).unwrap_or_default();
    if !pkt.set_len(L2 + head + quoted) {
        return false;
    }
    let f = pkt.frame_mut();
    let ip = L2 + if v6 { 8 } else { 12 };
    let alen = if v6 { 16 } else { 4 };
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..alen].copy_from_slice(&f[ip..ip + alen]);
    dst[..alen].copy_from_slice(&f[ip + alen..ip + 2 * alen]);
    // The quote moves back behind the new headers (memmove: it overlaps).
    f.copy_within(L2..L2 + quoted, L2 + head);
    let msg_len = 8 + quoted;
    let at = L2 + head - 8;
    if v6 {
        ipv6::emit_header(&mut f[L2..], icmpv6::NEXT_HEADER, dst, src, msg_len as u16);
        let m = &mut f[at..at + msg_len];
        m[0] = ICMPV6_DEST_UNREACH;
        m[1] = ICMPV6_PORT_UNREACH;
        m[4..8].fill(0);
        icmpv6::fill_checksum(m, dst, src);
    } else {
        let (d4, s4) = (
            [dst[0], dst[1], dst[2], dst[3]],
            [src[0], src[1], src[2], src[3]],
        );
        ipv4::emit_header(&mut f[L2..], ipv4::PROTO_ICMP, d4, s4, msg_len as u16);
        let m = &mut f[at..at + msg_len];
        m[0] = ICMP_DEST_UNREACH;
        m[1] = ICMP_PORT_UNREACH;
        m[2..8].fill(0);
        let c = checksum::checksum(m);
        m[2..4].copy_from_slice(&c.to_be_bytes());
    }
    f[0..6].copy_from_slice(&mac);
    f[6..12].copy_from_slice(&our_mac);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::ethernet::ETHERTYPE_IPV4;

    const CLIENT: [u8; 4] = [10, 0, 0, 10];
    const VIP: [u8; 4] = [10, 0, 0, 100];
    const US: MacAddr = [2, 0, 0, 0, 0, 1];

    fn udp4(payload: usize) -> Vec<u8> {
        let mut v = vec![0u8; 2048];
        let f = &mut v[128..];
        f[0..6].copy_from_slice(&US);
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 10]);
        f[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        ipv4::emit_header(&mut f[14..], 17, CLIENT, VIP, (8 + payload) as u16);
        f[34..36].copy_from_slice(&5555u16.to_be_bytes());
        f[36..38].copy_from_slice(&53u16.to_be_bytes());
        for (i, b) in f[42..42 + payload].iter_mut().enumerate() {
            *b = i as u8;
        }
        v
    }

    #[test]
    fn a_small_datagram_grows_into_a_port_unreachable_quoting_all_of_it() {
        let mut v = udp4(4);
        let orig = v[128..128 + 46].to_vec();
        let mut p = PacketBuf::new(&mut v, 128, 46);
        assert!(write(&mut p, US));
        let f = p.frame();
        assert_eq!(f.len(), 14 + 28 + 32);
        assert_eq!(
            &f[0..6],
            &[2, 0, 0, 0, 0, 10],
            "back to the MAC it came from"
        );
        assert_eq!(&f[6..12], &US);
        let ip = ipv4::Packet::new_checked(&f[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!((ip.src(), ip.dst(), ip.protocol()), (VIP, CLIENT, 1));
        let m = &f[34..];
        assert_eq!((m[0], m[1]), (3, 3));
        assert_eq!(checksum::checksum(m), 0);
        assert_eq!(&m[8..], &orig[14..], "the whole datagram is quoted");
    }

    #[test]
    fn a_big_datagram_is_quoted_up_to_576_bytes_in_all() {
        let mut v = udp4(1400);
        let mut p = PacketBuf::new(&mut v, 128, 14 + 28 + 1400);
        assert!(write(&mut p, US));
        assert_eq!(p.frame().len(), 14 + 576);
        let ip = ipv4::Packet::new_checked(&p.frame()[14..]).unwrap();
        assert_eq!(ip.total_len(), 576);
    }

    #[test]
    fn ipv6_gets_icmpv6_port_unreachable() {
        let c6 = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10];
        let v6 = [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0];
        let mut v = vec![0u8; 2048];
        let f = &mut v[128..];
        f[6..12].copy_from_slice(&[2, 0, 0, 0, 0, 10]);
        f[12..14].copy_from_slice(&ethernet::ETHERTYPE_IPV6.to_be_bytes());
        ipv6::emit_header(&mut f[14..], 6, c6, v6, 20);
        f[54 + 13] = 0x02; // SYN
        let mut p = PacketBuf::new(&mut v, 128, 14 + 60);
        assert!(write(&mut p, US));
        let f = p.frame();
        assert_eq!(f.len(), 14 + 48 + 60);
        assert_eq!(&f[14 + 8..14 + 24], &v6);
        assert_eq!(&f[14 + 24..14 + 40], &c6);
        assert_eq!(f[14 + 6], icmpv6::NEXT_HEADER);
        let m = &f[54..];
        assert_eq!((m[0], m[1]), (1, 4));
        assert_eq!(icmpv6::checksum(m, v6, c6), 0, "checksum verifies");
        assert_eq!(m[8 + 40 + 13], 0x02, "the SYN is quoted");
    }

    #[test]
    fn a_client_gets_a_burst_of_six_then_one_a_second() {
        let mut l = Limiter::default();
        let c = Addr::v4(CLIENT);
        let t0 = 10_000;
        let sent = (0..10).filter(|_| l.allow(c, Millis(t0))).count();
        assert_eq!(sent, 6);
        assert!(!l.allow(c, Millis(t0 + 999)));
        assert!(l.allow(c, Millis(t0 + 1000)));
        assert!(!l.allow(c, Millis(t0 + 1001)));
        // Another client has its own bucket.
        assert!(l.allow(Addr::v4([10, 0, 0, 11]), Millis(t0 + 1001)));
    }

    #[test]
    fn all_clients_together_get_a_burst_of_fifty_then_a_thousand_a_second() {
        let mut l = Limiter::default();
        let t0 = 10_000;
        let sent = (0..200u32)
            .filter(|&i| l.allow(Addr::v4((0x0a00_0000 + i).to_be_bytes()), Millis(t0)))
            .count();
        assert_eq!(sent, 50);
        // 10 ms later: 10 more.
        let more = (200..400u32)
            .filter(|&i| l.allow(Addr::v4((0x0a00_0000 + i).to_be_bytes()), Millis(t0 + 10)))
            .count();
        assert_eq!(more, 10);
    }
}
