//! Round robin (`ip_vs_rr.c`): the next server after the last one chosen
//! that has a weight above 0 and is not overloaded; after a full turn with
//! none, no server. The cursor is per worker (see [`super`]): with one worker
//! the order is the kernel's exactly; with several, each rotates on its own.

use super::Backends;

/// Round-robin cursor: the position to try first.
#[derive(Debug, Clone, Default)]
pub struct RoundRobin {
    next: usize,
}

impl RoundRobin {
    /// Picks the next available server.
    #[inline]
    pub fn pick<B: Backends>(&mut self, b: &B) -> Option<usize> {
        let n = b.len();
        if n == 0 {
            return None;
        }
        // `(next + k) % n` for k in 0..n, counted without a division per
        // connection (`next` is below `n` but after a change of servers).
        let mut i = if self.next < n {
            self.next
        } else {
            self.next % n
        };
        for _ in 0..n {
            if b.available(i) {
                self.next = if i + 1 == n { 0 } else { i + 1 };
                return Some(i);
            }
            i = if i + 1 == n { 0 } else { i + 1 };
        }
        None
    }

    /// The server list changed: keep the cursor where it points, within the
    /// new list (the kernel moves it back one when its server is deleted).
    pub fn servers_changed<B: Backends>(&mut self, b: &B) {
        self.next = if b.is_empty() { 0 } else { self.next % b.len() };
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn rotates_and_skips_weight_zero_and_overloaded() {
        let mut r = RoundRobin::default();
        let s = Servers::weights(&[1, 1, 1]);
        let got: Vec<_> = (0..6).filter_map(|_| r.pick(&s)).collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        // Weights do not matter beyond zero.
        let mut r = RoundRobin::default();
        let mut s = Servers::weights(&[1, 0, 5]);
        let got: Vec<_> = (0..4).filter_map(|_| r.pick(&s)).collect();
        assert_eq!(got, vec![0, 2, 0, 2]);
        s.over[0] = true;
        assert_eq!((r.pick(&s), r.pick(&s)), (Some(2), Some(2)));
    }

    #[test]
    fn none_when_all_zero_or_empty() {
        let mut r = RoundRobin::default();
        assert_eq!(r.pick(&Servers::weights(&[0, 0])), None);
        assert_eq!(r.pick(&Servers::weights(&[])), None);
    }

    /// The rotation as first written: `(next + k) % n`, a division each.
    fn pick_by_modulo(next: &mut usize, s: &Servers) -> Option<usize> {
        let n = s.len();
        for k in 0..n {
            let i = (*next + k) % n;
            if s.available(i) {
                *next = (i + 1) % n;
                return Some(i);
            }
        }
        None
    }

    proptest::proptest! {
        /// Picks as the division did, from any start (even one past the
        /// servers, as after a change of them), whichever are available.
        #[test]
        fn picks_as_the_modulo_did(
            weights in proptest::collection::vec(0u32..3, 0..7),
            start in 0usize..12,
            over in proptest::collection::vec(proptest::bool::ANY, 7),
            rounds in 1usize..20,
        ) {
            let mut s = Servers::weights(&weights);
            for (i, o) in over.iter().enumerate().take(weights.len()) {
                s.over[i] = *o;
            }
            let mut r = RoundRobin { next: start };
            let mut model = start;
            for _ in 0..rounds {
                proptest::prop_assert_eq!(r.pick(&s), pick_by_modulo(&mut model, &s));
                proptest::prop_assert_eq!(r.next, model);
            }
        }
    }
}
