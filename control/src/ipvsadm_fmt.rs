//! ipvsadm's output formats, byte for byte (`ipvsadm.c`: `print_title`,
//! `print_service_entry`, `print_conn`).

use std::fmt::Write;

use crate::api::{ConnectionView, ServiceView};

/// `ipvsadm -L -n`.
#[must_use]
pub fn list_services(table_size: u64, services: &[ServiceView]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={table_size})");
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in services {
        let _ = writeln!(out, "{}  {} {}{}", s.proto, s.vip, s.scheduler, s.flags);
        for r in &s.servers {
            let _ = writeln!(out, "  -> {:<28} {:<7} {:<6} {:<10} {:<10}", r.addr, r.forward, r.weight, r.active, r.inactive);
        }
    }
    out
}

/// Which columns `-L` shows for real servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Columns {
    /// `Forward Weight ActiveConn InActConn`.
    Plain,
    /// `--thresholds`: `Forward Weight Uthreshold Lthreshold ActiveConn InActConn`.
    Thresholds,
    /// `--persistent-conn`: `Weight PersistConn ActiveConn InActConn`.
    PersistentConn,
    /// `--stats`: `Conns InPkts OutPkts InBytes OutBytes`.
    Stats,
    /// `--rate`: `CPS InPPS OutPPS InBPS OutBPS`.
    Rate,
}

/// ipvsadm's `print_largenum`: 9 columns, scaled with K/M/G/T past 10^8
/// unless `exact`.
fn largenum(out: &mut String, i: u64, exact: bool) {
    let _ = if exact {
        let w = i.to_string().len().max(8) + 1;
        write!(out, "{i:>w$}")
    } else if i < 100_000_000 {
        write!(out, "{i:>9}")
    } else if i < 1_000_000_000 {
        write!(out, "{:>8}K", i / 1000)
    } else if i < 100_000_000_000 {
        write!(out, "{:>8}M", i / 1_000_000)
    } else if i < 100_000_000_000_000 {
        write!(out, "{:>8}G", i / 1_000_000_000)
    } else {
        write!(out, "{:>8}T", i / 1_000_000_000_000)
    };
}

fn sum(servers: &[crate::api::RealServerView], f: fn(&crate::api::RealServerView) -> [u64; 5]) -> [u64; 5] {
    let mut t = [0u64; 5];
    for r in servers {
        for (a, b) in t.iter_mut().zip(f(r)) {
            *a += b;
        }
    }
    t
}

/// `ipvsadm -L -n` with `--thresholds`, `--persistent-conn`, `--stats` or
/// `--rate` (`exact`: `--exact`), as ipvsadm's `print_title` and
/// `print_service_entry` print them.
#[must_use]
pub fn list_services_with(table_size: u64, services: &[ServiceView], cols: Columns, exact: bool) -> String {
    if cols == Columns::Plain {
        return list_services(table_size, services);
    }
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={table_size})");
    let _ = match cols {
        Columns::Stats => writeln!(out, "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"),
        Columns::Rate => writeln!(out, "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}", "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"),
        Columns::Thresholds => writeln!(out, "{:<33} {:<10} {:<10} {:<10} {:<10}", "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"),
        _ => writeln!(out, "{:<33} {:<9} {:<11} {:<10} {:<10}", "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"),
    };
    out.push_str("  -> RemoteAddress:Port\n");
    for s in services {
        let name = format!("{}  {}", s.proto, s.vip);
        match cols {
            Columns::Stats | Columns::Rate => {
                let _ = write!(out, "{name:<33}");
                let t = if cols == Columns::Stats { sum(&s.servers, |r| r.stats) } else { sum(&s.servers, |r| r.rates) };
                for v in t {
                    largenum(&mut out, v, exact);
                }
                out.push('\n');
            }
            _ => {
                let _ = writeln!(out, "{name} {}{}", s.scheduler, s.flags);
            }
        }
        for r in &s.servers {
            let _ = match cols {
                Columns::Stats => {
                    let _ = write!(out, "  -> {:<28}", r.addr);
                    for v in r.stats {
                        largenum(&mut out, v, exact);
                    }
                    writeln!(out)
                }
                Columns::Rate => {
                    let _ = write!(out, "  -> {:<28} {:>8} {:>8} {:>8}", r.addr, r.rates[0], r.rates[1], r.rates[2]);
                    largenum(&mut out, r.rates[3], exact);
                    largenum(&mut out, r.rates[4], exact);
                    writeln!(out)
                }
                Columns::Thresholds => writeln!(out, "  -> {:<28} {:<10} {:<10} {:<10} {:<10}", r.addr, r.upper_threshold, r.lower_threshold, r.active, r.inactive),
                _ => writeln!(out, "  -> {:<28} {:<9} {:<11} {:<10} {:<10}", r.addr, r.weight, r.persist_conns, r.active, r.inactive),
            };
        }
    }
    out
}

