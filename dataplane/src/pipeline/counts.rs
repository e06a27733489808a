//! What a worker counts per real server and how schedulers see it:
//! connection counts ([`ConnCount`]), traffic ([`RsTraffic`]), this
//! worker's share of the thresholds ([`RsLimit`]), and the [`View`] of a
//! service's servers with those counts that a scheduler picks from.

use crate::sched::Backends;
use crate::session::{Direction, TcpState};
use crate::tables::{RealServer, Thresholds};
use crate::wire::ipv4;

/// Active and inactive connection counts of one real server on one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ConnCount {
    /// Sessions in ESTABLISHED.
    pub active: u32,
    /// Sessions in any other state.
    pub inactive: u32,
    /// Sessions ever created to this server on this worker.
    pub created: u64,
}

/// Traffic of one real server on one worker, as `ipvsadm --stats` counts
/// it: inbound is toward the server, outbound back to the client; bytes
/// are IP packet bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RsTraffic {
    /// Packets toward the server.
    pub in_pkts: u64,
    /// Packets back to clients.
    pub out_pkts: u64,
    /// Bytes toward the server.
    pub in_bytes: u64,
    /// Bytes back to clients.
    pub out_bytes: u64,
}

impl RsTraffic {
    /// Counts a packet of `bytes` IP bytes going `dir`.
    #[inline]
    pub(super) fn count(&mut self, dir: Direction, bytes: u64) {
        if dir == Direction::Inbound {
            self.in_pkts += 1;
            self.in_bytes += bytes;
        } else {
            self.out_pkts += 1;
            self.out_bytes += bytes;
        }
    }
}

impl ConnCount {
    /// Active plus inactive (`ip_vs_dest_totalconns`).
    #[must_use]
    pub fn total(&self) -> u32 {
        self.active.saturating_add(self.inactive)
    }
    /// Counts a session in `state` of protocol `proto`. As IPVS, only TCP
    /// connections in ESTABLISHED are active: UDP sessions count as
    /// inactive (the kernel never clears `IP_VS_CONN_F_INACTIVE` for them).
    pub(super) fn add(&mut self, proto: u8, state: TcpState) {
        if proto == ipv4::PROTO_TCP && state.is_active() {
            self.active += 1;
        } else {
            self.inactive += 1;
        }
    }
    pub(super) fn sub(&mut self, proto: u8, state: TcpState) {
        if proto == ipv4::PROTO_TCP && state.is_active() {
            self.active = self.active.saturating_sub(1);
        } else {
            self.inactive = self.inactive.saturating_sub(1);
        }
    }
    /// A session of protocol `proto` moved from state `from` to `to`.
    #[inline]
    pub(super) fn moved(&mut self, proto: u8, from: TcpState, to: TcpState) {
        self.sub(proto, from);
        self.add(proto, to);
    }
}

/// This worker's view of one real server's thresholds: its shares of the
/// configured numbers and whether the server is overloaded here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RsLimit {
    /// A threshold is configured.
    pub limited: bool,
    /// This worker's share of the upper threshold.
    pub upper: u32,
    /// This worker's share of the lower threshold (0: 3/4 of `upper`).
    pub lower: u32,
    /// `IP_VS_DEST_F_OVERLOAD` for this worker.
    pub overloaded: bool,
}

impl RsLimit {
    /// Worker `worker`'s shares of `t` for server `rs_index`, `workers` in all.
    #[must_use]
    pub fn share(t: Thresholds, rs_index: u16, worker: u16, workers: u16) -> Self {
        let w = u32::from(workers.max(1));
        let k = (u32::from(worker) + u32::from(rs_index)) % w;
        let part = |total: u32| total / w + u32::from(k < total % w);
        Self {
            limited: t.upper > 0,
            upper: part(t.upper),
            lower: if t.lower > 0 { part(t.lower).max(1) } else { 0 },
            overloaded: false,
        }
    }

    /// Seen by the scheduler: flagged, or a share of nothing.
    #[inline]
    #[must_use]
    pub fn refuses(&self) -> bool {
        self.overloaded || (self.limited && self.upper == 0)
    }

    /// `ip_vs_bind_dest`: a connection was added.
    pub(super) fn bound(&mut self, c: &ConnCount) {
        if self.limited && c.total() >= self.upper {
            self.overloaded = true;
        }
    }

    /// `ip_vs_unbind_dest`: a connection went away.
    pub(super) fn unbound(&mut self, c: &ConnCount) {
        if !self.limited {
            self.overloaded = false;
        } else if self.lower != 0 {
            if c.total() < self.lower {
                self.overloaded = false;
            }
        } else if u64::from(c.total()) * 4 < u64::from(self.upper) * 3 {
            self.overloaded = false;
        }
    }
}

/// A service's servers with this worker's counts, as schedulers see them.
pub(super) struct View<'a> {
    pub(super) servers: &'a [RealServer],
    pub(super) conns: &'a [ConnCount],
    pub(super) limits: &'a [RsLimit],
}

impl Backends for View<'_> {
    #[inline]
    fn len(&self) -> usize {
        self.servers.len()
    }
    #[inline]
    fn weight(&self, i: usize) -> u32 {
        self.servers[i].weight
    }
    #[inline]
    fn active(&self, i: usize) -> u32 {
        self.conns
            .get(usize::from(self.servers[i].index))
            .map_or(0, |c| c.active)
    }
    #[inline]
    fn inactive(&self, i: usize) -> u32 {
        self.conns
            .get(usize::from(self.servers[i].index))
            .map_or(0, |c| c.inactive)
    }
    #[inline]
    fn overloaded(&self, i: usize) -> bool {
        self.limits
            .get(usize::from(self.servers[i].index))
            .is_some_and(RsLimit::refuses)
    }
    #[inline]
    fn id(&self, i: usize) -> u16 {
        self.servers[i].index
    }
}
