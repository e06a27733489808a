//! `[service.health_check]`: validation into a [`HealthCheck`].

use std::time::Duration;

use toml::Spanned;

use super::raw::RawHealthCheck;
use super::ConfigError;
use crate::health::{CheckKind, HealthCheck, OnFail};

type At<'a> = &'a dyn Fn(std::ops::Range<usize>, String) -> ConfigError;

fn secs(at: At<'_>, v: Option<&Spanned<toml::Value>>, default: f64, what: &str) -> Result<Duration, ConfigError> {
    let Some(v) = v else { return Ok(Duration::from_secs_f64(default)) };
    let s = match v.get_ref() {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        other => return Err(at(v.span(), format!("{what} must be a number of seconds, not {other}"))),
    };
    let allowed = (0.05..=3600.0).contains(&s) || (what == "delay" && s == 0.0);
    if !allowed {
        return Err(at(v.span(), format!("{what} must be between 0.05 and 3600 seconds, not {s}")));
    }
    Ok(Duration::from_secs_f64(s))
}

fn count(at: At<'_>, v: Option<&Spanned<i64>>, default: u32, what: &str) -> Result<u32, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    u32::try_from(*v.get_ref()).ok().filter(|n| (1..=100).contains(n)).ok_or_else(|| at(v.span(), format!("{what} must be 1..=100, not {}", v.get_ref())))
}

/// Validates one service's health check.
///
/// # Errors
/// What is wrong and where.
pub(super) fn validate(at: At<'_>, raw: &Spanned<RawHealthCheck>) -> Result<HealthCheck, ConfigError> {
    let r = raw.get_ref();
    let kind = match r.kind.get_ref().as_str() {
        "tcp" => CheckKind::Tcp,
        "http" => CheckKind::Http {
            path: r.path.clone().unwrap_or_else(|| "/".into()),
            status: match &r.status {
                None => 200,
                Some(s) => u16::try_from(*s.get_ref()).ok().filter(|c| (100..=599).contains(c)).ok_or_else(|| at(s.span(), format!("status must be an HTTP status code, not {}", s.get_ref())))?,
            },
        },
        "script" => CheckKind::Script(
            r.script.as_ref().map(|s| s.get_ref().clone()).filter(|s| !s.trim().is_empty()).ok_or_else(|| at(r.kind.span(), "kind \"script\" needs script = \"command\"".into()))?,
        ),
        "udp" | "icmp" => return Err(at(r.kind.span(), format!("health check kind {:?} is not supported yet (tcp, http, script)", r.kind.get_ref()))),
        other => return Err(at(r.kind.span(), format!("unknown health check kind {other:?} (tcp, http, script)"))),
    };
    let interval = secs(at, r.interval.as_ref(), 2.0, "interval")?;
    let timeout = secs(at, r.timeout.as_ref(), 1.0, "timeout")?;
    let delay = secs(at, r.delay.as_ref(), 0.0, "delay")?;
    let on_fail = match r.on_fail.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("inhibit") => OnFail::Inhibit,
        Some("remove") => OnFail::Remove,
        Some(other) => return Err(at(r.on_fail.as_ref().map_or(raw.span(), Spanned::span), format!("on_fail must be \"inhibit\" or \"remove\", not {other:?}"))),
    };
    let sorry_server = match &r.sorry_server {
        None => None,
        Some(s) => Some(s.get_ref().parse().map_err(|_| at(s.span(), format!("sorry_server must be IPv4:PORT, not {:?}", s.get_ref())))?),
    };
    Ok(HealthCheck {
        kind,
        interval,
        timeout,
        rise: count(at, r.rise.as_ref(), 2, "rise")?,
        fall: count(at, r.fall.as_ref(), 2, "fall")?,
        delay,
        on_fail,
        sorry_server,
    })
}
