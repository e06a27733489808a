//! `rvsadm acl` and `rvsadm limit`: list and edit a service's ACL rules
//! and limits at run time (see `docs/config.md`, "ACLs and limits"). The
//! service is named as in ipvsadm's commands, `-t|-u VIP:PORT` or `-f MARK`.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use rvs_control::api::{self, AccessRequest, AccessView, Request, Response, ServiceSpec};

/// The service, as ipvsadm names it.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Service {
    /// A TCP service, VIP:PORT ([v6]:PORT)
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT")]
    tcp: Option<String>,
    /// A UDP service, VIP:PORT ([v6]:PORT)
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    udp: Option<String>,
    /// An IPv4 firewall-mark service (ipvsadm's -f; see docs/fwmark.md)
    #[arg(short = 'f', long = "fwmark-service", value_name = "MARK")]
    fwmark: Option<u32>,
}

/// An optional service (listings: all without one).
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct MaybeService {
    /// A TCP service, VIP:PORT ([v6]:PORT)
    #[arg(short = 't', long = "tcp-service", value_name = "VIP:PORT")]
    tcp: Option<String>,
    /// A UDP service, VIP:PORT ([v6]:PORT)
    #[arg(short = 'u', long = "udp-service", value_name = "VIP:PORT")]
    udp: Option<String>,
    /// An IPv4 firewall-mark service (ipvsadm's -f; see docs/fwmark.md)
    #[arg(short = 'f', long = "fwmark-service", value_name = "MARK")]
    fwmark: Option<u32>,
}

fn spec(tcp: Option<String>, udp: Option<String>, fwmark: Option<u32>) -> Option<ServiceSpec> {
    let (proto, vip) = match (tcp, udp, fwmark) {
        (Some(v), _, _) => ("tcp", v),
        (None, Some(v), _) => ("udp", v),
        (None, None, Some(m)) => ("fwm", m.to_string()),
        (None, None, None) => return None,
    };
    Some(ServiceSpec {
        proto: proto.into(),
        vip,
        ..ServiceSpec::default()
    })
}

/// `rvsadm acl ...`.
#[derive(Debug, Subcommand)]
pub enum AclCmd {
    /// The rules of every service (or one), in order, with their hits
    #[command(visible_aliases = ["show", "ls"])]
    List(MaybeService),
    /// Add a rule: allow|deny PREFIX (last, or at position --at N)
    Add {
        #[command(flatten)]
        service: Service,
        /// allow or deny
        action: String,
        /// 10.0.0.0/8, 2001:db8::/32, or an address (/32, /128)
        prefix: String,
        /// 1-based position (default: after the last rule)
        #[arg(long, value_name = "N")]
        at: Option<usize>,
    },
    /// Delete a rule: allow|deny PREFIX, or its position N
    #[command(visible_alias = "delete")]
    Del {
        #[command(flatten)]
        service: Service,
        /// The rule (allow|deny PREFIX) or its position
        #[arg(num_args = 1..=2, required = true, value_name = "RULE")]
        rule: Vec<String>,
    },
    /// Delete every rule of the service
    Flush(Service),
}

/// `rvsadm limit ...`.
#[derive(Debug, Subcommand)]
pub enum LimitCmd {
    /// The limits of every service (or one), with what each refused
    #[command(visible_aliases = ["show", "ls"])]
    List(MaybeService),
    /// Change limits (those not named keep their value; 0: no limit)
    Set {
        #[command(flatten)]
        service: Service,
        #[command(flatten)]
        values: LimitValues,
    },
}

/// The limits, by their config names with `-`.
#[derive(Debug, Args)]
#[group(required = true, multiple = true)]
pub struct LimitValues {
    /// Concurrent connections to the service
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_conns: Option<i64>,
    /// Concurrent connections per client prefix
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    max_conns_per_client: Option<i64>,
    /// Prefix length IPv4 clients are counted by
    #[arg(long, value_name = "LEN", allow_negative_numbers = true)]
    client_prefix_v4: Option<i64>,
    /// Prefix length IPv6 clients are counted by
    #[arg(long, value_name = "LEN", allow_negative_numbers = true)]
    client_prefix_v6: Option<i64>,
    /// New connections a second per client prefix
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    new_conn_rate: Option<i64>,
    /// New connections a client prefix may open at once
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    new_conn_burst: Option<i64>,
    /// ICMP port unreachables a second per client (0: none)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    icmp_rate: Option<i64>,
    /// ICMP port unreachables a client may get at once
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    icmp_burst: Option<i64>,
}

