use std::path::Path;

use super::*;

const LAB: &str = include_str!("../../../config/lab.toml");

fn err(text: &str) -> ConfigError {
    parse(Path::new("x.toml"), text).unwrap_err()
}

#[test]
fn lab_config_is_valid() {
    let c = parse(Path::new("config/lab.toml"), LAB).unwrap();
    assert_eq!(c.dataplane.worker_lcores, vec![1]);
    assert_eq!(c.dataplane.idle, IdlePolicy::Backoff);
    assert_eq!(c.interfaces[0].dpdk_name(), "net_af_packet0");
    assert_eq!(c.interfaces[0].kernel_iface(), Some("lb0"));
    let s = &c.services[0];
    assert_eq!(s.vip, "10.77.0.100:80".parse().unwrap());
    assert_eq!(s.real_servers.len(), 2);
    assert_eq!(s.local_addresses, vec![Ipv4Addr::new(10, 77, 0, 200)]);
    assert_eq!(c.timeouts.tcp(TcpStateAlias::Established), 900);
}

use dataplane::session::TcpState as TcpStateAlias;

#[test]
fn syntax_error_names_line() {
    let text = "[dpdk]\nmain_lcore = 0\nno_huge = tru\n";
    let e = err(text);
    assert_eq!(e.at.map(|a| a.0), Some(3), "{e}");
    assert!(e.to_string().starts_with("x.toml:3:"), "{e}");
}

#[test]
fn semantic_errors_name_line_and_reason() {
    let bad_vip = LAB.replace("vip = \"10.77.0.100:80\"", "vip = \"10.77.0.300:80\"");
    let line = bad_vip
        .lines()
        .position(|l| l.contains("10.77.0.300"))
        .unwrap()
        + 1;
    let e = err(&bad_vip);
    assert_eq!(e.at.map(|a| a.0), Some(line));
    assert!(e.reason.contains("10.77.0.300"), "{e}");

    for (from, to, want) in [
        (
            "scheduler = \"rr\"",
            "scheduler = \"nope\"",
            "unknown scheduler",
        ),
        ("weight = 1", "weight = -1", "weight"),
        ("idle = \"backoff\"", "idle = \"sometimes\"", "idle"),
        ("worker_lcores = [1]", "worker_lcores = [0]", "main lcore"),
        (
            "address = \"10.77.0.2/24\"",
            "address = \"10.77.0.2\"",
            "IPv4/PREFIX",
        ),
        ("tcp_close = 10", "tcp_close = 0", "timeout"),
        (
            "address = \"10.77.0.2/24\"",
            "address = \"10.77.0.2/24\"\nmtu = 100",
            "mtu must be 576..9216",
        ),
        (
            "forward = \"fullnat\"",
            "forward = \"bridge\"",
            "fullnat, nat, dr",
        ),
        (
            "protocol = \"tcp\"",
            "protocol = \"sctp\"",
            "\"tcp\" or \"udp\"",
        ),
        ("[dataplane]", "[dataplane]\nbogus_key = 1", "unknown field"),
        (
            "[dataplane]",
            "[dataplane]\ntemplate_capacity = 0",
            "template_capacity must be positive",
        ),
    ] {
        let e = err(&LAB.replace(from, to));
        assert!(e.at.is_some(), "{from} -> {to}: {e}");
        assert!(e.reason.contains(want), "{from} -> {to}: {e}");
    }
}

#[test]
fn missing_pieces_are_refused() {
    assert!(err("[dpdk]\n").reason.contains("interface"));
    let no_rs = LAB
        .split("[[service.real_server]]")
        .next()
        .unwrap()
        .to_string();
    assert!(err(&no_rs).reason.contains("real_server"));
    assert!(load(Path::new("/nonexistent/rvs.toml"))
        .unwrap_err()
        .to_string()
        .contains("cannot read"));
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}

/// The lab config with its `[[service]]` header followed by `service` lines
/// and its first real server followed by `rs` lines.
fn lab_with(service: &str, rs: &str) -> String {
    LAB.replacen("[[service]]\n", &format!("[[service]]\n{service}"), 1)
        .replacen(
            "address = \"10.77.0.11:80\"\n",
            &format!("address = \"10.77.0.11:80\"\n{rs}"),
            1,
        )
}

#[test]
fn scheduling_keys_reach_the_config() {
    let text = lab_with(
        "sched_flags = [\"mh-port\", \"mh-fallback\"]\nmh_table_size = 65537\npersistent = 600\npersistent_netmask = \"255.255.255.0\"\n",
        "upper_threshold = 100\nlower_threshold = 50\n",
    )
    .replace("scheduler = \"rr\"", "scheduler = \"mh\"");
    let c = parse(Path::new("x.toml"), &text).unwrap();
    let s = &c.services[0];
    assert_eq!(s.scheduler, SchedKind::MaglevHashing);
    let o = c.service_options(s.vip, s.proto).unwrap();
    assert_eq!(o.sched_flags, SchedFlags::FALLBACK.union(SchedFlags::PORT));
    assert_eq!(o.mh_table_size, Some(65537));
    assert_eq!(
        o.persistence,
        Some(Persistence {
            timeout_secs: 600,
            netmask: [255, 255, 255, 0],
            prefix6: 128
        })
    );
    assert_eq!(
        o.thresholds.get(&"10.77.0.11:80".parse().unwrap()),
        Some(&Thresholds {
            upper: 100,
            lower: 50
        })
    );
    assert_eq!(o.thresholds.len(), 1);
    assert!(o.check(s.scheduler, 2).is_ok());
    // `persistent = true` is ipvsadm's -p without a value.
    let c = parse(Path::new("x.toml"), &lab_with("persistent = true\n", "")).unwrap();
    assert_eq!(
        c.service_options(c.services[0].vip, 6).unwrap().persistence,
        Some(Persistence::new(300))
    );
    // No options at all: no entry.
    assert!(parse(Path::new("x.toml"), LAB)
        .unwrap()
        .service_options
        .is_empty());
}

