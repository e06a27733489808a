//! The flood guard: under a flood of new connections (a random-source SYN
//! flood above all), half-open sessions give way so that established and
//! completed connections keep their place and new ones still get in.
//!
//! Without it, every spoofed SYN to a FULLNAT service takes a session and a
//! local port for the SYN_RECV timeout (60 s, the kernel's): ~1,000 SYNs/s
//! fill a 64 K port pool, and real clients are refused until the flood's
//! sessions time out. The kernel's IPVS answers with its defence levels
//! (`drop_entry`: `ip_vs_random_dropentry` drops connections in SYN_RECV
//! first, then ones that never carried data) and Katran with "stop
//! inserting" into its LRU under load; this is the same idea, per worker:
//!
//! - **When**: the guard is *on* while any trigger holds: this worker
//!   created more than [`GuardConfig::new_session_rate`] sessions in the
//!   current or the last one-second window (0: no rate trigger); the
//!   session table is at least [`GuardConfig::session_high_water`] percent
//!   full; or a local address's port pool is at least
//!   [`GuardConfig::port_high_water`] percent lent. It is judged when a
//!   session is created and at housekeeping.
//! - **Short timeouts**: while on, a TCP session entering a half-open state
//!   (SYN_RECV, or no segment seen yet) expires after
//!   [`GuardConfig::half_open_timeout_secs`] instead of its state's timeout
//!   (`half_open_short`). A connection that completes its handshake moves
//!   to ESTABLISHED and its normal timeout; one that does not goes soon.
//! - **Evicted first**: when a new connection finds the table full, or its
//!   service's port pools exhausted, a half-open TCP session (for the pool,
//!   one holding a port of that service's local addresses) is removed to
//!   make room (`half_open_evicted`), the kernel's `drop_entry` order: the
//!   oldest of those among [`EVICT_SCAN`] slots from a cursor that moves
//!   on, if it is at least half the half-open timeout old (1 s at least);
//!   if none is, the connection is refused as before (Katran's "stop
//!   inserting"): a flood faster than the table turns over admits fewer
//!   new sessions, but each admitted one has time to complete. Established,
//!   closing and UDP sessions are never evicted.
//!
//! What costs on the packet path: one `bool` read when a TCP session changes
//! state. The rate window and the triggers are worked out in the slow path.

use crate::session::{Session, SessionTable, SlotId, TcpState};
use crate::time::Millis;
use crate::wire::ipv4;

/// Slots examined for a half-open session to evict, per new connection
/// that needs room (`ip_vs_random_dropentry` looks at 1/32 of its table).
pub const EVICT_SCAN: usize = 512;

/// The guard's settings (`[flood_guard]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GuardConfig {
    /// Whether the guard acts at all.
    pub enabled: bool,
    /// New sessions per second on one worker above which the guard is on
    /// (0: no rate trigger).
    pub new_session_rate: u32,
    /// Session-table fill, percent, from which the guard is on.
    pub session_high_water: u8,
    /// Port-pool use of any local address, percent, from which the guard is on.
    pub port_high_water: u8,
    /// Timeout of half-open TCP sessions while the guard is on, seconds.
    pub half_open_timeout_secs: u32,
}

impl Default for GuardConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            new_session_rate: 0,
            session_high_water: 90,
            port_high_water: 90,
            half_open_timeout_secs: 5,
        }
    }
}

/// What the guard counted (per worker; see `docs/metrics.md`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardCounters {
    /// Times the guard went on.
    pub on: u64,
    /// Half-open sessions given the short timeout.
    pub half_open_short: u64,
    /// Half-open sessions evicted to make room for a new connection.
    pub half_open_evicted: u64,
}

