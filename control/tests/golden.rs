//! Golden-output tests of every `rvsadm` listing format: fixed services,
//! real servers and connections go through `rvs_control::ipvsadm_fmt` as
//! rvsadm uses it (sorted as ipvsadm sorts, unless `--nosort`), and the text
//! must equal the checked-in file in `control/tests/golden/` byte for byte.
//!
//! The files are what ipvsadm 1.31 prints for the same data on Debian 12:
//! `golden/ipvsadm_printf.c` holds the same data and prints it with
//! `ipvsadm.c`'s own printf formats (`print_title`, `print_service_entry`,
//! `print_largenum`, `print_conn`, `list_timeout`) and libipvs's
//! comparators under glibc's `qsort`; `golden/check-against-c.sh` compiles
//! it and diffs its output with these files. rvs prints a few things ipvsadm
//! cannot: the `FullNat` forward (`--fullnat` in `-S`), FULLNAT local
//! addresses (`-P ... -z` lines in `-S`) and thresholds in `-S` (`-x`/`-y`,
//! which ipvsadm's `-R` reads but its `-S` leaves out). The C program prints
//! those the way rvs does, so the diff covers every other byte.
//!
//! To regenerate the files after an intended format change, run
//!
//! ```sh
//! UPDATE_GOLDEN=1 cargo test -p rvs-control --test golden
//! ```
//!
//! then review the diff (and run `golden/check-against-c.sh`) before
//! committing it.

use std::path::PathBuf;

use rvs_control::api::{ConnectionView, RealServerView, ServiceView};
use rvs_control::ipvsadm_fmt::{self, Columns};

/// Session capacity shown as `size=`.
const TABLE_SIZE: u64 = 4096;

#[allow(clippy::too_many_arguments)]
fn rs(
    addr: &str,
    forward: &str,
    weight: u32,
    thresholds: (u32, u32),
    persist: u64,
    stats: [u64; 5],
    rates: [u64; 5],
    conns: (u64, u64),
) -> RealServerView {
    RealServerView {
        addr: addr.into(),
        forward: forward.into(),
        weight,
        upper_threshold: thresholds.0,
        lower_threshold: thresholds.1,
        persist_conns: persist,
        stats,
        rates,
        active: conns.0,
        inactive: conns.1,
    }
}

fn svc(
    proto: &str,
    vip: &str,
    scheduler: &str,
    flags: &str,
    laddrs: &[&str],
    servers: Vec<RealServerView>,
) -> ServiceView {
    ServiceView {
        proto: proto.into(),
        vip: vip.into(),
        scheduler: scheduler.into(),
        flags: flags.into(),
        local_addresses: laddrs.iter().map(|a| (*a).to_string()).collect(),
        servers,
    }
}

/// The services as rvsd might answer them (config order, not sorted).
/// Counters cover every scale of `print_largenum` (plain, K, M, G, T) and
/// the widths where `--exact` widens a column.
fn services() -> Vec<ServiceView> {
    vec![
        svc(
            "UDP",
            "10.0.0.1:53",
            "wlc",
            "",
            &[],
            vec![
                rs(
                    "10.0.0.12:53",
                    "Masq",
                    1,
                    (0, 0),
                    0,
                    [7, 70, 70, 4900, 9100],
                    [0, 1, 1, 60, 120],
                    (0, 3),
                ),
                rs(
                    "10.0.0.11:53",
                    "Masq",
                    2,
                    (0, 0),
                    0,
                    [12, 120, 119, 8400, 15470],
                    [1, 2, 2, 140, 260],
                    (0, 5),
                ),
            ],
        ),
        svc("TCP", "10.0.0.1:443", "rr", "", &["10.0.0.200"], vec![]),
        svc(
            "TCP",
            "192.168.146.100:80",
            "sh",
            " (sh-fallback,sh-port) persistent 300 mask 255.255.255.0",
            &["10.0.0.200", "10.0.0.201"],
            vec![
                rs(
                    "192.168.177.20:80",
                    "Route",
                    3,
                    (0, 0),
                    2,
                    [12, 3456, 2345, 234_567, 98_765_432],
                    [1, 20, 18, 2000, 150_000],
                    (5, 1),
                ),
                rs(
                    "192.168.177.10:8080",
                    "Masq",
                    1,
                    (100, 50),
                    0,
                    [
                        123_456_789,
                        1_234_567_890,
                        99_999_999,
                        123_456_789_012,
                        123_456_789_012_345,
                    ],
                    [4321, 65_432, 54_321, 987_654_321, 5],
                    (0, 0),
                ),
                rs(
                    "10.0.0.3:80",
                    "FullNat",
                    0,
                    (2000, 0),
                    1,
                    [
                        100_000_000,
                        0,
                        999_999_999,
                        100_000_000_000,
                        100_000_000_000_000,
                    ],
                    [0, 0, 0, 100_000_000, 0],
                    (1_234_567_890, 42),
                ),
            ],
        ),
        svc(
            "TCP",
            "10.0.0.1:80",
            "wrr",
            " persistent 600",
            &["10.0.0.200"],
            vec![rs(
                "10.0.0.2:80",
                "FullNat",
                65535,
                (4_294_967_295, 1),
                4_294_967_295,
                [1, 5, 4, 300, 4000],
                [0, 0, 0, 0, 0],
                (4_294_967_295, 0),
            )],
        ),
    ]
}

