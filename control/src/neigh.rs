//! The neighbour table, run by control.
//!
//! Workers report what ARP packets taught them and which next hops they
//! lacked ([`NeighEvent`]); this table keeps one entry per address with its
//! state, decides when an ARP request (or neighbour solicitation) is due,
//! and produces the [`NeighMap`] snapshot workers forward by. The states
//! are the kernel's, as `ip neigh` shows them:
//!
//! ```text
//!             want                 answer                 30 s unconfirmed
//!   (none) ─────────▶ INCOMPLETE ─────────▶ REACHABLE ─────────────────────▶ STALE
//!                      │   ▲  asked every 1 s    ▲    answer (same or new MAC) │ asked every 1 s,
//!        3 unanswered  │   │ want                └─────────────────────────────┘ MAC still used
//!                      ▼   │                                                   │ 3 unanswered
//!                     FAILED ◀─────────────────────────────────────────────────┘
//!                      │  no MAC; asked again only when a worker wants it
//!                      ▼  60 s later
//!                   (removed)                        PERMANENT: `rvsadm neigh add`, never asked
//! ```
//!
//! An answer is any ARP reply from the host (workers report every reply,
//! and any other ARP packet that shows a new MAC). A STALE entry keeps
//! forwarding by its MAC while it is asked again, so a host that answers
//! never sees its traffic interrupted, and one whose MAC changed silently
//! is followed within [`REACHABLE_TIME`] plus a second. A FAILED entry has no MAC: the
//! snapshot drops it and packets to it are dropped as `neighbour_miss`,
//! each of which wants it again — a host that comes back is found by the
//! next packet that needs it.
//!
//! Unlike the kernel, a stale entry is asked by broadcast at once rather
//! than on its next use through unicast probes: control does not see uses,
//! and a broadcast also finds a host whose MAC changed.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use dataplane::addr::Addr;
use dataplane::neigh::{NeighEntry, NeighEvent, NeighMap};
use dataplane::wire::MacAddr;

/// Retry interval while unresolved or stale.
pub const RETRY: Duration = Duration::from_secs(1);
/// How long an answer keeps an entry REACHABLE; then it is STALE and asked
/// again (the kernel's `base_reachable_time`, 30 s).
pub const REACHABLE_TIME: Duration = Duration::from_secs(30);
/// Unanswered requests before an entry counts as failed (the kernel's
/// `mcast_solicit`, 3).
pub const FAIL_AFTER: u32 = 3;
/// How long a FAILED entry stays listed unless a worker wants it again
/// (the kernel's `gc_stale_time`, 60 s).
pub const FAILED_EXPIRY: Duration = Duration::from_secs(60);
/// Most entries tracked.
pub const CAPACITY: usize = 4096;

/// Resolution state, as `ip neigh` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Asked, not answered yet.
    Incomplete,
    /// Answered within [`REACHABLE_TIME`].
    Reachable,
    /// Answered longer ago; still forwarded by, being asked again.
    Stale,
    /// Asked [`FAIL_AFTER`] times without an answer; no MAC.
    Failed,
    /// Added by hand (`rvsadm neigh add`): never asked, never replaced by
    /// what ARP says.
    Permanent,
}

impl State {
    /// The word `ip neigh` prints.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Incomplete => "INCOMPLETE",
            Self::Reachable => "REACHABLE",
            Self::Stale => "STALE",
            Self::Failed => "FAILED",
            Self::Permanent => "PERMANENT",
        }
    }
}

#[derive(Debug, Clone)]
struct Entry {
    mac: Option<MacAddr>,
    port: u16,
    state: State,
    /// When the last request went out.
    last_request: Option<Instant>,
    /// Requests sent since the last answer.
    unanswered: u32,
    /// When the state last changed (or the last answer came).
    updated: Instant,
}