#[test]
fn default_scheduler_is_wlc() {
    let text: String = LAB
        .lines()
        .filter(|l| !l.starts_with("scheduler ="))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        parse(Path::new("x.toml"), &text).unwrap().services[0].scheduler,
        SchedKind::WeightedLeastConnection
    );
    for k in SchedKind::ALL {
        let text = LAB.replace(
            "scheduler = \"rr\"",
            &format!("scheduler = \"{}\"", k.name()),
        );
        assert_eq!(
            parse(Path::new("x.toml"), &text).unwrap().services[0].scheduler,
            k
        );
    }
}

#[test]
fn bad_scheduling_keys_name_their_line() {
    let mh = |t: String| t.replace("scheduler = \"rr\"", "scheduler = \"mh\"");
    for (text, needle, want) in [
        (
            lab_with("sched_flags = [\"sh-port\"]\n", ""),
            "sh-port",
            "only applies to the sh scheduler",
        ),
        (
            lab_with("sched_flags = [\"fast\"]\n", ""),
            "fast",
            "unknown scheduler flag",
        ),
        (
            mh(lab_with("mh_table_size = 65536\n", "")),
            "mh_table_size = 65536",
            "must be a prime",
        ),
        (
            mh(lab_with("mh_table_size = 2\n", "")),
            "mh_table_size = 2",
            "must exceed the number of real servers",
        ),
        (
            lab_with("mh_table_size = 251\n", ""),
            "mh_table_size",
            "only applies to the mh scheduler",
        ),
        (
            lab_with("persistent = 0\n", ""),
            "persistent = 0",
            "persistent must be",
        ),
        (
            lab_with("persistent = \"yes\"\n", ""),
            "persistent = \"yes\"",
            "seconds or true/false",
        ),
        (
            lab_with(
                "persistent = 60\npersistent_netmask = \"255.0.255.0\"\n",
                "",
            ),
            "255.0.255.0",
            "not contiguous",
        ),
        (
            lab_with("persistent_netmask = \"255.255.255.0\"\n", ""),
            "persistent_netmask",
            "needs persistent",
        ),
        (
            lab_with("", "upper_threshold = 10\nlower_threshold = 20\n"),
            "lower_threshold",
            "higher than upper",
        ),
        (
            lab_with("", "upper_threshold = -1\n"),
            "upper_threshold",
            "upper_threshold must be",
        ),
        (
            lab_with("client_address = \"proxy\"\n", ""),
            "client_address",
            "client_address must be \"none\", \"toa\"",
        ),
        (
            lab_with("client_address = \"toa\"\n", "")
                .replace("protocol = \"tcp\"", "protocol = \"udp\""),
            "client_address",
            "UDP services take \"proxy-v2\" only",
        ),
        (
            lab_with("client_address = \"proxy-v1\"\n", "")
                .replace("forward = \"fullnat\"", "forward = \"nat\""),
            "client_address",
            "for FULLNAT services",
        ),
        (
            lab_with("syn_proxy = true\n", "").replace("protocol = \"tcp\"", "protocol = \"udp\""),
            "syn_proxy",
            "syn_proxy is for TCP services",
        ),
        (
            lab_with("syn_proxy = true\n", "forward = \"dr\"\n"),
            "syn_proxy",
            "syn_proxy needs FULLNAT or NAT forwarding",
        ),
    ] {
        let e = err(&text);
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert_eq!(e.at.map(|a| a.0), Some(line), "{want}: {e}");
        assert!(e.reason.contains(want), "{want}: {e}");
    }
}

#[test]
fn acl_and_limits_reach_the_options_and_bad_ones_name_their_place() {
    let text = lab_with(
        "acl = [\"allow 10.1.2.0/24\", \"deny 10.0.0.0/8\"]\nmax_conns = 100\nclient_prefix_v4 = 24\nnew_conn_rate = 5\n",
        "",
    );
    let c = parse(Path::new("x.toml"), &text).unwrap();
    let s = &c.services[0];
    let o = c.service_options(s.vip, s.proto).unwrap();
    let rules: Vec<String> = o.acl.iter().map(ToString::to_string).collect();
    assert_eq!(rules, ["allow 10.1.2.0/24", "deny 10.0.0.0/8"]);
    assert_eq!(
        (o.limits.max_conns, o.limits.client_prefix_v4, o.limits.rate),
        (100, 24, 5)
    );
    for (text, needle, want) in [
        (
            lab_with(
                "acl = [\"allow 10.1.2.0/24\",\n  \"deny 10.1.0.0/8\"]\n",
                "",
            ),
            "10.1.0.0/8",
            "did you mean 10.0.0.0/8",
        ),
        (
            lab_with("acl = [\"drop 10.0.0.0/8\"]\n", ""),
            "drop",
            "allow or deny",
        ),
        (
            lab_with("acl = [\"deny fd00::/8\"]\n", ""),
            "fd00::/8",
            "are IPv4",
        ),
        (
            lab_with("max_conns = -5\n", ""),
            "max_conns",
            "max_conns must be",
        ),
        (
            lab_with("client_prefix_v4 = 40\n", ""),
            "client_prefix_v4",
            "client_prefix_v4 must be 0..=32",
        ),
        (
            lab_with("icmp_burst = 0\n", ""),
            "icmp_burst",
            "icmp_burst must be 1..",
        ),
    ] {
        let e = err(&text);
        let line = text.lines().position(|l| l.contains(needle)).unwrap() + 1;
        assert!(e.reason.contains(want), "{want}: {e}");
        assert_eq!(e.at.map(|a| a.0), Some(line), "{want}: {e}");
    }
}

