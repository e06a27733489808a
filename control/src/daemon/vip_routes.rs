//! The VIP routes a BGP daemon exports (see [`crate::vip_routes`]): kept
//! in step with the tables each time they are published, withdrawn by a
//! drain, flushed at start and stop.

use super::*;
use crate::vip_routes::{self as vr, RouteChange, VipRoutes};

/// A drain in progress: routes withdrawn; rvsd stops at `stop_at`, if set.
#[derive(Debug, Clone, Copy)]
pub(super) struct Drain {
    pub stop_at: Option<Instant>,
}

impl Control {
    /// Deletes rvs's routes from the configured table (a killed rvsd's,
    /// at start; ours, at stop).
    pub(super) fn flush_vip_routes(&mut self) {
        let Some(c) = self.config.vip_routes.clone() else {
            return;
        };
        for family in ["-4", "-6"] {
            let args = vr::flush_args(&c, family);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            // A table that never held a route of the family does not
            // exist yet: nothing to flush.
            if let Err(e) = kernel_ip(&args) {
                if !e.to_string().contains("does not exist") {
                    eprintln!("rvsd: vip routes: {e}");
                }
            }
        }
        self.vip_routes = VipRoutes::default();
        self.vip_routes.set_draining(self.drain.is_some());
    }

    /// Brings the table in step with `effective` (the config as the data
    /// plane sees it) and the drain state.
    pub(super) fn update_vip_routes(&mut self, effective: &Config) {
        let Some(c) = self.config.vip_routes.clone() else {
            return;
        };
        let usable = vr::usable_vips(effective);
        let mut changes = self.vip_routes.update(&usable);
        changes.extend(self.vip_routes.update_locals(&vr::local_routes(effective)));
        for change in changes {
            let args = vr::ip_args(&c, change);
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            match (kernel_ip(&args), change) {
                (Err(e), _) => eprintln!("rvsd: vip routes: {e}"),
                (Ok(()), RouteChange::Add(ip)) => {
                    eprintln!("rvsd: vip routes: announcing {ip} (table {})", c.table)
                }
                (Ok(()), RouteChange::AddLocal(ip, metric)) => eprintln!(
                    "rvsd: vip routes: routing local address {ip} here (table {}, metric {metric})",
                    c.table
                ),
                (Ok(()), RouteChange::DeleteLocal(ip, metric)) => eprintln!(
                    "rvsd: vip routes: removed the route to local address {ip} (metric {metric})"
                ),
                (Ok(()), RouteChange::Delete(ip)) => eprintln!(
                    "rvsd: vip routes: withdrew {ip}: {}",
                    self.vip_routes
                        .states()
                        .get(&ip)
                        .map_or("no service uses it", |s| s.describe())
                ),
            }
        }
    }

    /// Starts a drain: withdraw every route now, stop after the grace
    /// period unless `stay`. Without `[vip_routes]` there is nothing to
    /// withdraw: refused (SIGTERM stops at once then).
    pub(super) fn start_drain(&mut self, stay: bool) -> Result<(), String> {
        let Some(c) = self.config.vip_routes.clone() else {
            return Err(
                "no [vip_routes] in the config: rvsd announces no routes to withdraw".into(),
            );
        };
        let stop_at = (!stay).then(|| Instant::now() + Duration::from_secs(c.drain_grace.into()));
        // A second drain may shorten a stay into a stop, never lengthen one.
        let stop_at = match (self.drain.and_then(|d| d.stop_at), stop_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        self.drain = Some(Drain { stop_at });
        self.vip_routes.set_draining(true);
        let effective = self.effective_config();
        self.update_vip_routes(&effective);
        match stop_at {
            Some(_) => eprintln!(
                "rvsd: draining: routes withdrawn, stopping in {} s (SIGTERM again stops now; rvsadm undrain cancels)",
                c.drain_grace
            ),
            None => eprintln!("rvsd: draining: routes withdrawn until rvsadm undrain"),
        }
        Ok(())
    }

    /// Ends a drain: routes back, no stop pending.
    pub(super) fn end_drain(&mut self) -> Result<(), String> {
        if self.drain.take().is_none() {
            return Err("not draining".into());
        }
        self.vip_routes.set_draining(false);
        let effective = self.effective_config();
        self.update_vip_routes(&effective);
        eprintln!("rvsd: drain cancelled: routes announced again");
        Ok(())
    }

    /// `rvsadm vips`: each VIP's state, the drain and its deadline.
    pub(super) fn list_vips(&self) -> Response {
        let Some(c) = &self.config.vip_routes else {
            return Response::Error(
                "no [vip_routes] in the config: rvsd announces no routes".into(),
            );
        };
        Response::Vips(crate::api::VipsView {
            table: c.table,
            interface: c.interface.clone(),
            draining: self.drain.is_some(),
            stop_in_secs: self.drain.and_then(|d| d.stop_at).map(|t| {
                let left = t.saturating_duration_since(Instant::now());
                left.as_secs() + u64::from(left.subsec_nanos() > 0)
            }),
            local_routes: self.vip_routes.locals().iter().copied().collect(),
            vips: self
                .vip_routes
                .states()
                .iter()
                .map(|(ip, s)| (*ip, *s))
                .collect(),
        })
    }

    /// Whether a drain's grace period is over.
    pub(super) fn drain_done(&self) -> bool {
        self.drain
            .and_then(|d| d.stop_at)
            .is_some_and(|t| Instant::now() >= t)
    }
}