impl GuardCounters {
    /// Names of the counters (metrics label `event`, `--stats-dp`), in
    /// the order of [`Self::values`].
    pub const NAMES: [&'static str; 3] = ["on", "half_open_short", "half_open_evicted"];

    /// The counters, in the order of [`Self::NAMES`].
    #[must_use]
    pub fn values(&self) -> [u64; 3] {
        [self.on, self.half_open_short, self.half_open_evicted]
    }
}

/// One worker's guard: its settings, rate window and state.
#[derive(Debug, Clone, Default)]
pub struct FloodGuard {
    cfg: GuardConfig,
    window_start: Millis,
    window_count: u32,
    rate_high: bool,
    active: bool,
    evict_cursor: usize,
    /// When each slot's session was created.
    born: Vec<Millis>,
    /// What it counted.
    pub counters: GuardCounters,
}

impl FloodGuard {
    /// A guard with `cfg` for a table of `capacity` sessions.
    #[must_use]
    pub fn new(cfg: GuardConfig, capacity: usize) -> Self {
        Self {
            cfg,
            born: vec![Millis(0); capacity],
            ..Self::default()
        }
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &GuardConfig {
        &self.cfg
    }

    /// True while the guard is on.
    #[inline]
    #[must_use]
    pub fn is_on(&self) -> bool {
        self.active
    }

    /// Counts a session created at `now` in the rate window.
    pub fn count_new(&mut self, now: Millis) {
        self.roll(now);
        self.window_count = self.window_count.saturating_add(1);
        if self.cfg.new_session_rate > 0 && self.window_count > self.cfg.new_session_rate {
            self.rate_high = true;
        }
    }

    /// Starts a new window when a second has passed: the rate trigger
    /// holds through the window after one that went over.
    fn roll(&mut self, now: Millis) {
        if now.0.saturating_sub(self.window_start.0) >= 1000 {
            self.rate_high =
                self.cfg.new_session_rate > 0 && self.window_count > self.cfg.new_session_rate;
            self.window_start = now;
            self.window_count = 0;
        }
    }

    /// Judges the triggers: `sessions` of `capacity` in the table, and each
    /// pool's (lent, size).
    pub fn judge(
        &mut self,
        now: Millis,
        sessions: usize,
        capacity: usize,
        pools: impl Iterator<Item = (usize, usize)>,
    ) {
        let pct = self.cfg.port_high_water;
        self.judge_by(now, sessions, capacity, move || {
            pools.into_iter().any(|(lent, size)| over(lent, size, pct))
        });
    }

    /// [`Self::judge`], told by `pools_high` (asked only when the other
    /// triggers do not hold) whether any pool is lent at or above
    /// [`GuardConfig::port_high_water`] ([`over`]).
    pub fn judge_by(
        &mut self,
        now: Millis,
        sessions: usize,
        capacity: usize,
        pools_high: impl FnOnce() -> bool,
    ) {
        if !self.cfg.enabled {
            self.active = false;
            return;
        }
        self.roll(now);
        let on =
            self.rate_high || over(sessions, capacity, self.cfg.session_high_water) || pools_high();
        if on && !self.active {
            self.counters.on += 1;
        }
        self.active = on;
    }

    /// The timeout of a TCP session in `state` whose state's own timeout
    /// is `normal`: shorter for a half-open one while on (counted when it
    /// has just `entered` that state).
    #[inline]
    pub fn tcp_timeout(&mut self, state: TcpState, normal: u32, entered: bool) -> u32 {
        if self.active && is_half_open(state) && normal > self.cfg.half_open_timeout_secs {
            self.counters.half_open_short += u64::from(entered);
            self.cfg.half_open_timeout_secs
        } else {
            normal
        }
    }

    /// Notes that the session in `slot` was created at `now` (its age
    /// decides the order of eviction).
    pub fn born(&mut self, slot: SlotId, now: Millis) {
        if let Some(b) = self.born.get_mut(slot.0 as usize) {
            *b = now;
        }
    }

    /// Age a half-open session must reach before it may be evicted: half
    /// the half-open timeout, at least one second (the first SYN
    /// retransmission).
    #[must_use]
    pub fn min_age_ms(&self) -> u64 {
        (u64::from(self.cfg.half_open_timeout_secs) * 500).max(1000)
    }

    /// The oldest half-open TCP session that `also` accepts, at least
    /// [`Self::min_age_ms`] old, among the next [`EVICT_SCAN`] slots of
    /// `table`: the one to evict, if any. Only when the guard is enabled.
    /// The oldest, because a real client's handshake completes within a
    /// round trip (and a loaded server's answer) while a spoofed one never
    /// does; a minimum age, so that under a flood faster than the table
    /// turns over, new sessions are refused ("stop inserting") rather than
    /// each evicting one too young to have completed: whatever gets in has
    /// time to.
    pub fn victim(
        &mut self,
        table: &SessionTable,
        now: Millis,
        also: impl Fn(&Session) -> bool,
    ) -> Option<SlotId> {
        if !self.cfg.enabled {
            return None;
        }
        let latest = now.0.saturating_sub(self.min_age_ms());
        let born = &self.born;
        let (found, next) = table.lowest_from(self.evict_cursor, EVICT_SCAN, |slot, s| {
            let b = born.get(slot.0 as usize).map_or(0, |m| m.0);
            (s.proto == ipv4::PROTO_TCP && is_half_open(s.state) && b <= latest && also(s))
                .then_some(b)
        });
        self.evict_cursor = next;
        found
    }
}

/// True if `used` of `size` is at least `pct` percent (never for size 0):
/// a trigger's test.
#[inline]
#[must_use]
pub fn over(used: usize, size: usize, pct: u8) -> bool {
    size > 0 && used.saturating_mul(100) >= size.saturating_mul(usize::from(pct))
}

/// True for the states of a connection whose handshake has not completed
/// (from the client's side: what a spoofed SYN leaves behind).
#[inline]
#[must_use]
pub fn is_half_open(state: TcpState) -> bool {
    matches!(state, TcpState::None | TcpState::SynRecv | TcpState::SynAck)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn guard(rate: u32) -> FloodGuard {
        FloodGuard::new(
            GuardConfig {
                new_session_rate: rate,
                ..GuardConfig::default()
            },
            16,
        )
    }

    #[test]
    fn the_rate_trigger_holds_through_the_next_window() {
        let mut g = guard(10);
        for i in 0..10 {
            g.count_new(Millis(i));
        }
        g.judge(Millis(10), 0, 100, std::iter::empty());
        assert!(!g.is_on(), "10 in a window is not above 10");
        g.count_new(Millis(11));
        g.judge(Millis(11), 0, 100, std::iter::empty());
        assert!(g.is_on());
        assert_eq!(g.counters.on, 1);
        // The next window starts over, but the last one went over.
        g.judge(Millis(1500), 0, 100, std::iter::empty());
        assert!(g.is_on());
        // A quiet window after it: off.
        g.judge(Millis(2600), 0, 100, std::iter::empty());
        assert!(!g.is_on());
        g.judge(Millis(2700), 0, 100, std::iter::empty());
        assert_eq!(g.counters.on, 1);
    }

    #[test]
    fn high_water_marks() {
        let mut g = guard(0);
        g.judge(Millis(0), 89, 100, [(0, 100)].into_iter());
        assert!(!g.is_on());
        g.judge(Millis(0), 90, 100, [(0, 100)].into_iter());
        assert!(g.is_on(), "table at 90 %");
        g.judge(Millis(0), 0, 100, [(10, 100), (90, 100)].into_iter());
        assert!(g.is_on(), "one pool at 90 %");
        g.judge(Millis(0), 0, 100, [(89, 100)].into_iter());
        assert!(!g.is_on());
        assert_eq!(g.counters.on, 1, "on once, however many triggers");
        let mut off = FloodGuard::new(
            GuardConfig {
                enabled: false,
                ..GuardConfig::default()
            },
            16,
        );
        off.judge(Millis(0), 100, 100, std::iter::empty());
        assert!(!off.is_on());
    }

    #[test]
    fn short_timeouts_only_for_half_open_while_on() {
        let mut g = guard(0);
        assert_eq!(g.tcp_timeout(TcpState::SynRecv, 60, true), 60);
        g.judge(Millis(0), 95, 100, std::iter::empty());
        assert_eq!(g.tcp_timeout(TcpState::SynRecv, 60, true), 5);
        assert_eq!(
            g.tcp_timeout(TcpState::SynRecv, 60, false),
            5,
            "a retransmitted SYN"
        );
        assert_eq!(g.tcp_timeout(TcpState::None, 60, true), 5);
        assert_eq!(g.tcp_timeout(TcpState::Established, 900, true), 900);
        assert_eq!(g.tcp_timeout(TcpState::TimeWait, 120, true), 120);
        assert_eq!(g.tcp_timeout(TcpState::SynRecv, 2, true), 2, "never longer");
        assert_eq!(g.counters.half_open_short, 2);
    }
}
