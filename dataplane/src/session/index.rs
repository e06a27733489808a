//! The bucketed hash index under the session and template tables.
//!
//! A bucket is one 64-byte cache line of eight entries: eight 32-bit hash
//! tags, then eight 32-bit payloads (the table's slot number, possibly with
//! a flag bit; [`EMPTY`] marks a free entry). Every hash has two candidate
//! buckets (two-choice, bucketized cuckoo hashing, as DPDK's `rte_hash`
//! does): a lookup reads the first and, only if the entry is not there, the
//! second, comparing the tags of a line at once; the caller compares keys
//! for the payloads whose tag matches. An insert takes a free entry in
//! either bucket or, when both are full, moves entries along the shortest
//! path (breadth first, bounded) to their other bucket to make room. With
//! the full 32-bit hash as the tag an entry's other bucket is computed from
//! the entry alone, and two keys share a tag once in 2^32.
//!
//! The bucket count need not be a power of two (buckets are chosen by a
//! multiply-shift of the hash), so an index is sized for the load its table
//! asks for: the session table's runs at up to 80 % when the table is full
//! (8 bytes per entry, 20 per session), where the open-addressing index it
//! replaced needed 25 % (64 bytes per session). Sized once; nothing
//! allocates afterwards (the search for room uses a fixed array).

use super::store::Store;

/// Payload of a free entry.
pub(crate) const EMPTY: u32 = u32::MAX;
/// Entries per bucket (one cache line).
pub(crate) const WAYS: usize = 8;
/// Buckets examined at most by the search for room (breadth first: both
/// buckets, their 16 neighbours, 128 at the next step, part of the next).
const SEARCH: usize = 512;

/// One cache line of entries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct Bucket {
    tags: [u32; WAYS],
    payloads: [u32; WAYS],
}

impl Bucket {
    const FREE: Self = Self {
        tags: [0; WAYS],
        payloads: [EMPTY; WAYS],
    };

    /// Bit `i` set: entry `i` carries tag `h` (free or not). With DPDK's
    /// build, compared in SSE2 registers ([`crate::dpdk::matching_tags`]).
    #[cfg(feature = "dpdk")]
    #[inline]
    fn matching(&self, h: u32) -> u32 {
        crate::dpdk::matching_tags(&self.tags, h)
    }

    /// Bit `i` set: entry `i` carries tag `h` (free or not).
    #[cfg(not(feature = "dpdk"))]
    #[inline]
    fn matching(&self, h: u32) -> u32 {
        let mut m = 0;
        for (i, t) in self.tags.iter().enumerate() {
            m |= u32::from(*t == h) << i;
        }
        m
    }

    #[inline]
    fn free_entry(&self) -> Option<usize> {
        self.payloads.iter().position(|p| *p == EMPTY)
    }
}

/// The index. See the module doc.
#[derive(Debug)]
pub(crate) struct HashIndex {
    buckets: Store<Bucket>,
    entries: usize,
}

/// Payloads whose tag matches, first bucket first (the caller compares keys).
pub(crate) struct Probe<'a> {
    index: &'a HashIndex,
    tag: u32,
    /// Bucket being read, and whether the other one is still to read
    /// (found only then: a hit in the first bucket does not compute it).
    at: usize,
    second: bool,
    /// Tag matches in `at` not yet returned.
    mask: u32,
}

impl Iterator for Probe<'_> {
    type Item = u32;

    #[inline]
    fn next(&mut self) -> Option<u32> {
        loop {
            if self.mask != 0 {
                let i = self.mask.trailing_zeros() as usize;
                self.mask &= self.mask - 1;
                let p = self.index.buckets[self.at].payloads[i];
                if p != EMPTY {
                    return Some(p);
                }
                continue;
            }
            if !std::mem::take(&mut self.second) {
                return None;
            }
            self.at = self.index.buckets_of(self.tag).1;
            self.mask = self.index.buckets[self.at].matching(self.tag);
        }
    }
}

/// A bucket the search for room reached, and how: from which node's entry.
#[derive(Debug, Clone, Copy)]
struct Node {
    bucket: u32,
    parent: u16,
    entry: u8,
}

const ROOT: u16 = u16::MAX;

impl HashIndex {
    /// An index for up to `entries` entries at a load of at most `load_pct`
    /// percent of its room (at least two buckets).
    pub(crate) fn new(entries: usize, load_pct: usize) -> Self {
        let room = (entries.max(1) * 100).div_ceil(load_pct.clamp(10, 100));
        let n = room.div_ceil(WAYS).max(2);
        Self {
            buckets: Store::filled(n, Bucket::FREE),
            entries: 0,
        }
    }

