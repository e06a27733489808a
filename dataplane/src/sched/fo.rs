//! Weighted failover (`ip_vs_fo.c`): every new connection goes to the
//! not-overloaded server with the highest weight (the first of equals);
//! lower-weighted servers are standbys. Weight 0 never wins. Identical on
//! every worker.

use super::Backends;

/// Picks the highest-weighted available server.
#[inline]
pub fn pick<B: Backends>(b: &B) -> Option<usize> {
    let mut best: Option<usize> = None;
    let mut hw = 0;
    for i in 0..b.len() {
        if !b.overloaded(i) && b.weight(i) > hw {
            best = Some(i);
            hw = b.weight(i);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn highest_weight_then_failover() {
        let mut s = Servers::weights(&[1, 3, 3, 2]).with_active(&[0, 100, 0, 0]);
        assert_eq!(pick(&s), Some(1), "load does not matter; first of equals");
        s.over[1] = true;
        assert_eq!(pick(&s), Some(2));
        s.over[2] = true;
        assert_eq!(pick(&s), Some(3));
        s.weight[3] = 0;
        assert_eq!(pick(&s), Some(0));
        assert_eq!(pick(&Servers::weights(&[0, 0])), None);
    }
}
