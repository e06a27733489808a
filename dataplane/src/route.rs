//! Longest-prefix-match route tables, IPv4 and IPv6: prefix → egress port
//! and next hop.
//!
//! Control builds a [`RouteTable`] from the interfaces' connected subnets,
//! their own addresses (local routes, as the kernel's `local` table), the
//! configured static routes and default gateways, and whatever `rvsadm
//! route|addr` changed since; it is published inside
//! [`crate::tables::Tables`] and never changes afterwards (a change is a
//! new snapshot). Workers only read it.
//!
//! Shape: one open-addressing hash table keyed by (masked prefix, prefix
//! length), holding the routes and *markers*, plus the sorted list of the
//! prefix lengths present. A lookup is a binary search over those lengths
//! (Waldvogel et al., SIGCOMM 1997): mask the address to the middle length
//! and probe; a hit (route or marker) means a longer match may exist, a
//! miss means none does. Markers carry the best real route they cover, so
//! a search that a marker sent the wrong way still answers correctly. At
//! most `log2(lengths) + 1` probes: 5 for 25 distinct IPv4 lengths, 8 for
//! 129 IPv6 ones.
//!
//! Chosen over DPDK's DIR-24-8 (`rte_lpm`) because a snapshot is rebuilt
//! and copied on every change: DIR-24-8 needs a 64 MiB first-level array
//! per IPv4 table, this needs a few slots per route, and the same code
//! serves 128-bit addresses. The route lookup runs when a session is
//! created (its next hop is then cached in the session), not per packet.
//! Lookups allocate nothing, take no lock and never fail except by "no
//! route". The property tests compare every lookup with a linear scan.
//!
//! Routes are stored with their host bits cleared. Two routes for the same
//! prefix and length are refused ([`RouteError::Duplicate`]); control keeps
//! the richer view (protocol, scope, source) for `rvsadm route show`.

use std::fmt::Debug;

/// An address family the table can hold: `[u8; 4]` (IPv4) or `[u8; 16]`
/// (IPv6). Keys are the address as a big-endian integer.
pub trait RouteAddr: Copy + Eq + Debug + Default {
    /// Address length in bits (32 or 128).
    const BITS: u8;
    /// The address as an integer (network byte order read big-endian).
    fn to_key(self) -> u128;
    /// The address of an integer key.
    fn from_key(key: u128) -> Self;
}

impl RouteAddr for [u8; 4] {
    const BITS: u8 = 32;
    #[inline]
    fn to_key(self) -> u128 {
        u128::from(u32::from_be_bytes(self))
    }
    #[inline]
    fn from_key(key: u128) -> Self {
        #[allow(clippy::cast_possible_truncation)] // keys of this family fit 32 bits
        (key as u32).to_be_bytes()
    }
}

impl RouteAddr for [u8; 16] {
    const BITS: u8 = 128;
    #[inline]
    fn to_key(self) -> u128 {
        u128::from_be_bytes(self)
    }
    #[inline]
    fn from_key(key: u128) -> Self {
        key.to_be_bytes()
    }
}

/// The mask of a `len`-bit prefix for a `bits`-bit family.
#[inline]
#[must_use]
pub fn prefix_mask(bits: u8, len: u8) -> u128 {
    if len == 0 {
        return 0;
    }
    let full = if bits >= 128 {
        u128::MAX
    } else {
        (1u128 << bits) - 1
    };
    (u128::MAX << (u32::from(bits) - u32::from(len.min(bits)))) & full
}

/// Where a route sends packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NextHop<A> {
    /// A connected subnet: the destination itself is the next hop.
    OnLink {
        /// Egress port (position in the worker's port list).
        port: u16,
    },
    /// Through a gateway on the port's link.
    Via {
        /// Egress port.
        port: u16,
        /// The gateway's address.
        gateway: A,
    },
    /// An address of the appliance itself (the kernel's `local` route).
    Local {
        /// The port whose interface carries the address.
        port: u16,
    },
}

impl<A: Copy> NextHop<A> {
    /// The port the route names.
    #[must_use]
    pub fn port(&self) -> u16 {
        match *self {
            Self::OnLink { port } | Self::Via { port, .. } | Self::Local { port } => port,
        }
    }
}

