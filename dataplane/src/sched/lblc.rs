//! Locality-based least connection (`ip_vs_lblc.c`).
//!
//! A cache maps a destination address to the server last chosen for it. A
//! new connection to a cached destination goes to that server unless it has
//! weight 0, is gone, or is *overloaded* in lblc's sense:
//!
//! ```text
//! active > weight  and  some server d of the service has  d.active * 2 < d.weight
//! ```
//!
//! (busier than its weight while another server is under half of its). Then,
//! and for an uncached destination, the server is chosen by weighted least
//! connection ([`super::wlc`]) and the cache points at it.
//!
//! rvs's cache is per worker and per service: 256 direct-mapped entries
//! (a colliding destination replaces the entry), allocated when the worker
//! adopts the snapshot; entries unused for [`EXPIRATION`] (the kernel's
//! `lblc_expiration`, 24 h) are ignored. Entries hold the server's global
//! index, so they survive snapshots. Unlike the kernel, a cached server that
//! is over its connection threshold (`-x`) is not used: thresholds hold for
//! every policy.
//!
//! The destination of a connection to an `IP:port` service is its VIP, so
//! all connections share one entry: the service sticks to one server until
//! that server is overloaded as above (the kernel behaves the same; lblc is
//! meant for services that catch many destinations).

use super::{wlc, Backends, Flow};
use crate::time::Millis;

/// Cache entries per service per worker.
pub const CACHE_SIZE: usize = 256;
/// Unused cache entries older than this are ignored (`lblc_expiration`).
pub const EXPIRATION: u64 = 24 * 3600 * 1000;

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    dest: [u8; 4],
    id: u16,
    used: bool,
    lastuse: Millis,
}

/// One worker's lblc cache for one service.
#[derive(Debug, Clone)]
pub struct Lblc {
    entries: Box<[Entry]>,
}

impl Default for Lblc {
    fn default() -> Self {
        Self {
            entries: vec![Entry::default(); CACHE_SIZE].into_boxed_slice(),
        }
    }
}

/// lblc's and lblcr's `is_overloaded()`.
#[inline]
pub(crate) fn is_overloaded<B: Backends>(b: &B, i: usize) -> bool {
    b.active(i) > b.weight(i)
        && (0..b.len()).any(|d| u64::from(b.active(d)) * 2 < u64::from(b.weight(d)))
}

/// The cache slot of destination `dest`.
#[inline]
pub(crate) fn slot(dest: [u8; 4]) -> usize {
    super::hash::hash_32(u32::from_be_bytes(dest), CACHE_SIZE.ilog2()) as usize
}

impl Lblc {
    /// `ip_vs_lblc_schedule`.
    pub fn pick<B: Backends>(&mut self, b: &B, flow: &Flow, now: Millis) -> Option<usize> {
        let e = &mut self.entries[slot(flow.vip)];
        if e.used && e.dest == flow.vip && now.0 < e.lastuse.0.saturating_add(EXPIRATION) {
            e.lastuse = now;
            if let Some(i) = b.position(e.id) {
                if b.available(i) && !is_overloaded(b, i) {
                    return Some(i);
                }
            }
        }
        let i = wlc::pick(b)?;
        *e = Entry {
            dest: flow.vip,
            id: b.id(i),
            used: true,
            lastuse: now,
        };
        Some(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testkit::Servers;
    use super::*;

    fn flow(vip: [u8; 4]) -> Flow {
        Flow {
            client: [1, 1, 1, 1],
            client_port: 1,
            vip,
            vip_port: 80,
        }
    }

    #[test]
    fn sticks_until_overloaded_then_moves() {
        let mut c = Lblc::default();
        let mut s = Servers::weights(&[2, 2]);
        let v = [10, 0, 0, 100];
        // wlc picks A; the cache keeps A while A.active <= weight.
        for _ in 0..3 {
            let i = c.pick(&s, &flow(v), Millis(1)).unwrap();
            assert_eq!(i, 0);
            s.connect(i);
        }
        // A has 3 active > weight 2, and B has 0*2 < 2: overloaded, move to B.
        assert_eq!(c.pick(&s, &flow(v), Millis(2)), Some(1));
        s.connect(1);
        // The cache now points at B.
        assert_eq!(c.pick(&s, &flow(v), Millis(3)), Some(1));
        s.connect(1);
        // B: 2 active, not above weight: stays even though A would be worse.
        assert_eq!(c.pick(&s, &flow(v), Millis(3)), Some(1));
    }

    #[test]
    fn no_move_when_nobody_is_under_half() {
        let mut c = Lblc::default();
        let v = [10, 0, 0, 100];
        let s = Servers::weights(&[1, 2]).with_active(&[0, 0]);
        assert_eq!(c.pick(&s, &flow(v), Millis(0)), Some(0));
        // A: 5 active > 1, B: 1*2 < 2 is false: not overloaded, stays.
        let s = Servers::weights(&[1, 2]).with_active(&[5, 1]);
        assert_eq!(c.pick(&s, &flow(v), Millis(1)), Some(0));
    }

    #[test]
    fn drained_threshold_and_expiry_reschedule() {
        let mut c = Lblc::default();
        let v = [10, 0, 0, 100];
        let mut s = Servers::weights(&[1, 1]).with_active(&[0, 1]);
        assert_eq!(c.pick(&s, &flow(v), Millis(0)), Some(0));
        s.over[0] = true;
        assert_eq!(
            c.pick(&s, &flow(v), Millis(1)),
            Some(1),
            "threshold honoured"
        );
        s.over[0] = false;
        s.weight[1] = 0;
        assert_eq!(c.pick(&s, &flow(v), Millis(2)), Some(0));
        // An entry unused for a day is forgotten: wlc decides afresh.
        s.weight[1] = 1;
        s.active = vec![1, 0];
        assert_eq!(c.pick(&s, &flow(v), Millis(3)), Some(0));
        assert_eq!(c.pick(&s, &flow(v), Millis(3 + EXPIRATION)), Some(1));
    }
}