/// IPv6 services beside an IPv4 one (the `*-v6.txt` files): libipvs sorts
/// IPv4 services first, IPv6 addresses by their four 32-bit words.
fn services_v6() -> Vec<ServiceView> {
    vec![
        svc(
            "TCP",
            "[fd77::100]:80",
            "rr",
            " persistent 300",
            &["fd77::200"],
            vec![
                rs(
                    "[fd77::12]:80",
                    "FullNat",
                    1,
                    (0, 0),
                    0,
                    [7, 70, 70, 4900, 9100],
                    [0, 1, 1, 60, 120],
                    (2, 3),
                ),
                rs(
                    "[2001:db8:ffff:ffff:ffff:ffff:ffff:fff1]:8080",
                    "FullNat",
                    5,
                    (0, 0),
                    0,
                    [
                        123_456_789,
                        1_234_567_890,
                        99_999_999,
                        123_456_789_012,
                        123_456_789_012_345,
                    ],
                    [1, 2, 2, 140, 260],
                    (0, 0),
                ),
                rs(
                    "[fd77::11]:80",
                    "FullNat",
                    1,
                    (0, 0),
                    0,
                    [12, 120, 119, 8400, 15470],
                    [1, 2, 2, 140, 260],
                    (1, 5),
                ),
            ],
        ),
        svc(
            "UDP",
            "[fd77::100]:53",
            "wlc",
            "",
            &[],
            vec![rs(
                "[fd77::11]:53",
                "Masq",
                1,
                (0, 0),
                0,
                [1, 2, 3, 4, 5],
                [0; 5],
                (0, 1),
            )],
        ),
        svc(
            "TCP",
            "10.0.0.1:80",
            "wrr",
            "",
            &["10.0.0.200"],
            vec![rs(
                "10.0.0.2:80",
                "FullNat",
                1,
                (0, 0),
                0,
                [1, 5, 4, 300, 4000],
                [0; 5],
                (0, 0),
            )],
        ),
        svc(
            "TCP",
            "[2001:db8::1]:443",
            "sh",
            "",
            &[],
            vec![
                rs(
                    "[2001:db8::a]:443",
                    "Route",
                    1,
                    (0, 0),
                    0,
                    [0; 5],
                    [0; 5],
                    (0, 0),
                ),
                rs(
                    "[2001:db8::9]:443",
                    "Route",
                    1,
                    (0, 0),
                    0,
                    [0; 5],
                    [0; 5],
                    (0, 0),
                ),
            ],
        ),
    ]
}

fn connections_v6() -> Vec<ConnectionView> {
    let c =
        |proto: &str, secs: u64, state: &str, client: &str, vip: &str, rs: &str| ConnectionView {
            proto: proto.into(),
            expires_in_secs: secs,
            state: state.into(),
            client: client.into(),
            vip: vip.into(),
            rs: rs.into(),
            laddr: "[fd77::200]:1025".into(),
            worker: 1,
        };
    vec![
        c(
            "TCP",
            899,
            "ESTABLISHED",
            "[fd77::10]:40000",
            "[fd77::100]:80",
            "[fd77::11]:80",
        ),
        c(
            "UDP",
            300,
            "UDP",
            "[2001:db8:ffff:ffff:ffff:ffff:ffff:ffff]:65535",
            "[fd77::100]:53",
            "[fd77::11]:53",
        ),
        c(
            "TCP",
            60,
            "SYN_RECV",
            "10.1.2.3:1",
            "10.0.0.1:80",
            "10.0.0.2:80",
        ),
    ]
}

