//! A service's ACL and limits as the operator writes them: in the file
//! (keys of `[[service]]`), on rvsadm's command line (`rvsadm acl`,
//! `rvsadm limit`) and in `--export-config`. One parser and one set of
//! ranges for all three, so what the file refuses is refused at run time
//! too. What they mean in the data plane: [`dataplane::acl`],
//! [`dataplane::limits`].
//!
//! ```toml
//! [[service]]
//! vip = "10.0.0.1:80"
//! acl = ["allow 10.1.2.0/24", "deny 10.0.0.0/8"]   # first match wins; none: allowed
//! max_conns = 10000            # concurrent connections to the service
//! max_conns_per_client = 20    # concurrent connections per client prefix
//! client_prefix_v4 = 24        # IPv4 clients counted by /24 (default 32)
//! client_prefix_v6 = 64        # IPv6 clients counted by /64 (default 64)
//! new_conn_rate = 50           # new connections a second per client prefix
//! new_conn_burst = 100         # at once (default: the rate)
//! icmp_rate = 1                # port unreachables a second per client (0: none)
//! icmp_burst = 6
//! ```

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use dataplane::acl::{Action, Prefix};
use dataplane::limits::Limits;

/// Largest value of a count or rate limit.
pub const LIMIT_MAX: u32 = 100_000_000;
/// Most ACL rules a service may have.
pub const RULES_MAX: usize = 1024;

/// One ACL rule as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AclRule {
    /// Allow or deny.
    pub action: Action,
    /// The client prefix.
    pub prefix: Prefix,
}

impl fmt::Display for AclRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.action.word(), self.prefix)
    }
}

/// `PREFIX` (`10.0.0.0/8`, `2001:db8::/32`, or an address alone: /32,
/// /128) for a service at `vip`.
///
/// # Errors
/// Not a prefix, host bits set, an IPv4-mapped IPv6 prefix, or a family
/// the service's clients never have.
pub fn parse_prefix(text: &str, vip: SocketAddr) -> Result<Prefix, String> {
    let prefix = parse_any_prefix(text)?;
    if prefix.addr().is_v4() != vip.is_ipv4() {
        return Err(format!(
            "{text:?} never matches: the clients of service {vip} are {}",
            if vip.is_ipv4() { "IPv4" } else { "IPv6" }
        ));
    }
    Ok(prefix)
}

/// `PREFIX` of either family (an address alone: /32, /128).
///
/// # Errors
/// Not a prefix, host bits set, an IPv4-mapped IPv6 prefix.
pub fn parse_any_prefix(text: &str) -> Result<Prefix, String> {
    let (a, len) = match text.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (text, None),
    };
    let ip: IpAddr = a
        .parse()
        .map_err(|_| format!("{text:?} is not an address prefix (10.0.0.0/8, 2001:db8::/32)"))?;
    if let IpAddr::V6(v6) = ip {
        if v6.to_ipv4_mapped().is_some() {
            return Err(format!(
                "{text:?}: write an IPv4-mapped prefix as IPv4 (a.b.c.d/len)"
            ));
        }
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    let len = match len {
        None => max,
        Some(l) => l
            .parse::<u8>()
            .ok()
            .filter(|l| *l <= max)
            .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?,
    };
    let prefix = Prefix::new(ip.into(), len)
        .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?;
    if prefix.addr().ip() != ip {
        return Err(format!(
            "{text:?} has host bits set (did you mean {prefix}?)"
        ));
    }
    Ok(prefix)
}

/// `allow PREFIX` or `deny PREFIX`, for a service at `vip`.
///
/// # Errors
/// What is wrong, in words.
pub fn parse_rule(text: &str, vip: SocketAddr) -> Result<AclRule, String> {
    let mut words = text.split_whitespace();
    let (Some(action), Some(prefix), None) = (words.next(), words.next(), words.next()) else {
        return Err(format!(
            "an ACL rule is \"allow PREFIX\" or \"deny PREFIX\", not {text:?}"
        ));
    };
    let action = Action::from_word(action)
        .ok_or_else(|| format!("an ACL rule starts with allow or deny, not {action:?}"))?;
    Ok(AclRule {
        action,
        prefix: parse_prefix(prefix, vip)?,
    })
}

