//! `rvsadm`: the ipvsadm-compatible admin tool. Talks to rvsd over its
//! control socket. Invoked as `ipvsadm` (a link), it behaves the same.
//!
//! Supported: `-A/-E/-D/-C` services, `-a/-e/-d` real servers, `-P/-Q`
//! FULLNAT local addresses (DPVS's `--add-laddr`/`--del-laddr`), `-L`
//! listings (`-c`, `--timeout`, `--stats`, `--rate`, ..., of all services
//! or of one with `-t`/`-u`, sorted as ipvsadm sorts them unless
//! `--nosort`), `-Z` (zero counters), `-S`/`-R`, `--set`, `--reload`,
//! `--export-config` (the running services as config TOML),
//! `--start-daemon`/`--stop-daemon`/`-L --daemon` (connection sync), and
//! `--stats-dp`. Options of ipvsadm's set that rvs cannot honour yet answer
//! "not supported yet" and change nothing.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use rvs_control::api::{self, Request, Response, ServerSpec, ServiceSpec};
use rvs_control::config::ranges;
use rvs_control::ipvsadm_fmt;
use rvs_control::ipvsadm_names;
use rvs_control::ipvsadm_opts::{self, Command, Opt, OptSet};

/// `rvsadm acl|limit`: a service's ACL and limits.
#[path = "rvsadm/access.rs"]
mod access;
/// `rvsadm link|addr|route|neigh` (iproute2-style).
#[path = "rvsadm/ip.rs"]
mod ip;
/// rvsadm's own subcommands (`top`, `link|addr|route|neigh`), parsed by
/// clap; see there why ipvsadm's syntax keeps the hand parser below.
#[path = "rvsadm/own.rs"]
mod own;

const USAGE: &str = "\
Usage:
  rvsadm -A|E -t|u|f service-address [-s scheduler] [-p [timeout]] [-M netmask] [-b sched-flags]
         [-o] [--client-address none|toa|proxy-v1|proxy-v2] [-j|--synproxy enable|disable]
  rvsadm -D -t|u|f service-address
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n]
  rvsadm -a|e -t|u|f service-address -r server-address [--fullnat|-g|-i|-m] [-w weight]
  rvsadm -d -t|u|f service-address -r server-address
  rvsadm -P|Q -t|u|f service-address -z local-address
  rvsadm -L|l [-t|u|f service-address] [options]
  rvsadm -Z [-t|u|f service-address]
  rvsadm --set tcp tcpfin udp
  rvsadm --start-daemon {master|backup} [daemon-options]
  rvsadm --stop-daemon {master|backup}
  rvsadm --reload
  rvsadm --export-config
  rvsadm --stats-dp
  rvsadm top [--interval SECONDS] [--count N]
  rvsadm vips | drain [--stay] | undrain     (VIP routes for BGP: rvsadm vips -h)
  rvsadm acl list|add|del|flush ...          (a service's ACL: rvsadm acl -h)
  rvsadm limit list|set ...                  (a service's limits: rvsadm limit -h)
  rvsadm -h
Commands:
  --add-service     -A        add virtual service with options
  --edit-service    -E        edit virtual service with options
  --delete-service  -D        delete virtual service
  --clear           -C        clear the whole table
  --restore         -R        restore rules from stdin
  --save            -S        save rules to stdout
  --add-server      -a        add real server with options
  --edit-server     -e        edit real server with options
  --delete-server   -d        delete real server
  --add-laddr       -P        add a FULLNAT local address to a service
  --del-laddr       -Q        remove a FULLNAT local address
  --list            -L|-l     list the table
  --zero            -Z        zero counters in a service or all services
  --set tcp tcpfin udp        set connection timeout values
  --start-daemon              start connection sync daemon
  --stop-daemon               stop connection sync daemon
  --reload                    re-read rvsd's config file and apply the difference
  --export-config             print the running services and timeouts as config TOML
  --stats-dp                  data-plane counters per port and worker
  top                         live per-port and per-worker rates, testpmd style
  acl, limit                  a service's allow/deny rules and connection limits, with hits
  --help            -h        display this help message
Either long or short options are allowed (short ones clustered, values glued: -Ln, -t10.0.0.1:80).
Options:
  --tcp-service  -t service-address   service-address is host:port ([v6]:port for IPv6)
  --udp-service  -u service-address   service-address is host:port ([v6]:port for IPv6)
  --fwmark-service -f fwmark          fwmark is an integer greater than zero; rvs gives packets
                                      their mark by the [[mark]] rules of its config (docs/fwmark.md)
  --ipv6         -6                   fwmark entry uses IPv6 (with -t|-u the bracketed address says so)
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|..., the default is wlc
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask (IPv6: a prefix length)
  --real-server  -r server-address    server-address is host (and port)
  --laddr        -z local-address     FULLNAT local address
  --fullnat                           FULLNAT (both addresses rewritten; needs -P local addresses)
  --gatewaying   -g                   gatewaying (direct routing) (default)
  --tun-type     type                 ipip (gue and gre: not supported yet)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --sched-flags  -b flag[,flag]       scheduler flags (sh-fallback, sh-port, mh-fallback, mh-port)
  --client-address mode               rvs: how FULLNAT servers learn the client's address:
                                      none, toa, proxy-v1, proxy-v2 (UDP: proxy-v2 only)
                                      (-A/-E; an -E without it keeps the service's)
  --synproxy     -j enable|disable    SYN proxy (DPVS's): answer SYNs with cookies, connect the
                                      server after the client's ACK (TCP, FULLNAT or NAT;
                                      -A/-E; an -E without it keeps the service's)
  --thresholds                        output of thresholds information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact        -X                   expand numbers (display exact values)
  --persistent-conn                   output of persistent connection info
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --nosort                            disable sorting output of service/server entries
  --sort                              does nothing, for backwards compatibility
  --ops          -o                   one-packet scheduling (UDP)
  --daemon                            output of daemon information
  --mcast-interface interface         multicast interface for connection sync (an rvs interface)
  --syncid sid                        syncid for connection sync (default=0: a backup takes any)
  --mcast-group address               IPv4 or IPv6 multicast group (default 224.0.0.81)
  --mcast-port port                   UDP port (default 8848)
  --mcast-ttl ttl                     multicast TTL (default 1)
  --sync-maxlen length                max sync message length (default=1472)
  --numeric      -n                   numeric output of addresses and ports
  --socket PATH                       control socket (default $RVS_SOCKET or /run/rvs/rvsd.sock)
Not supported yet (refused with a message): --sctp-service service-address, --pe engine, --tun-info, --tun-port port,
  --tun-nocsum, --tun-csum, --tun-remcsum (gue and gre only).
Note: ipvsadm's -b means scheduler flags; DPVS's ipvsadm spells FULLNAT -b. rvs follows
ipvsadm and spells FULLNAT --fullnat.
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    List,
    AddService,
    EditService,
    DeleteService,
    Clear,
    Restore,
    Save,
    AddServer,
    EditServer,
    DeleteServer,
    AddLaddr,
    DeleteLaddr,
    Set,
    Reload,
    Stats,
    Zero,
    ExportConfig,
    StartDaemon,
    StopDaemon,
    Help,
}

#[derive(Debug, Default)]
struct Args {
    cmd: Option<Cmd>,
    connections: bool,
    timeout: bool,
    service: Option<(String, String)>,
    scheduler: Option<String>,
    persistent: Option<u32>,
    netmask: Option<String>,
    sched_flags: Option<String>,
    ops: bool,
    client_address: Option<String>,
    syn_proxy: Option<bool>,
    /// `-6`: the service is IPv6 (as ipvsadm, the address says so anyway).
    ipv6: bool,
    server: Option<String>,
    laddr: Option<String>,
    weight: Option<u32>,
    forward: Option<String>,
    set: Vec<u32>,
    socket: Option<PathBuf>,
    upper: Option<u32>,
    lower: Option<u32>,
    columns: Option<ipvsadm_fmt::Columns>,
    exact: bool,
    nosort: bool,
    /// `-n`: addresses and ports as numbers (else names, as ipvsadm).
    numeric: bool,
    /// The ipvsadm options given, for ipvsadm's checks.
    opts: OptSet,
    /// `--start-daemon`/`--stop-daemon` and their options.
    daemon: api::DaemonSpec,
    /// `-L --daemon`.
    list_daemon: bool,
}

/// How a command line is refused, as ipvsadm refuses it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum ParseError {
    /// `fail(2, ...)`: the message alone, exit code 2.
    Fail(String),
    /// The first option is not a command: "Try `prog -h'...", exit code 255.
    TryHelp,
    /// popt's own errors ("-t: missing argument"), exit code 255.
    Popt(String),
}

impl From<String> for ParseError {
    fn from(s: String) -> Self {
        Self::Fail(s)
    }
}

impl From<&str> for ParseError {
    fn from(s: &str) -> Self {
        Self::Fail(s.into())
    }
}

impl ParseError {
    fn exit_code(&self) -> u8 {
        match self {
            Self::Fail(_) => 2,
            Self::TryHelp | Self::Popt(_) => 255,
        }
    }

    fn message(&self, prog: &str) -> String {
        match self {
            Self::Fail(m) | Self::Popt(m) => m.clone(),
            Self::TryHelp => format!("Try `{prog} -h' or '{prog} --help' for more information."),
        }
    }
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message("rvsadm"))
    }
}