/// Firewall-mark services (`FWM  1`, `FWM  1 IPv6`) beside a VIP service,
/// which libipvs sorts before them (its fwmark is 0).
fn services_fwmark() -> Vec<ServiceView> {
    let r = |addr: &str, fwd: &str, w: u32, persist: u64, stats: [u64; 5], conns: (u64, u64)| {
        rs(
            addr,
            fwd,
            w,
            (0, 0),
            persist,
            stats,
            [1, 10, 9, 800, 900],
            conns,
        )
    };
    vec![
        svc(
            "FWM",
            "7",
            "rr",
            " persistent 300",
            &["10.0.0.200"],
            vec![r(
                "10.0.0.2:0",
                "FullNat",
                1,
                3,
                [5, 50, 40, 3000, 123_456_789],
                (2, 1),
            )],
        ),
        svc(
            "FWM",
            "1 IPv6",
            "sh",
            "",
            &[],
            vec![r("[fd77::11]:0", "Route", 2, 0, [1, 2, 3, 4, 5], (1, 0))],
        ),
        svc(
            "FWM",
            "1",
            "wlc",
            " persistent 600 mask 255.255.255.0",
            &[],
            vec![
                r("10.0.0.12:0", "Masq", 1, 0, [7, 70, 70, 4900, 9100], (0, 3)),
                r(
                    "10.0.0.11:8080",
                    "Masq",
                    2,
                    1,
                    [12, 120, 119, 8400, 15470],
                    (0, 5),
                ),
            ],
        ),
        svc(
            "TCP",
            "10.0.0.1:80",
            "wrr",
            "",
            &["10.0.0.200"],
            vec![r(
                "10.0.0.2:80",
                "FullNat",
                1,
                0,
                [1, 5, 4, 300, 4000],
                (0, 0),
            )],
        ),
    ]
}

/// A fwmark service's connections (the address and port they went to) and
/// template (`IP`, the mark as the address, no ports), as the kernel lists them.
fn connections_fwmark() -> Vec<ConnectionView> {
    let c =
        |proto: &str, secs: u64, state: &str, client: &str, vip: &str, rs: &str| ConnectionView {
            proto: proto.into(),
            expires_in_secs: secs,
            state: state.into(),
            client: client.into(),
            vip: vip.into(),
            rs: rs.into(),
            laddr: String::new(),
            worker: 1,
        };
    vec![
        c(
            "TCP",
            899,
            "ESTABLISHED",
            "10.1.2.3:40000",
            "10.0.0.110:443",
            "10.0.0.12:443",
        ),
        c(
            "UDP",
            300,
            "UDP",
            "10.1.2.3:40001",
            "10.0.0.110:443",
            "10.0.0.12:443",
        ),
        c("IP", 298, "NONE", "10.1.2.0:0", "0.0.0.1:0", "10.0.0.12:0"),
    ]
}

fn sorted() -> Vec<ServiceView> {
    let mut s = services();
    ipvsadm_fmt::sort(&mut s);
    s
}

fn connections() -> Vec<ConnectionView> {
    let c =
        |proto: &str, secs: u64, state: &str, client: &str, vip: &str, rs: &str| ConnectionView {
            proto: proto.into(),
            expires_in_secs: secs,
            state: state.into(),
            client: client.into(),
            vip: vip.into(),
            rs: rs.into(),
            laddr: "10.0.0.200:1025".into(),
            worker: 1,
        };
    vec![
        c(
            "TCP",
            74,
            "TIME_WAIT",
            "192.168.146.1:55276",
            "192.168.146.100:80",
            "192.168.177.20:80",
        ),
        c(
            "TCP",
            899,
            "ESTABLISHED",
            "203.0.113.254:65535",
            "192.168.146.100:80",
            "192.168.177.10:8080",
        ),
        c(
            "UDP",
            300,
            "UDP",
            "10.1.2.3:5353",
            "10.0.0.1:53",
            "10.0.0.11:53",
        ),
        c(
            "TCP",
            5999,
            "SYN_RECV",
            "1.2.3.4:1",
            "10.0.0.1:80",
            "10.0.0.2:80",
        ),
        c(
            "TCP",
            2_678_400,
            "FIN_WAIT",
            "255.255.255.255:65535",
            "10.0.0.1:80",
            "10.0.0.2:80",
        ),
    ]
}

