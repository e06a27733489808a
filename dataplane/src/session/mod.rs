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
//! The index is an open-addressing table (linear probing, backward-shift
//! deletion, no tombstones) of `u64` entries packing a 32-bit hash tag and the
//! slot number with a direction bit; it is sized to at most 25 % load so
//! probes stay short. Nothing is allocated after [`SessionTable::new`].
//!
//! Expiry has no per-session timers: a lookup that finds an expired session
//! reports it as expired (the caller removes it), and [`SessionTable::sweep`]
//! walks a bounded number of slots per call, removing what has expired, so
//! idle sessions go away even without traffic. When the table is full,
//! [`SessionTable::insert`] refuses; existing sessions are never evicted.

pub mod ext;
mod index;
pub mod tcp_state;
pub mod template;
pub mod timeouts;

pub use crate::addr::Addr;
use crate::tables::Forward;
use crate::time::Millis;
pub use crate::xmit::client_addr::ClientAddress;
use ext::SessionExt;
use index::HashIndex;
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
        // IPv4-mapped addresses fold to 0x0000ffff_aabbccdd: the source's
        // word turned half round keeps both IPv4 addresses' bits apart.
        let a = self.src.ip.fold().rotate_left(32) ^ self.dst.ip.fold();
        let b =
            u64::from(self.src.port) | u64::from(self.dst.port) << 16 | u64::from(self.proto) << 32;
        // Addresses through one multiply, then one round of MurmurHash3's
        // 64-bit finaliser over both words: every input bit reaches every
        // output bit. (Client ports from Linux share a parity: a weak mix
        // would put every flow on one worker and cluster the index.) Per
        // packet, so one finaliser round rather than one per word.
        let h = fmix64((a ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ b);
        (h >> 32) as u32
    }
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

/// The fixed-capacity, two-key session table. See the module doc.
#[derive(Debug)]
pub struct SessionTable {
    slots: Vec<Option<Session>>,
    /// Per slot: indexed under its RS key only ([`Self::insert_rs_only`]).
    rs_only: Vec<bool>,
    /// Per slot: the rarely used part ([`SessionExt`]), reset on insert.
    ext: Vec<SessionExt>,
    free: Vec<u32>,
    index: HashIndex,
    seed: u64,
    sweep_cursor: usize,
    /// One past the highest slot ever lent: slots are lent lowest first
    /// and reused last-freed-first, so the sessions live below it.
    used_hwm: usize,
}

