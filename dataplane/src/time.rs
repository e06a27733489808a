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

/// The wall clock: milliseconds since the Unix epoch (0 before it). Read
/// once a second by a worker, never per packet (see
/// `Pipeline::set_isn_epoch`).
#[must_use]
pub fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
