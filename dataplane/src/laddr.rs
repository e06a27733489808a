//! Local-address port pools for FULLNAT (DPVS's `sa_pool`).
//!
//! A FULLNAT session borrows one (local address, port) pair for its life:
//! the real server replies to it, and the pair is the session's RS-side key.
//! Each worker owns one pool per local address, so allocation touches no
//! shared state. A pool is a FIFO ring of free ports plus an in-use bitmap:
//! allocation and release are O(1), a port is never handed out twice while in
//! use (the bitmap refuses double releases), and a released port goes to the
//! back of the queue, so a real server's TIME_WAIT for a recent pair has long
//! passed before the pair is reused.
//!
//! With several workers, each owns a disjoint slice of every local address's
//! port space: port `p` belongs to worker `p % workers`
//! ([`owner_of`]). A reply from a real server to `laddr:p` therefore names
//! its session's worker in its destination port, whichever queue RSS put it
//! on: the receiving worker hands it to the owner over a ring, or an
//! `rte_flow` rule on the port's low bits steers it there directly (DPVS's
//! `sa_pool` does the same with a port mask).

use std::collections::VecDeque;

/// Why a port could not be released.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseError {
    /// The port is outside the pool's range.
    #[error("port {0} is not in this pool")]
    OutOfRange(u16),
    /// The port is not allocated.
    #[error("port {0} is not in use")]
    NotInUse(u16),
}

/// Why a given port could not be claimed ([`PortPool::claim`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ClaimError {
    /// The port is outside the range or another worker's slice.
    #[error("port {0} is not in this pool")]
    NotOurs(u16),
    /// The port is lent already.
    #[error("port {0} is in use")]
    InUse(u16),
}

/// The free ports of one local address on one worker.
#[derive(Debug)]
pub struct PortPool {
    first: u16,
    last: u16,
    free: VecDeque<u16>,
    in_use: Vec<u64>,
    size: usize,
    used: usize,
    workers: u16,
    index: u16,
}

/// The worker owning local port `port` when there are `workers` workers.
#[inline]
#[must_use]
pub fn owner_of(port: u16, workers: u16) -> usize {
    usize::from(port % workers.max(1))
}

impl PortPool {
    /// A pool of the ports `first..=last` (empty if `first > last`).
    #[must_use]
    pub fn new(first: u16, last: u16) -> Self {
        Self::new_slice(first, last, 1, 0)
    }

    /// The slice of `first..=last` owned by worker `index` of `workers`:
    /// the ports `p` with `owner_of(p, workers) == index`.
    #[must_use]
    pub fn new_slice(first: u16, last: u16, workers: u16, index: u16) -> Self {
        let workers = workers.max(1);
        let mut free = VecDeque::new();
        if first <= last {
            free.extend((first..=last).filter(|p| owner_of(*p, workers) == usize::from(index)));
        }
        let size = free.len();
        // Room for the stale entries claims leave (see `claim`), so that a
        // release never grows the queue on the packet path.
        free.reserve(size * 2 + 64);
        Self {
            first,
            last,
            free,
            in_use: vec![0; 65536 / 64],
            size,
            used: 0,
            workers,
            index,
        }
    }

    #[inline]
    fn is_used(&self, port: u16) -> bool {
        self.in_use[usize::from(port) / 64] & (1 << (port % 64)) != 0
    }

    /// Starts lending at the free queue's `n`-th port (modulo its length),
    /// in the same order after it. A restarted box that lent from the
    /// range's start again would reuse the tuples its servers may still
    /// hold in TIME_WAIT, which costs each such connection a reset and a
    /// SYN retransmission.
    pub fn rotate(&mut self, n: u64) {
        if !self.free.is_empty() {
            let k = (n % self.free.len() as u64) as usize;
            self.free.rotate_left(k);
        }
    }

    /// Takes a free port, or `None` when the pool is exhausted.
    #[inline]
    pub fn alloc(&mut self) -> Option<u16> {
        loop {
            let p = self.free.pop_front()?;
            // A port claimed while queued (sync) left its entry behind.
            if self.is_used(p) {
                continue;
            }
            self.in_use[usize::from(p) / 64] |= 1 << (p % 64);
            self.used += 1;
            return Some(p);
        }
    }

