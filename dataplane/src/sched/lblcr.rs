//! Locality-based least connection with replication (`ip_vs_lblcr.c`).
//!
//! Like [`super::lblc`], but a destination maps to a *set* of servers:
//!
//! ```text
//! n <- least-loaded (wlc) server of the set, skipping overloaded ones
//! if the set has more than one server and was not modified for EXPIRATION:
//!     remove its most-loaded server
//! if n is null or overloaded in lblc's sense:
//!     n <- wlc over the whole service; add n to the set
//! ```
//!
//! New members go to the front of the set (the kernel's `list_add`). rvs's
//! sets hold at most [`SET_MAX`] servers; adding to a full set first drops
//! its most-loaded member. Servers no longer in the service are dropped from
//! sets when met. Cache layout and expiry as lblc (per worker, 256 entries).

use super::lblc::{is_overloaded, slot, CACHE_SIZE, EXPIRATION};
use super::{wlc, Backends, Flow};
use crate::time::Millis;

/// Most servers in one destination's set.
pub const SET_MAX: usize = 8;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    dest: [u8; 4],
    used: bool,
    lastuse: Millis,
    lastmod: Millis,
    len: u8,
    set: [u16; SET_MAX],
}

impl Entry {
    fn members(&self) -> &[u16] {
        &self.set[..usize::from(self.len)]
    }

    /// Drops members no longer listed.
    fn purge<B: Backends>(&mut self, b: &B) {
        let mut k = 0;
        for j in 0..usize::from(self.len) {
            if b.position(self.set[j]).is_some() {
                self.set[k] = self.set[j];
                k += 1;
            }
        }
        self.len = k as u8;
    }