use dataplane::sched::{SchedFlags, SchedKind};

#[test]
fn client_address_reaches_the_service_options() {
    for mode in ClientAddress::ALL {
        let text = lab_with(&format!("client_address = \"{}\"\n", mode.word()), "");
        let c = parse(Path::new("x.toml"), &text).unwrap();
        let s = &c.services[0];
        let got = c
            .service_options(s.vip, s.proto)
            .map_or(ClientAddress::None, |o| o.client_address);
        assert_eq!(got, mode);
    }
    let udp = lab_with("client_address = \"proxy-v2\"\n", "")
        .replace("protocol = \"tcp\"", "protocol = \"udp\"");
    assert!(parse(Path::new("x.toml"), &udp).is_ok());
}

#[test]
fn syn_proxy_reaches_the_service_options() {
    for forward in ["fullnat", "nat"] {
        let text = lab_with("syn_proxy = true\n", "")
            .replace("forward = \"fullnat\"", &format!("forward = \"{forward}\""));
        let c = parse(Path::new("x.toml"), &text).unwrap();
        let s = &c.services[0];
        assert!(c
            .service_options(s.vip, s.proto)
            .is_some_and(|o| o.syn_proxy));
    }
}

#[test]
fn syn_proxy_combines_with_every_client_address_mode() {
    for mode in ["toa", "proxy-v1", "proxy-v2"] {
        let text = lab_with(
            &format!("client_address = \"{mode}\"\nsyn_proxy = true\n"),
            "",
        );
        let c = parse(Path::new("x.toml"), &text).unwrap();
        let s = &c.services[0];
        let o = c.service_options(s.vip, s.proto).unwrap();
        assert!(o.syn_proxy, "{mode}");
        assert_eq!(o.client_address.word(), mode);
    }
}

#[test]
fn udp_services_and_per_server_forwarding() {
    let text = LAB.replace("protocol = \"tcp\"", "protocol = \"udp\"");
    let c = parse(Path::new("x.toml"), &text).unwrap();
    assert_eq!(c.services[0].proto, 17);
    // One server by NAT, the other by the service's default (DR): ports equal to the VIP's.
    let text = LAB
        .replace("forward = \"fullnat\"", "forward = \"dr\"")
        .replacen(
            "address = \"10.77.0.11:80\"",
            "address = \"10.77.0.11:80\"\nforward = \"masq\"",
            1,
        );
    let c = parse(Path::new("x.toml"), &text).unwrap();
    let s = &c.services[0];
    assert_eq!(s.forward, Forward::Dr);
    let (rs1, rs2) = (s.real_servers[0].addr, s.real_servers[1].addr);
    assert_eq!(
        (c.server_forward(s, rs1), c.server_forward(s, rs2)),
        (Forward::Nat, Forward::Dr)
    );
    // Without a FULLNAT server, local addresses are optional.
    let no_laddr = text.replace("local_addresses = [\"10.77.0.200\"]", "");
    assert!(parse(Path::new("x.toml"), &no_laddr).is_ok());
    let fullnat_without = LAB.replace("local_addresses = [\"10.77.0.200\"]", "");
    assert!(err(&fullnat_without)
        .reason
        .contains("FULLNAT needs local_addresses"));
}

#[test]
fn dr_port_mapping_is_refused_at_the_server() {
    let text = LAB.replace(
        "address = \"10.77.0.12:80\"",
        "address = \"10.77.0.12:8080\"\nforward = \"dr\"",
    );
    let line = text
        .lines()
        .position(|l| l.contains("forward = \"dr\""))
        .unwrap()
        + 1;
    let e = err(&text);
    assert_eq!(e.at.map(|a| a.0), Some(line), "{e}");
    assert!(
        e.reason.contains("cannot map port 80 to 8080") && e.reason.contains("10.77.0.12:80"),
        "{e}"
    );
    // The service-level default points at the server's address line.
    let text = LAB
        .replace("forward = \"fullnat\"", "forward = \"dr\"")
        .replace("10.77.0.12:80", "10.77.0.12:81");
    let line = text
        .lines()
        .position(|l| l.contains("address = \"10.77.0.12:81\""))
        .unwrap()
        + 1;
    assert_eq!(err(&text).at.map(|a| a.0), Some(line));
    assert!(check_forward(
        Forward::Nat,
        "10.0.0.1:80".parse().unwrap(),
        "10.0.0.2:8080".parse().unwrap()
    )
    .is_ok());
}

#[test]
fn a_nat_server_may_serve_several_services() {
    // As the kernel allows (and `ipvsadm -S` of such a box shows).
    let second = "\n[[service]]\nvip = \"10.77.0.101:80\"\nforward = \"nat\"\n[[service.real_server]]\naddress = \"10.77.0.11:80\"\n";
    let text = LAB
        .replace("forward = \"fullnat\"", "forward = \"nat\"")
        .replace(
            "# Session timeouts",
            &format!("{second}\n# Session timeouts"),
        );
    assert!(parse(Path::new("x.toml"), &text).is_ok());
}

