//! DPDK's `rte_hash` signature compare for Rust: which of a bucket's eight
//! 32-bit tags equal a hash, four at a time in SSE2 registers
//! (`pcmpeqd`, `packssdw`, `packsswb`, `pmovmskb`: eight instructions
//! where the scalar compare LLVM emits takes 28). The session index's
//! bucket probe calls it once per bucket read (`session::index`).

/// Bit `i` set: `tags[i] == h`.
#[inline(always)]
#[must_use]
pub fn matching(tags: &[u32; 8], h: u32) -> u32 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: SSE2 is part of the x86_64 baseline (every x86_64 CPU has
        // it, and the target enables it), and `sse2_matching` reads only
        // through the reference it is given (unaligned loads of 2 × 16
        // bytes inside the 32-byte array).
        unsafe { sse2_matching(tags, h) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    scalar(tags, h)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "sse2")]
#[inline]
unsafe fn sse2_matching(tags: &[u32; 8], h: u32) -> u32 {
    use std::arch::x86_64::{
        __m128i, _mm_cmpeq_epi32, _mm_loadu_si128, _mm_movemask_epi8, _mm_packs_epi16,
        _mm_packs_epi32, _mm_set1_epi32, _mm_setzero_si128,
    };
    let p = tags.as_ptr().cast::<__m128i>();
    // SAFETY: `p` and `p + 1` cover `tags`' 32 bytes exactly; loadu has no
    // alignment requirement.
    let (lo, hi) = unsafe { (_mm_loadu_si128(p), _mm_loadu_si128(p.add(1))) };
    let key = _mm_set1_epi32(h.cast_signed());
    // Each lane all ones where equal; narrowed to one byte per lane
    // (saturation keeps 0 and -1), then one bit per byte.
    let words = _mm_packs_epi32(_mm_cmpeq_epi32(lo, key), _mm_cmpeq_epi32(hi, key));
    let bytes = _mm_packs_epi16(words, _mm_setzero_si128());
    _mm_movemask_epi8(bytes).cast_unsigned()
}

/// The same compare one tag at a time (other targets; the tests' reference).
#[cfg(any(test, not(target_arch = "x86_64")))]
#[inline]
#[must_use]
pub fn scalar(tags: &[u32; 8], h: u32) -> u32 {
    let mut m = 0;
    for (i, t) in tags.iter().enumerate() {
        m |= u32::from(*t == h) << i;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn every_mask_of_eight_is_found() {
        for mask in 0u32..256 {
            let tags: [u32; 8] = std::array::from_fn(|i| {
                if mask >> i & 1 == 1 {
                    0xdead_beef
                } else {
                    i as u32
                }
            });
            assert_eq!(matching(&tags, 0xdead_beef), mask);
            assert_eq!(scalar(&tags, 0xdead_beef), mask);
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_scalar_compare(tags in any::<[u32; 8]>(), pick in 0usize..9, h in any::<u32>()) {
            // `pick` < 8 makes the key one of the tags (a hit), 8 a random key.
            let key = if pick < 8 { tags[pick] } else { h };
            prop_assert_eq!(matching(&tags, key), scalar(&tags, key));
        }
    }
}
