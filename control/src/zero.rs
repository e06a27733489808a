//! `rvsadm -Z`: zeroing the counters `--stats` and `--rate` show without
//! touching the data path. Workers keep counting from their start (and
//! `/metrics` keeps showing those monotonic counters, as Prometheus needs);
//! control remembers each zeroed real server's counters at that moment and
//! listings show the difference.

use std::collections::HashMap;

/// Per real server (by registry index): its counters (connections,
/// packets in/out, bytes in/out) when last zeroed.
#[derive(Debug, Clone, Default)]
pub struct Baselines(HashMap<usize, [u64; 5]>);

impl Baselines {
    /// Zero server `index` at its current counters `now`.
    pub fn zero(&mut self, index: usize, now: [u64; 5]) {
        self.0.insert(index, now);
    }

    /// Server `index`'s counters `stats` less those when it was last
    /// zeroed (unchanged if it never was).
    #[must_use]
    pub fn since(&self, index: Option<usize>, stats: [u64; 5]) -> [u64; 5] {
        let base = index
            .and_then(|i| self.0.get(&i))
            .copied()
            .unwrap_or_default();
        let mut out = stats;
        for (o, b) in out.iter_mut().zip(base) {
            // Counters only grow; saturate rather than wrap should one not.
            *o = o.saturating_sub(b);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_servers_count_from_the_zero_others_from_the_start() {
        let mut b = Baselines::default();
        assert_eq!(
            b.since(Some(3), [5, 50, 40, 5000, 4000]),
            [5, 50, 40, 5000, 4000]
        );
        b.zero(3, [5, 50, 40, 5000, 4000]);
        assert_eq!(
            b.since(Some(3), [5, 50, 40, 5000, 4000]),
            [0; 5],
            "right after -Z"
        );
        assert_eq!(
            b.since(Some(3), [7, 61, 48, 6100, 4900]),
            [2, 11, 8, 1100, 900],
            "only what came since"
        );
        assert_eq!(
            b.since(Some(4), [1, 2, 3, 4, 5]),
            [1, 2, 3, 4, 5],
            "another server is untouched"
        );
        assert_eq!(b.since(None, [1, 2, 3, 4, 5]), [1, 2, 3, 4, 5]);
        b.zero(3, [7, 61, 48, 6100, 4900]);
        assert_eq!(
            b.since(Some(3), [7, 61, 48, 6100, 4900]),
            [0; 5],
            "a second -Z starts again"
        );
    }
}
