//! `[service.health_check]`: validation into a [`HealthCheck`].

use std::time::Duration;

use toml::Spanned;

use super::raw::RawHealthCheck;
use super::ConfigError;
use crate::health::{CheckKind, Connections, HealthCheck, OnFail};

type At<'a> = &'a dyn Fn(std::ops::Range<usize>, String) -> ConfigError;

fn secs(
    at: At<'_>,
    v: Option<&Spanned<toml::Value>>,
    default: f64,
    what: &str,
) -> Result<Duration, ConfigError> {
    let Some(v) = v else {
        return Ok(Duration::from_secs_f64(default));
    };
    let s = match v.get_ref() {
        toml::Value::Integer(i) => *i as f64,
        toml::Value::Float(f) => *f,
        other => {
            return Err(at(
                v.span(),
                format!("{what} must be a number of seconds, not {other}"),
            ))
        }
    };
    let allowed = (0.05..=3600.0).contains(&s) || (what == "delay" && s == 0.0);
    if !allowed {
        return Err(at(
            v.span(),
            format!("{what} must be between 0.05 and 3600 seconds, not {s}"),
        ));
    }
    Ok(Duration::from_secs_f64(s))
}

fn count(
    at: At<'_>,
    v: Option<&Spanned<i64>>,
    default: u32,
    what: &str,
) -> Result<u32, ConfigError> {
    let Some(v) = v else { return Ok(default) };
    u32::try_from(*v.get_ref())
        .ok()
        .filter(|n| (1..=100).contains(n))
        .ok_or_else(|| {
            at(
                v.span(),
                format!("{what} must be 1..=100, not {}", v.get_ref()),
            )
        })
}

