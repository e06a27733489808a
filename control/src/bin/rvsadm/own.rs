//! rvsadm's own subcommands, parsed by clap: `top`, `acl` and `limit`
//! (access.rs), and the iproute2-style `link|addr|route|neigh` (with
//! `--socket PATH` and ip's `-s`, `-4`, `-6` before or after the object).
//!
//! Two grammars keep hand parsers, on purpose:
//! - ipvsadm's classic syntax (`-A -t VIP:PORT -s rr`, `-Ln`, values glued
//!   to clustered letters as in `-t10.0.0.1:80`, options whose meaning and
//!   validity depend on the command, ipvsadm's own messages and exit
//!   status 255): rvsadm.rs and `rvs_control::ipvsadm_opts`, checked
//!   byte for byte against ipvsadm 1.31. clap cannot express ipvsadm's
//!   command-dependent option table nor reproduce its errors.
//! - the words after ip's object (`show`, `add`, `del` and ip's
//!   abbreviations of them, `KEY VALUE` pairs such as `dev NAME`, `-s`
//!   anywhere): ip.rs, as ip(8) takes them. clap hands them over as they
//!   come.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use super::access;
use super::ip;

/// rvsadm's own commands (ipvsadm's are in `rvsadm -h`).
#[derive(Debug, Parser)]
#[command(
    name = "rvsadm",
    bin_name = "rvsadm",
    no_binary_name = true,
    disable_help_subcommand = true
)]
struct Own {
    /// rvsd's control socket [default: $RVS_SOCKET, else the config's default]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// With `link show`: counters too (ip's -s, -stats, -statistics)
    #[arg(short = 's', global = true)]
    stats: bool,
    /// With `addr show`: IPv4 addresses only
    #[arg(short = '4', global = true, overrides_with = "v6")]
    v4: bool,
    /// With `route show`: IPv6 routes; with `addr show`: IPv6 addresses only
    #[arg(short = '6', global = true, overrides_with = "v4")]
    v6: bool,
    #[command(subcommand)]
    cmd: OwnCmd,
}

#[derive(Debug, Subcommand)]
enum OwnCmd {
    /// Live per-port and per-worker rates, testpmd style
    Top {
        /// Seconds between readings (at least 0.1)
        #[arg(long, value_name = "SECONDS", default_value_t = 1.0, value_parser = interval)]
        interval: f64,
        /// Readings to print, then exit [default: until interrupted]
        #[arg(long, value_name = "N")]
        count: Option<u32>,
    },
    /// The DPDK ports and sub-interfaces: show [dev NAME]
    #[command(visible_alias = "l")]
    Link(Words),
    /// Interface addresses: show [dev NAME] | add|del ADDRESS/LEN dev NAME
    #[command(visible_aliases = ["address", "a"])]
    Addr(Words),
    /// Routes: show [dev NAME] | add|del PREFIX|default [via ADDRESS] [dev NAME]
    #[command(visible_aliases = ["r", "ro"])]
    Route(Words),
    /// Neighbours: show [dev NAME] | add ADDRESS lladdr MAC dev NAME | del ADDRESS dev NAME
    #[command(visible_aliases = ["neighbour", "neighbor", "n"])]
    Neigh(Words),
    /// A service's ACL: list | add|del -t|-u VIP:PORT allow|deny PREFIX | flush
    #[command(subcommand)]
    Acl(access::AclCmd),
    /// A service's limits: list | set -t|-u VIP:PORT --max-conns N ...
    #[command(subcommand)]
    Limit(access::LimitCmd),
}

/// The words after the object, as ip takes them.
#[derive(Debug, Args)]
struct Words {
    /// show (the default), add, del, ... and their arguments; "help" prints the grammar
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "COMMAND"
    )]
    words: Vec<String>,
}

fn interval(v: &str) -> Result<f64, String> {
    v.parse::<f64>()
        .ok()
        .filter(|s| *s >= 0.1)
        .ok_or_else(|| format!("illegal interval '{v}' (at least 0.1)"))
}

/// ip's single-dash long spellings of `-s`, which clap does not take.
fn normalise(w: &str) -> &str {
    match w {
        "-stats" | "-statistics" => "-s",
        w => w,
    }
}

/// `argv` for clap: ip's `-stats` as `-s`, and `--socket PATH` first (ip
/// takes it after the object's words too, where clap would read it as one).
fn arrange(argv: &[String]) -> Vec<String> {
    let mut words: Vec<String> = argv.iter().map(|w| normalise(w).to_string()).collect();
    if let Some(i) = words.iter().position(|w| w == "--socket") {
        if i + 1 < words.len() {
            let path = words.remove(i + 1);
            words.remove(i);
            words.splice(0..0, ["--socket".to_string(), path]);
        }
    }
    words
}

/// True if `argv` (rvsadm's arguments) is one of these subcommands: its
/// first word, past `--socket PATH` and ip's `-s`/`-4`/`-6`, is `top` or an
/// object of ip's (abbreviations too).
pub fn is_own(argv: &[String]) -> bool {
    let mut it = argv.iter().map(|w| normalise(w));
    while let Some(w) = it.next() {
        match w {
            "-s" | "-4" | "-6" => {}
            "--socket" => {
                it.next();
            }
            w => return matches!(w, "top" | "acl" | "limit") || ip::object(w).is_some(),
        }
    }
    false
}

