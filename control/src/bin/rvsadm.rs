//! `rvsadm`: the ipvsadm-compatible admin tool. Talks to rvsd over its
//! control socket. So far: listing (`-L`, `-c`, `--timeout`), real-server
//! changes (`-a`, `-e`, `-d`) and `--set`; the rest of ipvsadm's command set
//! is issue #6 and answers "not supported yet".

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use rvs_control::api::{self, Request, Response, ServerSpec};
use rvs_control::ipvsadm_fmt;

const USAGE: &str = "\
Usage:
  rvsadm -a|e -t|u service-address -r server-address [-g|-i|-m|--fullnat] [-w weight]
  rvsadm -d -t|u service-address -r server-address
  rvsadm -L|l [-n] [-c] [--timeout]
  rvsadm --set tcp tcpfin udp
  rvsadm --stats-dp               data-plane counters per worker
Options:
  --tcp-service  -t service-address   service-address is host:port
  --udp-service  -u service-address
  --real-server  -r server-address    server-address is host (and port)
  --fullnat                           FULLNAT (the only method rvs forwards with so far)
  --gatewaying   -g / --ipip -i / --masquerading -m   refused until those modes land
  --weight       -w weight            capacity of real server
  --numeric      -n                   numeric output (always on)
  --connection   -c                   output of current IPVS connections
  --timeout                           output of timeout (tcp tcpfin udp)
  --socket PATH                       control socket (default $RVS_SOCKET or /run/rvs/rvsd.sock)
";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cmd {
    List,
    Add,
    Edit,
    Delete,
    Set,
    Stats,
    Help,
}

#[derive(Debug, Default)]
struct Args {
    cmd: Option<Cmd>,
    connections: bool,
    timeout: bool,
    service: Option<(String, String)>,
    server: Option<String>,
    weight: Option<u32>,
    forward: Option<String>,
    set: Vec<u32>,
    socket: Option<PathBuf>,
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

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter().peekable();
    let value = |it: &mut std::iter::Peekable<std::slice::Iter<'_, String>>, opt: &str| -> Result<String, String> {
        it.next().cloned().ok_or_else(|| format!("option {opt} requires an argument"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--list" => set_cmd(&mut a, Cmd::List)?,
            "--add-server" => set_cmd(&mut a, Cmd::Add)?,
            "--edit-server" => set_cmd(&mut a, Cmd::Edit)?,
            "--delete-server" => set_cmd(&mut a, Cmd::Delete)?,
            "--stats-dp" => set_cmd(&mut a, Cmd::Stats)?,
            "--help" => set_cmd(&mut a, Cmd::Help)?,
            "--set" => {
                set_cmd(&mut a, Cmd::Set)?;
                for _ in 0..3 {
                    let v = value(&mut it, "--set")?;
                    a.set.push(v.parse().map_err(|_| format!("illegal timeout value '{v}'"))?);
                }
            }
            "--numeric" => {}
            "--connection" => a.connections = true,
            "--timeout" => a.timeout = true,
            "--tcp-service" => a.service = Some(("tcp".into(), value(&mut it, arg)?)),
            "--udp-service" => a.service = Some(("udp".into(), value(&mut it, arg)?)),
            "--real-server" => a.server = Some(value(&mut it, arg)?),
            "--weight" => a.weight = Some(weight(&value(&mut it, arg)?)?),
            "--fullnat" => a.forward = Some("fullnat".into()),
            "--gatewaying" => a.forward = Some("route".into()),
            "--ipip" => a.forward = Some("tunnel".into()),
            "--masquerading" => a.forward = Some("masq".into()),
            "--socket" => a.socket = Some(value(&mut it, arg)?.into()),
            s if s.starts_with("--") => return Err(format!("unrecognized option '{s}'")),
            s if s.starts_with('-') && s.len() > 1 => {
                let flags: Vec<char> = s[1..].chars().collect();
                for (k, c) in flags.iter().enumerate() {
                    let last = k + 1 == flags.len();
                    let needs_value = matches!(c, 't' | 'u' | 'r' | 'w');
                    if needs_value && !last {
                        return Err(format!("option -{c} requires an argument"));
                    }
                    match c {
                        'L' | 'l' => set_cmd(&mut a, Cmd::List)?,
                        'a' => set_cmd(&mut a, Cmd::Add)?,
                        'e' => set_cmd(&mut a, Cmd::Edit)?,
                        'd' => set_cmd(&mut a, Cmd::Delete)?,
                        'h' => set_cmd(&mut a, Cmd::Help)?,
                        'n' => {}
                        'c' => a.connections = true,
                        'g' => a.forward = Some("route".into()),
                        'i' => a.forward = Some("tunnel".into()),
                        'm' => a.forward = Some("masq".into()),
                        't' => a.service = Some(("tcp".into(), value(&mut it, "-t")?)),
                        'u' => a.service = Some(("udp".into(), value(&mut it, "-u")?)),
                        'r' => a.server = Some(value(&mut it, "-r")?),
                        'w' => a.weight = Some(weight(&value(&mut it, "-w")?)?),
                        'A' | 'E' | 'D' | 'C' | 'R' | 'S' | 'Z' | 'f' | 's' | 'p' | 'M' | 'x' | 'y' | 'o' | 'b' => {
                            return Err(format!("option -{c} is not supported yet"));
                        }
                        other => return Err(format!("invalid option -- '{other}'")),
                    }
                }
            }
            s => return Err(format!("unexpected argument '{s}'")),
        }
    }
    Ok(a)
}

