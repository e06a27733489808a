//! ipvsadm's output formats, byte for byte (`ipvsadm.c`: `list_all`,
//! `list_service`, `print_title`, `print_service_entry`, `print_largenum`,
//! `print_conn`, `list_timeout`), and its listing order (`libipvs.c`:
//! `ipvs_cmp_services`, `ipvs_cmp_dests`, sorted by glibc's `qsort`).
//!
//! Golden files of every format are in `control/tests/golden/` (see
//! `control/tests/golden.rs`).

use std::cmp::Ordering;
use std::fmt::Write;
use std::net::{IpAddr, SocketAddr};

use crate::api::{ConnectionView, RealServerView, ServiceView};

/// `ipvsadm -L -n`.
#[must_use]
pub fn list_services(table_size: u64, services: &[ServiceView]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={table_size})");
    plain(&mut out, services);
    out
}

/// The plain listing after the version line (`-L -n -t SERVICE` prints
/// only this).
fn plain(out: &mut String, services: &[ServiceView]) {
    out.push_str("Prot LocalAddress:Port Scheduler Flags\n");
    out.push_str("  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n");
    for s in services {
        let _ = writeln!(out, "{}  {} {}{}", s.proto, s.vip, s.scheduler, s.flags);
        for r in &s.servers {
            let _ = writeln!(
                out,
                "  -> {:<28} {:<7} {:<6} {:<10} {:<10}",
                r.addr, r.forward, r.weight, r.active, r.inactive
            );
        }
    }
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

fn sum(servers: &[RealServerView], f: fn(&RealServerView) -> [u64; 5]) -> [u64; 5] {
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
pub fn list_services_with(
    table_size: u64,
    services: &[ServiceView],
    cols: Columns,
    exact: bool,
) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "IP Virtual Server version 1.2.1 (size={table_size})");
    body(&mut out, services, cols, exact);
    out
}

/// `ipvsadm -L -n -t|-u SERVICE` (with any of the column options): ipvsadm's
/// `list_service` prints no version line, only the title and the service.
#[must_use]
pub fn list_one(service: &ServiceView, cols: Columns, exact: bool) -> String {
    let mut out = String::new();
    body(&mut out, std::slice::from_ref(service), cols, exact);
    out
}

/// The title lines and the services (`print_title`, `print_service_entry`).
fn body(out: &mut String, services: &[ServiceView], cols: Columns, exact: bool) {
    if cols == Columns::Plain {
        plain(out, services);
        return;
    }
    let _ = match cols {
        Columns::Stats => writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "Prot LocalAddress:Port", "Conns", "InPkts", "OutPkts", "InBytes", "OutBytes"
        ),
        Columns::Rate => writeln!(
            out,
            "{:<33} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "Prot LocalAddress:Port", "CPS", "InPPS", "OutPPS", "InBPS", "OutBPS"
        ),
        Columns::Thresholds => writeln!(
            out,
            "{:<33} {:<10} {:<10} {:<10} {:<10}",
            "Prot LocalAddress:Port", "Uthreshold", "Lthreshold", "ActiveConn", "InActConn"
        ),
        _ => writeln!(
            out,
            "{:<33} {:<9} {:<11} {:<10} {:<10}",
            "Prot LocalAddress:Port", "Weight", "PersistConn", "ActiveConn", "InActConn"
        ),
    };
    out.push_str("  -> RemoteAddress:Port\n");
    for s in services {
        let name = format!("{}  {}", s.proto, s.vip);
        match cols {
            Columns::Stats | Columns::Rate => {
                let _ = write!(out, "{name:<33}");
                let t = if cols == Columns::Stats {
                    sum(&s.servers, |r| r.stats)
                } else {
                    sum(&s.servers, |r| r.rates)
                };
                for v in t {
                    largenum(out, v, exact);
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
                        largenum(out, v, exact);
                    }
                    writeln!(out)
                }
                Columns::Rate => {
                    let _ = write!(
                        out,
                        "  -> {:<28} {:>8} {:>8} {:>8}",
                        r.addr, r.rates[0], r.rates[1], r.rates[2]
                    );
                    largenum(out, r.rates[3], exact);
                    largenum(out, r.rates[4], exact);
                    writeln!(out)
                }
                Columns::Thresholds => writeln!(
                    out,
                    "  -> {:<28} {:<10} {:<10} {:<10} {:<10}",
                    r.addr, r.upper_threshold, r.lower_threshold, r.active, r.inactive
                ),
                _ => writeln!(
                    out,
                    "  -> {:<28} {:<9} {:<11} {:<10} {:<10}",
                    r.addr, r.weight, r.persist_conns, r.active, r.inactive
                ),
            };
        }
    }
}

