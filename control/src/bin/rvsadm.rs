//! `rvsadm`: the ipvsadm-compatible admin tool. Talks to rvsd over its
//! control socket. Invoked as `ipvsadm` (a link), it behaves the same.
//!
//! Supported: `-A/-E/-D/-C` services, `-a/-e/-d` real servers, `-P/-Q`
//! FULLNAT local addresses (DPVS's `--add-laddr`/`--del-laddr`), `-L`
//! listings (`-c`, `--timeout`, `--stats`, `--rate`, ..., of all services
//! or of one with `-t`/`-u`, sorted as ipvsadm sorts them unless
//! `--nosort`), `-Z` (zero counters), `-S`/`-R`, `--set`, `--reload`,
//! `--export-config` (the running services as config TOML), and
//! `--stats-dp`. Options of ipvsadm's set that rvs cannot honour yet answer
//! "not supported yet" and change nothing.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use rvs_control::api::{self, Request, Response, ServerSpec, ServiceSpec};
use rvs_control::config::ranges;
use rvs_control::ipvsadm_fmt;

const USAGE: &str = "\
Usage:
  rvsadm -A|E -t|u service-address [-s scheduler] [-p [timeout]] [-M netmask]
  rvsadm -D -t|u service-address
  rvsadm -C
  rvsadm -R
  rvsadm -S [-n]
  rvsadm -a|e -t|u service-address -r server-address [--fullnat|-g|-i|-m] [-w weight]
  rvsadm -d -t|u service-address -r server-address
  rvsadm -P|Q -t|u service-address -z local-address
  rvsadm -L|l [-t|u service-address] [options]
  rvsadm -Z [-t|u service-address]
  rvsadm --set tcp tcpfin udp
  rvsadm --reload
  rvsadm --export-config
  rvsadm --stats-dp
  rvsadm top [--interval SECONDS] [--count N]
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
  --reload                    re-read rvsd's config file and apply the difference
  --export-config             print the running services and timeouts as config TOML
  --stats-dp                  data-plane counters per port and worker
  top                         live per-port and per-worker rates, testpmd style
  --help            -h        display this help message
Options:
  --tcp-service  -t service-address   service-address is host:port ([v6]:port for IPv6)
  --udp-service  -u service-address   service-address is host:port ([v6]:port for IPv6)
  --ipv6         -6                   IPv6 service (the bracketed address says so anyway)
  --scheduler    -s scheduler         one of rr|wrr|lc|wlc|lblc|lblcr|dh|sh|sed|nq|..., the default is wlc
  --persistent   -p [timeout]         persistent service
  --netmask      -M netmask           persistent granularity mask (IPv6: a prefix length)
  --real-server  -r server-address    server-address is host (and port)
  --laddr        -z local-address     FULLNAT local address
  --fullnat                           FULLNAT (the method rvs forwards with)
  --gatewaying   -g                   gatewaying (direct routing)
  --ipip         -i                   ipip encapsulation (tunneling)
  --masquerading -m                   masquerading (NAT)
  --weight       -w weight            capacity of real server
  --u-threshold  -x uthreshold        upper threshold of connections
  --l-threshold  -y lthreshold        lower threshold of connections
  --sched-flags  -b flag[,flag]       scheduler flags (sh-fallback, sh-port, mh-fallback, mh-port)
  --thresholds                        output of thresholds information
  --stats                             output of statistics information
  --rate                              output of rate information
  --exact                             expand numbers (display exact values)
  --persistent-conn                   output of persistent connection info
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --nosort                            disable sorting output of service/server entries
  --numeric      -n                   numeric output of addresses and ports (always on)
  --socket PATH                       control socket (default $RVS_SOCKET or /run/rvs/rvsd.sock)
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
    Top,
    Zero,
    ExportConfig,
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
    interval: Option<f64>,
    count: Option<u32>,
}

fn set_cmd(a: &mut Args, c: Cmd) -> Result<(), String> {
    match a.cmd {
        Some(old) if old != c => Err("multiple commands specified".into()),
        _ => {
            a.cmd = Some(c);
            Ok(())
        }
    }
}

type ArgIter<'a> = std::iter::Peekable<std::slice::Iter<'a, String>>;

fn value(it: &mut ArgIter<'_>, opt: &str) -> Result<String, String> {
    it.next()
        .cloned()
        .ok_or_else(|| format!("option {opt} requires an argument"))
}

