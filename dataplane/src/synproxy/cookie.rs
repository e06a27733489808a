//! SYN cookies: the initial sequence number the SYN proxy answers a SYN
//! with, from which the client's ACK alone proves the SYN came from it, and
//! which carries the SYN's options (MSS, window scale, SACK-permitted) so
//! that no state is kept for a SYN never acknowledged.
//!
//! The layout is Linux's (`net/ipv4/syncookies.c`, `__cookie_v4_init_sequence`)
//! with a finer MSS table and two more fields:
//!
//! ```text
//!  cookie = H1(tuple) + client_isn + (count << 30)
//!           + ((H2(tuple, count) + data) mod 2^30)
//!  data   = mss_index (3 bits) | sack (1 bit) << 3 | wscale (4 bits) << 4
//! ```
//!
//! `H1`, `H2` are SipHash-2-4 of the four-tuple under two halves of a
//! per-worker secret; `count` is the minute (the secret, in effect, turns
//! over every minute, as Linux's); 2 bits of it are kept in the cookie, and a
//! cookie is accepted during the minute it was made and the next (up to two
//! minutes, Linux's `MAX_SYNCOOKIE_AGE`). `H2` hashes the whole minute
//! (the check recovers it from the 2 bits and the clock), so a cookie does
//! not come back to life 4 minutes on (found while writing the
//! `synproxy_segments` fuzz target, whose round trip checks it). Linux keeps 8 bits of count and 24 of
//! hash plus data, with 2 bits of data: a random ACK passes with
//! probability about 3 × 4 / 2^24 = 7e-7. Here 2 of the 4 count values and
//! 240 of the 2^30 hash-plus-data values pass: 1.1e-7, with window scale
//! and SACK-permitted in the cookie itself, so that they survive a client
//! that does not send timestamps (Linux, and DPVS's synproxy, lose them
//! then). With timestamps the same bits also travel in the low 6 bits of
//! the TSval the client echoes ([`ts_bits`]), as Linux does, and must agree.
//!
//! `wscale` 15 stands for "no window scale option".

/// The MSS values a cookie can carry for IPv4, smallest first: the SYN's
/// MSS is rounded down to one of them.
pub const MSS_V4: [u16; 8] = [536, 1300, 1360, 1400, 1440, 1452, 1460, 8960];
/// The MSS values for IPv6.
pub const MSS_V6: [u16; 8] = [1220, 1280, 1340, 1380, 1420, 1432, 1440, 8940];
/// `wscale` value that means "the SYN had no window scale option".
pub const NO_WSCALE: u8 = 15;
/// The largest window scale (RFC 7323).
pub const MAX_WSCALE: u8 = 14;
/// Milliseconds per cookie period.
pub const PERIOD_MS: u64 = 60_000;

const COUNT_SHIFT: u32 = 30;
const HASH_MASK: u32 = (1 << COUNT_SHIFT) - 1;
/// Periods a cookie stays valid in (the one it was made in, and the next).
const AGE_PERIODS: u32 = 2;

/// What a SYN asked for, as a cookie keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SynOptions {
    /// The MSS to offer the server: the largest table value not above the
    /// client's (the smallest if the client's is below them all, 536 or
    /// 1220 when the SYN had none, RFC 9293's default).
    pub mss: u16,
    /// The client's window scale, or [`NO_WSCALE`].
    pub wscale: u8,
    /// SACK-permitted.
    pub sack: bool,
}

impl SynOptions {
    /// The options a SYN with `mss` (`None`: no option), `wscale` and
    /// `sack` keeps in a cookie of family `v4`.
    #[must_use]
    pub fn of_syn(v4: bool, mss: Option<u16>, wscale: Option<u8>, sack: bool) -> Self {
        let table = table(v4);
        let mss = mss.unwrap_or(if v4 { 536 } else { 1220 });
        let i = table.iter().rposition(|&m| m <= mss).unwrap_or(0);
        Self {
            mss: table[i],
            wscale: wscale.map_or(NO_WSCALE, |w| w.min(MAX_WSCALE)),
            sack,
        }
    }

    fn data(&self, v4: bool) -> u32 {
        let i = table(v4).iter().position(|&m| m == self.mss).unwrap_or(0) as u32;
        i | u32::from(self.sack) << 3 | u32::from(self.wscale & 0xf) << 4
    }

    fn from_data(v4: bool, data: u32) -> Option<Self> {
        let wscale = (data >> 4 & 0xf) as u8;
        if data >= 256 || (wscale > MAX_WSCALE && wscale != NO_WSCALE) {
            return None;
        }
        Some(Self {
            mss: table(v4)[(data & 7) as usize],
            wscale,
            sack: data & 8 != 0,
        })
    }
}

fn table(v4: bool) -> &'static [u16; 8] {
    if v4 {
        &MSS_V4
    } else {
        &MSS_V6
    }
}

/// The connection a cookie is for, as the client's packets carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tuple {
    /// Client address (IPv4 in the first 4 bytes with `v4`).
    pub client: [u8; 16],
    /// VIP.
    pub vip: [u8; 16],
    /// Client port.
    pub client_port: u16,
    /// VIP port.
    pub vip_port: u16,
    /// IPv4.
    pub v4: bool,
}

