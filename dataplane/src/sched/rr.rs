//! Round robin (`ip_vs_rr.c`): the next server after the last one chosen,
//! skipping servers of weight 0. The cursor is per worker: with one worker the
//! order is the kernel's exactly; with several, each worker rotates on its
//! own, which keeps the aggregate split even.

use super::Candidate;

/// Round-robin cursor.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// Picks the next server with a non-zero weight.
    pub fn pick<C: Candidate>(&mut self, servers: &[C]) -> Option<usize> {
        let n = servers.len();
        for i in 0..n {
            let idx = (self.next + i) % n;
            if servers[idx].weight() > 0 {
                self.next = (idx + 1) % n;
                return Some(idx);
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct W(u32);
    impl Candidate for W {
        fn weight(&self) -> u32 {
            self.0
        }
    }

    fn c(w: &[u32]) -> Vec<W> {
        w.iter().map(|&x| W(x)).collect()
    }

    #[test]
    fn rotates_and_skips_weight_zero() {
        let mut r = RoundRobin::default();
        let s = c(&[1, 1, 1]);
        let got: Vec<_> = (0..6).filter_map(|_| r.pick(&s)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        let s = c(&[1, 0, 5]);
        let got: Vec<_> = (0..4).filter_map(|_| r.pick(&s)).collect();
        assert_eq!(got, vec![0, 2, 0, 2]);
    }

    #[test]
    fn none_when_all_zero_or_empty() {
        let mut r = RoundRobin::default();
        assert_eq!(r.pick(&c(&[0, 0])), None);
        assert_eq!(r.pick::<W>(&[]), None);
    }
}
