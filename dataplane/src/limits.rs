//! Per-service connection limits and the per-worker state that enforces
//! them: at most `max_conns` concurrent connections to the service, at
//! most `max_conns_per_client` from one client prefix (a /24 or /64 by
//! default: `client_prefix_v4`, `client_prefix_v6`), at most `rate` new
//! connections a second from one client prefix (a token bucket with
//! `burst`), and the rate of the ICMP port unreachable answers (see
//! [`crate::pipeline::unreach`]).
//!
//! Only new connections are judged (a TCP SYN, a UDP datagram that opens a
//! session), after the service's ACL ([`crate::acl`]) and before
//! scheduling; a refused one is dropped silently and counted
//! (`conn_limit`, `client_conn_limit`, `client_rate_limit`,
//! `client_table_full`), as an nftables `ct count`/`limit` rule with
//! `drop` would: the client's stack retries the SYN and succeeds once
//! there is room. Lowering a limit never cuts an established session.
//!
//! **Per worker.** Each worker counts only the connections it creates (no
//! shared counter on the packet path). Worker `w` of `W` enforces a share
//! of each limit: `limit / W`, plus one for `limit % W` of the workers
//! (rotated by the service or the client prefix, so no worker is always
//! short), and at least 1, so the aggregate stays at the configured limit
//! when it is at least `W`, and is at most `W` below that. Flows of one
//! client spread over the workers by their ports (see
//! [`crate::pipeline::owner`]), so a worker sees about `1/W` of a client's
//! connections: a client may be refused by one worker while another still
//! has room in its share (the same trade as the `-x` thresholds). The
//! rate's share is `rate / W` (a GCRA bucket, [`TokenBucket`]) with a burst of
//! `burst / W`, at least 1.
//!
//! **The client table.** Per-prefix state lives in a bounded per-worker
//! table ([`CLIENT_SLOTS`] entries, allocated when a service first has a
//! per-client limit), open-addressed over a window of [`PROBE`] slots. An
//! entry with no connection and a full bucket carries no information and
//! is reused at once. A new prefix that finds its whole window held by
//! prefixes with live connections or spent buckets is refused
//! (`client_table_full`): failing closed, because a flood from many
//! prefixes is exactly when the limits must hold. Only connections created
//! while the service has a per-client limit are counted per client (a
//! limit added at run time sees the connections opened after it).
//!
//! The service-wide count is not kept here: it is the sum of the worker's
//! connection counts of the service's real servers (what `ipvsadm -L`
//! shows), so connections to a server already deleted from the service and
//! still draining do not count.

use crate::acl::Acl;
use crate::addr::Addr;
use crate::session::Endpoint;
use crate::stats::DropReason;
use crate::time::Millis;

/// Hit counters a worker keeps for ACL rules and limits (indices given by
/// control, see [`crate::acl::Rule::counter`] and [`Limits::counters`]).
pub const MAX_COUNTERS: usize = 4096;
/// Client-prefix entries per worker.
pub const CLIENT_SLOTS: usize = 16384;
/// Slots a prefix may occupy, from its hash.
pub const PROBE: usize = 8;
/// No client entry (a session not counted per client).
pub const NO_TICKET: u32 = u32::MAX;

/// A service's limits (0: no limit) and the counters of their refusals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Concurrent connections to the service.
    pub max_conns: u32,
    /// Concurrent connections from one client prefix.
    pub max_conns_per_client: u32,
    /// New connections a second from one client prefix.
    pub rate: u32,
    /// Connections a client prefix may open at once (0: as `rate`).
    pub burst: u32,
    /// The prefix length an IPv4 client is counted by.
    pub client_prefix_v4: u8,
    /// The prefix length an IPv6 client is counted by.
    pub client_prefix_v6: u8,
    /// ICMP port unreachables a second to one client (0: none sent).
    pub icmp_rate: u32,
    /// ICMP port unreachables a client may get at once.
    pub icmp_burst: u32,
    /// Counter indices (given by control): refusals by `max_conns`,
    /// `max_conns_per_client`, `rate`, and port unreachables held back.
    pub counters: [u16; 4],
}

