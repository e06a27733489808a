//! [`MbufBatch`]: a fixed-capacity, allocation-free burst of owned mbufs.
//!
//! The layout is an inline `[MaybeUninit<Mbuf>; BURST]` plus a length;
//! slots `0..len` are initialised and owned. Because [`Mbuf`] is
//! `#[repr(transparent)]` over `NonNull<rte_mbuf>`, the initialised prefix
//! *is* the `struct rte_mbuf **` array that `rte_eth_rx_burst`,
//! `rte_eth_tx_burst` and the ring bursts take, so bursts move pointers
//! straight in and out with no copying or conversion:
//!
//! * receive-type calls write into the free tail (`spare`) and then the
//!   length is bumped (`assume_filled`);
//! * send-type calls read from the front and the sent prefix is dropped
//!   without freeing (`forget_front`), keeping unsent mbufs in order.
//!
//! Dropping a batch frees what it still holds (`rte_pktmbuf_free_bulk`).

use std::mem::MaybeUninit;
use std::ptr;
use std::slice;

use dpdk_sys as sys;

use super::mbuf::Mbuf;

/// Packets per burst and capacity of an [`MbufBatch`]. 64 rather than
/// DPDK's customary 32: the worker's costs per poll (the clock read, the
/// bursts' calls, the stage loops' set-up, the flushes) are shared by
/// twice the frames when traffic fills the bursts (established TCP/IPv4
/// at 1 K sessions: BENCHMARKS.md, "Established path, session 13").
pub const BURST: usize = 64;

const _: () = assert!(
    BURST <= u16::MAX as usize,
    "burst counts are passed to C as u16"
);

/// A count known to be `<= BURST`, as DPDK's `uint16_t` burst size.
#[inline]
#[allow(clippy::cast_possible_truncation)] // n <= BURST <= u16::MAX
pub(crate) fn burst_u16(n: usize) -> u16 {
    debug_assert!(n <= BURST);
    n as u16
}

/// A count known to be `<= BURST`, as DPDK's `unsigned int` burst size.
#[inline]
pub(crate) fn burst_u32(n: usize) -> u32 {
    u32::from(burst_u16(n))
}

/// A fixed-capacity batch of owned mbufs (no heap allocation).
pub struct MbufBatch {
    len: usize,
    slots: [MaybeUninit<Mbuf>; BURST],
}

impl Default for MbufBatch {
    fn default() -> Self {
        Self::new()
    }
}

impl MbufBatch {
    /// An empty batch.
    #[inline]
    #[must_use]
    pub const fn new() -> Self {
        Self {
            len: 0,
            slots: [const { MaybeUninit::uninit() }; BURST],
        }
    }

    /// Number of mbufs held.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// True when the batch holds nothing.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// True when the batch holds [`BURST`] mbufs.
    #[inline]
    #[must_use]
    pub fn is_full(&self) -> bool {
        self.len == BURST
    }

    /// Free slots left.
    #[inline]
    #[must_use]
    pub fn spare_capacity(&self) -> usize {
        BURST - self.len
    }

    /// Appends `m`; gives it back if the batch is full.
    ///
    /// # Errors
    ///
    /// Returns `Err(m)` when the batch is full.
    #[inline]
    pub fn push(&mut self, m: Mbuf) -> Result<(), Mbuf> {
        if self.len == BURST {
            return Err(m);
        }
        self.slots[self.len].write(m);
        self.len += 1;
        Ok(())
    }

    /// Removes and returns the *last* mbuf.
    #[inline]
    pub fn pop(&mut self) -> Option<Mbuf> {
        if self.len == 0 {
            return None;
        }
        self.len -= 1;
        // SAFETY: slot `len` was initialised and is now outside 0..len, so
        // it is read out exactly once.
        Some(unsafe { self.slots[self.len].assume_init_read() })
    }

