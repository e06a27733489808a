//! Weighted round robin (`ip_vs_wrr.c`, the kernel's current version).
//!
//! ```text
//! di = gcd of the weights above 0 (1 if none)
//! mw = max weight - (di - 1)          so the last pass runs with cw = 1
//! cw = mw at start
//! pick: walk on from the last server chosen; take the first one that is
//!       not overloaded with weight >= cw. At the end of the list lower cw
//!       by di (back to mw when it reaches 0) and walk again from the head;
//!       give up once every server was checked with cw = 1.
//! ```
//!
//! Weights 4, 3, 2 give `A A B A B C A B C` and repeat: each server appears
//! weight times per 9 picks, interleaved rather than in runs. The state is
//! per worker (see [`super`]): every worker's sequence has these proportions.

use super::{gcd_of, Backends};

/// wrr state: the last server chosen (`None`: the list head) and the
/// current, maximum and step weights.
#[derive(Debug, Clone)]
pub struct WeightedRoundRobin {
    cl: Option<usize>,
    cw: i64,
    mw: i64,
    di: i64,
}

fn di_mw<B: Backends>(b: &B) -> (i64, i64) {
    let di = i64::from(gcd_of((0..b.len()).map(|i| b.weight(i))).max(1));
    let max = (0..b.len())
        .map(|i| i64::from(b.weight(i)))
        .max()
        .unwrap_or(0);
    (di, max - (di - 1))
}

impl WeightedRoundRobin {
    /// State for the servers `b` (`ip_vs_wrr_init_svc`).
    #[must_use]
    pub fn new<B: Backends>(b: &B) -> Self {
        let (di, mw) = di_mw(b);
        Self {
            cl: None,
            cw: mw,
            mw,
            di,
        }
    }

    /// `ip_vs_wrr_dest_changed`: back to the head, new steps, current weight
    /// kept when it still makes sense.
    pub fn servers_changed<B: Backends>(&mut self, b: &B) {
        self.cl = None;
        (self.di, self.mw) = di_mw(b);
        if self.cw > self.mw || self.cw == 0 {
            self.cw = self.mw;
        } else if self.di > 1 {
            self.cw = (self.cw / self.di) * self.di + 1;
        }
    }

    /// `ip_vs_wrr_schedule`.
    pub fn pick<B: Backends>(&mut self, b: &B) -> Option<usize> {
        let n = b.len();
        if self.mw <= 0 || n == 0 {
            return None;
        }
        if self.cl.is_some_and(|c| c >= n) {
            self.cl = None;
        }
        let last = self.cl;
        let mut dest = self.cl;
        let mut stop: Option<usize> = None;
        let (mut last_pass, mut restarted) = (false, false);
        loop {
            let start = dest.map_or(0, |d| d + 1);
            for i in start..n {
                if !b.overloaded(i) && i64::from(b.weight(i)) >= self.cw {
                    self.cl = Some(i);
                    return Some(i);
                }
                if stop == Some(i) {
                    self.cl = Some(i);
                    return None;
                }
            }
            dest = None;
            self.cw -= self.di;
            if self.cw <= 0 {
                self.cw = self.mw;
                if last_pass || last.is_none() {
                    self.cl = None;
                    return None;
                }
                restarted = true;
            }
            last_pass = self.cw <= self.di;
            if last_pass && restarted && last.is_some() {
                stop = last;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    fn seq(w: &[u32], n: usize) -> Vec<usize> {
        let s = Servers::weights(w);
        let mut r = WeightedRoundRobin::new(&s);
        (0..n).map(|_| r.pick(&s).unwrap()).collect()
    }

    #[test]
    fn weights_4_3_2_interleave_as_the_kernel() {
        // cw = 4: A; cw = 3: A B; cw = 2: A B C; cw = 1: A B C; repeat.
        let one = vec![0, 0, 1, 0, 1, 2, 0, 1, 2];
        let got = seq(&[4, 3, 2], 18);
        assert_eq!(got[..9], one[..]);
        assert_eq!(got[9..], one[..]);
    }

    #[test]
    fn gcd_steps_and_two_to_one() {
        // gcd 2: weights 4, 2 step cw 4 -> 2: A, A B.
        assert_eq!(seq(&[4, 2], 6), vec![0, 0, 1, 0, 0, 1]);
        assert_eq!(seq(&[2, 1], 6), vec![0, 0, 1, 0, 0, 1]);
        let got = seq(&[2, 1], 300);
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 200);
        // Equal weights: plain rotation.
        assert_eq!(seq(&[5, 5, 5], 6), vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn skips_zero_and_overloaded_and_gives_up() {
        assert_eq!(seq(&[3, 0, 1], 8), vec![0, 0, 0, 2, 0, 0, 0, 2]);
        let mut s = Servers::weights(&[2, 1]);
        let mut r = WeightedRoundRobin::new(&s);
        s.over[0] = true;
        assert_eq!((r.pick(&s), r.pick(&s)), (Some(1), Some(1)));
        s.over[1] = true;
        assert_eq!(r.pick(&s), None);
        s.over = vec![false, false];
        assert!(r.pick(&s).is_some());
        let s = Servers::weights(&[0, 0]);
        assert_eq!(WeightedRoundRobin::new(&s).pick(&s), None);
    }

    #[test]
    fn weight_change_keeps_going() {
        let mut s = Servers::weights(&[1, 1]);
        let mut r = WeightedRoundRobin::new(&s);
        r.pick(&s);
        s.weight = vec![3, 1];
        r.servers_changed(&s);
        let got: Vec<_> = (0..8).map(|_| r.pick(&s).unwrap()).collect();
        assert_eq!(got.iter().filter(|&&i| i == 0).count(), 6, "{got:?}");
    }
}