/// A worker's cookie secret (two SipHash keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Secret {
    k1: [u64; 2],
    k2: [u64; 2],
}

impl Secret {
    /// A secret from `seed` (the worker's random seed).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mix = |x: u64| crate::session::fmix64(x ^ 0x9e37_79b9_7f4a_7c15);
        let a = mix(seed);
        let b = mix(a);
        let c = mix(b);
        let d = mix(c);
        Self {
            k1: [a, b],
            k2: [c, d],
        }
    }

    fn hash(&self, key: &[u64; 2], t: &Tuple, count: u32) -> u32 {
        let mut m = [0u64; 5];
        m[0] = u64::from_le_bytes(t.client[..8].try_into().unwrap_or_default());
        m[1] = u64::from_le_bytes(t.client[8..].try_into().unwrap_or_default());
        m[2] = u64::from_le_bytes(t.vip[..8].try_into().unwrap_or_default());
        m[3] = u64::from_le_bytes(t.vip[8..].try_into().unwrap_or_default());
        m[4] = u64::from(t.client_port)
            | u64::from(t.vip_port) << 16
            | u64::from(count) << 32
            | u64::from(t.v4) << 63;
        siphash24(key, &m) as u32
    }

    /// The cookie for a SYN of `t` with initial sequence number `isn` and
    /// options `o`, made at `now_ms`.
    #[must_use]
    pub fn make(&self, t: &Tuple, isn: u32, o: &SynOptions, now_ms: u64) -> u32 {
        let count = (now_ms / PERIOD_MS) as u32;
        self.hash(&self.k1, t, 0)
            .wrapping_add(isn)
            .wrapping_add(count << COUNT_SHIFT)
            .wrapping_add(self.hash(&self.k2, t, count).wrapping_add(o.data(t.v4)) & HASH_MASK)
    }

    /// The options kept in `cookie` if it is one this secret made for `t`
    /// and `isn` less than two periods before `now_ms`; `None` otherwise.
    #[must_use]
    pub fn check(&self, t: &Tuple, isn: u32, cookie: u32, now_ms: u64) -> Option<SynOptions> {
        let now = (now_ms / PERIOD_MS) as u32;
        let rest = cookie
            .wrapping_sub(self.hash(&self.k1, t, 0))
            .wrapping_sub(isn);
        let count = rest >> COUNT_SHIFT;
        let age = (now & 3).wrapping_sub(count) & 3;
        if age >= AGE_PERIODS {
            return None;
        }
        // H2 covers the whole minute, which the age gives back: the 2 bits
        // that travel alone would let a cookie pass again every 4 minutes.
        let minute = now.wrapping_sub(age);
        let data = rest.wrapping_sub(self.hash(&self.k2, t, minute)) & HASH_MASK;
        SynOptions::from_data(t.v4, data)
    }
}

/// The low bits of the TSval answered to a SYN with timestamps (Linux's
/// `cookie_init_timestamp`): bits 0-3 the window scale (15: none), bit 4
/// SACK-permitted, bit 5 ECN (not negotiated here: 0).
pub const TS_BITS: u32 = 0x3f;

/// The TSval to answer with at `now_ms` for options `o`.
#[must_use]
pub fn ts_value(now_ms: u64, o: &SynOptions) -> u32 {
    (now_ms as u32 & !TS_BITS) | ts_bits(o)
}

/// The bits [`ts_value`] puts in the TSval's low 6 bits.
#[must_use]
pub fn ts_bits(o: &SynOptions) -> u32 {
    u32::from(o.wscale & 0xf) | u32::from(o.sack) << 4
}

/// True if the echoed TSval `tsecr` agrees with the cookie's options.
#[must_use]
pub fn ts_agrees(tsecr: u32, o: &SynOptions) -> bool {
    tsecr & TS_BITS == ts_bits(o)
}