impl Limits {
    /// Default prefix length of IPv4 clients.
    pub const PREFIX_V4: u8 = 32;
    /// Default prefix length of IPv6 clients (a site's subnet).
    pub const PREFIX_V6: u8 = 64;
    /// Default ICMP answers a second per client (the kernel's
    /// `icmp_ratelimit` of 1000 ms).
    pub const ICMP_RATE: u32 = 1;
    /// Default ICMP burst per client (the kernel's `XRLIM_BURST_FACTOR`).
    pub const ICMP_BURST: u32 = 6;

    /// True if any per-client limit is set (the client table is needed).
    #[inline]
    #[must_use]
    pub fn per_client(&self) -> bool {
        self.max_conns_per_client > 0 || self.rate > 0
    }

    /// The prefix `client` is counted by.
    #[inline]
    #[must_use]
    pub fn client_prefix(&self, client: Addr) -> Addr {
        if client.is_v4() {
            client.masked(self.client_prefix_v4)
        } else {
            client.masked(self.client_prefix_v6)
        }
    }

    /// The burst in effect: `burst`, else `rate`, at least 1.
    #[must_use]
    pub fn burst_or_rate(&self) -> u32 {
        if self.burst > 0 {
            self.burst
        } else {
            self.rate.max(1)
        }
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_conns: 0,
            max_conns_per_client: 0,
            rate: 0,
            burst: 0,
            client_prefix_v4: Self::PREFIX_V4,
            client_prefix_v6: Self::PREFIX_V6,
            icmp_rate: Self::ICMP_RATE,
            icmp_burst: Self::ICMP_BURST,
            counters: [u16::MAX; 4],
        }
    }
}

/// Worker `worker`'s share of `total` among `workers`, rotated by `rot`:
/// `total / workers`, plus one for `total % workers` of them, at least 1.
#[inline]
#[must_use]
pub fn share(total: u32, worker: u16, workers: u16, rot: u32) -> u32 {
    let w = u32::from(workers.max(1));
    let k = (u32::from(worker).wrapping_add(rot)) % w;
    (total / w + u32::from(k < total % w)).max(1)
}

/// A token bucket kept as GCRA (the generic cell rate algorithm of ATM
/// and `limit rate` implementations): one "theoretical arrival time" in
/// microseconds instead of a token count, so no refill is lost to rounding
/// and a bucket idle long enough holds exactly its burst. A connection is
/// admitted if the bucket's `tat` is no more than `tolerance` ahead of now;
/// each admission moves `tat` one `interval` on. Equivalent to a token
/// bucket of `tolerance / interval + 1` tokens refilled one per `interval`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenBucket {
    tat_us: u64,
}

impl TokenBucket {
    /// A full bucket.
    #[must_use]
    pub fn full() -> Self {
        Self { tat_us: 0 }
    }

    /// Takes a token at `now` if there is one (`interval_us`, `tolerance_us`
    /// from [`bucket_share`]). The clock going back refills nothing.
    #[inline]
    pub fn take(&mut self, now: Millis, interval_us: u64, tolerance_us: u64) -> bool {
        let t = now.0.saturating_mul(1000);
        let tat = self.tat_us.max(t);
        if tat - t > tolerance_us {
            return false;
        }
        self.tat_us = tat.saturating_add(interval_us);
        true
    }

    /// When the bucket is full again, in milliseconds (now or earlier, if
    /// it is).
    #[must_use]
    pub fn full_at(&self) -> u64 {
        self.tat_us.div_ceil(1000)
    }
}