fn set_cmd(a: &mut Args, c: Cmd) -> Result<(), ParseError> {
    if a.cmd.is_some() {
        return Err("multiple commands specified".into());
    }
    a.cmd = Some(c);
    Ok(())
}

/// The ipvsadm command a `Cmd` is, for ipvsadm's option table (rvs's own
/// commands have none).
fn ipvsadm_command(c: Cmd) -> Option<Command> {
    Some(match c {
        Cmd::AddService => Command::Add,
        Cmd::EditService => Command::Edit,
        Cmd::DeleteService => Command::Del,
        Cmd::Clear => Command::Flush,
        Cmd::List => Command::List,
        Cmd::AddServer => Command::AddDest,
        Cmd::DeleteServer => Command::DelDest,
        Cmd::EditServer => Command::EditDest,
        Cmd::Set => Command::Timeout,
        Cmd::Restore => Command::Restore,
        Cmd::Save => Command::Save,
        Cmd::Zero => Command::Zero,
        Cmd::StartDaemon => Command::StartDaemon,
        Cmd::StopDaemon => Command::StopDaemon,
        _ => return None,
    })
}

type ArgIter<'a> = std::iter::Peekable<std::slice::Iter<'a, String>>;

fn value(it: &mut ArgIter<'_>, opt: &str) -> Result<String, ParseError> {
    it.next()
        .cloned()
        .ok_or_else(|| ParseError::Popt(format!("{opt}: missing argument")))
}

/// `-p` without a value (libipvs's `IPVS_SVC_PERSISTENT_TIMEOUT`, 6 minutes).
const DEFAULT_PERSISTENT: u32 = 360;

/// ipvsadm's `parse_timeout`, over the ranges the config uses: `-p`
/// 1..=31 days, `--set` 0 (leave the timeout as it is) or 1..=31 days.
fn timeout(v: &str, zero_ok: bool) -> Result<u32, ParseError> {
    match ranges::word(v) {
        Some(0) if zero_ok => Some(0),
        Some(t) if zero_ok => ranges::timeout_secs(t).ok(),
        Some(t) => ranges::persistent_secs(t).ok(),
        None => None,
    }
    .ok_or_else(|| format!("invalid timeout value `{v}' specified").into())
}

/// `-p [timeout]`: the next word is the timeout unless it is an option.
fn persistent(it: &mut ArgIter<'_>) -> Result<u32, ParseError> {
    match it.peek() {
        Some(v) if !v.starts_with('-') => {
            let v = it.next().cloned().unwrap_or_default();
            timeout(&v, false)
        }
        _ => Ok(DEFAULT_PERSISTENT),
    }
}

fn unsupported(what: &str) -> ParseError {
    ParseError::Fail(format!("{what} is not supported yet"))
}

/// Applies one option letter (short form) or its long name.
fn option(a: &mut Args, name: &str, it: &mut ArgIter<'_>) -> Result<(), ParseError> {
    // ipvsadm's options are given once each ("multiple '...' options specified").
    let once = match name {
        "n" | "numeric" => Some(Opt::Numeric),
        "c" | "connection" => Some(Opt::Connection),
        "t" | "tcp-service" | "u" | "udp-service" | "f" | "fwmark-service" => Some(Opt::Service),
        "s" | "scheduler" => Some(Opt::Scheduler),
        "p" | "persistent" => Some(Opt::Persistent),
        "M" | "netmask" => Some(Opt::Netmask),
        "r" | "real-server" => Some(Opt::RealServer),
        "g" | "gatewaying" | "i" | "ipip" | "m" | "masquerading" | "fullnat" => Some(Opt::Forward),
        "w" | "weight" => Some(Opt::Weight),
        "x" | "u-threshold" => Some(Opt::UThreshold),
        "y" | "l-threshold" => Some(Opt::LThreshold),
        "timeout" => Some(Opt::Timeout),
        "stats" => Some(Opt::Stats),
        "rate" => Some(Opt::Rate),
        "thresholds" => Some(Opt::Thresholds),
        "persistent-conn" => Some(Opt::PersistentConn),
        "nosort" => Some(Opt::NoSort),
        "X" | "exact" => Some(Opt::Exact),
        "o" | "ops" => Some(Opt::Ops),
        "b" | "sched-flags" => Some(Opt::SchedFlags),
        _ => None,
    };
    if let Some(o) = once {
        a.opts.set(o)?;
    }
    if let Some(c) = command(name) {
        return set_cmd(a, c);
    }
    match name {
        "set" => {
            set_cmd(a, Cmd::Set)?;
            for _ in 0..3 {
                let v = it
                    .next_if(|v| !v.starts_with('-'))
                    .ok_or("--set option requires 3 timeout values")?;
                a.set.push(timeout(v, true)?);
            }
            Ok(())
        }
        "n" | "numeric" => {
            a.numeric = true;
            Ok(())
        }
        "nosort" => {
            a.nosort = true;
            Ok(())
        }
        "c" | "connection" => {
            a.connections = true;
            Ok(())
        }
        "timeout" => {
            a.timeout = true;
            Ok(())
        }
        "t" | "tcp-service" => {
            a.service = Some(("tcp".into(), value(it, "-t")?));
            Ok(())
        }
        "u" | "udp-service" => {
            a.service = Some(("udp".into(), value(it, "-u")?));
            Ok(())
        }
        "s" | "scheduler" => {
            a.scheduler = Some(value(it, "-s")?);
            Ok(())
        }
        "p" | "persistent" => {
            a.persistent = Some(persistent(it)?);
            Ok(())
        }
        "M" | "netmask" => {
            a.netmask = Some(value(it, "-M")?);
            Ok(())
        }
        "b" | "sched-flags" => {
            a.sched_flags = Some(value(it, "-b")?);
            Ok(())
        }
        "o" | "ops" => {
            a.ops = true;
            Ok(())
        }
        "client-address" => {
            if a.client_address.is_some() {
                return Err(ParseError::Fail(
                    "multiple 'client-address' options specified".into(),
                ));
            }
            a.client_address = Some(value(it, "--client-address")?);
            Ok(())
        }
        "j" | "synproxy" => {
            if a.syn_proxy.is_some() {
                return Err(ParseError::Fail(
                    "multiple 'synproxy' options specified".into(),
                ));
            }
            a.syn_proxy = Some(match value(it, "-j")?.as_str() {
                "enable" => true,
                "disable" => false,
                _ => {
                    return Err(ParseError::Fail(
                        "synproxy switch must be enable or disable".into(),
                    ))
                }
            });
            Ok(())
        }
        "r" | "real-server" => {
            a.server = Some(value(it, "-r")?);
            Ok(())
        }
        "z" | "laddr" => {
            a.laddr = Some(value(it, "-z")?);
            Ok(())
        }
        "w" | "weight" => {
            let v = value(it, "-w")?;
            a.weight = Some(
                ranges::word(&v)
                    .and_then(|w| ranges::weight(w).ok())
                    .ok_or("illegal weight specified")?,
            );
            Ok(())
        }
        "fullnat" => {
            a.forward = Some("fullnat".into());
            Ok(())
        }
        "g" | "gatewaying" => {
            a.forward = Some("route".into());
            Ok(())
        }
        "i" | "ipip" => {
            a.forward = Some("tunnel".into());
            Ok(())
        }
        "m" | "masquerading" => {
            a.forward = Some("masq".into());
            Ok(())
        }
        "socket" => {
            a.socket = Some(value(it, "--socket")?.into());
            Ok(())
        }
        "f" | "fwmark-service" => {
            let v = value(it, "-f")?;
            // ipvsadm's parse_fwmark: strtol, base 10, 1..=UINT_MAX.
            let mark = v
                .parse::<i64>()
                .ok()
                .filter(|m| (1..=i64::from(u32::MAX)).contains(m))
                .ok_or_else(|| format!("invalid fwmark value `{v}' specified"))?;
            a.service = Some(("fwm".into(), mark.to_string()));
            Ok(())
        }
        "6" | "ipv6" => {
            a.ipv6 = true;
            Ok(())
        }
        "x" | "u-threshold" => {
            let v = value(it, "-x")?;
            a.upper = Some(
                ranges::word(&v)
                    .and_then(|t| ranges::threshold(t, "upper threshold").ok())
                    .ok_or("illegal u_threshold specified")?,
            );
            Ok(())
        }
        "y" | "l-threshold" => {
            let v = value(it, "-y")?;
            a.lower = Some(
                ranges::word(&v)
                    .and_then(|t| ranges::threshold(t, "lower threshold").ok())
                    .ok_or("illegal l_threshold specified")?,
            );
            Ok(())
        }
        "thresholds" => {
            a.columns = Some(ipvsadm_fmt::Columns::Thresholds);
            Ok(())
        }
        "persistent-conn" => {
            a.columns = Some(ipvsadm_fmt::Columns::PersistentConn);
            Ok(())
        }
        "stats" => {
            a.columns = Some(ipvsadm_fmt::Columns::Stats);
            Ok(())
        }
        "rate" => {
            a.columns = Some(ipvsadm_fmt::Columns::Rate);
            Ok(())
        }
        "exact" | "X" => {
            a.exact = true;
            Ok(())
        }
        "sort" => Ok(()),
        "start-daemon" | "stop-daemon" | "daemon" | "mcast-interface" | "syncid"
        | "mcast-group" | "mcast-port" | "mcast-ttl" | "sync-maxlen" => daemon_option(a, name, it),
        "pe" => Err(unsupported("--pe (persistence engines such as sip)")),
        "sctp-service" => Err(unsupported("--sctp-service (SCTP)")),
        "tun-info" => Err(unsupported("--tun-info")),
        // ipvsadm -S writes `--tun-type ipip` for -i servers; IPIP is the
        // only tunnel rvs encapsulates with.
        "tun-type" => {
            a.opts.set(Opt::TunType)?;
            match value(it, "--tun-type")?.as_str() {
                "ipip" => Ok(()),
                "gue" | "gre" => Err(unsupported(
                    "--tun-type gue and gre (rvs tunnels with ipip)",
                )),
                _ => Err("illegal tunnel type specified".into()),
            }
        }
        "tun-port" | "tun-nocsum" | "tun-csum" | "tun-remcsum" => {
            let o = match name {
                "tun-port" => Opt::TunPort,
                "tun-nocsum" => Opt::TunNocsum,
                "tun-csum" => Opt::TunCsum,
                _ => Opt::TunRemcsum,
            };
            a.opts.set(o)?;
            if o == Opt::TunPort {
                value(it, "--tun-port")?;
            }
            // Options of gue and gre only (ipvsadm's tunnel table).
            Err(format!("Illegal '{}' option with the 'ipip' tunnel type", o.name()).into())
        }
        s if s.len() == 1 => Err(ParseError::Popt(format!("-{s}: unknown option"))),
        s => Err(ParseError::Popt(format!("--{s}: unknown option"))),
    }
}

