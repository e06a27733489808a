//! [`Mbuf`]: one owned packet buffer, with byte access done in Rust.
//!
//! An `Mbuf` is a non-null pointer to a *direct* `rte_mbuf` with reference
//! count 1 that nobody else holds: it came from `rte_pktmbuf_alloc`, a PMD
//! receive burst or a ring dequeue, and dropping it returns it to its pool
//! (`rte_pktmbuf_free`). Because this module never clones or attaches mbufs,
//! the data buffer is exclusively ours, which is what makes
//! [`Mbuf::data_mut`] sound.
//!
//! Accessors read `buf_addr`, `data_off`, `data_len`, ... directly (no shim
//! call per packet). Byte access covers the first segment only.
//!
//! `Send`: mbufs move between lcores (rx worker -> ring -> tx worker);
//! freeing from any thread is safe (mempools are thread-safe).

use std::fmt;
use std::ptr::NonNull;
use std::slice;

use dpdk_sys as sys;

use super::port::PortId;

/// An owned DPDK packet buffer. Dropping it frees it.
#[repr(transparent)]
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the unique owner of its rte_mbuf (see the module
// doc); nothing in it is tied to the creating thread, and rte_pktmbuf_free
// is safe from any thread.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of a raw mbuf.
    ///
    /// # Safety
    ///
    /// `raw` must point to a valid, direct `rte_mbuf` with refcount 1 that
    /// no one else will use or free.
    #[inline]
    pub(crate) unsafe fn from_raw(raw: NonNull<sys::rte_mbuf>) -> Self {
        Self(raw)
    }

    /// Gives up ownership without freeing (DPDK now owns the mbuf).
    /// Test-only for now: bursts move ownership through `MbufBatch`.
    #[cfg(test)]
    #[inline]
    pub(crate) fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let raw = self.0;
        std::mem::forget(self);
        raw
    }

    #[inline]
    fn hdr(&self) -> &sys::rte_mbuf {
        // SAFETY: by the type invariant the pointer is valid and we are its
        // unique owner, so a shared borrow tied to &self is sound.
        unsafe { self.0.as_ref() }
    }

    #[inline]
    fn hdr_mut(&mut self) -> &mut sys::rte_mbuf {
        // SAFETY: as in `hdr`, with &mut self giving exclusivity.
        unsafe { self.0.as_mut() }
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        let h = self.hdr();
        h.buf_addr
            .cast::<u8>()
            .wrapping_add(usize::from(h.data_off))
    }

    /// The first segment's bytes (`buf_addr + data_off`, `data_len` long).
    #[inline]
    #[must_use]
    pub fn data(&self) -> &[u8] {
        let len = usize::from(self.hdr().data_len);
        debug_assert!(
            usize::from(self.hdr().data_off) + len <= usize::from(self.hdr().buf_len),
            "mbuf data exceeds its buffer"
        );
        // SAFETY: DPDK keeps data_off + data_len <= buf_len, so the range
        // lies inside the buffer at buf_addr (non-null for a valid mbuf);
        // the bytes are not mutated while &self is borrowed.
        unsafe { slice::from_raw_parts(self.data_ptr(), len) }
    }

    /// The first segment's bytes, writable.
    #[inline]
    #[must_use]
    pub fn data_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.hdr().data_len);
        debug_assert!(
            usize::from(self.hdr().data_off) + len <= usize::from(self.hdr().buf_len),
            "mbuf data exceeds its buffer"
        );
        debug_assert!(
            self.hdr().ol_flags & sys::RTE_MBUF_F_INDIRECT == 0 && self.hdr().refcnt == 1,
            "data_mut on a shared mbuf"
        );
        // SAFETY: as in `data`; the buffer is exclusively ours (direct
        // mbuf, refcount 1, unique owner) and &mut self is exclusive.
        unsafe { slice::from_raw_parts_mut(self.data_ptr(), len) }
    }

    /// The first segment's whole data room (`buf_addr`, `buf_len` long) with
    /// the data window in it (`data_off`, `data_len`): for rewrites that
    /// grow the frame at the front; [`Self::set_window`] stores the result.
    #[inline]
    pub fn room_mut(&mut self) -> (&mut [u8], usize, usize) {
        let h = self.hdr();
        let (room, off, len) = (
            usize::from(h.buf_len),
            usize::from(h.data_off),
            usize::from(h.data_len),
        );
        debug_assert!(
            self.hdr().ol_flags & sys::RTE_MBUF_F_INDIRECT == 0 && self.hdr().refcnt == 1,
            "room_mut on a shared mbuf"
        );
        // SAFETY: buf_addr points at buf_len bytes owned by this direct,
        // unshared mbuf (type invariant, checked above in debug builds), and
        // &mut self is exclusive for the slice's lifetime.
        let bytes = unsafe { slice::from_raw_parts_mut(h.buf_addr.cast::<u8>(), room) };
        (bytes, off, len)
    }

    /// Sets a single-segment mbuf's data window to `len` bytes at `off`.
    /// Returns false, changing nothing, if the mbuf is chained or the window
    /// does not fit in the buffer.
    #[inline]
    pub fn set_window(&mut self, off: usize, len: usize) -> bool {
        let h = self.hdr_mut();
        if h.nb_segs != 1 || !h.next.is_null() || off + len > usize::from(h.buf_len) {
            return false;
        }
        // Both fit in u16: off + len <= buf_len, a u16.
        h.data_off = off as u16;
        h.data_len = len as u16;
        h.pkt_len = len as u32;
        true
    }

    /// Asks for the header's first cache line (lengths, data offset,
    /// buffer address: what reading the frame needs first), so that a
    /// burst's header misses overlap (see the worker's read-ahead).
    #[inline]
    pub fn prefetch_header(&self) {
        super::prefetch_first(self.hdr());
    }

    /// Bytes in the first segment (`data_len`).
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.hdr().data_len)
    }

    /// True when the first segment holds no bytes.
    #[inline]
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.hdr().data_len == 0
    }

    /// Bytes in the whole packet, all segments (`pkt_len`).
    #[inline]
    #[must_use]
    pub fn pkt_len(&self) -> usize {
        self.hdr().pkt_len as usize
    }

    /// Number of segments.
    #[inline]
    #[must_use]
    pub fn nb_segs(&self) -> u16 {
        self.hdr().nb_segs
    }

    /// The port the packet was received on.
    #[inline]
    #[must_use]
    pub fn port(&self) -> PortId {
        PortId(self.hdr().port)
    }

    /// Free bytes in front of the data.
    #[inline]
    #[must_use]
    pub fn headroom(&self) -> usize {
        usize::from(self.hdr().data_off)
    }

    /// Free bytes after the data in the first segment.
    #[inline]
    #[must_use]
    pub fn tailroom(&self) -> usize {
        let h = self.hdr();
        usize::from(h.buf_len).saturating_sub(usize::from(h.data_off) + usize::from(h.data_len))
    }

    /// Offload flags (`RTE_MBUF_F_*`).
    #[inline]
    #[must_use]
    pub fn ol_flags(&self) -> u64 {
        self.hdr().ol_flags
    }

    /// One segment, and no VLAN tag stripped into the metadata: what the
    /// worker checks before anything else (a frame in several segments is
    /// refused, a stripped tag names its sub-interface).
    #[inline]
    #[must_use]
    pub fn is_plain(&self) -> bool {
        let h = self.hdr();
        h.nb_segs == 1 && h.ol_flags & sys::RTE_MBUF_F_RX_VLAN_STRIPPED == 0
    }

    /// The VLAN tag a PMD stripped into the metadata
    /// (`RTE_MBUF_F_RX_VLAN_STRIPPED`, `vlan_tci`), taken: the flag is
    /// cleared so the tag is consumed once. `None` (and nothing written) for
    /// a frame whose tag, if any, is in-band.
    #[inline]
    pub fn take_vlan_stripped(&mut self) -> Option<u16> {
        if self.hdr().ol_flags & sys::RTE_MBUF_F_RX_VLAN_STRIPPED == 0 {
            return None;
        }
        let h = self.hdr_mut();
        h.ol_flags &= !sys::RTE_MBUF_F_RX_VLAN_STRIPPED;
        Some(h.vlan_tci)
    }

    /// Records `tci` as a VLAN tag stripped into the metadata (what
    /// [`Mbuf::take_vlan_stripped`] reads back).
    #[inline]
    pub fn set_vlan_stripped(&mut self, tci: u16) {
        let h = self.hdr_mut();
        h.vlan_tci = tci;
        h.ol_flags |= sys::RTE_MBUF_F_RX_VLAN | sys::RTE_MBUF_F_RX_VLAN_STRIPPED;
    }

    /// The NIC's RSS hash, if the PMD provided one.
    #[inline]
    #[must_use]
    pub fn rss_hash(&self) -> Option<u32> {
        let h = self.hdr();
        if h.ol_flags & sys::RTE_MBUF_F_RX_RSS_HASH == 0 {
            return None;
        }
        // SAFETY: every member of the hash union is plain integers; the
        // flag says the PMD wrote `rss`.
        Some(unsafe { h.__bindgen_anon_2.hash.rss })
    }

    /// Grows or shrinks a single-segment mbuf's data to `len` bytes (within
    /// tailroom). Returns false, changing nothing, if the mbuf is chained or
    /// `len` does not fit in the buffer. Grown bytes keep whatever the
    /// buffer held.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        let h = self.hdr_mut();
        if h.nb_segs != 1 || !h.next.is_null() {
            return false;
        }
        let room = usize::from(h.buf_len).saturating_sub(usize::from(h.data_off));
        let Ok(len16) = u16::try_from(len) else {
            return false;
        };
        if len > room {
            return false;
        }
        h.data_len = len16;
        h.pkt_len = u32::from(len16);
        true
    }

    /// Makes room for `n` bytes in front of the data (e.g. an encapsulation
    /// header) and returns them; `None` if the headroom is too small.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let h = self.hdr_mut();
        let n16 = u16::try_from(n).ok()?;
        if n16 > h.data_off {
            return None;
        }
        h.data_off -= n16;
        // Cannot overflow: data_off + data_len <= buf_len (a u16) still holds.
        h.data_len += n16;
        h.pkt_len += u32::from(n16);
        Some(&mut self.data_mut()[..n])
    }

    /// Removes `n` bytes from the front of the data (e.g. a decapsulated
    /// header). Returns false, changing nothing, if the first segment holds
    /// fewer than `n` bytes.
    #[inline]
    pub fn adj(&mut self, n: usize) -> bool {
        let h = self.hdr_mut();
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        if n16 > h.data_len {
            return false;
        }
        h.data_off += n16;
        h.data_len -= n16;
        h.pkt_len -= u32::from(n16);
        true
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (type invariant) and never use it again.
        unsafe { sys::rvs_rte_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mbuf")
            .field("ptr", &self.0)
            .field("len", &self.len())
            .field("pkt_len", &self.pkt_len())
            .field("nb_segs", &self.nb_segs())
            .field("port", &self.port().0)
            .finish()
    }
}