/// One route: `prefix/len → hop`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route<A> {
    /// The destination prefix (host bits are cleared when the table is built).
    pub prefix: A,
    /// Prefix length in bits.
    pub len: u8,
    /// Where it goes.
    pub hop: NextHop<A>,
}

/// Why a table could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// A prefix length beyond the family's address length.
    #[error("prefix length {len} is longer than {bits} bits")]
    PrefixLen {
        /// The length given.
        len: u8,
        /// The family's address length.
        bits: u8,
    },
    /// Two routes for one prefix.
    #[error("route {prefix}/{len} given twice")]
    Duplicate {
        /// The prefix, printed.
        prefix: String,
        /// Its length.
        len: u8,
    },
    /// More routes than the table indexes (2^31).
    #[error("too many routes")]
    TooMany,
}

/// No route in this slot.
const EMPTY: u8 = u8::MAX;
/// A marker that no real route covers.
const NO_ROUTE: u32 = u32::MAX;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Slot {
    key: u128,
    /// Prefix length, [`EMPTY`] for a free slot.
    len: u8,
    /// Index into [`RouteTable::routes`] of the longest real route that
    /// covers this prefix (itself for a route; for a marker, its best
    /// match, or [`NO_ROUTE`]).
    route: u32,
}

const FREE: Slot = Slot {
    key: 0,
    len: EMPTY,
    route: 0,
};

/// Open addressing with linear probing over (masked prefix, length).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Prefixes {
    slots: Vec<Slot>,
    /// `slots.len() - 1` (a power of two minus one).
    mask: usize,
}

impl Prefixes {
    fn with_capacity(n: usize) -> Self {
        let size = (n * 2).next_power_of_two().max(1);
        Self {
            slots: vec![FREE; size],
            mask: size - 1,
        }
    }

    /// Inserts unless present; returns the slot's route index if it was.
    fn insert(&mut self, key: u128, len: u8, route: u32) -> Option<u32> {
        let mut i = slot_hash(key, len) & self.mask;
        loop {
            let s = &mut self.slots[i];
            if s.len == EMPTY {
                *s = Slot { key, len, route };
                return None;
            }
            if s.len == len && s.key == key {
                return Some(s.route);
            }
            i = (i + 1) & self.mask;
        }
    }

    #[inline]
    fn find(&self, key: u128, len: u8) -> Option<&Slot> {
        let mut i = slot_hash(key, len) & self.mask;
        loop {
            let s = &self.slots[i];
            if s.len == EMPTY {
                return None;
            }
            if s.len == len && s.key == key {
                return Some(s);
            }
            i = (i + 1) & self.mask;
        }
    }
}

/// An immutable longest-prefix-match table for one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteTable<A> {
    routes: Vec<Route<A>>,
    /// Prefix lengths of the routes, shortest first, with their masks.
    lens: Vec<(u8, u128)>,
    /// Routes and markers.
    prefixes: Prefixes,
}

impl<A: RouteAddr> Default for RouteTable<A> {
    fn default() -> Self {
        Self {
            routes: Vec::new(),
            lens: Vec::new(),
            prefixes: Prefixes::with_capacity(0),
        }
    }
}

#[inline]
fn slot_hash(key: u128, len: u8) -> usize {
    // Fold to 64 bits, mix in the length, one multiply-xorshift round.
    #[allow(clippy::cast_possible_truncation)] // folding on purpose
    let mut h = (key as u64) ^ ((key >> 64) as u64).rotate_left(29) ^ (u64::from(len) << 56);
    h = h.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    h ^= h >> 29;
    #[allow(clippy::cast_possible_truncation)] // only the low bits index the table
    let i = h as usize;
    i
}

/// The midpoints a binary search over `n` lengths visits before it reaches
/// index `target`, with the direction it takes at each (true: longer).
fn search_path(n: usize, target: usize) -> impl Iterator<Item = (usize, bool)> {
    let (mut lo, mut hi) = (0, n);
    std::iter::from_fn(move || {
        if lo >= hi {
            return None;
        }
        let mid = (lo + hi) / 2;
        if mid == target {
            lo = hi;
            return None;
        }
        if mid < target {
            lo = mid + 1;
            Some((mid, true))
        } else {
            hi = mid;
            Some((mid, false))
        }
    })
}