/// `--start-daemon`, `--stop-daemon`, `--daemon` and the daemon's
/// options, with ipvsadm's refusals.
fn daemon_option(a: &mut Args, name: &str, it: &mut ArgIter<'_>) -> Result<(), ParseError> {
    let number =
        |v: &str, lo: u32, hi: u32| v.parse::<u32>().ok().filter(|n| (lo..=hi).contains(n));
    match name {
        "start-daemon" | "stop-daemon" => {
            let v = value(it, &format!("--{name}"))?;
            if v != "master" && v != "backup" {
                return Err(if name == "start-daemon" {
                    "illegal start-daemon parameter specified".into()
                } else {
                    "illegal start_daemon specified".into()
                });
            }
            set_cmd(
                a,
                if name == "start-daemon" {
                    Cmd::StartDaemon
                } else {
                    Cmd::StopDaemon
                },
            )?;
            a.daemon.role = v;
        }
        "daemon" => {
            a.opts.set(Opt::Daemon)?;
            a.list_daemon = true;
        }
        "mcast-interface" => {
            a.opts.set(Opt::McastInterface)?;
            a.daemon.interface = Some(value(it, "--mcast-interface")?);
        }
        "syncid" => {
            a.opts.set(Opt::SyncId)?;
            let v = value(it, "--syncid")?;
            a.daemon.sync_id = Some(number(&v, 0, 255).ok_or("illegal syncid specified")? as u8);
        }
        "mcast-group" => {
            a.opts.set(Opt::McastGroup)?;
            let v = value(it, "--mcast-group")?;
            match v.parse::<std::net::IpAddr>() {
                Ok(std::net::IpAddr::V4(g)) if g.is_multicast() => {}
                Ok(std::net::IpAddr::V6(g)) if g.is_multicast() => {}
                _ if v.contains(':') => {
                    return Err(format!("invalid IPv6 mcast-group `{v}'").into())
                }
                _ => return Err(format!("invalid IPv4 mcast-group `{v}'").into()),
            }
            a.daemon.group = Some(v);
        }
        "mcast-port" => {
            a.opts.set(Opt::McastPort)?;
            let v = value(it, "--mcast-port")?;
            a.daemon.port =
                Some(number(&v, 1, 65535).ok_or("illegal mcast-port specified")? as u16);
        }
        "mcast-ttl" => {
            a.opts.set(Opt::McastTtl)?;
            let v = value(it, "--mcast-ttl")?;
            a.daemon.ttl = Some(number(&v, 1, 255).ok_or("illegal mcast-ttl specified")? as u8);
        }
        _ => {
            a.opts.set(Opt::SyncMaxlen)?;
            let v = value(it, "--sync-maxlen")?;
            a.daemon.maxlen =
                Some(number(&v, 1, 65535 - 20 - 8).ok_or("illegal sync-maxlen specified")? as u16);
        }
    }
    Ok(())
}

/// The command an option word names, for those that take no value.
fn command(name: &str) -> Option<Cmd> {
    Some(match name {
        "A" | "add-service" => Cmd::AddService,
        "E" | "edit-service" => Cmd::EditService,
        "D" | "delete-service" => Cmd::DeleteService,
        "C" | "clear" => Cmd::Clear,
        "R" | "restore" => Cmd::Restore,
        "S" | "save" => Cmd::Save,
        "a" | "add-server" => Cmd::AddServer,
        "e" | "edit-server" => Cmd::EditServer,
        "d" | "delete-server" => Cmd::DeleteServer,
        "P" | "add-laddr" => Cmd::AddLaddr,
        "Q" | "del-laddr" => Cmd::DeleteLaddr,
        "L" | "l" | "list" => Cmd::List,
        "h" | "help" => Cmd::Help,
        "reload" => Cmd::Reload,
        "Z" | "zero" => Cmd::Zero,
        "export-config" => Cmd::ExportConfig,
        "stats-dp" => Cmd::Stats,
        _ => return None,
    })
}

/// Options that are commands (ipvsadm wants one first): those of
/// [`command`], and the ones that take values.
fn is_command(name: &str) -> bool {
    command(name).is_some() || matches!(name, "set" | "start-daemon" | "stop-daemon")
}

fn parse(argv: &[String]) -> Result<Args, ParseError> {
    let mut a = parse_words(argv)?;
    if let Some(cmd) = a.cmd.and_then(ipvsadm_command) {
        ipvsadm_opts::check(cmd, a.opts)?;
        if cmd == Command::List {
            ipvsadm_opts::check_list(a.opts)?;
        }
    }
    if a.laddr.is_some() && !matches!(a.cmd, Some(Cmd::AddLaddr | Cmd::DeleteLaddr)) {
        return Err("the 'laddr' option (-z) goes with -P and -Q only".into());
    }
    // Host and service names, resolved here as ipvsadm resolves them.
    if let Some((proto, text)) = a.service.clone().filter(|(p, _)| p != "fwm") {
        let text =
            numeric(&text, &proto).ok_or("illegal virtual server address[:port] specified")?;
        a.service = Some((proto, text));
    }
    if let (Some(text), Some((proto, _))) = (a.server.clone(), a.service.as_ref()) {
        // A fwmark service's server names a TCP port, as ipvsadm's -f
        // sets the protocol to TCP.
        let proto = if proto == "fwm" {
            "tcp"
        } else {
            proto.as_str()
        };
        a.server =
            Some(numeric(&text, proto).ok_or("illegal real server address[:port] specified")?);
    }
    if a.opts.has(Opt::TunType) && a.forward.as_deref() != Some("tunnel") {
        return Err("Tunnel options conflict with forward method".into());
    }
    if matches!(a.cmd, Some(Cmd::AddServer | Cmd::EditServer)) {
        // ipvsadm's default method is direct routing (-g), on -a and -e.
        a.forward.get_or_insert_with(|| "route".into());
    }
    if a.cmd == Some(Cmd::EditServer) {
        // ipvsadm edits a server to what the line says: weight 1 and no
        // thresholds unless given.
        a.weight.get_or_insert(1);
        a.upper.get_or_insert(0);
        a.lower.get_or_insert(0);
    }
    Ok(a)
}