    /// Takes every mbuf out, in arrival order. The batch is empty
    /// afterwards; mbufs the iterator did not yield are freed when it drops.
    #[inline]
    pub fn drain(&mut self) -> impl Iterator<Item = Mbuf> + '_ {
        let end = self.len;
        // Ownership of 0..end moves to the iterator; if it is leaked, the
        // mbufs leak, which is safe.
        self.len = 0;
        Drain {
            slots: &mut self.slots,
            pos: 0,
            end,
        }
    }

    /// The held mbufs.
    #[inline]
    #[must_use]
    pub fn as_slice(&self) -> &[Mbuf] {
        // SAFETY: slots 0..len are initialised Mbufs; MaybeUninit<Mbuf> has
        // the layout of Mbuf.
        unsafe { slice::from_raw_parts(self.slots.as_ptr().cast::<Mbuf>(), self.len) }
    }

    /// The held mbufs, mutably.
    #[inline]
    #[must_use]
    pub fn as_mut_slice(&mut self) -> &mut [Mbuf] {
        // SAFETY: as in `as_slice`, with &mut self exclusive.
        unsafe { slice::from_raw_parts_mut(self.slots.as_mut_ptr().cast::<Mbuf>(), self.len) }
    }

    /// Iterates over the held mbufs in arrival order.
    #[inline]
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Mbuf> {
        self.as_mut_slice().iter_mut()
    }

    /// Iterates over the held mbufs in arrival order.
    #[inline]
    pub fn iter(&self) -> impl Iterator<Item = &Mbuf> {
        self.as_slice().iter()
    }

    /// Frees every held mbuf (one `rte_pktmbuf_free_bulk` call).
    #[inline]
    pub fn clear(&mut self) {
        if self.len == 0 {
            return;
        }
        let n = self.len;
        self.len = 0;
        // SAFETY: slots 0..n were initialised and owned; `len` is already
        // 0 so they are not touched again.
        unsafe { sys::rte_pktmbuf_free_bulk(self.raw_ptr(), burst_u32(n)) }
    }

    /// Pointer to slot 0 as a `struct rte_mbuf **`.
    #[inline]
    pub(crate) fn raw_ptr(&mut self) -> *mut *mut sys::rte_mbuf {
        self.slots.as_mut_ptr().cast()
    }

    /// Pointer to the first free slot and the number of free slots, for a
    /// receive-type call to fill.
    #[inline]
    pub(crate) fn spare(&mut self) -> (*mut *mut sys::rte_mbuf, usize) {
        let len = self.len;
        // `len <= BURST`, so this is at most one-past-the-end.
        (self.raw_ptr().wrapping_add(len), BURST - len)
    }

    /// Records that a receive-type call wrote `n` mbufs into the spare
    /// slots.
    ///
    /// # Safety
    ///
    /// `n <= spare_capacity()` and slots `len..len + n` now hold valid
    /// owned mbufs (see [`Mbuf::from_raw`]).
    #[inline]
    pub(crate) unsafe fn assume_filled(&mut self, n: usize) {
        debug_assert!(n <= BURST - self.len);
        self.len += n;
    }

    /// Forgets the first `n` mbufs (their ownership went to DPDK) and moves
    /// the rest to the front, keeping their order.
    ///
    /// # Safety
    ///
    /// `n <= len()`, and DPDK has taken ownership of the first `n` mbufs.
    #[inline]
    pub(crate) unsafe fn forget_front(&mut self, n: usize) {
        debug_assert!(n <= self.len);
        let rest = self.len - n;
        if rest > 0 && n > 0 {
            let base = self.slots.as_mut_ptr();
            // SAFETY: n + rest == len <= BURST, so both ranges are in the
            // array; ptr::copy handles the overlap. The source slots are
            // then outside 0..rest and treated as uninitialised.
            unsafe { ptr::copy(base.add(n), base, rest) };
        }
        self.len = rest;
    }
}