/// Worker `worker`'s share of `rate` connections a second with a burst of
/// `burst` (`workers` in all), as [`TokenBucket::take`]'s interval between
/// connections and tolerance, in microseconds: one connection every
/// `workers / rate` seconds (rounded up: never faster than configured),
/// [`share`] of the burst at once.
#[must_use]
pub fn bucket_share(rate: u32, burst: u32, worker: u16, workers: u16, rot: u32) -> (u64, u64) {
    let w = u64::from(workers.max(1));
    let interval = (1_000_000 * w).div_ceil(u64::from(rate.max(1)));
    let tolerance = u64::from(share(burst, worker, workers, rot) - 1) * interval;
    (interval, tolerance)
}

#[derive(Debug, Clone, Copy, Default)]
struct Entry {
    used: bool,
    proto: u8,
    conns: u32,
    vip: Endpoint,
    prefix: Addr,
    bucket: TokenBucket,
    /// When the entry, without connections, carries no information.
    idle_at: u64,
}

impl Entry {
    fn is_free(&self, now: Millis) -> bool {
        !self.used || (self.conns == 0 && now.0 >= self.idle_at)
    }
}

/// One worker's limit state: the client-prefix table, which entry each
/// session is counted in, and the hit counters of rules and limits.
#[derive(Debug, Default)]
pub struct WorkerLimits {
    clients: Vec<Entry>,
    /// Per session slot: its client entry, or [`NO_TICKET`].
    tickets: Vec<u32>,
    /// Hit counters by index (ACL rules and limits).
    pub hits: Vec<u64>,
    seed: u64,
}

/// A client entry a new connection is to be counted in ([`NO_TICKET`]:
/// none).
pub type Ticket = u32;

impl WorkerLimits {
    /// State for `sessions` session slots (the client table comes later,
    /// see [`Self::ensure_clients`]).
    #[must_use]
    pub fn new(sessions: usize, seed: u64) -> Self {
        Self {
            clients: Vec::new(),
            tickets: vec![NO_TICKET; sessions],
            hits: vec![0; MAX_COUNTERS],
            seed,
        }
    }

    /// Allocates the client table (once). Cold: at a table change.
    #[cold]
    pub fn ensure_clients(&mut self) {
        if self.clients.is_empty() {
            self.clients = vec![Entry::default(); CLIENT_SLOTS];
        }
    }

    /// Client entries in use (for tests and listings).
    #[must_use]
    pub fn clients_in_use(&self, now: Millis) -> usize {
        self.clients.iter().filter(|e| !e.is_free(now)).count()
    }

    #[inline]
    fn hit(&mut self, counter: u16) {
        if let Some(h) = self.hits.get_mut(usize::from(counter)) {
            *h += 1;
        }
    }

    /// The service's ACL verdict for `client`: `Err(AclDeny)` if the first
    /// matching rule denies. Counts the rule's hit.
    ///
    /// # Errors
    /// [`DropReason::AclDeny`].
    #[inline]
    pub fn check_acl(&mut self, acl: &Acl, client: Addr) -> Result<(), DropReason> {
        let Some(r) = acl.first_match(client) else {
            return Ok(());
        };
        let (counter, action) = (r.counter, r.action);
        self.hit(counter);
        match action {
            crate::acl::Action::Allow => Ok(()),
            crate::acl::Action::Deny => Err(DropReason::AclDeny),
        }
    }