/// `ipvsadm -S -n`: one `-A` line per service, one `-a` line per real
/// server, as `-R` reads them back. FULLNAT local addresses follow their
/// service as `-P` lines (DPVS's `--add-laddr`).
#[must_use]
pub fn save(services: &[ServiceView]) -> String {
    let mut out = String::new();
    for s in services {
        let flag = if s.proto == "UDP" { "-u" } else { "-t" };
        let _ = writeln!(out, "-A {flag} {} -s {}{}", s.vip, s.scheduler, rule_flags(&s.flags));
        for l in &s.local_addresses {
            let _ = writeln!(out, "-P {flag} {} -z {l}", s.vip);
        }
        for r in &s.servers {
            let fwd = match r.forward.as_str() {
                "Route" => "-g",
                "Tunnel" => "-i",
                "Masq" => "-m",
                _ => "--fullnat",
            };
            let mut line = format!("-a {flag} {} -r {} {fwd} -w {}", s.vip, r.addr, r.weight);
            if r.upper_threshold > 0 {
                line += &format!(" -x {}", r.upper_threshold);
            }
            if r.lower_threshold > 0 {
                line += &format!(" -y {}", r.lower_threshold);
            }
            let _ = writeln!(out, "{line}");
        }
    }
    out
}

/// The listing flags (` persistent 300 mask 255.255.255.0`) as options.
fn rule_flags(flags: &str) -> String {
    let mut out = String::new();
    let mut words = flags.split_whitespace();
    while let Some(w) = words.next() {
        match (w, words.clone().next()) {
            ("persistent", Some(t)) => {
                out += &format!(" -p {t}");
                words.next();
            }
            ("mask", Some(m)) => {
                out += &format!(" -M {m}");
                words.next();
            }
            ("ops", _) => out += " -o",
            (w, _) if w.starts_with('(') => out += &format!(" -b {}", w.trim_matches(|c| c == '(' || c == ')')),
            _ => {}
        }
    }
    out
}