    /// `ip_vs_dest_set_min`: weighted least-loaded member, skipping
    /// overloaded ones (position in `b`).
    fn min<B: Backends>(&self, b: &B) -> Option<usize> {
        let mut it = self.members().iter().filter_map(|id| b.position(*id));
        let mut least = it.by_ref().find(|&i| !b.overloaded(i) && b.weight(i) > 0)?;
        let mut loh = b.overhead(least);
        for i in it {
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

    /// `ip_vs_dest_set_max`: weighted most-loaded member (index in the set).
    fn max<B: Backends>(&self, b: &B) -> Option<usize> {
        let pos = |j: usize| b.position(self.set[j]);
        let first =
            (0..usize::from(self.len)).find(|&j| pos(j).is_some_and(|i| b.weight(i) > 0))?;
        let (mut most, mut moh) = (first, pos(first).map_or(0, |i| b.overhead(i)));
        for j in first + 1..usize::from(self.len) {
            let Some(i) = pos(j) else { continue };
            let Some(m) = pos(most) else { continue };
            let doh = b.overhead(i);
            if moh * u64::from(b.weight(i)) < doh * u64::from(b.weight(m)) && b.weight(i) > 0 {
                (most, moh) = (j, doh);
            }
        }
        Some(most)
    }

    fn erase(&mut self, j: usize, now: Millis) {
        self.set.copy_within(j + 1..usize::from(self.len), j);
        self.len -= 1;
        self.lastmod = now;
    }

    /// `ip_vs_dest_set_insert(.., check)`: at the front, once.
    fn insert<B: Backends>(&mut self, b: &B, id: u16, now: Millis) {
        if self.members().contains(&id) {
            return;
        }
        if usize::from(self.len) == SET_MAX {
            let j = self.max(b).unwrap_or(SET_MAX - 1);
            self.erase(j, now);
        }
        self.set.copy_within(0..usize::from(self.len), 1);
        self.set[0] = id;
        self.len += 1;
        self.lastmod = now;
    }
}

/// One worker's lblcr cache for one service.
#[derive(Debug, Clone)]
pub struct Lblcr {
    entries: Box<[Entry]>,
}

impl Default for Lblcr {
    fn default() -> Self {
        Self {
            entries: vec![Entry::default(); CACHE_SIZE].into_boxed_slice(),
        }
    }
}

impl Lblcr {
    /// `ip_vs_lblcr_schedule`.
    pub fn pick<B: Backends>(&mut self, b: &B, flow: &Flow, now: Millis) -> Option<usize> {
        let e = &mut self.entries[slot(flow.vip)];
        if e.used && e.dest == flow.vip && now.0 < e.lastuse.0.saturating_add(EXPIRATION) {
            e.lastuse = now;
            e.purge(b);
            let dest = e.min(b);
            if e.len > 1 && now.0 > e.lastmod.0.saturating_add(EXPIRATION) {
                if let Some(j) = e.max(b) {
                    e.erase(j, now);
                }
            }
            if let Some(d) = dest {
                if !is_overloaded(b, d) {
                    return Some(d);
                }
            }
            let d = wlc::pick(b)?;
            e.insert(b, b.id(d), now);
            return Some(d);
        }
        let d = wlc::pick(b)?;
        *e = Entry {
            dest: flow.vip,
            used: true,
            lastuse: now,
            lastmod: now,
            len: 1,
            set: [0; SET_MAX],
        };
        e.set[0] = b.id(d);
        Some(d)
    }

    /// The server set cached for destination `dest` (global indices), for tests.
    #[must_use]
    pub fn set_of(&self, dest: [u8; 4]) -> Vec<u16> {
        let e = &self.entries[slot(dest)];
        if e.used && e.dest == dest {
            e.members().to_vec()
        } else {
            Vec::new()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    const V: [u8; 4] = [10, 0, 0, 100];

    fn flow() -> Flow {
        Flow {
            client: [1, 1, 1, 1],
            client_port: 1,
            vip: V,
            vip_port: 80,
        }
    }

    #[test]
    fn set_grows_when_overloaded_and_spreads_over_members() {
        let mut c = Lblcr::default();
        let mut s = Servers::weights(&[1, 1, 1]);
        assert_eq!(c.pick(&s, &flow(), Millis(0)), Some(0));
        s.connect(0);
        s.connect(0);
        // A: 2 > 1 and B, C are under half: A is overloaded; wlc adds B.
        assert_eq!(c.pick(&s, &flow(), Millis(1)), Some(1));
        assert_eq!(c.set_of(V), vec![1, 0], "new members go in front");
        s.connect(1);
        // Set {B, A}: least loaded B (1 active) is not overloaded: stays in set.
        assert_eq!(c.pick(&s, &flow(), Millis(2)), Some(1));
        s.connect(1);
        // B 2 > 1, C under half: B overloaded; min of set is B (2*256 vs A 2*256:
        // tie, first), so wlc over all adds C.
        assert_eq!(c.pick(&s, &flow(), Millis(3)), Some(2));
        assert_eq!(c.set_of(V), vec![2, 1, 0]);
    }

    #[test]
    fn old_sets_shrink_by_their_busiest_member() {
        let mut c = Lblcr::default();
        let mut s = Servers::weights(&[1, 1]);
        c.pick(&s, &flow(), Millis(0));
        s.active = vec![2, 0];
        assert_eq!(c.pick(&s, &flow(), Millis(1)), Some(1));
        assert_eq!(c.set_of(V), vec![1, 0]);
        // Used but not modified for a day: the busiest (A) leaves the set.
        assert_eq!(c.pick(&s, &flow(), Millis(EXPIRATION / 2)), Some(1));
        assert_eq!(c.set_of(V), vec![1, 0]);
        let later = Millis(2 + EXPIRATION);
        assert_eq!(c.pick(&s, &flow(), later), Some(1));
        assert_eq!(c.set_of(V), vec![1]);
    }

    #[test]
    fn bounded_set_and_gone_servers() {
        let mut c = Lblcr::default();
        let n = SET_MAX + 3;
        let mut s = Servers::weights(&vec![1; n]);
        for k in 0..n {
            // Make every current member overloaded so each pick adds one.
            let i = c.pick(&s, &flow(), Millis(k as u64)).unwrap();
            s.active[i] = 5;
        }
        assert_eq!(c.set_of(V).len(), SET_MAX);
        // A listed server that vanished from the service is dropped.
        let mut fewer = Servers::weights(&[1, 1]);
        fewer.active = vec![0, 0];
        let got = c.pick(&fewer, &flow(), Millis(100)).unwrap();
        assert!(got < 2);
        assert!(c.set_of(V).iter().all(|&id| id < 2));
    }
}
