//! The open-addressing hash index under the session and template tables.
//!
//! Entries are `u64`: a 32-bit hash tag in the high half, a 32-bit payload
//! (the table's slot number, possibly with flag bits) in the low half;
//! `u64::MAX` marks an empty bucket. Linear probing; deletion shifts later
//! entries of the probe run back (no tombstones), so lookups stay short
//! however long the table lives. Sized once; nothing allocates afterwards.

const EMPTY: u64 = u64::MAX;

/// The index. The owning table keeps its load low (at most a quarter full).
#[derive(Debug, Clone)]
pub(crate) struct HashIndex {
    entries: Vec<u64>,
    mask: usize,
}

/// Payloads whose tag matches, in probe order (the caller compares keys).
pub(crate) struct Probe<'a> {
    index: &'a HashIndex,
    at: usize,
    tag: u32,
}

impl Iterator for Probe<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        loop {
            let e = self.index.entries[self.at];
            if e == EMPTY {
                return None;
            }
            self.at = (self.at + 1) & self.index.mask;
            if (e >> 32) as u32 == self.tag {
                return Some(e as u32);
            }
        }
    }
}

impl HashIndex {
    /// An index with room for `buckets` entries (rounded up to a power of two).
    pub(crate) fn new(buckets: usize) -> Self {
        let len = buckets.max(2).next_power_of_two();
        Self {
            entries: vec![EMPTY; len],
            mask: len - 1,
        }
    }

    /// The payloads filed under hash `h`.
    #[inline]
    pub(crate) fn probe(&self, h: u32) -> Probe<'_> {
        Probe {
            index: self,
            at: h as usize & self.mask,
            tag: h,
        }
    }

    /// The entry a probe for hash `h` reads first.
    #[inline]
    pub(crate) fn home(&self, h: u32) -> &u64 {
        &self.entries[h as usize & self.mask]
    }

    /// Files `payload` under hash `h`.
    pub(crate) fn insert(&mut self, h: u32, payload: u32) {
        let mut i = h as usize & self.mask;
        while self.entries[i] != EMPTY {
            i = (i + 1) & self.mask;
        }
        self.entries[i] = u64::from(h) << 32 | u64::from(payload);
    }

    /// Removes the entry (`h`, `payload`); false if it was not there.
    pub(crate) fn remove(&mut self, h: u32, payload: u32) -> bool {
        let want = u64::from(h) << 32 | u64::from(payload);
        let mut i = h as usize & self.mask;
        while self.entries[i] != want {
            if self.entries[i] == EMPTY {
                return false;
            }
            i = (i + 1) & self.mask;
        }
        // Backward-shift deletion: pull later entries of the probe run back
        // into the hole unless their home lies cyclically in (hole, j].
        let mut hole = i;
        let mut j = (i + 1) & self.mask;
        loop {
            let e = self.entries[j];
            if e == EMPTY {
                break;
            }
            let home = (e >> 32) as usize & self.mask;
            if (j.wrapping_sub(home) & self.mask) >= (j.wrapping_sub(hole) & self.mask) {
                self.entries[hole] = e;
                hole = j;
            }
            j = (j + 1) & self.mask;
        }
        self.entries[hole] = EMPTY;
        true
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    proptest! {
        // Colliding tags (a tiny hash space) exercise probe runs that wrap
        // and backward shifts across them.
        #[test]
        fn behaves_like_a_set(ops in proptest::collection::vec((any::<bool>(), 0u32..8, 0u32..40), 1..400)) {
            let mut idx = HashIndex::new(64);
            let mut model: HashSet<(u32, u32)> = HashSet::new();
            for (add, h, p) in ops {
                let h = h.wrapping_mul(0x1000_0001) | 7; // low bits collide
                if add && !model.contains(&(h, p)) && model.len() < 48 {
                    idx.insert(h, p);
                    model.insert((h, p));
                } else if !add {
                    prop_assert_eq!(idx.remove(h, p), model.remove(&(h, p)));
                }
                for &(mh, mp) in &model {
                    prop_assert!(idx.probe(mh).any(|x| x == mp));
                }
            }
        }
    }
}
