//! The per-worker session table.
//!
//! One table per worker, touched only by that worker: no locks, no atomics.
//! Capacity is fixed at start (`session_capacity`): sessions live in a slab
//! of `capacity` slots allocated once, and a free list hands slots out in
//! O(1). Each session is indexed twice (DPVS's `tuplehash_in`/`_out`):
//!
//! - under its **client key** — (client, vip) as the client's packets carry
//!   them — so inbound packets find it;
//! - under its **RS key** — (rs, laddr) as the real server's replies carry
//!   them — so outbound packets find it.
//!
//! A slot is split hot and cold. The hot part ([`SessionHot`], one 64-byte
//! cache line) holds what the established path reads and writes: the key
//! check (protocol, ports, IPv4 addresses), state, expiry, the translation
//! (the same endpoints), next hops, the forwarding method, the counters'
//! indexes and a FULLNAT TCP connection's ISN offset. Beside the hot slab,
//! one entry per slot: the IPv6 addresses of a session that has any
//! (reserved for every slot, committed only where used, so an IPv6 packet
//! reads a second line, which the worker's read-ahead prefetches beside the
//! hot one) and the rarely used
//! [`ext::SessionExt`]. [`Session`] is the whole session as a value: what
//! [`SessionTable::insert`] takes and [`SessionTable::get`] assembles.
//!
//! The index ([`index`]) is bucketed: eight tag + slot entries per 64-byte
//! line, two candidate buckets per hash (bucketized cuckoo hashing, as
//! DPDK's `rte_hash`), sized so that a full table loads it to 80 %: 20
//! bytes per session, where the open-addressing index before it took 64.
//! The slab and the index live on huge pages (DPDK memory when EAL has
//! hugepages, an `mmap` advised `MADV_HUGEPAGE` otherwise; see
//! [`crate::dpdk::HugeArray`]). Nothing is allocated after
//! [`SessionTable::new`]. An IPv4 session costs 128 bytes in all
//! ([`SessionTable::footprint`]): 10 M sessions take 1.19 GiB.
//!
//! A lookup can be made ahead of its packet's turn ([`SessionTable::look_ahead`],
//! the worker's burst-wise lookup stage) and used later
//! ([`SessionTable::lookup_ahead`]): the index counts the keys filed (a
//! miss may have become a hit) and taken out (a hit may have become a
//! miss), and an answer made at another count of its kind is looked up
//! again. A key is filed once, so a hit stays a hit while nothing is taken
//! out, whatever is filed meanwhile (a bucket's entries may move, not the
//! slot a key names).
//!
//! Expiry has no per-session timers: a lookup that finds an expired session
//! reports it as expired (the caller removes it), and [`SessionTable::sweep`]
//! walks a bounded number of slots per call, removing what has expired, so
//! idle sessions go away even without traffic. When the table is full,
//! [`SessionTable::insert`] refuses; existing sessions are never evicted.

pub mod ext;
pub mod index;
mod store;
pub mod tcp_state;
pub mod template;
pub mod timeouts;

pub use crate::addr::Addr;
use crate::tables::Forward;
use crate::time::Millis;
pub use crate::xmit::client_addr::ClientAddress;
use ext::SessionExt;
use index::HashIndex;
use store::Store;
pub use tcp_state::{Direction, TcpState};
pub use timeouts::Timeouts;

/// An address (either family, see [`Addr`]) and port, in host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Endpoint {
    /// Address.
    pub ip: Addr,
    /// Port.
    pub port: u16,
}

impl Endpoint {
    /// An IPv4 endpoint.
    #[must_use]
    pub const fn new(ip: [u8; 4], port: u16) -> Self {
        Self {
            ip: Addr::v4(ip),
            port,
        }
    }

    /// An endpoint of either family.
    #[must_use]
    pub const fn at(ip: Addr, port: u16) -> Self {
        Self { ip, port }
    }
}

/// A lookup key: the addresses and ports as they appear in a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowKey {
    /// Packet source.
    pub src: Endpoint,
    /// Packet destination.
    pub dst: Endpoint,
    /// IP protocol.
    pub proto: u8,
}

impl FlowKey {
    /// A hash of the key that every worker computes alike (no per-table
    /// seed): used to decide which worker owns a client flow.
    #[inline]
    #[must_use]
    pub fn stable_hash(&self) -> u32 {
        self.hash(0x5eed_0fc0_ffee)
    }

    #[inline]
    fn hash(&self, seed: u64) -> u32 {
        hash_words(
            self.src.ip.fold(),
            self.dst.ip.fold(),
            self.src.port,
            self.dst.port,
            self.proto,
            seed,
        )
    }
}

/// [`FlowKey`]'s hash from its parts, the addresses as [`Addr::fold`]
/// gives them: what a describing stage computes from the header's fields in
/// registers, without reading back a key it has just written (a load that
/// spans several narrower stores waits for them to retire: a store
/// forwarding stall of a dozen cycles or more per packet).
#[inline(always)]
fn hash_words(src: u64, dst: u64, sport: u16, dport: u16, proto: u8, seed: u64) -> u32 {
    // IPv4-mapped addresses fold to 0x0000ffff_aabbccdd: the source's
    // word turned half round keeps both IPv4 addresses' bits apart.
    let a = src.rotate_left(32) ^ dst;
    let b = u64::from(sport) | u64::from(dport) << 16 | u64::from(proto) << 32;
    // Addresses through one multiply, then one round of MurmurHash3's
    // 64-bit finaliser over both words: every input bit reaches every
    // output bit. (Client ports from Linux share a parity: a weak mix
    // would put every flow on one worker and cluster the index.) Per
    // packet, so one finaliser round rather than one per word.
    let h = fmix64((a ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b);
    (h >> 32) as u32
}

#[inline]
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^ (h >> 33)
}

