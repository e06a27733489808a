//! Prometheus metrics: what rvsd exposes at `/metrics`, rendered from a
//! [`Snapshot`] the control loop gathers when scraped.
//!
//! Workers count in their own fields and publish plain atomics (see
//! `dataplane::worker`); a scrape reads those, the ports' ethdev counters and
//! the control state, builds a fresh registry and encodes it with the
//! `prometheus` crate's text encoder. Nothing here runs on a worker, so a
//! scrape costs the data path nothing but the cache lines it reads.
//!
//! Names follow Prometheus conventions: `rvs_` prefix, `_total` for
//! counters, base units (bytes, seconds), labels of low cardinality only
//! (worker, port, reason, service, server, never a client address). Every
//! family and label is listed in `docs/metrics.md`.

use prometheus::{Encoder, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

/// One worker's published counters.
#[derive(Debug, Clone, Default)]
pub struct WorkerSample {
    /// lcore id (label `worker`).
    pub lcore: u32,
    /// Packets received (from its queues and other workers' rings).
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Drops by reason name.
    pub drops: Vec<(&'static str, u64)>,
    /// Packets handed to other workers.
    pub redirected_out: u64,
    /// Packets taken from other workers.
    pub redirected_in: u64,
    /// Poll-loop iterations.
    pub polls: u64,
    /// Iterations that received nothing.
    pub empty_polls: u64,
    /// Sessions in the table.
    pub sessions: u64,
    /// Table capacity.
    pub session_capacity: u64,
    /// Sessions created.
    pub sessions_created: u64,
    /// Sessions removed.
    pub sessions_expired: u64,
    /// Tables generation in force.
    pub generation: u64,
    /// Flood guard on.
    pub guard_on: bool,
    /// Flood-guard counters by name (`dataplane::guard::GuardCounters`).
    pub guard: Vec<(&'static str, u64)>,
    /// Feature events by name (`dataplane::stats::EVENT_NAMES`).
    pub events: Vec<(&'static str, u64)>,
    /// Fragment counters by name (`dataplane::frag::FragCounters`).
    pub frags: Vec<(&'static str, u64)>,
    /// SYN-proxy counters by name (`dataplane::synproxy::Counters`).
    pub synproxy: Vec<(&'static str, u64)>,
}

/// One port's ethdev counters.
#[derive(Debug, Clone, Default)]
pub struct PortSample {
    /// Interface name (label `port`).
    pub name: String,
    /// `rte_eth_stats`: ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf.
    pub basic: [u64; 8],
    /// Link up.
    pub link_up: bool,
    /// Driver xstats (name, value).
    pub xstats: Vec<(String, u64)>,
    /// Frames the kernel dropped before the PMD saw them (af_packet,
    /// af_xdp); `None` for devices that count their own misses.
    pub kernel_dropped: Option<u64>,
}

/// A real server's connection counts (all workers).
#[derive(Debug, Clone, Default)]
pub struct ServerSample {
    /// Service label (`TCP/10.0.0.1:80`).
    pub service: String,
    /// Server label (`10.0.0.2:80`).
    pub server: String,
    /// Weight.
    pub weight: u32,
    /// ESTABLISHED connections.
    pub active: u64,
    /// Other connections.
    pub inactive: u64,
    /// Connections ever scheduled to it.
    pub connections: u64,
    /// Its health check finds it up (or it is not checked).
    pub up: bool,
}

/// Hits of one ACL rule, or refusals of one limit, of a service (all
/// workers).
#[derive(Debug, Clone, Default)]
pub struct AccessSample {
    /// Service label (`TCP/10.0.0.1:80`).
    pub service: String,
    /// The rule (`deny 10.0.0.0/8`), for an ACL rule's hits.
    pub acl_rule: Option<String>,
    /// The limit's name (`max_conns`, ...), for a limit's refusals.
    pub limit: Option<String>,
    /// Connections matched (a rule) or refused (a limit; `icmp_rate`: port
    /// unreachables held back).
    pub hits: u64,
}

/// Everything one scrape shows.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Workers.
    pub workers: Vec<WorkerSample>,
    /// Ports.
    pub ports: Vec<PortSample>,
    /// Real servers.
    pub servers: Vec<ServerSample>,
    /// Services (label values).
    pub services: Vec<String>,
    /// Neighbour entries by state name.
    pub neighbours: Vec<(&'static str, u64)>,
    /// Routes (connected and gateway) in force.
    pub routes: u64,
    /// Config generation published.
    pub generation: u64,
    /// Last reload: succeeded?
    pub last_reload_ok: bool,
    /// Last reload time (Unix seconds), 0 if never.
    pub last_reload_time: f64,
    /// `[vip_routes]`: each VIP, and whether its route is announced.
    pub vips: Vec<(String, bool)>,
    /// A drain is in progress.
    pub draining: bool,
    /// ACL rules' hits and limits' refusals.
    pub access: Vec<AccessSample>,
}

/// Why rendering failed (a metric definition error: a bug, not input).
#[derive(Debug, thiserror::Error)]
#[error("metrics: {0}")]
pub struct RenderError(#[from] prometheus::Error);

fn counter(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RenderError> {
    let c = IntCounterVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(c.clone()))?;
    Ok(c)
}

fn gauge(
    reg: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, RenderError> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    reg.register(Box::new(g.clone()))?;
    Ok(g)
}

fn plain(reg: &Registry, name: &str, help: &str, v: i64) -> Result<(), RenderError> {
    let g = prometheus::IntGauge::new(name, help)?;
    g.set(v);
    reg.register(Box::new(g))?;
    Ok(())
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// The `service` label of a service: `TCP/10.0.0.1:80`, `TCP/[fd77::100]:80`
/// (the protocol, then the address as `ipvsadm -L -n` prints it), `FWM/1`.
#[must_use]
pub fn service_label(proto: &str, vip: std::net::SocketAddr) -> String {
    // A firewall-mark service (its key's port is 0, which no VIP has):
    // `FWM/1`, `FWM/1/IPv6`, as claims name it.
    match crate::config::marks::mark_of(vip, dataplane::marks::FWMARK_PROTO) {
        Some((m, false)) => format!("FWM/{m}"),
        Some((m, true)) => format!("FWM/{m}/IPv6"),
        None => format!("{proto}/{vip}"),
    }
}

/// The `server` label of a real server: `10.0.0.2:80`, `[fd77::11]:80`.
#[must_use]
pub fn server_label(rs: std::net::SocketAddr) -> String {
    rs.to_string()
}

/// The exposition text for `s`.
///
/// # Errors
/// Only if a metric definition is invalid (a bug).
pub fn render(s: &Snapshot) -> Result<String, RenderError> {
    let reg = Registry::new();
    let w = ["worker"];
    let rx_p = counter(
        &reg,
        "rvs_worker_rx_packets_total",
        "Packets a worker received, from its queues and from other workers.",
        &w,
    )?;
    let tx_p = counter(
        &reg,
        "rvs_worker_tx_packets_total",
        "Packets a worker transmitted.",
        &w,
    )?;
    let rx_b = counter(
        &reg,
        "rvs_worker_rx_bytes_total",
        "Bytes (Ethernet frames) a worker received.",
        &w,
    )?;
    let tx_b = counter(
        &reg,
        "rvs_worker_tx_bytes_total",
        "Bytes (Ethernet frames) a worker transmitted.",
        &w,
    )?;
    let drops = counter(
        &reg,
        "rvs_worker_drops_total",
        "Packets a worker dropped, by reason (see docs/metrics.md).",
        &["worker", "reason"],
    )?;
    let redir = counter(
        &reg,
        "rvs_worker_redirected_packets_total",
        "Packets handed between workers over rings, by direction (out, in).",
        &["worker", "direction"],
    )?;
    let polls = counter(&reg, "rvs_worker_polls_total", "Poll-loop iterations.", &w)?;
    let empty = counter(
        &reg,
        "rvs_worker_empty_polls_total",
        "Poll-loop iterations that received nothing (busy ratio = 1 - empty/polls).",
        &w,
    )?;
    let sessions = gauge(
        &reg,
        "rvs_worker_sessions",
        "Sessions in a worker's table.",
        &w,
    )?;
    let capacity = gauge(
        &reg,
        "rvs_worker_session_capacity",
        "Capacity of a worker's session table.",
        &w,
    )?;
    let created = counter(
        &reg,
        "rvs_worker_sessions_created_total",
        "Sessions a worker created.",
        &w,
    )?;
    let expired = counter(
        &reg,
        "rvs_worker_sessions_expired_total",
        "Sessions a worker removed (expired or replaced).",
        &w,
    )?;
    let wgen = gauge(
        &reg,
        "rvs_worker_config_generation",
        "Generation of the configuration snapshot a worker forwards by.",
        &w,
    )?;
    let guard_on = gauge(
        &reg,
        "rvs_worker_flood_guard_on",
        "1 while a worker's flood guard is on (half-open sessions get short timeouts and give way).",
        &w,
    )?;
    let guard = counter(
        &reg,
        "rvs_worker_flood_guard_events_total",
        "Flood-guard events, by kind: on (went on), half_open_short (half-open sessions given the short timeout), half_open_evicted (evicted to make room).",
        &["worker", "event"],
    )?;
    let events = counter(
        &reg,
        "rvs_worker_events_total",
        "What per-connection features did, by event: client_addr_inserted (TOA options and PROXY headers inserted toward servers), toa_no_room (TOA options left out for want of room).",
        &["worker", "event"],
    )?;
    let frags = counter(
        &reg,
        "rvs_worker_fragments_total",
        "IP fragments, by outcome: forwarded (first and later ones), no_first (a later fragment held for its first, which did not come in time, dropped), table_full (a first fragment dropped for want of room in the fragment table), timed_out (datagrams whose later fragments stopped coming), overlapping, held (later fragments that came before their first), released (held ones offered again after it), hold_full (dropped: no room to hold), client_address (dropped: nothing can be inserted into a fragment).",
        &["worker", "outcome"],
    )?;
    let synproxy = counter(
        &reg,
        "rvs_worker_synproxy_total",
        "SYN-proxy events, by kind: cookies_sent (SYNs answered with a cookie), acks_valid, acks_invalid (ACKs whose cookie did (not) check), sessions_opened (connections opened to a server after a valid ACK), server_handshakes (server SYN-ACKs answered), data_held (client data held during the server handshake), server_syn_retries (SYNs sent to a server again), server_stale_acks (server ACKs of an older connection, answered with a reset).",
        &["worker", "event"],
    )?;
    for x in &s.workers {
        let l = x.lcore.to_string();
        let l = [l.as_str()];
        rx_p.with_label_values(&l).inc_by(x.rx_packets);
        tx_p.with_label_values(&l).inc_by(x.tx_packets);
        rx_b.with_label_values(&l).inc_by(x.rx_bytes);
        tx_b.with_label_values(&l).inc_by(x.tx_bytes);
        for (reason, n) in &x.drops {
            drops.with_label_values(&[l[0], reason]).inc_by(*n);
        }
        redir
            .with_label_values(&[l[0], "out"])
            .inc_by(x.redirected_out);
        redir
            .with_label_values(&[l[0], "in"])
            .inc_by(x.redirected_in);
        polls.with_label_values(&l).inc_by(x.polls);
        empty.with_label_values(&l).inc_by(x.empty_polls);
        sessions.with_label_values(&l).set(clamp(x.sessions));
        capacity
            .with_label_values(&l)
            .set(clamp(x.session_capacity));
        created.with_label_values(&l).inc_by(x.sessions_created);
        expired.with_label_values(&l).inc_by(x.sessions_expired);
        wgen.with_label_values(&l).set(clamp(x.generation));
        guard_on.with_label_values(&l).set(i64::from(x.guard_on));
        for (event, n) in &x.guard {
            guard.with_label_values(&[l[0], event]).inc_by(*n);
        }
        for (event, n) in &x.events {
            events.with_label_values(&[l[0], event]).inc_by(*n);
        }
        for (outcome, n) in &x.frags {
            frags.with_label_values(&[l[0], outcome]).inc_by(*n);
        }
        for (event, n) in &x.synproxy {
            synproxy.with_label_values(&[l[0], event]).inc_by(*n);
        }
    }

    let p = ["port"];
    let basic = [
        (
            "rvs_port_rx_packets_total",
            "Packets the device received (rte_eth_stats ipackets).",
        ),
        (
            "rvs_port_tx_packets_total",
            "Packets the device sent (opackets).",
        ),
        (
            "rvs_port_rx_bytes_total",
            "Bytes the device received (ibytes).",
        ),
        ("rvs_port_tx_bytes_total", "Bytes the device sent (obytes)."),
        (
            "rvs_port_rx_missed_total",
            "Packets the device dropped for lack of room in its queues (imissed).",
        ),
        (
            "rvs_port_rx_errors_total",
            "Erroneous packets received (ierrors).",
        ),
        (
            "rvs_port_tx_errors_total",
            "Failed transmissions (oerrors).",
        ),
        (
            "rvs_port_rx_nombuf_total",
            "Receive failures for lack of mbufs (rx_nombuf).",
        ),
    ];
    let basic: Vec<IntCounterVec> = basic
        .iter()
        .map(|(n, h)| counter(&reg, n, h, &p))
        .collect::<Result<_, _>>()?;
    let link = gauge(&reg, "rvs_port_link_up", "1 if the port's link is up.", &p)?;
    let xstat = counter(
        &reg,
        "rvs_port_xstats_total",
        "The driver's extended counters (rte_eth_xstats), by name.",
        &["port", "name"],
    )?;
    let kernel_dropped = counter(
        &reg,
        "rvs_port_rx_kernel_dropped_total",
        "Frames the kernel dropped before the PMD saw them (af_packet: packet-socket ring full; af_xdp: XDP socket ring full).",
        &p,
    )?;
    for port in &s.ports {
        let l = [port.name.as_str()];
        for (c, v) in basic.iter().zip(port.basic) {
            c.with_label_values(&l).inc_by(v);
        }
        link.with_label_values(&l).set(i64::from(port.link_up));
        for (name, v) in &port.xstats {
            xstat.with_label_values(&[l[0], name]).inc_by(*v);
        }
        if let Some(v) = port.kernel_dropped {
            kernel_dropped.with_label_values(&l).inc_by(v);
        }
    }

    let rs = ["service", "server"];
    let active = gauge(
        &reg,
        "rvs_real_server_active_connections",
        "ESTABLISHED connections to a real server (ipvsadm ActiveConn).",
        &rs,
    )?;
    let inactive = gauge(
        &reg,
        "rvs_real_server_inactive_connections",
        "Other connections to a real server (ipvsadm InActConn).",
        &rs,
    )?;
    let weight = gauge(
        &reg,
        "rvs_real_server_weight",
        "A real server's configured weight.",
        &rs,
    )?;
    let conns = counter(
        &reg,
        "rvs_real_server_connections_total",
        "Connections scheduled to a real server.",
        &rs,
    )?;
    let up = gauge(
        &reg,
        "rvs_real_server_up",
        "1 if the real server's health check finds it up (or it is not checked).",
        &rs,
    )?;
    for x in &s.servers {
        let l = [x.service.as_str(), x.server.as_str()];
        active.with_label_values(&l).set(clamp(x.active));
        inactive.with_label_values(&l).set(clamp(x.inactive));
        weight.with_label_values(&l).set(i64::from(x.weight));
        conns.with_label_values(&l).inc_by(x.connections);
        up.with_label_values(&l).set(i64::from(x.up));
    }
    let svc = gauge(
        &reg,
        "rvs_service_info",
        "1 for each virtual service configured.",
        &["service"],
    )?;
    for name in &s.services {
        svc.with_label_values(&[name]).set(1);
    }
    let acl = counter(
        &reg,
        "rvs_service_acl_hits_total",
        "New connections an ACL rule of a service matched (allow or deny), all workers.",
        &["service", "rule"],
    )?;
    let refused = counter(
        &reg,
        "rvs_service_limit_refused_total",
        "New connections a limit of a service refused (icmp_rate: port unreachables held back), all workers.",
        &["service", "limit"],
    )?;
    for a in &s.access {
        match (&a.acl_rule, &a.limit) {
            (Some(rule), _) => acl.with_label_values(&[&a.service, rule]).inc_by(a.hits),
            (None, Some(limit)) => refused
                .with_label_values(&[&a.service, limit])
                .inc_by(a.hits),
            (None, None) => {}
        }
    }

    let neigh = gauge(
        &reg,
        "rvs_neighbours",
        "Neighbour table entries, by state.",
        &["state"],
    )?;
    for (state, n) in &s.neighbours {
        neigh.with_label_values(&[state]).set(clamp(*n));
    }
    plain(
        &reg,
        "rvs_routes",
        "Routes in force (connected subnets and gateways).",
        clamp(s.routes),
    )?;
    plain(
        &reg,
        "rvs_config_generation",
        "Generation of the last configuration snapshot published.",
        clamp(s.generation),
    )?;
    plain(
        &reg,
        "rvs_config_last_reload_success",
        "1 if the last reload (rvsadm --reload, SIGHUP) was applied, 0 if refused.",
        i64::from(s.last_reload_ok),
    )?;
    let ts = prometheus::Gauge::new(
        "rvs_config_last_reload_timestamp_seconds",
        "When the last reload was attempted (Unix time), 0 if never.",
    )?;
    ts.set(s.last_reload_time);
    reg.register(Box::new(ts))?;
    let vip = gauge(
        &reg,
        "rvs_vip_route_announced",
        "1 while the VIP's route is in the [vip_routes] table (a BGP daemon announces it), 0 while withdrawn.",
        &["vip"],
    )?;
    for (ip, on) in &s.vips {
        vip.with_label_values(&[ip]).set(i64::from(*on));
    }
    plain(
        &reg,
        "rvs_draining",
        "1 while rvsd drains (VIP routes withdrawn by rvsadm drain or SIGTERM), else 0.",
        i64::from(s.draining),
    )?;

    let mut out = Vec::new();
    TextEncoder::new().encode(&reg.gather(), &mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Snapshot {
        Snapshot {
            workers: vec![WorkerSample {
                lcore: 1,
                rx_packets: 10,
                tx_packets: 9,
                drops: vec![("no_session", 1)],
                session_capacity: 65536,
                guard_on: true,
                guard: vec![("half_open_evicted", 3)],
                events: vec![("toa_no_room", 2)],
                frags: vec![("forwarded", 4)],
                synproxy: vec![("cookies_sent", 5)],
                ..WorkerSample::default()
            }],
            ports: vec![PortSample {
                name: "dpdk0".into(),
                basic: [1, 2, 3, 4, 0, 0, 0, 0],
                link_up: true,
                xstats: vec![("rx_good_packets".into(), 1)],
                kernel_dropped: Some(5),
            }],
            servers: vec![ServerSample {
                service: "TCP/10.0.0.1:80".into(),
                server: "10.0.0.2:80".into(),
                weight: 1,
                active: 2,
                inactive: 3,
                connections: 7,
                up: true,
            }],
            services: vec!["TCP/10.0.0.1:80".into()],
            neighbours: vec![("reachable", 2)],
            routes: 1,
            generation: 3,
            last_reload_ok: true,
            last_reload_time: 0.0,
            vips: vec![("10.0.0.1".into(), true)],
            draining: false,
            access: vec![
                AccessSample {
                    service: "TCP/10.0.0.1:80".into(),
                    acl_rule: Some("deny 10.0.0.0/8".into()),
                    limit: None,
                    hits: 4,
                },
                AccessSample {
                    service: "TCP/10.0.0.1:80".into(),
                    acl_rule: None,
                    limit: Some("max_conns".into()),
                    hits: 5,
                },
            ],
        }
    }

    #[test]
    fn renders_every_family_with_its_values() {
        let text = render(&sample()).unwrap();
        for line in [
            "rvs_worker_rx_packets_total{worker=\"1\"} 10",
            "rvs_worker_drops_total{reason=\"no_session\",worker=\"1\"} 1",
            "rvs_worker_session_capacity{worker=\"1\"} 65536",
            "rvs_port_tx_packets_total{port=\"dpdk0\"} 2",
            "rvs_port_xstats_total{name=\"rx_good_packets\",port=\"dpdk0\"} 1",
            "rvs_port_rx_kernel_dropped_total{port=\"dpdk0\"} 5",
            "rvs_real_server_inactive_connections{server=\"10.0.0.2:80\",service=\"TCP/10.0.0.1:80\"} 3",
            "rvs_config_generation 3",
            "rvs_vip_route_announced{vip=\"10.0.0.1\"} 1",
            "rvs_draining 0",
            "rvs_worker_events_total{event=\"toa_no_room\",worker=\"1\"} 2",
            "rvs_service_acl_hits_total{rule=\"deny 10.0.0.0/8\",service=\"TCP/10.0.0.1:80\"} 4",
            "rvs_service_limit_refused_total{limit=\"max_conns\",service=\"TCP/10.0.0.1:80\"} 5",
            "rvs_real_server_connections_total{server=\"10.0.0.2:80\",service=\"TCP/10.0.0.1:80\"} 7",
            "# TYPE rvs_worker_rx_packets_total counter",
            "# TYPE rvs_worker_sessions gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in:\n{text}");
        }
    }

    #[test]
    fn ipv6_labels_read_like_the_listings() {
        let (vip, rs) = (
            "[fd77::100]:80".parse().unwrap(),
            "[fd77::11]:80".parse().unwrap(),
        );
        let mut s = sample();
        s.servers[0].service = service_label("TCP", vip);
        s.servers[0].server = server_label(rs);
        let text = render(&s).unwrap();
        let want = "rvs_real_server_connections_total{server=\"[fd77::11]:80\",service=\"TCP/[fd77::100]:80\"} 7";
        assert!(
            text.lines().any(|l| l == want),
            "missing {want:?} in:\n{text}"
        );
        assert_eq!(
            service_label("UDP", "10.0.0.1:53".parse().unwrap()),
            "UDP/10.0.0.1:53"
        );
    }
}
