//! The memory the session tables live in: [`crate::dpdk::HugeArray`] (DPDK
//! hugepage memory, or an `mmap` advised to use transparent huge pages) in
//! a build with DPDK, a plain boxed slice without it (the same interface,
//! for tests and tools that build without DPDK).

#[cfg(feature = "dpdk")]
pub use crate::dpdk::HugeArray as Store;

#[cfg(not(feature = "dpdk"))]
pub use plain::Store;

#[cfg(not(feature = "dpdk"))]
mod plain {
    use std::ops::{Deref, DerefMut};

    /// A fixed-length array on the heap.
    #[derive(Debug)]
    pub struct Store<T>(Box<[T]>);

    impl<T: Copy> Store<T> {
        /// `len` copies of `value`.
        #[must_use]
        pub fn filled(len: usize, value: T) -> Self {
            Self(vec![value; len].into_boxed_slice())
        }
    }

    impl<const N: usize, const M: usize> Store<[[u8; N]; M]> {
        /// `len` zeroed values.
        #[must_use]
        pub fn zeroed(len: usize) -> Self {
            Self(vec![[[0; N]; M]; len].into_boxed_slice())
        }
    }

    impl<T> Deref for Store<T> {
        type Target = [T];
        fn deref(&self) -> &[T] {
            &self.0
        }
    }

    impl<T> DerefMut for Store<T> {
        fn deref_mut(&mut self) -> &mut [T] {
            &mut self.0
        }
    }
}
