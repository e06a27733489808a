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
    /// `--persistent-conn`: `Forward Weight PersistConn ActiveConn InActConn`.
    PersistentConn,
}

/// `ipvsadm -L -n` with `--thresholds` or `--persistent-conn`.
#[must_use]
pub fn list_services_with(table_size: u64, services: &[ServiceView], cols: Columns) -> String {
    if cols == Columns::Plain {
        return list_services(table_size, services);
    }
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={table_size})");
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str(match cols {
        Columns::Thresholds => "  -> RemoteAddress:Port           Forward Weight Uthreshold Lthreshold ActiveConn InActConn\n",
        _ => "  -> RemoteAddress:Port           Forward Weight PersistConn ActiveConn InActConn\n",
    });
    for s in services {
        let _ = writeln!(out, "{}  {} {}{}", s.proto, s.vip, s.scheduler, s.flags);
        for r in &s.servers {
            let _ = match cols {
                Columns::Thresholds => writeln!(
                    out,
                    "  -> {:<28} {:<7} {:<6} {:<10} {:<10} {:<10} {:<10}",
                    r.addr, r.forward, r.weight, r.upper_threshold, r.lower_threshold, r.active, r.inactive
                ),
                _ => writeln!(out, "  -> {:<28} {:<7} {:<6} {:<11} {:<10} {:<10}", r.addr, r.forward, r.weight, r.persist_conns, r.active, r.inactive),
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
            servers: vec![RealServerView { addr: "192.168.177.10:80".into(), forward: "Masq".into(), weight: 1, upper_threshold: 0, lower_threshold: 0, persist_conns: 0, active: 0, inactive: 0 }],
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
                RealServerView { addr: "192.168.140.11:80".into(), forward: "Route".into(), weight: 1, upper_threshold: 0, lower_threshold: 0, persist_conns: 0, active: 3, inactive: 4 },
                RealServerView { addr: "192.168.140.12:80".into(), forward: "FullNat".into(), weight: 2, upper_threshold: 100, lower_threshold: 50, persist_conns: 0, active: 0, inactive: 0 },
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
