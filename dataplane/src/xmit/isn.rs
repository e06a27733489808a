//! FULLNAT's own initial sequence numbers toward the server, and the SYN's
//! timestamp option taken out (DPVS's `tcp_in_init_seq`,
//! `tcp_in_remove_ts`, `tcp_in_adjust_seq`, `tcp_out_adjust_seq`).
//!
//! # Why
//!
//! A FULLNAT server sees every connection come from a local address and a
//! port rvs lends it. A local address has ~64 K ports, lent in turn, so at
//! a few thousand new connections per second a (laddr, lport, rs, rport)
//! tuple comes back within seconds — while a server that closed first
//! still holds the old connection in TIME_WAIT (60 s on Linux). The new
//! SYN was written by a different client socket: its sequence number and
//! timestamp are unrelated to the old connection's, so the server's
//! TIME_WAIT answers it with an old ACK (RFC 9293 3.10.7.4; Linux
//! `tcp_timewait_state_process`), the client resets, and its SYN is sent
//! again a second later. Clients see one-second connect stalls.
//!
//! A server's TIME_WAIT accepts a SYN whose sequence number lies after the
//! old connection's last one (and, with timestamps, one whose timestamp is
//! newer). So rvs, as DPVS and as a kernel's own `secure_tcp_seq` do,
//! numbers the client's stream toward the server itself:
//!
//! ```text
//!   server-side ISN = hsiphash(key; laddr, rs, lport, rport) + clock
//!   clock           = wall-clock milliseconds × 15 625   (Linux's ns >> 6, at ms steps)
//! ```
//!
//! so consecutive connections on one tuple get increasing ISNs (the clock
//! moves 15.6 M per second, past any byte count a connection that ended
//! moments before can have reached; it wraps after 274 s, as Linux's does,
//! long after TIME_WAIT), while tuples' ISNs stay unguessable from
//! outside. The client's SYN loses its timestamp option (its 10 bytes
//! become NOPs): the server's side of the connection then has no
//! timestamps, so PAWS, which would refuse the new SYN's older timestamp,
//! is not involved. Every other option (MSS, SACK permitted, window
//! scale) passes untouched.
//!
//! # The offset
//!
//! A session keeps the difference, server-side ISN − client's ISN, as its
//! ISN offset ([`crate::session::SessionHot::isn_off`]; 0: none, as NAT,
//! DR, TUN, UDP and SYN-proxied sessions have). It is set by the first SYN
//! and kept: a retransmitted SYN gets the same ISN. Then every
//! client→server segment's sequence number moves forward by it, and every
//! server→client segment's acknowledgement number and SACK block edges
//! back by it ([`seq_forward`], [`ack_back`]), the TCP checksum updated
//! incrementally. It is a whole-stream offset: applied last on the way to
//! the server (after a PROXY header's shift, which works in the client's
//! numbering) and first on the way back.
//!
//! The key is `[dataplane] isn_secret` when the config sets it, random
//! per process start otherwise (rvsd reads it from the kernel's random
//! source); the clock is the wall clock (the pipeline's `isn_epoch` plus
//! the worker's `now`). A backup that takes over after failover applies
//! the master's offsets to the synced connections (sync carries them); a
//! new connection reusing a tuple the master used a moment before gets the
//! ISN the master would have given it at that moment when both share
//! `isn_secret`, and one from another key otherwise, which the server's
//! TIME_WAIT may refuse once (the client's SYN retransmission then opens it).

use crate::checksum;
use crate::sched::hash::{hsiphash, SipKey};
use crate::session::Endpoint;
use crate::time::Millis;
use crate::wire::tcp::opt::{NOP as OPT_NOP, TS as OPT_TS};
use crate::wire::tcp::{OptionWalk, MIN_HEADER_LEN};

/// The timestamp option's length (RFC 7323).
const OPT_TS_LEN: usize = 10;

/// The clock's steps per millisecond: 10^6 ns / 64 (Linux's ISN clock
/// counts 64 ns steps).
const STEPS_PER_MS: u64 = 15_625;

/// The key of a worker's server-side ISNs (see the module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IsnKey(SipKey);

impl IsnKey {
    /// A key from 16 random bytes (rvsd: the kernel's random source, once
    /// at start).
    #[must_use]
    pub fn from_bytes(b: [u8; 16]) -> Self {
        let (lo, hi) = b.split_at(8);
        Self(SipKey(
            u64::from_le_bytes(lo.try_into().unwrap_or([0; 8])),
            u64::from_le_bytes(hi.try_into().unwrap_or([0; 8])),
        ))
    }

    /// A key derived from a worker's seed (tests and tools: deterministic).
    #[must_use]
    pub fn from_seed(seed: u64) -> Self {
        let a = crate::session::fmix64(seed ^ 0x15a_15a_15a);
        Self(SipKey(a, crate::session::fmix64(a)))
    }

