//! Never queue (`ip_vs_nq.c`): an idle server (no active connection) gets
//! the connection at once, the first idle one in list order; when none is
//! idle, shortest expected delay (`(active + 1) / weight`). Weight 0 and
//! overloaded servers are skipped. "Idle" is judged on the worker's own
//! connections (see [`super`]).

use super::{sed, Backends};

/// Picks an idle server, else the shortest expected delay.
#[inline]
pub fn pick<B: Backends>(b: &B) -> Option<usize> {
    let mut least: Option<(usize, u64)> = None;
    for i in 0..b.len() {
        if b.overloaded(i) || b.weight(i) == 0 {
            continue;
        }
        if b.active(i) == 0 {
            return Some(i);
        }
        let doh = sed::overhead(b, i);
        if least.is_none_or(|(l, loh)| loh * u64::from(b.weight(i)) > doh * u64::from(b.weight(l)))
        {
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
    fn idle_first_then_expected_delay() {
        // B is idle: it wins although A's expected delay is lower.
        let s = Servers::weights(&[10, 1]).with_active(&[1, 0]);
        assert_eq!(pick(&s), Some(1));
        // Several idle: the first.
        let s = Servers::weights(&[1, 3, 5]).with_active(&[2, 0, 0]);
        assert_eq!(pick(&s), Some(1));
        // None idle: (2+1)/1 = 3 vs (4+1)/3 = 1.67.
        let s = Servers::weights(&[1, 3]).with_active(&[2, 4]);
        assert_eq!(pick(&s), Some(1));
        // An idle server of weight 0 does not count.
        let s = Servers::weights(&[0, 1]).with_active(&[0, 7]);
        assert_eq!(pick(&s), Some(1));
    }

    #[test]
    fn idle_overloaded_is_skipped() {
        let mut s = Servers::weights(&[1, 1]).with_active(&[0, 3]);
        s.over[0] = true;
        assert_eq!(pick(&s), Some(1));
        s.over[1] = true;
        assert_eq!(pick(&s), None);
    }
}
