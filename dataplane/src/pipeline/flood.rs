//! The pipeline's side of the flood guard ([`crate::guard`]): judging its
//! triggers, and making room for a new connection by evicting a half-open
//! session when the table is full or the service's port pools are lent out.

use super::Pipeline;
use crate::guard::{FloodGuard, GuardConfig};
use crate::tables::Forward;
use crate::time::Millis;

impl Pipeline {
    /// Sets the flood guard's settings (control, before traffic).
    pub fn set_flood_guard(&mut self, cfg: GuardConfig) {
        self.guard = FloodGuard::new(cfg, self.sessions.capacity());
        self.pools.set_mark(cfg.port_high_water);
    }

    /// This worker's flood guard (state and counters).
    #[must_use]
    pub fn flood_guard(&self) -> &FloodGuard {
        &self.guard
    }

    /// Judges the guard's triggers as of `now`.
    pub(super) fn judge_guard(&mut self, now: Millis) {
        // The pools count their own high-water crossings (`PortPools`).
        let pools = &self.pools;
        self.guard
            .judge_by(now, self.sessions.len(), self.sessions.capacity(), || {
                pools.any_high()
            });
    }

    /// A full table: evicts a half-open session, if the guard finds one.
    /// True if there is room now.
    #[cold]
    pub(super) fn room_in_table(&mut self, now: Millis) -> bool {
        if self.sessions.len() < self.sessions.capacity() {
            return true;
        }
        self.evict_half_open(now, |_| true)
    }

    /// Service `svc_idx`'s port pools are lent out: evicts a half-open
    /// FULLNAT session holding a port of one of its local addresses. True
    /// if one was evicted.
    #[cold]
    pub(super) fn room_in_pools(&mut self, svc_idx: usize, now: Millis) -> bool {
        let tables = std::sync::Arc::clone(&self.tables);
        let laddrs = &tables.services[svc_idx].laddrs;
        self.evict_half_open(now, |s| {
            s.forward == Forward::FullNat && laddrs.contains(&s.laddr_index)
        })
    }

    fn evict_half_open(
        &mut self,
        now: Millis,
        also: impl Fn(&crate::session::Session) -> bool,
    ) -> bool {
        let Some(slot) = self.guard.victim(&self.sessions, now, also) else {
            return false;
        };
        self.expire(slot);
        self.guard.counters.half_open_evicted += 1;
        true
    }
}