/// SipHash-2-4 of `m` (whole 64-bit words) under `k`.
fn siphash24(k: &[u64; 2], m: &[u64]) -> u64 {
    let mut v = [
        k[0] ^ 0x736f_6d65_7073_6575,
        k[1] ^ 0x646f_7261_6e64_6f6d,
        k[0] ^ 0x6c79_6765_6e65_7261,
        k[1] ^ 0x7465_6462_7974_6573,
    ];
    fn round(v: &mut [u64; 4]) {
        v[0] = v[0].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(13) ^ v[0];
        v[0] = v[0].rotate_left(32);
        v[2] = v[2].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(16) ^ v[2];
        v[0] = v[0].wrapping_add(v[3]);
        v[3] = v[3].rotate_left(21) ^ v[0];
        v[2] = v[2].wrapping_add(v[1]);
        v[1] = v[1].rotate_left(17) ^ v[2];
        v[2] = v[2].rotate_left(32);
    }
    for &w in m {
        v[3] ^= w;
        round(&mut v);
        round(&mut v);
        v[0] ^= w;
    }
    let b = ((m.len() as u64 * 8) & 0xff) << 56;
    v[3] ^= b;
    round(&mut v);
    round(&mut v);
    v[0] ^= b;
    v[2] ^= 0xff;
    for _ in 0..4 {
        round(&mut v);
    }
    v[0] ^ v[1] ^ v[2] ^ v[3]
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn tuple(v4: bool, seed: u8) -> Tuple {
        let mut client = [seed; 16];
        let mut vip = [seed.wrapping_add(1); 16];
        if v4 {
            client[4..].fill(0);
            vip[4..].fill(0);
        }
        Tuple {
            client,
            vip,
            client_port: 40000 + u16::from(seed),
            vip_port: 80,
            v4,
        }
    }

    #[test]
    fn siphash_matches_the_reference_vector() {
        // The SipHash paper's key 00..0f over the 8 bytes 00..07.
        let k = [
            u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7]),
            u64::from_le_bytes([8, 9, 10, 11, 12, 13, 14, 15]),
        ];
        let m = [u64::from_le_bytes([0, 1, 2, 3, 4, 5, 6, 7])];
        assert_eq!(siphash24(&k, &m), 0x93f5_f579_9a93_2462);
    }

    #[test]
    fn mss_rounds_down_to_the_table() {
        assert_eq!(SynOptions::of_syn(true, Some(1460), None, false).mss, 1460);
        assert_eq!(SynOptions::of_syn(true, Some(1459), None, false).mss, 1452);
        assert_eq!(SynOptions::of_syn(true, Some(100), None, false).mss, 536);
        assert_eq!(SynOptions::of_syn(true, None, None, false).mss, 536);
        assert_eq!(SynOptions::of_syn(false, Some(1440), None, false).mss, 1440);
        assert_eq!(
            SynOptions::of_syn(false, Some(65535), None, false).mss,
            8940
        );
        assert_eq!(SynOptions::of_syn(true, None, Some(20), true).wscale, 14);
    }

    #[test]
    fn expires_after_two_periods_and_rejects_other_tuples() {
        let s = Secret::new(7);
        let t = tuple(true, 1);
        let o = SynOptions::of_syn(true, Some(1460), Some(7), true);
        let c = s.make(&t, 1000, &o, 10 * PERIOD_MS + 5);
        assert_eq!(s.check(&t, 1000, c, 10 * PERIOD_MS + 5), Some(o));
        assert_eq!(s.check(&t, 1000, c, 11 * PERIOD_MS + 59_999), Some(o));
        assert_eq!(s.check(&t, 1000, c, 12 * PERIOD_MS), None, "too old");
        // Only 2 bits of the minute travel in the cookie: four and five
        // minutes on they read as "now" again, and must not pass.
        for later in [14, 15, 18, 10 + 4 * 1000] {
            assert_eq!(s.check(&t, 1000, c, later * PERIOD_MS + 5), None, "{later}");
        }
        assert_eq!(s.check(&t, 1000, c, 9 * PERIOD_MS), None, "from the future");
        assert_eq!(s.check(&t, 6000, c, 10 * PERIOD_MS), None, "other ISN");
        assert_eq!(s.check(&tuple(true, 2), 1000, c, 10 * PERIOD_MS), None);
        assert_eq!(s.check(&t, 1000, c ^ 0x0010_0000, 10 * PERIOD_MS), None);
        assert_eq!(Secret::new(8).check(&t, 1000, c, 10 * PERIOD_MS), None);
    }

    #[test]
    fn random_acks_almost_never_pass() {
        let s = Secret::new(3);
        let t = tuple(false, 9);
        let mut x = 0x1234_5678u32;
        let mut passed = 0;
        for _ in 0..200_000 {
            x = x.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            passed += usize::from(s.check(&t, 77, x, PERIOD_MS).is_some());
        }
        assert!(passed <= 1, "{passed} of 200,000 random cookies passed");
    }

    proptest! {
        // Every option combination, both families, any ISN and time,
        // round-trips through the cookie and the timestamp bits.
        #[test]
        fn every_option_combination_round_trips(
            v4 in any::<bool>(), seed in any::<u8>(), isn in any::<u32>(),
            mss in proptest::option::of(any::<u16>()),
            wscale in proptest::option::of(0u8..=14), sack in any::<bool>(),
            now in 0u64..1_000_000_000, later in 0u64..PERIOD_MS, key in any::<u64>(),
        ) {
            let s = Secret::new(key);
            let t = tuple(v4, seed);
            let o = SynOptions::of_syn(v4, mss, wscale, sack);
            prop_assert_eq!(o.wscale, wscale.unwrap_or(NO_WSCALE));
            prop_assert!(mss.is_none_or(|m| o.mss <= m || o.mss == table(v4)[0]));
            let c = s.make(&t, isn, &o, now);
            prop_assert_eq!(s.check(&t, isn, c, now + later), Some(o));
            let ts = ts_value(now, &o);
            prop_assert!(ts_agrees(ts, &o));
            prop_assert_eq!(ts & TS_BITS & 0xf, u32::from(o.wscale));
        }
    }
}
