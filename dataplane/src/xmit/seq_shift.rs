//! Sequence-number shifting: what a TCP connection needs once bytes were
//! added to (or, for a SYN proxy, numbered differently in) one direction's
//! byte stream on the way through rvs.
//!
//! A [`SeqShift`] describes one stream: from sequence number `base` on,
//! the receiver's numbering is the sender's plus `delta`. PROXY protocol
//! inserts `delta` header bytes in front of the client's first payload byte
//! (`base` = the client's ISN + 1), so every later byte the client sends
//! reaches the server `delta` further on, and every acknowledgement the
//! server sends back must be taken `delta` back before the client sees it.
//! A SYN proxy has the same need for the server's stream (its ISN differs
//! from the cookie the client was given): `base` = the server's ISN + 1,
//! the whole stream shifted. A session keeps one shift per stream it
//! changes; a segment is rewritten with its own stream's shift (its
//! sequence number, forward) and the other stream's (its acknowledgement
//! and SACK blocks, back) by [`rewrite`].
//!
//! ```text
//!  sender's numbering     base                 base+n
//!                          |  payload ...        |
//!  receiver's numbering   base  [delta bytes]  base+delta ... base+delta+n
//! ```
//!
//! Backward, an acknowledgement that covers only part of the inserted bytes
//! (`base < ack < base + delta`) acknowledges none of the sender's: it
//! becomes `base`, and the sender retransmits its first segment (which
//! carries the inserted bytes again).
//!
//! Only numbers change: window, flags, timestamps and every other option
//! stay as they are. The TCP checksum is updated incrementally (RFC 1624)
//! for each 32-bit word changed, so the cost is the same for every packet
//! and independent of its length; debug builds are checked against a full
//! recompute by the tests. Arithmetic is modulo 2^32 (RFC 9293's
//! comparisons), so a stream that wraps round shifts correctly.

use crate::checksum;

use crate::wire::tcp::{opt::SACK as OPT_SACK, OptionWalk};

/// One stream's shift: bytes from `base` on are `delta` further on at the
/// receiver. See the module doc.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SeqShift {
    /// The first sequence number (in the sender's numbering) that moves.
    pub base: u32,
    /// How far it moves (0: nothing moves), modulo 2^32: a few inserted
    /// bytes (PROXY protocol), or the distance between two ISNs (SYN proxy).
    pub delta: u32,
}

/// `a - b` as a signed distance modulo 2^32 (RFC 9293 comparisons).
#[inline]
fn diff(a: u32, b: u32) -> i32 {
    a.wrapping_sub(b) as i32
}

impl SeqShift {
    /// A shift of `delta` bytes from `base` on.
    #[must_use]
    pub const fn new(base: u32, delta: u32) -> Self {
        Self { base, delta }
    }

    /// A sequence number of the sender as the receiver numbers it: at or
    /// after `base`, `delta` further on; before it, unchanged.
    #[inline]
    #[must_use]
    pub fn forward(&self, seq: u32) -> u32 {
        if diff(seq, self.base) >= 0 {
            seq.wrapping_add(self.delta)
        } else {
            seq
        }
    }

    /// An acknowledgement (or SACK edge) from the receiver as the sender
    /// numbers it: past the shifted bytes, `delta` back; inside them,
    /// `base` (none of the sender's bytes there); before, unchanged.
    #[inline]
    #[must_use]
    pub fn back(&self, ack: u32) -> u32 {
        // Measured from where `base` lands at the receiver, so that a
        // delta of any size (a SYN proxy's, modulo 2^32) maps back too.
        if diff(ack, self.base.wrapping_add(self.delta)) >= 0 {
            ack.wrapping_sub(self.delta)
        } else if diff(ack, self.base) > 0 {
            self.base
        } else {
            ack
        }
    }
}

/// What [`rewrite`] changed: how many SACK edges it mapped (for tests and
/// counters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rewritten {
    /// SACK block edges mapped back.
    pub sack_edges: u8,
}

