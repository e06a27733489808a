//! Schedulers: which real server gets a new connection.
//!
//! Every policy of the Linux kernel's IPVS (`ip_vs_*.c`) is here, one file
//! each, plus DPVS's `conhash`. Each follows the kernel's code: the same walk
//! over the service's real servers in list order, the same tie-breaking, the
//! same integer formulas (`overhead = active * 256 + inactive` for lc, wlc,
//! lblc and twos; `active + 1` for sed and nq), the same hash functions and
//! table layouts for sh, dh and mh ([`hash`]). The unit tests beside each
//! policy replay pick sequences worked out from the kernel's algorithm.
//!
//! # Shape
//!
//! A policy has up to two parts:
//!
//! - an immutable [`SchedTable`] that **control** builds with [`build`] and
//!   publishes inside the service of the snapshot: sh/dh's 256 buckets, mh's
//!   Maglev lookup table, conhash's ring. Workers never build one, so a
//!   Maglev table of 65537 entries for 1000 servers costs no worker any time;
//! - a per-worker [`Scheduler`] holding what the kernel keeps in
//!   `svc->sched_data` and changes while scheduling: the rr cursor, wrr's
//!   current weight, lblc/lblcr's locality caches, twos' random state. It is
//!   built when a worker adopts a snapshot (cold, may allocate) and kept
//!   across snapshots while the service keeps its policy.
//!
//! [`Scheduler::pick`] allocates nothing, takes no lock and reads the
//! connection counts through [`Backends`].
//!
//! # Per-worker counts and what they mean for the aggregate
//!
//! The kernel counts each real server's active/inactive connections once,
//! globally, with atomics. rvs does not share mutable state between workers:
//! each worker counts the connections **it** created ([`crate::pipeline`]'s
//! per-worker `rs_conns`) and its schedulers read only those. Client flows are
//! spread over workers by a hash, so each worker sees an unbiased sample,
//! about `1/W` of the traffic, and:
//!
//! - rr, wrr: each worker rotates on its own; every worker's sequence has the
//!   kernel's proportions, so the sum has them too (the interleaving seen by
//!   one client across workers is not the kernel's exact sequence);
//! - lc, wlc, sed, nq, twos, ovf, lblc, lblcr: each worker balances its own
//!   connections by the kernel's rule; a sum of balanced shares is balanced,
//!   within about one connection per worker per server of what one global
//!   counter would give. nq's "idle" and ovf's "active > weight" are judged on
//!   the worker's own share (a server idle for this worker may be busy with
//!   another's connections);
//! - sh, dh, mh, conhash, fo: depend on the table and weights only, identical
//!   on every worker.
//!
//! Thresholds (`-x`/`-y`) are split the same way; see [`crate::pipeline`].

pub mod conhash;
pub mod dh;
pub mod fo;
pub mod hash;
pub mod lblc;
pub mod lblcr;
pub mod lc;
pub mod mh;
pub mod nq;
pub mod ovf;
pub mod rr;
pub mod sed;
pub mod sh;
pub mod twos;
pub mod wlc;
pub mod wrr;

use crate::time::Millis;

/// The real servers of a service as a scheduler sees them, by position in
/// the service's list. Implemented over the snapshot plus the worker's
/// counters ([`crate::pipeline`]), and by test doubles.
pub trait Backends {
    /// Number of real servers.
    fn len(&self) -> usize;
    /// True when there are none.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Weight of server `i` (0: no new connections).
    fn weight(&self, i: usize) -> u32;
    /// Connections in ESTABLISHED (`activeconns`).
    fn active(&self, i: usize) -> u32;
    /// Connections in other states (`inactconns`).
    fn inactive(&self, i: usize) -> u32;
    /// Over its upper connection threshold (`IP_VS_DEST_F_OVERLOAD`).
    fn overloaded(&self, i: usize) -> bool;
    /// An identity that survives snapshots (the global real-server index),
    /// for the caches of lblc and lblcr.
    fn id(&self, i: usize) -> u16;

    /// `ip_vs_dest_conn_overhead()`: `active * 256 + inactive`.
    #[inline]
    fn overhead(&self, i: usize) -> u64 {
        u64::from(self.active(i)) << 8 | u64::from(self.inactive(i))
    }
    /// Not `is_unavailable()`: weight above 0 and not overloaded.
    #[inline]
    fn available(&self, i: usize) -> bool {
        self.weight(i) > 0 && !self.overloaded(i)
    }
    /// The position of the server with identity `id`, if still listed.
    #[inline]
    fn position(&self, id: u16) -> Option<usize> {
        (0..self.len()).find(|&i| self.id(i) == id)
    }
}