/// The limit settings, by their names in the file and on rvsadm's command
/// line (with `-` for `_` there).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// `max_conns`.
    MaxConns,
    /// `max_conns_per_client`.
    MaxConnsPerClient,
    /// `client_prefix_v4`.
    ClientPrefixV4,
    /// `client_prefix_v6`.
    ClientPrefixV6,
    /// `new_conn_rate`.
    NewConnRate,
    /// `new_conn_burst`.
    NewConnBurst,
    /// `icmp_rate`.
    IcmpRate,
    /// `icmp_burst`.
    IcmpBurst,
}

impl Key {
    /// Every key, in the order listings show them.
    pub const ALL: [Self; 8] = [
        Self::MaxConns,
        Self::MaxConnsPerClient,
        Self::ClientPrefixV4,
        Self::ClientPrefixV6,
        Self::NewConnRate,
        Self::NewConnBurst,
        Self::IcmpRate,
        Self::IcmpBurst,
    ];

    /// The name in the file.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::MaxConns => "max_conns",
            Self::MaxConnsPerClient => "max_conns_per_client",
            Self::ClientPrefixV4 => "client_prefix_v4",
            Self::ClientPrefixV6 => "client_prefix_v6",
            Self::NewConnRate => "new_conn_rate",
            Self::NewConnBurst => "new_conn_burst",
            Self::IcmpRate => "icmp_rate",
            Self::IcmpBurst => "icmp_burst",
        }
    }

    /// The key named `name` (`_` or `-` between words).
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        let n = name.replace('-', "_");
        Self::ALL.into_iter().find(|k| k.name() == n)
    }

    /// Its value in `l`.
    #[must_use]
    pub fn get(self, l: &Limits) -> u32 {
        match self {
            Self::MaxConns => l.max_conns,
            Self::MaxConnsPerClient => l.max_conns_per_client,
            Self::ClientPrefixV4 => u32::from(l.client_prefix_v4),
            Self::ClientPrefixV6 => u32::from(l.client_prefix_v6),
            Self::NewConnRate => l.rate,
            Self::NewConnBurst => l.burst,
            Self::IcmpRate => l.icmp_rate,
            Self::IcmpBurst => l.icmp_burst,
        }
    }

    /// Sets it in `l` to `v`, range-checked.
    ///
    /// # Errors
    /// The range and the value.
    pub fn set(self, l: &mut Limits, v: i64) -> Result<(), String> {
        let name = self.name();
        let prefix = |max: u8| {
            u8::try_from(v)
                .ok()
                .filter(|x| *x <= max)
                .ok_or_else(|| format!("{name} must be 0..={max}, not {v}"))
        };
        let count = |min: u32| {
            u32::try_from(v)
                .ok()
                .filter(|x| (min..=LIMIT_MAX).contains(x))
                .ok_or_else(|| format!("{name} must be {min}..={LIMIT_MAX}, not {v}"))
        };
        match self {
            Self::MaxConns => l.max_conns = count(0)?,
            Self::MaxConnsPerClient => l.max_conns_per_client = count(0)?,
            Self::ClientPrefixV4 => l.client_prefix_v4 = prefix(32)?,
            Self::ClientPrefixV6 => l.client_prefix_v6 = prefix(128)?,
            Self::NewConnRate => l.rate = count(0)?,
            Self::NewConnBurst => l.burst = count(0)?,
            Self::IcmpRate => l.icmp_rate = count(0)?,
            Self::IcmpBurst => l.icmp_burst = count(1)?,
        }
        Ok(())
    }
}