#[inline]
fn get_u32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Sets the 32-bit word at `at` to `new` and returns its RFC 1624 term.
/// At an odd offset (a SACK option after an unpadded one: no stack sends
/// it, anyone can) the field straddles three 16-bit words of the
/// checksum: the term is taken over those (found by the
/// `synproxy_segments` fuzz target).
#[inline]
pub(crate) fn put_u32(b: &mut [u8], at: usize, new: u32) -> u32 {
    let old = get_u32(b, at);
    if at.is_multiple_of(2) {
        b[at..at + 4].copy_from_slice(&new.to_be_bytes());
        return delta_u32(old, new);
    }
    // Bytes past the end count as the checksum's zero padding.
    let window =
        |b: &[u8]| std::array::from_fn::<u8, 6, _>(|i| b.get(at - 1 + i).copied().unwrap_or(0));
    let before = window(b);
    b[at..at + 4].copy_from_slice(&new.to_be_bytes());
    checksum::delta(&before, &window(b))
}

#[inline]
fn delta_u32(old: u32, new: u32) -> u32 {
    checksum::delta_u16((old >> 16) as u16, (new >> 16) as u16)
        + checksum::delta_u16(old as u16, new as u16)
}

/// Rewrites the TCP header at the start of `tcp` (whole header, options
/// included; the payload may follow): its sequence number forward by
/// `seq` (the segment's own stream), and, if the ACK flag is set, its
/// acknowledgement number and every SACK block edge back by `ack` (the
/// other stream's). The checksum is updated incrementally once for all.
/// A header shorter than its data offset, or options that run past it, are
/// left as far as they can be read (the SACK walk stops there).
#[inline]
pub fn rewrite(tcp: &mut [u8], seq: Option<&SeqShift>, ack: Option<&SeqShift>) -> Rewritten {
    let mut out = Rewritten::default();
    if tcp.len() < 20 {
        return out;
    }
    let mut sum = 0u32;
    if let Some(s) = seq {
        let old = get_u32(tcp, 4);
        sum += put_u32(tcp, 4, s.forward(old));
    }
    let has_ack = tcp[13] & 0x10 != 0;
    if let (Some(a), true) = (ack, has_ack) {
        let old = get_u32(tcp, 8);
        sum += put_u32(tcp, 8, a.back(old));
        let (edges_sum, edges) = map_sack_edges(tcp, |e| a.back(e));
        sum += edges_sum;
        out.sack_edges = edges;
    }
    if sum != 0 {
        let c = u16::from_be_bytes([tcp[16], tcp[17]]);
        let c = checksum::apply(c, sum);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());
    }
    out
}