#[test]
fn forward_words_as_ipvsadm_and_the_config_say_them() {
    for (w, f) in [
        ("fullnat", Forward::FullNat),
        ("nat", Forward::Nat),
        ("masq", Forward::Nat),
        ("dr", Forward::Dr),
        ("route", Forward::Dr),
        ("gatewaying", Forward::Dr),
        ("tun", Forward::Tun),
        ("ipip", Forward::Tun),
        ("tunnel", Forward::Tun),
    ] {
        assert_eq!(parse_forward(w), Ok(f));
    }
    assert!(parse_forward("bridge")
        .unwrap_err()
        .contains("fullnat, nat, dr, tun"));
    assert_eq!(
        (
            forward_name(Forward::Nat),
            Forward::Nat.column(),
            Forward::Dr.column()
        ),
        ("nat", "Masq", "Route")
    );
    assert_eq!(
        (forward_name(Forward::Tun), Forward::Tun.column()),
        ("tun", "Tunnel")
    );
}

/// The lab with an IPv6 address on its interface and an IPv6 service.
fn lab_v6(service: &str) -> String {
    let lab = LAB.replace(
        "address6 = \"fd77::2/64\"",
        "address6 = \"fd77::2/64\"\ngateway6 = \"fd77::1\"",
    );
    lab.replace(
        "# Session timeouts",
        &format!("{service}\n# Session timeouts"),
    )
}

const V6_SERVICE: &str = "[[service]]\nvip = \"[fd77::100]:80\"\nscheduler = \"rr\"\nlocal_addresses = [\"fd77::200\"]\n\
                          [[service.real_server]]\naddress = \"[fd77::11]:80\"\n[[service.real_server]]\naddress = \"[fd77::12]:80\"\n";

#[test]
fn ipv6_services_and_interface_addresses() {
    let c = parse(Path::new("x.toml"), &lab_v6(V6_SERVICE)).unwrap();
    assert_eq!(
        c.interfaces[0].addr6,
        Some(("fd77::2".parse().unwrap(), 64))
    );
    assert_eq!(c.interfaces[0].gateway6, Some("fd77::1".parse().unwrap()));
    let s = &c.services[1];
    assert_eq!(s.vip, "[fd77::100]:80".parse().unwrap());
    assert_eq!(
        s.local_addresses,
        vec!["fd77::200".parse::<std::net::IpAddr>().unwrap()]
    );
    assert_eq!(s.real_servers[1].addr, "[fd77::12]:80".parse().unwrap());
    // IPv4 stays as it was beside it.
    assert_eq!(c.services[0].vip, "10.77.0.100:80".parse().unwrap());
    // An IPv6 route with an IPv6 gateway, and `default` through one.
    let routed = lab_v6("[[route]]\ndestination = \"fd80::/64\"\nvia = \"fd77::1\"\n\n[[route]]\ndestination = \"default\"\nvia = \"fd77::fe\"\n")
        .replace("\ngateway6 = \"fd77::1\"", "");
    let c = parse(Path::new("x.toml"), &routed).unwrap();
    assert_eq!(
        (
            c.routes[0].prefix,
            c.routes[0].len,
            c.routes[0].dev.as_str()
        ),
        ("fd80::".parse().unwrap(), 64, "dpdk0")
    );
    assert_eq!(
        (c.routes[1].prefix, c.routes[1].len),
        ("::".parse().unwrap(), 0)
    );
}

