//! Internet checksum (RFC 1071) and its incremental update (RFC 1624).
//!
//! The packet path never recomputes a checksum over a payload: a rewrite
//! changes a few 16-bit words, and `HC' = ~(~HC + ~m + m')` (RFC 1624 eqn. 3)
//! adjusts the stored checksum for each. The full computation here exists for
//! building new packets (ARP replies have none; ICMP replies, tests) and for
//! checking the incremental path against it.

/// One's-complement sum of `data` (big-endian 16-bit words, odd byte padded)
/// added to `initial`, not folded.
#[must_use]
pub fn sum(data: &[u8], initial: u32) -> u32 {
    let mut acc = u64::from(initial);
    let mut chunks = data.chunks_exact(2);
    for w in &mut chunks {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = chunks.remainder() {
        acc += u64::from(u16::from_be_bytes([*last, 0]));
    }
    while acc > 0xffff_ffff {
        acc = (acc & 0xffff_ffff) + (acc >> 32);
    }
    acc as u32
}

/// Folds a 32-bit sum to 16 bits and complements it: the value to store.
#[must_use]
pub fn finish(mut acc: u32) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

/// True if a 20-byte IPv4 header (no options) checksums to zero, as
/// `checksum(header) == 0`: the header summed as five 32-bit words and
/// folded (the one's complement sum of 16-bit words is the fold of that of
/// 32-bit words), no loop. Every described IPv4 packet is checked.
#[inline]
#[must_use]
pub fn ipv4_header_ok(h: &[u8; 20]) -> bool {
    // In native byte order (the sum of byte-swapped words is the swapped
    // sum, and a swap keeps a multiple of 0xffff one), not folded: the
    // folded sum is 0xffff exactly when the plain sum is a nonzero
    // multiple of 0xffff (folding keeps the value modulo 0xffff, and
    // only 0 folds to 0).
    let w = |i: usize| u64::from(u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]));
    let acc = w(0) + w(4) + w(8) + w(12) + w(16);
    acc != 0 && acc % 0xffff == 0
}

/// Full checksum of `data` (e.g. an IPv4 header with its checksum field zeroed).
#[must_use]
pub fn checksum(data: &[u8]) -> u16 {
    finish(sum(data, 0))
}

/// Sum of the IPv4 pseudo-header for TCP/UDP (RFC 793 §3.1).
#[must_use]
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], proto: u8, l4_len: u16) -> u32 {
    let mut acc = sum(&src, 0);
    acc = sum(&dst, acc);
    acc + u32::from(proto) + u32::from(l4_len)
}

/// RFC 1624 update of checksum `hc` for one 16-bit word changing `old` → `new`.
#[inline]
#[must_use]
pub fn update_u16(hc: u16, old: u16, new: u16) -> u16 {
    let acc = u32::from(!hc) + u32::from(!old) + u32::from(new);
    finish(acc)
}

/// RFC 1624 update for a 32-bit field (an IPv4 address) changing `old` → `new`.
#[inline]
#[must_use]
pub fn update_u32(hc: u16, old: [u8; 4], new: [u8; 4]) -> u16 {
    let o = u32::from_be_bytes(old);
    let n = u32::from_be_bytes(new);
    let acc = u32::from(!hc) + (!(o >> 16) & 0xffff) + (!o & 0xffff) + (n >> 16) + (n & 0xffff);
    finish(acc)
}

/// The RFC 1624 term of one 16-bit word changing `old` → `new` (`~m + m'`):
/// the terms of every word a rewrite changes add up, and [`apply`] folds
/// them into the checksum once.
#[inline]
#[must_use]
pub fn delta_u16(old: u16, new: u16) -> u32 {
    u32::from(!old) + u32::from(new)
}

/// [`delta_u16`] for `N` bytes (an IPv4 or IPv6 address) changing `old` → `new`.
#[inline]
#[must_use]
pub fn delta<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u32 {
    let mut acc = 0u32;
    for i in (0..N).step_by(2) {
        acc += delta_u16(
            u16::from_be_bytes([old[i], old[i + 1]]),
            u16::from_be_bytes([new[i], new[i + 1]]),
        );
    }
    acc
}