/// What the hashing policies hash: the new connection's addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Flow {
    /// Client address (sh, mh, conhash).
    pub client: [u8; 4],
    /// Client port (sh-port, mh-port).
    pub client_port: u16,
    /// Destination address, the VIP (dh, lblc, lblcr).
    pub vip: [u8; 4],
    /// Destination port.
    pub vip_port: u16,
}

/// The scheduling policies, by their ipvsadm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum SchedKind {
    /// `rr`: round robin.
    RoundRobin,
    /// `wrr`: weighted round robin.
    WeightedRoundRobin,
    /// `lc`: least connection.
    LeastConnection,
    /// `wlc`: weighted least connection (ipvsadm's default).
    #[default]
    WeightedLeastConnection,
    /// `sed`: shortest expected delay.
    ShortestExpectedDelay,
    /// `nq`: never queue.
    NeverQueue,
    /// `sh`: source hashing.
    SourceHashing,
    /// `dh`: destination hashing.
    DestinationHashing,
    /// `lblc`: locality-based least connection.
    LocalityLeastConnection,
    /// `lblcr`: locality-based least connection with replication.
    LocalityLeastConnectionReplication,
    /// `fo`: weighted failover.
    WeightedFailover,
    /// `ovf`: weighted overflow.
    WeightedOverflow,
    /// `mh`: Maglev hashing.
    MaglevHashing,
    /// `twos`: weighted random twos choice.
    TwoChoices,
    /// `conhash`: consistent hashing on the source address (DPVS).
    ConsistentHashing,
}

impl SchedKind {
    /// Every policy, in the order `ipvsadm -h` lists the kernel's.
    pub const ALL: [Self; 15] = [
        Self::RoundRobin,
        Self::WeightedRoundRobin,
        Self::LeastConnection,
        Self::WeightedLeastConnection,
        Self::LocalityLeastConnection,
        Self::LocalityLeastConnectionReplication,
        Self::DestinationHashing,
        Self::SourceHashing,
        Self::ShortestExpectedDelay,
        Self::NeverQueue,
        Self::WeightedFailover,
        Self::WeightedOverflow,
        Self::MaglevHashing,
        Self::TwoChoices,
        Self::ConsistentHashing,
    ];

    /// Parses an ipvsadm scheduler name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.name() == name)
    }

    /// The ipvsadm name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "rr",
            Self::WeightedRoundRobin => "wrr",
            Self::LeastConnection => "lc",
            Self::WeightedLeastConnection => "wlc",
            Self::ShortestExpectedDelay => "sed",
            Self::NeverQueue => "nq",
            Self::SourceHashing => "sh",
            Self::DestinationHashing => "dh",
            Self::LocalityLeastConnection => "lblc",
            Self::LocalityLeastConnectionReplication => "lblcr",
            Self::WeightedFailover => "fo",
            Self::WeightedOverflow => "ovf",
            Self::MaglevHashing => "mh",
            Self::TwoChoices => "twos",
            Self::ConsistentHashing => "conhash",
        }
    }

    /// Every ipvsadm name, comma-separated (for error messages).
    #[must_use]
    pub fn names() -> String {
        Self::ALL
            .iter()
            .map(|k| k.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

bitflags::bitflags! {
    /// Scheduler flags (`ipvsadm -b`): the kernel's `IP_VS_SVC_F_SCHED1/2`,
    /// named per scheduler (`sh-fallback`/`mh-fallback` is bit 1,
    /// `sh-port`/`mh-port` bit 2).
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct SchedFlags: u8 {
        /// sh-fallback / mh-fallback: when the hashed server is unavailable,
        /// walk on through the table instead of refusing the connection.
        const FALLBACK = 1;
        /// sh-port / mh-port: hash the client's port too.
        const PORT = 2;
    }
}

/// A scheduler flag that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagError {
    /// Not a flag name at all.
    #[error("unknown scheduler flag {0:?} (known: sh-fallback, sh-port, mh-fallback, mh-port)")]
    Unknown(String),
    /// A flag of another scheduler.
    #[error("scheduler flag {flag:?} only applies to the {applies} scheduler, not {sched}")]
    Incompatible {
        /// The flag.
        flag: String,
        /// Which scheduler it belongs to.
        applies: &'static str,
        /// The service's scheduler.
        sched: &'static str,
    },
}

impl SchedFlags {
    /// No flags.
    pub const NONE: Self = Self::empty();

    /// The flag named `name` for scheduler `kind`.
    ///
    /// # Errors
    /// [`FlagError`] for an unknown name, or a flag of another scheduler
    /// (ipvsadm and keepalived refuse those too).
    pub fn parse(kind: SchedKind, name: &str) -> Result<Self, FlagError> {
        let (applies, bit) = match name {
            "sh-fallback" => (SchedKind::SourceHashing, Self::FALLBACK),
            "sh-port" => (SchedKind::SourceHashing, Self::PORT),
            "mh-fallback" => (SchedKind::MaglevHashing, Self::FALLBACK),
            "mh-port" => (SchedKind::MaglevHashing, Self::PORT),
            _ => return Err(FlagError::Unknown(name.to_string())),
        };
        if applies != kind {
            return Err(FlagError::Incompatible {
                flag: name.to_string(),
                applies: applies.name(),
                sched: kind.name(),
            });
        }
        Ok(bit)
    }

    /// The flags' names for scheduler `kind`, as ipvsadm prints them.
    #[must_use]
    pub fn names(self, kind: SchedKind) -> Vec<&'static str> {
        let (fallback, port) = match kind {
            SchedKind::SourceHashing => ("sh-fallback", "sh-port"),
            SchedKind::MaglevHashing => ("mh-fallback", "mh-port"),
            _ => ("flag-1", "flag-2"),
        };
        let mut out = Vec::new();
        if self.contains(Self::FALLBACK) {
            out.push(fallback);
        }
        if self.contains(Self::PORT) {
            out.push(port);
        }
        out
    }
}