/// `host[:port]` with names made numeric (unchanged when already numeric).
fn numeric(text: &str, proto: &str) -> Option<String> {
    if text.parse::<std::net::SocketAddr>().is_ok() || text.parse::<std::net::IpAddr>().is_ok() {
        return Some(text.to_string());
    }
    let (ip, port) = ipvsadm_names::resolve(text, proto)?;
    Some(match port {
        Some(p) => std::net::SocketAddr::new(ip, p).to_string(),
        None => ip.to_string(),
    })
}

/// The words, as ipvsadm reads them: a command first (rvs's `--socket`
/// may come before it), then its options.
fn parse_words(argv: &[String]) -> Result<Args, ParseError> {
    let mut a = Args::default();
    let mut it = argv.iter().peekable();
    let mut first = true;
    while let Some(arg) = it.next() {
        if arg == "--socket" {
            a.socket = Some(value(&mut it, "--socket")?.into());
            continue;
        }
        if first {
            first = false;
            let name = arg
                .strip_prefix("--")
                .or_else(|| arg.strip_prefix('-').and_then(|s| s.get(..1)))
                .unwrap_or(arg);
            if !is_command(name) {
                return Err(ParseError::TryHelp);
            }
        }
        if let Some(long) = arg.strip_prefix("--") {
            option(&mut a, long, &mut it)?;
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let letters: Vec<char> = shorts.chars().collect();
            for (k, c) in letters.iter().enumerate() {
                let takes_value = matches!(
                    c,
                    't' | 'u' | 'f' | 'r' | 'w' | 's' | 'M' | 'b' | 'z' | 'p' | 'x' | 'y'
                );
                if takes_value && k + 1 != letters.len() {
                    // `-t10.0.0.1:80` style: the rest of the word is the value.
                    let rest: String = letters[k + 1..].iter().collect();
                    let glued = [rest];
                    let mut one = glued.iter().peekable();
                    option(&mut a, &c.to_string(), &mut one)?;
                    break;
                }
                option(&mut a, &c.to_string(), &mut it)?;
            }
        } else {
            return Err(format!("unexpected argument {arg}").into());
        }
    }
    Ok(a)
}

/// The service `-t`/`-u`/`-f` names, as the API spells it: the protocol
/// (`fwm`, `fwm6` for a firewall mark, IPv6 with `-6`) and the address.
fn service_words(a: &Args) -> Result<(String, String), String> {
    let (proto, vip) = a
        .service
        .clone()
        .ok_or("service address not specified (-t, -u or -f)")?;
    Ok(if proto == "fwm" && a.ipv6 {
        ("fwm6".into(), vip)
    } else {
        (proto, vip)
    })
}

fn service(a: &Args) -> Result<ServiceSpec, String> {
    let (proto, vip) = service_words(a)?;
    // `-6` with an IPv4 address: ipvsadm parses it as IPv6 and fails.
    if a.ipv6
        && vip
            .parse::<std::net::SocketAddr>()
            .is_ok_and(|v| v.is_ipv4())
    {
        return Err(format!("illegal virtual server address[:port] specified: {vip} (-6 needs an IPv6 address, [ADDRESS]:PORT)"));
    }
    Ok(ServiceSpec {
        proto,
        vip,
        scheduler: a.scheduler.clone(),
        persistent: a.persistent,
        netmask: a.netmask.clone(),
        sched_flags: a.sched_flags.clone(),
        ops: a.ops,
        client_address: a.client_address.clone(),
        syn_proxy: a.syn_proxy,
    })
}

fn request(a: &Args) -> Result<Request, String> {
    let cmd = a.cmd.unwrap_or(Cmd::List);
    if a.client_address.is_some() && !matches!(cmd, Cmd::AddService | Cmd::EditService) {
        return Err("--client-address goes with -A or -E (a service's setting)".into());
    }
    if a.syn_proxy.is_some() && !matches!(cmd, Cmd::AddService | Cmd::EditService) {
        return Err("--synproxy goes with -A or -E (a service's setting)".into());
    }
    Ok(match cmd {
        Cmd::List if a.list_daemon => Request::ListDaemons,
        Cmd::StartDaemon => Request::StartDaemon(a.daemon.clone()),
        Cmd::StopDaemon => Request::StopDaemon {
            role: a.daemon.role.clone(),
        },
        Cmd::List if a.timeout => Request::GetTimeouts,
        Cmd::List if a.connections => Request::ListConnections,
        Cmd::List if a.columns == Some(ipvsadm_fmt::Columns::PersistentConn) => {
            Request::ListServicesWithTemplates
        }
        // -S is formatted here (sorted as ipvsadm sorts, unless --nosort).
        Cmd::List | Cmd::Save => Request::ListServices,
        Cmd::Stats => Request::Stats,
        Cmd::Zero => Request::Zero(a.service.as_ref().map(|_| service(a)).transpose()?),
        Cmd::ExportConfig => Request::ExportConfig,
        Cmd::Clear => Request::Clear,
        Cmd::Reload => Request::Reload,
        Cmd::Set => Request::SetTimeouts {
            tcp: a.set[0],
            tcpfin: a.set[1],
            udp: a.set[2],
        },
        Cmd::AddService => Request::AddService(service(a)?),
        Cmd::EditService => Request::EditService(service(a)?),
        Cmd::DeleteService => Request::DeleteService(service(a)?),
        Cmd::AddLaddr | Cmd::DeleteLaddr => {
            let addr = a.laddr.clone().ok_or("local address not specified (-z)")?;
            let service = service(a)?;
            if cmd == Cmd::AddLaddr {
                Request::AddLocalAddress { service, addr }
            } else {
                Request::DeleteLocalAddress { service, addr }
            }
        }
        Cmd::AddServer | Cmd::EditServer | Cmd::DeleteServer => {
            let (proto, vip) = service_words(a)?;
            let rs = a
                .server
                .clone()
                .ok_or("real server address not specified (-r)")?;
            let spec = ServerSpec {
                proto,
                vip,
                rs,
                weight: a.weight,
                forward: a.forward.clone(),
                upper_threshold: a.upper,
                lower_threshold: a.lower,
            };
            match cmd {
                Cmd::AddServer => Request::AddServer(spec),
                Cmd::EditServer => Request::EditServer(spec),
                _ => Request::DeleteServer(spec),
            }
        }
        Cmd::Restore | Cmd::Help => unreachable!("answered before a request is built"),
    })
}

/// Services' and real servers' addresses as ipvsadm names them without
/// `-n` (see [`rvs_control::ipvsadm_rnames`]).
fn name_services(services: &mut [rvs_control::api::ServiceView]) {
    let mut n = rvs_control::ipvsadm_rnames::Namer::system();
    for s in services {
        // A fwmark service has no address; its servers name TCP ports
        // (ipvsadm's -f sets the service's protocol to TCP).
        let proto = if s.proto == "FWM" {
            "tcp".to_string()
        } else {
            s.vip = n.addrport(&s.vip, &s.proto.to_lowercase());
            s.proto.to_lowercase()
        };
        for r in &mut s.servers {
            r.addr = n.addrport(&r.addr, &proto);
        }
    }
}