#[test]
fn ipv6_mistakes_name_their_line() {
    let mixed_rs = V6_SERVICE.replace("[fd77::12]:80", "10.77.0.13:80");
    let mixed_laddr = V6_SERVICE.replace("\"fd77::200\"", "\"10.77.0.201\"");
    let nat64 = V6_SERVICE
        .replace("[fd77::11]:80", "10.77.0.11:80")
        .replace("[fd77::12]:80", "10.77.0.12:80")
        .replace("\"fd77::200\"", "\"10.77.0.201\"");
    let v4_to_v6 = "[[service]]\nvip = \"10.77.0.101:80\"\nlocal_addresses = [\"10.77.0.201\"]\n[[service.real_server]]\naddress = \"[fd77::13]:80\"\n";
    let mask = |m: &str| {
        V6_SERVICE.replace(
            "scheduler = \"rr\"",
            &format!("scheduler = \"rr\"\npersistent = 60\npersistent_netmask = {m}"),
        )
    };
    for (text, needle, want) in [
        (
            lab_v6(&mixed_rs),
            "10.77.0.13:80",
            "share one address family",
        ),
        (
            lab_v6(&mixed_laddr),
            "10.77.0.201",
            "local addresses are the source toward the real servers",
        ),
        (
            lab_v6(&nat64.replace("\"10.77.0.201\"", "\"fd77::201\"")),
            "fd77::201",
            "reaches its real servers over IPv4",
        ),
        (
            lab_v6(&nat64.replace(
                "address = \"10.77.0.12:80\"",
                "address = \"10.77.0.12:80\"\nforward = \"dr\"",
            )),
            "forward = \"dr\"",
            "FULLNAT64 translates between the families in FULLNAT only",
        ),
        (
            lab_v6(v4_to_v6),
            "[fd77::13]:80",
            "IPv4 clients to IPv6 servers are not supported",
        ),
        (
            lab_v6(&V6_SERVICE.replace("[fd77::100]:80", "fd77::100:80")),
            "fd77::100:80",
            "[IPv6]:PORT",
        ),
        (
            lab_v6(&mask("\"255.255.255.0\"")),
            "persistent_netmask",
            "prefix length 1..=128",
        ),
        (
            lab_v6(&mask("129")),
            "persistent_netmask",
            "prefix length 1..=128",
        ),
        (
            lab_v6(V6_SERVICE).replace("fd77::2/64", "fd77::2"),
            "address6",
            "IPv6/PREFIX",
        ),
        (
            lab_v6(V6_SERVICE).replace("fd77::2/64", "10.77.0.3/24"),
            "address6",
            "IPv6/PREFIX",
        ),
        (
            lab_v6(V6_SERVICE).replace("gateway6 = \"fd77::1\"", "gateway6 = \"fd78::1\""),
            "gateway6",
            "not on the interface's subnet",
        ),
        (
            LAB.replace("address6 = \"fd77::2/64\"", "gateway6 = \"fd77::1\""),
            "gateway6",
            "needs address6",
        ),
        (
            lab_v6("[[route]]\ndestination = \"fd80::/64\"\nvia = \"10.77.0.1\"\n"),
            "via = \"10.77.0.1\"",
            "not of the family",
        ),
        (
            lab_v6("[[route]]\ndestination = \"fd80::1/64\"\nvia = \"fd77::1\"\n"),
            "fd80::1/64",
            "did you mean fd80::/64",
        ),
        (
            lab_v6("[[route]]\ndestination = \"fd80::/129\"\nvia = \"fd77::1\"\n"),
            "fd80::/129",
            "IPv6/PREFIX",
        ),
    ] {
        let e = err(&text);
        let line = text
            .lines()
            .collect::<Vec<_>>()
            .iter()
            .rposition(|l| l.contains(needle))
            .unwrap()
            + 1;
        assert_eq!(e.at.map(|a| a.0), Some(line), "{want}: {e}");
        assert!(e.reason.contains(want), "{want}: {e}");
    }
    // An IPv6 service persists by a prefix (ipvsadm -M 64).
    let c = parse(Path::new("x.toml"), &lab_v6(&mask("64"))).unwrap();
    assert!(c
        .service_options
        .values()
        .any(|o| o.persistence.is_some_and(|p| p.prefix6 == 64)));
    // FULLNAT64: an IPv6 VIP, IPv4 servers and local addresses.
    let c = parse(Path::new("x.toml"), &lab_v6(&nat64)).unwrap();
    assert_eq!(
        (
            c.services[1].vip.is_ipv6(),
            c.services[1].real_servers[0].addr
        ),
        (true, "10.77.0.11:80".parse().unwrap())
    );
    // 128 is ipvsadm's default and accepted.
    let c = parse(Path::new("x.toml"), &lab_v6(&mask("128"))).unwrap();
    assert_eq!(
        c.service_options(c.services[1].vip, 6)
            .and_then(|o| o.persistence)
            .map(|p| p.timeout_secs),
        Some(60)
    );
}

/// The lab config with `extra` interfaces: `(name, link, vlan)` stanzas, plus free text.
fn lab_with_vlan(stanza: &str) -> String {
    LAB.replacen("[[service]]\n", &format!("{stanza}\n[[service]]\n"), 1)
}

#[test]
fn vlan_sub_interfaces_follow_the_ports() {
    // Declared before its parent in the file: still numbered after every port.
    let text = LAB.replacen(
        "[[interface]]\n",
        "[[interface]]\nname = \"dpdk0.100\"\nlink = \"dpdk0\"\nvlan = 100\naddress = \"10.78.0.2/24\"\naddress6 = \"fd78::2/64\"\n\n[[interface]]\n",
        1,
    );
    let c = parse(Path::new("v.toml"), &text).unwrap();
    assert_eq!(
        c.interfaces
            .iter()
            .map(|i| i.name.as_str())
            .collect::<Vec<_>>(),
        ["dpdk0", "dpdk0.100"]
    );
    let v = &c.interfaces[1];
    assert_eq!(
        v.vlan,
        Some(VlanConfig {
            link: "dpdk0".into(),
            id: 100
        })
    );
    assert!(!v.is_port() && c.interfaces[0].is_port());
    assert_eq!(
        (v.device.as_str(), v.mtu, v.addr),
        ("", 1500, Ipv4Addr::new(10, 78, 0, 2))
    );
    // A static route through it.
    let routed = lab_with_vlan("[[interface]]\nname = \"dpdk0.100\"\nlink = \"dpdk0\"\nvlan = 100\naddress = \"10.78.0.2/24\"\n\n[[route]]\ndestination = \"10.90.0.0/16\"\nvia = \"10.78.0.254\"\n");
    let c = parse(Path::new("v.toml"), &routed).unwrap();
    assert_eq!(c.routes[0].dev, "dpdk0.100");
}