/// Maglev lookup table size when none is configured: the smallest of the
/// kernel's primes (`ip_vs_mh.c` `primes[]`). Note that the kernel's own
/// default build option (`CONFIG_IP_VS_MH_TAB_INDEX=12`) gives 4093; set
/// `mh_table_size` for that, or 65537 as DPVS and the Maglev paper use.
pub const MH_TABLE_SIZE_DEFAULT: u32 = 251;
/// Largest Maglev table accepted (entries are `u16` server positions; the
/// table is 2 bytes per entry).
pub const MH_TABLE_SIZE_MAX: u32 = 1 << 20;

/// A real server as control hands it to [`build`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Member {
    /// Address.
    pub addr: [u8; 4],
    /// Port.
    pub port: u16,
    /// Current weight.
    pub weight: u32,
    /// The last non-zero weight (the kernel's `last_weight`): a server set to
    /// weight 0 keeps its Maglev slots, so draining it moves nobody else.
    pub last_weight: u32,
}

/// Position value meaning "no server" in a [`SchedTable`].
pub const NO_SERVER: u16 = u16::MAX;

/// What control builds for a service's policy and publishes in the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum SchedTable {
    /// The policy needs no table.
    #[default]
    None,
    /// sh or dh: 256 buckets of server positions ([`NO_SERVER`] if empty).
    Buckets(Box<[u16]>),
    /// mh: the Maglev lookup table (a prime number of server positions).
    Maglev(Box<[u16]>),
    /// conhash: ring points `(hash, position)`, sorted.
    Ring(Box<[(u32, u16)]>),
}

/// Builds what policy `kind` needs from the service's servers, in list order.
/// Control calls this when it builds a snapshot; `mh_table_size` must be a
/// prime (validated with the config).
#[must_use]
pub fn build(kind: SchedKind, mh_table_size: u32, members: &[Member]) -> SchedTable {
    match kind {
        SchedKind::SourceHashing => SchedTable::Buckets(sh::build(members)),
        SchedKind::DestinationHashing => SchedTable::Buckets(dh::build(members)),
        SchedKind::MaglevHashing => SchedTable::Maglev(mh::build(members, mh_table_size)),
        SchedKind::ConsistentHashing => SchedTable::Ring(conhash::build(members)),
        _ => SchedTable::None,
    }
}

/// Greatest common divisor of the non-zero values, 0 if there are none.
pub(crate) fn gcd_of(values: impl Iterator<Item = u32>) -> u32 {
    values
        .filter(|w| *w > 0)
        .fold(0, |g, w| if g == 0 { w } else { gcd(g, w) })
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

/// True if `n` is prime (Maglev table sizes).
#[must_use]
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while u64::from(d) * u64::from(d) <= u64::from(n) {
        if n.is_multiple_of(d) {
            return false;
        }
        d += 1;
    }
    true
}