/// `ipvsadm -L --timeout`.
#[must_use]
pub fn timeouts(tcp: u32, tcpfin: u32, udp: u32) -> String {
    format!("Timeout (tcp tcpfin udp): {tcp} {tcpfin} {udp}\n")
}

/// Puts services and their real servers in the order ipvsadm lists them
/// (unless `--nosort`): `ipvs_cmp_services` (protocol, then address, then
/// port) and `ipvs_cmp_dests` (address, then port), sorted by glibc's
/// `qsort`, a top-down merge sort.
///
/// The comparators subtract two `u32` addresses into an `int`, so two
/// addresses more than 2^31 apart compare the "wrong" way round
/// (192.168.0.1 sorts before 10.0.0.1). That is what `ipvsadm` prints, so
/// it is what this does, with glibc's merge order (Debian 12, glibc 2.36),
/// which is well defined even where such a comparison is not transitive.
pub fn sort(services: &mut [ServiceView]) {
    merge_sort(services, &mut |a, b| cmp_services(a, b));
    for s in services {
        merge_sort(&mut s.servers, &mut |a, b| cmp_addrs(&a.addr, &b.addr));
    }
}

/// `ipvs_cmp_services`: the firewall mark (`s1->fwmark - s2->fwmark`, as
/// an `int`; 0 for a service without one, so those come first), address
/// family (`AF_INET` 2 before `AF_INET6` 10), protocol, address, port. A
/// fwmark service has ipvsadm's protocol TCP, address 0 and port 0.
fn cmp_services(a: &ServiceView, b: &ServiceView) -> i32 {
    let r = fwmark(a).wrapping_sub(fwmark(b)) as i32;
    if r != 0 {
        return r;
    }
    if fwmark(a) != 0 {
        // Same mark: IPv4 before IPv6, nothing else differs.
        return fwmark_family(a) - fwmark_family(b);
    }
    let proto = |s: &ServiceView| if s.proto == "UDP" { 17 } else { 6 };
    match (family(&a.vip) - family(&b.vip), proto(a) - proto(b)) {
        (0, 0) => cmp_addrs(&a.vip, &b.vip),
        (0, r) | (r, _) => r,
    }
}

/// The firewall mark of a listed service (`FWM  1`), 0 for none.
fn fwmark(s: &ServiceView) -> u32 {
    if s.proto != "FWM" {
        return 0;
    }
    s.vip
        .split(' ')
        .next()
        .and_then(|m| m.parse().ok())
        .unwrap_or(0)
}

/// `AF_INET` or `AF_INET6` of a fwmark service (`1`, `1 IPv6`).
fn fwmark_family(s: &ServiceView) -> i32 {
    if s.vip.ends_with(" IPv6") {
        10
    } else {
        2
    }
}

/// `AF_INET` or `AF_INET6` of an endpoint's text (`AF_INET` if unparsable).
fn family(e: &str) -> i32 {
    match e.parse::<SocketAddr>() {
        Ok(SocketAddr::V6(_)) => 10,
        _ => 2,
    }
}

/// The address, then the port, as libipvs compares them (C `int`
/// arithmetic). Unparsable text (never produced by rvsd) compares as text.
fn cmp_addrs(a: &str, b: &str) -> i32 {
    match (a.parse::<SocketAddr>(), b.parse::<SocketAddr>()) {
        (Ok(a), Ok(b)) => {
            // `r = ntohl(a) - ntohl(b)`: unsigned subtraction, read as int;
            // for IPv6 word by word (`s6_addr32[i]`) until one differs.
            let words = |ip: IpAddr| match ip {
                IpAddr::V4(v4) => vec![u32::from(v4)],
                IpAddr::V6(v6) => v6
                    .octets()
                    .chunks(4)
                    .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
                    .collect(),
            };
            if a.is_ipv4() != b.is_ipv4() {
                return family(&a.to_string()) - family(&b.to_string());
            }
            let r = words(a.ip())
                .into_iter()
                .zip(words(b.ip()))
                .map(|(x, y)| x.wrapping_sub(y) as i32)
                .find(|r| *r != 0)
                .unwrap_or(0);
            if r != 0 {
                r
            } else {
                i32::from(a.port()) - i32::from(b.port())
            }
        }
        _ => match a.cmp(b) {
            Ordering::Less => -1,
            Ordering::Equal => 0,
            Ordering::Greater => 1,
        },
    }
}

