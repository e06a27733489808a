//! `rvsadm`: the ipvsadm-compatible admin tool (listing commands so far;
//! the full command set is issue #6). Talks to rvsd over its control socket.

use std::path::PathBuf;
use std::process::ExitCode;

use rvs_control::api::{self, Request, Response};
use rvs_control::ipvsadm_fmt;

const USAGE: &str = "\
Usage:
  rvsadm -L|-l [options]          list the table (numeric output: -n is implied)
  rvsadm -L -n -c                 list the connection table
  rvsadm --stats-dp               data-plane counters per worker
Options:
  --list         -L|-l   list the table
  --numeric      -n      numeric output of addresses and ports
  --connection   -c      output of current IPVS connections
  --socket PATH          control socket (default $RVS_SOCKET or /run/rvs/rvsd.sock)
  --help         -h      this help
";

#[derive(Debug, Default)]
struct Args {
    list: bool,
    connections: bool,
    stats: bool,
    help: bool,
    socket: Option<PathBuf>,
}

fn parse(argv: &[String]) -> Result<Args, String> {
    let mut a = Args::default();
    let mut it = argv.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--list" => a.list = true,
            "--numeric" => {}
            "--connection" => a.connections = true,
            "--stats-dp" => a.stats = true,
            "--help" => a.help = true,
            "--socket" => a.socket = Some(it.next().ok_or("--socket needs a path")?.into()),
            s if s.starts_with("--") => return Err(format!("unrecognized option '{s}'")),
            s if s.starts_with('-') && s.len() > 1 => {
                for c in s[1..].chars() {
                    match c {
                        'L' | 'l' => a.list = true,
                        'n' => {}
                        'c' => a.connections = true,
                        'h' => a.help = true,
                        other => return Err(format!("invalid option -- '{other}'")),
                    }
                }
            }
            s => return Err(format!("unexpected argument '{s}'")),
        }
    }
    if !a.stats && !a.help {
        // Like ipvsadm: no command means list.
        a.list = true;
    }
    Ok(a)
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
    if args.help {
        print!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    let socket = args
        .socket
        .or_else(|| std::env::var_os("RVS_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(api::DEFAULT_SOCKET));
    let req = if args.stats {
        Request::Stats
    } else if args.connections {
        Request::ListConnections
    } else {
        Request::ListServices
    };
    match api::call(&socket, &req) {
        Ok(Response::Services { table_size, services }) => print!("{}", ipvsadm_fmt::list_services(table_size, &services)),
        Ok(Response::Connections(c)) => print!("{}", ipvsadm_fmt::list_connections(&c)),
        Ok(Response::Stats(workers)) => {
            for w in workers {
                println!(
                    "worker lcore {}: rx {} tx {} sessions {} created {} expired {}",
                    w.lcore, w.rx_packets, w.tx_packets, w.sessions, w.sessions_created, w.sessions_expired
                );
                for (reason, n) in w.drops {
                    println!("  drop {reason}: {n}");
                }
            }
        }
        Ok(Response::Error(e)) => {
            eprintln!("rvsadm: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("rvsadm: {e}");
            return ExitCode::from(1);
        }
    }
    ExitCode::SUCCESS
}
