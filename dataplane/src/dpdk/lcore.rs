//! Lcore identities and per-thread facts: current lcore, NUMA socket, TSC.
//!
//! These read thread-local EAL state through the shim (binding DPDK's
//! `per_lcore_*` TLS variables directly links but crashes), or the CPU's
//! time-stamp counter. They are valid on any thread, before or after
//! [`Eal::init`](super::Eal::init): before it every thread is "no lcore".

use std::fmt;

use dpdk_sys as sys;

/// An EAL logical core number (`rte_lcore_id()`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LcoreId(pub u32);

impl fmt::Display for LcoreId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "lcore {}", self.0)
    }
}

/// The lcore the calling thread runs as, or `None` for a non-EAL thread.
#[must_use]
pub fn current_lcore() -> Option<LcoreId> {
    // SAFETY: the shim reads this thread's `_lcore_id` TLS variable, which
    // is LCORE_ID_ANY on threads EAL did not create.
    let id = unsafe { sys::rvs_rte_lcore_id() };
    (id != sys::LCORE_ID_ANY).then_some(LcoreId(id))
}

/// NUMA socket of the calling thread (`rte_socket_id()`), or
/// `SOCKET_ID_ANY` (-1) when unknown. Pass it to `Mempool::create` and
/// `MbufRing::create`.
#[must_use]
pub fn socket_id() -> i32 {
    // SAFETY: rte_socket_id only reads this thread's `_socket_id` TLS
    // variable (SOCKET_ID_ANY on non-EAL threads).
    let id = unsafe { sys::rte_socket_id() };
    i32::try_from(id).unwrap_or(sys::SOCKET_ID_ANY)
}

/// Reads the CPU time-stamp counter. Cheap (~20-40 cycles, no call into
/// DPDK on x86_64): use it once per burst. Convert with
/// [`Eal::tsc_hz`](super::Eal::tsc_hz).
#[inline]
#[must_use]
pub fn rdtsc() -> u64 {
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: RDTSC is available on every x86_64 CPU and has no
        // memory effects.
        unsafe { core::arch::x86_64::_rdtsc() }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        // SAFETY: rte_rdtsc reads a counter register; no preconditions.
        unsafe { sys::rvs_rte_rdtsc() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rdtsc_is_monotonic_enough() {
        let a = rdtsc();
        let b = rdtsc();
        assert!(b >= a);
    }

    #[test]
    fn plain_threads_are_not_lcores() {
        // Unit tests never initialise EAL.
        assert_eq!(current_lcore(), None);
        assert_eq!(socket_id(), -1);
    }

    #[test]
    fn lcore_display() {
        assert_eq!(LcoreId(3).to_string(), "lcore 3");
    }
}