/// glibc's `msort_with_tmp`: split at `n / 2`, sort both halves, merge
/// taking from the left while `cmp(left, right) <= 0`.
fn merge_sort<T: Clone>(v: &mut [T], cmp: &mut impl FnMut(&T, &T) -> i32) {
    let n = v.len();
    if n <= 1 {
        return;
    }
    let n1 = n / 2;
    merge_sort(&mut v[..n1], cmp);
    merge_sort(&mut v[n1..], cmp);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, n1);
    while i < n1 && j < n {
        if cmp(&v[i], &v[j]) <= 0 {
            merged.push(v[i].clone());
            i += 1;
        } else {
            merged.push(v[j].clone());
            j += 1;
        }
    }
    merged.extend_from_slice(&v[i..n1]);
    merged.extend_from_slice(&v[j..]);
    v.clone_from_slice(&merged);
}

/// `ipvsadm -S -n`: one `-A` line per service, one `-a` line per real
/// server, as `-R` reads them back. FULLNAT local addresses follow their
/// service as `-P` lines (DPVS's `--add-laddr`).
#[must_use]
pub fn save(services: &[ServiceView]) -> String {
    let mut out = String::new();
    for s in services {
        // ipvsadm's svc_name in FMT_RULE: `-t VIP`, `-u VIP`, `-f 1`, `-f 1 -6`.
        let svc = match s.proto.as_str() {
            "UDP" => format!("-u {}", s.vip),
            "FWM" => match s.vip.strip_suffix(" IPv6") {
                Some(m) => format!("-f {m} -6"),
                None => format!("-f {}", s.vip),
            },
            _ => format!("-t {}", s.vip),
        };
        let _ = writeln!(out, "-A {svc} -s {}{}", s.scheduler, rule_flags(&s.flags));
        for l in &s.local_addresses {
            let _ = writeln!(out, "-P {svc} -z {l}");
        }
        for r in &s.servers {
            let fwd = match r.forward.as_str() {
                "Route" => "-g",
                "Tunnel" => "-i",
                "Masq" => "-m",
                _ => "--fullnat",
            };
            let mut line = format!("-a {svc} -r {} {fwd} -w {}", r.addr, r.weight);
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
            ("synproxy", _) => out += " -j enable",
            ("client-address", Some(m)) => {
                out += &format!(" --client-address {m}");
                words.next();
            }
            (w, _) if w.starts_with('(') => {
                out += &format!(" -b {}", w.trim_matches(|c| c == '(' || c == ')'))
            }
            _ => {}
        }
    }
    out
}

/// `ipvsadm -L -n -c`.
#[must_use]
pub fn list_connections(conns: &[ConnectionView]) -> String {
    list_connections_with(conns, false)
}