/// `ipvsadm -L -n -c`.
#[must_use]
pub fn list_connections(conns: &[ConnectionView]) -> String {
    let mut out = String::from("IPVS connection entries\n");
    out.push_str("pro expire state       source             virtual            destination\n");
    for c in conns {
        let _ = writeln!(
            out,
            "{:<3} {:02}:{:02}  {:<11} {:<18} {:<18} {}",
            c.proto,
            c.expires_in_secs / 60,
            c.expires_in_secs % 60,
            c.state,
            c.client,
            c.vip,
            c.rs
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RealServerView;

    #[test]
    fn matches_ipvsadm_listing_from_the_seed() {
        // Seed 000 §8, with our Forward word for a Masq server.
        let s = ServiceView {
            proto: "TCP".into(),
            vip: "192.168.146.100:80".into(),
            scheduler: "rr".into(),
            flags: String::new(),
            local_addresses: vec![],
            servers: vec![RealServerView { addr: "192.168.177.10:80".into(), forward: "Masq".into(), weight: 1, upper_threshold: 0, lower_threshold: 0, persist_conns: 0, stats: [0; 5], rates: [0; 5], active: 0, inactive: 0 }],
        };
        let got = list_services(4096, &[s]);
        let want = concat!(
            "IP Virtual Server version 1.2.1 (size=4096)\n",
            "Prot LocalAddress:Port Scheduler Flags\n",
            "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
            "TCP  192.168.146.100:80 rr\n",
            "  -> 192.168.177.10:80            Masq    1      0          0         \n",
        );
        assert_eq!(got, want);
    }

    #[test]
    fn save_writes_what_restore_reads() {
        let s = ServiceView {
            proto: "TCP".into(),
            vip: "192.168.140.100:80".into(),
            scheduler: "rr".into(),
            flags: " (sh-port) persistent 300 mask 255.255.255.0".into(),
            local_addresses: vec!["10.0.0.200".into()],
            servers: vec![
                RealServerView { addr: "192.168.140.11:80".into(), forward: "Route".into(), weight: 1, upper_threshold: 0, lower_threshold: 0, persist_conns: 0, stats: [0; 5], rates: [0; 5], active: 3, inactive: 4 },
                RealServerView { addr: "192.168.140.12:80".into(), forward: "FullNat".into(), weight: 2, upper_threshold: 100, lower_threshold: 50, persist_conns: 0, stats: [0; 5], rates: [0; 5], active: 0, inactive: 0 },
            ],
        };
        assert_eq!(
            save(&[s]),
            concat!(
                "-A -t 192.168.140.100:80 -s rr -b sh-port -p 300 -M 255.255.255.0\n",
                "-P -t 192.168.140.100:80 -z 10.0.0.200\n",
                "-a -t 192.168.140.100:80 -r 192.168.140.11:80 -g -w 1\n",
                "-a -t 192.168.140.100:80 -r 192.168.140.12:80 --fullnat -w 2 -x 100 -y 50\n",
            )
        );
    }

    #[test]
    fn persistent_flag_in_listing() {
        let s = ServiceView {
            proto: "TCP".into(),
            vip: "192.168.140.100:80".into(),
            scheduler: "rr".into(),
            flags: " persistent 300".into(),
            local_addresses: vec![],
            servers: vec![],
        };
        assert!(list_services(4096, &[s]).contains("\nTCP  192.168.140.100:80 rr persistent 300\n"));
    }

    #[test]
    fn stats_and_rate_columns_as_ipvsadm() {
        let r = RealServerView {
            addr: "10.0.0.2:80".into(),
            forward: "Masq".into(),
            weight: 1,
            upper_threshold: 0,
            lower_threshold: 0,
            persist_conns: 0,
            stats: [3, 30, 25, 2000, 123_456_789],
            rates: [1, 10, 9, 800, 900],
            active: 0,
            inactive: 0,
        };
        let s = ServiceView { proto: "TCP".into(), vip: "10.0.0.1:80".into(), scheduler: "rr".into(), flags: String::new(), local_addresses: vec![], servers: vec![r] };
        let text = list_services_with(4096, std::slice::from_ref(&s), Columns::Stats, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes");
        assert_eq!(lines[2], "  -> RemoteAddress:Port");
        // Expected lines made with C's printf formats from ipvsadm.c.
        assert_eq!(lines[3], "TCP  10.0.0.1:80                         3       30       25     2000  123456K");
        assert_eq!(lines[4], "  -> 10.0.0.2:80                         3       30       25     2000  123456K");
        let exact = list_services_with(4096, std::slice::from_ref(&s), Columns::Stats, true);
        assert!(exact.lines().nth(3).unwrap().ends_with(" 123456789"), "{exact}");
        let rate = list_services_with(4096, &[s], Columns::Rate, false);
        assert_eq!(rate.lines().nth(1).unwrap(), "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS");
        assert_eq!(rate.lines().nth(4).unwrap(), "  -> 10.0.0.2:80                         1       10        9      800      900");
    }

    #[test]
    fn matches_ipvsadm_connection_line_from_the_seed() {
        let c = ConnectionView {
            proto: "TCP".into(),
            expires_in_secs: 74,
            state: "TIME_WAIT".into(),
            client: "192.168.146.1:55276".into(),
            vip: "192.168.146.100:80".into(),
            rs: "192.168.177.20:80".into(),
            laddr: "10.0.0.1:1025".into(),
            worker: 1,
        };
        let got = list_connections(&[c]);
        assert!(got.ends_with("TCP 01:14  TIME_WAIT   192.168.146.1:55276 192.168.146.100:80 192.168.177.20:80\n"), "{got}");
    }
}
