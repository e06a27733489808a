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
//! The same pattern as the neighbour hold ([`crate::hold`]): allocated once,
//! nothing allocated afterwards; generic over the frame type so that its
//! bounds are tested without DPDK, and frames it still holds when the
//! worker stops are dropped (freed) with it.

use std::collections::VecDeque;

use crate::frag::{FragKey, TIMEOUT_MS};
use crate::time::Millis;

/// One waiting frame.
#[derive(Debug)]
struct Waiting<T> {
    frame: T,
    port: u16,
    datagram: FragKey,
    since: Millis,
}

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
    waiting: VecDeque<Waiting<T>>,
    released: VecDeque<(T, u16, Millis)>,
    releasing: Option<Millis>,
}

impl<T> Default for FragHold<T> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::with_capacity(Self::CAPACITY),
            released: VecDeque::with_capacity(Self::CAPACITY),
            releasing: None,
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
        if self.waiting.len() >= Self::CAPACITY {
            return Err((frame, Refused::HoldFull));
        }
        if self.waiting_for(&datagram) >= Self::PER_DATAGRAM {
            return Err((frame, Refused::DatagramFull));
        }
        self.waiting.push_back(Waiting {
            frame,
            port,
            datagram,
            since: now,
        });
        Ok(())
    }

    /// Frames waiting for `datagram`'s first fragment.
    #[must_use]
    pub fn waiting_for(&self, datagram: &FragKey) -> usize {
        self.waiting
            .iter()
            .filter(|w| w.datagram == *datagram)
            .count()
    }

    /// Frames waiting in all.
    #[must_use]
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    /// True when nothing waits.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// Removes the frames that waited [`Self::HOLD_MS`] or longer at `now`
    /// and calls `expired` with each.
    pub fn expire(&mut self, now: Millis, mut expired: impl FnMut(T)) {
        for _ in 0..self.waiting.len() {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if now.0.saturating_sub(w.since.0) >= Self::HOLD_MS {
                expired(w.frame);
            } else {
                self.waiting.push_back(w);
            }
        }
    }

    /// The first fragment of `datagram` was filed: moves its waiting
    /// frames, in arrival order, to the released list
    /// ([`Self::take_released`]). Returns how many.
    pub fn release(&mut self, datagram: &FragKey) -> usize {
        let mut released = 0;
        for _ in 0..self.waiting.len() {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if w.datagram == *datagram {
                self.released.push_back((w.frame, w.port, w.since));
                released += 1;
            } else {
                self.waiting.push_back(w);
            }
        }
        released
    }

    /// The next released frame with its port. Until the next call,
    /// [`Self::releasing`] gives its first arrival time.
    pub fn take_released(&mut self) -> Option<(T, u16)> {
        let next = self.released.pop_front();
        self.releasing = next.as_ref().map(|r| r.2);
        next.map(|(frame, port, _)| (frame, port))
    }

    /// While released frames are handed back: the first arrival time of
    /// the one at hand.
    #[must_use]
    pub fn releasing(&self) -> Option<Millis> {
        self.releasing
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
