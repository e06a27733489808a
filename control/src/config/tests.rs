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
    let line = bad_vip.lines().position(|l| l.contains("10.77.0.300")).unwrap() + 1;
    let e = err(&bad_vip);
    assert_eq!(e.at.map(|a| a.0), Some(line));
    assert!(e.reason.contains("10.77.0.300"), "{e}");

    for (from, to, want) in [
        ("scheduler = \"rr\"", "scheduler = \"nope\"", "unknown scheduler"),
        ("weight = 1", "weight = -1", "weight"),
        ("idle = \"backoff\"", "idle = \"sometimes\"", "idle"),
        ("worker_lcores = [1]", "worker_lcores = [0]", "main lcore"),
        ("address = \"10.77.0.2/24\"", "address = \"10.77.0.2\"", "IPv4/PREFIX"),
        ("tcp_close = 10", "tcp_close = 0", "timeout"),
        ("forward = \"fullnat\"", "forward = \"dr\"", "not supported yet"),
        ("[dataplane]", "[dataplane]\nbogus_key = 1", "unknown field"),
    ] {
        let e = err(&LAB.replace(from, to));
        assert!(e.at.is_some(), "{from} -> {to}: {e}");
        assert!(e.reason.contains(want), "{from} -> {to}: {e}");
    }
}

#[test]
fn missing_pieces_are_refused() {
    assert!(err("[dpdk]\n").reason.contains("interface"));
    let no_rs = LAB.split("[[service.real_server]]").next().unwrap().to_string();
    assert!(err(&no_rs).reason.contains("real_server"));
    assert!(load(Path::new("/nonexistent/rvs.toml")).unwrap_err().to_string().contains("cannot read"));
}

#[test]
fn line_col_counts_from_one() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
}
