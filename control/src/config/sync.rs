//! `[sync]`: connection sync between appliances (ipvsadm's
//! `--start-daemon`) and following the kernel's addresses for active/backup
//! failover. See `docs/sync.md`.
//!
//! ```toml
//! [sync]
//! roles = ["master", "backup"]   # the daemons to start (none: sync off)
//! syncid = 7                     # --syncid (0..=255; a backup with 0 takes all)
//! interface = "dpdk0"            # --mcast-interface: an rvs interface (its exception-path TAP)
//! group = "224.0.0.81"           # --mcast-group (IPv4, or IPv6 such as "ff02::81")
//! port = 8848                    # --mcast-port
//! ttl = 1                        # --mcast-ttl
//! maxlen = 1472                  # --sync-maxlen (default: from the interface's MTU)
//! peers = ["10.77.0.3"]          # unicast instead of multicast; a backup takes only these
//!                                # (IPv4 or IPv6, all of one family)
//! resync_interval = 10           # seconds between full resyncs (0: off)
//! follow_kernel_addresses = true # VIPs are served only while the kernel holds them
//! # The kernel's sync sysctls (/proc/sys/net/ipv4/vs/sync_*), with its defaults:
//! sync_threshold = [3, 50]       # sent on the 3rd inbound packet, then every 50 (0: once)
//! sync_refresh_period = 0        # seconds; >0: sent again only when the expiry moved that much
//! sync_retries = 0               # 0..=3 extra sends with a refresh period
//! sync_persist_mode = false      # connections under a persistence template: the template only
//! sync_qlen_max = 4096           # the master's queue of datagrams (the kernel: memory / 32)
//! sync_sock_size = 0             # SO_SNDBUF (master) / SO_RCVBUF (backup) bytes; 0: the system's
//! ```

use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Deserialize;
use toml::Spanned;

use super::ConfigError;

/// The `[sync]` table as the file has it.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSync {
    #[serde(default)]
    pub roles: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub syncid: Option<Spanned<i64>>,
    #[serde(default)]
    pub interface: Option<Spanned<String>>,
    #[serde(default)]
    pub group: Option<Spanned<String>>,
    #[serde(default)]
    pub port: Option<Spanned<i64>>,
    #[serde(default)]
    pub ttl: Option<Spanned<i64>>,
    #[serde(default)]
    pub maxlen: Option<Spanned<i64>>,
    #[serde(default)]
    pub peers: Vec<Spanned<String>>,
    #[serde(default)]
    pub resync_interval: Option<Spanned<i64>>,
    #[serde(default)]
    pub follow_kernel_addresses: Option<bool>,
    #[serde(default)]
    pub sync_threshold: Option<Spanned<Vec<i64>>>,
    #[serde(default)]
    pub sync_refresh_period: Option<Spanned<i64>>,
    #[serde(default)]
    pub sync_retries: Option<Spanned<i64>>,
    #[serde(default)]
    pub sync_persist_mode: Option<bool>,
    #[serde(default)]
    pub sync_qlen_max: Option<Spanned<i64>>,
    #[serde(default)]
    pub sync_sock_size: Option<Spanned<i64>>,
}

/// The sync daemons' settings (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConfig {
    /// Run the master daemon (send this box's connections).
    pub master: bool,
    /// Run the backup daemon (install a master's connections).
    pub backup: bool,
    /// `--syncid`.
    pub sync_id: u8,
    /// `--mcast-interface`: an rvs interface's name (`None`: the first one).
    pub interface: Option<String>,
    /// `--mcast-group` (IPv4 or IPv6).
    pub group: IpAddr,
    /// `--mcast-port`.
    pub port: u16,
    /// `--mcast-ttl`.
    pub ttl: u8,
    /// `--sync-maxlen` (`None`: the kernel's default for the role).
    pub maxlen: Option<u16>,
    /// Unicast peers: a master sends to each, a backup takes only these.
    /// Empty: multicast to `group`, taken from anyone.
    pub peers: Vec<IpAddr>,
    /// Seconds between a master's full resyncs (every session sent); 0: none.
    pub resync_interval: u32,
    /// VIPs and local addresses are owned only while the kernel has them
    /// on the exception-path interface (keepalived puts them there).
    pub follow_kernel_addresses: bool,
    /// `sync_threshold`'s first value: the inbound packet that sends.
    pub threshold: u32,
    /// `sync_threshold`'s second value (the kernel's `sync_period`).
    pub period: u32,
    /// `sync_refresh_period`, seconds (0: off).
    pub refresh_period_s: u32,
    /// `sync_retries` (0..=3).
    pub retries: u8,
    /// `sync_persist_mode`.
    pub persist_mode: bool,
    /// `sync_qlen_max`: datagrams the master queues at most.
    pub qlen_max: u32,
    /// `sync_sock_size`: socket buffer bytes (0: the system's default).
    pub sock_size: u32,
}