/// Fake, pool-less mbufs for DPDK-free unit tests of the accessor and
/// batch logic. They must be forgotten (`into_raw`), never dropped.
#[cfg(test)]
pub(crate) mod fake {
    use super::*;

    /// An `rte_mbuf` header over a heap buffer; leaked for test simplicity.
    pub(crate) fn mbuf(buf_len: u16, data_off: u16, data_len: u16) -> Mbuf {
        let buf: &'static mut [u8] = Box::leak(vec![0u8; usize::from(buf_len)].into_boxed_slice());
        let hdr = sys::rte_mbuf {
            buf_addr: buf.as_mut_ptr().cast(),
            data_off,
            refcnt: 1,
            nb_segs: 1,
            port: 7,
            pkt_len: u32::from(data_len),
            data_len,
            buf_len,
            ..Default::default()
        };
        let raw = NonNull::from(Box::leak(Box::new(hdr)));
        // SAFETY: a valid header over a valid buffer, uniquely owned; tests
        // forget it instead of freeing it through DPDK.
        unsafe { Mbuf::from_raw(raw) }
    }
}

#[cfg(test)]
mod tests {
    use super::fake;

    #[test]
    fn room_and_set_window() {
        let mut m = fake::mbuf(256, 128, 60);
        {
            let (room, off, len) = m.room_mut();
            assert_eq!((room.len(), off, len), (256, 128, 60));
        }
        assert!(m.set_window(108, 80));
        assert_eq!((m.headroom(), m.len(), m.pkt_len()), (108, 80, 80));
        assert!(!m.set_window(200, 80));
        assert_eq!(m.len(), 80);
        std::mem::forget(m);
    }

