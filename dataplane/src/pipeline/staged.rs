//! New connections of a burst inserted in two steps. A new FULLNAT
//! session's server-side key is new to the index: its two buckets are cold
//! (one memory miss each in a large table), where the client key's were
//! just read by the lookup that missed. Inserted one by one, each SYN of a
//! burst waits for its own misses; here the slow path files the client key
//! and writes the session at once (the SYN is forwarded as before), and
//! only the server-side key waits, its buckets prefetched when the
//! decision named it ([`crate::session::SessionTable::prefetch_key`]), to
//! be filed with the others' when the burst ends: the burst's misses
//! overlap.
//!
//! Only between [`Pipeline::begin_burst`] and [`Pipeline::end_burst`] (the
//! worker's RX burst); anywhere else a session is inserted whole. Nothing
//! may miss a key that is not filed yet, so the rest are filed first:
//! before a frame whose flow key is one of them is looked up, before a
//! frame that is not a described TCP or UDP packet is classified (an ICMP
//! error's quoted packet names a key too), and before any session is
//! removed. Everything else (scheduling, ports, counts, limits, templates,
//! the flood guard, sync) happens when the session is created, as for a
//! session inserted whole. A FULLNAT session's server-side key holds a
//! local port its pool lent it, which no other session holds, so filing it
//! does not fail but when the index can make no room for it (as good as
//! never below capacity): the session is then removed as if it had expired
//! at once (its SYN has gone; the client's retransmission finds no
//! session and creates one).

use super::Pipeline;
use crate::session::{FlowKey, InsertError, Session, SlotId};

/// A session whose server-side key waits to be filed.
#[derive(Debug, Clone, Copy)]
pub(super) struct Staged {
    slot: SlotId,
    rs_key: FlowKey,
    hash: u32,
}

/// At most this many wait (a burst's worth); one more files them first.
pub(super) const STAGED_MAX: usize = 64;

impl Pipeline {
    /// A burst of frames starts: new FULLNAT sessions file their
    /// server-side keys at [`Self::end_burst`].
    #[inline]
    pub fn begin_burst(&mut self) {
        self.staging = true;
    }

    /// The burst has been processed: files the server-side keys of the
    /// sessions it created.
    #[inline]
    pub fn end_burst(&mut self) {
        self.file_staged();
        self.staging = false;
    }

    /// Inserts `session` whole, or (in a burst, FULLNAT) under its client
    /// key now and its server-side key at the burst's end.
    ///
    /// `hc` and `hr` are the hashes of its client and RS keys; the client
    /// key's lookup has just missed (see
    /// [`crate::session::SessionTable::insert_client_key`]): nothing files
    /// it meanwhile, the keys filed here being the waiting RS keys, none of
    /// which is the client key ([`Self::file_staged_for`] before the lookup).
    #[inline]
    pub(super) fn insert_session(
        &mut self,
        session: Session,
        staged: bool,
        hc: u32,
        hr: u32,
    ) -> Result<SlotId, InsertError> {
        if !(staged && self.staging) {
            return self.sessions.insert_hashed(session, hc, hr);
        }
        if self.staged.len() == STAGED_MAX {
            self.file_staged();
        }
        let rs_key = session.rs_key();
        let slot = self.sessions.insert_client_key(session, hc, hr)?;
        self.staged.push(Staged {
            slot,
            rs_key,
            hash: hr,
        });
        Ok(slot)
    }

    /// Files every waiting server-side key (see the module doc for the one
    /// that cannot be).
    #[inline]
    pub(super) fn file_staged(&mut self) {
        if self.staged.is_empty() {
            return;
        }
        for i in 0..self.staged.len() {
            let Staged { slot, rs_key, hash } = self.staged[i];
            if self.sessions.file_rs_key(slot, &rs_key, hash).is_err() {
                if let Some(s) = self.sessions.remove_unfiled(slot) {
                    self.release(slot, &s);
                    self.counters.sessions_expired += 1;
                }
            }
        }
        self.staged.clear();
    }

    /// Before the lookup of `key` (of hash `h`): files the waiting keys if
    /// it is one of them.
    #[inline]
    pub(super) fn file_staged_for(&mut self, key: &FlowKey, h: u32) {
        if self.staged.iter().any(|s| s.hash == h && s.rs_key == *key) {
            self.file_staged();
        }
    }
}
