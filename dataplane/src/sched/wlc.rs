//! Weighted least connection (`ip_vs_wlc.c`), ipvsadm's default: the server
//! with the smallest `overhead / weight`, `overhead = active * 256 +
//! inactive`, compared without division as `loh * dw > doh * lw`. The first
//! server with weight above 0 that is not overloaded starts; later ones
//! replace it only when strictly less loaded. Counts are the worker's own
//! (see [`super`]).

use super::Backends;

/// `__ip_vs_lblc_schedule` / `ip_vs_wlc_schedule`: weighted least
/// connection over all servers, shared with lblc and lblcr.
#[inline]
pub fn pick<B: Backends>(b: &B) -> Option<usize> {
    let n = b.len();
    let first = (0..n).find(|&i| b.available(i))?;
    let (mut least, mut loh) = (first, b.overhead(first));
    for i in first + 1..n {
        if b.overloaded(i) {
            continue;
        }
        let doh = b.overhead(i);
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
    fn weighted_overhead() {
        // 2 active on weight 3 (512/3 = 170) beats 1 active on weight 1 (256).
        let s = Servers::weights(&[1, 3]).with_active(&[1, 2]);
        assert_eq!(pick(&s), Some(1));
        // Inactive counts 1/256 of an active.
        let s = Servers::weights(&[1, 1])
            .with_active(&[1, 1])
            .with_inactive(&[3, 2]);
        assert_eq!(pick(&s), Some(1));
        // Weight 0 never wins, even idle.
        let s = Servers::weights(&[0, 1]).with_active(&[0, 50]);
        assert_eq!(pick(&s), Some(1));
        assert_eq!(pick(&Servers::weights(&[0, 0])), None);
    }

    #[test]
    fn splits_by_weight() {
        let mut s = Servers::weights(&[3, 1]);
        let mut got = [0; 2];
        for _ in 0..400 {
            let i = pick(&s).unwrap();
            s.connect(i);
            got[i] += 1;
        }
        assert_eq!(got, [300, 100]);
    }

    #[test]
    fn overloaded_is_skipped_even_as_first() {
        let mut s = Servers::weights(&[1, 1, 1]).with_active(&[0, 5, 4]);
        s.over[0] = true;
        assert_eq!(pick(&s), Some(2));
    }
}
