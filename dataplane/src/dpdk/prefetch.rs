//! `rte_prefetch0` for Rust values: a hint that a value's cache lines will
//! be read soon, so that the memory misses of a whole burst overlap instead
//! of being paid one packet at a time (see the worker's read-ahead).

/// Asks the CPU to bring every cache line `value` touches into all cache
/// levels. A hint only: it never blocks and never faults.
#[inline(always)]
pub fn prefetch<T>(value: &T) {
    let start = std::ptr::from_ref(value).cast::<i8>();
    let first_line = start.wrapping_sub(start as usize & 63);
    let end = start as usize + std::mem::size_of::<T>().max(1);
    let mut line = first_line;
    while (line as usize) < end {
        hint(line);
        line = line.wrapping_add(64);
    }
}

/// Asks for the one cache line `value` starts in (a value larger than a
/// line whose first line alone is read soon).
#[inline(always)]
pub fn prefetch_first<T>(value: &T) {
    hint(std::ptr::from_ref(value).cast::<i8>());
}

#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn hint(line: *const i8) {
    use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
    // SAFETY: PREFETCHT0 is a hint: it does not fault on any address and has
    // no effect the program can observe; `line` lies within (the cache
    // lines of) a live reference anyway.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(line) };
}

#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn hint(_line: *const i8) {}