/// Runs `argv` (for which [`is_own`] holds). Exit status: clap's for a bad
/// command line (2) and `-h` (0); otherwise the subcommand's.
pub fn run(prog: &str, argv: &[String]) -> ExitCode {
    let own = match Own::try_parse_from(arrange(argv)) {
        Ok(o) => o,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(2));
        }
    };
    let socket = own
        .socket
        .or_else(|| std::env::var_os("RVS_SOCKET").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(rvs_control::api::DEFAULT_SOCKET));
    let (object, words) = match own.cmd {
        OwnCmd::Top { interval, count } => return super::top(prog, &socket, interval, count),
        OwnCmd::Link(w) => ("link", w.words),
        OwnCmd::Addr(w) => ("addr", w.words),
        OwnCmd::Route(w) => ("route", w.words),
        OwnCmd::Neigh(w) => ("neigh", w.words),
        OwnCmd::Acl(c) => return access::run(prog, &socket, Some(c), None),
        OwnCmd::Limit(c) => return access::run(prog, &socket, None, Some(c)),
    };
    let mut all = Vec::new();
    if own.stats {
        all.push("-s".to_string());
    }
    if own.v4 {
        all.push("-4".to_string());
    }
    if own.v6 {
        all.push("-6".to_string());
    }
    all.push(object.to_string());
    all.extend(words);
    ip::run(prog, &socket, &all)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(s: &str) -> Vec<String> {
        s.split_whitespace().map(String::from).collect()
    }

    fn parsed(s: &str) -> Own {
        Own::try_parse_from(arrange(&words(s))).unwrap()
    }

    #[test]
    fn own_commands_are_told_from_ipvsadm_ones() {
        for own in [
            "top",
            "top --interval 0.5 --count 2",
            "--socket /tmp/x.sock top",
            "-6 route show",
            "-4 addr",
            "-stats link",
            "n",
            "ro add default via 10.0.0.1",
            "acl list",
            "limit set -t 10.0.0.1:80 --max-conns 5",
        ] {
            assert!(is_own(&words(own)), "{own}");
        }
        for ipvsadm in [
            "-6 -A -t [fd77::1]:80",
            "-L -n",
            "-s rr",
            "--socket x -L",
            "",
        ] {
            assert!(!is_own(&words(ipvsadm)), "{ipvsadm}");
        }
    }

    #[test]
    fn flags_anywhere_and_ip_words_as_they_come() {
        let o = parsed("-s link show dev dpdk0");
        assert!(o.stats);
        let OwnCmd::Link(w) = o.cmd else { panic!() };
        assert_eq!(w.words, words("show dev dpdk0"));
        let o = parsed("address -6 -4 show");
        assert!(o.v4 && !o.v6, "the last of -4/-6 wins");
        let o = parsed("-statistics l");
        assert!(o.stats && matches!(o.cmd, OwnCmd::Link(_)));
        let o = parsed("neighbor add 10.0.0.9 lladdr 02:00:00:00:00:09 dev dpdk0 --socket /s");
        assert_eq!(o.socket, Some(PathBuf::from("/s")));
        let OwnCmd::Neigh(w) = o.cmd else { panic!() };
        assert_eq!(
            w.words,
            words("add 10.0.0.9 lladdr 02:00:00:00:00:09 dev dpdk0")
        );
        let o = parsed("top --interval 0.5 --count 2");
        assert!(matches!(
            o.cmd,
            OwnCmd::Top {
                interval,
                count: Some(2)
            } if interval == 0.5
        ));
        let e = Own::try_parse_from(words("top --interval 0.01")).unwrap_err();
        assert_eq!(e.exit_code(), 2);
        assert!(e.to_string().contains("illegal interval"), "{e}");
        assert!(Own::try_parse_from(words("top --count -1")).is_err());
    }

    #[test]
    fn acl_and_limit_commands_parse() {
        let o = parsed("acl add -t 10.0.0.1:80 deny 10.0.0.0/8 --at 2");
        let OwnCmd::Acl(access::AclCmd::Add {
            action, prefix, at, ..
        }) = o.cmd
        else {
            panic!()
        };
        assert_eq!(
            (action.as_str(), prefix.as_str(), at),
            ("deny", "10.0.0.0/8", Some(2))
        );
        let o = parsed("acl del -u [fd77::1]:53 3");
        assert!(matches!(o.cmd, OwnCmd::Acl(access::AclCmd::Del { rule, .. }) if rule == ["3"]));
        assert!(matches!(
            parsed("acl ls").cmd,
            OwnCmd::Acl(access::AclCmd::List(_))
        ));
        let o = parsed("limit set -t 10.0.0.1:80 --max-conns 5 --new-conn-rate -1");
        assert!(matches!(o.cmd, OwnCmd::Limit(access::LimitCmd::Set { .. })));
        // A service is needed to change anything, and something to change.
        assert!(Own::try_parse_from(words("acl add deny 10.0.0.0/8")).is_err());
        assert!(Own::try_parse_from(words("limit set -t 10.0.0.1:80")).is_err());
        assert!(Own::try_parse_from(words("acl add -t a:1 -u b:2 deny ::/0")).is_err());
    }
}