/// Per-worker scheduler state for one service.
#[derive(Debug, Clone)]
pub enum Scheduler {
    /// rr.
    RoundRobin(rr::RoundRobin),
    /// wrr.
    WeightedRoundRobin(wrr::WeightedRoundRobin),
    /// lc.
    LeastConnection,
    /// wlc.
    WeightedLeastConnection,
    /// sed.
    ShortestExpectedDelay,
    /// nq.
    NeverQueue,
    /// sh.
    SourceHashing,
    /// dh.
    DestinationHashing,
    /// lblc.
    LocalityLeastConnection(Box<lblc::Lblc>),
    /// lblcr.
    LocalityLeastConnectionReplication(Box<lblcr::Lblcr>),
    /// fo.
    WeightedFailover,
    /// ovf.
    WeightedOverflow,
    /// mh.
    MaglevHashing,
    /// twos.
    TwoChoices(twos::TwoChoices),
    /// conhash.
    ConsistentHashing,
}

impl Scheduler {
    /// Fresh state of policy `kind` for the servers `b`; `seed` feeds twos'
    /// random choices (give each worker its own). Cold: may allocate.
    #[must_use]
    pub fn new<B: Backends>(kind: SchedKind, b: &B, seed: u64) -> Self {
        match kind {
            SchedKind::RoundRobin => Self::RoundRobin(rr::RoundRobin::default()),
            SchedKind::WeightedRoundRobin => {
                Self::WeightedRoundRobin(wrr::WeightedRoundRobin::new(b))
            }
            SchedKind::LeastConnection => Self::LeastConnection,
            SchedKind::WeightedLeastConnection => Self::WeightedLeastConnection,
            SchedKind::ShortestExpectedDelay => Self::ShortestExpectedDelay,
            SchedKind::NeverQueue => Self::NeverQueue,
            SchedKind::SourceHashing => Self::SourceHashing,
            SchedKind::DestinationHashing => Self::DestinationHashing,
            SchedKind::LocalityLeastConnection => Self::LocalityLeastConnection(Box::default()),
            SchedKind::LocalityLeastConnectionReplication => {
                Self::LocalityLeastConnectionReplication(Box::default())
            }
            SchedKind::WeightedFailover => Self::WeightedFailover,
            SchedKind::WeightedOverflow => Self::WeightedOverflow,
            SchedKind::MaglevHashing => Self::MaglevHashing,
            SchedKind::TwoChoices => Self::TwoChoices(twos::TwoChoices::new(seed)),
            SchedKind::ConsistentHashing => Self::ConsistentHashing,
        }
    }

    /// The policy.
    #[must_use]
    pub fn kind(&self) -> SchedKind {
        match self {
            Self::RoundRobin(_) => SchedKind::RoundRobin,
            Self::WeightedRoundRobin(_) => SchedKind::WeightedRoundRobin,
            Self::LeastConnection => SchedKind::LeastConnection,
            Self::WeightedLeastConnection => SchedKind::WeightedLeastConnection,
            Self::ShortestExpectedDelay => SchedKind::ShortestExpectedDelay,
            Self::NeverQueue => SchedKind::NeverQueue,
            Self::SourceHashing => SchedKind::SourceHashing,
            Self::DestinationHashing => SchedKind::DestinationHashing,
            Self::LocalityLeastConnection(_) => SchedKind::LocalityLeastConnection,
            Self::LocalityLeastConnectionReplication(_) => {
                SchedKind::LocalityLeastConnectionReplication
            }
            Self::WeightedFailover => SchedKind::WeightedFailover,
            Self::WeightedOverflow => SchedKind::WeightedOverflow,
            Self::MaglevHashing => SchedKind::MaglevHashing,
            Self::TwoChoices(_) => SchedKind::TwoChoices,
            Self::ConsistentHashing => SchedKind::ConsistentHashing,
        }
    }

    /// The service's servers changed (a new snapshot, same policy): adjust
    /// the state as the kernel's `add_dest`/`del_dest`/`upd_dest` hooks do.
    pub fn servers_changed<B: Backends>(&mut self, b: &B) {
        match self {
            Self::RoundRobin(r) => r.servers_changed(b),
            Self::WeightedRoundRobin(w) => w.servers_changed(b),
            _ => {}
        }
    }

