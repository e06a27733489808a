//! Later fragments waiting for their first one: a worker's bounded hold.
//!
//! Only a datagram's first fragment carries its ports, so only it tells
//! where the datagram goes ([`crate::frag`]). A later fragment that comes
//! before it (reordered on the way) is not dropped at once: the pipeline
//! says [`crate::pipeline::Verdict::HoldFragment`], naming the datagram,
//! and the worker keeps the frame here. When a first fragment is filed
//! ([`crate::pipeline::Pipeline::take_filed_datagram`]), the frames waiting
//! for its datagram are handed back, in arrival order, and go through the
//! pipeline right after it (now they find their datagram's entry). A frame
//! that waits [`FragHold::HOLD_MS`] is dropped (counted `no_first`), and so
//! is one that does not fit (`hold_full`): at most
//! [`FragHold::PER_DATAGRAM`] frames per datagram, within
//! [`FragHold::CAPACITY`] for the worker, so a flood of orphan fragments
//! holds a few dozen buffers, never the pool.
//!
//! The neighbour hold's mechanism ([`crate::hold::KeyedHold`]), keyed by
//! datagram: allocated once, nothing allocated afterwards; generic over the
//! frame type so that its bounds are tested without DPDK, and frames it
//! still holds when the worker stops are dropped (freed) with it.

use crate::frag::{FragKey, TIMEOUT_MS};
use crate::hold::KeyedHold;
use crate::time::Millis;

/// Why a frame was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// [`FragHold::PER_DATAGRAM`] frames of this datagram already wait.
    DatagramFull,
    /// [`FragHold::CAPACITY`] frames already wait on this worker.
    HoldFull,
}

/// A worker's later fragments waiting for their first ones.
#[derive(Debug)]
pub struct FragHold<T> {
    hold: KeyedHold<FragKey, T>,
}

impl<T> Default for FragHold<T> {
    fn default() -> Self {
        Self {
            hold: KeyedHold::with_capacity(Self::CAPACITY),
        }
    }
}

impl<T> FragHold<T> {
    /// Frames one datagram may have waiting (a datagram of 16 fragments,
    /// 23 KB at a 1500-byte MTU, arrives whole in any order).
    pub const PER_DATAGRAM: usize = 15;
    /// Frames a worker holds at most, all datagrams together.
    pub const CAPACITY: usize = 64;
    /// How long a frame waits for its first fragment: as long as the
    /// fragment table waits for a datagram's later fragments.
    pub const HOLD_MS: u64 = TIMEOUT_MS;

    /// Keeps `frame` (received on `port` at `now`) until the first
    /// fragment of `datagram` is filed, or hands it back with the reason it
    /// cannot wait. A released frame that must wait again keeps its first
    /// `now` (see [`Self::releasing`]).
    pub fn hold(
        &mut self,
        frame: T,
        port: u16,
        datagram: FragKey,
        now: Millis,
    ) -> Result<(), (T, Refused)> {
        self.hold
            .hold(
                frame,
                port,
                datagram,
                now,
                (Self::PER_DATAGRAM, Self::CAPACITY),
            )
            .map_err(|(frame, per_datagram)| {
                let why = if per_datagram {
                    Refused::DatagramFull
                } else {
                    Refused::HoldFull
                };
                (frame, why)
            })
    }

    /// Frames waiting for `datagram`'s first fragment.
    #[must_use]
    pub fn waiting_for(&self, datagram: &FragKey) -> usize {
        self.hold.waiting_for(datagram)
    }

    /// Frames waiting in all.
    #[must_use]
    pub fn len(&self) -> usize {
        self.hold.len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hold.len() == 0
    }

    /// Removes the frames that waited [`Self::HOLD_MS`] or longer at `now`
    /// and calls `expired` with each.
    pub fn expire(&mut self, now: Millis, expired: impl FnMut(T)) {
        self.hold.expire(now, Self::HOLD_MS, expired);
    }

    /// The first fragment of `datagram` was filed: moves its waiting
    /// frames, in arrival order, to the released list
    /// ([`Self::take_released`]). Returns how many.
    pub fn release(&mut self, datagram: &FragKey) -> usize {
        self.hold.release(|d| d == datagram)
    }

    /// The next released frame with its port. Until the next call,
    /// [`Self::releasing`] gives its first arrival time.
    pub fn take_released(&mut self) -> Option<(T, u16)> {
        self.hold.take_released()
    }

    /// While released frames are handed back: the first arrival time of
    /// the one at hand.
    #[must_use]
    pub fn releasing(&self) -> Option<Millis> {
        self.hold.releasing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::Addr;

    type H = FragHold<u32>;

    fn key(id: u32) -> FragKey {
        FragKey {
            src: Addr::v4([10, 0, 0, 1]),
            dst: Addr::v4([10, 0, 0, 100]),
            id,
            proto: 17,
        }
    }

    #[test]
    fn one_datagram_cannot_take_the_whole_hold() {
        let mut h = H::default();
        for i in 0..H::PER_DATAGRAM as u32 {
            h.hold(i, 0, key(1), Millis(0)).unwrap();
        }
        assert_eq!(
            h.hold(99, 0, key(1), Millis(0)),
            Err((99, Refused::DatagramFull))
        );
        h.hold(100, 0, key(2), Millis(0)).unwrap();
        assert_eq!(h.waiting_for(&key(1)), H::PER_DATAGRAM);
    }

    #[test]
    fn the_worker_bound_holds_across_datagrams() {
        let mut h = H::default();
        for i in 0..H::CAPACITY as u32 {
            h.hold(i, 0, key(i), Millis(0)).unwrap();
        }
        assert_eq!(
            h.hold(7, 0, key(1000), Millis(0)),
            Err((7, Refused::HoldFull))
        );
    }

    #[test]
    fn a_filed_datagram_releases_its_frames_in_order() {
        let mut h = H::default();
        h.hold(1, 0, key(1), Millis(0)).unwrap();
        h.hold(2, 1, key(2), Millis(3)).unwrap();
        h.hold(3, 0, key(1), Millis(5)).unwrap();
        assert_eq!(h.release(&key(1)), 2);
        let out: Vec<_> =
            std::iter::from_fn(|| h.take_released().map(|(f, p)| (f, p, h.releasing()))).collect();
        assert_eq!(out, vec![(1, 0, Some(Millis(0))), (3, 0, Some(Millis(5)))]);
        assert_eq!(h.releasing(), None);
        assert_eq!((h.len(), h.waiting_for(&key(2))), (1, 1));
        assert_eq!(h.release(&key(1)), 0, "nothing left for it");
    }

    #[test]
    fn frames_expire_after_the_hold_time() {
        let mut h = H::default();
        h.hold(1, 0, key(1), Millis(0)).unwrap();
        h.hold(2, 0, key(2), Millis(500)).unwrap();
        let mut gone = Vec::new();
        h.expire(Millis(H::HOLD_MS - 1), |f| gone.push(f));
        assert!(gone.is_empty());
        h.expire(Millis(H::HOLD_MS), |f| gone.push(f));
        assert_eq!(gone, vec![1]);
        h.expire(Millis(500 + H::HOLD_MS), |f| gone.push(f));
        assert_eq!(gone, vec![1, 2]);
        assert!(h.is_empty());
    }
}