    /// The ISN toward `rs` of a connection from `laddr` starting at `now`.
    #[must_use]
    pub fn isn(&self, laddr: Endpoint, rs: Endpoint, now: Millis) -> u32 {
        let h = if let (Some(l), Some(r)) = (laddr.ip.to_v4(), rs.ip.to_v4()) {
            // Both IPv4: their 4-byte addresses, 12 bytes in all (two
            // SipHash rounds fewer than the 36 below; the inputs' lengths
            // differ, so the two forms never give one input).
            let mut b = [0u8; 12];
            b[..4].copy_from_slice(&l);
            b[4..8].copy_from_slice(&r);
            b[8..10].copy_from_slice(&laddr.port.to_be_bytes());
            b[10..].copy_from_slice(&rs.port.to_be_bytes());
            hsiphash(&b, self.0)
        } else {
            let mut b = [0u8; 36];
            b[..16].copy_from_slice(&laddr.ip.octets());
            b[16..32].copy_from_slice(&rs.ip.octets());
            b[32..34].copy_from_slice(&laddr.port.to_be_bytes());
            b[34..].copy_from_slice(&rs.port.to_be_bytes());
            hsiphash(&b, self.0)
        };
        h.wrapping_add(clock(now))
    }
}

/// The ISN clock at `now` (modulo 2^32).
#[must_use]
pub fn clock(now: Millis) -> u32 {
    now.0.wrapping_mul(STEPS_PER_MS) as u32
}

/// The offset that turns the client's ISN `client_isn` into `server_isn`,
/// never 0 (0 means no offset): a difference of exactly 0 becomes 1.
#[must_use]
pub fn offset(server_isn: u32, client_isn: u32) -> u32 {
    match server_isn.wrapping_sub(client_isn) {
        0 => 1,
        d => d,
    }
}

#[inline]
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Replaces the timestamp option of the TCP header at the start of `tcp`
/// by NOPs (all its 10 bytes), the checksum updated; other options stay
/// as they are. True if there was one. Malformed options stop the walk.
pub fn remove_timestamp(tcp: &mut [u8]) -> bool {
    let mut walk = OptionWalk::new(tcp);
    while let Some(o) = walk.next(tcp) {
        if o.kind == OPT_TS && o.len == OPT_TS_LEN {
            // The options start at an even offset and end at a multiple
            // of 4: their words are the checksum's.
            let opts = MIN_HEADER_LEN..walk.header_end();
            let before = checksum::sum(&tcp[opts.clone()], 0);
            tcp[o.at..o.at + o.len].fill(OPT_NOP);
            let after = checksum::sum(&tcp[opts], 0);
            let c = u16::from_be_bytes([tcp[16], tcp[17]]);
            let c = checksum::apply(
                c,
                checksum::delta_u16(!checksum::finish(before), !checksum::finish(after)),
            );
            tcp[16..18].copy_from_slice(&c.to_be_bytes());
            return true;
        }
    }
    false
}

/// Sets the 32-bit word at `at` of `t` to `new` and returns its checksum
/// term (see [`crate::xmit::seq_shift`]: an odd offset is allowed).
#[inline]
fn put(t: &mut [u8], at: usize, new: u32) -> u64 {
    u64::from(super::seq_shift::put_u32(t, at, new))
}

/// Moves the sequence number of the client's segment (TCP header at the
/// start of `tcp`, at least 20 bytes) forward by `off`; returns the
/// checksum term to apply (the caller folds it with its own).
#[inline]
pub fn seq_forward(tcp: &mut [u8], off: u32) -> u64 {
    let old = u32_at(tcp, 4);
    put(tcp, 4, old.wrapping_add(off))
}

/// Moves the acknowledgement number of the server's segment (TCP header at
/// the start of `tcp`, at least 20 bytes) back by `off`, and every SACK
/// block edge, walking the options only when the header has any; returns
/// the checksum term to apply.
#[inline]
pub fn ack_back(tcp: &mut [u8], off: u32) -> u64 {
    let old = u32_at(tcp, 8);
    let mut sum = put(tcp, 8, old.wrapping_sub(off));
    if tcp[12] >> 4 > 5 {
        sum += sack_back(tcp, off);
    }
    sum
}

/// [`ack_back`]'s option walk: every SACK edge back by `off`; the
/// checksum term. Out of line: only server segments with options come here.
#[inline(never)]
pub(crate) fn sack_back(tcp: &mut [u8], off: u32) -> u64 {
    u64::from(super::seq_shift::map_sack_edges(tcp, |e| e.wrapping_sub(off)).0)
}

