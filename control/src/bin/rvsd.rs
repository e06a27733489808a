//! `rvsd`: the rvs appliance daemon.
//!
//! `rvsd --config FILE` runs the appliance in the foreground;
//! `rvsd --check-config FILE` validates FILE and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{ArgGroup, CommandFactory, Parser};
use rvs_control::{config, daemon};

/// The rvs appliance daemon: a layer-4 load balancer (LVS) on a DPDK data plane.
#[derive(Debug, Parser)]
#[command(name = "rvsd")]
#[command(group(ArgGroup::new("mode").required(true).args(["config", "check_config"])))]
struct Cli {
    /// Run the appliance in the foreground with this config file (SIGHUP
    /// reloads it, SIGTERM stops).
    #[arg(short = 'c', long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Check this config file and exit: 0 when valid, 2 with FILE:LINE:COL
    /// and the reason when not.
    #[arg(long, value_name = "FILE")]
    check_config: Option<PathBuf>,
}

fn main() -> ExitCode {
    // -h/--help exits with 0; a usage error with 2, its message always
    // followed by the usage line (clap leaves it out of some).
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) if !e.use_stderr() => e.exit(),
        Err(e) => {
            let text = e.render().to_string();
            eprint!("{text}");
            if !text.contains("Usage:") {
                eprintln!("\n{}", Cli::command().render_usage());
            }
            return ExitCode::from(2);
        }
    };
    let (check_only, path) = match (cli.config, cli.check_config) {
        (_, Some(p)) => (true, p),
        (Some(p), None) => (false, p),
        (None, None) => unreachable!("clap requires --config or --check-config"),
    };
    let cfg = match config::load(&path) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rvsd: error: {e}");
            return ExitCode::from(2);
        }
    };
    if check_only {
        println!("{}: ok", path.display());
        return ExitCode::SUCCESS;
    }
    match daemon::run(cfg) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rvsd: error: {e}");
            ExitCode::from(1)
        }
    }
}
