//! Counters per real server over all workers, the kernel's rate
//! estimator (`--rate`), and `-Z` (zeroing shows as baselines: workers and
//! `/metrics` keep counting).

use super::*;

impl Control {
    /// A real server's connection counts summed over workers.
    pub(super) fn server_totals(&self, vip: SocketAddr, proto: u8, rs: SocketAddr) -> ConnTotals {
        let Some(i) = self.registry.server_index(vip, proto, rs) else {
            return ConnTotals::default();
        };
        let mut t = ConnTotals::default();
        for w in &self.workers {
            let s = &w.shared;
            t.active += s
                .rs_active
                .get(i)
                .map_or(0, |x| u64::from(x.load(Ordering::Relaxed)));
            t.inactive += s
                .rs_inactive
                .get(i)
                .map_or(0, |x| u64::from(x.load(Ordering::Relaxed)));
            t.created += s.rs_created.get(i).map_or(0, |x| x.load(Ordering::Relaxed));
            for (sum, v) in t.traffic.iter_mut().zip(&s.rs_traffic) {
                *sum += v.get(i).map_or(0, |x| x.load(Ordering::Relaxed));
            }
        }
        t
    }

    /// Every 2 s: feeds each real server's counters to its rate estimator.
    pub(super) fn estimate_rates(&mut self) {
        let now = Instant::now();
        let secs = now.duration_since(self.rates_at).as_secs_f64();
        if secs < 2.0 {
            return;
        }
        self.rates_at = now;
        let keys: Vec<_> = self
            .config
            .services
            .iter()
            .flat_map(|s| s.real_servers.iter().map(move |r| (s.vip, s.proto, r.addr)))
            .collect();
        for (vip, proto, rs) in keys {
            let Some(i) = self.registry.server_index(vip, proto, rs) else {
                continue;
            };
            let totals = self.server_totals(vip, proto, rs).stats();
            self.rates.entry(i).or_default().update(totals, secs);
        }
    }

    /// `-Z`: takes the counters of every real server of `spec` (all
    /// services if `None`) as their new zero, and restarts their rate
    /// estimators from 0, as the kernel's `ip_vs_zero_stats` does.
    pub(super) fn zero(&mut self, spec: Option<&ServiceSpec>) -> Response {
        let services: Vec<ServiceKey> = match spec {
            None => self
                .config
                .services
                .iter()
                .map(|s| (s.vip, s.proto))
                .collect(),
            Some(spec) => match self.find_service(spec) {
                Ok((vip, proto, Some(_))) => vec![(vip, proto)],
                Ok((_, _, None)) => return Response::Error("No such service".into()),
                Err(r) => return r,
            },
        };
        self.refresh();
        for (vip, proto) in services {
            let Some(s) = self
                .config
                .services
                .iter()
                .find(|s| s.vip == vip && s.proto == proto)
            else {
                continue;
            };
            for r in s.real_servers.iter().map(|r| r.addr).collect::<Vec<_>>() {
                let Some(i) = self.registry.server_index(vip, proto, r) else {
                    continue;
                };
                self.zero_server(i, vip, proto, r);
            }
        }
        Response::Ok
    }

    /// A real server added back: its `--stats` start from zero unless
    /// connections it had still run (call after [`Self::refresh`]).
    pub(super) fn zero_if_idle(&mut self, i: usize, vip: SocketAddr, proto: u8, rs: SocketAddr) {
        let held = self.server_totals(vip, proto, rs);
        if held.active + held.inactive == 0 {
            self.zero_server(i, vip, proto, rs);
        }
    }

    /// Zeroes the counters `--stats`/`--rate` show for server `i` (registry
    /// index of `rs` in service `vip`/`proto`) at their current values.
    pub(super) fn zero_server(&mut self, i: usize, vip: SocketAddr, proto: u8, rs: SocketAddr) {
        let now = self.server_totals(vip, proto, rs).stats();
        self.zeroed.zero(i, now);
        if let Some(est) = self.rates.get_mut(&i) {
            est.zero(now);
        }
    }
}

/// A real server's connections, all workers.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct ConnTotals {
    pub(super) active: u64,
    pub(super) inactive: u64,
    pub(super) created: u64,
    /// Packets in, packets out, bytes in, bytes out.
    pub(super) traffic: [u64; 4],
}

impl ConnTotals {
    /// ipvsadm's five counters: conns, inpkts, outpkts, inbytes, outbytes.
    pub(super) fn stats(&self) -> [u64; 5] {
        [
            self.created,
            self.traffic[0],
            self.traffic[1],
            self.traffic[2],
            self.traffic[3],
        ]
    }
}

/// The kernel's rate estimator (`ip_vs_est.c`): every 2 s, each rate moves
/// a quarter of the way toward the last interval's rate.
#[derive(Debug, Clone, Default)]
pub(super) struct RateEstimate {
    pub(super) last: [u64; 5],
    pub(super) rates: [f64; 5],
    pub(super) primed: bool,
}

impl RateEstimate {
    pub(super) fn update(&mut self, now: [u64; 5], secs: f64) {
        if self.primed && secs > 0.0 {
            for ((rate, n), l) in self.rates.iter_mut().zip(now).zip(self.last) {
                let r = n.saturating_sub(l) as f64 / secs;
                *rate += (r - *rate) / 4.0;
            }
        }
        self.last = now;
        self.primed = true;
    }

    pub(super) fn rates(&self) -> [u64; 5] {
        self.rates.map(|r| r.round() as u64)
    }

    /// `-Z`: rates from 0, the next interval measured from `now`.
    pub(super) fn zero(&mut self, now: [u64; 5]) {
        self.rates = [0.0; 5];
        self.last = now;
    }
}