/// The text to print for an answer, or the error message.
fn render(resp: Response, a: &Args) -> Result<String, String> {
    let columns = a.columns.unwrap_or(ipvsadm_fmt::Columns::Plain);
    Ok(match resp {
        Response::Services {
            table_size,
            mut services,
        } => {
            if !a.nosort {
                ipvsadm_fmt::sort(&mut services);
            }
            if a.cmd == Some(Cmd::Save) {
                if !a.numeric {
                    name_services(&mut services);
                }
                return Ok(ipvsadm_fmt::save(&services));
            }
            match &a.service {
                // `-L -t SERVICE`: that service alone, as ipvsadm's `list_service`.
                Some((proto, vip)) if proto == "fwm" => {
                    let wanted = if a.ipv6 {
                        format!("{vip} IPv6")
                    } else {
                        vip.clone()
                    };
                    let found = services
                        .iter()
                        .find(|s| s.proto == "FWM" && s.vip == wanted)
                        .ok_or("No such service")?;
                    let mut found = vec![found.clone()];
                    if !a.numeric {
                        name_services(&mut found);
                    }
                    ipvsadm_fmt::list_one(&found[0], columns, a.exact)
                }
                Some((proto, vip)) => {
                    let proto = proto.to_uppercase();
                    let wanted = vip.parse::<std::net::SocketAddr>().map_err(|_| {
                        format!("illegal virtual server address[:port] specified: {vip}")
                    })?;
                    let found = services
                        .iter()
                        .find(|s| s.proto == proto && s.vip.parse() == Ok(wanted))
                        .ok_or("No such service")?;
                    let mut found = vec![found.clone()];
                    if !a.numeric {
                        name_services(&mut found);
                    }
                    ipvsadm_fmt::list_one(&found[0], columns, a.exact)
                }
                None => {
                    if !a.numeric {
                        name_services(&mut services);
                    }
                    ipvsadm_fmt::list_services_with(table_size, &services, columns, a.exact)
                }
            }
        }
        Response::Connections(mut c) => {
            if !a.numeric {
                let mut n = rvs_control::ipvsadm_rnames::Namer::system();
                for c in &mut c {
                    let proto = c.proto.to_lowercase();
                    for t in [&mut c.client, &mut c.vip, &mut c.rs] {
                        *t = n.addrport(t, &proto);
                    }
                }
            }
            ipvsadm_fmt::list_connections_with(
                &c,
                a.columns == Some(ipvsadm_fmt::Columns::PersistentConn),
            )
        }
        Response::Timeouts { tcp, tcpfin, udp } => ipvsadm_fmt::timeouts(tcp, tcpfin, udp),
        Response::Rules(text) | Response::ConfigToml(text) => text,
        Response::Ok => String::new(),
        Response::Stats { workers, ports } => {
            let mut t = String::new();
            for p in ports {
                // Frames the kernel dropped before the PMD (af_packet, af_xdp).
                let kernel = p
                    .rx_kernel_dropped
                    .map_or_else(String::new, |n| format!(" rx-kernel-dropped {n}"));
                t += &format!(
                    "port {}: rx {} tx {} rx-bytes {} tx-bytes {} rx-missed {}{kernel} rx-errors {} tx-errors {}\n",
                    p.name, p.rx_packets, p.tx_packets, p.rx_bytes, p.tx_bytes, p.rx_missed, p.rx_errors, p.tx_errors
                );
            }
            for w in workers {
                t += &format!(
                    "worker lcore {}: rx {} tx {} sessions {} created {} expired {} redirected out {} in {} generation {}\n",
                    w.lcore, w.rx_packets, w.tx_packets, w.sessions, w.sessions_created, w.sessions_expired, w.redirected_out, w.redirected_in, w.generation
                );
                t += &format!("  bytes rx {} tx {}\n", w.rx_bytes, w.tx_bytes);
                t += &format!(
                    "  flood guard {}:{}\n",
                    if w.guard_on { "on" } else { "off" },
                    w.guard
                        .iter()
                        .map(|(n, v)| format!(" {n} {v}"))
                        .collect::<String>()
                );
                if !w.events.is_empty() {
                    t += &format!(
                        "  events:{}\n",
                        w.events
                            .iter()
                            .map(|(n, v)| format!(" {n} {v}"))
                            .collect::<String>()
                    );
                }
                if w.synproxy.iter().any(|(_, v)| *v > 0) {
                    t += &format!(
                        "  syn proxy:{}\n",
                        w.synproxy
                            .iter()
                            .map(|(n, v)| format!(" {n} {v}"))
                            .collect::<String>()
                    );
                }
                t += &format!(
                    "  fragments:{}\n",
                    w.frags
                        .iter()
                        .map(|(n, v)| format!(" {n} {v}"))
                        .collect::<String>()
                );
                for (reason, n) in w.drops {
                    t += &format!("  drop {reason}: {n}\n");
                }
            }
            t
        }
        Response::Daemons(lines) => lines.iter().map(|l| format!("{l}\n")).collect(),
        Response::Ip(_) | Response::Vips(_) | Response::Access(_) => {
            return Err("unexpected answer from rvsd".into())
        }
        Response::Error(e) => return Err(e),
    })
}

fn main() -> ExitCode {
    let prog = std::env::args()
        .next()
        .and_then(|p| {
            std::path::Path::new(&p)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "rvsadm".into());
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if own::is_own(&argv) {
        return own::run(&prog, &argv);
    }
    if rvs_control::vip_routes::is_command(&argv) {
        return rvs_control::vip_routes::run(&prog, &argv);
    }
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{}", e.message(&prog));
            return ExitCode::from(e.exit_code());
        }
    };
    if args.cmd == Some(Cmd::Help) {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let socket = args
        .socket
        .clone()
        .or_else(|| std::env::var_os("RVS_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(api::DEFAULT_SOCKET));
    if args.cmd == Some(Cmd::Restore) {
        return restore(&prog, &socket);
    }
    let req = match request(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::from(2);
        }
    };
    let answer = match api::call(&socket, &req) {
        Ok(Response::Error(e)) => {
            // As ipvsadm when the kernel refuses: the reason, exit 255.
            eprintln!("{e}");
            return ExitCode::from(255);
        }
        Ok(answer) => answer,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::from(1);
        }
    };
    match render(answer, &args) {
        Ok(text) => {
            if args.cmd == Some(Cmd::ExportConfig) {
                // Services a config file cannot hold are named on stderr too.
                for line in text
                    .lines()
                    .filter(|l| l.starts_with(rvs_control::config::export::NOT_EXPORTED))
                {
                    eprintln!("{prog}: warning: {}", &line[2..]);
                }
            }
            // A closed pipe (`rvsadm -L -n | head`) is not an error worth a panic.
            let _ = std::io::stdout().lock().write_all(text.as_bytes());
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(1)
        }
    }
}

/// `top`: testpmd-style rates every `interval` seconds, `count` times (or
/// until interrupted).
pub(crate) fn top(
    prog: &str,
    socket: &std::path::Path,
    interval: f64,
    count: Option<u32>,
) -> ExitCode {
    let read = || match api::call(socket, &Request::Stats) {
        Ok(Response::Stats { workers, ports }) => Ok((
            std::time::Instant::now(),
            rvs_control::top::Reading { ports, workers },
        )),
        Ok(Response::Error(e)) => Err(e),
        Ok(other) => Err(format!("unexpected answer {other:?}")),
        Err(e) => Err(e.to_string()),
    };
    let mut before = match read() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{prog}: {e}");
            return ExitCode::from(1);
        }
    };
    let mut shown = 0;
    while count.is_none_or(|c| shown < c) {
        std::thread::sleep(std::time::Duration::from_secs_f64(interval));
        let now = match read() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("{prog}: {e}");
                return ExitCode::from(1);
            }
        };
        let secs = now.0.duration_since(before.0).as_secs_f64();
        let text = rvs_control::top::render(&now.1, &before.1, secs);
        if std::io::stdout()
            .lock()
            .write_all(format!("{text}\n").as_bytes())
            .is_err()
        {
            return ExitCode::SUCCESS;
        }
        before = now;
        shown += 1;
    }
    ExitCode::SUCCESS
}

/// `-R`: each line of stdin is one command, as `-S` writes them, run as
/// ipvsadm 1.31's `restore_table` runs them: everything from a `#` on is
/// ignored; a line the daemon refuses (ipvsadm: the kernel) prints the
/// reason and the next line goes on, as does a line popt cannot parse
/// ("--bogus: unknown option"); a line ipvsadm `fail`s on (exit 2) or
/// answers with "Try ..." (exit 255) stops the restore there with that
/// exit code, the lines before it applied. The exit code is the last
/// line's: 0, or 255 if the daemon refused it (or it did not parse).
fn restore(prog: &str, socket: &std::path::Path) -> ExitCode {
    let mut last = 0u8;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let text = line.split('#').next().unwrap_or("");
        let words: Vec<String> = text.split_whitespace().map(String::from).collect();
        if words.is_empty() {
            continue;
        }
        match restore_line(prog, socket, &words) {
            Ok(code) => last = code,
            Err(code) => return ExitCode::from(code),
        }
    }
    ExitCode::from(last)
}