    /// Takes the given `port` (a session a backup installs from sync keeps
    /// the master's local port). Its entry in the free queue stays behind
    /// and is skipped when reached; the queue is compacted when such
    /// entries pile up. Not for the packet path.
    ///
    /// # Errors
    /// [`ClaimError::NotOurs`] outside this worker's slice of the range,
    /// [`ClaimError::InUse`] if it is lent already.
    pub fn claim(&mut self, port: u16) -> Result<(), ClaimError> {
        if port < self.first
            || port > self.last
            || owner_of(port, self.workers) != usize::from(self.index)
        {
            return Err(ClaimError::NotOurs(port));
        }
        if self.is_used(port) {
            return Err(ClaimError::InUse(port));
        }
        self.in_use[usize::from(port) / 64] |= 1 << (port % 64);
        self.used += 1;
        if self.free.len() > self.size + self.size / 2 {
            let mut seen = vec![0u64; 65536 / 64];
            let in_use = &self.in_use;
            self.free.retain(|&p| {
                let (w, b) = (usize::from(p) / 64, p % 64);
                let keep = in_use[w] & (1 << b) == 0 && seen[w] & (1 << b) == 0;
                seen[w] |= 1 << b;
                keep
            });
        }
        Ok(())
    }

    /// Gives `port` back.
    ///
    /// # Errors
    /// If `port` is outside the range or not currently allocated; the pool is
    /// unchanged.
    pub fn release(&mut self, port: u16) -> Result<(), ReleaseError> {
        if port < self.first || port > self.last {
            return Err(ReleaseError::OutOfRange(port));
        }
        let (w, b) = (usize::from(port) / 64, port % 64);
        if self.in_use[w] & (1 << b) == 0 {
            return Err(ReleaseError::NotInUse(port));
        }
        self.in_use[w] &= !(1 << b);
        self.used -= 1;
        self.free.push_back(port);
        Ok(())
    }

    /// Ports currently free.
    #[must_use]
    pub fn available(&self) -> usize {
        self.size - self.used
    }

    /// Ports in the pool (its slice of the range).
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }
}

/// A worker's pools, one per local address, with the number of them lent
/// at or above a fill mark (the flood guard's `port_high_water`, see
/// [`crate::guard`]) kept as ports are lent and given back: the guard,
/// judged at every new connection, reads one count instead of walking
/// every pool. Read access is the pools' slice; changes go through here.
#[derive(Debug)]
pub struct PortPools {
    pools: Vec<PortPool>,
    /// The fill mark, percent.
    pct: u8,
    /// Pools at or above it.
    high: usize,
}

impl PortPools {
    /// No pools yet; a pool counts as high from `pct` percent lent.
    #[must_use]
    pub fn new(pct: u8) -> Self {
        Self {
            pools: Vec::new(),
            pct,
            high: 0,
        }
    }

    #[inline]
    fn is_high(pct: u8, p: &PortPool) -> bool {
        crate::guard::over(p.used, p.size, pct)
    }

    /// Sets the fill mark and counts again.
    pub fn set_mark(&mut self, pct: u8) {
        self.pct = pct;
        self.high = self.pools.iter().filter(|p| Self::is_high(pct, p)).count();
    }

    /// True if any pool is lent at or above the mark.
    #[inline]
    #[must_use]
    pub fn any_high(&self) -> bool {
        self.high > 0
    }

    /// Adds a pool (the next local address's).
    pub fn push(&mut self, pool: PortPool) {
        self.high += usize::from(Self::is_high(self.pct, &pool));
        self.pools.push(pool);
    }

    /// [`PortPool::rotate`] of pool `i`, if it exists.
    pub fn rotate(&mut self, i: usize, n: u64) {
        if let Some(p) = self.pools.get_mut(i) {
            p.rotate(n);
        }
    }