    #[test]
    fn data_window_and_set_len() {
        let mut m = fake::mbuf(256, 128, 0);
        assert!(m.is_empty());
        assert_eq!(m.tailroom(), 128);
        assert!(m.set_len(60));
        assert_eq!((m.len(), m.pkt_len()), (60, 60));
        m.data_mut().copy_from_slice(&[0xab; 60]);
        assert!(m.data().iter().all(|&b| b == 0xab));
        assert!(m.set_len(128));
        assert!(!m.set_len(129));
        assert_eq!(m.len(), 128);
        assert!(m.set_len(10));
        assert_eq!(m.data(), &[0xab; 10]);
        assert_eq!(m.port().0, 7);
        assert_eq!(m.rss_hash(), None);
        let _ = m.into_raw();
    }

    #[test]
    fn prepend_and_adj() {
        let mut m = fake::mbuf(256, 16, 4);
        m.data_mut().copy_from_slice(&[1, 2, 3, 4]);
        assert!(m.prepend(17).is_none());
        m.prepend(2).expect("headroom").copy_from_slice(&[9, 9]);
        assert_eq!(m.data(), &[9, 9, 1, 2, 3, 4]);
        assert_eq!((m.headroom(), m.pkt_len()), (14, 6));
        assert!(m.adj(3));
        assert_eq!(m.data(), &[2, 3, 4]);
        assert!(!m.adj(4));
        assert_eq!(m.pkt_len(), 3);
        let _ = m.into_raw();
    }