/// `-p [timeout]`: the next word is the timeout when it is a number.
fn persistent(it: &mut ArgIter<'_>) -> Result<u32, String> {
    match it.peek() {
        Some(v) if !v.starts_with('-') => {
            let v = it.next().cloned().unwrap_or_default();
            ranges::word(&v)
                .ok_or_else(|| format!("illegal timeout for persistent service: '{v}'"))
                .and_then(|t| {
                    ranges::persistent_secs(t)
                        .map_err(|e| format!("illegal timeout for persistent service: '{v}' ({e})"))
                })
        }
        _ => Ok(300),
    }
}

fn unsupported(what: &str) -> String {
    format!("{what} is not supported yet")
}

/// Applies one option letter (short form) or its long name.
fn option(a: &mut Args, name: &str, it: &mut ArgIter<'_>) -> Result<(), String> {
    match name {
        "A" | "add-service" => set_cmd(a, Cmd::AddService),
        "E" | "edit-service" => set_cmd(a, Cmd::EditService),
        "D" | "delete-service" => set_cmd(a, Cmd::DeleteService),
        "C" | "clear" => set_cmd(a, Cmd::Clear),
        "R" | "restore" => set_cmd(a, Cmd::Restore),
        "S" | "save" => set_cmd(a, Cmd::Save),
        "a" | "add-server" => set_cmd(a, Cmd::AddServer),
        "e" | "edit-server" => set_cmd(a, Cmd::EditServer),
        "d" | "delete-server" => set_cmd(a, Cmd::DeleteServer),
        "P" | "add-laddr" => set_cmd(a, Cmd::AddLaddr),
        "Q" | "del-laddr" => set_cmd(a, Cmd::DeleteLaddr),
        "L" | "l" | "list" => set_cmd(a, Cmd::List),
        "h" | "help" => set_cmd(a, Cmd::Help),
        "reload" => set_cmd(a, Cmd::Reload),
        "Z" | "zero" => set_cmd(a, Cmd::Zero),
        "export-config" => set_cmd(a, Cmd::ExportConfig),
        "stats-dp" => set_cmd(a, Cmd::Stats),
        "top" => set_cmd(a, Cmd::Top),
        "interval" => {
            let v = value(it, "--interval")?;
            a.interval = Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|s| *s >= 0.1)
                    .ok_or_else(|| format!("illegal interval '{v}'"))?,
            );
            Ok(())
        }
        "count" => {
            let v = value(it, "--count")?;
            a.count = Some(
                v.parse::<u32>()
                    .map_err(|_| format!("illegal count '{v}'"))?,
            );
            Ok(())
        }
        "set" => {
            set_cmd(a, Cmd::Set)?;
            for _ in 0..3 {
                let v = value(it, "--set")?;
                // 0 leaves a timeout as it is (ipvsadm).
                let secs = match ranges::word(&v) {
                    Some(0) => Ok(0),
                    Some(t) => ranges::timeout_secs(t),
                    None => Err("not a number".into()),
                };
                a.set.push(secs.map_err(|e| {
                    format!("illegal timeout value '{v}' ({e}; 0 leaves it unchanged)")
                })?);
            }
            Ok(())
        }
        "n" | "numeric" => Ok(()),
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
                    .ok_or_else(|| format!("illegal weight specified: '{v}' (0..=65535)"))?,
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
        "f" | "fwmark-service" => Err(unsupported("-f (firewall-mark services)")),
        "6" | "ipv6" => {
            a.ipv6 = true;
            Ok(())
        }
        "x" | "u-threshold" => {
            let v = value(it, "-x")?;
            a.upper = Some(
                ranges::word(&v)
                    .ok_or_else(|| "not a number".to_string())
                    .and_then(|t| ranges::threshold(t, "upper threshold"))
                    .map_err(|e| format!("illegal upper threshold '{v}' ({e})"))?,
            );
            Ok(())
        }
        "y" | "l-threshold" => {
            let v = value(it, "-y")?;
            a.lower = Some(
                ranges::word(&v)
                    .ok_or_else(|| "not a number".to_string())
                    .and_then(|t| ranges::threshold(t, "lower threshold"))
                    .map_err(|e| format!("illegal lower threshold '{v}' ({e})"))?,
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
        "start-daemon" | "stop-daemon" | "daemon" | "mcast-interface" | "syncid" => Err(
            unsupported("connection synchronisation (--start-daemon, --stop-daemon, --daemon)"),
        ),
        s if s.len() == 1 => Err(format!("invalid option -- '{s}'")),
        s => Err(format!("unrecognized option '--{s}'")),
    }
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter().peekable();
    while let Some(arg) = it.next() {
        if let Some(long) = arg.strip_prefix("--") {
            option(&mut a, long, &mut it)?;
        } else if let Some(shorts) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let letters: Vec<char> = shorts.chars().collect();
            for (k, c) in letters.iter().enumerate() {
                let takes_value = matches!(
                    c,
                    't' | 'u' | 'r' | 'w' | 's' | 'M' | 'b' | 'z' | 'p' | 'x' | 'y'
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
        } else if arg == "top" {
            option(&mut a, "top", &mut it)?;
        } else {
            return Err(format!("unexpected argument '{arg}'"));
        }
    }
    Ok(a)
}

fn service(a: &Args) -> Result<ServiceSpec, String> {
    let (proto, vip) = a
        .service
        .clone()
        .ok_or("service address not specified (-t or -u)")?;
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
    })
}