    /// Runs `f` on pool `i` (`None` if there is none), keeping the count.
    #[inline]
    fn with<R>(&mut self, i: usize, f: impl FnOnce(&mut PortPool) -> R) -> Option<R> {
        let pct = self.pct;
        let p = self.pools.get_mut(i)?;
        let before = Self::is_high(pct, p);
        let r = f(p);
        let after = Self::is_high(pct, p);
        if before != after {
            if after {
                self.high += 1;
            } else {
                self.high -= 1;
            }
        }
        Some(r)
    }

    /// [`PortPool::alloc`] of pool `i` (`None` also if there is none).
    #[inline]
    pub fn alloc(&mut self, i: usize) -> Option<u16> {
        self.with(i, PortPool::alloc).flatten()
    }

    /// [`PortPool::release`] of pool `i`; `None` if there is none.
    #[inline]
    pub fn release(&mut self, i: usize, port: u16) -> Option<Result<(), ReleaseError>> {
        self.with(i, |p| p.release(port))
    }

    /// [`PortPool::claim`] of pool `i`; `None` if there is none.
    pub fn claim(&mut self, i: usize, port: u16) -> Option<Result<(), ClaimError>> {
        self.with(i, |p| p.claim(port))
    }
}

impl std::ops::Deref for PortPools {
    type Target = [PortPool];

