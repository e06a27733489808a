//! Time on the packet path: milliseconds since the worker started, derived
//! from the TSC once per burst. A newtype so timeouts cannot be mixed up with
//! other integers.

/// A point in time, in milliseconds since an arbitrary start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    /// This instant plus `secs` seconds.
    #[must_use]
    pub fn plus_secs(self, secs: u32) -> Self {
        Self(self.0 + u64::from(secs) * 1000)
    }

    /// Milliseconds from `self` until `later` (0 if `later` is not later).
    #[must_use]
    pub fn until(self, later: Self) -> u64 {
        later.0.saturating_sub(self.0)
    }
}
