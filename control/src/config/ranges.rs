//! The ranges of numbers an operator gives, in one place: the config file
//! (`validate`), rvsadm's command line and rvsd's answer to a request (a
//! client other than rvsadm may send anything) all check against these, so
//! a value the file refuses is refused at run time too.
//!
//! Each checker takes the number as written (`i64`: TOML integers, or a
//! command-line word parsed wide) and names the range in its error.

use std::ops::RangeInclusive;

/// Seconds in 31 days: the longest session timeout or persistence
/// (longer ones would show as `71582788:14` in `-L -c`).
pub const MAX_SECS: u32 = 31 * 24 * 3600;
/// Real server weight (ipvsadm: 0..65535; 0 takes no new connections).
pub const WEIGHT: RangeInclusive<u32> = 0..=65535;
/// Session timeouts (`[timeouts]`, `--set`), seconds.
pub const TIMEOUT_SECS: RangeInclusive<u32> = 1..=MAX_SECS;
/// Persistence timeout (`persistent`, `-p`), seconds.
pub const PERSISTENT_SECS: RangeInclusive<u32> = 1..=MAX_SECS;
/// Connection thresholds (`upper_threshold`/`lower_threshold`, `-x`/`-y`;
/// 0: none), as the kernel's signed int.
pub const THRESHOLD: RangeInclusive<u32> = 0..=(i32::MAX as u32);

fn within(v: i64, range: &RangeInclusive<u32>) -> Option<u32> {
    u32::try_from(v).ok().filter(|x| range.contains(x))
}

/// A real server weight.
///
/// # Errors
/// The range and the value.
pub fn weight(v: i64) -> Result<u32, String> {
    within(v, &WEIGHT).ok_or_else(|| format!("weight must be 0..=65535, not {v}"))
}

/// A session timeout in seconds.
///
/// # Errors
/// The range and the value.
pub fn timeout_secs(v: i64) -> Result<u32, String> {
    within(v, &TIMEOUT_SECS)
        .ok_or_else(|| format!("timeout must be 1..={MAX_SECS} seconds, not {v}"))
}

/// A persistence timeout in seconds.
///
/// # Errors
/// The range and the value.
pub fn persistent_secs(v: i64) -> Result<u32, String> {
    within(v, &PERSISTENT_SECS).ok_or_else(|| {
        format!("persistent must be 1..={MAX_SECS} seconds (or true for 300), not {v}")
    })
}

/// A connection threshold; `what` names it (`upper_threshold`, ...).
///
/// # Errors
/// The range and the value.
pub fn threshold(v: i64, what: &str) -> Result<u32, String> {
    within(v, &THRESHOLD).ok_or_else(|| {
        format!(
            "{what} must be a number of connections 0..={} (0: none), not {v}",
            i32::MAX
        )
    })
}

/// A command-line word as a number for the checkers above: anything that
/// is not a whole number (or does not fit in `i64`) is `None`.
#[must_use]
pub fn word(v: &str) -> Option<i64> {
    v.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edges() {
        assert_eq!(weight(0), Ok(0));
        assert_eq!(weight(65535), Ok(65535));
        assert!(weight(65536).is_err() && weight(-1).is_err());
        assert_eq!(timeout_secs(2_678_400), Ok(2_678_400));
        assert_eq!(
            timeout_secs(4_294_967_295),
            Err("timeout must be 1..=2678400 seconds, not 4294967295".into())
        );
        assert!(timeout_secs(0).is_err());
        assert!(persistent_secs(4_294_967_295).is_err() && persistent_secs(0).is_err());
        assert_eq!(persistent_secs(300), Ok(300));
        assert_eq!(threshold(i64::from(i32::MAX), "x"), Ok(i32::MAX as u32));
        assert!(threshold(i64::from(i32::MAX) + 1, "x").is_err());
        assert_eq!(word("12"), Some(12));
        assert_eq!(word("1x"), None);
    }
}