fn weight(s: &str) -> Result<u32, String> {
    s.parse::<u32>().ok().filter(|w| *w <= 65535).ok_or_else(|| format!("illegal weight specified: '{s}'"))
}

fn request(a: &Args) -> Result<Request, String> {
    let cmd = a.cmd.unwrap_or(Cmd::List);
    Ok(match cmd {
        Cmd::List if a.timeout => Request::GetTimeouts,
        Cmd::List if a.connections => Request::ListConnections,
        Cmd::List => Request::ListServices,
        Cmd::Stats => Request::Stats,
        Cmd::Set => Request::SetTimeouts { tcp: a.set[0], tcpfin: a.set[1], udp: a.set[2] },
        Cmd::Add | Cmd::Edit | Cmd::Delete => {
            let (proto, vip) = a.service.clone().ok_or("service address not specified (-t or -u)")?;
            let rs = a.server.clone().ok_or("real server address not specified (-r)")?;
            let spec = ServerSpec { proto, vip, rs, weight: a.weight, forward: a.forward.clone() };
            match cmd {
                Cmd::Add => Request::AddServer(spec),
                Cmd::Edit => Request::EditServer(spec),
                _ => Request::DeleteServer(spec),
            }
        }
        Cmd::Help => unreachable!("help is answered before a request is built"),
    })
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let args = match parse(&argv) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rvsadm: {e}\nTry `rvsadm -h' or 'rvsadm --help' for more information.");
            return ExitCode::from(2);
        }
    };
    if args.cmd == Some(Cmd::Help) {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let req = match request(&args) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rvsadm: {e}");
            return ExitCode::from(2);
        }
    };
    let socket = args
        .socket
        .or_else(|| std::env::var_os("RVS_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(api::DEFAULT_SOCKET));
    let text = match api::call(&socket, &req) {
        Ok(Response::Services { table_size, services }) => ipvsadm_fmt::list_services(table_size, &services),
        Ok(Response::Connections(c)) => ipvsadm_fmt::list_connections(&c),
        Ok(Response::Timeouts { tcp, tcpfin, udp }) => format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n"),
        Ok(Response::Ok) => String::new(),
        Ok(Response::Stats(workers)) => {
            let mut t = String::new();
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
        Ok(Response::Error(e)) => {
            eprintln!("{e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("rvsadm: {e}");
            return ExitCode::from(1);
        }
    };
    // A closed pipe (`rvsadm -L -n | head`) is not an error worth a panic.
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
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
        assert_eq!(a.cmd, Some(Cmd::Add));
        assert_eq!(a.service, Some(("tcp".into(), "192.168.146.100:80".into())));
        assert_eq!(a.forward.as_deref(), Some("masq"));
        let a = args("-Ln").unwrap();
        assert_eq!(a.cmd, Some(Cmd::List));
        let a = args("-L -n -c").unwrap();
        assert!(matches!(request(&a), Ok(Request::ListConnections)));
        let a = args("-e -t 10.0.0.1:80 -r 10.0.0.2 -w 3").unwrap();
        assert!(matches!(request(&a), Ok(Request::EditServer(ServerSpec { weight: Some(3), .. }))));
        let a = args("--set 900 120 300").unwrap();
        assert!(matches!(request(&a), Ok(Request::SetTimeouts { tcp: 900, tcpfin: 120, udp: 300 })));
        assert!(matches!(request(&args("-L --timeout").unwrap()), Ok(Request::GetTimeouts)));
    }

    #[test]
    fn bad_commands_are_refused() {
        assert!(args("-a -L").unwrap_err().contains("multiple commands"));
        assert!(args("-w").unwrap_err().contains("requires an argument"));
        assert!(args("-a -t 1.2.3.4:80 -r 1.2.3.5 -w 70000").unwrap_err().contains("illegal weight"));
        assert!(args("-q").unwrap_err().contains("invalid option"));
        assert!(args("-A -t 1.2.3.4:80").unwrap_err().contains("not supported yet"));
        assert!(request(&args("-a -t 1.2.3.4:80").unwrap()).unwrap_err().contains("real server"));
    }
}
