//! The running services back into config TOML (`rvsadm --export-config`):
//! the `[[service]]` tables and `[timeouts]`, the part of the file that
//! `rvsadm -A/-E/-D/-a/-e/-d/-P/-Q/--set` change at run time and a reload
//! replaces. Put in place of those sections of the file, the text reloads
//! to the same services, real servers and timeouts (round trip tested here
//! and end to end in `tests/e2e/test_rvsadm.py`).
//!
//! Every key is written out, defaults included, so the text does not depend
//! on defaults staying what they are; timeouts are written only where they
//! differ from IPVS's defaults. A service without real servers (`-A` and no
//! `-a` yet) cannot be written: a config file must give each service a
//! server. It is left out with a `# not exported:` comment saying so.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::time::Duration;

use dataplane::session::{ClientAddress, TcpState, Timeouts};

use super::{forward_name, Config, Persistence};
use crate::health::{CheckKind, OnFail};

/// The `[timeouts]` keys, in the order the reference lists them.
const TCP_KEYS: [(&str, TcpState); 10] = [
    ("tcp_established", TcpState::Established),
    ("tcp_syn_sent", TcpState::SynSent),
    ("tcp_syn_recv", TcpState::SynRecv),
    ("tcp_fin_wait", TcpState::FinWait),
    ("tcp_time_wait", TcpState::TimeWait),
    ("tcp_close", TcpState::Close),
    ("tcp_close_wait", TcpState::CloseWait),
    ("tcp_last_ack", TcpState::LastAck),
    ("tcp_listen", TcpState::Listen),
    ("tcp_synack", TcpState::SynAck),
];

/// Marks a service the export had to leave out (rvsadm repeats these
/// lines on stderr).
pub const NOT_EXPORTED: &str = "# not exported: ";

