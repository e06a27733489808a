//! Persistence templates (the kernel's `IP_VS_CONN_F_TEMPLATE` connections).
//!
//! A template says "clients of network `client` (masked with the service's
//! `-M` netmask) of service `vip` go to real server `rs`". The first
//! connection of such a client to a persistent service creates one; later
//! connections find it and skip the scheduler. As in the kernel:
//!
//! - each connection made through a template re-arms it for the service's
//!   timeout (`-p`), so it lives `timeout` after the client's *last* new
//!   connection;
//! - a template does not expire while connections it created are alive
//!   (`controls`, the kernel's `n_control`): when its time is up with
//!   controlled connections left, it is re-armed for another timeout.
//!
//! One table per worker, touched only by that worker. It works because a
//! persistent service's client flows are owned by the worker chosen from the
//! masked client address alone ([`crate::pipeline`]), so every connection of
//! one client network meets the same table, whichever queue it arrived on.
//!
//! Bounded like the session table: a slab of `capacity` slots allocated at
//! start, the bucketed index of the session table ([`super::index`]) at most
//! half full, lazy expiry plus an incremental [`TemplateTable::sweep`].
//! A full table refuses inserts; nothing live is evicted.

use super::index::HashIndex;
use super::{fmix64, Addr, Endpoint, InsertError};
use crate::time::Millis;

/// What a template matches: the masked client address and the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TemplateKey {
    /// Client address, masked with the service's persistence netmask.
    pub client: Addr,
    /// The service's VIP and port.
    pub vip: Endpoint,
    /// IP protocol.
    pub proto: u8,
}

impl TemplateKey {
    #[inline]
    fn hash(&self) -> u32 {
        let a = self.client.fold().rotate_left(32) ^ self.vip.ip.fold();
        let b = u64::from(self.vip.port) << 8 | u64::from(self.proto);
        (fmix64(fmix64(a ^ 0x7e3f_1a7e_5eed_0001) ^ b) >> 32) as u32
    }
}

/// A persistence template.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Template {
    /// What it matches.
    pub key: TemplateKey,
    /// The real server its clients go to.
    pub rs: Endpoint,
    /// That server's global index.
    pub rs_index: u16,
    /// When it expires unless re-armed.
    pub expires: Millis,
    /// The persistence timeout it re-arms with, in seconds.
    pub timeout_secs: u32,
    /// Live connections created through it.
    pub controls: u32,
}

impl Template {
    /// True when it still binds its clients at `now`: not yet expired, or
    /// holding live connections.
    #[inline]
    #[must_use]
    pub fn is_live(&self, now: Millis) -> bool {
        self.expires > now || self.controls > 0
    }
}

/// A template's slot number.
pub type TemplateSlot = u32;

/// No template (a session of a non-persistent service).
pub const NO_TEMPLATE: TemplateSlot = u32::MAX;

/// One worker's templates. See the module doc.
#[derive(Debug)]
pub struct TemplateTable {
    slots: Vec<Option<Template>>,
    free: Vec<u32>,
    index: HashIndex,
    sweep_cursor: usize,
}

impl TemplateTable {
    /// A table for at most `capacity` templates (at least 1).
    #[must_use]
    pub fn new(capacity: u32) -> Self {
        let capacity = capacity.max(1);
        Self {
            slots: vec![None; capacity as usize],
            free: (0..capacity).rev().collect(),
            index: HashIndex::new(capacity as usize, 50),
            sweep_cursor: 0,
        }
    }

    /// Most templates it holds.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Templates held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    /// True when empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The slot of the template for `key`, live or not.
    #[must_use]
    pub fn find(&self, key: &TemplateKey) -> Option<TemplateSlot> {
        self.index
            .probe(key.hash())
            .find(|&slot| self.slots[slot as usize].is_some_and(|t| t.key == *key))
    }

    /// The template in `slot`.
    #[must_use]
    pub fn get(&self, slot: TemplateSlot) -> Option<&Template> {
        self.slots.get(slot as usize).and_then(Option::as_ref)
    }

    /// The template in `slot`, writable (its key must not change).
    pub fn get_mut(&mut self, slot: TemplateSlot) -> Option<&mut Template> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Inserts `t`.
    ///
    /// # Errors
    /// [`InsertError::Full`] when no slot is free, [`InsertError::Duplicate`]
    /// when a template with its key exists; nothing changes.
    pub fn insert(&mut self, t: Template) -> Result<TemplateSlot, InsertError> {
        if self.find(&t.key).is_some() {
            return Err(InsertError::Duplicate);
        }
        let slot = *self.free.last().ok_or(InsertError::Full)?;
        if !self.index.insert(t.key.hash(), slot) {
            return Err(InsertError::Full);
        }
        self.free.pop();
        self.slots[slot as usize] = Some(t);
        Ok(slot)
    }