    /// Judges a new connection from `client` to service (`vip`, `proto`)
    /// against `limits`, the service having `service_conns` connections on
    /// this worker: the ticket to count it by once created, or the reason
    /// it is refused (the limit's hit counted). With `judge` false (a
    /// frame already judged, released after its next hop resolved), only
    /// the ticket is found, nothing refused.
    ///
    /// # Errors
    /// `conn_limit`, `client_conn_limit`, `client_rate_limit`,
    /// `client_table_full`.
    #[allow(clippy::too_many_arguments)]
    pub fn admit(
        &mut self,
        limits: &Limits,
        vip: Endpoint,
        proto: u8,
        client: Addr,
        service_conns: u32,
        (worker, workers): (u16, u16),
        judge: bool,
        now: Millis,
    ) -> Result<Ticket, DropReason> {
        if judge
            && limits.max_conns > 0
            && service_conns >= share(limits.max_conns, worker, workers, u32::from(vip.port))
        {
            self.hit(limits.counters[0]);
            return Err(DropReason::ConnLimit);
        }
        if !limits.per_client() || self.clients.is_empty() {
            return Ok(NO_TICKET);
        }
        let prefix = limits.client_prefix(client);
        let h = (prefix.fold() ^ vip.ip.fold() ^ u64::from(vip.port) << 8 ^ u64::from(proto))
            .wrapping_add(self.seed)
            .wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let rot = (h >> 40) as u32;
        let (interval, tolerance) = bucket_share(
            limits.rate,
            limits.burst_or_rate(),
            worker,
            workers,
            rot ^ u32::from(vip.port),
        );
        let n = self.clients.len();
        let start = (h >> 32) as usize % n;
        let mut found = None;
        let mut free = None;
        for k in 0..PROBE {
            let i = (start + k) % n;
            let e = &self.clients[i];
            if e.used && e.prefix == prefix && e.vip == vip && e.proto == proto {
                found = Some(i);
                break;
            }
            if free.is_none() && e.is_free(now) {
                free = Some(i);
            }
        }
        let i = match (found, free) {
            (Some(i), _) => i,
            (None, Some(i)) => {
                self.clients[i] = Entry {
                    used: true,
                    proto,
                    conns: 0,
                    vip,
                    prefix,
                    bucket: TokenBucket::full(),
                    idle_at: now.0,
                };
                i
            }
            (None, None) => {
                return if judge {
                    Err(DropReason::ClientTableFull)
                } else {
                    Ok(NO_TICKET)
                };
            }
        };
        if judge {
            let max = limits.max_conns_per_client;
            if max > 0 && self.clients[i].conns >= share(max, worker, workers, rot) {
                self.hit(limits.counters[1]);
                return Err(DropReason::ClientConnLimit);
            }
            if limits.rate > 0 {
                let e = &mut self.clients[i];
                let ok = e.bucket.take(now, interval, tolerance);
                e.idle_at = e.bucket.full_at();
                if !ok {
                    self.hit(limits.counters[2]);
                    return Err(DropReason::ClientRateLimit);
                }
            }
        }
        Ok(i as u32)
    }

    /// Session `slot` was created with `ticket`: count it in its entry.
    #[inline]
    pub fn opened(&mut self, slot: usize, ticket: Ticket) {
        if let Some(t) = self.tickets.get_mut(slot) {
            *t = ticket;
        }
        if let Some(e) = self.clients.get_mut(ticket as usize) {
            e.conns += 1;
        }
    }

    /// Session `slot` ended: uncount it.
    #[inline]
    pub fn closed(&mut self, slot: usize) {
        let Some(t) = self.tickets.get_mut(slot) else {
            return;
        };
        let ticket = std::mem::replace(t, NO_TICKET);
        if let Some(e) = self.clients.get_mut(ticket as usize) {
            e.conns = e.conns.saturating_sub(1);
        }
    }

    /// Counts a port unreachable held back by a service's ICMP limit.
    pub fn icmp_limited(&mut self, limits: &Limits) {
        self.hit(limits.counters[3]);
    }

