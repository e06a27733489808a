//! Weighted random twos choice (`ip_vs_twos.c`, Mitzenmacher's power of two
//! choices): draw two servers at random, each with probability proportional
//! to its weight, and take the one with the lower `overhead / weight`
//! (`overhead = active * 256 + inactive`); the first draw wins ties.
//! Overloaded and weight-0 servers are not drawn.
//!
//! The kernel draws `prandom_u32() % (total + 1)` and walks the list
//! subtracting weights until the remainder is `<= 0`. rvs does the same with
//! a per-worker xorshift64* generator seeded per worker, so workers draw
//! independently; counts are the worker's own (see [`super`]).

use super::Backends;

/// twos state: the worker's random generator.
#[derive(Debug, Clone)]
pub struct TwoChoices {
    state: u64,
}

impl TwoChoices {
    /// A generator seeded with `seed` (any value; 0 is replaced).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        Self {
            state: if seed == 0 {
                0x9e37_79b9_7f4a_7c15
            } else {
                seed
            },
        }
    }

    /// xorshift64*, upper 32 bits.
    #[inline]
    fn next_u32(&mut self) -> u32 {
        self.state ^= self.state >> 12;
        self.state ^= self.state << 25;
        self.state ^= self.state >> 27;
        (self.state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32) as u32
    }

    /// `ip_vs_twos_schedule`.
    pub fn pick<B: Backends>(&mut self, b: &B) -> Option<usize> {
        let total: i64 = (0..b.len())
            .filter(|&i| b.available(i))
            .map(|i| i64::from(b.weight(i)))
            .sum();
        if total == 0 {
            return None;
        }
        let r1 = i64::from(self.next_u32()) % (total + 1);
        let r2 = i64::from(self.next_u32()) % (total + 1);
        Some(choose(b, r1, r2))
    }
}

/// The kernel's walk for draws `r1`, `r2` in `0..=total`: the first server
/// at which the running remainder reaches `<= 0` for each draw, then the less
/// loaded of the two.
pub(crate) fn choose<B: Backends>(b: &B, mut r1: i64, mut r2: i64) -> usize {
    let mut c1: Option<(usize, u64, u64)> = None;
    let mut c2: Option<(usize, u64, u64)> = None;
    let mut last = 0;
    for i in 0..b.len() {
        if !b.available(i) {
            continue;
        }
        last = i;
        let w = u64::from(b.weight(i));
        r1 -= w as i64;
        r2 -= w as i64;
        if r1 <= 0 && c1.is_none() {
            c1 = Some((i, w, b.overhead(i)));
        }
        if r2 <= 0 && c2.is_none() {
            c2 = Some((i, w, b.overhead(i)));
        }
        if c1.is_some() && c2.is_some() {
            break;
        }
    }
    match (c1, c2) {
        (Some((i1, w1, o1)), Some((i2, w2, o2))) => {
            if w2 * o1 > w1 * o2 {
                i2
            } else {
                i1
            }
        }
        (Some((i1, ..)), None) => i1,
        // The kernel's choice1 starts as the last available server.
        _ => last,
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn draws_map_to_weighted_servers_and_the_lighter_wins() {
        // Weights 1, 2, 3 (total 6): draw 0 or 1 -> A, 2..3 -> B, 4..6 -> C.
        let s = Servers::weights(&[1, 2, 3]).with_active(&[0, 1, 1]);
        assert_eq!(choose(&s, 0, 0), 0);
        assert_eq!(choose(&s, 1, 3), 0, "A idle beats B");
        assert_eq!(choose(&s, 3, 6), 2, "B 256/2 vs C 256/3: C");
        assert_eq!(choose(&s, 6, 2), 2, "tie-free: C 85 vs B 128");
        let s = Servers::weights(&[1, 1]).with_active(&[1, 1]);
        assert_eq!(choose(&s, 2, 0), 1, "equal load: the first draw");
    }

    #[test]
    fn spreads_by_weight_and_load() {
        let mut s = Servers::weights(&[1, 3]);
        let mut t = TwoChoices::new(7);
        for _ in 0..4000 {
            let i = t.pick(&s).unwrap();
            s.connect(i);
        }
        // Balanced by weight: B gets about 3/4.
        let share = f64::from(s.active[1]) / 4000.0;
        assert!((0.72..0.78).contains(&share), "{share}");
    }

    #[test]
    fn skips_unavailable() {
        let mut s = Servers::weights(&[5, 0, 5]);
        s.over[0] = true;
        let mut t = TwoChoices::new(1);
        for _ in 0..50 {
            assert_eq!(t.pick(&s), Some(2));
        }
        s.over[2] = true;
        assert_eq!(t.pick(&s), None);
    }
}
