//! Frames waiting for a neighbour: a worker's bounded hold queue.
//!
//! A new connection whose next hop has no MAC yet is not dropped: the
//! pipeline says [`crate::pipeline::Verdict::Hold`] and names the next hop (and
//! the scheduling decision made for the frame, kept with it), and
//! the worker keeps the frame here while control resolves it (ARP or a
//! neighbour solicitation). As the kernel's per-neighbour `unres_qlen`, the
//! bound is per entry — at most [`HoldQueue::PER_NEIGHBOUR`] frames wait for
//! one next hop, so a host that never answers cannot crowd out connections
//! to the others — within [`HoldQueue::CAPACITY`] for the worker. A frame
//! waits at most [`HoldQueue::HOLD_MS`]. When a neighbour snapshot arrives,
//! the frames whose next hop it resolves are handed back in arrival order;
//! the others keep waiting untouched.
//!
//! The queue is allocated once; nothing here allocates afterwards. It is
//! generic over the frame type so that its bounds are tested without DPDK.

use std::collections::VecDeque;

use crate::addr::Addr;
use crate::time::Millis;

/// One waiting frame, with what it waits for.
#[derive(Debug)]
struct Waiting<K, T> {
    frame: T,
    port: u16,
    key: K,
    since: Millis,
}

/// The mechanism both holds share (this queue and the fragment hold,
/// [`crate::frag_hold`]): frames waiting for a key of theirs (a next hop, a
/// datagram), bounded per key and in all, handed back in arrival order.
/// Allocated once; nothing allocates afterwards.
#[derive(Debug)]
pub(crate) struct KeyedHold<K, T> {
    waiting: VecDeque<Waiting<K, T>>,
    released: VecDeque<(T, u16, Millis)>,
    releasing: Option<Millis>,
}

impl<K: PartialEq, T> KeyedHold<K, T> {
    pub(crate) fn with_capacity(capacity: usize) -> Self {
        Self {
            waiting: VecDeque::with_capacity(capacity),
            released: VecDeque::with_capacity(capacity),
            releasing: None,
        }
    }

    /// Keeps `frame` unless `capacity` frames wait in all (`Err` with
    /// `false`) or `per_key` for `key` (`Err` with `true`).
    pub(crate) fn hold(
        &mut self,
        frame: T,
        port: u16,
        key: K,
        now: Millis,
        (per_key, capacity): (usize, usize),
    ) -> Result<(), (T, bool)> {
        if self.waiting.len() >= capacity {
            return Err((frame, false));
        }
        if self.waiting_for(&key) >= per_key {
            return Err((frame, true));
        }
        self.waiting.push_back(Waiting {
            frame,
            port,
            key,
            since: now,
        });
        Ok(())
    }

    pub(crate) fn waiting_for(&self, key: &K) -> usize {
        self.waiting.iter().filter(|w| w.key == *key).count()
    }

    pub(crate) fn len(&self) -> usize {
        self.waiting.len()
    }

    /// Removes the frames that waited `wait_ms` or longer at `now` (not
    /// only at the front: a frame put back keeps its first arrival) and
    /// calls `expired` with each.
    pub(crate) fn expire(&mut self, now: Millis, wait_ms: u64, mut expired: impl FnMut(T)) {
        for _ in 0..self.waiting.len() {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if now.0.saturating_sub(w.since.0) >= wait_ms {
                expired(w.frame);
            } else {
                self.waiting.push_back(w);
            }
        }
    }

    /// Moves the frames whose key `ready` accepts, in arrival order, to the
    /// released list; the others stay as they were. Returns how many.
    pub(crate) fn release(&mut self, ready: impl Fn(&K) -> bool) -> usize {
        let mut released = 0;
        for _ in 0..self.waiting.len() {
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            if ready(&w.key) {
                self.released.push_back((w.frame, w.port, w.since));
                released += 1;
            } else {
                self.waiting.push_back(w);
            }
        }
        released
    }

    pub(crate) fn take_released(&mut self) -> Option<(T, u16)> {
        let next = self.released.pop_front();
        self.releasing = next.as_ref().map(|r| r.2);
        next.map(|(frame, port, _)| (frame, port))
    }

    pub(crate) fn releasing(&self) -> Option<Millis> {
        self.releasing
    }
}

/// Why a frame was not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// [`HoldQueue::PER_NEIGHBOUR`] frames already wait for this next hop.
    NeighbourFull,
    /// [`HoldQueue::CAPACITY`] frames already wait on this worker.
    QueueFull,
}

/// A worker's frames waiting for their next hops' MACs.
#[derive(Debug)]
pub struct HoldQueue<T> {
    hold: KeyedHold<Addr, T>,
    retry: bool,
}

impl<T> Default for HoldQueue<T> {
    fn default() -> Self {
        Self {
            hold: KeyedHold::with_capacity(Self::CAPACITY),
            retry: false,
        }
    }
}

impl<T> HoldQueue<T> {
    /// Frames one next hop may have waiting (the kernel's `unres_qlen_bytes`
    /// holds about a hundred full frames per entry; one worker rarely needs
    /// more than a burst of new connections' first packets).
    pub const PER_NEIGHBOUR: usize = 32;
    /// Frames a worker holds at most, all next hops together.
    pub const CAPACITY: usize = 128;
    /// How long a frame waits for its neighbour.
    pub const HOLD_MS: u64 = 3000;

