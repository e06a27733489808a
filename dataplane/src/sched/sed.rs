//! Shortest expected delay (`ip_vs_sed.c`): the server with the smallest
//! `(active + 1) / weight`, the delay a new connection would expect if every
//! active connection took the same time. Inactive connections do not count.
//! Compared as `loh * dw > doh * lw` from the first server with weight above
//! 0 that is not overloaded. Counts are the worker's own (see [`super`]).

use super::Backends;

/// `ip_vs_sed_dest_overhead`: `active + 1`.
#[inline]
pub(crate) fn overhead<B: Backends>(b: &B, i: usize) -> u64 {
    u64::from(b.active(i)) + 1
}

/// Picks the server with the shortest expected delay.
#[inline]
pub fn pick<B: Backends>(b: &B) -> Option<usize> {
    let n = b.len();
    let first = (0..n).find(|&i| b.available(i))?;
    let (mut least, mut loh) = (first, overhead(b, first));
    for i in first + 1..n {
        if b.overloaded(i) {
            continue;
        }
        let doh = overhead(b, i);
        if loh * u64::from(b.weight(i)) > doh * u64::from(b.weight(least)) {
            (least, loh) = (i, doh);
        }
    }
    Some(least)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn expected_delay_with_given_active_counts() {
        // (1+1)/1 = 2 vs (3+1)/3 = 1.33: the heavier server wins.
        let s = Servers::weights(&[1, 3]).with_active(&[1, 3]);
        assert_eq!(pick(&s), Some(1));
        // (0+1)/1 = 1 vs (2+1)/3 = 1: a tie stays with the first.
        let s = Servers::weights(&[1, 3]).with_active(&[0, 2]);
        assert_eq!(pick(&s), Some(0));
        // Idle servers: sed still prefers the heavier one (1/3 < 1/1);
        // nq would take the first idle one.
        let s = Servers::weights(&[1, 3]);
        assert_eq!(pick(&s), Some(1));
        // Inactive connections are ignored.
        let s = Servers::weights(&[1, 1])
            .with_active(&[1, 1])
            .with_inactive(&[0, 1000]);
        assert_eq!(pick(&s), Some(0));
    }

    #[test]
    fn sequence_from_idle_weights_1_and_3() {
        // (active+1)/weight after each pick; B wins while 3 * (A+1) > B+1.
        let mut s = Servers::weights(&[1, 3]);
        let got: Vec<_> = (0..8)
            .map(|_| {
                let i = pick(&s).unwrap();
                s.connect(i);
                i
            })
            .collect();
        assert_eq!(got, vec![1, 1, 0, 1, 1, 1, 0, 1]);
    }
}