/// One line of `-R`: `Ok(exit code)` to go on, `Err(exit code)` to stop.
fn restore_line(prog: &str, socket: &std::path::Path, words: &[String]) -> Result<u8, u8> {
    let a = match parse(words) {
        Ok(a) => a,
        Err(e @ ParseError::Popt(_)) => {
            eprintln!("{}", e.message(prog));
            return Ok(255);
        }
        Err(e) => {
            eprintln!("{}", e.message(prog));
            return Err(e.exit_code());
        }
    };
    match a.cmd {
        // ipvsadm: "avoid infinite loop".
        Some(Cmd::Restore) => {
            eprintln!("{}", ParseError::TryHelp.message(prog));
            return Err(255);
        }
        Some(Cmd::Help) => {
            print!("{USAGE}");
            return Err(0);
        }
        _ => {}
    }
    let req = request(&a).map_err(|e| {
        eprintln!("{prog}: {e}");
        2u8
    })?;
    match api::call(socket, &req) {
        Ok(Response::Error(e)) => {
            eprintln!("{e}");
            Ok(255)
        }
        Ok(answer) => match render(answer, &a) {
            Ok(text) => {
                let _ = std::io::stdout().lock().write_all(text.as_bytes());
                Ok(0)
            }
            Err(e) => {
                eprintln!("{e}");
                Err(1)
            }
        },
        Err(e) => {
            eprintln!("{prog}: {e}");
            Err(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn fwmark_services_parse_as_ipvsadm() {
        let a = args("-A -f 1 -s rr -p").unwrap();
        assert_eq!(a.service, Some(("fwm".into(), "1".into())));
        match request(&a) {
            Ok(Request::AddService(s)) => assert_eq!(
                (s.proto.as_str(), s.vip.as_str(), s.persistent),
                ("fwm", "1", Some(360))
            ),
            other => panic!("{other:?}"),
        }
        match request(&args("-a -f4294967295 -6 -r fd00::2 -m").unwrap()) {
            Ok(Request::AddServer(s)) => assert_eq!(
                (s.proto.as_str(), s.vip.as_str(), s.rs.as_str()),
                ("fwm6", "4294967295", "fd00::2")
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request(&args("-D --fwmark-service 7").unwrap()),
            Ok(Request::DeleteService(s)) if s.proto == "fwm" && s.vip == "7"
        ));
        // parse_fwmark's refusal, exit 2.
        for bad in ["0", "-1", "4294967296", "1x", "0x10"] {
            let e = parse(&["-A".into(), "-f".into(), bad.into()]).unwrap_err();
            assert_eq!(
                (e.exit_code(), e.message("ipvsadm")),
                (2, format!("invalid fwmark value `{bad}' specified"))
            );
        }
        assert!(
            args("-A -f 1 -t 10.0.0.1:80").is_err(),
            "one service option"
        );
    }

    #[test]
    fn seed_commands_parse() {
        let a = args("-a -t 192.168.146.100:80 -r 192.168.177.10:80 -m").unwrap();
        assert_eq!(a.cmd, Some(Cmd::AddServer));
        assert_eq!(a.service, Some(("tcp".into(), "192.168.146.100:80".into())));
        assert_eq!(a.forward.as_deref(), Some("masq"));
        assert_eq!(args("-Ln").unwrap().cmd, Some(Cmd::List));
        assert_eq!(args("-ln").unwrap().cmd, Some(Cmd::List));
        assert!(matches!(
            request(&args("-L -n -c").unwrap()),
            Ok(Request::ListConnections)
        ));
        let a = args("-E -t 192.168.140.100:80 -s rr -p 300").unwrap();
        match request(&a) {
            Ok(Request::EditService(s)) => {
                assert_eq!(
                    (s.scheduler.as_deref(), s.persistent),
                    (Some("rr"), Some(300))
                );
            }
            other => panic!("{other:?}"),
        }
        let a = args("-A -t 192.168.146.100:80 -s rr").unwrap();
        assert!(matches!(
            request(&a),
            Ok(Request::AddService(ServiceSpec {
                persistent: None,
                ..
            }))
        ));
        let a = args("-E -t 10.0.0.1:80 -p -s rr").unwrap();
        assert_eq!(
            a.persistent,
            Some(360),
            "-p without a value means 360, as ipvsadm"
        );
        let a = args("-e -t 10.0.0.1:80 -r 10.0.0.2 -w 3").unwrap();
        assert!(matches!(
            request(&a),
            Ok(Request::EditServer(ServerSpec {
                weight: Some(3),
                ..
            }))
        ));
        assert!(matches!(
            request(&args("--set 900 120 300").unwrap()),
            Ok(Request::SetTimeouts {
                tcp: 900,
                tcpfin: 120,
                udp: 300
            })
        ));
        assert!(matches!(
            request(&args("-L --timeout").unwrap()),
            Ok(Request::GetTimeouts)
        ));
        assert!(matches!(
            request(&args("-S -n").unwrap()),
            Ok(Request::ListServices)
        ));
        assert!(matches!(
            request(&args("-P -t 10.0.0.1:80 -z 10.0.0.200").unwrap()),
            Ok(Request::AddLocalAddress { .. })
        ));
        assert!(matches!(
            request(&args("--add-service --tcp-service 10.0.0.1:80 --scheduler rr").unwrap()),
            Ok(Request::AddService(_))
        ));
        assert_eq!(
            args("-A -t10.0.0.1:80").unwrap().service,
            Some(("tcp".into(), "10.0.0.1:80".into()))
        );
        assert!(matches!(
            request(&args("-Z").unwrap()),
            Ok(Request::Zero(None))
        ));
        match request(&args("--zero -u 10.0.0.1:53").unwrap()) {
            Ok(Request::Zero(Some(s))) => {
                assert_eq!((s.proto.as_str(), s.vip.as_str()), ("udp", "10.0.0.1:53"))
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request(&args("--export-config").unwrap()),
            Ok(Request::ExportConfig)
        ));
        assert!(matches!(
            request(&args("-S -n").unwrap()),
            Ok(Request::ListServices)
        ));
        // ipvsadm's table: -S takes -n only.
        assert!(args("-S --nosort").is_err());
        assert!(args("-L -n --nosort").unwrap().nosort);
    }

    fn view(proto: &str, vip: &str, servers: &[&str]) -> api::ServiceView {
        api::ServiceView {
            proto: proto.into(),
            vip: vip.into(),
            scheduler: "rr".into(),
            flags: String::new(),
            local_addresses: vec![],
            servers: servers
                .iter()
                .map(|a| api::RealServerView {
                    addr: (*a).into(),
                    forward: "Masq".into(),
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    persist_conns: 0,
                    stats: [0; 5],
                    rates: [0; 5],
                    active: 0,
                    inactive: 0,
                })
                .collect(),
        }
    }

    #[test]
    fn listings_sort_and_pick_one_service() {
        let answer = || Response::Services {
            table_size: 4096,
            services: vec![
                view("UDP", "10.0.0.1:53", &["10.0.0.3:53"]),
                view("TCP", "10.0.0.1:80", &["10.0.0.3:80", "10.0.0.2:80"]),
            ],
        };
        let all = render(answer(), &args("-L -n").unwrap()).unwrap();
        let lines: Vec<&str> = all.lines().collect();
        assert_eq!(lines[3], "TCP  10.0.0.1:80 rr");
        assert!(
            lines[4].starts_with("  -> 10.0.0.2:80 ") && lines[5].starts_with("  -> 10.0.0.3:80 "),
            "{all}"
        );
        assert_eq!(lines[6], "UDP  10.0.0.1:53 rr");
        let unsorted = render(answer(), &args("-L -n --nosort").unwrap()).unwrap();
        assert_eq!(unsorted.lines().nth(3), Some("UDP  10.0.0.1:53 rr"));
        let one = render(answer(), &args("-L -n -u 10.0.0.1:53").unwrap()).unwrap();
        assert_eq!(
            one.lines().next(),
            Some("Prot LocalAddress:Port Scheduler Flags"),
            "no version line for one service"
        );
        assert_eq!(one.lines().count(), 4, "{one}");
        assert_eq!(
            render(answer(), &args("-L -n -t 10.0.0.1:53").unwrap()).unwrap_err(),
            "No such service"
        );
        let rules = render(answer(), &args("-S -n").unwrap()).unwrap();
        assert!(
            rules
                .starts_with("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n"),
            "{rules}"
        );
    }

    fn refusal(s: &str) -> (u8, String) {
        let e = parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>()).unwrap_err();
        (e.exit_code(), e.message("ipvsadm"))
    }

    /// What ipvsadm 1.31 prints and exits with for each (ipvsadm.c:
    /// `set_option`, `set_command`, `generic_opt_check`, `tryhelp_exit`,
    /// `parse_timeout`, `string_to_number`).
    #[test]
    fn ipvsadms_refusals_and_exit_codes() {
        let cases: &[(&str, u8, &str)] = &[
            ("-A -t 10.0.0.1:80 -s rr -s wrr", 2, "multiple 'scheduler' options specified"),
            ("-A -t 10.0.0.1:80 -u 10.0.0.1:53", 2, "multiple 'service-address' options specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -m -g", 2, "multiple 'forwarding-method' options specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -r 10.0.0.3", 2, "multiple 'real-server' options specified"),
            ("-C -t 10.0.0.1:80", 2, "Illegal 'service-address' option with the 'flush' command"),
            ("-c -t 10.0.0.1:80", 255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information."),
            ("-S -t 10.0.0.1:80", 2, "Illegal 'service-address' option with the 'save' command"),
            ("-D -t 10.0.0.1:80 -s rr", 2, "Illegal 'scheduler' option with the 'delete-service' command"),
            ("-a -t 10.0.0.1:80", 2, "You need to supply the 'real-server' option for the 'add-server' command"),
            ("-A -s rr", 2, "You need to supply the 'service-address' option for the 'add-service' command"),
            ("-L -c -t 10.0.0.1:80", 2, "The option 'service-address' conflicts with the 'connection' option in the 'list' command"),
            ("-L -c --stats", 2, "options conflicts in the list command"),
            ("-L -L", 2, "multiple commands specified"),
            ("-t 10.0.0.1:80 -A", 255, "Try `ipvsadm -h' or 'ipvsadm --help' for more information."),
            ("-A -t 10.0.0.1:80 -p 0", 2, "invalid timeout value `0' specified"),
            ("-A -t 10.0.0.1:80 -p 2678401", 2, "invalid timeout value `2678401' specified"),
            ("--set 900 120", 2, "--set option requires 3 timeout values"),
            ("--set 900 120 4294967295", 2, "invalid timeout value `4294967295' specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536", 2, "illegal weight specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -x -1", 2, "illegal u_threshold specified"),
            ("-A -t", 255, "-t: missing argument"),
            ("-L --bogus", 255, "--bogus: unknown option"),
            ("-A -t 10.77.0.300:80", 2, "illegal virtual server address[:port] specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -m --tun-type ipip", 2, "Tunnel options conflict with forward method"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type vxlan", 2, "illegal tunnel type specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2 -i --tun-type ipip --tun-csum", 2, "Illegal 'tun-csum' option with the 'ipip' tunnel type"),
            ("-A -t nosuchhost.invalid:80", 2, "illegal virtual server address[:port] specified"),
            ("-a -t 10.0.0.1:80 -r 10.0.0.2:nosuchport", 2, "illegal real server address[:port] specified"),
        ];
        for (line, code, text) in cases {
            assert_eq!(refusal(line), (*code, (*text).to_string()), "{line}");
        }
    }

    #[test]
    fn ipvsadms_defaults() {
        // -p alone: 360 s; -M without -p is accepted.
        assert_eq!(args("-A -t 10.0.0.1:80 -p").unwrap().persistent, Some(360));
        assert!(args("-A -t 10.0.0.1:80 -M 255.255.255.0").is_ok());
        // -e sets what the line says: weight 1 and thresholds 0 unless given.
        let a = args("-e -t 10.0.0.1:80 -r 10.0.0.2 -m").unwrap();
        assert_eq!((a.weight, a.upper, a.lower), (Some(1), Some(0), Some(0)));
        let a = args("-e -t 10.0.0.1:80 -r 10.0.0.2 -m -w 0 -x 9").unwrap();
        assert_eq!((a.weight, a.upper, a.lower), (Some(0), Some(9), Some(0)));
        // -a keeps "not given" (the server's own default applies).
        let a = args("-a -t 10.0.0.1:80 -r 10.0.0.2 -m").unwrap();
        assert_eq!((a.weight, a.upper, a.lower), (None, None, None));
        // No method is -g (direct routing), on -a and -e, as ipvsadm.
        for line in [
            "-a -t 10.0.0.1:80 -r 10.0.0.2",
            "-e -t 10.0.0.1:80 -r 10.0.0.2 -w 2",
        ] {
            assert_eq!(
                args(line).unwrap().forward.as_deref(),
                Some("route"),
                "{line}"
            );
        }
        assert_eq!(
            args("-a -t 10.0.0.1:80 -r 10.0.0.2 --fullnat")
                .unwrap()
                .forward
                .as_deref(),
            Some("fullnat")
        );
        // ipvsadm -S's own line for an IPIP server restores.
        let a = args("-a -t 10.0.0.1:80 -r 10.0.0.2:80 -i -w 1 --tun-type ipip").unwrap();
        assert_eq!(a.forward.as_deref(), Some("tunnel"));
        // Names as ipvsadm takes them (/etc/hosts, /etc/services).
        let a = args("-a -t localhost:http -r 127.0.0.2:www -m").unwrap();
        assert_eq!(a.service, Some(("tcp".into(), "127.0.0.1:80".into())));
        assert_eq!(a.server.as_deref(), Some("127.0.0.2:80"));
        // --socket may precede the command; no command lists.
        assert_eq!(args("--socket /tmp/x -L -n").unwrap().cmd, Some(Cmd::List));
        assert_eq!(args("--socket /tmp/x").unwrap().cmd, None);
    }

    #[test]
    fn sync_daemon_commands_as_ipvsadm_reads_them() {
        let a = args(
            "--start-daemon backup --mcast-interface dpdk0 --syncid 7 --mcast-group 224.0.0.99 \
             --mcast-port 9000 --mcast-ttl 3 --sync-maxlen 1400",
        )
        .unwrap();
        assert_eq!(
            request(&a).unwrap(),
            Request::StartDaemon(api::DaemonSpec {
                role: "backup".into(),
                interface: Some("dpdk0".into()),
                sync_id: Some(7),
                group: Some("224.0.0.99".into()),
                port: Some(9000),
                ttl: Some(3),
                maxlen: Some(1400),
            })
        );
        assert_eq!(
            request(&args("--stop-daemon master").unwrap()).unwrap(),
            Request::StopDaemon {
                role: "master".into()
            }
        );
        assert_eq!(
            request(&args("-L --daemon").unwrap()).unwrap(),
            Request::ListDaemons
        );
        assert_eq!(
            args("--start-daemon master --syncid 256").unwrap_err(),
            "illegal syncid specified"
        );
        assert_eq!(
            args("--start-daemon master --mcast-group 10.0.0.1").unwrap_err(),
            "invalid IPv4 mcast-group `10.0.0.1'"
        );
        assert_eq!(
            args("--start-daemon master --mcast-port 0").unwrap_err(),
            "illegal mcast-port specified"
        );
        assert_eq!(
            args("--start-daemon master --mcast-ttl 256").unwrap_err(),
            "illegal mcast-ttl specified"
        );
        assert_eq!(
            args("--start-daemon master --sync-maxlen 65508").unwrap_err(),
            "illegal sync-maxlen specified"
        );
        // ipvsadm's option table: --stop-daemon takes no settings.
        assert_eq!(
            args("--stop-daemon master --mcast-port 9000").unwrap_err(),
            "Illegal 'mcast-port' option with the 'stop-daemon' command"
        );
        assert!(args("--start-daemon master -t 1.2.3.4:80").is_err());
    }

    #[test]
    fn bad_commands_are_refused() {
        assert!(args("-a -L").unwrap_err().contains("multiple commands"));
        assert_eq!(
            args("-a -t 1.2.3.4:80 -r 1.2.3.5 -w").unwrap_err(),
            "-w: missing argument"
        );
        assert!(args("-a -t 1.2.3.4:80 -r 1.2.3.5 -w 70000")
            .unwrap_err()
            .contains("illegal weight"));
        assert_eq!(args("-L -q").unwrap_err(), "-q: unknown option");
        assert_eq!(args("-L --bogus").unwrap_err(), "--bogus: unknown option");
        assert!(args("-Z -L").unwrap_err().contains("multiple commands"));
        assert!(
            request(&args("-Z -t 10.0.0.1").unwrap()).is_ok(),
            "the daemon checks the address"
        );
        assert!(args("-a -t 1.2.3.4:80 -r 1.2.3.5 -x many")
            .unwrap_err()
            .contains("illegal u_threshold specified"));
        assert_eq!(
            args("--start-daemon primary").unwrap_err(),
            "illegal start-daemon parameter specified"
        );
        assert_eq!(
            args("--stop-daemon x").unwrap_err(),
            "illegal start_daemon specified"
        );
        assert!(args("-a -t 1.2.3.4:80")
            .unwrap_err()
            .contains("'real-server' option"));
        assert!(args("-A -s rr")
            .unwrap_err()
            .contains("'service-address' option"));
        assert!(request(&args("-A -6 -t 10.0.0.1:80").unwrap())
            .unwrap_err()
            .contains("-6 needs an IPv6 address"));
    }

    #[test]
    fn client_address_goes_with_add_and_edit_service() {
        for cmd in ["-A", "-E"] {
            let a = args(&format!(
                "{cmd} -t 10.0.0.1:80 -s rr --client-address proxy-v1"
            ))
            .unwrap();
            let spec = match request(&a) {
                Ok(Request::AddService(s) | Request::EditService(s)) => s,
                other => panic!("{other:?}"),
            };
            assert_eq!(spec.client_address.as_deref(), Some("proxy-v1"));
        }
        let a = args("-A -t 10.0.0.1:80").unwrap();
        assert!(matches!(
            request(&a),
            Ok(Request::AddService(ServiceSpec {
                client_address: None,
                ..
            }))
        ));
        assert!(
            request(&args("-a -t 10.0.0.1:80 -r 10.0.0.2 --client-address toa").unwrap())
                .unwrap_err()
                .contains("goes with -A or -E")
        );
        assert!(
            args("-A -t 10.0.0.1:80 --client-address toa --client-address none")
                .unwrap_err()
                .to_string()
                .contains("multiple 'client-address'")
        );
        assert!(args("-A -t 10.0.0.1:80 --client-address")
            .unwrap_err()
            .to_string()
            .contains("missing argument"));
    }

    #[test]
    fn synproxy_is_dpvs_j_enable_or_disable() {
        for (line, want) in [
            ("-A -t 10.0.0.1:80 -j enable", Some(true)),
            ("-E -t 10.0.0.1:80 --synproxy disable", Some(false)),
            ("-E -t 10.0.0.1:80 -s rr", None),
        ] {
            let spec = match request(&args(line).unwrap()) {
                Ok(Request::AddService(s) | Request::EditService(s)) => s,
                other => panic!("{other:?}"),
            };
            assert_eq!(spec.syn_proxy, want, "{line}");
        }
        assert!(args("-A -t 10.0.0.1:80 -j on")
            .unwrap_err()
            .to_string()
            .contains("synproxy switch must be enable or disable"));
        assert!(
            request(&args("-a -t 10.0.0.1:80 -r 10.0.0.2 -j enable").unwrap())
                .unwrap_err()
                .contains("goes with -A or -E")
        );
    }

    #[test]
    fn ipv6_services_parse_list_and_save() {
        let a = args("-a -t [fd77::100]:80 -r [fd77::11]:80 -m -w 2").unwrap();
        match request(&a) {
            Ok(Request::AddServer(s)) => assert_eq!(
                (s.vip.as_str(), s.rs.as_str(), s.weight),
                ("[fd77::100]:80", "[fd77::11]:80", Some(2))
            ),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            request(&args("-A -6 -t [fd77::100]:80 -s rr -p 60 -M 128").unwrap()),
            Ok(Request::AddService(ServiceSpec {
                persistent: Some(60),
                ..
            }))
        ));
        assert!(matches!(
            request(&args("-P -t [fd77::100]:80 -z fd77::200").unwrap()),
            Ok(Request::AddLocalAddress { .. })
        ));
        assert_eq!(
            args("-A -t[fd77::100]:80").unwrap().service,
            Some(("tcp".into(), "[fd77::100]:80".into()))
        );
        let answer = || Response::Services {
            table_size: 4096,
            services: vec![
                view("TCP", "[fd77::100]:80", &["[fd77::12]:80", "[fd77::11]:80"]),
                view("UDP", "10.0.0.1:53", &["10.0.0.3:53"]),
                view("TCP", "10.0.0.1:80", &["10.0.0.2:80"]),
            ],
        };
        let all = render(answer(), &args("-L -n").unwrap()).unwrap();
        let lines: Vec<&str> = all.lines().collect();
        // IPv4 services first (AF_INET < AF_INET6), as libipvs sorts.
        assert_eq!(
            (lines[3], lines[5], lines[7]),
            (
                "TCP  10.0.0.1:80 rr",
                "UDP  10.0.0.1:53 rr",
                "TCP  [fd77::100]:80 rr"
            ),
            "{all}"
        );
        assert!(
            lines[8].starts_with("  -> [fd77::11]:80                Masq"),
            "{all}"
        );
        let one = render(answer(), &args("-L -n -t [fd77::100]:80").unwrap()).unwrap();
        assert_eq!(one.lines().nth(2), Some("TCP  [fd77::100]:80 rr"), "{one}");
        let rules = render(answer(), &args("-S -n").unwrap()).unwrap();
        assert!(
            rules.contains(
                "-A -t [fd77::100]:80 -s rr\n-a -t [fd77::100]:80 -r [fd77::11]:80 -m -w 1\n"
            ),
            "{rules}"
        );
    }
}

#[cfg(test)]
mod usage_tests {
    use super::*;

    /// `-h` names every option ipvsadm 1.31's usage text names (its
    /// `usage_exit`, long forms) and every one rvs adds, each accepted by
    /// the parser or refused by name as not supported yet.
    #[test]
    fn help_lists_every_option() {
        const IPVSADM: &[&str] = &[
            "add-service",
            "edit-service",
            "delete-service",
            "clear",
            "restore",
            "save",
            "add-server",
            "edit-server",
            "delete-server",
            "list",
            "zero",
            "set",
            "start-daemon",
            "stop-daemon",
            "help",
            "tcp-service",
            "udp-service",
            "sctp-service",
            "fwmark-service",
            "ipv6",
            "scheduler",
            "pe",
            "persistent",
            "netmask",
            "real-server",
            "gatewaying",
            "ipip",
            "masquerading",
            "tun-type",
            "tun-port",
            "tun-nocsum",
            "tun-csum",
            "tun-remcsum",
            "weight",
            "u-threshold",
            "l-threshold",
            "connection",
            "timeout",
            "daemon",
            "stats",
            "rate",
            "exact",
            "thresholds",
            "persistent-conn",
            "tun-info",
            "nosort",
            "sort",
            "ops",
            "numeric",
            "sched-flags",
            "syncid",
            "mcast-interface",
            "mcast-group",
            "mcast-port",
            "mcast-ttl",
            "sync-maxlen",
        ];
        const RVS: &[&str] = &[
            "add-laddr",
            "del-laddr",
            "laddr",
            "fullnat",
            "client-address",
            "synproxy",
            "reload",
            "export-config",
            "stats-dp",
            "socket",
        ];
        for name in IPVSADM.iter().chain(RVS) {
            assert!(
                USAGE.contains(&format!("--{name} "))
                    || USAGE.contains(&format!("--{name}\n"))
                    || USAGE.contains(&format!("--{name},")),
                "-h does not name --{name}"
            );
        }
        for short in [
            "-A", "-E", "-D", "-C", "-R", "-S", "-a", "-e", "-d", "-P", "-Q", "-L", "-Z", "-h",
            "-t", "-u", "-f", "-6", "-s", "-p", "-M", "-r", "-z", "-g", "-i", "-m", "-w", "-x",
            "-y", "-b", "-c", "-o", "-n", "-X", "-j",
        ] {
            assert!(
                USAGE.contains(&format!("{short} ")) || USAGE.contains(&format!("{short}|")),
                "-h does not name {short}"
            );
        }
    }
}

#[cfg(test)]
mod range_tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
            .map_err(|e| e.to_string())
    }

    /// The values the config file refuses are refused here too (the bounds
    /// come from `config::ranges`), in ipvsadm's words.
    #[test]
    fn run_time_values_have_the_configs_ranges() {
        let e = args("--set 4294967295 0 0").err().unwrap();
        assert_eq!(e, "invalid timeout value `4294967295' specified");
        assert_eq!(
            args("--set 2678400 0 120").unwrap().set,
            vec![2678400, 0, 120]
        );
        assert!(args("--set 2678401 0 120").is_err());
        let e = args("-A -t 10.0.0.1:80 -p 4294967295").err().unwrap();
        assert_eq!(e, "invalid timeout value `4294967295' specified");
        assert!(args("-A -t 10.0.0.1:80 -p 2678400").is_ok());
        assert!(args("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536").is_err());
        assert!(args("-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1").is_err());
        let e = args("-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483648")
            .err()
            .unwrap();
        assert_eq!(e, "illegal u_threshold specified");
        assert!(args("-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483647 -y 5").is_ok());
    }
}
