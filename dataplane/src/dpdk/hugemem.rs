//! Big fixed arrays (the session tables) on huge pages.
//!
//! A [`HugeArray`] is a fixed-length array allocated once, from:
//!
//! * DPDK memory (`rte_zmalloc_socket`, on the calling lcore's socket) when
//!   EAL is up and has hugepages: 2 MB or 1 GB pages the operator reserved,
//!   as long as 32 MB of them stay free for what is set up afterwards;
//! * otherwise an anonymous `mmap` with `madvise(MADV_HUGEPAGE)`: the
//!   kernel backs it with transparent huge pages where it can (THP
//!   `enabled` set to `always` or `madvise`), and with 4 KB pages otherwise.
//!   This is the path of `--no-huge` runs and of tests without EAL.
//!
//! Either way the memory starts zeroed; an `mmap`'d region is committed
//! page by page as it is first written, so an array made by
//! [`HugeArray::zeroed`] (always an `mmap`) costs memory only where it is
//! used.
//!
//! Invariants: `ptr` points to `len` initialised `T`s, 64-byte aligned (at
//! least `align_of::<T>()`), owned by this value alone and freed by its
//! `Drop` (EAL is never cleaned up, so `rte_free` stays valid).

use std::ffi::c_void;
use std::ops::{Deref, DerefMut};
use std::ptr::NonNull;

use dpdk_sys as sys;

use super::eal::eal_ready;

/// Types whose all-zero bytes are a valid value (sealed: byte arrays only),
/// so that [`HugeArray::zeroed`] need not write them.
pub trait Zeroed: Copy + sealed::Sealed {}

mod sealed {
    pub trait Sealed {}
    impl<const N: usize> Sealed for [u8; N] {}
    impl<const N: usize, const M: usize> Sealed for [[u8; N]; M] {}
}

impl<const N: usize> Zeroed for [u8; N] {}
impl<const N: usize, const M: usize> Zeroed for [[u8; N]; M] {}

/// Where an array's memory came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backing {
    /// DPDK's hugepage memory.
    Dpdk,
    /// An anonymous mapping advised to use transparent huge pages.
    Mmap,
    /// Nothing (an empty array).
    None,
}

/// A fixed-length array on huge pages. See the module doc.
pub struct HugeArray<T> {
    ptr: NonNull<T>,
    len: usize,
    backing: Backing,
}

// SAFETY: a HugeArray owns its elements exclusively (as a Box<[T]> does),
// so it may move to another thread when T may.
unsafe impl<T: Send> Send for HugeArray<T> {}
// SAFETY: shared access only hands out &T (as a Box<[T]> does).
unsafe impl<T: Sync> Sync for HugeArray<T> {}

impl<T: Copy> HugeArray<T> {
    /// `len` copies of `value`.
    ///
    /// # Panics
    /// If the memory cannot be had (as `Vec` aborts when out of memory).
    #[must_use]
    pub fn filled(len: usize, value: T) -> Self {
        let a = Self::alloc(len, true);
        for i in 0..len {
            // SAFETY: i < len, and the allocation holds len aligned Ts.
            unsafe { a.ptr.as_ptr().add(i).write(value) };
        }
        a
    }

    /// Where the memory came from.
    #[must_use]
    pub fn backing(&self) -> Backing {
        self.backing
    }

    fn bytes(len: usize) -> usize {
        len.checked_mul(std::mem::size_of::<T>())
            .expect("huge array size overflows")
    }