/// `config`'s services and timeouts as config TOML.
#[must_use]
pub fn services_toml(config: &Config) -> String {
    let mut out = String::from(
        "# Services, mark rules and timeouts of a running rvsd (rvsadm --export-config).\n\
         # Use them in place of the [[mark]], [[service]] and [timeouts] sections of its config file.\n",
    );
    super::marks::export(&mut out, &config.marks);
    for s in &config.services {
        let proto = if s.proto == 17 { "udp" } else { "tcp" };
        let fwmark = super::marks::mark_of(s.vip, s.proto);
        if s.real_servers.is_empty() {
            let _ = writeln!(
                out,
                "\n{NOT_EXPORTED}{}: a service needs a real server in a config file (add one with rvsadm -a)",
                match fwmark {
                    Some((m, false)) => format!("FWM {m}"),
                    Some((m, true)) => format!("FWM {m} IPv6"),
                    None => format!("{} {}", proto.to_uppercase(), s.vip),
                }
            );
            continue;
        }
        let opts = config
            .service_options(s.vip, s.proto)
            .cloned()
            .unwrap_or_default();
        out.push_str("\n[[service]]\n");
        match fwmark {
            Some((m, v6)) => {
                let _ = writeln!(out, "fwmark = {m}");
                if v6 {
                    out.push_str("ipv6 = true\n");
                }
            }
            None => {
                let _ = writeln!(out, "vip = {}", quote(&s.vip.to_string()));
                let _ = writeln!(out, "protocol = {}", quote(proto));
            }
        }
        let _ = writeln!(out, "scheduler = {}", quote(s.scheduler.name()));
        let flags = opts.sched_flags.names(s.scheduler);
        if !flags.is_empty() {
            let _ = writeln!(
                out,
                "sched_flags = [{}]",
                flags
                    .iter()
                    .map(|f| quote(f))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        if let Some(m) = opts.mh_table_size {
            let _ = writeln!(out, "mh_table_size = {m}");
        }
        if let Some(p) = opts.persistence {
            let _ = writeln!(out, "persistent = {}", p.timeout_secs);
            if p.netmask != Persistence::DEFAULT_NETMASK {
                let _ = writeln!(
                    out,
                    "persistent_netmask = {}",
                    quote(&Ipv4Addr::from(p.netmask).to_string())
                );
            }
            if p.prefix6 != 128 {
                let _ = writeln!(out, "persistent_netmask = {}", p.prefix6);
            }
        }
        if opts.ops {
            let _ = writeln!(out, "ops = true");
        }
        if opts.client_address != ClientAddress::None {
            let _ = writeln!(
                out,
                "client_address = {}",
                quote(opts.client_address.word())
            );
        }
        super::access::export(&mut out, &opts);
        if opts.syn_proxy {
            let _ = writeln!(out, "syn_proxy = true");
        }
        let _ = writeln!(out, "forward = {}", quote(forward_name(s.forward)));
        let laddrs: Vec<String> = s
            .local_addresses
            .iter()
            .map(|a| quote(&a.to_string()))
            .collect();
        let _ = writeln!(out, "local_addresses = [{}]", laddrs.join(", "));
        if let Some(h) = config.health.get(&(s.vip, s.proto)) {
            out.push_str("\n[service.health_check]\n");
            match &h.kind {
                CheckKind::Tcp => out.push_str("kind = \"tcp\"\n"),
                CheckKind::Http { path, status } => {
                    let _ = writeln!(
                        out,
                        "kind = \"http\"\npath = {}\nstatus = {status}",
                        quote(path)
                    );
                }
                CheckKind::Script(script) => {
                    let _ = writeln!(out, "kind = \"script\"\nscript = {}", quote(script));
                }
                CheckKind::Udp { payload, expect } => {
                    let _ = writeln!(
                        out,
                        "kind = \"udp\"\npayload = {}",
                        quote(&String::from_utf8_lossy(payload))
                    );
                    if let Some(e) = expect {
                        let _ = writeln!(out, "expect = {}", quote(&String::from_utf8_lossy(e)));
                    }
                }
                CheckKind::Icmp => out.push_str("kind = \"icmp\"\n"),
            }
            let _ = writeln!(
                out,
                "interval = {}\ntimeout = {}\ndelay = {}",
                secs(h.interval),
                secs(h.timeout),
                secs(h.delay)
            );
            let _ = writeln!(out, "rise = {}\nfall = {}", h.rise, h.fall);
            let on_fail = match h.on_fail {
                OnFail::Inhibit => "inhibit",
                OnFail::Remove => "remove",
            };
            let _ = writeln!(out, "on_fail = {}", quote(on_fail));
            if h.connections == crate::health::Connections::Reset {
                out.push_str("connections = \"reset\"\n");
            }
            if let Some(sorry) = h.sorry_server {
                let _ = writeln!(out, "sorry_server = {}", quote(&sorry.to_string()));
            }
        }
        for r in &s.real_servers {
            out.push_str("\n[[service.real_server]]\n");
            // A fwmark service's server without a port: the address alone.
            let addr = if fwmark.is_some() && r.addr.port() == 0 && r.addr.is_ipv4() {
                r.addr.ip().to_string()
            } else {
                r.addr.to_string()
            };
            let _ = writeln!(out, "address = {}", quote(&addr));
            let _ = writeln!(out, "weight = {}", r.weight);
            let forward = opts.forward_of(r.addr, s.forward);
            if forward != s.forward {
                let _ = writeln!(out, "forward = {}", quote(forward_name(forward)));
            }
            if let Some(t) = opts.thresholds.get(&r.addr) {
                let _ = writeln!(
                    out,
                    "upper_threshold = {}\nlower_threshold = {}",
                    t.upper, t.lower
                );
            }
        }
    }
    out.push_str(&timeouts_toml(&config.timeouts));
    out
}

/// `[timeouts]` with the values that differ from IPVS's defaults.
fn timeouts_toml(t: &Timeouts) -> String {
    let default = Timeouts::default();
    let mut out = String::from("\n[timeouts]\n");
    let mut any = false;
    for (key, state) in TCP_KEYS {
        if t.tcp(state) != default.tcp(state) {
            let _ = writeln!(out, "{key} = {}", t.tcp(state));
            any = true;
        }
    }
    if t.udp_secs != default.udp_secs {
        let _ = writeln!(out, "udp = {}", t.udp_secs);
        any = true;
    }
    if !any {
        out.push_str("# all IPVS's defaults\n");
    }
    out
}

/// A TOML basic string.
fn quote(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Seconds as the config reads them: a whole number, or a fraction.
fn secs(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{:?}", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    const BASE: &str = r#"
[dpdk]
no_huge = true

[[interface]]
name = "lb0"
device = "net_af_packet0,iface=veth0"
address = "10.77.0.2/24"
"#;

    const SERVICES: &str = r#"
[[service]]
vip = "10.77.0.100:80"
scheduler = "sh"
sched_flags = ["sh-fallback", "sh-port"]
persistent = 600
persistent_netmask = "255.255.255.0"
local_addresses = ["10.77.0.200", "10.77.0.201"]

[service.health_check]
kind = "http"
path = "/health \"quoted\""
status = 204
interval = 0.5
timeout = 0.25
rise = 3
fall = 1
on_fail = "remove"
sorry_server = "10.77.0.13:80"

[[service.real_server]]
address = "10.77.0.11:80"
weight = 3
upper_threshold = 100
lower_threshold = 10

[[service.real_server]]
address = "10.77.0.12:80"
forward = "dr"

[[service]]
vip = "10.77.0.100:53"
protocol = "udp"
scheduler = "mh"
mh_table_size = 4093
forward = "nat"
ops = true

[service.health_check]
kind = "script"
script = "test -n \"$1\""

[[service.real_server]]
address = "10.77.0.11:5353"
weight = 0

[[service]]
vip = "10.77.0.101:443"
scheduler = "wlc"
client_address = "proxy-v2"
acl = ["allow 10.77.0.9/32", "deny 10.77.0.0/24"]
max_conns = 1000
max_conns_per_client = 10
client_prefix_v4 = 24
new_conn_rate = 5
new_conn_burst = 20
icmp_rate = 0
local_addresses = ["10.77.0.200"]

[service.health_check]
kind = "tcp"

[[service.real_server]]
address = "10.77.0.12:8443"

[[service]]
vip = "10.77.0.102:8000"
forward = "nat"
syn_proxy = true

[[service.real_server]]
address = "10.77.0.12:80"

[[service]]
vip = "10.77.0.101:53"
protocol = "udp"
local_addresses = ["10.77.0.200"]

[service.health_check]
kind = "udp"
payload = "ping \u00e9"
expect = "pong"
connections = "reset"

[[service.real_server]]
address = "10.77.0.12:53"

[[service]]
vip = "10.77.0.102:80"
local_addresses = ["10.77.0.200"]

[service.health_check]
kind = "icmp"

[[service.real_server]]
address = "10.77.0.12:80"

[timeouts]
tcp_established = 1200
tcp_fin_wait = 30
udp = 60
"#;

    fn load(text: &str) -> Config {
        parse(Path::new("t.toml"), text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// What a reload takes from a file.
    fn reloadable(c: &Config) -> impl PartialEq + std::fmt::Debug + '_ {
        (
            &c.services,
            &c.service_options,
            &c.health,
            &c.timeouts,
            &c.marks,
        )
    }

    #[test]
    fn fwmark_services_and_mark_rules_export_and_reload() {
        let fwm = r#"
[[mark]]
mark = 1
addresses = ["10.77.0.110", "10.77.5.0/24"]
protocol = "tcp"
ports = [80, 443, "8000-8080"]

[[mark]]
mark = 2
addresses = ["fd77::110/128"]

[[service]]
fwmark = 1
scheduler = "rr"
persistent = 300
forward = "nat"

[[service.real_server]]
address = "10.77.0.11"

[[service.real_server]]
address = "10.77.0.12:8080"
weight = 2

[[service]]
fwmark = 2
ipv6 = true
forward = "dr"

[[service.real_server]]
address = "[fd77::11]:0"
"#;
        let original = load(&format!("{BASE}{SERVICES}{fwm}"));
        let exported = services_toml(&original);
        assert!(
            exported.contains(
                "[[mark]]\nmark = 1\naddresses = [\"10.77.0.110/32\", \"10.77.5.0/24\"]\nprotocol = \"tcp\"\nports = [80, 443, \"8000-8080\"]\n"
            ) && exported.contains("[[service]]\nfwmark = 1\nscheduler = \"rr\"\n")
                && exported.contains("[[service]]\nfwmark = 2\nipv6 = true\n")
                && exported.contains("address = \"10.77.0.11\"\n"),
            "{exported}"
        );
        let again = load(&format!("{BASE}{exported}"));
        assert_eq!(reloadable(&again), reloadable(&original), "{exported}");
        assert_eq!(services_toml(&again), exported);
    }

    #[test]
    fn export_reloads_to_the_same_config() {
        let original = load(&format!("{BASE}{SERVICES}"));
        let exported = services_toml(&original);
        let again = load(&format!("{BASE}{exported}"));
        assert_eq!(reloadable(&again), reloadable(&original), "{exported}");
        // And the export of the export is the same text.
        assert_eq!(services_toml(&again), exported);
    }

    #[test]
    fn ipv6_services_export_and_reload() {
        let v6 = r#"
[[service]]
vip = "[fd77::100]:80"
scheduler = "rr"
persistent = 60
persistent_netmask = 128
acl = ["deny fd77:1::/32", "allow ::/0"]
client_prefix_v6 = 48
icmp_burst = 2
local_addresses = ["fd77::200"]

[[service.real_server]]
address = "[fd77::11]:80"

[[service.real_server]]
address = "[fd77::12]:8080"
forward = "nat"

[service.health_check]
kind = "tcp"
sorry_server = "[fd77::99]:80"
"#;
        let original = load(&format!("{BASE}{SERVICES}{v6}"));
        let exported = services_toml(&original);
        assert!(
            exported.contains("vip = \"[fd77::100]:80\"\n")
                && exported.contains("local_addresses = [\"fd77::200\"]\n")
                && exported.contains("acl = [\"deny fd77:1::/32\", \"allow ::/0\"]\n")
                && exported.contains("client_prefix_v6 = 48\nicmp_burst = 2\n"),
            "{exported}"
        );
        let again = load(&format!("{BASE}{exported}"));
        assert_eq!(reloadable(&again), reloadable(&original), "{exported}");
        assert_eq!(services_toml(&again), exported);
    }

    #[test]
    fn run_time_changes_are_exported() {
        let mut c = load(&format!("{BASE}{SERVICES}"));
        // As rvsadm --set and -e would leave them.
        c.timeouts.set_tcp(TcpState::Established, 60);
        c.services[2].real_servers[0].weight = 7;
        let exported = services_toml(&c);
        assert!(exported.contains("tcp_established = 60\n"), "{exported}");
        assert!(
            exported.contains("address = \"10.77.0.12:8443\"\nweight = 7\n"),
            "{exported}"
        );
        assert_eq!(
            reloadable(&load(&format!("{BASE}{exported}"))),
            reloadable(&c)
        );
    }

    #[test]
    fn defaults_only_and_a_service_without_servers() {
        let mut c = load(BASE);
        c.timeouts = Timeouts::default();
        assert!(services_toml(&c).ends_with("[timeouts]\n# all IPVS's defaults\n"));
        let mut with = load(&format!("{BASE}{SERVICES}"));
        with.services[1].real_servers.clear();
        let exported = services_toml(&with);
        assert!(
            exported.contains(&format!(
                "{NOT_EXPORTED}UDP 10.77.0.100:53: a service needs a real server"
            )),
            "{exported}"
        );
        let again = load(&format!("{BASE}{exported}"));
        assert_eq!(again.services.len(), with.services.len() - 1);
        assert!(c.services.is_empty());
    }
}