impl<A: RouteAddr> RouteTable<A> {
    /// Builds a table from `routes` (host bits of each prefix are cleared).
    ///
    /// Besides each route, a *marker* goes wherever the binary search over
    /// prefix lengths must turn toward longer prefixes on its way to the
    /// route: the route's prefix cut to that shorter length, carrying the
    /// longest real route that covers it (Waldvogel et al., "Scalable
    /// High Speed IP Routing Lookups", SIGCOMM 1997). Lookups then probe
    /// `log2(lengths) + 1` prefixes at most. Building costs one
    /// lengths-long scan per marker; it runs on control, never per packet.
    ///
    /// # Errors
    /// [`RouteError`] for a prefix length beyond the family or a prefix
    /// given twice.
    pub fn new(routes: impl IntoIterator<Item = Route<A>>) -> Result<Self, RouteError> {
        let mut list: Vec<Route<A>> = Vec::new();
        for mut r in routes {
            if r.len > A::BITS {
                return Err(RouteError::PrefixLen {
                    len: r.len,
                    bits: A::BITS,
                });
            }
            r.prefix = A::from_key(r.prefix.to_key() & prefix_mask(A::BITS, r.len));
            list.push(r);
        }
        if list.len() >= (1 << 31) {
            return Err(RouteError::TooMany);
        }
        // The routes alone first: duplicates, and the best match of markers.
        let mut real = Prefixes::with_capacity(list.len());
        let mut present = [false; 129];
        for (n, r) in list.iter().enumerate() {
            #[allow(clippy::cast_possible_truncation)] // fewer than 2^31, checked above
            if real.insert(r.prefix.to_key(), r.len, n as u32).is_some() {
                return Err(RouteError::Duplicate {
                    prefix: format!("{:?}", r.prefix),
                    len: r.len,
                });
            }
            present[usize::from(r.len)] = true;
        }
        let lens: Vec<(u8, u128)> = (0..=A::BITS)
            .filter(|l| present[usize::from(*l)])
            .map(|l| (l, prefix_mask(A::BITS, l)))
            .collect();
        let index_of = |len: u8| lens.iter().position(|(l, _)| *l == len).unwrap_or(0);
        // The longest route covering `key` among lengths <= `max` (slow: every length).
        let best_real = |key: u128, max: u8| {
            lens.iter()
                .rev()
                .filter(|(l, _)| *l <= max)
                .find_map(|&(l, m)| real.find(key & m, l))
                .map_or(NO_ROUTE, |s| s.route)
        };
        let mut markers: Vec<(u128, u8)> = Vec::new();
        for r in &list {
            for (mid, longer) in search_path(lens.len(), index_of(r.len)) {
                if longer {
                    let (l, m) = lens[mid];
                    markers.push((r.prefix.to_key() & m, l));
                }
            }
        }
        let mut prefixes = Prefixes::with_capacity(list.len() + markers.len());
        for (n, r) in list.iter().enumerate() {
            #[allow(clippy::cast_possible_truncation)] // fewer than 2^31
            prefixes.insert(r.prefix.to_key(), r.len, n as u32);
        }
        for (key, len) in markers {
            if prefixes.find(key, len).is_none() {
                prefixes.insert(key, len, best_real(key, len));
            }
        }
        Ok(Self {
            routes: list,
            lens,
            prefixes,
        })
    }

    /// The longest-prefix match for `addr`, if any route covers it: a
    /// binary search over the prefix lengths, longer on a hit (route or
    /// marker), shorter on a miss.
    #[inline]
    #[must_use]
    pub fn lookup(&self, addr: A) -> Option<&Route<A>> {
        let key = addr.to_key();
        let mut best = NO_ROUTE;
        let (mut lo, mut hi) = (0, self.lens.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let (len, mask) = self.lens[mid];
            match self.prefixes.find(key & mask, len) {
                Some(s) => {
                    if s.route != NO_ROUTE {
                        best = s.route;
                    }
                    lo = mid + 1;
                }
                None => hi = mid,
            }
        }
        self.routes.get(best as usize)
    }

    /// The egress port and next-hop address toward `addr`: the address
    /// itself on a connected subnet, else the route's gateway. `None` without
    /// a route, or for the appliance's own addresses.
    #[inline]
    #[must_use]
    pub fn next_hop(&self, addr: A) -> Option<(u16, A)> {
        match self.lookup(addr)?.hop {
            NextHop::OnLink { port } => Some((port, addr)),
            NextHop::Via { port, gateway } => Some((port, gateway)),
            NextHop::Local { .. } => None,
        }
    }

