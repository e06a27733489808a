//! The hash functions the kernel's hashing schedulers use, reproduced bit for
//! bit so that rvs maps keys to table slots as Linux does.
//!
//! - [`hash_32`]: `include/linux/hash.h` (`val * GOLDEN_RATIO_32 >> (32 - bits)`),
//!   used by `sh` and `dh` for their 256-bucket tables.
//! - [`hsiphash_u32`]: `lib/siphash.c`'s `hsiphash()` on a 64-bit kernel, which
//!   is SipHash-1-3 folded to 32 bits, applied to one native-endian `u32`
//!   (the kernel hashes `&v, sizeof(v)`; rvs fixes the byte order to little
//!   endian, x86's, so tables are the same on every host). `mh` uses it with
//!   the fixed keys of `ip_vs_mh.c`'s `generate_hash_secret()`.
//!
//! Nothing here allocates; everything is `const`-friendly integer arithmetic.

/// `GOLDEN_RATIO_32` of `include/linux/hash.h`.
pub const GOLDEN_RATIO_32: u32 = 0x61C8_8647;

/// `hash_32(val, bits)`: the top `bits` bits of `val * GOLDEN_RATIO_32`.
#[inline]
#[must_use]
pub const fn hash_32(val: u32, bits: u32) -> u32 {
    val.wrapping_mul(GOLDEN_RATIO_32) >> (32 - bits)
}

/// A 128-bit SipHash key as the kernel stores it (`key[0]`, `key[1]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipKey(pub u64, pub u64);

#[inline]
fn sipround(v: &mut [u64; 4]) {
    v[0] = v[0].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(13);
    v[1] ^= v[0];
    v[0] = v[0].rotate_left(32);
    v[2] = v[2].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(16);
    v[3] ^= v[2];
    v[0] = v[0].wrapping_add(v[3]);
    v[3] = v[3].rotate_left(21);
    v[3] ^= v[0];
    v[2] = v[2].wrapping_add(v[1]);
    v[1] = v[1].rotate_left(17);
    v[1] ^= v[2];
    v[2] = v[2].rotate_left(32);
}

/// The kernel's `hsiphash(data, len, key)` on a 64-bit machine (SipHash-1-3,
/// result folded to 32 bits).
#[must_use]
pub fn hsiphash(data: &[u8], key: SipKey) -> u32 {
    let mut v = [
        0x736f_6d65_7073_6575 ^ key.0,
        0x646f_7261_6e64_6f6d ^ key.1,
        0x6c79_6765_6e65_7261 ^ key.0,
        0x7465_6462_7974_6573 ^ key.1,
    ];
    let mut b = (data.len() as u64) << 56;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let mut w = [0u8; 8];
        w.copy_from_slice(c);
        let m = u64::from_le_bytes(w);
        v[3] ^= m;
        sipround(&mut v);
        v[0] ^= m;
    }
    for (i, byte) in chunks.remainder().iter().enumerate() {
        b |= u64::from(*byte) << (8 * i);
    }
    finish(v, b)
}

/// `hsiphash(&v, sizeof(u32), key)` with `v`'s bytes in little-endian order.
#[inline]
#[must_use]
pub fn hsiphash_u32(v: u32, key: SipKey) -> u32 {
    let s = [
        0x736f_6d65_7073_6575 ^ key.0,
        0x646f_7261_6e64_6f6d ^ key.1,
        0x6c79_6765_6e65_7261 ^ key.0,
        0x7465_6462_7974_6573 ^ key.1,
    ];
    finish(s, 4u64 << 56 | u64::from(v))
}

#[inline]
fn finish(mut v: [u64; 4], b: u64) -> u32 {
    v[3] ^= b;
    sipround(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    sipround(&mut v);
    sipround(&mut v);
    sipround(&mut v);
    ((v[0] ^ v[1]) ^ (v[2] ^ v[3])) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `lib/siphash_kunit.c`, `test_vectors_hsiphash` for `BITS_PER_LONG == 64`:
    /// input `[0, 1, .., len-1]` under key `00 01 .. 0f`.
    const VECTORS: [u32; 64] = [
        0x050fc4dc, 0x7d57ca93, 0x4dc7d44d, 0xe7ddf7fb, 0x88d38328, 0x49533b67, 0xc59f22a7,
        0x9bb11140, 0x8d299a8e, 0x6c063de4, 0x92ff097f, 0xf94dc352, 0x57b4d9a2, 0x1229ffa7,
        0xc0f95d34, 0x2a519956, 0x7d908b66, 0x63dbd80c, 0xb473e63e, 0x8d297d1c, 0xa6cce040,
        0x2b45f844, 0xa320872e, 0xdae6c123, 0x67349c8c, 0x705b0979, 0xca9913a5, 0x4ade3b35,
        0xef6cd00d, 0x4ab1e1f4, 0x43c5e663, 0x8c21d1bc, 0x16a7b60d, 0x7a8ff9bf, 0x1f2a753e,
        0xbf186b91, 0xada26206, 0xa3c33057, 0xae3a36a1, 0x7b108392, 0x99e41531, 0x3f1ad944,
        0xc8138825, 0xc28949a6, 0xfaf8876b, 0x9f042196, 0x68b1d623, 0x8b5114fd, 0xdf074c46,
        0x12cc86b3, 0x0a52098f, 0x9d292f9a, 0xa2f41f12, 0x43a71ed0, 0x73f0bce6, 0x70a7e980,
        0x243c6d75, 0xfdb71513, 0xa67d8a08, 0xb7e8f148, 0xf7a644ee, 0x0f1837f2, 0x4b6694e0,
        0xb7bbb3a8,
    ];
    const KEY: SipKey = SipKey(0x0706_0504_0302_0100, 0x0f0e_0d0c_0b0a_0908);

    #[test]
    fn hsiphash_matches_the_kernel_test_vectors() {
        let input: Vec<u8> = (0..64).collect();
        for (len, want) in VECTORS.iter().enumerate() {
            assert_eq!(hsiphash(&input[..len], KEY), *want, "length {len}");
        }
        // The u32 shortcut is the 4-byte case.
        assert_eq!(
            hsiphash_u32(u32::from_le_bytes([0, 1, 2, 3]), KEY),
            VECTORS[4]
        );
    }

    #[test]
    fn hash_32_is_the_top_bits_of_the_golden_product() {
        assert_eq!(hash_32(0, 8), 0);
        assert_eq!(hash_32(1, 8), 0x61);
        assert_eq!(hash_32(1, 32), GOLDEN_RATIO_32);
    }
}