impl Drop for MbufBatch {
    fn drop(&mut self) {
        self.clear();
    }
}

impl std::fmt::Debug for MbufBatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.as_slice()).finish()
    }
}

/// Iterator returned by [`MbufBatch::drain`]; owns slots `pos..end`.
struct Drain<'a> {
    slots: &'a mut [MaybeUninit<Mbuf>; BURST],
    pos: usize,
    end: usize,
}

impl Iterator for Drain<'_> {
    type Item = Mbuf;

    #[inline]
    fn next(&mut self) -> Option<Mbuf> {
        if self.pos == self.end {
            return None;
        }
        let i = self.pos;
        self.pos += 1;
        // SAFETY: slots pos..end are initialised and owned by the iterator;
        // each is read exactly once because pos only moves forward.
        Some(unsafe { self.slots[i].assume_init_read() })
    }

    #[inline]
    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = self.end - self.pos;
        (n, Some(n))
    }
}

impl ExactSizeIterator for Drain<'_> {}

impl Drop for Drain<'_> {
    fn drop(&mut self) {
        let n = self.end - self.pos;
        if n > 0 {
            let first = self
                .slots
                .as_mut_ptr()
                .wrapping_add(self.pos)
                .cast::<*mut sys::rte_mbuf>();
            self.pos = self.end;
            // SAFETY: slots pos..end are owned, initialised, not yet yielded,
            // and never read again.
            unsafe { sys::rte_pktmbuf_free_bulk(first, burst_u32(n)) }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::mbuf::fake;
    use super::*;

    /// Fake mbufs tagged by data_len so order can be checked.
    fn tagged(tag: u16) -> Mbuf {
        fake::mbuf(64, 0, tag)
    }

    fn forget_all(mut b: MbufBatch) {
        for m in b.drain() {
            let _ = m.into_raw();
        }
    }

    #[test]
    fn empty_batch() {
        let mut b = MbufBatch::new();
        assert!(b.is_empty());
        assert!(!b.is_full());
        assert_eq!(b.len(), 0);
        assert!(b.pop().is_none());
        assert_eq!(b.drain().count(), 0);
        assert_eq!(b.spare_capacity(), BURST);
    }

    #[test]
    fn push_until_full_then_refuse() {
        let mut b = MbufBatch::new();
        for i in 0..BURST {
            assert!(b.push(tagged(i as u16)).is_ok());
        }
        assert!(b.is_full());
        let back = b.push(tagged(99)).expect_err("full batch refuses");
        assert_eq!(back.len(), 99);
        let _ = back.into_raw();
        forget_all(b);
    }

    #[test]
    fn pop_is_lifo_drain_is_fifo() {
        let mut b = MbufBatch::new();
        for i in 1..=5u16 {
            assert!(b.push(tagged(i)).is_ok());
        }
        let last = b.pop().expect("non-empty");
        assert_eq!(last.len(), 5);
        let _ = last.into_raw();
        for m in b.iter_mut() {
            assert!(m.set_len(m.len() * 10));
        }
        let lens: Vec<usize> = b
            .drain()
            .map(|m| m.into_raw())
            .map(|p| {
                // SAFETY: test-only read of a fake header we still own.
                usize::from(unsafe { p.as_ref() }.data_len)
            })
            .collect();
        assert_eq!(lens, vec![10, 20, 30, 40]);
        assert!(b.is_empty());
    }

    #[test]
    fn forget_front_keeps_order_of_unsent() {
        let mut b = MbufBatch::new();
        for i in 1..=6u16 {
            assert!(b.push(tagged(i)).is_ok());
        }
        // SAFETY: pretend a tx burst took the first two; fake mbufs are
        // leaked test memory, so forgetting them is fine.
        unsafe { b.forget_front(2) };
        let lens: Vec<usize> = b.iter().map(Mbuf::len).collect();
        assert_eq!(lens, vec![3, 4, 5, 6]);
        forget_all(b);
    }
}