    /// True if a local route names `addr` (an address the appliance owns).
    #[inline]
    #[must_use]
    pub fn is_local(&self, addr: A) -> bool {
        self.lookup(addr)
            .is_some_and(|r| matches!(r.hop, NextHop::Local { .. }) && r.len == A::BITS)
    }

    /// The routes, in the order given.
    #[must_use]
    pub fn routes(&self) -> &[Route<A>] {
        &self.routes
    }

    /// True if the table holds no route.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// Number of routes.
    #[must_use]
    pub fn len(&self) -> usize {
        self.routes.len()
    }
}

/// The route tables of both families, as a snapshot carries them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Routes {
    /// IPv4.
    pub v4: RouteTable<[u8; 4]>,
    /// IPv6.
    pub v6: RouteTable<[u8; 16]>,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn r4(p: [u8; 4], len: u8, hop: NextHop<[u8; 4]>) -> Route<[u8; 4]> {
        Route {
            prefix: p,
            len,
            hop,
        }
    }

    #[test]
    fn longest_prefix_wins() {
        let t = RouteTable::new([
            r4(
                [0, 0, 0, 0],
                0,
                NextHop::Via {
                    port: 0,
                    gateway: [10, 77, 0, 1],
                },
            ),
            r4([10, 79, 0, 0], 24, NextHop::OnLink { port: 1 }),
            r4(
                [10, 80, 0, 0],
                16,
                NextHop::Via {
                    port: 1,
                    gateway: [10, 79, 0, 254],
                },
            ),
            r4(
                [10, 80, 7, 0],
                24,
                NextHop::Via {
                    port: 0,
                    gateway: [10, 77, 0, 9],
                },
            ),
            r4([10, 79, 0, 2], 32, NextHop::Local { port: 1 }),
        ])
        .unwrap();
        assert_eq!(t.next_hop([10, 79, 0, 11]), Some((1, [10, 79, 0, 11])));
        assert_eq!(t.next_hop([10, 80, 3, 3]), Some((1, [10, 79, 0, 254])));
        assert_eq!(t.next_hop([10, 80, 7, 3]), Some((0, [10, 77, 0, 9])));
        assert_eq!(t.next_hop([8, 8, 8, 8]), Some((0, [10, 77, 0, 1])));
        assert_eq!(t.next_hop([10, 79, 0, 2]), None, "own address");
        assert!(t.is_local([10, 79, 0, 2]) && !t.is_local([10, 79, 0, 3]));
        assert_eq!(t.len(), 5);
    }

    #[test]
    fn host_bits_are_cleared_and_duplicates_refused() {
        let t = RouteTable::new([r4([10, 1, 2, 3], 8, NextHop::OnLink { port: 0 })]).unwrap();
        assert_eq!(t.routes()[0].prefix, [10, 0, 0, 0]);
        let e = RouteTable::new([
            r4([10, 1, 0, 0], 8, NextHop::OnLink { port: 0 }),
            r4([10, 2, 0, 0], 8, NextHop::OnLink { port: 1 }),
        ]);
        assert!(
            matches!(e, Err(RouteError::Duplicate { len: 8, .. })),
            "{e:?}"
        );
        assert_eq!(
            RouteTable::new([r4([10, 0, 0, 0], 33, NextHop::OnLink { port: 0 })]),
            Err(RouteError::PrefixLen { len: 33, bits: 32 })
        );
    }

    #[test]
    fn empty_table_and_ipv6() {
        assert_eq!(RouteTable::<[u8; 4]>::default().lookup([1, 2, 3, 4]), None);
        let mut p = [0u8; 16];
        p[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        let mut gw = p;
        gw[15] = 1;
        let t = RouteTable::new([
            Route {
                prefix: p,
                len: 32,
                hop: NextHop::OnLink { port: 0 },
            },
            Route {
                prefix: [0; 16],
                len: 0,
                hop: NextHop::Via {
                    port: 1,
                    gateway: gw,
                },
            },
        ])
        .unwrap();
        let mut a = p;
        a[15] = 0x42;
        assert_eq!(t.next_hop(a), Some((0, a)));
        assert_eq!(t.next_hop([0xfe; 16]), Some((1, gw)));
    }

    #[test]
    fn masks() {
        assert_eq!(prefix_mask(32, 24), 0xFFFF_FF00);
        assert_eq!(prefix_mask(32, 32), 0xFFFF_FFFF);
        assert_eq!(prefix_mask(32, 0), 0);
        assert_eq!(prefix_mask(128, 128), u128::MAX);
        assert_eq!(prefix_mask(128, 1), 1 << 127);
    }

    /// The reference: scan every route, keep the longest that covers.
    fn linear<A: RouteAddr>(routes: &[Route<A>], addr: A) -> Option<Route<A>> {
        routes
            .iter()
            .filter(|r| {
                addr.to_key() & prefix_mask(A::BITS, r.len)
                    == r.prefix.to_key() & prefix_mask(A::BITS, r.len)
            })
            .max_by_key(|r| r.len)
            .copied()
    }

    /// Routes with distinct (masked) prefixes; ports and gateways arbitrary.
    /// Generators produce only legal values: lengths within the family and
    /// no duplicate prefixes (a duplicate is a build error, tested above).
    fn dedup<A: RouteAddr>(raw: Vec<(A, u8, u16, Option<A>)>) -> Vec<Route<A>> {
        let mut seen = std::collections::HashSet::new();
        raw.into_iter()
            .filter_map(|(a, len, port, gw)| {
                let key = a.to_key() & prefix_mask(A::BITS, len);
                seen.insert((key, len)).then(|| Route {
                    prefix: A::from_key(key),
                    len,
                    hop: gw.map_or(NextHop::OnLink { port }, |gateway| NextHop::Via {
                        port,
                        gateway,
                    }),
                })
            })
            .collect()
    }

    /// Addresses to probe: random ones, and ones inside each route's prefix
    /// (so the interesting overlaps are hit, not only misses).
    fn probes<A: RouteAddr>(routes: &[Route<A>], noise: &[u128]) -> Vec<A> {
        let full = prefix_mask(A::BITS, A::BITS);
        let mut out: Vec<A> = noise.iter().map(|n| A::from_key(n & full)).collect();
        for (r, n) in routes.iter().zip(noise.iter().cycle()) {
            let host = n & !prefix_mask(A::BITS, r.len) & full;
            out.push(A::from_key(r.prefix.to_key() | host));
        }
        out
    }

    proptest! {
        #[test]
        fn v4_matches_linear_scan(
            raw in proptest::collection::vec((any::<[u8; 4]>(), 0u8..=32, 0u16..4, proptest::option::of(any::<[u8; 4]>())), 0..200),
            noise in proptest::collection::vec(any::<u128>(), 1..64),
        ) {
            let routes = dedup(raw);
            let t = RouteTable::new(routes.clone()).unwrap();
            for a in probes(&routes, &noise) {
                prop_assert_eq!(t.lookup(a).copied(), linear(&routes, a), "{:?}", a);
            }
        }

        #[test]
        fn v4_short_prefixes_overlap(
            // Few bits of freedom: many nested and sibling prefixes.
            raw in proptest::collection::vec((0u8..4, 0u8..=8, 0u16..4), 0..40),
            noise in proptest::collection::vec(any::<u128>(), 1..64),
        ) {
            let raw = raw.into_iter().map(|(b, len, port)| ([10, b << 6, 0, 0], len + 8, port, None)).collect();
            let routes = dedup(raw);
            let t = RouteTable::new(routes.clone()).unwrap();
            for a in probes(&routes, &noise) {
                prop_assert_eq!(t.lookup(a).copied(), linear(&routes, a));
            }
        }

        #[test]
        fn v6_matches_linear_scan(
            raw in proptest::collection::vec((any::<[u8; 16]>(), 0u8..=128, 0u16..4, proptest::option::of(any::<[u8; 16]>())), 0..200),
            noise in proptest::collection::vec(any::<u128>(), 1..64),
        ) {
            let routes = dedup(raw);
            let t = RouteTable::new(routes.clone()).unwrap();
            for a in probes(&routes, &noise) {
                prop_assert_eq!(t.lookup(a).copied(), linear(&routes, a));
            }
        }
    }
}