fn request(a: &Args) -> Result<Request, String> {
    let cmd = a.cmd.unwrap_or(Cmd::List);
    Ok(match cmd {
        Cmd::List if a.timeout => Request::GetTimeouts,
        Cmd::List if a.connections => Request::ListConnections,
        Cmd::List if a.columns == Some(ipvsadm_fmt::Columns::PersistentConn) => {
            Request::ListServicesWithTemplates
        }
        // -S is formatted here (sorted as ipvsadm sorts, unless --nosort).
        Cmd::List | Cmd::Save => Request::ListServices,
        Cmd::Stats | Cmd::Top => Request::Stats,
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
            let (proto, vip) = a
                .service
                .clone()
                .ok_or("service address not specified (-t or -u)")?;
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
                return Ok(ipvsadm_fmt::save(&services));
            }
            match &a.service {
                // `-L -t SERVICE`: that service alone, as ipvsadm's `list_service`.
                Some((proto, vip)) => {
                    let proto = proto.to_uppercase();
                    let wanted = vip.parse::<std::net::SocketAddr>().map_err(|_| {
                        format!("illegal virtual server address[:port] specified: {vip}")
                    })?;
                    let found = services
                        .iter()
                        .find(|s| s.proto == proto && s.vip.parse() == Ok(wanted))
                        .ok_or("No such service")?;
                    ipvsadm_fmt::list_one(found, columns, a.exact)
                }
                None => ipvsadm_fmt::list_services_with(table_size, &services, columns, a.exact),
            }
        }
        Response::Connections(c) => ipvsadm_fmt::list_connections(&c),
        Response::Timeouts { tcp, tcpfin, udp } => ipvsadm_fmt::timeouts(tcp, tcpfin, udp),
        Response::Rules(text) | Response::ConfigToml(text) => text,
        Response::Ok => String::new(),
        Response::Stats { workers, ports } => {
            let mut t = String::new();
            for p in ports {
                t += &format!(
                    "port {}: rx {} tx {} rx-bytes {} tx-bytes {} rx-missed {} rx-errors {} tx-errors {}\n",
                    p.name, p.rx_packets, p.tx_packets, p.rx_bytes, p.tx_bytes, p.rx_missed, p.rx_errors, p.tx_errors
                );
            }
            for w in workers {
                t += &format!(
                    "worker lcore {}: rx {} tx {} sessions {} created {} expired {} redirected out {} in {} generation {}\n",
                    w.lcore, w.rx_packets, w.tx_packets, w.sessions, w.sessions_created, w.sessions_expired, w.redirected_out, w.redirected_in, w.generation
                );
                t += &format!("  bytes rx {} tx {}\n", w.rx_bytes, w.tx_bytes);
                for (reason, n) in w.drops {
                    t += &format!("  drop {reason}: {n}\n");
                }
            }
            t
        }
        Response::Ip(_) => return Err("unexpected answer from rvsd".into()),
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
    if rvs_control::iproute::is_command(&argv) {
        return rvs_control::iproute::run(&prog, &argv);
    }
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{prog}: {e}\nTry `{prog} -h' or '{prog} --help' for more information.");
            return ExitCode::from(2);
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
    if args.cmd == Some(Cmd::Top) {
        return top(&prog, &socket, args.interval.unwrap_or(1.0), args.count);
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
fn top(prog: &str, socket: &std::path::Path, interval: f64, count: Option<u32>) -> ExitCode {
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

/// `-R`: each line of stdin is one command, as `-S` writes them. Stops at
/// the first bad line, naming it.
fn restore(prog: &str, socket: &std::path::Path) -> ExitCode {
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let Ok(line) = line else { break };
        let words: Vec<String> = line.split_whitespace().map(String::from).collect();
        if words.is_empty() || words[0].starts_with('#') {
            continue;
        }
        let result = parse(&words).and_then(|a| {
            if matches!(a.cmd, Some(Cmd::Restore | Cmd::Help | Cmd::Top)) {
                return Err("not allowed in a restore file".into());
            }
            let req = request(&a)?;
            api::call(socket, &req)
                .map_err(|e| e.to_string())
                .and_then(|r| render(r, &a))
        });
        if let Err(e) = result {
            eprintln!("{prog}: line {}: {line}: {e}", n + 1);
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
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
        assert_eq!(a.persistent, Some(300), "-p without a value means 300");
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
            args("-t10.0.0.1:80 -A").unwrap().service,
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
            request(&args("-S --nosort").unwrap()),
            Ok(Request::ListServices)
        ));
        assert!(args("-S --nosort").unwrap().nosort);
        let a = args("top --interval 0.5 --count 2").unwrap();
        assert_eq!(
            (a.cmd, a.interval, a.count),
            (Some(Cmd::Top), Some(0.5), Some(2))
        );
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
        let rules = render(answer(), &args("-S").unwrap()).unwrap();
        assert!(
            rules
                .starts_with("-A -t 10.0.0.1:80 -s rr\n-a -t 10.0.0.1:80 -r 10.0.0.2:80 -m -w 1\n"),
            "{rules}"
        );
    }

    #[test]
    fn bad_commands_are_refused() {
        assert!(args("-a -L").unwrap_err().contains("multiple commands"));
        assert!(args("-w").unwrap_err().contains("requires an argument"));
        assert!(args("-a -t 1.2.3.4:80 -r 1.2.3.5 -w 70000")
            .unwrap_err()
            .contains("illegal weight"));
        assert!(args("-q").unwrap_err().contains("invalid option"));
        assert!(args("--bogus").unwrap_err().contains("unrecognized option"));
        assert!(args("-Z -L").unwrap_err().contains("multiple commands"));
        assert!(
            request(&args("-Z -t 10.0.0.1").unwrap()).is_ok(),
            "the daemon checks the address"
        );
        assert!(args("-a -t 1.2.3.4:80 -r 1.2.3.5 -x many")
            .unwrap_err()
            .contains("illegal upper threshold"));
        assert!(args("--start-daemon master")
            .unwrap_err()
            .contains("not supported yet"));
        assert!(request(&args("-a -t 1.2.3.4:80").unwrap())
            .unwrap_err()
            .contains("real server"));
        assert!(request(&args("-A -s rr").unwrap())
            .unwrap_err()
            .contains("service address"));
        assert!(request(&args("-A -6 -t 10.0.0.1:80").unwrap())
            .unwrap_err()
            .contains("-6 needs an IPv6 address"));
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
            args("-t[fd77::100]:80 -A").unwrap().service,
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
mod range_tests {
    use super::*;

    fn args(s: &str) -> Result<Args, String> {
        parse(&s.split_whitespace().map(String::from).collect::<Vec<_>>())
    }

    /// The values the config file refuses are refused here too, naming
    /// the range (see `config::ranges`).
    #[test]
    fn run_time_values_have_the_configs_ranges() {
        let e = args("--set 4294967295 0 0").err().unwrap();
        assert!(e.contains("timeout must be 1..=2678400 seconds"), "{e}");
        assert_eq!(
            args("--set 2678400 0 120").unwrap().set,
            vec![2678400, 0, 120]
        );
        let e = args("-A -t 10.0.0.1:80 -p 4294967295").err().unwrap();
        assert!(e.contains("persistent must be 1..=2678400"), "{e}");
        assert!(args("-A -t 10.0.0.1:80 -p 2678400").is_ok());
        assert!(args("-a -t 10.0.0.1:80 -r 10.0.0.2 -w 65536").is_err());
        assert!(args("-a -t 10.0.0.1:80 -r 10.0.0.2 -w -1").is_err());
        let e = args("-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483648")
            .err()
            .unwrap();
        assert!(e.contains("0..=2147483647"), "{e}");
        assert!(args("-a -t 10.0.0.1:80 -r 10.0.0.2 -x 2147483647 -y 5").is_ok());
    }
}
