//! [`Mempool`]: a packet-buffer pool (`rte_pktmbuf_pool_create`).
//!
//! Pools are thread-safe in DPDK (lock-free ring plus a per-lcore cache),
//! so a `Mempool` is `Send + Sync` and can be shared by reference or in an
//! `Arc` between workers.
//!
//! **Pools are never freed.** Dropping a `Mempool` leaks the DPDK pool on
//! purpose. `rte_mempool_free` is only sound once every mbuf from the pool
//! is back and every rx queue that refills from it is stopped; neither
//! [`Mbuf`] (a bare pointer) nor [`Port`](super::Port) carries a borrow of
//! the pool, so the types cannot prove that ordering. Pools are created once
//! at start-up and live until the process exits, so nothing is lost.

use std::ffi::CString;
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::batch::{burst_u32, MbufBatch};
use super::eal::eal_ready;
use super::error::DpdkErrno;
use super::mbuf::Mbuf;

/// Why [`Mempool::create`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MempoolError {
    /// EAL has not been initialised yet.
    #[error("eal is not initialised")]
    EalNotInitialised,
    /// The name contains a NUL byte.
    #[error("invalid mempool name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// `rte_pktmbuf_pool_create` failed (`EEXIST` for a duplicate name,
    /// `ENOMEM`, `EINVAL` for a cache larger than the pool allows, ...).
    #[error("cannot create mempool {name:?}: {errno}")]
    Create {
        /// The name given.
        name: String,
        /// `rte_errno` after the call.
        errno: DpdkErrno,
    },
}

/// A pool of packet buffers. Leaked on drop (see the module doc).
#[derive(Debug)]
pub struct Mempool {
    raw: NonNull<sys::rte_mempool>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe; the handle
// is a pointer to a pool that is never freed.
unsafe impl Send for Mempool {}
// SAFETY: as above; every method takes &self and DPDK synchronises.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// Creates a pool of `n_mbufs` mbufs with a per-lcore cache of `cache`
    /// and `data_room` bytes of buffer each (headroom included, so
    /// `RTE_MBUF_DEFAULT_BUF_SIZE` = 2176 fits a 1518-byte frame), on NUMA
    /// `socket` (-1 for any). `n_mbufs = 2^k - 1` is the most
    /// memory-efficient size.
    ///
    /// # Errors
    ///
    /// [`MempoolError::EalNotInitialised`] before [`Eal::init`](super::Eal::init),
    /// [`MempoolError::InvalidName`], or [`MempoolError::Create`] with DPDK's
    /// reason.
    #[cold]
    pub fn create(
        name: &str,
        n_mbufs: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
    ) -> Result<Self, MempoolError> {
        if !eal_ready() {
            return Err(MempoolError::EalNotInitialised);
        }
        let cname = CString::new(name).map_err(|_| MempoolError::InvalidName {
            name: name.to_owned(),
        })?;
        // SAFETY: EAL is initialised; cname is a valid C string that DPDK
        // copies; priv_size 0 is always aligned.
        let raw = unsafe {
            sys::rte_pktmbuf_pool_create(cname.as_ptr(), n_mbufs, cache, 0, data_room, socket)
        };
        NonNull::new(raw)
            .map(|raw| Self { raw })
            .ok_or_else(|| MempoolError::Create {
                name: name.to_owned(),
                errno: DpdkErrno::last(),
            })
    }

    /// Takes one mbuf from the pool (reset, empty, headroom reserved), or
    /// `None` when the pool is exhausted.
    #[inline]
    #[must_use]
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for the life of the process.
        let m = unsafe { sys::rvs_rte_pktmbuf_alloc(self.raw.as_ptr()) };
        // SAFETY: a fresh mbuf from rte_pktmbuf_alloc is direct, refcount 1
        // and owned by nobody else.
        NonNull::new(m).map(|m| unsafe { Mbuf::from_raw(m) })
    }

    /// Fills the free space of `out` with fresh mbufs in one bulk call.
    /// All-or-nothing: returns false (and leaves `out` unchanged) if the
    /// pool cannot supply that many.
    pub fn alloc_fill(&self, out: &mut MbufBatch) -> bool {
        let (ptr, free) = out.spare();
        if free == 0 {
            return true;
        }
        // SAFETY: ptr points at `free` writable slots in `out`.
        let ret =
            unsafe { sys::rvs_rte_pktmbuf_alloc_bulk(self.raw.as_ptr(), ptr, burst_u32(free)) };
        if ret != 0 {
            return false;
        }
        // SAFETY: on success all `free` slots hold fresh, owned mbufs.
        unsafe { out.assume_filled(free) };
        true
    }

    /// Mbufs currently free in the pool (caches included).
    #[must_use]
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool pointer.
        unsafe { sys::rvs_rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Raw pointer for other wrapper modules (queue setup).
    pub(crate) fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.raw.as_ptr()
    }
}