    #[test]
    fn vlan_metadata_is_taken_once() {
        let mut m = fake::mbuf(256, 128, 60);
        assert_eq!(m.take_vlan_stripped(), None);
        m.set_vlan_stripped(100);
        assert_eq!(m.take_vlan_stripped(), Some(100));
        assert_eq!(m.take_vlan_stripped(), None, "consumed");
        // Tag in the metadata, then in-band through the worker's helpers.
        let map = crate::vlan::VlanMap::new([crate::vlan::Vlan {
            port: 1,
            parent: 0,
            vid: 100,
        }]);
        m.set_vlan_stripped(100);
        assert_eq!(crate::vlan::mbuf::ingress(&mut m, 0, &map), Some(1));
        assert_eq!(m.len(), 60);
        assert!(crate::vlan::mbuf::push(&mut m, 100));
        assert_eq!((m.len(), crate::vlan::tci(m.data())), (64, Some(100)));
        assert_eq!(crate::vlan::mbuf::ingress(&mut m, 0, &map), Some(1));
        assert_eq!((m.len(), m.headroom()), (60, 128));
        let _ = m.into_raw();
    }

    #[test]
    fn set_len_refuses_chains() {
        let mut m = fake::mbuf(256, 128, 10);
        // Pretend it is chained.
        // SAFETY: test-only header edit on our own fake mbuf.
        unsafe { (*m.0.as_ptr()).nb_segs = 2 };
        assert!(!m.set_len(5));
        assert_eq!(m.len(), 10);
        let _ = m.into_raw();
    }
}