    /// Removes the template in `slot`.
    pub fn remove(&mut self, slot: TemplateSlot) -> Option<Template> {
        let t = self.slots.get_mut(slot as usize)?.take()?;
        let found = self.index.remove(t.key.hash(), slot);
        debug_assert!(found, "template index entry missing for slot {slot}");
        self.free.push(slot);
        Some(t)
    }

    /// A connection created through `slot` ended.
    pub fn release(&mut self, slot: TemplateSlot) {
        if let Some(t) = self.get_mut(slot) {
            debug_assert!(t.controls > 0, "template released more often than used");
            t.controls = t.controls.saturating_sub(1);
        }
    }

    /// Examines up to `budget` slots from where the last sweep stopped:
    /// removes templates expired at `now` that control no connection, and
    /// re-arms expired ones that still do. Returns how many were removed.
    pub fn sweep(&mut self, now: Millis, budget: usize) -> usize {
        let mut removed = 0;
        let n = self.slots.len();
        for _ in 0..budget.min(n) {
            let slot = self.sweep_cursor;
            self.sweep_cursor = if slot + 1 == n { 0 } else { slot + 1 };
            let Some(t) = &mut self.slots[slot] else {
                continue;
            };
            if t.expires > now {
                continue;
            }
            if t.controls > 0 {
                t.expires = now.plus_secs(t.timeout_secs);
            } else if self.remove(slot as u32).is_some() {
                removed += 1;
            }
        }
        removed
    }

    /// Every template (for listings; not for the packet path).
    pub fn iter(&self) -> impl Iterator<Item = &Template> {
        self.slots.iter().filter_map(Option::as_ref)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;

    fn key(c: u8) -> TemplateKey {
        TemplateKey {
            client: Addr::v4([192, 168, 0, c]),
            vip: Endpoint::new([10, 0, 0, 100], 80),
            proto: 6,
        }
    }

    fn tpl(c: u8, expires: u64) -> Template {
        Template {
            key: key(c),
            rs: Endpoint::new([10, 0, 0, 11], 80),
            rs_index: 0,
            expires: Millis(expires),
            timeout_secs: 300,
            controls: 0,
        }
    }

    #[test]
    fn controlled_templates_outlive_their_timeout() {
        let mut t = TemplateTable::new(4);
        let a = t.insert(tpl(1, 1000)).unwrap();
        t.get_mut(a).unwrap().controls = 1;
        let b = t.insert(tpl(2, 1000)).unwrap();
        assert_eq!(t.insert(tpl(2, 5)), Err(InsertError::Duplicate));
        assert_eq!(t.sweep(Millis(2000), 8), 1, "the idle one goes");
        assert_eq!(t.find(&key(2)), None);
        assert!(t.get(b).is_none());
        // The controlled one was re-armed for its timeout.
        assert_eq!(t.get(a).unwrap().expires, Millis(2000 + 300_000));
        assert!(t.get(a).unwrap().is_live(Millis(5000)));
        t.release(a);
        assert!(!t.get(a).unwrap().is_live(Millis(400_000)));
        assert_eq!(t.sweep(Millis(400_000), 8), 1);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_refuses() {
        let mut t = TemplateTable::new(2);
        t.insert(tpl(1, 1)).unwrap();
        t.insert(tpl(2, 1)).unwrap();
        assert_eq!(t.insert(tpl(3, 1)), Err(InsertError::Full));
        assert_eq!(t.len(), 2);
        assert_eq!(t.capacity(), 2);
    }

    proptest! {
        /// Insert/remove/find behave like a map keyed by the template key.
        #[test]
        fn behaves_like_a_map(ops in proptest::collection::vec((any::<bool>(), 0u8..40), 1..400)) {
            let mut t = TemplateTable::new(16);
            let mut model: HashMap<u8, TemplateSlot> = HashMap::new();
            for (insert, c) in ops {
                if insert {
                    let r = t.insert(tpl(c, 1));
                    if model.contains_key(&c) {
                        prop_assert_eq!(r, Err(InsertError::Duplicate));
                    } else if model.len() == 16 {
                        prop_assert_eq!(r, Err(InsertError::Full));
                    } else {
                        model.insert(c, r.unwrap());
                    }
                } else if let Some(slot) = model.remove(&c) {
                    prop_assert_eq!(t.remove(slot).map(|x| x.key), Some(key(c)));
                }
                prop_assert_eq!(t.len(), model.len());
                for c in 0..40u8 {
                    prop_assert_eq!(t.find(&key(c)), model.get(&c).copied());
                }
            }
        }
    }
}