impl Entry {
    fn new(mac: Option<MacAddr>, port: u16, state: State, now: Instant) -> Self {
        Self {
            mac,
            port,
            state,
            last_request: None,
            unanswered: 0,
            updated: now,
        }
    }
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
            // An own address, not a neighbour: duplicate address detection's.
            NeighEvent::Duplicate { .. } => false,
        }
    }

    /// Records an answer: `n.ip` is at `n.mac` (REACHABLE from now).
    /// Returns true if the snapshot must change (a MAC new or changed).
    pub fn learn(&mut self, n: NeighEntry, now: Instant) -> bool {
        if let Some(e) = self.entries.get_mut(&n.ip) {
            if e.state == State::Permanent {
                return false;
            }
            let changed = e.mac != Some(n.mac) || e.port != n.port;
            *e = Entry::new(Some(n.mac), n.port, State::Reachable, now);
            return changed;
        }
        if self.entries.len() >= CAPACITY {
            return false;
        }
        self.entries
            .insert(n.ip, Entry::new(Some(n.mac), n.port, State::Reachable, now));
        true
    }

    /// Asks for `ip` to be resolved on `port`: a new entry starts
    /// INCOMPLETE, a FAILED one is asked again.
    pub fn want(&mut self, ip: Addr, port: u16, now: Instant) {
        if let Some(e) = self.entries.get_mut(&ip) {
            if e.state == State::Failed {
                e.state = State::Incomplete;
                e.port = port;
                e.unanswered = 0;
                e.updated = now;
            }
            return;
        }
        if self.entries.len() < CAPACITY {
            self.entries
                .insert(ip, Entry::new(None, port, State::Incomplete, now));
        }
    }

    /// Wants the next hop of every real server of `tables` (as start-up
    /// does for the file's servers): a server added or changed at run time
    /// (`rvsadm -a`/`-e`/`-R`, a reload) is asked for at once, so the first
    /// connection to it finds its MAC instead of waiting in the hold queue.
    /// Entries already known are left as they are; a FAILED one is asked
    /// again.
    pub fn want_servers(&mut self, tables: &dataplane::tables::Tables, now: Instant) {
        for rs in tables.services.iter().flat_map(|s| &s.servers) {
            if let Some((port, nh)) = tables.next_hop(rs.addr.ip) {
                self.want(nh, port, now);
            }
        }
    }

    /// Moves entries along with time: REACHABLE ones unconfirmed for
    /// [`REACHABLE_TIME`] become STALE; INCOMPLETE and STALE ones whose
    /// last [`FAIL_AFTER`] requests went unanswered become FAILED (losing
    /// their MAC); FAILED ones go after [`FAILED_EXPIRY`]. Returns
    /// true if the snapshot must change.
    pub fn age(&mut self, now: Instant) -> bool {
        let mut changed = false;
        let since = |t: Instant| now.saturating_duration_since(t);
        self.entries.retain(|_, e| {
            match e.state {
                State::Reachable if since(e.updated) >= REACHABLE_TIME => {
                    e.state = State::Stale;
                    e.updated = now;
                    e.unanswered = 0;
                }
                State::Incomplete | State::Stale
                    if e.unanswered >= FAIL_AFTER
                        && e.last_request.is_none_or(|t| since(t) >= RETRY) =>
                {
                    changed |= e.mac.take().is_some();
                    e.state = State::Failed;
                    e.updated = now;
                }
                State::Failed if since(e.updated) >= FAILED_EXPIRY => return false,
                _ => {}
            }
            true
        });
        changed
    }

    /// Calls `send(port, ip)` for each INCOMPLETE or STALE entry whose
    /// request is due (the first at once, then every [`RETRY`]).
    pub fn due_requests(&mut self, now: Instant, mut send: impl FnMut(u16, Addr)) {
        for (ip, e) in &mut self.entries {
            if !matches!(e.state, State::Incomplete | State::Stale) || e.unanswered >= FAIL_AFTER {
                continue;
            }
            if e.last_request
                .is_none_or(|t| now.saturating_duration_since(t) >= RETRY)
            {
                e.last_request = Some(now);
                e.unanswered += 1;
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
        self.entries
            .insert(n.ip, Entry::new(Some(n.mac), n.port, State::Permanent, now));
        true
    }

    /// Removes the entry for `ip` (any state). Returns false if there was none.
    pub fn remove(&mut self, ip: Addr) -> bool {
        self.entries.remove(&ip).is_some()
    }

    /// The snapshot workers forward by: every entry with a MAC (REACHABLE,
    /// STALE, PERMANENT).
    #[must_use]
    pub fn snapshot(&self) -> NeighMap {
        NeighMap::new(
            self.entries
                .iter()
                .filter_map(|(ip, e)| {
                    e.mac.map(|mac| NeighEntry {
                        ip: *ip,
                        mac,
                        port: e.port,
                    })
                })
                .collect(),
        )
    }

    /// Entries with their state, for listings.
    pub fn iter(&self) -> impl Iterator<Item = (Addr, Option<MacAddr>, u16, State)> + '_ {
        self.entries
            .iter()
            .map(|(ip, e)| (*ip, e.mac, e.port, e.state))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RS: Addr = Addr::v4([10, 0, 0, 11]);

    fn at(mac: u8) -> NeighEntry {
        NeighEntry {
            ip: RS,
            mac: [mac; 6],
            port: 0,
        }
    }

    fn state(n: &NeighTable, ip: Addr) -> Option<State> {
        n.iter().find(|e| e.0 == ip).map(|e| e.3)
    }

    /// Runs the control loop's neighbour part (age, then requests) at `t`:
    /// the requests sent and whether the snapshot changed.
    fn tick(n: &mut NeighTable, t: Instant) -> (Vec<(u16, Addr)>, bool) {
        let changed = n.age(t);
        let mut sent = vec![];
        n.due_requests(t, |p, ip| sent.push((p, ip)));
        (sent, changed)
    }

    #[test]
    fn want_request_retry_learn() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.want(RS, 0, t0);
        assert_eq!(state(&n, RS), Some(State::Incomplete));
        assert_eq!(tick(&mut n, t0).0, vec![(0, RS)]);
        assert!(
            tick(&mut n, t0 + Duration::from_millis(500)).0.is_empty(),
            "retried too soon"
        );
        assert_eq!(tick(&mut n, t0 + Duration::from_secs(1)).0.len(), 1);
        assert!(n.snapshot().entries().is_empty());
        assert!(n.learn(at(2), t0 + Duration::from_millis(1100)));
        assert_eq!(n.snapshot().lookup(RS), Some([2; 6]));
        assert_eq!(state(&n, RS), Some(State::Reachable));
        assert!(
            !n.learn(at(2), t0 + Duration::from_millis(1200)),
            "same MAC: no new snapshot"
        );
    }

    #[test]
    fn reachable_goes_stale_is_asked_and_confirmed() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.learn(at(2), t0);
        assert!(
            tick(&mut n, t0 + Duration::from_secs(29)).0.is_empty(),
            "reachable: nothing to ask"
        );
        let t1 = t0 + REACHABLE_TIME;
        assert_eq!(
            tick(&mut n, t1),
            (vec![(0, RS)], false),
            "stale: asked at once, MAC kept"
        );
        assert_eq!(state(&n, RS), Some(State::Stale));
        assert_eq!(
            n.snapshot().lookup(RS),
            Some([2; 6]),
            "a stale entry still forwards"
        );
        assert_eq!(n.iter().next().map(|e| e.1), Some(Some([2; 6])));
        assert!(
            !n.learn(at(2), t1 + Duration::from_millis(5)),
            "the same MAC confirmed"
        );
        assert_eq!(state(&n, RS), Some(State::Reachable));
        assert!(tick(&mut n, t1 + Duration::from_secs(20)).0.is_empty());
        assert_eq!(
            tick(&mut n, t1 + REACHABLE_TIME + Duration::from_millis(5))
                .0
                .len(),
            1,
            "refreshed again 30 s after the answer"
        );
    }

    #[test]
    fn a_changed_mac_is_followed_at_the_refresh() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.learn(at(2), t0);
        let t1 = t0 + REACHABLE_TIME;
        assert_eq!(tick(&mut n, t1).0.len(), 1);
        assert!(
            n.learn(at(7), t1 + Duration::from_millis(3)),
            "the new MAC: a new snapshot"
        );
        assert_eq!(
            (n.snapshot().lookup(RS), state(&n, RS)),
            (Some([7; 6]), Some(State::Reachable))
        );
    }

    #[test]
    fn an_unanswered_stale_entry_fails_loses_its_mac_and_expires() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.learn(at(2), t0);
        let t1 = t0 + REACHABLE_TIME;
        let mut asked = 0;
        for s in 0..3 {
            let (sent, changed) = tick(&mut n, t1 + Duration::from_secs(s));
            asked += sent.len();
            assert!(!changed);
        }
        assert_eq!((asked, state(&n, RS)), (3, Some(State::Stale)));
        let (sent, changed) = tick(&mut n, t1 + Duration::from_secs(3));
        assert!(
            sent.is_empty() && changed,
            "failed: no more asking, the MAC leaves the snapshot"
        );
        assert_eq!(
            (state(&n, RS), n.snapshot().lookup(RS)),
            (Some(State::Failed), None)
        );
        assert_eq!(n.iter().next().map(|e| e.1), Some(None));
        assert!(
            tick(&mut n, t1 + Duration::from_secs(30)).0.is_empty(),
            "nobody wants it: not asked"
        );
        assert_eq!(state(&n, RS), Some(State::Failed));
        tick(&mut n, t1 + Duration::from_secs(3) + FAILED_EXPIRY);
        assert_eq!(state(&n, RS), None, "expired");
    }

    #[test]
    fn a_failed_entry_wanted_again_is_asked_again_and_found() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.want(RS, 0, t0);
        for s in 0..=3 {
            tick(&mut n, t0 + Duration::from_secs(s));
        }
        assert_eq!(state(&n, RS), Some(State::Failed));
        // A packet for it (a worker's `Wanted`) before it expires.
        let t1 = t0 + Duration::from_secs(50);
        n.apply(NeighEvent::Wanted { ip: RS, port: 0 }, t1);
        assert_eq!(state(&n, RS), Some(State::Incomplete));
        assert_eq!(tick(&mut n, t1).0, vec![(0, RS)]);
        assert!(n.learn(at(4), t1 + Duration::from_millis(2)));
        assert_eq!(state(&n, RS), Some(State::Reachable));
    }

    #[test]
    fn permanent_entries_are_never_asked_aged_or_replaced() {
        let t0 = Instant::now();
        let mut n = NeighTable::default();
        n.want(RS, 0, t0);
        assert!(n.add_static(at(9), t0));
        let (sent, changed) = tick(&mut n, t0 + Duration::from_secs(600));
        assert!(sent.is_empty() && !changed);
        assert!(!n.learn(at(1), t0));
        assert_eq!(n.snapshot().lookup(RS), Some([9; 6]));
        assert_eq!(state(&n, RS), Some(State::Permanent));
        assert!(n.remove(RS) && !n.remove(RS));
    }

    #[test]
    fn state_names_are_ip_neighs() {
        let names: Vec<_> = [
            State::Incomplete,
            State::Reachable,
            State::Stale,
            State::Failed,
            State::Permanent,
        ]
        .map(State::name)
        .into();
        assert_eq!(
            names,
            ["INCOMPLETE", "REACHABLE", "STALE", "FAILED", "PERMANENT"]
        );
    }
}