    fn deref(&self) -> &[PortPool] {
        &self.pools
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use proptest::prelude::*;

    use super::*;

    #[test]
    fn exhausts_and_refuses_bad_releases() {
        let mut p = PortPool::new(1000, 1002);
        let got: Vec<_> = std::iter::from_fn(|| p.alloc()).collect();
        assert_eq!(got, vec![1000, 1001, 1002]);
        assert_eq!(p.alloc(), None);
        assert_eq!(p.release(999), Err(ReleaseError::OutOfRange(999)));
        p.release(1001).unwrap();
        assert_eq!(p.release(1001), Err(ReleaseError::NotInUse(1001)));
        assert_eq!(p.alloc(), Some(1001));
    }

    #[test]
    fn a_rotated_pool_starts_at_its_nth_port_and_lends_every_port_once() {
        let mut p = PortPool::new(1000, 1009);
        p.rotate(23);
        let got: Vec<_> = std::iter::from_fn(|| p.alloc()).collect();
        assert_eq!(
            got,
            vec![1003, 1004, 1005, 1006, 1007, 1008, 1009, 1000, 1001, 1002]
        );
        let mut q = PortPool::new_slice(1000, 1099, 2, 1);
        q.rotate(7);
        let first = q.alloc().unwrap();
        assert_eq!(owner_of(first, 2), 1, "still the worker's own slice");
        assert_ne!(first, 1001, "not the slice's first port");
    }

    #[test]
    fn released_ports_go_to_the_back() {
        let mut p = PortPool::new(1, 4);
        let a = p.alloc().unwrap();
        p.release(a).unwrap();
        assert_eq!(p.alloc(), Some(2));
    }

    #[test]
    fn slices_partition_the_range() {
        let pools: Vec<_> = (0..3)
            .map(|i| PortPool::new_slice(1000, 1099, 3, i))
            .collect();
        assert_eq!(pools.iter().map(PortPool::size).sum::<usize>(), 100);
        let mut all: Vec<u16> = Vec::new();
        for (i, mut p) in pools.into_iter().enumerate() {
            while let Some(port) = p.alloc() {
                assert_eq!(owner_of(port, 3), i);
                all.push(port);
            }
        }
        all.sort_unstable();
        assert_eq!(all, (1000..1100).collect::<Vec<_>>());
    }

    #[test]
    fn a_claimed_port_is_never_lent_until_released() {
        let mut p = PortPool::new_slice(1000, 1009, 2, 0);
        assert_eq!(p.claim(1001), Err(ClaimError::NotOurs(1001)));
        assert_eq!(p.claim(2000), Err(ClaimError::NotOurs(2000)));
        p.claim(1004).unwrap();
        assert_eq!(p.claim(1004), Err(ClaimError::InUse(1004)));
        assert_eq!(p.available(), 4);
        let got: Vec<_> = std::iter::from_fn(|| p.alloc()).collect();
        assert_eq!(got, vec![1000, 1002, 1006, 1008]);
        p.release(1004).unwrap();
        assert_eq!(p.alloc(), Some(1004));
        assert_eq!(p.alloc(), None);
    }

    proptest! {
        #[test]
        fn claims_and_allocs_never_hand_a_port_out_twice(
            ops in proptest::collection::vec(any::<(u8, u8)>(), 1..800)) {
            let mut p = PortPool::new_slice(100, 163, 2, 1);
            let mut held: Vec<u16> = Vec::new();
            let mut set = HashSet::new();
            let cap = p.free.capacity();
            for (op, pick) in ops {
                match op % 3 {
                    0 => if let Some(port) = p.alloc() {
                        prop_assert!(set.insert(port), "port {} lent twice", port);
                        held.push(port);
                    },
                    1 => {
                        let port = 101 + 2 * u16::from(pick % 32);
                        match p.claim(port) {
                            Ok(()) => {
                                prop_assert!(set.insert(port), "port {} claimed twice", port);
                                held.push(port);
                            }
                            Err(ClaimError::InUse(_)) => prop_assert!(set.contains(&port)),
                            Err(e) => prop_assert!(false, "{}", e),
                        }
                    }
                    _ if !held.is_empty() => {
                        let port = held.swap_remove(usize::from(pick) % held.len());
                        set.remove(&port);
                        prop_assert!(p.release(port).is_ok());
                    }
                    _ => {}
                }
                prop_assert_eq!(p.available() + held.len(), p.size());
                prop_assert_eq!(p.free.capacity(), cap, "the free queue grew");
            }
        }

        #[test]
        fn never_outside_slice_never_twice(first in 1u16..60000, span in 0u16..200,
                                          workers in 1u16..5, index in 0u16..5,
                                          ops in proptest::collection::vec(any::<(bool, u8)>(), 1..500)) {
            let last = first.saturating_add(span);
            let index = index % workers;
            let mut p = PortPool::new_slice(first, last, workers, index);
            let mut held: Vec<u16> = Vec::new();
            let mut set = HashSet::new();
            for (alloc, pick) in ops {
                if alloc || held.is_empty() {
                    if let Some(port) = p.alloc() {
                        prop_assert!((first..=last).contains(&port));
                        prop_assert_eq!(owner_of(port, workers), usize::from(index));
                        prop_assert!(set.insert(port), "port {} handed out twice", port);
                        held.push(port);
                    } else {
                        prop_assert_eq!(held.len(), p.size());
                    }
                } else {
                    let port = held.swap_remove(usize::from(pick) % held.len());
                    set.remove(&port);
                    prop_assert!(p.release(port).is_ok());
                }
                prop_assert_eq!(p.available() + held.len(), p.size());
            }
        }

        /// The count of pools at or above the mark stays what walking
        /// them says, whatever is lent, given back, claimed, and wherever
        /// the mark moves.
        #[test]
        fn pools_count_their_high_ones(
            ops in proptest::collection::vec((0u8..5, 0usize..4, 1000u16..1012, 0u8..=100), 1..300),
            pct in 0u8..=100,
        ) {
            let mut pools = PortPools::new(pct);
            for k in 0..3u16 {
                // Sizes 4, 8 and 12: ports 1000..1004+4k.
                pools.push(PortPool::new(1000, 1003 + 4 * k));
            }
            for (op, i, port, mark) in ops {
                match op {
                    0 | 1 => { pools.alloc(i); }
                    2 => { pools.release(i, port); }
                    3 => { pools.claim(i, port); }
                    _ => pools.set_mark(mark),
                }
                let walked = pools
                    .iter()
                    .any(|p| crate::guard::over(p.size() - p.available(), p.size(), pools.pct));
                prop_assert_eq!(pools.any_high(), walked);
            }
        }
    }
}