/// Validates one service's health check.
///
/// # Errors
/// What is wrong and where.
pub(super) fn validate(
    at: At<'_>,
    raw: &Spanned<RawHealthCheck>,
) -> Result<HealthCheck, ConfigError> {
    let r = raw.get_ref();
    let kind = match r.kind.get_ref().as_str() {
        "tcp" => CheckKind::Tcp,
        "http" => CheckKind::Http {
            path: r.path.clone().unwrap_or_else(|| "/".into()),
            status: match &r.status {
                None => 200,
                Some(s) => u16::try_from(*s.get_ref())
                    .ok()
                    .filter(|c| (100..=599).contains(c))
                    .ok_or_else(|| {
                        at(
                            s.span(),
                            format!("status must be an HTTP status code, not {}", s.get_ref()),
                        )
                    })?,
            },
        },
        "script" => CheckKind::Script(
            r.script
                .as_ref()
                .map(|s| s.get_ref().clone())
                .filter(|s| !s.trim().is_empty())
                .ok_or_else(|| {
                    at(
                        r.kind.span(),
                        "kind \"script\" needs script = \"command\"".into(),
                    )
                })?,
        ),
        "udp" => CheckKind::Udp {
            payload: r
                .payload
                .as_ref()
                .map(|p| p.get_ref().as_bytes().to_vec())
                .unwrap_or_default(),
            expect: match &r.expect {
                None => None,
                Some(e) if e.get_ref().is_empty() => {
                    return Err(at(
                        e.span(),
                        "expect must not be empty (leave it out to accept any answer)".into(),
                    ))
                }
                Some(e) => Some(e.get_ref().as_bytes().to_vec()),
            },
        },
        "icmp" => CheckKind::Icmp,
        other => {
            return Err(at(
                r.kind.span(),
                format!("unknown health check kind {other:?} (tcp, http, udp, icmp, script)"),
            ))
        }
    };
    // Keys of one kind given to another are mistakes, not options.
    let only = |key: &str,
                span: Option<std::ops::Range<usize>>,
                kinds: &[&str]|
     -> Result<(), ConfigError> {
        match span {
            Some(sp) if !kinds.contains(&r.kind.get_ref().as_str()) => Err(at(
                sp,
                format!(
                    "{key} applies to kind {} only, not {:?}",
                    kinds.join(" or "),
                    r.kind.get_ref()
                ),
            )),
            _ => Ok(()),
        }
    };
    only("payload", r.payload.as_ref().map(Spanned::span), &["udp"])?;
    only("expect", r.expect.as_ref().map(Spanned::span), &["udp"])?;
    only("status", r.status.as_ref().map(Spanned::span), &["http"])?;
    only("script", r.script.as_ref().map(Spanned::span), &["script"])?;
    let interval = secs(at, r.interval.as_ref(), 2.0, "interval")?;
    let timeout = secs(at, r.timeout.as_ref(), 1.0, "timeout")?;
    let delay = secs(at, r.delay.as_ref(), 0.0, "delay")?;
    let on_fail = match r.on_fail.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("inhibit") => OnFail::Inhibit,
        Some("remove") => OnFail::Remove,
        Some(other) => {
            return Err(at(
                r.on_fail.as_ref().map_or(raw.span(), Spanned::span),
                format!("on_fail must be \"inhibit\" or \"remove\", not {other:?}"),
            ))
        }
    };
    let connections = match r.connections.as_ref().map(|s| s.get_ref().as_str()) {
        None | Some("keep") => Connections::Keep,
        Some("reset") => Connections::Reset,
        Some(other) => {
            return Err(at(
                r.connections.as_ref().map_or(raw.span(), Spanned::span),
                format!("connections must be \"keep\" or \"reset\", not {other:?}"),
            ))
        }
    };
    let sorry_server = match &r.sorry_server {
        None => None,
        Some(s) => Some(s.get_ref().parse().map_err(|_| {
            at(
                s.span(),
                format!(
                    "sorry_server must be IPv4:PORT or [IPv6]:PORT, not {:?}",
                    s.get_ref()
                ),
            )
        })?),
    };
    Ok(HealthCheck {
        kind,
        interval,
        timeout,
        rise: count(at, r.rise.as_ref(), 2, "rise")?,
        fall: count(at, r.fall.as_ref(), 2, "fall")?,
        delay,
        on_fail,
        connections,
        sorry_server,
    })
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{parse, ConfigError};
    use crate::health::{CheckKind, Connections};

    const LAB: &str = include_str!("../../../config/lab.toml");

    /// The lab config with `body` as the service's `[service.health_check]`.
    fn with_check(body: &str) -> String {
        LAB.replacen(
            "[[service.real_server]]",
            &format!("[service.health_check]\n{body}\n\n[[service.real_server]]"),
            1,
        )
    }

    fn err(body: &str) -> ConfigError {
        parse(Path::new("x.toml"), &with_check(body)).unwrap_err()
    }

    fn check(body: &str) -> crate::health::HealthCheck {
        let c = parse(Path::new("x.toml"), &with_check(body)).unwrap();
        c.health.values().next().unwrap().clone()
    }

    /// Line and column of `needle`'s first occurrence in the checked file.
    fn place(body: &str, needle: &str) -> (usize, usize) {
        let text = with_check(body);
        let line = text.lines().position(|l| l.contains(needle)).unwrap();
        let col = text.lines().nth(line).unwrap().find(needle).unwrap();
        (line + 1, col + 1)
    }

    #[test]
    fn udp_and_icmp_checks_parse() {
        let c = check("kind = \"udp\"\npayload = \"ping\"\nexpect = \"rs\"\ninterval = 0.5");
        assert_eq!(
            c.kind,
            CheckKind::Udp {
                payload: b"ping".to_vec(),
                expect: Some(b"rs".to_vec())
            }
        );
        assert_eq!(c.connections, Connections::Keep);
        let c = check("kind = \"udp\"");
        assert_eq!(
            c.kind,
            CheckKind::Udp {
                payload: Vec::new(),
                expect: None
            }
        );
        let c = check("kind = \"icmp\"\nconnections = \"reset\"");
        assert_eq!(
            (c.kind, c.connections),
            (CheckKind::Icmp, Connections::Reset)
        );
        assert_eq!(
            check("kind = \"tcp\"\nconnections = \"keep\"").connections,
            Connections::Keep
        );
    }

    #[test]
    fn bad_values_are_refused_where_they_stand() {
        for (body, needle, want) in [
            (
                "kind = \"udp\"\nexpect = \"\"",
                "expect",
                "expect must not be empty",
            ),
            (
                "kind = \"icmp\"\npayload = \"x\"",
                "payload",
                "payload applies to kind udp only",
            ),
            (
                "kind = \"tcp\"\nexpect = \"x\"",
                "expect",
                "expect applies to kind udp only",
            ),
            (
                "kind = \"udp\"\nstatus = 200",
                "status",
                "status applies to kind http only",
            ),
            (
                "kind = \"icmp\"\nconnections = \"drop\"",
                "\"drop\"",
                "connections must be \"keep\" or \"reset\"",
            ),
            (
                "kind = \"ping\"",
                "\"ping\"",
                "unknown health check kind \"ping\" (tcp, http, udp, icmp, script)",
            ),
            (
                "kind = \"udp\"\ninterval = 0",
                "interval = 0",
                "interval must be between",
            ),
            ("kind = \"udp\"\npayload = 7", "payload", "invalid type"),
        ] {
            let e = err(body);
            assert!(e.reason.contains(want), "{body}: {e}");
            let (line, col) = place(body, needle);
            assert_eq!(e.at.map(|a| a.0), Some(line), "{body}: {e}");
            if !want.contains("invalid type") {
                assert!(e.to_string().starts_with(&format!("x.toml:{line}:")), "{e}");
                assert!(
                    e.at.is_some_and(|a| a.1 >= col),
                    "{body}: {e} (key at column {col})"
                );
            }
        }
    }
}