/// Every format: golden file name and the text rvsadm prints.
fn outputs() -> Vec<(&'static str, String)> {
    let s = sorted();
    let list = |c, exact| ipvsadm_fmt::list_services_with(TABLE_SIZE, &s, c, exact);
    let mut sorted6 = services_v6();
    ipvsadm_fmt::sort(&mut sorted6);
    let unsorted6 = services_v6();
    let list6 = |c, sort: bool| {
        ipvsadm_fmt::list_services_with(
            TABLE_SIZE,
            if sort { &sorted6 } else { &unsorted6 },
            c,
            false,
        )
    };
    let mut sorted_fwm = services_fwmark();
    ipvsadm_fmt::sort(&mut sorted_fwm);
    let list_fwm = |c, exact| ipvsadm_fmt::list_services_with(TABLE_SIZE, &sorted_fwm, c, exact);
    vec![
        ("list-fwmark.txt", list_fwm(Columns::Plain, false)),
        ("stats-fwmark.txt", list_fwm(Columns::Stats, false)),
        ("rate-fwmark.txt", list_fwm(Columns::Rate, false)),
        (
            "persistent-conn-fwmark.txt",
            list_fwm(Columns::PersistentConn, false),
        ),
        ("save-fwmark.txt", ipvsadm_fmt::save(&sorted_fwm)),
        (
            "connections-fwmark.txt",
            ipvsadm_fmt::list_connections(&connections_fwmark()),
        ),
        ("list.txt", list(Columns::Plain, false)),
        (
            "list-nosort.txt",
            ipvsadm_fmt::list_services_with(TABLE_SIZE, &services(), Columns::Plain, false),
        ),
        (
            "list-one.txt",
            ipvsadm_fmt::list_one(&s[0], Columns::Plain, false),
        ),
        (
            "list-one-stats.txt",
            ipvsadm_fmt::list_one(&s[0], Columns::Stats, false),
        ),
        (
            "connections.txt",
            ipvsadm_fmt::list_connections(&connections()),
        ),
        (
            "connections-persistent-conn.txt",
            ipvsadm_fmt::list_connections_with(&connections(), true),
        ),
        ("stats.txt", list(Columns::Stats, false)),
        ("stats-exact.txt", list(Columns::Stats, true)),
        ("rate.txt", list(Columns::Rate, false)),
        ("rate-exact.txt", list(Columns::Rate, true)),
        ("thresholds.txt", list(Columns::Thresholds, false)),
        ("persistent-conn.txt", list(Columns::PersistentConn, false)),
        ("timeout.txt", ipvsadm_fmt::timeouts(900, 120, 300)),
        ("save.txt", ipvsadm_fmt::save(&s)),
        ("list-v6.txt", list6(Columns::Plain, true)),
        ("list-v6-nosort.txt", list6(Columns::Plain, false)),
        ("stats-v6.txt", list6(Columns::Stats, true)),
        ("rate-v6.txt", list6(Columns::Rate, true)),
        (
            "persistent-conn-v6.txt",
            list6(Columns::PersistentConn, true),
        ),
        ("save-v6.txt", ipvsadm_fmt::save(&sorted6)),
        (
            "connections-v6.txt",
            ipvsadm_fmt::list_connections(&connections_v6()),
        ),
    ]
}

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

#[test]
fn every_listing_format_matches_its_golden_file() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1");
    let mut failed = Vec::new();
    for (name, got) in outputs() {
        let path = golden_dir().join(name);
        if update {
            std::fs::write(&path, &got).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            continue;
        }
        let want = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("{}: {e} (UPDATE_GOLDEN=1 writes it)", path.display()));
        if got != want {
            failed.push(format!("{name}:\n--- golden\n{want}--- got\n{got}"));
        }
    }
    assert!(
        failed.is_empty(),
        "output differs from the golden files (see control/tests/golden.rs):\n{}",
        failed.join("\n")
    );
}

#[test]
fn golden_files_are_all_used() {
    let names: Vec<&str> = outputs().iter().map(|(n, _)| *n).collect();
    for entry in std::fs::read_dir(golden_dir()).expect("control/tests/golden") {
        let name = entry
            .expect("dir entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        if name.ends_with(".txt") {
            assert!(
                names.contains(&name.as_str()),
                "{name} is checked by no test"
            );
        }
    }
}