#[test]
fn bad_vlan_sub_interfaces_are_refused_at_their_line() {
    let vlan = |link: &str, id: &str, more: &str| {
        format!("[[interface]]\nname = \"v\"\nlink = \"{link}\"\nvlan = {id}\naddress = \"10.78.0.2/24\"\n{more}")
    };
    let two = format!("{}\n[[interface]]\nname = \"w\"\nlink = \"dpdk0\"\nvlan = 100\naddress = \"10.79.0.2/24\"\n", vlan("dpdk0", "100", ""));
    for (stanza, line_has, want) in [
        (vlan("dpdk0", "0", ""), "vlan = 0", "vlan id 0 is invalid: 802.1Q ids are 1..4094"),
        (vlan("dpdk0", "4095", ""), "vlan = 4095", "vlan id 4095 is invalid"),
        (vlan("dpdk9", "100", ""), "link = \"dpdk9\"", "Cannot find device \"dpdk9\""),
        (two, "vlan = 100\naddress = \"10.79", "VLAN 100 on dpdk0 already exists (interface \"v\")"),
        (vlan("dpdk0", "100", "mtu = 9000\n"), "mtu = 9000", "mtu 9000 is larger than its link dpdk0's mtu 1500"),
        (
            format!("{}\n[[interface]]\nname = \"q\"\nlink = \"v\"\nvlan = 5\naddress = \"10.79.0.2/24\"\n", vlan("dpdk0", "100", "")),
            "link = \"v\"",
            "stacked VLANs (802.1ad, QinQ) are not supported",
        ),
        ("[[interface]]\nname = \"v\"\nlink = \"dpdk0\"\naddress = \"10.78.0.2/24\"\n".into(), "link = \"dpdk0\"", "link needs vlan"),
        ("[[interface]]\nname = \"v\"\nvlan = 7\naddress = \"10.78.0.2/24\"\n".into(), "vlan = 7", "vlan needs link"),
        ("[[interface]]\nname = \"v\"\naddress = \"10.78.0.2/24\"\n".into(), "name = \"v\"", "needs a device (a DPDK port) or link and vlan"),
        (
            "[[interface]]\nname = \"v\"\ndevice = \"net_af_packet1,iface=lb1\"\nlink = \"dpdk0\"\nvlan = 7\naddress = \"10.78.0.2/24\"\n".into(),
            "link = \"dpdk0\"\nvlan = 7",
            "has both device and link",
        ),
    ] {
        let text = lab_with_vlan(&stanza);
        let e = err(&text);
        let line = text[..text.find(line_has).unwrap()].matches('\n').count() + 1;
        assert_eq!(e.at.map(|a| a.0), Some(line), "{stanza}: {e}");
        assert!(e.reason.contains(want), "{stanza}: {e}");
        assert!(e.to_string().starts_with(&format!("x.toml:{line}:")), "{e}");
    }
}

#[test]
fn interface_named_like_a_devices_kernel_interface_is_refused() {
    let text = LAB.replacen("name = \"dpdk0\"", "name = \"lb0\"", 1);
    let line = text
        .lines()
        .position(|l| l.contains("name = \"lb0\""))
        .unwrap()
        + 1;
    let e = err(&text);
    assert_eq!(e.at.map(|a| a.0), Some(line), "{e}");
    assert!(e.reason.contains("kernel interface"), "{e}");
    // Any name the kernel side does not already use is fine.
    let ok = LAB.replacen("name = \"dpdk0\"", "name = \"lb1\"", 1);
    parse(Path::new("x.toml"), &ok).unwrap();
}

/// Line and column of the `nth` (from 0) occurrence of `needle`, from 1.
fn at(text: &str, needle: &str, nth: usize) -> (usize, usize) {
    let off = text.match_indices(needle).nth(nth).unwrap().0;
    line_col(text, off)
}

#[test]
fn addresses_of_other_hosts_and_roles_are_refused_where_written() {
    let second = |vip: &str, laddr: &str, rs: &str| {
        format!(
            "{LAB}\n[[service]]\nvip = \"{vip}\"\nlocal_addresses = [\"{laddr}\"]\n\
             [[service.real_server]]\naddress = \"{rs}\"\n"
        )
    };
    for (text, needle, nth, want) in [
        // A VIP at a real server's address.
        (second("10.77.0.11:8080", "10.77.0.201", "10.77.0.13:80"), "\"10.77.0.11:8080\"", 0, "10.77.0.11 cannot be a VIP of service TCP/10.77.0.11:8080: it is the real server 10.77.0.11:80 of service TCP/10.77.0.100:80"),
        // A local address at a real server's, the interface's, another service's VIP.
        (second("10.77.0.101:80", "10.77.0.12", "10.77.0.13:80"), "\"10.77.0.12\"", 0, "10.77.0.12 cannot be a local address of service TCP/10.77.0.101:80: it is the real server"),
        (second("10.77.0.101:80", "10.77.0.2", "10.77.0.13:80"), "\"10.77.0.2\"", 0, "10.77.0.2 cannot be a local address of service TCP/10.77.0.101:80: it is the interface address of dpdk0"),
        (second("10.77.0.101:80", "10.77.0.100", "10.77.0.13:80"), "\"10.77.0.100\"]", 0, "10.77.0.100 cannot be a local address of service TCP/10.77.0.101:80: it is the VIP of service TCP/10.77.0.100:80"),
        // A VIP at another service's local address.
        (second("10.77.0.200:81", "10.77.0.201", "10.77.0.13:80"), "\"10.77.0.200:81\"", 0, "10.77.0.200 cannot be a VIP"),
        // A real server at a VIP, a local address, the interface's address.
        (second("10.77.0.101:80", "10.77.0.201", "10.77.0.100:80"), "\"10.77.0.100:80\"", 1, "10.77.0.100 cannot be a real server 10.77.0.100:80 of service TCP/10.77.0.101:80: it is the VIP"),
        (second("10.77.0.101:80", "10.77.0.201", "10.77.0.200:80"), "\"10.77.0.200:80\"", 0, "10.77.0.200 cannot be a real server 10.77.0.200:80 of service TCP/10.77.0.101:80: it is the local address of service TCP/10.77.0.100:80"),
        (second("10.77.0.101:80", "10.77.0.201", "10.77.0.2:80"), "\"10.77.0.2:80\"", 0, "10.77.0.2 cannot be a real server"),
    ] {
        let e = err(&text);
        assert_eq!(e.at, Some(at(&text, needle, nth)), "{e}");
        assert!(e.reason.starts_with(want), "{e}");
        assert!(e.to_string().starts_with("x.toml:"), "{e}");
    }
    // Shared on purpose: a local address by two services, a server by two
    // services, a VIP on the appliance's own address.
    parse(
        Path::new("x.toml"),
        &second("10.77.0.2:80", "10.77.0.200", "10.77.0.11:80"),
    )
    .unwrap();
}