/// Default seconds between full resyncs.
pub const RESYNC_INTERVAL: u32 = 10;

impl Default for SyncConfig {
    fn default() -> Self {
        Self {
            master: false,
            backup: false,
            sync_id: 0,
            interface: None,
            group: dataplane_group(),
            port: 8848,
            ttl: 1,
            maxlen: None,
            peers: Vec::new(),
            resync_interval: RESYNC_INTERVAL,
            follow_kernel_addresses: false,
            threshold: 3,
            period: 50,
            refresh_period_s: 0,
            retries: 0,
            persist_mode: false,
            qlen_max: 4096,
            sock_size: 0,
        }
    }
}

fn dataplane_group() -> IpAddr {
    IpAddr::V4(std::net::Ipv4Addr::new(224, 0, 0, 81))
}

impl SyncConfig {
    /// True when any daemon runs.
    #[must_use]
    pub fn enabled(&self) -> bool {
        self.master || self.backup
    }

    /// The workers' send policy from the sysctl keys.
    #[must_use]
    pub fn policy(&self) -> dataplane::sync_policy::SyncPolicy {
        dataplane::sync_policy::SyncPolicy {
            threshold: self.threshold,
            period: self.period,
            refresh_period_ms: u64::from(self.refresh_period_s) * 1000,
            retries: self.retries,
            persist_mode: self.persist_mode,
        }
    }

    /// True when sync speaks IPv6: to IPv6 peers, or without peers to an
    /// IPv6 group.
    #[must_use]
    pub fn ipv6(&self) -> bool {
        self.peers
            .first()
            .map_or(self.group.is_ipv6(), std::net::IpAddr::is_ipv6)
    }
}