/// `ipvsadm -L -n -c`, with `--persistent-conn` if `pe_columns`: the
/// header then names ipvsadm's `pe name` and `pe_data` columns, which
/// ipvsadm fills only for a connection of a persistence engine (`--pe
/// sip`, `print_conn`'s 11 fields); rvs has none, so every line is the
/// plain one, as ipvsadm prints on a kernel without one.
#[must_use]
pub fn list_connections_with(conns: &[ConnectionView], pe_columns: bool) -> String {
    let mut out = String::from("IPVS connection entries\n");
    if pe_columns {
        out.push_str(
            "pro expire state       source             virtual            destination        pe name          pe_data\n",
        );
    } else {
        out.push_str("pro expire state       source             virtual            destination\n");
    }
    for c in conns {
        let _ = writeln!(
            out,
            "{:<3} {:<6} {:<11} {:<18} {:<18} {}",
            c.proto,
            format!(
                "{:02}:{:02}",
                c.expires_in_secs / 60,
                c.expires_in_secs % 60
            ),
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

    #[test]
    fn matches_ipvsadm_listing_from_the_seed() {
        // Seed 000 §8, with our Forward word for a Masq server.
        let s = ServiceView {
            proto: "TCP".into(),
            vip: "192.168.146.100:80".into(),
            scheduler: "rr".into(),
            flags: String::new(),
            local_addresses: vec![],
            servers: vec![RealServerView {
                addr: "192.168.177.10:80".into(),
                forward: "Masq".into(),
                weight: 1,
                upper_threshold: 0,
                lower_threshold: 0,
                persist_conns: 0,
                stats: [0; 5],
                rates: [0; 5],
                active: 0,
                inactive: 0,
            }],
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
            flags: " (sh-port) persistent 300 mask 255.255.255.0 synproxy client-address proxy-v2"
                .into(),
            local_addresses: vec!["10.0.0.200".into()],
            servers: vec![
                RealServerView {
                    addr: "192.168.140.11:80".into(),
                    forward: "Route".into(),
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    persist_conns: 0,
                    stats: [0; 5],
                    rates: [0; 5],
                    active: 3,
                    inactive: 4,
                },
                RealServerView {
                    addr: "192.168.140.12:80".into(),
                    forward: "FullNat".into(),
                    weight: 2,
                    upper_threshold: 100,
                    lower_threshold: 50,
                    persist_conns: 0,
                    stats: [0; 5],
                    rates: [0; 5],
                    active: 0,
                    inactive: 0,
                },
            ],
        };
        assert_eq!(
            save(&[s]),
            concat!(
                "-A -t 192.168.140.100:80 -s rr -b sh-port -p 300 -M 255.255.255.0 -j enable --client-address proxy-v2\n",
                "-P -t 192.168.140.100:80 -z 10.0.0.200\n",
                "-a -t 192.168.140.100:80 -r 192.168.140.11:80 -g -w 1\n",
                "-a -t 192.168.140.100:80 -r 192.168.140.12:80 --fullnat -w 2 -x 100 -y 50\n",
            )
        );
    }

    fn fwm(mark: &str, servers: &[(&str, &str)]) -> ServiceView {
        ServiceView {
            proto: "FWM".into(),
            vip: mark.into(),
            scheduler: "rr".into(),
            flags: " persistent 300".into(),
            local_addresses: vec![],
            servers: servers
                .iter()
                .map(|(addr, fwd)| RealServerView {
                    addr: (*addr).into(),
                    forward: (*fwd).into(),
                    weight: 1,
                    upper_threshold: 0,
                    lower_threshold: 0,
                    persist_conns: 0,
                    stats: [4, 40, 30, 2400, 3600],
                    rates: [0; 5],
                    active: 1,
                    inactive: 2,
                })
                .collect(),
        }
    }

    #[test]
    fn fwmark_services_list_save_and_sort_as_ipvsadm() {
        // print_service_entry: "FWM  %d" / "FWM  %d IPv6", "-f %d" / "-f %d -6".
        let v4 = fwm("1", &[("10.0.0.2:0", "Masq")]);
        let v6 = fwm("1 IPv6", &[("[fd00::2]:0", "Route")]);
        let tcp = ServiceView {
            proto: "TCP".into(),
            vip: "10.0.0.1:80".into(),
            scheduler: "wlc".into(),
            flags: String::new(),
            local_addresses: vec![],
            servers: vec![],
        };
        let mut all = vec![fwm("7", &[]), v6.clone(), v4.clone(), tcp];
        sort(&mut all);
        let order: Vec<_> = all
            .iter()
            .map(|s| format!("{} {}", s.proto, s.vip))
            .collect();
        assert_eq!(
            order,
            ["TCP 10.0.0.1:80", "FWM 1", "FWM 1 IPv6", "FWM 7"],
            "ipvs_cmp_services: fwmark first, then af"
        );
        assert_eq!(
            list_services(4096, &[v4.clone(), v6.clone()]),
            concat!(
                "IP Virtual Server version 1.2.1 (size=4096)\n",
                "Prot LocalAddress:Port Scheduler Flags\n",
                "  -> RemoteAddress:Port           Forward Weight ActiveConn InActConn\n",
                "FWM  1 rr persistent 300\n",
                "  -> 10.0.0.2:0                   Masq    1      1          2         \n",
                "FWM  1 IPv6 rr persistent 300\n",
                "  -> [fd00::2]:0                  Route   1      1          2         \n",
            )
        );
        assert_eq!(
            list_services_with(4096, std::slice::from_ref(&v4), Columns::Stats, false),
            concat!(
                "IP Virtual Server version 1.2.1 (size=4096)\n",
                "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes\n",
                "  -> RemoteAddress:Port\n",
                "FWM  1                                   4       40       30     2400     3600\n",
                "  -> 10.0.0.2:0                          4       40       30     2400     3600\n",
            )
        );
        assert_eq!(
            save(&[v4, v6]),
            concat!(
                "-A -f 1 -s rr -p 300\n",
                "-a -f 1 -r 10.0.0.2:0 -m -w 1\n",
                "-A -f 1 -6 -s rr -p 300\n",
                "-a -f 1 -6 -r [fd00::2]:0 -g -w 1\n",
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
        let s = ServiceView {
            proto: "TCP".into(),
            vip: "10.0.0.1:80".into(),
            scheduler: "rr".into(),
            flags: String::new(),
            local_addresses: vec![],
            servers: vec![r],
        };
        let text = list_services_with(4096, std::slice::from_ref(&s), Columns::Stats, false);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "Prot LocalAddress:Port               Conns   InPkts  OutPkts  InBytes OutBytes"
        );
        assert_eq!(lines[2], "  -> RemoteAddress:Port");
        // Expected lines made with C's printf formats from ipvsadm.c.
        assert_eq!(
            lines[3],
            "TCP  10.0.0.1:80                         3       30       25     2000  123456K"
        );
        assert_eq!(
            lines[4],
            "  -> 10.0.0.2:80                         3       30       25     2000  123456K"
        );
        let exact = list_services_with(4096, std::slice::from_ref(&s), Columns::Stats, true);
        assert!(
            exact.lines().nth(3).unwrap().ends_with(" 123456789"),
            "{exact}"
        );
        let rate = list_services_with(4096, &[s], Columns::Rate, false);
        assert_eq!(
            rate.lines().nth(1).unwrap(),
            "Prot LocalAddress:Port                 CPS    InPPS   OutPPS    InBPS   OutBPS"
        );
        assert_eq!(
            rate.lines().nth(4).unwrap(),
            "  -> 10.0.0.2:80                         1       10        9      800      900"
        );
    }

    #[test]
    fn sorts_as_libipvs_compares_under_glibc_qsort() {
        let v = |proto: &str, vip: &str| ServiceView {
            proto: proto.into(),
            vip: vip.into(),
            scheduler: "rr".into(),
            flags: String::new(),
            local_addresses: vec![],
            servers: vec![],
        };
        let mut s = vec![
            v("UDP", "10.0.0.1:53"),
            v("TCP", "10.0.0.2:80"),
            v("TCP", "10.0.0.1:443"),
            v("TCP", "10.0.0.1:80"),
        ];
        sort(&mut s);
        let order: Vec<_> = s.iter().map(|s| format!("{} {}", s.proto, s.vip)).collect();
        assert_eq!(
            order,
            [
                "TCP 10.0.0.1:80",
                "TCP 10.0.0.1:443",
                "TCP 10.0.0.2:80",
                "UDP 10.0.0.1:53"
            ]
        );
        // libipvs's `int r = ntohl(a) - ntohl(b)`: addresses 2^31 or more
        // apart compare the other way round.
        assert!(cmp_addrs("192.168.0.1:80", "10.0.0.1:80") < 0);
        assert!(cmp_addrs("10.0.0.1:80", "192.168.0.1:80") > 0);
        assert!(cmp_addrs("10.0.0.1:80", "100.0.0.1:80") < 0);
        // Not transitive (10 < 100 < 192 < 10): the input order and the
        // merge order decide. What glibc 2.36's qsort makes of each order
        // of these three (a C program with libipvs's comparator):
        for (input, glibc) in [
            (["10", "192", "100"], ["10", "100", "192"]),
            (["192", "10", "100"], ["192", "10", "100"]),
            (["100", "192", "10"], ["100", "192", "10"]),
            (["192", "100", "10"], ["192", "10", "100"]),
            (["10", "100", "192"], ["10", "100", "192"]),
            (["100", "10", "192"], ["100", "192", "10"]),
        ] {
            let addr = |a: &str| {
                if a == "192" {
                    "192.168.0.1:80".to_string()
                } else {
                    format!("{a}.0.0.1:80")
                }
            };
            let mut s: Vec<_> = input.iter().map(|a| v("TCP", &addr(a))).collect();
            sort(&mut s);
            let got: Vec<_> = s.iter().map(|s| s.vip.clone()).collect();
            assert_eq!(got, glibc.map(addr), "from {input:?}");
        }
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
        assert!(
            got.ends_with(
                "TCP 01:14  TIME_WAIT   192.168.146.1:55276 192.168.146.100:80 192.168.177.20:80\n"
            ),
            "{got}"
        );
    }
}