    /// Connections counted for `client`'s prefix at service (`vip`,
    /// `proto`) (tests).
    #[must_use]
    pub fn client_conns(&self, limits: &Limits, vip: Endpoint, proto: u8, client: Addr) -> u32 {
        let prefix = limits.client_prefix(client);
        self.clients
            .iter()
            .find(|e| e.used && e.prefix == prefix && e.vip == vip && e.proto == proto)
            .map_or(0, |e| e.conns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const VIP: Endpoint = Endpoint::new([10, 0, 0, 1], 80);

    fn lim() -> Limits {
        Limits {
            counters: [0, 1, 2, 3],
            ..Limits::default()
        }
    }

    #[test]
    fn a_bucket_gives_its_burst_then_the_rate() {
        // 10/s, burst 3, one worker.
        let (interval, tolerance) = bucket_share(10, 3, 0, 1, 0);
        let mut b = TokenBucket::full();
        let t = Millis(1000);
        assert!(
            b.take(t, interval, tolerance)
                && b.take(t, interval, tolerance)
                && b.take(t, interval, tolerance)
        );
        assert!(!b.take(t, interval, tolerance), "burst spent");
        assert!(
            !b.take(Millis(1099), interval, tolerance),
            "99 ms: 0.99 token"
        );
        assert!(
            b.take(Millis(1100), interval, tolerance),
            "100 ms: one token"
        );
        assert!(!b.take(Millis(1100), interval, tolerance));
        // Idle for long: the burst again, no more.
        let later = Millis(100_000);
        assert_eq!(
            (0..10)
                .filter(|_| b.take(later, interval, tolerance))
                .count(),
            3
        );
    }

    #[test]
    fn an_idle_bucket_holds_exactly_the_burst_in_force() {
        // Used with a burst of 1; then the limit becomes 1/s with a burst of 3.
        let (i1, t1) = bucket_share(1, 1, 0, 1, 0);
        let mut b = TokenBucket::full();
        assert!(b.take(Millis(1000), i1, t1));
        let (i, t) = bucket_share(1, 3, 0, 1, 0);
        let later = Millis(60_000);
        assert_eq!((0..10).filter(|_| b.take(later, i, t)).count(), 3);
        assert!(!b.take(Millis(60_999), i, t));
        assert!(b.take(Millis(61_000), i, t));
    }

    #[test]
    fn the_clock_going_back_refills_nothing() {
        let (interval, tolerance) = bucket_share(1, 1, 0, 1, 0);
        let mut b = TokenBucket::full();
        assert!(b.take(Millis(5000), interval, tolerance));
        assert!(!b.take(Millis(1000), interval, tolerance));
        assert!(!b.take(Millis(5999), interval, tolerance));
        assert!(b.take(Millis(6000), interval, tolerance));
    }

    #[test]
    fn shares_add_up_to_the_limit() {
        for total in 1..40u32 {
            for workers in 1..6u16 {
                for rot in 0..7 {
                    let sum: u32 = (0..workers).map(|w| share(total, w, workers, rot)).sum();
                    assert_eq!(sum, total.max(u32::from(workers)), "{total} {workers}");
                }
            }
        }
    }

    proptest! {
        /// Over any run of attempts, a bucket never admits more than
        /// `burst + rate * elapsed`; with attempts every millisecond it
        /// admits at least the burst and one more per interval rounded up
        /// to the millisecond (an attempt can only come on a millisecond:
        /// with a burst of 1 a token that waits for it is not saved, as in
        /// any token bucket whose burst is 1).
        #[test]
        fn a_bucket_admits_burst_plus_rate_times_time(
            rate in 1u32..5000, burst in 1u32..50, ms in 1u64..5000
        ) {
            let (interval, tolerance) = bucket_share(rate, burst, 0, 1, 0);
            let mut b = TokenBucket::full();
            let mut got = 0u64;
            for t in 0..=ms {
                while b.take(Millis(t), interval, tolerance) {
                    got += 1;
                }
            }
            let most = u64::from(burst) + u64::from(rate) * ms / 1000;
            let least = u64::from(burst) + ms * 1000 / (interval.div_ceil(1000) * 1000);
            prop_assert!(got <= most, "{got} > {most}");
            prop_assert!(got + 1 >= least, "{got} far below {least}");
        }
    }

    #[test]
    fn per_client_connections_are_counted_and_refused_beyond_the_limit() {
        let mut w = WorkerLimits::new(16, 7);
        w.ensure_clients();
        let l = Limits {
            max_conns_per_client: 2,
            client_prefix_v4: 24,
            ..lim()
        };
        let now = Millis(10);
        let c1 = Addr::v4([192, 0, 2, 1]);
        let c2 = Addr::v4([192, 0, 2, 200]);
        let other = Addr::v4([198, 51, 100, 1]);
        let t = w.admit(&l, VIP, 6, c1, 0, (0, 1), true, now).unwrap();
        w.opened(0, t);
        let t = w.admit(&l, VIP, 6, c2, 0, (0, 1), true, now).unwrap();
        w.opened(1, t);
        assert_eq!(w.client_conns(&l, VIP, 6, c1), 2, "one /24");
        assert_eq!(
            w.admit(&l, VIP, 6, c1, 0, (0, 1), true, now),
            Err(DropReason::ClientConnLimit)
        );
        assert_eq!(w.hits[1], 1);
        assert!(w.admit(&l, VIP, 6, other, 0, (0, 1), true, now).is_ok());
        w.closed(0);
        w.closed(0);
        assert_eq!(w.client_conns(&l, VIP, 6, c1), 1, "closed once");
        assert!(w.admit(&l, VIP, 6, c1, 0, (0, 1), true, now).is_ok());
        // A frame released after its next hop: never refused.
        let t = w.admit(&l, VIP, 6, c1, 0, (0, 1), false, now).unwrap();
        w.opened(2, t);
        assert_eq!(
            w.admit(&l, VIP, 6, c1, 0, (0, 1), false, now).map(|_| ()),
            Ok(())
        );
    }

    #[test]
    fn the_service_limit_and_the_rate() {
        let mut w = WorkerLimits::new(4, 1);
        w.ensure_clients();
        let l = Limits {
            max_conns: 3,
            rate: 2,
            burst: 2,
            ..lim()
        };
        let c = Addr::v6([0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        assert_eq!(
            w.admit(&l, VIP, 6, c, 3, (0, 1), true, Millis(0)),
            Err(DropReason::ConnLimit)
        );
        assert_eq!(w.hits[0], 1);
        assert!(w.admit(&l, VIP, 6, c, 0, (0, 1), true, Millis(0)).is_ok());
        assert!(w.admit(&l, VIP, 6, c, 0, (0, 1), true, Millis(0)).is_ok());
        assert_eq!(
            w.admit(&l, VIP, 6, c, 0, (0, 1), true, Millis(0)),
            Err(DropReason::ClientRateLimit)
        );
        // The same /64, another host: the same bucket.
        let mut c2 = c.octets();
        c2[15] = 9;
        assert_eq!(
            w.admit(&l, VIP, 6, Addr::v6(c2), 0, (0, 1), true, Millis(0)),
            Err(DropReason::ClientRateLimit)
        );
        assert_eq!(w.hits[2], 2);
        assert!(w.admit(&l, VIP, 6, c, 0, (0, 1), true, Millis(500)).is_ok());
    }

    #[test]
    fn a_full_window_refuses_new_prefixes_until_an_entry_is_idle() {
        let mut w = WorkerLimits::new(CLIENT_SLOTS * 2, 3);
        w.ensure_clients();
        let l = Limits {
            max_conns_per_client: 100,
            ..lim()
        };
        let now = Millis(0);
        // Fill the table with live connections, one per prefix.
        let mut slot = 0;
        let mut refused = None;
        for i in 0..(CLIENT_SLOTS as u32 * 2) {
            let c = Addr::v4((0x0a00_0000 + i).to_be_bytes());
            match w.admit(&l, VIP, 6, c, 0, (0, 1), true, now) {
                Ok(t) => {
                    w.opened(slot, t);
                    slot += 1;
                }
                Err(r) => {
                    assert_eq!(r, DropReason::ClientTableFull);
                    refused = Some((c, slot));
                    break;
                }
            }
        }
        let (c, filled) = refused.expect("the table fills");
        assert!(filled > CLIENT_SLOTS / 2, "only {filled} placed");
        // Every session closes: their entries carry nothing and are reused.
        for s in 0..filled {
            w.closed(s);
        }
        assert!(w.admit(&l, VIP, 6, c, 0, (0, 1), true, now).is_ok());
    }
}
