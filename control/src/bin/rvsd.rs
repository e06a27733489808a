//! `rvsd`: the rvs appliance daemon.
//!
//! `rvsd --config FILE` runs the appliance in the foreground;
//! `rvsd --check-config FILE` validates FILE and exits.

use std::path::PathBuf;
use std::process::ExitCode;

use rvs_control::{config, daemon};

const USAGE: &str = "usage: rvsd --config FILE | --check-config FILE";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (check_only, path) = match args.as_slice() {
        [flag, path] if flag == "--config" || flag == "-c" => (false, PathBuf::from(path)),
        [flag, path] if flag == "--check-config" => (true, PathBuf::from(path)),
        [flag] if flag == "--help" || flag == "-h" => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        _ => {
            eprintln!("rvsd: {USAGE}");
            return ExitCode::from(2);
        }
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
