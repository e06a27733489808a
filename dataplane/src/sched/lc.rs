//! Least connection (`ip_vs_lc.c`): the server with the smallest overhead
//! `active * 256 + inactive`, skipping weight 0 and overloaded servers;
//! weights otherwise play no part. Ties go to the first in list order.
//! Counts are the worker's own (see [`super`]).

use super::Backends;

/// Picks the least-loaded server.
#[inline]
pub fn pick<B: Backends>(b: &B) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for i in 0..b.len() {
        if b.overloaded(i) || b.weight(i) == 0 {
            continue;
        }
        let doh = b.overhead(i);
        if least.is_none_or(|(_, loh)| doh < loh) {
            least = Some((i, doh));
        }
    }
    least.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn active_counts_256_times_inactive() {
        // 1 active (256) weighs more than 255 inactive.
        let s = Servers::weights(&[1, 1])
            .with_active(&[1, 0])
            .with_inactive(&[0, 255]);
        assert_eq!(pick(&s), Some(1));
        let s = Servers::weights(&[1, 1])
            .with_active(&[1, 0])
            .with_inactive(&[0, 256]);
        assert_eq!(pick(&s), Some(0), "tie goes to the first");
        // Weights are ignored except 0.
        let s = Servers::weights(&[100, 1, 0]).with_active(&[3, 2, 0]);
        assert_eq!(pick(&s), Some(1));
    }

    #[test]
    fn fills_evenly_and_respects_overload() {
        let mut s = Servers::weights(&[1, 5, 1]);
        let got: Vec<_> = (0..6)
            .map(|_| {
                let i = pick(&s).unwrap();
                s.connect(i);
                i
            })
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2]);
        s.over[0] = true;
        assert_eq!(pick(&s), Some(1));
        assert_eq!(pick(&Servers::weights(&[0])), None);
    }
}