#[test]
fn vip_routes_defaults_and_errors() {
    let with = |section: &str| format!("{LAB}\n[vip_routes]\n{section}\n");
    let c = parse(Path::new("x.toml"), &with("table = 100")).unwrap();
    let v = c.vip_routes.unwrap();
    assert_eq!(
        (v.table, v.interface.as_str(), v.drain_grace),
        (100, "dpdk0", 30)
    );
    assert!(parse(Path::new("x.toml"), LAB)
        .unwrap()
        .vip_routes
        .is_none());
    let c = parse(
        Path::new("x.toml"),
        &with("table = 100\npeer_local_addresses = [\"10.77.0.201\"]"),
    )
    .unwrap();
    assert_eq!(
        c.vip_routes.unwrap().peer_local_addresses,
        vec!["10.77.0.201".parse::<std::net::IpAddr>().unwrap()]
    );
    for (section, reason) in [
        ("table = 254", "table must be 1..=252"),
        ("table = 0", "table must be 1..=252"),
        (
            "table = 100\ninterface = \"eth9\"",
            "no [[interface]] named \"eth9\"",
        ),
        (
            "table = 100\ndrain_grace = -1",
            "drain_grace must be 0..=3600",
        ),
        ("interface = \"dpdk0\"", "missing field `table`"),
        (
            "table = 100\npeer_local_addresses = [\"10.77.0.200\"]",
            "peer local address 10.77.0.200 is also a local address of service 10.77.0.100:80 here",
        ),
        (
            "table = 100\npeer_local_addresses = [\"10.77.0.100\"]",
            "peer local address 10.77.0.100 is the VIP",
        ),
        (
            "table = 100\npeer_local_addresses = [\"10.77.0.11\"]",
            "peer local address 10.77.0.11 is a real server",
        ),
        (
            "table = 100\npeer_local_addresses = [\"10.77.0.201\", \"10.77.0.201\"]",
            "listed twice",
        ),
        (
            "table = 100\npeer_local_addresses = [\"x\"]",
            "peer local address \"x\" is not an IP address",
        ),
    ] {
        let e = err(&with(section));
        assert!(e.to_string().contains(reason), "{section}: {e}");
        assert!(e.at.is_some(), "{section}: {e}");
    }
}

#[test]
fn flood_guard_defaults_and_ranges() {
    let ok = |t: &str| parse(Path::new("x.toml"), t).unwrap();
    let c = ok(LAB);
    assert_eq!(c.flood_guard, dataplane::guard::GuardConfig::default());
    let text = format!(
        "{LAB}\n[flood_guard]\nenabled = false\nnew_session_rate = 20000\nsession_high_water = 80\nport_high_water = 75\nhalf_open_timeout = 3\n"
    );
    let g = ok(&text).flood_guard;
    assert!(!g.enabled);
    assert_eq!(
        (
            g.new_session_rate,
            g.session_high_water,
            g.port_high_water,
            g.half_open_timeout_secs
        ),
        (20000, 80, 75, 3)
    );
    for (line, want) in [
        (
            "session_high_water = 0",
            "session_high_water (percent) must be 1..=100, not 0",
        ),
        (
            "port_high_water = 101",
            "port_high_water (percent) must be 1..=100, not 101",
        ),
        (
            "new_session_rate = -1",
            "new_session_rate must be 0..=100000000, not -1",
        ),
        (
            "half_open_timeout = 0",
            "half_open_timeout (seconds) must be 1..=",
        ),
        ("bogus = 1", "unknown field"),
    ] {
        let text = format!("{LAB}\n[flood_guard]\n{line}\n");
        let e = err(&text);
        let want_line = text.lines().count();
        assert_eq!(e.at.map(|a| a.0), Some(want_line), "{line}: {e}");
        assert!(e.reason.contains(want), "{line}: {e}");
    }
}

/// The lab's file with `stanza` (mark rules, a fwmark service) before its
/// first service.
fn lab_with_fwmark(stanza: &str) -> String {
    LAB.replacen("[[service]]\n", &format!("{stanza}\n[[service]]\n"), 1)
}

const FWM: &str = "[[mark]]\nmark = 1\naddresses = [\"10.77.0.110\", \"10.77.9.0/24\"]\nports = [80, \"443-444\"]\n\n[[service]]\nfwmark = 1\nscheduler = \"rr\"\npersistent = 60\nforward = \"nat\"\n\n[[service.real_server]]\naddress = \"10.77.0.11\"\n";