    /// Zeroed memory for `len` Ts (not yet valid unless T is [`Zeroed`]),
    /// from DPDK if `dpdk` allows and EAL has hugepages to spare.
    fn alloc(len: usize, dpdk: bool) -> Self {
        assert!(std::mem::align_of::<T>() <= 64, "alignment over 64");
        let bytes = Self::bytes(len);
        if bytes == 0 {
            return Self {
                ptr: NonNull::dangling(),
                len,
                backing: Backing::None,
            };
        }
        // SAFETY: rte_eal_has_hugepages only reads EAL's configuration,
        // which exists once EAL is up.
        if dpdk && eal_ready() && unsafe { sys::rte_eal_has_hugepages() } != 0 {
            // SAFETY: rte_socket_id reads the calling thread's lcore state.
            let socket = unsafe { sys::rte_socket_id() } as i32;
            // SAFETY: EAL is up; the name is a NUL-terminated literal; the
            // result is null or `bytes` zeroed bytes aligned to 64.
            let p = unsafe { sys::rte_zmalloc_socket(c"rvs-sessions".as_ptr(), bytes, 64, socket) };
            if let Some(ptr) = NonNull::new(p.cast::<T>()) {
                if Self::headroom_left(socket) {
                    return Self {
                        ptr,
                        len,
                        backing: Backing::Dpdk,
                    };
                }
                // SAFETY: p came from rte_zmalloc_socket just now.
                unsafe { sys::rte_free(p) };
            }
            // Not enough hugepage memory on this socket: fall back.
        }
        // SAFETY: an anonymous private mapping of `bytes` bytes at an address
        // of the kernel's choosing: it aliases nothing; its pages read as zero.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                bytes,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        assert!(
            p != libc::MAP_FAILED,
            "huge array: mmap of {bytes} bytes failed: {}",
            std::io::Error::last_os_error()
        );
        // SAFETY: p..p+bytes is the mapping just made. The advice is a hint
        // (it fails harmlessly where THP is compiled out or disabled).
        unsafe { libc::madvise(p, bytes, libc::MADV_HUGEPAGE) };
        Self {
            ptr: NonNull::new(p.cast::<T>()).expect("mmap returned null"),
            len,
            backing: Backing::Mmap,
        }
    }
}

impl<T: Copy> HugeArray<T> {
    /// True if [`HEADROOM`] more bytes of DPDK memory can still be had on
    /// `socket` (what rings and queues set up after the tables need).
    fn headroom_left(socket: i32) -> bool {
        // SAFETY: EAL is up; the result is null or a block freed below.
        let probe = unsafe { sys::rte_malloc_socket(std::ptr::null(), HEADROOM, 64, socket) };
        if probe.is_null() {
            return false;
        }
        // SAFETY: probe came from rte_malloc_socket just now.
        unsafe { sys::rte_free(probe) };
        true
    }
}

/// DPDK memory a table leaves free: a table that would leave less goes to
/// an `mmap` instead, so that what is set up after it (rings, queues)
/// still finds hugepage memory.
const HEADROOM: usize = 32 << 20;

impl<T: Zeroed> HugeArray<T> {
    /// `len` zeroed values, committed as they are first written: always an
    /// `mmap` (DPDK memory would be committed whole), for an array most of
    /// which stays unused (the IPv6 addresses of an IPv4-heavy table).
    ///
    /// # Panics
    /// If the memory cannot be had.
    #[must_use]
    pub fn zeroed(len: usize) -> Self {
        // mmap hands out zeroed memory, a valid T by `Zeroed`.
        Self::alloc(len, false)
    }
}

impl<T> Deref for HugeArray<T> {
    type Target = [T];

    #[inline]
    fn deref(&self) -> &[T] {
        // SAFETY: ptr points to len initialised, aligned Ts owned by self.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> DerefMut for HugeArray<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut [T] {
        // SAFETY: as in deref; &mut self makes the access exclusive.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl<T> Drop for HugeArray<T> {
    fn drop(&mut self) {
        let bytes = self.len * std::mem::size_of::<T>();
        match self.backing {
            // SAFETY: ptr came from rte_zmalloc_socket and is freed once.
            Backing::Dpdk => unsafe { sys::rte_free(self.ptr.as_ptr().cast::<c_void>()) },
            Backing::Mmap => {
                // SAFETY: ptr..ptr+bytes is the mapping made in alloc,
                // unmapped once; T: Copy, so nothing needs dropping.
                unsafe { libc::munmap(self.ptr.as_ptr().cast::<c_void>(), bytes) };
            }
            Backing::None => {}
        }
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for HugeArray<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HugeArray")
            .field("len", &self.len)
            .field("backing", &self.backing)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_array_without_eal_is_mapped_and_holds_its_values() {
        let mut a = HugeArray::filled(100_000, 7u32);
        assert_eq!(a.backing(), Backing::Mmap);
        assert!(a.iter().all(|&x| x == 7));
        a[99_999] = 9;
        assert_eq!(a[99_999], 9);
        assert_eq!(a.as_ptr() as usize % 64, 0);
        let z: HugeArray<[u8; 64]> = HugeArray::zeroed(10_000);
        assert!(z.iter().all(|x| *x == [0; 64]));
        let e: HugeArray<u64> = HugeArray::filled(0, 1);
        assert!(e.is_empty());
    }
}