/// The RFC 1624 term of a 32-bit word changing `old` → `new`, as one
/// 32-bit term (`~m + m'`: the one's-complement sum of 16-bit words is the
/// fold of that of 32-bit words); terms add up in a `u64` and
/// [`apply_wide`] folds them once.
#[inline(always)]
#[must_use]
pub fn delta_u32(old: u32, new: u32) -> u64 {
    u64::from(!old) + u64::from(new)
}

/// [`delta_u32`] over `N` bytes (`N` a multiple of 4: addresses) changing
/// `old` → `new`, word by word.
#[inline(always)]
#[must_use]
pub fn delta_words<const N: usize>(old: &[u8; N], new: &[u8; N]) -> u64 {
    let word = |b: &[u8; N], i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
    let mut acc = 0u64;
    let mut i = 0;
    while i + 4 <= N {
        acc += delta_u32(word(old, i), word(new, i));
        i += 4;
    }
    acc
}

/// Checksum `hc` updated by `delta`, a sum of [`delta_u32`] and
/// [`delta_u16`] terms (below 2^63: any header's), folded in two fixed
/// steps (no loop), each an end-around-carry add of the two halves (the
/// carry out added back: `add`, `adc`). Like the shift-and-add fold, it
/// gives 0 only for 0 and stays one's-complement congruent, so the result
/// is the same bit for bit.
#[inline(always)]
#[must_use]
pub fn apply_wide(hc: u16, delta: u64) -> u16 {
    let acc = u64::from(!hc) + delta;
    let (lo, carry) = (acc as u32).overflowing_add((acc >> 32) as u32);
    // No overflow: after a carry out, `lo` is at most 2^32 - 2.
    let acc = lo + u32::from(carry);
    let (lo, carry) = (acc as u16).overflowing_add((acc >> 16) as u16);
    !(lo + u16::from(carry))
}

/// Checksum `hc` updated by the summed terms `delta` of every changed word
/// (RFC 1624 eqn. 3 for several words at once). `delta` must stay below
/// 2^32 - 2^16: about 65 000 words, far more than a header has.
#[inline]
#[must_use]
pub fn apply(hc: u16, delta: u32) -> u16 {
    finish(u32::from(!hc) + delta)
}

/// Sum of the IPv6 pseudo-header for TCP/UDP/ICMPv6 (RFC 8200 §8.1).
#[must_use]
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> u32 {
    let mut acc = sum(&src, 0);
    acc = sum(&dst, acc);
    acc = sum(&l4_len.to_be_bytes(), acc);
    acc + u32::from(next_header)
}

