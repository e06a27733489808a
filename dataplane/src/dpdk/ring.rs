//! [`MbufRing`]: a single-producer/single-consumer `rte_ring` of mbufs for
//! handing packets from one lcore to another (e.g. a redirect to the core
//! that owns a session, or punting to control).
//!
//! The ring is created with `RING_F_SP_ENQ | RING_F_SC_DEQ`: DPDK's
//! lock-free SP/SC paths, which are only correct with one enqueuing and one
//! dequeuing thread at a time. `MbufRing` is `Send + Sync` so both sides can
//! hold it by reference (`Arc<MbufRing>`, `&'static MbufRing`); the
//! single-user contract per side is *enforced* by a guard flag per side
//! (one uncontended atomic swap per burst): a second thread entering the
//! same side while it is in use gets an empty burst (0) instead of corrupting
//! the ring.
//!
//! Ownership of mbufs moves into the ring on enqueue and out on dequeue.
//! Dropping the ring frees any mbufs still queued, then the ring itself.

use std::ffi::{c_void, CString};
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, Ordering};

use dpdk_sys as sys;

use super::batch::{burst_u32, MbufBatch};
use super::eal::eal_ready;
use super::error::DpdkErrno;

/// Why [`MbufRing::create`] failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RingError {
    /// EAL has not been initialised yet.
    #[error("eal is not initialised")]
    EalNotInitialised,
    /// The name contains a NUL byte.
    #[error("invalid ring name {name:?}")]
    InvalidName {
        /// The name given.
        name: String,
    },
    /// `rte_ring_create` failed (`EINVAL` if `size` is not a power of two,
    /// `EEXIST` for a duplicate name, `ENOMEM`, ...).
    #[error("cannot create ring {name:?}: {errno}")]
    Create {
        /// The name given.
        name: String,
        /// `rte_errno` after the call.
        errno: DpdkErrno,
    },
}

/// A per-side "in use" flag on its own cache line, so the producer's and
/// the consumer's flags do not share one.
#[derive(Debug, Default)]
#[repr(align(64))]
struct SideGuard(AtomicBool);

impl SideGuard {
    #[inline]
    fn enter(&self) -> bool {
        !self.0.swap(true, Ordering::Acquire)
    }

    #[inline]
    fn leave(&self) {
        self.0.store(false, Ordering::Release);
    }
}

/// An SP/SC ring of mbufs. See the module doc for the single-user contract.
#[derive(Debug)]
pub struct MbufRing {
    raw: NonNull<sys::rte_ring>,
    producer: SideGuard,
    consumer: SideGuard,
}

// SAFETY: the ring is a DPDK shared-memory object with no thread affinity;
// ownership of the mbufs inside moves with it.
unsafe impl Send for MbufRing {}
// SAFETY: DPDK's SP/SC ring supports one producer and one consumer running
// concurrently; the per-side guards make sure no more than one thread is
// inside either side at a time.
unsafe impl Sync for MbufRing {}

impl MbufRing {
    /// Creates a ring of `size` slots (a power of two; it holds `size - 1`
    /// mbufs) on NUMA `socket` (-1 for any).
    ///
    /// # Errors
    ///
    /// [`RingError::EalNotInitialised`], [`RingError::InvalidName`], or
    /// [`RingError::Create`] with DPDK's reason.
    #[cold]
    pub fn create(name: &str, size: u32, socket: i32) -> Result<Self, RingError> {
        if !eal_ready() {
            return Err(RingError::EalNotInitialised);
        }
        let cname = CString::new(name).map_err(|_| RingError::InvalidName {
            name: name.to_owned(),
        })?;
        // SAFETY: EAL is initialised; cname is a valid C string DPDK copies.
        let raw = unsafe {
            sys::rte_ring_create(
                cname.as_ptr(),
                size,
                socket,
                sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ,
            )
        };
        NonNull::new(raw)
            .map(|raw| Self {
                raw,
                producer: SideGuard::default(),
                consumer: SideGuard::default(),
            })
            .ok_or_else(|| RingError::Create {
                name: name.to_owned(),
                errno: DpdkErrno::last(),
            })
    }

    /// Moves as many mbufs as fit from the front of `pkts` into the ring;
    /// the rest stay in `pkts`, in order. Returns the number enqueued (0 if
    /// another thread is enqueuing right now: a contract violation).
    #[inline]
    pub fn enqueue_burst(&self, pkts: &mut MbufBatch) -> usize {
        let n = pkts.len();
        if n == 0 || !self.producer.enter() {
            return 0;
        }
        // SAFETY: we are the only producer (guard held); the first n slots
        // of pkts are owned mbuf pointers.
        let done = unsafe {
            sys::rvs_rte_ring_enqueue_burst(
                self.raw.as_ptr(),
                pkts.raw_ptr().cast::<*mut c_void>().cast_const(),
                burst_u32(n),
                ptr::null_mut(),
            )
        } as usize;
        self.producer.leave();
        // SAFETY: the ring now owns the first `done <= n` mbufs.
        unsafe { pkts.forget_front(done.min(n)) };
        done
    }

    /// Moves up to the free space of `out` from the ring into `out`
    /// (appended). Returns the number dequeued (0 if another thread is
    /// dequeuing right now: a contract violation).
    #[inline]
    pub fn dequeue_burst(&self, out: &mut MbufBatch) -> usize {
        let (dst, free) = out.spare();
        if free == 0 || !self.consumer.enter() {
            return 0;
        }
        // SAFETY: we are the only consumer (guard held); dst points at
        // `free` writable slots.
        let n = unsafe {
            sys::rvs_rte_ring_dequeue_burst(
                self.raw.as_ptr(),
                dst.cast::<*mut c_void>(),
                burst_u32(free),
                ptr::null_mut(),
            )
        } as usize;
        self.consumer.leave();
        // SAFETY: only owned mbuf pointers are ever enqueued; their
        // ownership passes to `out`.
        unsafe { out.assume_filled(n.min(free)) };
        n
    }

    /// Mbufs currently queued (a snapshot).
    #[must_use]
    pub fn len(&self) -> usize {
        // SAFETY: valid ring; reads its head/tail indexes.
        unsafe { sys::rvs_rte_ring_count(self.raw.as_ptr()) as usize }
    }

    /// True when nothing is queued (a snapshot).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many mbufs the ring can hold.
    #[must_use]
    pub fn capacity(&self) -> usize {
        // SAFETY: valid ring; `capacity` is written once by rte_ring_create
        // and never changes (what the inline rte_ring_get_capacity reads).
        unsafe { (*self.raw.as_ptr()).capacity as usize }
    }
}

impl Drop for MbufRing {
    fn drop(&mut self) {
        let mut batch = MbufBatch::new();
        while self.dequeue_burst(&mut batch) > 0 {
            batch.clear();
        }
        // SAFETY: we own the ring (no other reference exists when Drop
        // runs) and it is empty; it is never used again.
        unsafe { sys::rte_ring_free(self.raw.as_ptr()) }
    }
}