/// One FULLNAT session: the four endpoints, state, and the layer-2 next hops
/// cached at creation (the client's is the MAC its first packet came from).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Session {
    /// IP protocol.
    pub proto: u8,
    /// The client as it sent the first packet.
    pub client: Endpoint,
    /// The virtual service it reached.
    pub vip: Endpoint,
    /// The local address and port standing in for the client (FULLNAT); the
    /// client itself for NAT and DR.
    pub laddr: Endpoint,
    /// The real server chosen.
    pub rs: Endpoint,
    /// Index of the service in the published tables.
    pub service: u16,
    /// Index of the real server in the published tables (global numbering).
    pub rs_index: u16,
    /// The forwarding method, chosen by the real server when the session
    /// was created.
    pub forward: Forward,
    /// FULLNAT: index of the local address in the published tables (the
    /// port of `laddr` was borrowed from its pool); 0 and unused otherwise.
    pub laddr_index: u16,
    /// TCP state (UDP sessions stay `Established`).
    pub state: TcpState,
    /// When the session expires unless refreshed.
    pub expires: Millis,
    /// Port and MAC toward the client.
    pub client_port: u16,
    /// Next-hop MAC toward the client.
    pub client_mac: [u8; 6],
    /// Port toward the real server.
    pub rs_port: u16,
    /// Next-hop MAC toward the real server.
    pub rs_mac: [u8; 6],
    /// How the server learns the client's address (FULLNAT TCP; `None`
    /// otherwise). One byte in what was padding: anything but `None` sends
    /// the packet past [`ext::SessionExt`], kept beside the slab.
    pub client_addr: ClientAddress,
    /// FULLNAT TCP: the client's stream as the server numbers it, the
    /// server-side ISN minus the client's (see [`crate::xmit::isn`]);
    /// 0: not renumbered (every other session, and a FULLNAT one before
    /// its SYN passed).
    pub isn_off: u32,
}

impl Session {
    /// The key the client's packets carry.
    #[must_use]
    pub fn client_key(&self) -> FlowKey {
        FlowKey {
            src: self.client,
            dst: self.vip,
            proto: self.proto,
        }
    }
    /// The key the real server's replies carry.
    #[must_use]
    pub fn rs_key(&self) -> FlowKey {
        FlowKey {
            src: self.rs,
            dst: self.laddr,
            proto: self.proto,
        }
    }
}

/// A slot number in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SlotId(pub u32);

/// What a lookup found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// A live session, and which of its keys matched.
    Hit(SlotId, Direction),
    /// A session whose time is up; the caller should remove it.
    Expired(SlotId),
    /// Nothing.
    Miss,
}

/// Why an insert failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InsertError {
    /// Every slot is in use.
    #[error("session table full")]
    Full,
    /// A session with one of the same keys exists.
    #[error("session key already present")]
    Duplicate,
}

/// Which of a session's four endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum End {
    /// The client.
    Client = 0,
    /// The virtual service.
    Vip = 1,
    /// The local address (FULLNAT) or the client (NAT, DR, TUN).
    Laddr = 2,
    /// The real server.
    Rs = 3,
}

/// [`SessionHot::flags`]: the slot holds a session.
const LIVE: u8 = 1;
/// The session is indexed under its RS key only.
const RS_ONLY: u8 = 2;
/// Endpoint `e`'s address is IPv6, kept in the cold array.
const fn v6_flag(e: usize) -> u8 {
    4 << e
}

/// The part of a session the established path reads and writes: one cache
/// line. Key check (both keys' IPv4 addresses and ports, the protocol),
/// TCP state, expiry, the translation (the same four endpoints), the next
/// hops (port and MAC each way), the forwarding method, the indexes
/// counters use and the ISN offset ([`crate::xmit::isn`]). An IPv6 address does not fit: a session with one keeps it
/// in the cold array beside the slab (its v4 bytes here stay zero), and its
/// packets read a second line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C, align(64))]
pub struct SessionHot {
    /// When the session expires unless refreshed.
    pub expires: Millis,
    /// The IPv4 addresses of client, VIP, local address, RS ([`End`] order).
    v4: [[u8; 4]; 4],
    /// Their ports.
    ports: [u16; 4],
    /// Next-hop MAC toward the client.
    pub client_mac: [u8; 6],
    /// Next-hop MAC toward the real server.
    pub rs_mac: [u8; 6],
    /// Port toward the client.
    pub client_port: u16,
    /// Port toward the real server.
    pub rs_port: u16,
    /// See [`Session::rs_index`].
    pub rs_index: u16,
    /// See [`Session::service`].
    pub service: u16,
    /// See [`Session::laddr_index`].
    pub laddr_index: u16,
    /// IP protocol.
    pub proto: u8,
    /// TCP state.
    pub state: TcpState,
    /// The forwarding method.
    pub forward: Forward,
    /// See [`Session::client_addr`].
    pub client_addr: ClientAddress,
    /// [`LIVE`], [`RS_ONLY`], [`v6_flag`].
    flags: u8,
    /// See [`Session::isn_off`]: in the line's last four bytes, so the
    /// established path applies it without reading anything else.
    pub isn_off: u32,
}

impl SessionHot {
    const FREE: Self = Self {
        expires: Millis(0),
        v4: [[0; 4]; 4],
        ports: [0; 4],
        client_mac: [0; 6],
        rs_mac: [0; 6],
        client_port: 0,
        rs_port: 0,
        rs_index: 0,
        service: 0,
        laddr_index: 0,
        proto: 0,
        state: TcpState::None,
        forward: Forward::FullNat,
        client_addr: ClientAddress::None,
        flags: 0,
        isn_off: 0,
    };

    #[inline]
    fn is_live(&self) -> bool {
        self.flags & LIVE != 0
    }

