//! The neighbour table, run by control.
//!
//! Workers report what ARP packets taught them and which next hops they
//! lacked ([`NeighEvent`]); this table keeps one entry per address with its
//! resolution state, decides when an ARP request is due (unresolved: every
//! second; resolved: refresh after 30 s), and produces the [`NeighMap`]
//! snapshot workers forward by. An entry that stays unanswered for
//! [`FAIL_AFTER`] requests is marked failed but kept wanted: a real server
//! that comes back is found again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dataplane::addr::Addr;
use dataplane::neigh::{NeighEntry, NeighEvent, NeighMap};
use dataplane::wire::MacAddr;

/// Retry interval while unresolved.
pub const RETRY: Duration = Duration::from_secs(1);
/// Refresh interval once resolved.
pub const REFRESH: Duration = Duration::from_secs(30);
/// Unanswered requests before an entry counts as failed.
pub const FAIL_AFTER: u32 = 3;
/// Most entries tracked.
pub const CAPACITY: usize = 4096;

/// Resolution state, as `rvsadm neigh` will show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Asked, not answered yet.
    Incomplete,
    /// Answered.
    Reachable,
    /// Asked [`FAIL_AFTER`] times without an answer.
    Failed,
    /// Added by hand (`rvsadm neigh add`): never asked, never replaced by
    /// what ARP says.
    Permanent,
}

#[derive(Debug, Clone)]
struct Entry {
    mac: Option<MacAddr>,
    port: u16,
    state: State,
    last_request: Option<Instant>,
    unanswered: u32,
    updated: Instant,
}

/// The table.
#[derive(Debug, Default)]
pub struct NeighTable {
    entries: BTreeMap<Addr, Entry>,
}

impl NeighTable {
    /// Applies a worker's event. Returns true if the snapshot must change.
    pub fn apply(&mut self, e: NeighEvent, now: Instant) -> bool {
        match e {
            NeighEvent::Learned(n) => self.learn(n, now),
            NeighEvent::Wanted { ip, port } => {
                self.want(ip, port, now);
                false
            }
        }
    }

    /// Records `n`. Returns true if the MAC is new or changed.
    pub fn learn(&mut self, n: NeighEntry, now: Instant) -> bool {
        if let Some(e) = self.entries.get_mut(&n.ip) {
            if e.state == State::Permanent {
                return false;
            }
            let changed = e.mac != Some(n.mac);
            e.mac = Some(n.mac);
            e.port = n.port;
            e.state = State::Reachable;
            e.unanswered = 0;
            e.updated = now;
            return changed;
        }
        if self.entries.len() >= CAPACITY {
            return false;
        }
        self.entries.insert(
            n.ip,
            Entry { mac: Some(n.mac), port: n.port, state: State::Reachable, last_request: None, unanswered: 0, updated: now },
        );
        true
    }

    /// Asks for `ip` to be resolved on `port`.
    pub fn want(&mut self, ip: Addr, port: u16, now: Instant) {
        if self.entries.len() < CAPACITY || self.entries.contains_key(&ip) {
            self.entries.entry(ip).or_insert(Entry {
                mac: None,
                port,
                state: State::Incomplete,
                last_request: None,
                unanswered: 0,
                updated: now,
            });
        }
    }

    /// Calls `send(port, ip)` for each entry whose ARP request is due.
    pub fn due_requests(&mut self, now: Instant, mut send: impl FnMut(u16, Addr)) {
        for (ip, e) in self.entries.iter_mut().filter(|(_, e)| e.state != State::Permanent) {
            let since_ask = e.last_request.map(|t| now.saturating_duration_since(t));
            let due = match e.mac {
                None => since_ask.is_none_or(|d| d >= RETRY),
                Some(_) => now.saturating_duration_since(e.updated) >= REFRESH && since_ask.is_none_or(|d| d >= RETRY),
            };
            if due {
                if e.last_request.is_some_and(|t| t > e.updated) {
                    e.unanswered += 1;
                    if e.unanswered >= FAIL_AFTER {
                        e.state = State::Failed;
                    }
                }
                e.last_request = Some(now);
                send(e.port, *ip);
            }
        }
    }