/// Maps every SACK block edge of the TCP header at the start of `tcp` by
/// `f`; returns the checksum term (not yet applied) and how many edges it
/// mapped (saturating).
#[inline]
pub(crate) fn map_sack_edges(tcp: &mut [u8], f: impl Fn(u32) -> u32) -> (u32, u8) {
    let (mut sum, mut edges) = (0u32, 0u8);
    let mut walk = OptionWalk::new(tcp);
    while let Some(o) = walk.next(tcp) {
        if o.kind == OPT_SACK {
            let mut e = o.at + 2;
            while e + 4 <= o.at + o.len {
                let old = get_u32(tcp, e);
                sum += put_u32(tcp, e, f(old));
                edges = edges.saturating_add(1);
                e += 4;
            }
        }
    }
    (sum, edges)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::wire::tcp;
    use crate::wire::tcp::opt::NOP as OPT_NOP;

    const SRC: [u8; 4] = [10, 0, 0, 1];
    const DST: [u8; 4] = [10, 0, 0, 2];

    /// A TCP segment with `options` (padded to 4 bytes) and `payload`,
    /// checksum filled for SRC → DST.
    fn segment(
        seq: u32,
        ack: u32,
        flags: crate::wire::tcp::TcpFlags,
        options: &[u8],
        payload: &[u8],
    ) -> Vec<u8> {
        let olen = options.len().div_ceil(4) * 4;
        let mut b = vec![0u8; 20 + olen];
        b[4..8].copy_from_slice(&seq.to_be_bytes());
        b[8..12].copy_from_slice(&ack.to_be_bytes());
        b[12] = (((20 + olen) / 4) as u8) << 4;
        b[13] = flags.bits();
        b[14..16].copy_from_slice(&1000u16.to_be_bytes());
        b[20..20 + options.len()].copy_from_slice(options);
        b.extend_from_slice(payload);
        tcp::Packet::new_checked(&mut b[..])
            .unwrap()
            .fill_checksum_v4(SRC, DST);
        b
    }

    fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
        let mut o = vec![OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * blocks.len() as u8];
        for (l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o
    }

    fn verifies(b: &[u8]) -> bool {
        tcp::Packet::new_checked(b)
            .unwrap()
            .verify_checksum_v4(SRC, DST)
    }

    #[test]
    fn forward_and_back_around_base() {
        let s = SeqShift::new(1000, 50);
        assert_eq!(s.forward(999), 999, "before base: unchanged (the SYN)");
        assert_eq!(s.forward(1000), 1050);
        assert_eq!(s.forward(5000), 5050);
        assert_eq!(s.back(1000), 1000, "acks nothing of the sender's");
        assert_eq!(s.back(1001), 1000, "inside the inserted bytes");
        assert_eq!(s.back(1049), 1000);
        assert_eq!(s.back(1050), 1000, "all inserted bytes, no payload");
        assert_eq!(s.back(1051), 1001);
        assert_eq!(s.back(999), 999);
    }

    #[test]
    fn any_delta_maps_a_whole_stream() {
        // A SYN proxy: the server's ISN 5000, the client was told 3_000_000_000.
        let s = SeqShift::new(5001, 3_000_000_000u32.wrapping_sub(5000));
        assert_eq!(s.forward(5001), 3_000_000_001);
        assert_eq!(s.forward(9001), 3_000_004_001);
        assert_eq!(s.back(3_000_000_001), 5001);
        assert_eq!(s.back(3_000_004_001), 9001);
    }

    #[test]
    fn wraps_round_the_sequence_space() {
        let s = SeqShift::new(u32::MAX - 10, 108);
        assert_eq!(s.forward(u32::MAX - 10), 97);
        assert_eq!(s.forward(5), 113);
        assert_eq!(s.back(113), 5);
        assert_eq!(s.back(3), u32::MAX - 10, "inside the inserted bytes");
        assert_eq!(s.forward(u32::MAX - 11), u32::MAX - 11);
    }

    #[test]
    fn rewrites_seq_ack_and_sack_with_valid_checksum() {
        let (client, server) = (SeqShift::new(1000, 40), SeqShift::new(7000, 0));
        // The server's reply: its seq (own stream, no shift), its ack and
        // SACK blocks acknowledging the client's shifted stream.
        let mut b = segment(
            7001,
            1540,
            tcp::ACK,
            &sack(&[(1600, 1700), (1800, 1900)]),
            b"data",
        );
        let r = rewrite(&mut b, Some(&server), Some(&client));
        assert_eq!(r.sack_edges, 4);
        assert_eq!(get_u32(&b, 4), 7001);
        assert_eq!(get_u32(&b, 8), 1500);
        assert_eq!(
            [
                get_u32(&b, 24),
                get_u32(&b, 28),
                get_u32(&b, 32),
                get_u32(&b, 36)
            ],
            [1560, 1660, 1760, 1860]
        );
        assert!(verifies(&b));
        assert_eq!(&b[b.len() - 4..], b"data", "payload untouched");
    }

    #[test]
    fn a_sack_option_at_an_odd_offset_keeps_the_checksum() {
        let s = SeqShift::new(1000, 40);
        // NOP, then SACK at offset 21: every edge (from 23) straddles words.
        let mut opts = vec![OPT_NOP];
        opts.extend_from_slice(&sack(&[(1600, 1700), (1800, 1900)])[2..]);
        for payload in [&b""[..], b"x", b"xy"] {
            let mut b = segment(7001, 1540, tcp::ACK, &opts, payload);
            let r = rewrite(&mut b, None, Some(&s));
            assert_eq!(r.sack_edges, 4);
            assert_eq!(get_u32(&b, 23), 1560);
            assert_eq!(get_u32(&b, 35), 1860);
            assert!(verifies(&b), "{payload:?}");
        }
    }

    #[test]
    fn without_ack_flag_only_seq_moves() {
        let s = SeqShift::new(1000, 40);
        let mut b = segment(1100, 1234, tcp::SYN, &[], b"");
        rewrite(&mut b, Some(&s), Some(&s));
        assert_eq!((get_u32(&b, 4), get_u32(&b, 8)), (1140, 1234));
        assert!(verifies(&b));
    }

    #[test]
    fn malformed_options_stop_the_walk_without_harm() {
        let s = SeqShift::new(1000, 40);
        // A SACK option claiming more bytes than the header has.
        let mut opts = sack(&[(1600, 1700)]);
        opts[3] = 30;
        let mut b = segment(1, 1600, tcp::ACK, &opts, b"");
        let r = rewrite(&mut b, None, Some(&s));
        assert_eq!(r.sack_edges, 0);
        assert_eq!(get_u32(&b, 8), 1560);
        assert!(verifies(&b));
        // A zero-length option.
        let mut b = segment(1, 1600, tcp::ACK, &[7, 0, 0, 0], b"");
        rewrite(&mut b, None, Some(&s));
        assert!(verifies(&b));
        // Too short to be a header: nothing happens.
        let mut short = vec![0u8; 12];
        rewrite(&mut short, Some(&s), Some(&s));
        assert_eq!(short, vec![0u8; 12]);
    }

    proptest! {
        // Any stream, any segment: the incremental update equals a full
        // recompute, and mapping back undoes mapping forward.
        #[test]
        fn checksum_stays_valid_and_back_undoes_forward(
            base in any::<u32>(), delta in 0u32..200, off in 0u32..1_000_000,
            ack in any::<u32>(), flags in any::<u8>().prop_map(tcp::TcpFlags::from_bits_retain),
            blocks in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..4),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let s = SeqShift::new(base, delta);
            let seq = base.wrapping_add(off);
            prop_assert_eq!(s.back(s.forward(seq)), seq);
            let mut b = segment(seq, ack, flags, &sack(&blocks), &payload);
            let before = b.clone();
            rewrite(&mut b, Some(&s), Some(&s));
            prop_assert!(verifies(&b));
            prop_assert_eq!(get_u32(&b, 4), seq.wrapping_add(delta));
            if flags.contains(tcp::ACK) {
                prop_assert_eq!(get_u32(&b, 8), s.back(ack));
            } else {
                prop_assert_eq!(get_u32(&b, 8), ack);
            }
            prop_assert_eq!(&b[12..16], &before[12..16], "flags and window unchanged");
            prop_assert_eq!(&b[b.len() - payload.len()..], &payload[..]);
        }

        // An acknowledgement never moves past what the sender sent: the
        // back mapping is monotonic.
        #[test]
        fn back_is_monotonic(base in any::<u32>(), delta in 0u32..200, a in 0u32..100_000, step in 0u32..1000) {
            let s = SeqShift::new(base, delta);
            let x = base.wrapping_add(a);
            let y = x.wrapping_add(step);
            prop_assert!(diff(s.back(y), s.back(x)) >= 0);
        }
    }
}