    /// The new source and destination of a packet of this session going
    /// `dir` (FULLNAT's and NAT's translation: inbound local address →
    /// server, outbound VIP → client) when both are IPv4, read from this
    /// line: the IPv4 rewrite's operands without building endpoints.
    /// `None` if either is an IPv6 address (kept in the cold array).
    #[inline]
    #[must_use]
    pub fn v4_leg(&self, dir: Direction) -> Option<V4Leg> {
        let (a, b) = Self::leg_ends(dir);
        if self.flags & (v6_flag(a) | v6_flag(b)) != 0 {
            return None;
        }
        let (seq_off, ack_off) = self.isn_offsets(dir);
        Some(V4Leg {
            src: self.v4[a],
            src_port: self.ports[a],
            dst: self.v4[b],
            dst_port: self.ports[b],
            seq_off,
            ack_off,
        })
    }

    /// The two endpoints a packet going `dir` is rewritten to (FULLNAT's
    /// and NAT's translation): (new source, new destination).
    #[inline]
    fn leg_ends(dir: Direction) -> (usize, usize) {
        match dir {
            Direction::Inbound => (End::Laddr as usize, End::Rs as usize),
            Direction::Outbound => (End::Vip as usize, End::Client as usize),
        }
    }

    /// What a TCP segment going `dir` has of the session's ISN offset
    /// ([`Session::isn_off`]): (added to its sequence number, taken from
    /// its acknowledgement and SACK edges). Inbound the first, outbound
    /// the second.
    #[inline]
    fn isn_offsets(&self, dir: Direction) -> (u32, u32) {
        match dir {
            Direction::Inbound => (self.isn_off, 0),
            Direction::Outbound => (0, self.isn_off),
        }
    }

    /// The port and MAC of the next hop of a packet going `dir`.
    #[inline]
    #[must_use]
    pub fn next_hop(&self, dir: Direction) -> (u16, [u8; 6]) {
        match dir {
            Direction::Inbound => (self.rs_port, self.rs_mac),
            Direction::Outbound => (self.client_port, self.client_mac),
        }
    }

    /// The two endpoints of a key: (source, destination) as `dir`'s packets carry them.
    #[inline]
    fn key_ends(dir: Direction) -> (usize, usize) {
        match dir {
            Direction::Inbound => (End::Client as usize, End::Vip as usize),
            Direction::Outbound => (End::Rs as usize, End::Laddr as usize),
        }
    }
}

/// A packet's new IPv4 source and destination ([`SessionHot::v4_leg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Leg {
    /// New source address.
    pub src: [u8; 4],
    /// New source port.
    pub src_port: u16,
    /// New destination address.
    pub dst: [u8; 4],
    /// New destination port.
    pub dst_port: u16,
    /// TCP: added to the sequence number (the session's ISN offset,
    /// inbound; 0 otherwise).
    pub seq_off: u32,
    /// TCP: taken from the acknowledgement number and SACK edges (the
    /// session's ISN offset, outbound; 0 otherwise).
    pub ack_off: u32,
}

/// A packet's new IPv6 source and destination ([`SessionTable::v6_leg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V6Leg {
    /// New source address.
    pub src: [u8; 16],
    /// New source port.
    pub src_port: u16,
    /// New destination address.
    pub dst: [u8; 16],
    /// New destination port.
    pub dst_port: u16,
    /// TCP: added to the sequence number (the session's ISN offset,
    /// inbound; 0 otherwise).
    pub seq_off: u32,
    /// TCP: taken from the acknowledgement number and SACK edges (the
    /// session's ISN offset, outbound; 0 otherwise).
    pub ack_off: u32,
}

/// The cold part of a slot: the IPv6 addresses of its session's endpoints
/// ([`End`] order; only those flagged in [`SessionHot`] are meaningful).
/// Committed page by page as IPv6 sessions first use it.
type Cold6 = [[u8; 16]; 4];

/// Per-session bytes of a table by its parts (see [`SessionTable::footprint`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Footprint {
    /// The hot slab: one cache line per slot.
    pub hot: usize,
    /// The index (two entries per session at up to 80 % of its room).
    pub index: usize,
    /// The rarely used part ([`SessionExt`]) and the free list.
    pub ext: usize,
    /// The IPv6 addresses: reserved for every slot, committed only where
    /// an IPv6 session has used the slot.
    pub cold6: usize,
}

impl Footprint {
    /// Bytes an all-IPv4 table uses (everything but the IPv6 addresses).
    #[must_use]
    pub fn ipv4(&self) -> usize {
        self.hot + self.index + self.ext
    }
}

/// Which of a hash's two index buckets ([`SessionTable::candidate_in`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The bucket a lookup reads first ([`SessionTable::bucket`]).
    Home,
    /// The one it reads when the first lacks the key
    /// ([`SessionTable::second_bucket`]).
    Away,
}

/// The index's load at full capacity, percent.
const INDEX_LOAD_PCT: usize = 80;

/// The fixed-capacity, two-key session table. See the module doc.
#[derive(Debug)]
pub struct SessionTable {
    hot: Store<SessionHot>,
    cold6: Store<Cold6>,
    /// Per slot: the rarely used part ([`SessionExt`]), reset on insert.
    ext: Store<SessionExt>,
    free: Vec<u32>,
    index: HashIndex,
    seed: u64,
    sweep_cursor: usize,
    /// One past the highest slot ever lent: slots are lent lowest first
    /// and reused last-freed-first, so the sessions live below it.
    used_hwm: usize,
    /// Index entries filed: a miss made ahead at another count is stale.
    /// Starts at 1 ([`Ahead::NONE`] has 0).
    filed: u64,
    /// Index entries taken out: a hit made ahead at another count is
    /// stale. Starts at 1.
    taken: u64,
}

/// A lookup made before its packet's turn ([`SessionTable::look_ahead`],
/// the worker's burst-wise lookup stage), and the table's count it was made
/// at (of keys taken out for a hit, of keys filed for a miss):
/// [`SessionTable::lookup_ahead`] takes its answer while no change since
/// can have altered it, and looks again otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ahead {
    /// For a hit the table's `taken` count, for a miss its `filed` count.
    stamp: u64,
    /// The index payload found, or [`Ahead::MISS`].
    payload: u32,
}