    /// Adds a permanent entry (replacing a learned one). Returns false if
    /// the table is full.
    pub fn add_static(&mut self, n: NeighEntry, now: Instant) -> bool {
        if self.entries.len() >= CAPACITY && !self.entries.contains_key(&n.ip) {
            return false;
        }
        let e = Entry { mac: Some(n.mac), port: n.port, state: State::Permanent, last_request: None, unanswered: 0, updated: now };
        self.entries.insert(n.ip, e);
        true
    }

    /// Removes the entry for `ip` (any state). Returns false if there was none.
    pub fn remove(&mut self, ip: Addr) -> bool {
        self.entries.remove(&ip).is_some()
    }

    /// The snapshot workers forward by: every entry with a MAC.
    #[must_use]
    pub fn snapshot(&self) -> NeighMap {
        NeighMap::new(
            self.entries
                .iter()
                .filter_map(|(ip, e)| e.mac.map(|mac| NeighEntry { ip: *ip, mac, port: e.port }))
                .collect(),
        )
    }

    /// Entries with their state, for listings.
    pub fn iter(&self) -> impl Iterator<Item = (Addr, Option<MacAddr>, u16, State)> + '_ {
        self.entries.iter().map(|(ip, e)| (*ip, e.mac, e.port, e.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn want_request_retry_learn_refresh() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.want(Addr::v4([10, 0, 0, 11]), 0, t0);
        let mut sent = vec![];
        n.due_requests(t0, |p, ip| sent.push((p, ip)));
        assert_eq!(sent, vec![(0, Addr::v4([10, 0, 0, 11]))]);
        sent.clear();
        n.due_requests(t0 + Duration::from_millis(500), |p, ip| sent.push((p, ip)));
        assert!(sent.is_empty(), "retried too soon");
        n.due_requests(t0 + Duration::from_secs(1), |p, ip| sent.push((p, ip)));
        assert_eq!(sent.len(), 1);
        assert!(n.snapshot().entries().is_empty());
        assert!(n.learn(NeighEntry { ip: Addr::v4([10, 0, 0, 11]), mac: [2; 6], port: 0 }, t0 + Duration::from_millis(1100)));
        assert_eq!(n.snapshot().lookup(Addr::v4([10, 0, 0, 11])), Some([2; 6]));
        assert!(!n.learn(NeighEntry { ip: Addr::v4([10, 0, 0, 11]), mac: [2; 6], port: 0 }, t0 + Duration::from_millis(1200)), "same MAC: no new snapshot");
        sent.clear();
        n.due_requests(t0 + Duration::from_secs(20), |p, ip| sent.push((p, ip)));
        assert!(sent.is_empty());
        n.due_requests(t0 + Duration::from_secs(32), |p, ip| sent.push((p, ip)));
        assert_eq!(sent.len(), 1, "refresh after 30 s");
    }

    #[test]
    fn unanswered_entries_fail_but_stay_wanted() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.want(Addr::v4([10, 0, 0, 9]), 0, t0);
        let mut count = 0;
        for s in 0..5 {
            n.due_requests(t0 + Duration::from_secs(s), |_, _| count += 1);
        }
        assert_eq!(count, 5);
        assert_eq!(n.iter().next().map(|e| e.3), Some(State::Failed));
    }

    #[test]
    fn permanent_entries_are_never_asked_or_replaced() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.want(Addr::v4([10, 0, 0, 9]), 0, t0);
        assert!(n.add_static(NeighEntry { ip: Addr::v4([10, 0, 0, 9]), mac: [9; 6], port: 0 }, t0));
        let mut count = 0;
        n.due_requests(t0 + Duration::from_secs(60), |_, _| count += 1);
        assert_eq!(count, 0);
        assert!(!n.learn(NeighEntry { ip: Addr::v4([10, 0, 0, 9]), mac: [1; 6], port: 0 }, t0));
        assert_eq!(n.snapshot().lookup(Addr::v4([10, 0, 0, 9])), Some([9; 6]));
        assert_eq!(n.iter().next().map(|e| e.3), Some(State::Permanent));
        assert!(n.remove(Addr::v4([10, 0, 0, 9])) && !n.remove(Addr::v4([10, 0, 0, 9])));
    }
}