/// Reads a `[[service]]`'s `acl` and limit keys into `options`: a bad
/// rule or value is refused with its place in the file.
///
/// # Errors
/// The [`super::ConfigError`] at the bad rule or value.
pub(super) fn validate(
    cx: &super::validate::Ctx<'_>,
    s: &super::raw::RawService,
    vip: SocketAddr,
    options: &mut super::ServiceOptions,
) -> Result<(), super::ConfigError> {
    for (i, r) in s.acl.iter().enumerate() {
        if i == RULES_MAX {
            return Err(cx.at(r, format!("a service has at most {RULES_MAX} ACL rules")));
        }
        options
            .acl
            .push(parse_rule(r.get_ref(), vip).map_err(|e| cx.at(r, e))?);
    }
    let keys = [
        (Key::MaxConns, &s.max_conns),
        (Key::MaxConnsPerClient, &s.max_conns_per_client),
        (Key::ClientPrefixV4, &s.client_prefix_v4),
        (Key::ClientPrefixV6, &s.client_prefix_v6),
        (Key::NewConnRate, &s.new_conn_rate),
        (Key::NewConnBurst, &s.new_conn_burst),
        (Key::IcmpRate, &s.icmp_rate),
        (Key::IcmpBurst, &s.icmp_burst),
    ];
    for (key, v) in keys {
        if let Some(v) = v {
            key.set(&mut options.limits, *v.get_ref())
                .map_err(|e| cx.at(v, e))?;
        }
    }
    Ok(())
}

/// Writes a service's `acl` and the limits that differ from the
/// defaults, as `[[service]]` keys (`--export-config`).
pub(super) fn export(out: &mut String, opts: &super::ServiceOptions) {
    use std::fmt::Write as _;
    if !opts.acl.is_empty() {
        let rules: Vec<String> = opts.acl.iter().map(|r| format!("\"{r}\"")).collect();
        let _ = writeln!(out, "acl = [{}]", rules.join(", "));
    }
    let defaults = Limits::default();
    for key in Key::ALL {
        let v = key.get(&opts.limits);
        if v != key.get(&defaults) {
            let _ = writeln!(out, "{} = {v}", key.name());
        }
    }
}

/// `limits` with control's counter indices cleared (what the config keeps).
#[must_use]
pub fn plain(limits: Limits) -> Limits {
    Limits {
        counters: Limits::default().counters,
        ..limits
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4() -> SocketAddr {
        "10.0.0.1:80".parse().unwrap()
    }
    fn v6() -> SocketAddr {
        "[2001:db8::1]:80".parse().unwrap()
    }

    #[test]
    fn rules_parse_and_print() {
        let r = parse_rule("deny 10.0.0.0/8", v4()).unwrap();
        assert_eq!(r.to_string(), "deny 10.0.0.0/8");
        assert_eq!(
            parse_rule("allow  192.0.2.7", v4()).unwrap().to_string(),
            "allow 192.0.2.7/32"
        );
        assert_eq!(
            parse_rule("allow 2001:db8:1::/48", v6())
                .unwrap()
                .to_string(),
            "allow 2001:db8:1::/48"
        );
        assert_eq!(
            parse_rule("deny ::/0", v6()).unwrap().to_string(),
            "deny ::/0"
        );
    }

    #[test]
    fn bad_rules_say_why() {
        let e = |t: &str, vip| parse_rule(t, vip).unwrap_err();
        assert!(e("drop 10.0.0.0/8", v4()).contains("allow or deny"));
        assert!(e("deny", v4()).contains("\"allow PREFIX\""));
        assert!(e("deny 10.0.0.0/33", v4()).contains("0..=32"));
        assert!(e("deny 10.1.0.0/8", v4()).contains("did you mean 10.0.0.0/8"));
        assert!(e("deny 10.0.0.256/32", v4()).contains("not an address prefix"));
        assert!(e("deny 2001:db8::/32", v4()).contains("are IPv4"));
        assert!(e("deny 10.0.0.0/8", v6()).contains("are IPv6"));
        assert!(e("deny ::ffff:10.0.0.0/104", v6()).contains("as IPv4"));
    }

    #[test]
    fn limits_are_range_checked() {
        let mut l = Limits::default();
        Key::from_name("max-conns")
            .unwrap()
            .set(&mut l, 10)
            .unwrap();
        assert_eq!(l.max_conns, 10);
        assert!(Key::ClientPrefixV4
            .set(&mut l, 33)
            .unwrap_err()
            .contains("0..=32"));
        assert!(Key::ClientPrefixV6.set(&mut l, 64).is_ok());
        assert!(Key::MaxConns.set(&mut l, -1).is_err());
        assert!(Key::IcmpBurst.set(&mut l, 0).unwrap_err().contains("1..="));
        assert!(Key::from_name("max_con").is_none());
    }
}