/// Applies [`seq_forward`] (`inbound`) or [`ack_back`] to the TCP header
/// at the start of `tcp` and folds the checksum: the ISN offset on its own
/// (the long path; the fast path folds it with the address rewrite's).
pub fn shift(tcp: &mut [u8], off: u32, inbound: bool) {
    if off == 0 || tcp.len() < 20 {
        return;
    }
    let sum = if inbound {
        seq_forward(tcp, off)
    } else {
        ack_back(tcp, off)
    };
    let c = u16::from_be_bytes([tcp[16], tcp[17]]);
    let c = checksum::apply_wide(c, sum);
    tcp[16..18].copy_from_slice(&c.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::addr::Addr;
    use crate::wire::tcp;
    use crate::wire::tcp::opt::SACK as OPT_SACK;

    const SRC: [u8; 4] = [10, 0, 0, 1];
    const DST: [u8; 4] = [10, 0, 0, 2];

    fn segment(
        seq: u32,
        ack: u32,
        flags: tcp::TcpFlags,
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

    fn verifies(b: &[u8]) -> bool {
        tcp::Packet::new_checked(b)
            .unwrap()
            .verify_checksum_v4(SRC, DST)
    }

    /// Linux's SYN options: MSS, SACK permitted, timestamps, NOP, window scale.
    const LINUX_SYN: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0x12, 0x34, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    fn laddr(port: u16) -> Endpoint {
        Endpoint::new([10, 0, 2, 1], port)
    }
    fn rs() -> Endpoint {
        Endpoint::new([10, 0, 3, 1], 80)
    }

    #[test]
    fn the_timestamp_becomes_nops_and_nothing_else_changes() {
        let mut b = segment(1000, 0, tcp::SYN, &LINUX_SYN, b"");
        let before = b.clone();
        assert!(remove_timestamp(&mut b));
        assert!(verifies(&b));
        assert_eq!(&b[20..26], &LINUX_SYN[..6], "MSS, SACK permitted");
        assert_eq!(&b[26..36], &[OPT_NOP; 10]);
        assert_eq!(&b[36..40], &LINUX_SYN[16..], "NOP, window scale");
        assert_eq!(&b[..16], &before[..16], "everything before the checksum");
        // Once gone, nothing more to do.
        let again = b.clone();
        assert!(!remove_timestamp(&mut b));
        assert_eq!(b, again);
    }

    #[test]
    fn a_syn_without_timestamp_or_with_bad_options_is_left_alone() {
        for opts in [
            &[2u8, 4, 5, 0xb4][..],
            &[8, 10][..],            // claims more than the header has
            &[7, 0, 8, 10][..],      // zero length first
            &[0, 8, 10, 0][..],      // end of options first
            &[8, 6, 0, 0, 0, 0][..], // wrong length
        ] {
            let mut b = segment(1000, 0, tcp::SYN, opts, b"");
            let before = b.clone();
            assert!(!remove_timestamp(&mut b), "{opts:?}");
            assert_eq!(b, before);
        }
    }

    /// The bytes hashed, as tests/golden/gen.py's `isn_input` models them:
    /// two IPv4 addresses as 4 bytes each, otherwise 16 each.
    #[test]
    fn the_isn_hashes_the_tuple_in_the_modelled_layout() {
        let k = IsnKey::from_seed(3);
        let v4 = [10, 0, 2, 1, 10, 0, 3, 1, 0x13, 0x88, 0, 80];
        assert_eq!(k.isn(laddr(5000), rs(), Millis(0)), hsiphash(&v4, k.0));
        let (l6, r6) = (
            [0xfd, 0x77, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 1],
            [0xfd; 16],
        );
        let mut b = [0u8; 36];
        b[..16].copy_from_slice(&l6);
        b[16..32].copy_from_slice(&r6);
        b[32..].copy_from_slice(&[0x13, 0x88, 0, 80]);
        let (l, r) = (
            Endpoint::at(Addr::v6(l6), 5000),
            Endpoint::at(Addr::v6(r6), 80),
        );
        assert_eq!(
            k.isn(l, r, Millis(2)),
            hsiphash(&b, k.0).wrapping_add(2 * 15_625)
        );
        // One IPv4 address and one IPv6: both as 16 bytes (IPv4-mapped).
        b[..16].copy_from_slice(&Addr::from([10, 0, 2, 1]).octets());
        let l = laddr(5000);
        assert_eq!(k.isn(l, r, Millis(0)), hsiphash(&b, k.0));
    }

    #[test]
    fn the_isn_grows_with_time_on_one_tuple_and_differs_between_tuples() {
        let k = IsnKey::from_seed(1);
        let a = k.isn(laddr(5000), rs(), Millis(1000));
        let b = k.isn(laddr(5000), rs(), Millis(9000));
        assert_eq!(b.wrapping_sub(a), 8000 * 15_625, "8 s later");
        assert_ne!(a, k.isn(laddr(5001), rs(), Millis(1000)));
        assert_ne!(a, IsnKey::from_seed(2).isn(laddr(5000), rs(), Millis(1000)));
        assert_eq!(a, k.isn(laddr(5000), rs(), Millis(1000)), "deterministic");
        assert_eq!(offset(5, 5), 1, "never 0");
        assert_eq!(offset(5, 7), u32::MAX - 1);
    }

    #[test]
    fn from_bytes_uses_every_byte() {
        let base = IsnKey::from_bytes([7; 16]);
        for i in 0..16 {
            let mut b = [7; 16];
            b[i] = 8;
            assert_ne!(IsnKey::from_bytes(b), base, "byte {i}");
        }
    }

    fn sack(blocks: &[(u32, u32)]) -> Vec<u8> {
        let mut o = vec![OPT_NOP, OPT_NOP, OPT_SACK, 2 + 8 * blocks.len() as u8];
        for (l, r) in blocks {
            o.extend_from_slice(&l.to_be_bytes());
            o.extend_from_slice(&r.to_be_bytes());
        }
        o
    }

    proptest! {
        // The ISN of a tuple moves forward as time goes on (for the 137 s
        // the clock takes to cover half the sequence space, more than
        // twice TIME_WAIT).
        #[test]
        fn isn_is_monotonic_in_time(seed in any::<u64>(), port in any::<u16>(),
                                    t in 0u64..1_000_000_000, dt in 1u64..137_000) {
            let k = IsnKey::from_seed(seed);
            let a = k.isn(laddr(port), rs(), Millis(t));
            let b = k.isn(laddr(port), rs(), Millis(t + dt));
            prop_assert!((b.wrapping_sub(a) as i32) > 0);
        }

        // Forward then back by one offset: the checksum equals a full
        // recompute, sequence numbers move by the offset, SACK edges too,
        // and nothing else changes.
        #[test]
        fn shifts_keep_the_checksum_and_move_only_numbers(
            off in any::<u32>(), seq in any::<u32>(), ack in any::<u32>(),
            flags in any::<u8>().prop_map(tcp::TcpFlags::from_bits_retain),
            blocks in proptest::collection::vec((any::<u32>(), any::<u32>()), 0..4),
            odd in any::<bool>(),
            payload in proptest::collection::vec(any::<u8>(), 0..40),
        ) {
            let mut opts = sack(&blocks);
            if odd {
                opts.remove(0); // the SACK option at an odd offset
            }
            let mut b = segment(seq, ack, flags, &opts, &payload);
            let before = b.clone();
            shift(&mut b, off, true);
            prop_assert!(verifies(&b));
            prop_assert_eq!(u32_at(&b, 4), seq.wrapping_add(off));
            prop_assert_eq!(&b[8..16], &before[8..16]);
            let mut b = before.clone();
            shift(&mut b, off, false);
            prop_assert!(verifies(&b));
            prop_assert_eq!(u32_at(&b, 8), ack.wrapping_sub(off));
            prop_assert_eq!(&b[..8], &before[..8]);
            let at = if odd { 23 } else { 24 };
            for (i, (l, r)) in blocks.iter().enumerate() {
                prop_assert_eq!(u32_at(&b, at + 8 * i), l.wrapping_sub(off));
                prop_assert_eq!(u32_at(&b, at + 8 * i + 4), r.wrapping_sub(off));
            }
            prop_assert_eq!(&b[b.len() - payload.len()..], &payload[..]);
        }

        // A SYN's options of any kind: only a well-formed timestamp changes.
        #[test]
        fn only_the_timestamp_goes(mss in any::<u16>(), ws in any::<u8>(), val in any::<u32>(),
                                   sack_perm in any::<bool>()) {
            let mut o = vec![2, 4];
            o.extend_from_slice(&mss.to_be_bytes());
            if sack_perm {
                o.extend_from_slice(&[4, 2]);
            }
            o.extend_from_slice(&[8, 10]);
            o.extend_from_slice(&val.to_be_bytes());
            o.extend_from_slice(&[0, 0, 0, 0, 1, 3, 3, ws]);
            let mut b = segment(1, 0, tcp::SYN, &o, b"");
            let before = b.clone();
            prop_assert!(remove_timestamp(&mut b));
            prop_assert!(verifies(&b));
            let ts_at = if sack_perm { 26 } else { 24 };
            for i in 20..b.len() {
                if (ts_at..ts_at + 10).contains(&i) {
                    prop_assert_eq!(b[i], OPT_NOP);
                } else if i != 16 && i != 17 {
                    prop_assert_eq!(b[i], before[i], "byte {}", i);
                }
            }
        }
    }
}