/// RFC 1624 update for a 128-bit field (an IPv6 address) changing `old` → `new`.
#[inline]
#[must_use]
pub fn update_u128(hc: u16, old: [u8; 16], new: [u8; 16]) -> u16 {
    let mut acc = u32::from(!hc);
    for i in (0..16).step_by(2) {
        acc += u32::from(!u16::from_be_bytes([old[i], old[i + 1]]));
        acc += u32::from(u16::from_be_bytes([new[i], new[i + 1]]));
    }
    finish(acc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn the_header_check_by_words_is_the_full_checksum(
            h in any::<[u8; 20]>(),
            fix in any::<bool>(),
        ) {
            let mut h = h;
            if fix {
                // Half the cases carry a right checksum.
                h[10] = 0;
                h[11] = 0;
                let c = checksum(&h);
                h[10..12].copy_from_slice(&c.to_be_bytes());
            }
            prop_assert_eq!(ipv4_header_ok(&h), checksum(&h) == 0);
        }

        #[test]
        fn one_combined_update_equals_the_word_by_word_ones(
            hc in any::<u16>(),
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(),
            c in any::<[u8; 16]>(), d in any::<[u8; 16]>(),
            o in any::<u16>(), n in any::<u16>(),
        ) {
            let one = apply(hc, delta(&a, &b) + delta(&c, &d) + delta_u16(o, n));
            let each = update_u16(update_u128(update_u32(hc, a, b), c, d), o, n);
            // One's complement has two zeros; both verify alike.
            prop_assert!(one == each || (one | each == 0xffff && one & each == 0));
        }

        #[test]
        fn the_wide_update_is_the_word_by_word_one(
            hc in any::<u16>(),
            a in any::<[u8; 4]>(), b in any::<[u8; 4]>(),
            c in any::<[u8; 32]>(), d in any::<[u8; 32]>(),
            o in any::<u16>(), n in any::<u16>(),
        ) {
            // Exactly the same value (not merely the same in one's
            // complement): the two sums are equal modulo 0xffff and both
            // zero or both not, so both fold to the same 16 bits.
            let wide = apply_wide(
                hc,
                delta_u32(u32::from_be_bytes(a), u32::from_be_bytes(b))
                    + delta_words(&c, &d)
                    + u64::from(delta_u16(o, n)),
            );
            let narrow = apply(hc, delta(&a, &b) + delta(&c, &d) + delta_u16(o, n));
            prop_assert_eq!(wide, narrow);
        }

        #[test]
        fn the_carry_fold_is_the_shift_fold(
            hc in any::<u16>(),
            delta in prop_oneof![
                0u64..1 << 63,
                // Near the edges of each fold: all-ones halves, carries.
                (0u64..4, 0u64..4).prop_map(|(x, y)| (0xffff_ffff - x) << 32 | (0xffff - y)),
                (0u64..1 << 17).prop_map(|x| 0xffff_ffff_u64.wrapping_sub(x) & ((1 << 63) - 1)),
                Just(0u64),
            ],
        ) {
            // The four-step fold `apply_wide` had before (session 12).
            let shift = |hc: u16, delta: u64| {
                let mut acc = u64::from(!hc) + delta;
                acc = (acc & 0xffff_ffff) + (acc >> 32);
                acc = (acc & 0xffff_ffff) + (acc >> 32);
                acc = (acc & 0xffff) + (acc >> 16);
                acc = (acc & 0xffff) + (acc >> 16);
                !(acc as u16)
            };
            prop_assert_eq!(apply_wide(hc, delta), shift(hc, delta));
        }
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the words 0001 f203 f4f5 f6f7 sum to ddf2 (before complement).
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(checksum(&data), !0xddf2);
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(
            checksum(&[0x12, 0x34, 0x56]),
            checksum(&[0x12, 0x34, 0x56, 0x00])
        );
    }

    proptest! {
        #[test]
        fn incremental_u16_matches_full(mut data in proptest::collection::vec(any::<u8>(), 2..64),
                                         idx in 0usize..31, new in any::<u16>()) {
            let words = data.len() / 2;
            let i = (idx % words) * 2;
            let hc = checksum(&data);
            let old = u16::from_be_bytes([data[i], data[i + 1]]);
            data[i..i + 2].copy_from_slice(&new.to_be_bytes());
            let full = checksum(&data);
            let inc = update_u16(hc, old, new);
            // 0x0000 and 0xffff are the same value in one's complement.
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }

        #[test]
        fn incremental_u128_matches_full(mut data in proptest::collection::vec(any::<u8>(), 16..80),
                                          idx in 0usize..4, new in any::<[u8; 16]>()) {
            let blocks = data.len() / 16;
            let i = (idx % blocks) * 16;
            let hc = checksum(&data);
            let mut old = [0u8; 16];
            old.copy_from_slice(&data[i..i + 16]);
            data[i..i + 16].copy_from_slice(&new);
            let full = checksum(&data);
            let inc = update_u128(hc, old, new);
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }

        #[test]
        fn incremental_u32_matches_full(mut data in proptest::collection::vec(any::<u8>(), 4..64),
                                         idx in 0usize..15, new in any::<[u8; 4]>()) {
            let quads = data.len() / 4;
            let i = (idx % quads) * 4;
            let hc = checksum(&data);
            let old = [data[i], data[i + 1], data[i + 2], data[i + 3]];
            data[i..i + 4].copy_from_slice(&new);
            let full = checksum(&data);
            let inc = update_u32(hc, old, new);
            prop_assert!(inc == full || (inc == 0xffff && full == 0) || (inc == 0 && full == 0xffff));
        }
    }
}