/// Validates `[sync]` against the interfaces' names.
pub(super) fn validate(
    raw: &RawSync,
    interfaces: &[String],
    at: &dyn Fn(std::ops::Range<usize>, String) -> ConfigError,
) -> Result<SyncConfig, ConfigError> {
    let mut c = SyncConfig::default();
    let int = |v: &Spanned<i64>, lo: i64, hi: i64, what: &str| {
        let x = *v.get_ref();
        if (lo..=hi).contains(&x) {
            Ok(x)
        } else {
            Err(at(
                v.span(),
                format!("sync {what} must be {lo}..={hi}, not {x}"),
            ))
        }
    };
    if let Some(r) = &raw.roles {
        for role in r.get_ref() {
            match role.as_str() {
                "master" => c.master = true,
                "backup" => c.backup = true,
                other => {
                    return Err(at(
                        r.span(),
                        format!("sync roles are \"master\" and \"backup\", not {other:?}"),
                    ))
                }
            }
        }
    }
    if let Some(v) = &raw.syncid {
        c.sync_id = int(v, 0, 255, "syncid")? as u8;
    }
    if let Some(v) = &raw.interface {
        if !interfaces.iter().any(|i| i == v.get_ref()) {
            return Err(at(
                v.span(),
                format!(
                    "sync interface {:?} is not one of the [[interface]]s ({})",
                    v.get_ref(),
                    interfaces.join(", ")
                ),
            ));
        }
        c.interface = Some(v.get_ref().clone());
    }
    if let Some(v) = &raw.group {
        c.group = match v.get_ref().parse::<IpAddr>() {
            Ok(g) if g.is_multicast() => g,
            _ => {
                return Err(at(
                    v.span(),
                    format!(
                        "invalid mcast-group {:?} (an IPv4 or IPv6 multicast address)",
                        v.get_ref()
                    ),
                ))
            }
        };
    }
    if let Some(v) = &raw.port {
        c.port = int(v, 1, 65535, "port")? as u16;
    }
    if let Some(v) = &raw.ttl {
        c.ttl = int(v, 1, 255, "ttl")? as u8;
    }
    if let Some(v) = &raw.maxlen {
        c.maxlen = Some(int(v, 1, 65535 - 20 - 8, "maxlen")? as u16);
    }
    for p in &raw.peers {
        match p.get_ref().parse::<IpAddr>() {
            Ok(ip) if !ip.is_multicast() && !ip.is_unspecified() => {
                if c.peers.first().is_some_and(|f| f.is_ipv6() != ip.is_ipv6()) {
                    return Err(at(
                        p.span(),
                        "sync peers must all be IPv4 or all IPv6 (one socket speaks one family)"
                            .into(),
                    ));
                }
                c.peers.push(ip);
            }
            _ => {
                return Err(at(
                    p.span(),
                    format!(
                        "sync peer must be a unicast IPv4 or IPv6 address, not {:?}",
                        p.get_ref()
                    ),
                ))
            }
        }
    }
    if let Some(v) = &raw.resync_interval {
        c.resync_interval = int(v, 0, 86_400, "resync_interval")? as u32;
    }
    c.follow_kernel_addresses = raw.follow_kernel_addresses.unwrap_or(false);
    if let Some(v) = &raw.sync_threshold {
        // The kernel's proc_do_sync_threshold: two values, the threshold
        // below the period unless the period is 0.
        match v.get_ref().as_slice() {
            &[t, p] if (0..=i64::from(u32::MAX)).contains(&t)
                && (0..=i64::from(u32::MAX)).contains(&p)
                && (t < p || p == 0) =>
            {
                (c.threshold, c.period) = (t as u32, p as u32);
            }
            _ => {
                return Err(at(
                    v.span(),
                    format!(
                        "sync_threshold is [threshold, period] with threshold < period (or period 0), not {:?}",
                        v.get_ref()
                    ),
                ))
            }
        }
    }
    if let Some(v) = &raw.sync_refresh_period {
        c.refresh_period_s = int(v, 0, 86_400, "sync_refresh_period")? as u32;
    }
    if let Some(v) = &raw.sync_retries {
        c.retries = int(v, 0, 3, "sync_retries")? as u8;
    }
    c.persist_mode = raw.sync_persist_mode.unwrap_or(false);
    if let Some(v) = &raw.sync_qlen_max {
        c.qlen_max = int(v, 1, 1 << 24, "sync_qlen_max")? as u32;
    }
    if let Some(v) = &raw.sync_sock_size {
        c.sock_size = int(v, 0, 1 << 30, "sync_sock_size")? as u32;
    }
    Ok(c)
}