#[test]
fn fwmark_services_and_mark_rules_reach_the_config() {
    let c = parse(Path::new("f.toml"), &lab_with_fwmark(FWM)).unwrap();
    assert_eq!(c.marks.len(), 1);
    let m = &c.marks[0];
    assert_eq!(
        (m.mark, m.proto, m.ports.clone()),
        (1, 0, vec![(80, 80), (443, 444)])
    );
    assert_eq!(
        m.hosts().collect::<Vec<_>>(),
        vec!["10.77.0.110".parse::<IpAddr>().unwrap()]
    );
    let s = &c.services[0];
    assert_eq!((s.vip, s.proto), (marks::service_key(1, false), 0));
    assert_eq!(s.real_servers[0].addr, "10.77.0.11:0".parse().unwrap());
    let t = crate::plan::tables(&c, &[[2, 0, 0, 0, 0, 2]], &mut Default::default(), 1);
    assert_eq!(t.marks.rules.len(), 1);
    assert_eq!(
        t.marked_service(dataplane::session::Endpoint::new([10, 77, 9, 7], 443), 17),
        Some(0)
    );
    assert!(t.holds([10, 77, 0, 110].into()) && !t.holds([10, 77, 9, 7].into()));
}

#[test]
fn bad_fwmark_keys_name_their_line() {
    let rs = "[[service.real_server]]\naddress = \"10.77.0.11\"\nforward = \"dr\"\n";
    for (text, needle, want) in [
        (
            lab_with_fwmark(&format!("[[service]]\nfwmark = 0\n{rs}")),
            "0\n[[service.real_server]]",
            "fwmark must be 1..=4294967295",
        ),
        (
            lab_with_fwmark(&format!("[[service]]\nfwmark = 1\nvip = \"10.77.0.120:80\"\n{rs}")),
            "1\nvip",
            "a vip (\"10.77.0.120:80\") or a fwmark, not both",
        ),
        (
            lab_with_fwmark(&format!("[[service]]\nfwmark = 1\nprotocol = \"udp\"\n{rs}")),
            "\"udp\"",
            "name the protocol in its [[mark]] rules",
        ),
        (
            lab_with_fwmark(&format!("[[service]]\nfwmark = 1\n{rs}\n[[service]]\nfwmark = 1\n{rs}")),
            "1\n[[service.real_server]]\naddress = \"10.77.0.11\"\nforward = \"dr\"\n\n[[service]]\nvip",
            "service fwmark 1 defined twice",
        ),
        (
            lab_with_fwmark("[[mark]]\nmark = 1\naddresses = [\"10.77.0.0/24\"]\n"),
            "\"10.77.0.0/24",
            "mark 1 prefix 10.77.0.0/24 contains the interface address of dpdk0",
        ),
        (
            lab_with_fwmark("[[mark]]\nmark = 1\naddresses = [\"10.77.0.8/29\"]\n"),
            "\"10.77.0.8/29",
            "contains the real server 10.77.0.11:80",
        ),
        (
            lab_with_fwmark("[[mark]]\nmark = 1\naddresses = [\"10.77.0.12\"]\n"),
            "\"10.77.0.12\"]\n",
            "10.77.0.12 cannot be a VIP of mark 1: it is the real server 10.77.0.12:80",
        ),
        (
            lab_with_fwmark("[[mark]]\nmark = 1\naddresses = [\"10.77.0.110\"]\nports = [\"90-80\"]\n"),
            "\"90-80\"",
            "runs backwards",
        ),
        (
            lab_with_fwmark("[[mark]]\nmark = 1\naddresses = []\n"),
            "[]",
            "needs addresses",
        ),
        (
            lab_with_fwmark("[[mark]]\nmark = 1\naddresses = [\"10.77.0.110\"]\nprotocol = \"sctp\"\n"),
            "\"sctp\"",
            "protocol must be \"tcp\" or \"udp\" (none: both)",
        ),
    ] {
        let e = err(&text);
        let at = text.find(needle).unwrap_or_else(|| panic!("{needle} in {text}"));
        assert_eq!(e.at, Some(line_col(&text, at)), "{want}: {e}");
        assert!(e.reason.contains(want), "{want}: {e}");
    }
}

#[test]
fn isn_secret_is_16_bytes_of_hex_and_a_bad_one_names_its_line_but_not_its_value() {
    let c = parse(Path::new("x.toml"), LAB).unwrap();
    assert_eq!(c.dataplane.isn_secret, None, "random per start by default");
    let with = |v: &str| {
        LAB.replace(
            "[dataplane]\n",
            &format!("[dataplane]\nisn_secret = \"{v}\"\n"),
        )
    };
    let c = parse(
        Path::new("x.toml"),
        &with("00112233445566778899AabBccDDeeff"),
    )
    .unwrap();
    assert_eq!(
        c.dataplane.isn_secret,
        Some([
            0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd,
            0xee, 0xff
        ])
    );
    for bad in [
        "00112233445566778899aabbccddeef",   // 31 digits
        "00112233445566778899aabbccddeeff0", // 33
        "00112233445566778899aabbccddeefg",  // not hex
        "+0112233445566778899aabbccddeeff",  // a sign from_str_radix would take
        "",
    ] {
        let text = with(bad);
        let line = text
            .lines()
            .position(|l| l.starts_with("isn_secret"))
            .unwrap()
            + 1;
        let e = err(&text);
        assert_eq!(e.at.map(|a| a.0), Some(line), "{bad:?}: {e}");
        assert!(e.reason.contains("32 hexadecimal digits"), "{e}");
        if !bad.is_empty() {
            assert!(
                !e.to_string().contains(bad),
                "the secret is not echoed: {e}"
            );
        }
    }
}
