//! Weighted overflow (`ip_vs_ovf.c`): connections go to the highest-weighted
//! server until its active connections exceed its weight, then overflow to
//! the next highest. Servers that are overloaded, of weight 0, or with more
//! active connections than their weight are skipped. Only active
//! connections count (the kernel notes it suits TCP better than UDP). The
//! active count is the worker's own (see [`super`]): with `W` workers a
//! server takes up to about `W * weight` before overflowing.

use super::Backends;

/// Picks the highest-weighted server that is not full.
#[inline]
pub fn pick<B: Backends>(b: &B) -> Option<usize> {
    let mut best: Option<(usize, u32)> = None;
    for i in 0..b.len() {
        let w = b.weight(i);
        if b.overloaded(i) || b.active(i) > w || w == 0 {
            continue;
        }
        if best.is_none_or(|(_, hw)| w > hw) {
            best = Some((i, w));
        }
    }
    best.map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    #[test]
    fn fills_the_heaviest_then_overflows() {
        let mut s = Servers::weights(&[2, 3]);
        let got: Vec<_> = (0..8)
            .map(|_| {
                let i = pick(&s);
                if let Some(i) = i {
                    s.connect(i);
                }
                i
            })
            .collect();
        // B takes 4 (active may reach weight + 1), then A takes 3, then full.
        assert_eq!(
            got,
            vec![
                Some(1),
                Some(1),
                Some(1),
                Some(1),
                Some(0),
                Some(0),
                Some(0),
                None
            ]
        );
    }
}