    /// Bytes an index for `entries` entries at `load_pct` takes.
    pub(crate) fn bytes_for(entries: usize, load_pct: usize) -> usize {
        let room = (entries.max(1) * 100).div_ceil(load_pct.clamp(10, 100));
        room.div_ceil(WAYS).max(2) * std::mem::size_of::<Bucket>()
    }

    /// Entries filed.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries
    }

    /// Entries it has room for (buckets × ways).
    #[cfg(test)]
    pub(crate) fn room(&self) -> usize {
        self.buckets.len() * WAYS
    }

    /// Bytes it takes.
    pub(crate) fn bytes(&self) -> usize {
        self.buckets.len() * std::mem::size_of::<Bucket>()
    }

    /// The first of [`Self::buckets_of`].
    #[inline]
    fn first_of(&self, h: u32) -> usize {
        ((u64::from(h) * self.buckets.len() as u64) >> 32) as usize
    }

    /// The two buckets of hash `h` (distinct when there are two or more).
    #[inline]
    fn buckets_of(&self, h: u32) -> (usize, usize) {
        let n = self.buckets.len() as u64;
        let first = self.first_of(h);
        // A second, independent multiply-shift of the same 32 bits.
        let g = (h ^ h >> 15).wrapping_mul(0x2c1b_3c6d) ^ 0x9e37_79b9;
        let mut second = ((u64::from(g ^ g >> 12) * n) >> 32) as usize;
        if second == first {
            second = if first + 1 == n as usize {
                0
            } else {
                first + 1
            };
        }
        (first, second)
    }

    /// The other bucket of an entry tagged `h` that sits in `b`.
    #[inline]
    fn other(&self, h: u32, b: usize) -> usize {
        let (first, second) = self.buckets_of(h);
        if b == first {
            second
        } else {
            first
        }
    }

    /// The payloads filed under hash `h`.
    #[inline]
    pub(crate) fn probe(&self, h: u32) -> Probe<'_> {
        let first = self.first_of(h);
        Probe {
            index: self,
            tag: h,
            at: first,
            second: true,
            mask: self.buckets[first].matching(h),
        }
    }

    /// The first payload filed under hash `h` that `is` accepts (the
    /// caller's key compare): [`Self::probe`] without the iterator's state,
    /// for the lookup of every packet. The second bucket is read only when
    /// the first has no such entry.
    #[inline(always)]
    pub(crate) fn find(&self, h: u32, mut is: impl FnMut(u32) -> bool) -> Option<u32> {
        let first = self.first_of(h);
        if let Some(p) = Self::find_in(&self.buckets[first], h, &mut is) {
            return Some(p);
        }
        Self::find_in(&self.buckets[self.buckets_of(h).1], h, &mut is)
    }

    #[inline(always)]
    fn find_in(b: &Bucket, h: u32, is: &mut impl FnMut(u32) -> bool) -> Option<u32> {
        let mut m = b.matching(h);
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let p = b.payloads[i % WAYS];
            if p != EMPTY && is(p) {
                return Some(p);
            }
        }
        None
    }

    /// The payloads filed under hash `h`, both buckets read at once: for
    /// an insert's duplicate check, which expects to find nothing and so
    /// reads both; their two memory misses then overlap instead of the
    /// second waiting for the first to be scanned. First bucket first.
    #[inline]
    pub(crate) fn probe_both(&self, h: u32) -> impl Iterator<Item = u32> + '_ {
        let (first, second) = self.buckets_of(h);
        let (b1, b2) = (&self.buckets[first], &self.buckets[second]);
        // Both masks in one word before any branch: both lines are loaded.
        let mut m = b1.matching(h) | b2.matching(h) << WAYS;
        std::iter::from_fn(move || {
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                let p = if i < WAYS {
                    b1.payloads[i]
                } else {
                    b2.payloads[i - WAYS]
                };
                if p != EMPTY {
                    return Some(p);
                }
            }
            None
        })
    }

    /// The first payload whose tag is `h` in one of its two buckets alone
    /// (`away`: the second): the worker's read-ahead asks the first bucket,
    /// already prefetched, and only if that has none, the second, which it
    /// prefetches in the meantime instead of waiting for it.
    #[inline]
    pub(crate) fn first_in(&self, h: u32, away: bool) -> Option<u32> {
        let b = if away { self.away(h) } else { self.home(h) };
        let mut m = b.matching(h);
        while m != 0 {
            let i = m.trailing_zeros() as usize;
            m &= m - 1;
            let p = b.payloads[i % WAYS];
            if p != EMPTY {
                return Some(p);
            }
        }
        None
    }

    /// The bucket a probe for hash `h` reads first (what to prefetch).
    #[inline]
    pub(crate) fn home(&self, h: u32) -> &Bucket {
        &self.buckets[self.first_of(h)]
    }

    /// The bucket a probe for hash `h` reads if the first lacks it.
    #[inline]
    pub(crate) fn away(&self, h: u32) -> &Bucket {
        &self.buckets[self.buckets_of(h).1]
    }

    /// Files `payload` under hash `h`; false (nothing changed) when neither
    /// of its buckets can be made room in.
    pub(crate) fn insert(&mut self, h: u32, payload: u32) -> bool {
        debug_assert_ne!(payload, EMPTY);
        let (first, second) = self.buckets_of(h);
        for b in [first, second] {
            if let Some(i) = self.buckets[b].free_entry() {
                self.put(b, i, h, payload);
                return true;
            }
        }
        let Some((path, end, free)) = self.search(first, second) else {
            return false;
        };
        // Move along the path from its end: each move fills the entry the
        // previous one freed, the first fills a free entry.
        let (mut node, mut into) = (end, free);
        loop {
            let n = path[node];
            if n.parent == ROOT {
                self.put(n.bucket as usize, into.1, h, payload);
                return true;
            }
            let p = path[usize::from(n.parent)];
            let (from_b, from_i) = (p.bucket as usize, usize::from(n.entry));
            let b = &self.buckets[from_b];
            let (tag, pl) = (b.tags[from_i], b.payloads[from_i]);
            self.buckets[into.0].tags[into.1] = tag;
            self.buckets[into.0].payloads[into.1] = pl;
            into = (from_b, from_i);
            node = usize::from(n.parent);
        }
    }

    /// Breadth-first search from the two buckets for a bucket with a free
    /// entry reachable by moving entries to their other bucket. The path
    /// visits no bucket twice. Returns the nodes, the node whose entry moves
    /// into the free entry, and that free entry (bucket, entry).
    #[allow(clippy::type_complexity)]
    fn search(
        &self,
        first: usize,
        second: usize,
    ) -> Option<([Node; SEARCH], usize, (usize, usize))> {
        let mut nodes = [Node {
            bucket: 0,
            parent: ROOT,
            entry: 0,
        }; SEARCH];
        nodes[0].bucket = first as u32;
        nodes[1].bucket = second as u32;
        let (mut head, mut len) = (0, 2);
        while head < len {
            let b = nodes[head].bucket as usize;
            for e in 0..WAYS {
                let alt = self.other(self.buckets[b].tags[e], b);
                if Self::on_path(&nodes, head, alt) {
                    continue;
                }
                if len == SEARCH {
                    return None;
                }
                nodes[len] = Node {
                    bucket: alt as u32,
                    parent: head as u16,
                    entry: e as u8,
                };
                if let Some(i) = self.buckets[alt].free_entry() {
                    return Some((nodes, len, (alt, i)));
                }
                len += 1;
            }
            head += 1;
        }
        None
    }

    /// True if bucket `b` is node `at` or one of its ancestors.
    fn on_path(nodes: &[Node; SEARCH], mut at: usize, b: usize) -> bool {
        loop {
            if nodes[at].bucket as usize == b {
                return true;
            }
            if nodes[at].parent == ROOT {
                return false;
            }
            at = usize::from(nodes[at].parent);
        }
    }

    fn put(&mut self, b: usize, i: usize, h: u32, payload: u32) {
        self.buckets[b].tags[i] = h;
        self.buckets[b].payloads[i] = payload;
        self.entries += 1;
    }

    /// Removes the entry (`h`, `payload`); false if it was not there.
    pub(crate) fn remove(&mut self, h: u32, payload: u32) -> bool {
        let (first, second) = self.buckets_of(h);
        for b in [first, second] {
            let bucket = &mut self.buckets[b];
            let mut m = bucket.matching(h);
            while m != 0 {
                let i = m.trailing_zeros() as usize;
                m &= m - 1;
                if bucket.payloads[i] == payload {
                    bucket.payloads[i] = EMPTY;
                    bucket.tags[i] = 0;
                    self.entries -= 1;
                    return true;
                }
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_bucket_is_one_cache_line() {
        println!(
            "size_of::<Bucket>() = {}, align {}",
            std::mem::size_of::<Bucket>(),
            std::mem::align_of::<Bucket>()
        );
        assert_eq!(std::mem::size_of::<Bucket>(), 64);
        assert_eq!(std::mem::align_of::<Bucket>(), 64);
    }

    /// The index against a map from payload to hash: every filed payload is
    /// found under its hash, nothing else is, removals answer as the model.
    fn check(idx: &HashIndex, model: &HashMap<u32, u32>) -> Result<(), TestCaseError> {
        prop_assert_eq!(idx.len(), model.len());
        for (&p, &h) in model {
            prop_assert_eq!(
                idx.probe(h).filter(|&x| x == p).count(),
                1,
                "{} under {:#x}",
                p,
                h
            );
            for x in idx.probe(h) {
                prop_assert_eq!(model.get(&x), Some(&h), "{} filed under {:#x}", x, h);
            }
            // Both buckets at once: the same payloads, in the same order.
            prop_assert_eq!(
                idx.probe_both(h).collect::<Vec<_>>(),
                idx.probe(h).collect::<Vec<_>>()
            );
        }
        Ok(())
    }

    proptest! {
        // A tiny hash space: tags repeat, buckets fill, entries move.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u32..24, 0u32..200), 1..600)) {
            let mut idx = HashIndex::new(48, 80);
            let mut model: HashMap<u32, u32> = HashMap::new();
            for (add, h, p) in ops {
                let h = h.wrapping_mul(0x9e37_79b9);
                if add {
                    if model.contains_key(&p) {
                        continue;
                    }
                    let before: Vec<Bucket> = idx.buckets.to_vec();
                    if idx.insert(h, p) {
                        model.insert(p, h);
                    } else {
                        // Refused: nothing moved.
                        prop_assert_eq!(idx.buckets.to_vec(), before);
                    }
                } else {
                    let want = model.get(&p) == Some(&h);
                    prop_assert_eq!(idx.remove(h, p), want);
                    if want {
                        model.remove(&p);
                    }
                }
                check(&idx, &model)?;
            }
        }

        // Distinct random hashes up to the designed load: nothing refused,
        // and then everything removed again, leaving an empty index.
        #[test]
        fn fills_to_its_load_and_empties(hashes in proptest::collection::hash_set(any::<u32>(), 300..=320)) {
            let mut idx = HashIndex::new(320, 80);
            let mut model = HashMap::new();
            for (p, &h) in hashes.iter().enumerate() {
                prop_assert!(idx.insert(h, p as u32), "refused at {} of {}", idx.len(), idx.room());
                model.insert(p as u32, h);
            }
            prop_assert!(idx.len() * 100 >= idx.room() * 75, "load {} of {}", idx.len(), idx.room());
            check(&idx, &model)?;
            for (p, h) in model.drain() {
                prop_assert!(idx.remove(h, p));
                prop_assert!(!idx.remove(h, p));
            }
            prop_assert_eq!(idx.len(), 0);
        }
    }

    #[test]
    fn a_full_pair_of_buckets_refuses_and_changes_nothing() {
        // Seventeen entries of one hash: its two buckets hold sixteen.
        let mut idx = HashIndex::new(64, 80);
        let h = 0x1234_5678;
        for p in 0..16 {
            assert!(idx.insert(h, p));
        }
        let before: Vec<Bucket> = idx.buckets.to_vec();
        assert!(!idx.insert(h, 16));
        assert_eq!(idx.buckets.to_vec(), before);
        assert_eq!(idx.len(), 16);
        let mut found: Vec<u32> = idx.probe(h).collect();
        found.sort_unstable();
        assert_eq!(found, (0..16).collect::<Vec<_>>());
        // A removal makes room again.
        assert!(idx.remove(h, 3));
        assert!(idx.insert(h, 16));
    }

    #[test]
    fn entries_move_to_their_other_bucket_to_make_room() {
        // Fill every bucket with distinct hashes until inserts need moves:
        // at 95 % of the room, nearly every insert finds a full first bucket.
        let mut idx = HashIndex::new(400, 100);
        let mut model = HashMap::new();
        let mut x = 0x2545_f491_4f6c_dd1d_u64;
        let mut p = 0;
        while idx.len() * 100 < idx.room() * 95 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = (x >> 32) as u32;
            if model.values().any(|&v| v == h) {
                continue;
            }
            assert!(
                idx.insert(h, p),
                "refused at {} of {}",
                idx.len(),
                idx.room()
            );
            model.insert(p, h);
            p += 1;
        }
        check(&idx, &model).unwrap();
    }
}
