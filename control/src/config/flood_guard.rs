//! `[flood_guard]`: the settings of the data plane's flood guard
//! ([`dataplane::guard`]), read and range-checked. Init-only: a reload that
//! changes them is refused (restart rvsd).
//!
//! ```toml
//! [flood_guard]
//! enabled = true            # default true
//! new_session_rate = 20000  # new sessions per second per worker; 0 (default): no rate trigger
//! session_high_water = 90   # percent of a worker's session table (1..=100, default 90)
//! port_high_water = 90      # percent of a local address's port pool (1..=100, default 90)
//! half_open_timeout = 5     # seconds, half-open TCP sessions while the guard is on (default 5)
//! ```

use std::ops::{Range, RangeInclusive};

use dataplane::guard::GuardConfig;
use serde::Deserialize;
use toml::Spanned;

use super::ranges;

/// Largest `new_session_rate` (per worker per second).
pub const RATE: RangeInclusive<u32> = 0..=100_000_000;
/// High-water marks, percent.
pub const PERCENT: RangeInclusive<u32> = 1..=100;

/// The table as written.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFloodGuard {
    pub enabled: Option<bool>,
    pub new_session_rate: Option<Spanned<i64>>,
    pub session_high_water: Option<Spanned<i64>>,
    pub port_high_water: Option<Spanned<i64>>,
    pub half_open_timeout: Option<Spanned<i64>>,
}

/// Checks `raw`: a value out of range is refused with its place.
///
/// # Errors
/// The span of the bad value and why.
pub(super) fn flood_guard(raw: &RawFloodGuard) -> Result<GuardConfig, (Range<usize>, String)> {
    let d = GuardConfig::default();
    let num = |v: &Option<Spanned<i64>>,
               range: &RangeInclusive<u32>,
               what: &str,
               default: u32|
     -> Result<u32, (Range<usize>, String)> {
        let Some(v) = v else { return Ok(default) };
        u32::try_from(*v.get_ref())
            .ok()
            .filter(|x| range.contains(x))
            .ok_or_else(|| {
                (
                    v.span(),
                    format!(
                        "{what} must be {}..={}, not {}",
                        range.start(),
                        range.end(),
                        v.get_ref()
                    ),
                )
            })
    };
    let rate = num(
        &raw.new_session_rate,
        &RATE,
        "new_session_rate",
        d.new_session_rate,
    )?;
    let table = num(
        &raw.session_high_water,
        &PERCENT,
        "session_high_water (percent)",
        u32::from(d.session_high_water),
    )?;
    let ports = num(
        &raw.port_high_water,
        &PERCENT,
        "port_high_water (percent)",
        u32::from(d.port_high_water),
    )?;
    let half_open = num(
        &raw.half_open_timeout,
        &ranges::TIMEOUT_SECS,
        "half_open_timeout (seconds)",
        d.half_open_timeout_secs,
    )?;
    Ok(GuardConfig {
        enabled: raw.enabled.unwrap_or(d.enabled),
        new_session_rate: rate,
        session_high_water: table as u8,
        port_high_water: ports as u8,
        half_open_timeout_secs: half_open,
    })
}