impl Ahead {
    /// No lookup made ahead: [`SessionTable::lookup_ahead`] looks.
    pub const NONE: Self = Self {
        stamp: 0,
        payload: Self::MISS,
    };
    const MISS: u32 = u32::MAX;
}

impl SessionTable {
    /// A table for at most `capacity` sessions (at least 1).
    #[must_use]
    pub fn new(capacity: u32, seed: u64) -> Self {
        let capacity = capacity.max(1);
        let n = capacity as usize;
        Self {
            hot: Store::filled(n, SessionHot::FREE),
            cold6: Store::zeroed(n),
            ext: Store::filled(n, SessionExt::default()),
            free: (0..capacity).rev().collect(),
            index: HashIndex::new(n * 2, INDEX_LOAD_PCT),
            seed,
            sweep_cursor: 0,
            used_hwm: 0,
            filed: 1,
            taken: 1,
        }
    }

    /// What a table of `capacity` sessions takes, by part.
    #[must_use]
    pub fn footprint(capacity: u32) -> Footprint {
        let n = capacity.max(1) as usize;
        Footprint {
            hot: n * std::mem::size_of::<SessionHot>(),
            index: HashIndex::bytes_for(n * 2, INDEX_LOAD_PCT),
            ext: n * (std::mem::size_of::<SessionExt>() + std::mem::size_of::<u32>()),
            cold6: n * std::mem::size_of::<Cold6>(),
        }
    }

    /// Bytes of the slab and index a lookup may touch: what decides
    /// whether the table stays in cache (see the worker's read-ahead).
    #[must_use]
    pub fn reach_bytes(&self) -> usize {
        self.hot.len() * std::mem::size_of::<SessionHot>() + self.index.bytes()
    }