/// `[sync]` as config TOML (`--export-config`), every key written.
#[must_use]
pub fn toml(c: &SyncConfig) -> String {
    let mut roles = Vec::new();
    if c.master {
        roles.push("\"master\"");
    }
    if c.backup {
        roles.push("\"backup\"");
    }
    let mut out = String::from("\n[sync]\n");
    let _ = writeln!(out, "roles = [{}]", roles.join(", "));
    let _ = writeln!(out, "syncid = {}", c.sync_id);
    if let Some(i) = &c.interface {
        let _ = writeln!(out, "interface = {i:?}");
    }
    let _ = writeln!(out, "group = \"{}\"", c.group);
    let _ = writeln!(out, "port = {}", c.port);
    let _ = writeln!(out, "ttl = {}", c.ttl);
    if let Some(m) = c.maxlen {
        let _ = writeln!(out, "maxlen = {m}");
    }
    let peers: Vec<String> = c.peers.iter().map(|p| format!("\"{p}\"")).collect();
    let _ = writeln!(out, "peers = [{}]", peers.join(", "));
    let _ = writeln!(out, "resync_interval = {}", c.resync_interval);
    let _ = writeln!(
        out,
        "follow_kernel_addresses = {}",
        c.follow_kernel_addresses
    );
    let _ = writeln!(out, "sync_threshold = [{}, {}]", c.threshold, c.period);
    let _ = writeln!(out, "sync_refresh_period = {}", c.refresh_period_s);
    let _ = writeln!(out, "sync_retries = {}", c.retries);
    let _ = writeln!(out, "sync_persist_mode = {}", c.persist_mode);
    let _ = writeln!(out, "sync_qlen_max = {}", c.qlen_max);
    let _ = writeln!(out, "sync_sock_size = {}", c.sock_size);
    out
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    const LAB: &str = include_str!("../../../config/lab.toml");

    fn with(sync: &str) -> Result<SyncConfig, ConfigError> {
        parse(Path::new("x.toml"), &format!("{LAB}\n[sync]\n{sync}\n")).map(|c| c.sync)
    }

    #[test]
    fn defaults_are_the_kernels_and_sync_is_off() {
        let c = parse(Path::new("x.toml"), LAB).unwrap().sync;
        assert!(!c.enabled());
        assert_eq!(c.policy(), dataplane::sync_policy::SyncPolicy::default());
        assert_eq!(
            (c.retries, c.persist_mode, c.qlen_max, c.sock_size),
            (0, false, 4096, 0)
        );
        assert_eq!(
            (c.sync_id, c.group, c.port, c.ttl, c.maxlen),
            (0, "224.0.0.81".parse::<IpAddr>().unwrap(), 8848, 1, None)
        );
    }

    #[test]
    fn every_key_and_the_export_round_trip() {
        let c = with(
            "roles = [\"master\", \"backup\"]\nsyncid = 7\ninterface = \"dpdk0\"\n\
             group = \"224.0.0.99\"\nport = 9000\nttl = 2\nmaxlen = 1400\n\
             peers = [\"10.77.0.3\"]\nresync_interval = 0\nfollow_kernel_addresses = true\n\
             sync_threshold = [2, 20]\nsync_refresh_period = 30\nsync_retries = 2\n\
             sync_persist_mode = true\nsync_qlen_max = 100\nsync_sock_size = 262144",
        )
        .unwrap();
        assert!(c.master && c.backup && c.follow_kernel_addresses);
        let p = c.policy();
        assert_eq!(
            (
                p.threshold,
                p.period,
                p.refresh_period_ms,
                p.retries,
                p.persist_mode
            ),
            (2, 20, 30_000, 2, true)
        );
        assert_eq!((c.qlen_max, c.sock_size), (100, 262_144));
        assert_eq!(c.peers, vec!["10.77.0.3".parse::<IpAddr>().unwrap()]);
        let text = toml(&c);
        let again = with(text.trim_start().trim_start_matches("[sync]\n")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn ipv6_groups_and_peers_are_taken() {
        let c = with("roles = [\"backup\"]\ngroup = \"ff02::81\"").unwrap();
        assert!(c.ipv6());
        assert_eq!(c.group, "ff02::81".parse::<IpAddr>().unwrap());
        let c = with("peers = [\"fd77::3\", \"fd77::4\"]").unwrap();
        assert!(c.ipv6() && c.peers.len() == 2);
        assert!(!with("").unwrap().ipv6());
        let text = toml(&c);
        let again = with(text.trim_start().trim_start_matches("[sync]\n")).unwrap();
        assert_eq!(again, c);
    }

    #[test]
    fn bad_values_name_their_line() {
        for (line, want) in [
            ("roles = [\"primary\"]", "sync roles are"),
            ("syncid = 256", "sync syncid must be 0..=255"),
            ("interface = \"eth9\"", "not one of the [[interface]]s"),
            ("group = \"10.0.0.1\"", "invalid mcast-group"),
            ("group = \"fd00::1\"", "invalid mcast-group"),
            ("port = 0", "sync port must be 1..=65535"),
            ("ttl = 0", "sync ttl must be 1..=255"),
            ("maxlen = 70000", "sync maxlen must be"),
            ("peers = [\"224.0.0.1\"]", "unicast IPv4 or IPv6"),
            (
                "peers = [\"10.0.0.1\", \"fd00::1\"]",
                "must all be IPv4 or all IPv6",
            ),
            ("sync_threshold = [50, 3]", "threshold < period"),
            ("sync_threshold = [3]", "sync_threshold is"),
            ("sync_retries = 4", "sync sync_retries must be 0..=3"),
            ("sync_qlen_max = 0", "sync_qlen_max must be"),
            ("bogus = 1", "unknown field"),
        ] {
            let e = with(line).unwrap_err();
            let at = LAB.lines().count() + 3;
            assert_eq!(e.at.map(|a| a.0), Some(at), "{line}: {e}");
            assert!(e.reason.contains(want), "{line}: {e}");
        }
    }
}