    /// Keeps `frame` (received on `port` at `now`) until `hop` is resolved,
    /// or hands it back with the reason it cannot wait. A released frame that
    /// must wait again is held with its first `now`, so that it still
    /// expires [`Self::HOLD_MS`] after it first came.
    pub fn hold(
        &mut self,
        frame: T,
        port: u16,
        hop: Addr,
        now: Millis,
    ) -> Result<(), (T, Refused)> {
        self.hold
            .hold(frame, port, hop, now, (Self::PER_NEIGHBOUR, Self::CAPACITY))
            .map_err(|(frame, per_hop)| {
                let why = if per_hop {
                    Refused::NeighbourFull
                } else {
                    Refused::QueueFull
                };
                (frame, why)
            })
    }

    /// Frames waiting for `hop`.
    #[must_use]
    pub fn waiting_for(&self, hop: Addr) -> usize {
        self.hold.waiting_for(&hop)
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

    /// A new neighbour snapshot arrived: the next [`Self::ready`] looks at it.
    pub fn snapshot_arrived(&mut self) {
        self.retry = !self.is_empty();
    }

    /// Removes the frames that waited longer than [`Self::HOLD_MS`] at
    /// `now` and calls `expired` with each.
    pub fn expire(&mut self, now: Millis, expired: impl FnMut(T)) {
        self.hold.expire(now, Self::HOLD_MS + 1, expired);
    }

    /// After a snapshot arrived (once per snapshot): moves, in arrival
    /// order, every frame whose next hop `resolved` now says has a MAC to
    /// the released list ([`Self::take_released`]). The others stay as they
    /// were. Returns how many were released.
    pub fn ready(&mut self, resolved: impl Fn(Addr) -> bool) -> usize {
        if !std::mem::take(&mut self.retry) {
            return 0;
        }
        self.hold.release(|hop| resolved(*hop))
    }

    /// The next released frame with its port. Until the next call,
    /// [`Self::releasing`] gives its first arrival time.
    pub fn take_released(&mut self) -> Option<(T, u16)> {
        self.hold.take_released()
    }

    /// While released frames are handed back: the first arrival time of
    /// the one at hand, with which it is held again if it must wait again.
    #[must_use]
    pub fn releasing(&self) -> Option<Millis> {
        self.hold.releasing()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Q = HoldQueue<u32>;

    fn hop(n: u8) -> Addr {
        Addr::v4([10, 0, 0, n])
    }

    #[test]
    fn one_silent_neighbour_cannot_take_the_whole_queue() {
        let mut q = Q::default();
        for i in 0..Q::PER_NEIGHBOUR as u32 {
            q.hold(i, 0, hop(1), Millis(0)).unwrap();
        }
        assert_eq!(
            q.hold(99, 0, hop(1), Millis(0)),
            Err((99, Refused::NeighbourFull))
        );
        // Another next hop still has room.
        q.hold(100, 0, hop(2), Millis(0)).unwrap();
        assert_eq!(q.waiting_for(hop(1)), Q::PER_NEIGHBOUR);
        assert_eq!(q.waiting_for(hop(2)), 1);
    }

    #[test]
    fn the_worker_bound_holds_across_neighbours() {
        let mut q = Q::default();
        let mut n = 0u32;
        'fill: for h in 1..=u8::MAX {
            for _ in 0..Q::PER_NEIGHBOUR {
                if q.len() == Q::CAPACITY {
                    break 'fill;
                }
                q.hold(n, 0, hop(h), Millis(0)).unwrap();
                n += 1;
            }
        }
        assert_eq!(
            q.hold(7, 0, hop(250), Millis(0)),
            Err((7, Refused::QueueFull))
        );
    }

    #[test]
    fn a_snapshot_releases_only_the_resolved_next_hops_frames_in_order() {
        let mut q = Q::default();
        q.hold(1, 0, hop(1), Millis(0)).unwrap();
        q.hold(2, 1, hop(2), Millis(5)).unwrap();
        q.hold(3, 0, hop(1), Millis(9)).unwrap();
        // Nothing is looked at before a snapshot arrives.
        assert_eq!(q.ready(|_| true), 0);
        q.snapshot_arrived();
        assert_eq!(q.ready(|h| h == hop(1)), 2);
        let out: Vec<_> =
            std::iter::from_fn(|| q.take_released().map(|(f, p)| (f, p, q.releasing()))).collect();
        assert_eq!(out, vec![(1, 0, Some(Millis(0))), (3, 0, Some(Millis(9)))]);
        assert_eq!(q.releasing(), None, "none at hand once all are taken");
        assert_eq!(q.len(), 1);
        assert_eq!(q.waiting_for(hop(2)), 1);
        // Once per snapshot.
        assert_eq!(q.ready(|_| true), 0);
    }

    #[test]
    fn frames_expire_after_the_hold_time_from_their_first_arrival() {
        let mut q = Q::default();
        q.hold(1, 0, hop(1), Millis(0)).unwrap();
        q.hold(2, 0, hop(2), Millis(2000)).unwrap();
        // Released and put back: it keeps its first arrival time.
        q.snapshot_arrived();
        q.ready(|h| h == hop(1));
        while let Some((f, p)) = q.take_released() {
            // Rescheduled to a next hop still unresolved: waits again.
            q.hold(f, p, hop(3), q.releasing().unwrap()).unwrap();
        }
        let mut gone = Vec::new();
        q.expire(Millis(Q::HOLD_MS), |f| gone.push(f));
        assert!(gone.is_empty());
        q.expire(Millis(Q::HOLD_MS + 1), |f| gone.push(f));
        assert_eq!(gone, vec![1]);
        q.expire(Millis(2000 + Q::HOLD_MS + 1), |f| gone.push(f));
        assert_eq!(gone, vec![1, 2]);
        assert!(q.is_empty());
    }
}