impl SessionTable {
    /// A table for at most `capacity` sessions (at least 1).
    #[must_use]
    pub fn new(capacity: u32, seed: u64) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: vec![None; capacity as usize],
            rs_only: vec![false; capacity as usize],
            ext: vec![SessionExt::default(); capacity as usize],
            free: (0..capacity).rev().collect(),
            // Two entries per session, at most a quarter full.
            index: HashIndex::new(capacity as usize * 2 * 4),
            seed,
            sweep_cursor: 0,
            used_hwm: 0,
        }
    }

    /// Maximum number of sessions.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Sessions in the table.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
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
        let Some((slot, dir)) = self.find_hashed(key, h) else {
            return Lookup::Miss;
        };
        match &self.slots[slot as usize] {
            Some(s) if s.expires <= now => Lookup::Expired(SlotId(slot)),
            Some(_) => Lookup::Hit(SlotId(slot), dir),
            None => Lookup::Miss,
        }
    }

    /// The hash a lookup of `key` probes the index with.
    #[inline]
    #[must_use]
    pub fn hash_of(&self, key: &FlowKey) -> u32 {
        key.hash(self.seed)
    }

    /// The index entry a lookup of hash `h` reads first: what to prefetch
    /// for a packet of a burst before the burst is processed.
    #[inline]
    #[must_use]
    pub fn bucket(&self, h: u32) -> &u64 {
        self.index.home(h)
    }

    /// The slot of the first session filed under hash `h` (a candidate: its
    /// key is not compared), which a lookup reads next: what to prefetch
    /// once [`Self::bucket`] is in cache.
    #[inline]
    #[must_use]
    pub fn candidate(&self, h: u32) -> Option<&Option<Session>> {
        let payload = self.index.probe(h).next()?;
        self.slots.get(Self::unpack(payload).0 as usize)
    }

    /// The session in `slot`.
    #[inline]
    #[must_use]
    pub fn get(&self, slot: SlotId) -> Option<&Session> {
        self.slots.get(slot.0 as usize).and_then(Option::as_ref)
    }

    /// The session in `slot`, writable. Keys must not be changed through it.
    #[inline]
    pub fn get_mut(&mut self, slot: SlotId) -> Option<&mut Session> {
        self.slots.get_mut(slot.0 as usize).and_then(Option::as_mut)
    }

    /// The rarely used part of the session in `slot` (see [`ext`]).
    #[inline]
    #[must_use]
    pub fn ext(&self, slot: SlotId) -> Option<&SessionExt> {
        self.ext.get(slot.0 as usize)
    }

    /// The session in `slot` and its rarely used part, both writable.
    #[inline]
    pub fn get_with_ext(&mut self, slot: SlotId) -> Option<(&mut Session, &mut SessionExt)> {
        let s = self.slots.get_mut(slot.0 as usize)?.as_mut()?;
        Some((s, self.ext.get_mut(slot.0 as usize)?))
    }

    /// Inserts `session` under both of its keys.
    ///
    /// # Errors
    /// [`InsertError::Full`] when no slot is free (nothing changes);
    /// [`InsertError::Duplicate`] if either key is already indexed.
    pub fn insert(&mut self, session: Session) -> Result<SlotId, InsertError> {
        let (ck, rk) = (session.client_key(), session.rs_key());
        if self.find(&ck).is_some() || self.find(&rk).is_some() || ck == rk {
            return Err(InsertError::Duplicate);
        }
        let slot = self.free.pop().ok_or(InsertError::Full)?;
        self.used_hwm = self.used_hwm.max(slot as usize + 1);
        self.slots[slot as usize] = Some(session);
        self.ext[slot as usize] = SessionExt::default();
        self.index_insert(ck.hash(self.seed), slot, Direction::Inbound);
        self.index_insert(rk.hash(self.seed), slot, Direction::Outbound);
        Ok(SlotId(slot))
    }

    /// Inserts `session` under its RS key only: the server's replies find
    /// it, the client's next packet does not (one-packet scheduling).
    ///
    /// # Errors
    /// As [`Self::insert`], for the RS key.
    pub fn insert_rs_only(&mut self, session: Session) -> Result<SlotId, InsertError> {
        let rk = session.rs_key();
        if self.find(&rk).is_some() {
            return Err(InsertError::Duplicate);
        }
        let slot = self.free.pop().ok_or(InsertError::Full)?;
        self.used_hwm = self.used_hwm.max(slot as usize + 1);
        self.slots[slot as usize] = Some(session);
        self.ext[slot as usize] = SessionExt::default();
        self.rs_only[slot as usize] = true;
        self.index_insert(rk.hash(self.seed), slot, Direction::Outbound);
        Ok(SlotId(slot))
    }

    /// True if the session in `slot` was inserted by [`Self::insert_rs_only`].
    #[inline]
    #[must_use]
    pub fn is_rs_only(&self, slot: SlotId) -> bool {
        self.rs_only.get(slot.0 as usize).copied().unwrap_or(false)
    }

    /// Removes the session in `slot` and returns it.
    pub fn remove(&mut self, slot: SlotId) -> Option<Session> {
        let s = self.slots.get_mut(slot.0 as usize)?.take()?;
        if std::mem::take(&mut self.rs_only[slot.0 as usize]) {
            self.index_remove(s.rs_key().hash(self.seed), slot.0, Direction::Outbound);
            self.free.push(slot.0);
            return Some(s);
        }
        self.index_remove(s.client_key().hash(self.seed), slot.0, Direction::Inbound);
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
        let n = self.slots.len();
        for _ in 0..budget.min(n) {
            let slot = self.sweep_cursor;
            self.sweep_cursor = if slot + 1 == n { 0 } else { slot + 1 };
            if matches!(&self.slots[slot], Some(s) if s.expires <= now) {
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
            let Some(s) = &self.slots[here] else { continue };
            if self.rs_only[here] {
                continue;
            }
            if let Some(r) = rank(SlotId(here as u32), s) {
                if best.is_none_or(|(b, _)| r < b) {
                    best = Some((r, here));
                }
            }
        }
        (best.map(|(_, slot)| SlotId(slot as u32)), i)
    }

    /// Every live session (for listings; not for the packet path).
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.slots.iter().filter_map(Option::as_ref)
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
        let end = from.saturating_add(scan.max(1)).min(self.slots.len());
        let mut taken = 0;
        for slot in from..end {
            if taken == take.max(1) {
                return Some(slot);
            }
            if let Some(s) = &self.slots[slot] {
                out.push(*s);
                taken += 1;
            }
        }
        (end < self.slots.len()).then_some(end)
    }

    #[inline]
    fn find(&self, key: &FlowKey) -> Option<(u32, Direction)> {
        self.find_hashed(key, key.hash(self.seed))
    }

    #[inline]
    fn find_hashed(&self, key: &FlowKey, h: u32) -> Option<(u32, Direction)> {
        for payload in self.index.probe(h) {
            let (slot, dir) = Self::unpack(payload);
            if let Some(s) = &self.slots[slot as usize] {
                let k = match dir {
                    Direction::Inbound => s.client_key(),
                    Direction::Outbound => s.rs_key(),
                };
                if k == *key {
                    return Some((slot, dir));
                }
            }
        }
        None
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

    fn index_insert(&mut self, h: u32, slot: u32, dir: Direction) {
        self.index.insert(h, Self::pack(slot, dir));
    }

    fn index_remove(&mut self, h: u32, slot: u32, dir: Direction) {
        let found = self.index.remove(h, Self::pack(slot, dir));
        debug_assert!(found, "index entry missing for slot {slot}");
    }
}

#[cfg(test)]
mod tests;