    /// Maximum number of sessions.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.hot.len()
    }

    /// Sessions in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.hot.len() - self.free.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Finds the session for a packet carrying `key`, as of `now`.
    #[inline]
    #[must_use]
    pub fn lookup(&self, key: &FlowKey, now: Millis) -> Lookup {
        self.lookup_hashed(key, self.hash_of(key), now)
    }

    /// [`Self::lookup`] with the key's hash ([`Self::hash_of`]) computed
    /// once beforehand (by classification, for the read-ahead too).
    #[inline]
    #[must_use]
    pub fn lookup_hashed(&self, key: &FlowKey, h: u32, now: Millis) -> Lookup {
        debug_assert_eq!(h, self.hash_of(key), "hash of another key or table");
        self.found(self.find_hashed(key, h), now)
    }

    /// What a lookup that found `slot` as its `dir` key (if any) answers at
    /// `now`.
    #[inline(always)]
    fn found(&self, found: Option<(u32, Direction)>, now: Millis) -> Lookup {
        let Some((slot, dir)) = found else {
            return Lookup::Miss;
        };
        if self.hot[slot as usize].expires <= now {
            Lookup::Expired(SlotId(slot))
        } else {
            Lookup::Hit(SlotId(slot), dir)
        }
    }

    /// [`Self::lookup_hashed`]'s search, made ahead of the packet's turn:
    /// its answer stays valid until the table files a key (a miss) or takes
    /// one out (a hit).
    #[inline(always)]
    #[must_use]
    pub fn look_ahead(&self, key: &FlowKey, h: u32) -> Ahead {
        // Inlined into the worker's lookup stage.
        let payload = self.find_payload(key, h);
        match payload {
            Some(payload) => Ahead {
                stamp: self.taken,
                payload,
            },
            None => Ahead {
                stamp: self.filed,
                payload: Ahead::MISS,
            },
        }
    }

    /// [`Self::lookup_hashed`] taking the answer of `ahead` (made by
    /// [`Self::look_ahead`] for `key`) unless the table changed since in a
    /// way that can alter it: a key filed after a miss, one taken out after
    /// a hit.
    #[inline(always)]
    #[must_use]
    pub fn lookup_ahead(&self, key: &FlowKey, h: u32, ahead: Ahead, now: Millis) -> Lookup {
        let now_stamp = if ahead.payload == Ahead::MISS {
            self.filed
        } else {
            self.taken
        };
        if ahead.stamp != now_stamp {
            return self.lookup_hashed(key, h, now);
        }
        debug_assert_eq!(
            ahead.payload,
            self.find_payload(key, h).unwrap_or(Ahead::MISS),
            "a lookup made ahead differs from one made now"
        );
        let found = (ahead.payload != Ahead::MISS).then(|| Self::unpack(ahead.payload));
        self.found(found, now)
    }

    /// The hash a lookup of `key` probes the index with.
    #[inline]
    #[must_use]
    pub fn hash_of(&self, key: &FlowKey) -> u32 {
        key.hash(self.seed)
    }

    /// [`Self::hash_of`] the key with these parts, the addresses folded
    /// ([`Addr::fold`], [`Addr::fold_v4`]): the same value, computed from
    /// values in registers.
    #[inline(always)]
    #[must_use]
    pub fn hash_parts(&self, src: u64, dst: u64, sport: u16, dport: u16, proto: u8) -> u32 {
        hash_words(src, dst, sport, dport, proto, self.seed)
    }

    /// Asks for the index buckets of `key` (both: a key about to be
    /// inserted is checked absent first), so that their memory misses
    /// overlap the work before the insert. A hint: nothing happens without
    /// DPDK's build (no prefetch outside `dpdk/`).
    #[inline]
    pub fn prefetch_key(&self, key: &FlowKey) {
        self.prefetch_hash(key.hash(self.seed));
    }

    /// [`Self::prefetch_key`] for the key of hash `h` ([`Self::hash_of`]).
    #[inline]
    pub fn prefetch_hash(&self, h: u32) {
        #[cfg(feature = "dpdk")]
        {
            crate::dpdk::prefetch(self.index.home(h));
            crate::dpdk::prefetch(self.index.away(h));
        }
        #[cfg(not(feature = "dpdk"))]
        let _ = h;
    }

    /// Asks for the lines the next new session writes (its slot's hot and
    /// rarely used parts) and the free list's next line, a session ahead:
    /// slots come back in any order, so each would otherwise be a miss of
    /// its own when that session is placed. A hint, as [`Self::prefetch_key`].
    #[inline]
    fn prefetch_next_slot(&self) {
        #[cfg(feature = "dpdk")]
        if let Some(&next) = self.free.last() {
            let i = next as usize;
            if let (Some(h), Some(e)) = (self.hot.get(i), self.ext.get(i)) {
                crate::dpdk::prefetch(h);
                crate::dpdk::prefetch_first(e);
            }
            // The free list is taken from its end: the line before.
            if let Some(f) = self.free.len().checked_sub(17).map(|j| &self.free[j]) {
                crate::dpdk::prefetch_first(f);
            }
        }
    }

    /// The index bucket (a cache line) a lookup of hash `h` reads first:
    /// what to prefetch for a packet of a burst before the burst is
    /// processed.
    #[inline]
    #[must_use]
    pub fn bucket(&self, h: u32) -> &index::Bucket {
        self.index.home(h)
    }

    /// The bucket a lookup of hash `h` reads when the first lacks its key
    /// (as at most a fifth of a full table's entries are).
    #[inline]
    #[must_use]
    pub fn second_bucket(&self, h: u32) -> &index::Bucket {
        self.index.away(h)
    }

    /// The hot line of the first session filed under hash `h` (a candidate:
    /// its key is not compared), which a lookup reads next: what to
    /// prefetch once [`Self::bucket`] is in cache. Both buckets, as a
    /// lookup reads them ([`Self::candidate_in`] reads one).
    #[inline]
    #[must_use]
    pub fn candidate(&self, h: u32) -> Option<&SessionHot> {
        self.candidate_in(h, Side::Home)
            .or_else(|| self.candidate_in(h, Side::Away))
    }

    /// [`Self::candidate`] in one of the two buckets only: the worker's
    /// read-ahead asks [`Side::Home`] (prefetched), and when it has none
    /// (a new flow, or the fifth of entries at most that live in their
    /// second bucket), prefetches [`Self::second_bucket`] and asks
    /// [`Side::Away`] later, once that line has had time to come, instead
    /// of waiting for it here.
    #[inline]
    #[must_use]
    pub fn candidate_in(&self, h: u32, side: Side) -> Option<&SessionHot> {
        let payload = self.index.first_in(h, side == Side::Away)?;
        self.hot.get(Self::unpack(payload).0 as usize)
    }

    /// The same candidate's hot line and its cold entry (the IPv6
    /// addresses), which a lookup of an IPv6 key reads right after the hot
    /// line: what to prefetch for an IPv6 packet, both at once (the slot
    /// comes from the index, so neither waits for the other).
    #[inline]
    #[must_use]
    pub fn candidate_v6(&self, h: u32) -> Option<(&SessionHot, &[[u8; 16]; 4])> {
        self.candidate_v6_in(h, Side::Home)
            .or_else(|| self.candidate_v6_in(h, Side::Away))
    }

    /// [`Self::candidate_v6`] in one bucket only (see [`Self::candidate_in`]).
    #[inline]
    #[must_use]
    pub fn candidate_v6_in(&self, h: u32, side: Side) -> Option<(&SessionHot, &[[u8; 16]; 4])> {
        let payload = self.index.first_in(h, side == Side::Away)?;
        let i = Self::unpack(payload).0 as usize;
        Some((self.hot.get(i)?, self.cold6.get(i)?))
    }

    /// [`SessionHot::v4_leg`]'s IPv6 twin: the new source and destination
    /// of a packet of the session in `slot` (its hot line `h`) going `dir`
    /// when both are IPv6, read from the slot's cold entry (which the
    /// worker's read-ahead prefetches for an IPv6 packet). `None` if either
    /// is IPv4 (FULLNAT64) or the slot is out of range.
    #[inline]
    #[must_use]
    pub fn v6_leg(&self, slot: SlotId, h: &SessionHot, dir: Direction) -> Option<V6Leg> {
        let (a, b) = SessionHot::leg_ends(dir);
        let both = v6_flag(a) | v6_flag(b);
        if h.flags & both != both {
            return None;
        }
        let cold = self.cold6.get(slot.0 as usize)?;
        let (seq_off, ack_off) = h.isn_offsets(dir);
        Some(V6Leg {
            src: cold[a],
            src_port: h.ports[a],
            dst: cold[b],
            dst_port: h.ports[b],
            seq_off,
            ack_off,
        })
    }

    /// The session in `slot`, whole (a copy).
    #[inline]
    #[must_use]
    pub fn get(&self, slot: SlotId) -> Option<Session> {
        let i = slot.0 as usize;
        let h = self.hot.get(i).filter(|h| h.is_live())?;
        let e = |end: End| self.endpoint_of(i, h, end as usize);
        Some(Session {
            proto: h.proto,
            client: e(End::Client),
            vip: e(End::Vip),
            laddr: e(End::Laddr),
            rs: e(End::Rs),
            service: h.service,
            rs_index: h.rs_index,
            forward: h.forward,
            laddr_index: h.laddr_index,
            state: h.state,
            expires: h.expires,
            client_port: h.client_port,
            client_mac: h.client_mac,
            rs_port: h.rs_port,
            rs_mac: h.rs_mac,
            client_addr: h.client_addr,
            isn_off: h.isn_off,
        })
    }

    /// The hot part of the session in `slot`.
    #[inline]
    #[must_use]
    pub fn hot(&self, slot: SlotId) -> Option<&SessionHot> {
        self.hot.get(slot.0 as usize).filter(|h| h.is_live())
    }

    /// The hot part of the session in `slot`, writable (state, expiry, next
    /// hops; the keys are not reachable through it).
    #[inline]
    pub fn get_mut(&mut self, slot: SlotId) -> Option<&mut SessionHot> {
        self.hot.get_mut(slot.0 as usize).filter(|h| h.is_live())
    }

    /// One endpoint of the session in `slot` (unspecified for a free slot).
    #[inline]
    #[must_use]
    pub fn endpoint(&self, slot: SlotId, end: End) -> Endpoint {
        let i = slot.0 as usize;
        self.hot
            .get(i)
            .map_or_else(Endpoint::default, |h| self.endpoint_of(i, h, end as usize))
    }

    #[inline]
    fn endpoint_of(&self, i: usize, h: &SessionHot, e: usize) -> Endpoint {
        let ip = if h.flags & v6_flag(e) == 0 {
            Addr::v4(h.v4[e])
        } else {
            Addr::v6(self.cold6[i][e])
        };
        Endpoint::at(ip, h.ports[e])
    }

    /// The rarely used part of the session in `slot` (see [`ext`]).
    #[inline]
    #[must_use]
    pub fn ext(&self, slot: SlotId) -> Option<&SessionExt> {
        self.ext.get(slot.0 as usize)
    }

    /// The session in `slot` (a copy) and its rarely used part, writable.
    #[inline]
    pub fn get_with_ext(&mut self, slot: SlotId) -> Option<(Session, &mut SessionExt)> {
        let s = self.get(slot)?;
        Some((s, self.ext.get_mut(slot.0 as usize)?))
    }

    /// The hot part of the session in `slot` and its rarely used part,
    /// both writable.
    #[inline]
    pub fn get_mut_with_ext(&mut self, slot: SlotId) -> Option<(&mut SessionHot, &mut SessionExt)> {
        let i = slot.0 as usize;
        let h = self.hot.get_mut(i).filter(|h| h.is_live())?;
        Some((h, self.ext.get_mut(i)?))
    }

    /// Inserts `session` under both of its keys.
    ///
    /// # Errors
    /// [`InsertError::Full`] when no slot is free, or (as good as never
    /// below capacity) the index cannot make room for a key; nothing
    /// changes. [`InsertError::Duplicate`] if either key is already indexed.
    pub fn insert(&mut self, session: Session) -> Result<SlotId, InsertError> {
        let (hc, hr) = (
            session.client_key().hash(self.seed),
            session.rs_key().hash(self.seed),
        );
        self.insert_hashed(session, hc, hr)
    }

    /// [`Self::insert`] with the hashes of the session's client key (`hc`)
    /// and RS key (`hr`) computed beforehand ([`Self::hash_of`]).
    ///
    /// # Errors
    /// As [`Self::insert`].
    pub fn insert_hashed(
        &mut self,
        session: Session,
        hc: u32,
        hr: u32,
    ) -> Result<SlotId, InsertError> {
        let (ck, rk) = (session.client_key(), session.rs_key());
        debug_assert_eq!((hc, hr), (self.hash_of(&ck), self.hash_of(&rk)));
        // The RS key is new to the index (its buckets cold): both of them
        // are read at once.
        if self.find_both(&rk, hr).is_some() || self.find_hashed(&ck, hc).is_some() || ck == rk {
            return Err(InsertError::Duplicate);
        }
        let slot = *self.free.last().ok_or(InsertError::Full)?;
        if !self.index_insert(hc, slot, Direction::Inbound) {
            return Err(InsertError::Full);
        }
        if !self.index_insert(hr, slot, Direction::Outbound) {
            self.index_remove(hc, slot, Direction::Inbound);
            return Err(InsertError::Full);
        }
        self.free.pop();
        self.place(slot, &session, LIVE);
        self.prefetch_next_slot();
        Ok(SlotId(slot))
    }

    /// [`Self::insert`] in two steps, for a burst of new connections: the
    /// client key (whose buckets the lookup that missed has just read) is
    /// checked and filed, the slot taken and the session written now; its
    /// RS key, new to the index and its buckets cold, is filed by
    /// [`Self::file_rs_key`] once those buckets (prefetched,
    /// [`Self::prefetch_key`]) have come, so that a burst's misses on them
    /// overlap. Until then a lookup of the RS key misses: the caller files
    /// it before anything may look for it. `hc` and `hr` are the client
    /// and RS keys' hashes ([`Self::hash_of`]).
    ///
    /// The caller vouches that the client key is not indexed: its lookup
    /// has just missed (or found the session it then removed), and nothing
    /// has been inserted since. The index is not searched for it again (a
    /// debug build checks).
    ///
    /// # Errors
    /// [`InsertError::Duplicate`] if the two keys are equal;
    /// [`InsertError::Full`] as [`Self::insert`].
    pub fn insert_client_key(
        &mut self,
        session: Session,
        hc: u32,
        hr: u32,
    ) -> Result<SlotId, InsertError> {
        let (ck, rk) = (session.client_key(), session.rs_key());
        debug_assert_eq!((hc, hr), (self.hash_of(&ck), self.hash_of(&rk)));
        debug_assert!(
            self.find_hashed(&ck, hc).is_none(),
            "the caller's lookup of the client key missed"
        );
        if ck == rk {
            return Err(InsertError::Duplicate);
        }
        let slot = *self.free.last().ok_or(InsertError::Full)?;
        if !self.index_insert(hc, slot, Direction::Inbound) {
            return Err(InsertError::Full);
        }
        self.free.pop();
        self.place(slot, &session, LIVE);
        self.prefetch_next_slot();
        Ok(SlotId(slot))
    }

    /// Files `rk`, of hash `hr`, as the RS key of the session that
    /// [`Self::insert_client_key`] put in `slot`.
    ///
    /// # Errors
    /// [`InsertError::Duplicate`] if `rk` is indexed already,
    /// [`InsertError::Full`] if the index cannot make room for it; nothing
    /// changes (the session is then removed with [`Self::remove_unfiled`]).
    pub fn file_rs_key(&mut self, slot: SlotId, rk: &FlowKey, hr: u32) -> Result<(), InsertError> {
        debug_assert_eq!(hr, self.hash_of(rk), "hash of another key");
        if self.find_both(rk, hr).is_some() {
            return Err(InsertError::Duplicate);
        }
        if !self.index_insert(hr, slot.0, Direction::Outbound) {
            return Err(InsertError::Full);
        }
        Ok(())
    }

    /// Removes and returns the session in `slot` whose RS key
    /// [`Self::file_rs_key`] could not file (its client key only is indexed).
    pub fn remove_unfiled(&mut self, slot: SlotId) -> Option<Session> {
        let s = self.get(slot)?;
        self.hot[slot.0 as usize].flags = 0;
        self.index_remove(s.client_key().hash(self.seed), slot.0, Direction::Inbound);
        self.free.push(slot.0);
        Some(s)
    }

    /// Inserts `session` under its RS key only: the server's replies find
    /// it, the client's next packet does not (one-packet scheduling).
    ///
    /// # Errors
    /// As [`Self::insert`], for the RS key.
    pub fn insert_rs_only(&mut self, session: Session) -> Result<SlotId, InsertError> {
        let rk = session.rs_key();
        let hr = rk.hash(self.seed);
        if self.find_both(&rk, hr).is_some() {
            return Err(InsertError::Duplicate);
        }
        let slot = *self.free.last().ok_or(InsertError::Full)?;
        if !self.index_insert(hr, slot, Direction::Outbound) {
            return Err(InsertError::Full);
        }
        self.free.pop();
        self.place(slot, &session, LIVE | RS_ONLY);
        Ok(SlotId(slot))
    }

    /// Writes `s` into `slot`'s hot line and (its IPv6 addresses) cold entry.
    fn place(&mut self, slot: u32, s: &Session, mut flags: u8) {
        let i = slot as usize;
        self.used_hwm = self.used_hwm.max(i + 1);
        let ends = [s.client, s.vip, s.laddr, s.rs];
        let mut v4 = [[0; 4]; 4];
        for (e, end) in ends.iter().enumerate() {
            if let Some(a) = end.ip.to_v4() {
                v4[e] = a;
            } else {
                flags |= v6_flag(e);
                self.cold6[i][e] = end.ip.octets();
            }
        }
        self.hot[i] = SessionHot {
            expires: s.expires,
            v4,
            ports: ends.map(|e| e.port),
            client_mac: s.client_mac,
            rs_mac: s.rs_mac,
            client_port: s.client_port,
            rs_port: s.rs_port,
            rs_index: s.rs_index,
            service: s.service,
            laddr_index: s.laddr_index,
            proto: s.proto,
            state: s.state,
            forward: s.forward,
            client_addr: s.client_addr,
            flags,
            isn_off: s.isn_off,
        };
        self.ext[i] = SessionExt::default();
    }

    /// True if the session in `slot` was inserted by [`Self::insert_rs_only`].
    #[inline]
    #[must_use]
    pub fn is_rs_only(&self, slot: SlotId) -> bool {
        self.hot
            .get(slot.0 as usize)
            .is_some_and(|h| h.flags & (LIVE | RS_ONLY) == LIVE | RS_ONLY)
    }

    /// Removes the session in `slot` and returns it.
    pub fn remove(&mut self, slot: SlotId) -> Option<Session> {
        let s = self.get(slot)?;
        let rs_only = self.is_rs_only(slot);
        self.hot[slot.0 as usize].flags = 0;
        if !rs_only {
            self.index_remove(s.client_key().hash(self.seed), slot.0, Direction::Inbound);
        }
        self.index_remove(s.rs_key().hash(self.seed), slot.0, Direction::Outbound);
        self.free.push(slot.0);
        Some(s)
    }

    /// Examines up to `budget` slots from where the last sweep stopped and
    /// removes the sessions expired at `now`, handing each (with the slot it
    /// occupied) to `on_expire`. Returns how many were removed.
    pub fn sweep(
        &mut self,
        now: Millis,
        budget: usize,
        mut on_expire: impl FnMut(SlotId, &Session),
    ) -> usize {
        let mut removed = 0;
        let n = self.hot.len();
        for _ in 0..budget.min(n) {
            let slot = self.sweep_cursor;
            self.sweep_cursor = if slot + 1 == n { 0 } else { slot + 1 };
            let h = &self.hot[slot];
            if h.is_live() && h.expires <= now {
                if let Some(s) = self.remove(SlotId(slot as u32)) {
                    on_expire(SlotId(slot as u32), &s);
                    removed += 1;
                }
            }
        }
        removed
    }

    /// Among the `budget` slots from `start` on (wrapping at the highest
    /// slot ever lent, so that empty space is not searched), the session
    /// that `rank` ranks lowest (`None`: not a candidate; the first of
    /// equals wins), with the slot after the last one examined. Sessions
    /// indexed under their RS key only are skipped. For eviction under a
    /// flood ([`crate::guard`]).
    pub fn lowest_from(
        &self,
        start: usize,
        budget: usize,
        rank: impl Fn(SlotId, &Session) -> Option<u64>,
    ) -> (Option<SlotId>, usize) {
        let n = self.used_hwm.max(1);
        let mut i = start % n;
        let mut best: Option<(u64, usize)> = None;
        for _ in 0..budget.min(n) {
            let here = i;
            i = if i + 1 == n { 0 } else { i + 1 };
            if self.hot[here].flags & (LIVE | RS_ONLY) != LIVE {
                continue;
            }
            let Some(s) = self.get(SlotId(here as u32)) else {
                continue;
            };
            if let Some(r) = rank(SlotId(here as u32), &s) {
                if best.is_none_or(|(b, _)| r < b) {
                    best = Some((r, here));
                }
            }
        }
        (best.map(|(_, slot)| SlotId(slot as u32)), i)
    }

    /// Every live session, copied (for listings; not for the packet path).
    pub fn iter(&self) -> impl Iterator<Item = Session> + '_ {
        (0..self.used_hwm).filter_map(|i| self.get(SlotId(i as u32)))
    }

    /// One page of a listing, bounded work for a worker's housekeeping
    /// round: from slot `from` on, examines at most `scan` slots and copies
    /// at most `take` live sessions into `out`. Returns the slot the next
    /// page starts at, or `None` once the end of the table is reached.
    ///
    /// Sessions do not move between slots, so paging from 0 until `None`
    /// lists every session that lived throughout, once; one created or
    /// removed meanwhile may be listed or not.
    pub fn page(
        &self,
        from: usize,
        scan: usize,
        take: usize,
        out: &mut Vec<Session>,
    ) -> Option<usize> {
        let end = from.saturating_add(scan.max(1)).min(self.hot.len());
        let mut taken = 0;
        for slot in from..end {
            if taken == take.max(1) {
                return Some(slot);
            }
            if let Some(s) = self.get(SlotId(slot as u32)) {
                out.push(s);
                taken += 1;
            }
        }
        (end < self.hot.len()).then_some(end)
    }

    #[inline]
    fn find_hashed(&self, key: &FlowKey, h: u32) -> Option<(u32, Direction)> {
        self.find_payload(key, h).map(Self::unpack)
    }

    /// The index payload (slot and direction) filed under `key`, if any.
    #[inline(always)]
    fn find_payload(&self, key: &FlowKey, h: u32) -> Option<u32> {
        match (key.src.ip.to_v4(), key.dst.ip.to_v4()) {
            // IPv4 (every packet of an IPv4 session): the key's addresses
            // compared as the hot line's four-byte ones, no 16-byte
            // addresses built.
            (Some(src), Some(dst)) => self.index.find(h, |payload| {
                let (slot, dir) = Self::unpack(payload);
                self.matches_v4(slot as usize, key, src, dst, dir)
            }),
            // IPv6 (every packet of an IPv6 session): the addresses
            // compared with the cold entry's.
            (None, None) => self.index.find(h, |payload| {
                let (slot, dir) = Self::unpack(payload);
                self.matches_v6(slot as usize, key, dir)
            }),
            _ => self.index.find(h, |payload| {
                let (slot, dir) = Self::unpack(payload);
                self.matches(slot as usize, key, dir)
            }),
        }
    }

    /// [`Self::matches`] for a key of two IPv6 addresses.
    #[inline(always)]
    fn matches_v6(&self, i: usize, key: &FlowKey, dir: Direction) -> bool {
        let (Some(h), Some(cold)) = (self.hot.get(i), self.cold6.get(i)) else {
            return false;
        };
        let (a, b) = SessionHot::key_ends(dir);
        let flags = LIVE | v6_flag(a) | v6_flag(b);
        h.flags & flags == flags
            && h.proto == key.proto
            && h.ports[a] == key.src.port
            && h.ports[b] == key.dst.port
            && cold[a] == key.src.ip.0
            && cold[b] == key.dst.ip.0
    }

    /// [`Self::matches`] for a key of two IPv4 addresses, `src` and `dst`.
    #[inline(always)]
    fn matches_v4(
        &self,
        i: usize,
        key: &FlowKey,
        src: [u8; 4],
        dst: [u8; 4],
        dir: Direction,
    ) -> bool {
        let Some(h) = self.hot.get(i) else {
            return false;
        };
        let (a, b) = SessionHot::key_ends(dir);
        h.flags & (LIVE | v6_flag(a) | v6_flag(b)) == LIVE
            && h.proto == key.proto
            && h.ports[a] == key.src.port
            && h.ports[b] == key.dst.port
            && h.v4[a] == src
            && h.v4[b] == dst
    }

    /// [`Self::find_hashed`] reading both buckets at once
    /// ([`index::HashIndex::probe_both`]): for a key expected absent.
    #[inline]
    fn find_both(&self, key: &FlowKey, h: u32) -> Option<(u32, Direction)> {
        self.index
            .probe_both(h)
            .map(Self::unpack)
            .find(|&(slot, dir)| self.matches(slot as usize, key, dir))
    }

    /// True if the session in slot `i` is live and its `dir` key is `key`.
    #[inline]
    fn matches(&self, i: usize, key: &FlowKey, dir: Direction) -> bool {
        let Some(h) = self.hot.get(i) else {
            return false;
        };
        let (a, b) = SessionHot::key_ends(dir);
        if !h.is_live()
            || h.proto != key.proto
            || h.ports[a] != key.src.port
            || h.ports[b] != key.dst.port
        {
            return false;
        }
        let addr_is = |e: usize, ip: &Addr| {
            if h.flags & v6_flag(e) == 0 {
                *ip == Addr::v4(h.v4[e])
            } else {
                ip.0 == self.cold6[i][e]
            }
        };
        addr_is(a, &key.src.ip) && addr_is(b, &key.dst.ip)
    }

    /// Index payload: the slot and which of its keys the entry is.
    fn pack(slot: u32, dir: Direction) -> u32 {
        slot << 1 | u32::from(dir == Direction::Outbound)
    }

    fn unpack(payload: u32) -> (u32, Direction) {
        (
            payload >> 1,
            if payload & 1 == 0 {
                Direction::Inbound
            } else {
                Direction::Outbound
            },
        )
    }

    fn index_insert(&mut self, h: u32, slot: u32, dir: Direction) -> bool {
        self.filed += 1;
        self.index.insert(h, Self::pack(slot, dir))
    }

    fn index_remove(&mut self, h: u32, slot: u32, dir: Direction) {
        self.taken += 1;
        let found = self.index.remove(h, Self::pack(slot, dir));
        debug_assert!(found, "index entry missing for slot {slot}");
    }
}

#[cfg(test)]
mod tests;