impl LimitValues {
    fn pairs(&self) -> Vec<(String, i64)> {
        [
            ("max_conns", self.max_conns),
            ("max_conns_per_client", self.max_conns_per_client),
            ("client_prefix_v4", self.client_prefix_v4),
            ("client_prefix_v6", self.client_prefix_v6),
            ("new_conn_rate", self.new_conn_rate),
            ("new_conn_burst", self.new_conn_burst),
            ("icmp_rate", self.icmp_rate),
            ("icmp_burst", self.icmp_burst),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k.to_string(), v)))
        .collect()
    }
}

/// The request for `rvsadm acl ...`.
fn acl_request(cmd: AclCmd) -> AccessRequest {
    match cmd {
        AclCmd::List(s) => AccessRequest::List(spec(s.tcp, s.udp, s.fwmark)),
        AclCmd::Add {
            service,
            action,
            prefix,
            at,
        } => AccessRequest::Add {
            service: spec(service.tcp, service.udp, service.fwmark).unwrap_or_default(),
            rule: format!("{action} {prefix}"),
            at,
        },
        AclCmd::Del { service, rule } => AccessRequest::Del {
            service: spec(service.tcp, service.udp, service.fwmark).unwrap_or_default(),
            rule: rule.join(" "),
        },
        AclCmd::Flush(s) => AccessRequest::Flush(spec(s.tcp, s.udp, s.fwmark).unwrap_or_default()),
    }
}

/// The request for `rvsadm limit ...`.
fn limit_request(cmd: LimitCmd) -> AccessRequest {
    match cmd {
        LimitCmd::List(s) => AccessRequest::List(spec(s.tcp, s.udp, s.fwmark)),
        LimitCmd::Set { service, values } => AccessRequest::SetLimits {
            service: spec(service.tcp, service.udp, service.fwmark).unwrap_or_default(),
            values: values.pairs(),
        },
    }
}

/// The rules of each service, numbered, with their hits.
#[must_use]
pub fn render_acl(views: &[AccessView]) -> String {
    let mut out = String::new();
    for v in views {
        out += &format!("{}\n", v.service);
        if v.rules.is_empty() {
            out += "  (no rules: every client allowed)\n";
            continue;
        }
        out += &format!("  {:>4}  {:<48} {:>12}\n", "#", "Rule", "Hits");
        for (i, (rule, hits)) in v.rules.iter().enumerate() {
            out += &format!("  {:>4}  {:<48} {:>12}\n", i + 1, rule, hits);
        }
        out += "        (no rule matches: allowed)\n";
    }
    out
}

/// The limits of each service, with what each refused.
#[must_use]
pub fn render_limits(views: &[AccessView]) -> String {
    let mut out = String::new();
    for v in views {
        out += &format!("{}\n", v.service);
        out += &format!("  {:<22} {:>10} {:>12}\n", "Limit", "Value", "Refused");
        for (name, value, refused) in &v.limits {
            let r = refused.map_or(String::new(), |r| r.to_string());
            out += &format!("  {name:<22} {value:>10} {r:>12}\n");
        }
    }
    out
}

/// Runs `rvsadm acl` (`acl` is `Some`) or `rvsadm limit`.
pub fn run(
    prog: &str,
    socket: &std::path::Path,
    acl: Option<AclCmd>,
    limit: Option<LimitCmd>,
) -> ExitCode {
    let (req, is_acl) = match (acl, limit) {
        (Some(a), _) => (acl_request(a), true),
        (None, Some(l)) => (limit_request(l), false),
        (None, None) => return ExitCode::from(2),
    };
    match api::call(socket, &Request::Access(req)) {
        Ok(Response::Ok) => ExitCode::SUCCESS,
        Ok(Response::Access(views)) => {
            let text = if is_acl {
                render_acl(&views)
            } else {
                render_limits(&views)
            };
            print!("{text}");
            ExitCode::SUCCESS
        }
        Ok(Response::Error(e)) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(1)
        }
        Ok(other) => {
            eprintln!("{prog}: unexpected answer {other:?}");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("{prog}: {e}");
            ExitCode::from(1)
        }
    }
}