    /// Picks the position of a server in `b` for a new connection `flow`, or
    /// `None` if none can take it. `table` is the service's [`SchedTable`].
    #[inline]
    pub fn pick<B: Backends>(
        &mut self,
        table: &SchedTable,
        flags: SchedFlags,
        b: &B,
        flow: &Flow,
        now: Millis,
    ) -> Option<usize> {
        match self {
            Self::RoundRobin(r) => r.pick(b),
            Self::WeightedRoundRobin(w) => w.pick(b),
            Self::LeastConnection => lc::pick(b),
            Self::WeightedLeastConnection => wlc::pick(b),
            Self::ShortestExpectedDelay => sed::pick(b),
            Self::NeverQueue => nq::pick(b),
            Self::SourceHashing => sh::pick(table, flags, b, flow),
            Self::DestinationHashing => dh::pick(table, b, flow),
            Self::LocalityLeastConnection(c) => c.pick(b, flow, now),
            Self::LocalityLeastConnectionReplication(c) => c.pick(b, flow, now),
            Self::WeightedFailover => fo::pick(b),
            Self::WeightedOverflow => ovf::pick(b),
            Self::MaglevHashing => mh::pick(table, flags, b, flow),
            Self::TwoChoices(t) => t.pick(b),
            Self::ConsistentHashing => conhash::pick(table, b, flow),
        }
    }
}

/// Test doubles shared by the policies' unit tests.
#[cfg(test)]
pub(crate) mod testkit {
    use super::Backends;

    /// Servers with explicit weights and counters; identity = position.
    #[derive(Debug, Clone, Default)]
    pub(crate) struct Servers {
        pub weight: Vec<u32>,
        pub active: Vec<u32>,
        pub inactive: Vec<u32>,
        pub over: Vec<bool>,
    }

    impl Servers {
        pub(crate) fn weights(w: &[u32]) -> Self {
            Self {
                weight: w.to_vec(),
                active: vec![0; w.len()],
                inactive: vec![0; w.len()],
                over: vec![false; w.len()],
            }
        }
        pub(crate) fn with_active(mut self, a: &[u32]) -> Self {
            self.active = a.to_vec();
            self
        }
        pub(crate) fn with_inactive(mut self, a: &[u32]) -> Self {
            self.inactive = a.to_vec();
            self
        }
        /// Counts a new connection to `i` as the pipeline would (active, as
        /// if it completed its handshake at once).
        pub(crate) fn connect(&mut self, i: usize) {
            self.active[i] += 1;
        }
    }

    impl Backends for Servers {
        fn len(&self) -> usize {
            self.weight.len()
        }
        fn weight(&self, i: usize) -> u32 {
            self.weight[i]
        }
        fn active(&self, i: usize) -> u32 {
            self.active[i]
        }
        fn inactive(&self, i: usize) -> u32 {
            self.inactive[i]
        }
        fn overloaded(&self, i: usize) -> bool {
            self.over[i]
        }
        fn id(&self, i: usize) -> u16 {
            i as u16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for k in SchedKind::ALL {
            assert_eq!(SchedKind::from_name(k.name()), Some(k));
        }
        assert_eq!(SchedKind::from_name("wlc"), Some(SchedKind::default()));
        assert_eq!(SchedKind::from_name("nope"), None);
        assert!(SchedKind::names().starts_with("rr, wrr, lc, wlc"));
    }

    #[test]
    fn flags_belong_to_their_scheduler() {
        let sh = SchedKind::SourceHashing;
        let f = SchedFlags::parse(sh, "sh-fallback")
            .unwrap()
            .union(SchedFlags::parse(sh, "sh-port").unwrap());
        assert!(f.contains(SchedFlags::FALLBACK) && f.contains(SchedFlags::PORT));
        assert_eq!(f.names(sh), vec!["sh-fallback", "sh-port"]);
        assert_eq!(
            SchedFlags::PORT.names(SchedKind::MaglevHashing),
            vec!["mh-port"]
        );
        assert!(matches!(
            SchedFlags::parse(SchedKind::RoundRobin, "sh-port"),
            Err(FlagError::Incompatible { .. })
        ));
        assert!(matches!(
            SchedFlags::parse(SchedKind::MaglevHashing, "sh-port"),
            Err(FlagError::Incompatible { .. })
        ));
        assert!(matches!(
            SchedFlags::parse(sh, "bogus"),
            Err(FlagError::Unknown(_))
        ));
    }

    #[test]
    fn primes() {
        let p: Vec<u32> = (0..30).filter(|n| is_prime(*n)).collect();
        assert_eq!(p, vec![2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        for n in [
            251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 65537, 131071,
        ] {
            assert!(is_prime(n), "{n}");
        }
        assert!(!is_prime(65535) && !is_prime(1));
        assert_eq!(gcd_of([0, 4, 6, 8].into_iter()), 2);
        assert_eq!(gcd_of([0, 0].into_iter()), 0);
    }
}
