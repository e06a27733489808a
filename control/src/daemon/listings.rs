//! What `rvsadm -L` (services, connections, `--stats`, `--rate`) and
//! `/metrics` show: read from the workers' published counters, never
//! from their tables.

use super::*;
use dataplane::frag::FragCounters;
use dataplane::guard::GuardCounters;

impl Control {
    pub(super) fn metrics_snapshot(&self) -> metrics::Snapshot {
        self.refresh();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let workers = self
            .workers
            .iter()
            .map(|w| {
                let s = &w.shared;
                metrics::WorkerSample {
                    lcore: w.lcore,
                    rx_packets: l(&s.rx_packets),
                    tx_packets: l(&s.tx_packets),
                    rx_bytes: l(&s.rx_bytes),
                    tx_bytes: l(&s.tx_bytes),
                    drops: DropReason::ALL
                        .iter()
                        .map(|r| (r.name(), l(&s.drops[*r as usize])))
                        .collect(),
                    redirected_out: l(&s.redirected_out),
                    redirected_in: l(&s.redirected_in),
                    polls: l(&s.polls),
                    empty_polls: l(&s.empty_polls),
                    sessions: l(&s.sessions),
                    session_capacity: u64::from(self.config.dataplane.session_capacity),
                    sessions_created: l(&s.sessions_created),
                    sessions_expired: l(&s.sessions_expired),
                    generation: l(&s.generation),
                    guard_on: s.guard_on.load(Ordering::Relaxed),
                    guard: GuardCounters::NAMES
                        .iter()
                        .zip(&s.guard)
                        .map(|(n, a)| (*n, l(a)))
                        .collect(),
                    events: dataplane::stats::EVENT_NAMES
                        .iter()
                        .zip(&s.events)
                        .map(|(n, a)| (*n, l(a)))
                        .collect(),
                    frags: FragCounters::NAMES
                        .iter()
                        .zip(&s.frags)
                        .map(|(n, a)| (*n, l(a)))
                        .collect(),
                    synproxy: dataplane::synproxy::Counters::NAMES
                        .iter()
                        .zip(&s.synproxy)
                        .map(|(n, a)| (*n, l(a)))
                        .collect(),
                }
            })
            .collect();
        let ports = self
            .ports
            .iter()
            .zip(&self.config.interfaces)
            .enumerate()
            .map(|(k, (p, i))| {
                let st = p.stats().unwrap_or_default();
                metrics::PortSample {
                    kernel_dropped: self.kernel_drops.read(k),
                    name: i.name.clone(),
                    basic: [
                        st.ipackets,
                        st.opackets,
                        st.ibytes,
                        st.obytes,
                        st.imissed,
                        st.ierrors,
                        st.oerrors,
                        st.rx_nombuf,
                    ],
                    link_up: p.link_up(),
                    xstats: p.xstats().unwrap_or_default(),
                }
            })
            .collect();
        let mut servers = Vec::new();
        let mut services = Vec::new();
        let effective = self.effective_config();
        for svc in &effective.services {
            let label = metrics::service_label(proto_name(svc.proto), svc.vip);
            for r in &svc.real_servers {
                let ConnTotals {
                    active,
                    inactive,
                    created: connections,
                    ..
                } = self.server_totals(svc.vip, svc.proto, r.addr);
                servers.push(metrics::ServerSample {
                    up: !self.down.contains(&((svc.vip, svc.proto), r.addr)),
                    service: label.clone(),
                    server: metrics::server_label(r.addr),
                    weight: r.weight,
                    active,
                    inactive,
                    connections,
                });
            }
            services.push(label);
        }
        let mut neighbours = vec![
            ("incomplete", 0),
            ("reachable", 0),
            ("stale", 0),
            ("failed", 0),
        ];
        for (_, _, _, state) in self.neigh.iter() {
            let i = match state {
                crate::neigh::State::Incomplete => 0,
                crate::neigh::State::Reachable | crate::neigh::State::Permanent => 1,
                crate::neigh::State::Stale => 2,
                crate::neigh::State::Failed => 3,
            };
            neighbours[i].1 += 1;
        }
        let routes = crate::config::net::route_list(
            &self.config.interfaces,
            &self.config.addresses,
            &self.config.routes,
        )
        .iter()
        .filter(|r| r.origin != crate::config::net::RouteOrigin::Local)
        .count() as u64;
        let (last_reload_ok, last_reload_time) = self.last_reload.unwrap_or((true, 0.0));
        metrics::Snapshot {
            workers,
            ports,
            servers,
            services,
            neighbours,
            routes,
            generation: self.generation,
            last_reload_ok,
            last_reload_time,
            vips: self
                .vip_routes
                .states()
                .iter()
                .map(|(ip, st)| {
                    (
                        ip.to_string(),
                        *st == crate::vip_routes::VipState::Announced,
                    )
                })
                .collect(),
            draining: self.drain.is_some(),
            access: self.access_samples(),
        }
    }

    /// Asks every worker to publish its counters and waits (briefly) for
    /// each, so a listing agrees with the connection table.
    pub(super) fn refresh(&self) {
        let acks: Vec<_> = self
            .workers
            .iter()
            .filter_map(|w| {
                let (tx, rx) = bounded(1);
                w.requests
                    .send_timeout(WorkerRequest::Publish(tx), Duration::from_secs(1))
                    .ok()
                    .map(|()| rx)
            })
            .collect();
        for rx in acks {
            let _ = rx.recv_timeout(Duration::from_secs(1));
        }
    }

    /// Live persistence templates per real server index, all workers.
    pub(super) fn template_counts(&self) -> Vec<u64> {
        let mut total: Vec<u64> = Vec::new();
        for w in &self.workers {
            let (tx, rx) = bounded(1);
            if w.requests
                .send_timeout(WorkerRequest::CountTemplates(tx), Duration::from_secs(1))
                .is_err()
            {
                continue;
            }
            if let Ok(counts) = rx.recv_timeout(Duration::from_secs(2)) {
                if total.len() < counts.len() {
                    total.resize(counts.len(), 0);
                }
                for (t, c) in total.iter_mut().zip(counts) {
                    *t += u64::from(c);
                }
            }
        }
        total
    }

    pub(super) fn list_services(&self) -> Response {
        self.list_services_with(false)
    }

    pub(super) fn list_services_with(&self, templates: bool) -> Response {
        self.refresh();
        let persist = if templates {
            self.template_counts()
        } else {
            Vec::new()
        };
        let effective = self.effective_config();
        let services = effective
            .services
            .iter()
            .map(|s| {
                let opts = self.config.service_options(s.vip, s.proto);
                let mut flags = String::new();
                if let Some(o) = opts {
                    let names = o.sched_flags.names(s.scheduler);
                    if !names.is_empty() {
                        flags += &format!(" ({})", names.join(","));
                    }
                    if let Some(p) = o.persistence {
                        flags += &format!(" persistent {}", p.timeout_secs);
                        if p.netmask != Persistence::DEFAULT_NETMASK {
                            flags += &format!(" mask {}", Ipv4Addr::from(p.netmask));
                        }
                        // ipvsadm prints an IPv6 service's mask as its prefix length.
                        if p.prefix6 != 128 {
                            flags += &format!(" mask {}", p.prefix6);
                        }
                    }
                    if o.ops {
                        flags += " ops";
                    }
                    // DPVS's ipvsadm prints it here.
                    if o.syn_proxy {
                        flags += " synproxy";
                    }
                    // rvs's own, after ipvsadm's; absent when `none`, so
                    // listings stay ipvsadm's byte for byte.
                    if o.client_address != ClientAddress::None {
                        flags += &format!(" client-address {}", o.client_address.word());
                    }
                }
                // ipvsadm's `FWM  1` (`FWM  1 IPv6`): the mark where the
                // address would be.
                let (proto, vip) = match config::marks::mark_of(s.vip, s.proto) {
                    Some((m, false)) => ("FWM", m.to_string()),
                    Some((m, true)) => ("FWM", format!("{m} IPv6")),
                    None => (proto_name(s.proto), s.vip.to_string()),
                };
                ServiceView {
                    proto: proto.into(),
                    vip,
                    scheduler: s.scheduler.name().into(),
                    flags,
                    local_addresses: s.local_addresses.iter().map(ToString::to_string).collect(),
                    servers: s
                        .real_servers
                        .iter()
                        .map(|r| {
                            let idx = self.registry.server_index(s.vip, s.proto, r.addr);
                            let totals = self.server_totals(s.vip, s.proto, r.addr);
                            let ConnTotals {
                                active, inactive, ..
                            } = totals;
                            let rates = idx
                                .and_then(|i| self.rates.get(&i))
                                .map_or([0; 5], RateEstimate::rates);
                            let t = opts
                                .and_then(|o| o.thresholds.get(&r.addr).copied())
                                .unwrap_or_default();
                            RealServerView {
                                addr: r.addr.to_string(),
                                forward: effective.server_forward(s, r.addr).column().into(),
                                weight: r.weight,
                                upper_threshold: t.upper,
                                lower_threshold: t.lower,
                                persist_conns: idx
                                    .and_then(|i| persist.get(i).copied())
                                    .unwrap_or(0),
                                stats: self.zeroed.since(idx, totals.stats()),
                                rates,
                                active,
                                inactive,
                            }
                        })
                        .collect(),
                }
            })
            .collect();
        let table_size =
            u64::from(self.config.dataplane.session_capacity) * self.workers.len() as u64;
        Response::Services {
            table_size,
            services,
        }
    }

    /// Where each worker takes requests, for work done off the loop
    /// ([`list_connections`], the health check's flush).
    pub(super) fn worker_lines(&self) -> Vec<WorkerLine> {
        self.workers
            .iter()
            .map(|w| WorkerLine {
                lcore: w.lcore,
                requests: w.requests.clone(),
            })
            .collect()
    }

    pub(super) fn stats(&self) -> Response {
        self.refresh();
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let ports = self
            .ports
            .iter()
            .zip(&self.config.interfaces)
            .enumerate()
            .map(|(k, (p, i))| {
                let st = p.stats().unwrap_or_default();
                PortStatsView {
                    rx_kernel_dropped: self.kernel_drops.read(k),
                    name: i.name.clone(),
                    rx_packets: st.ipackets,
                    tx_packets: st.opackets,
                    rx_bytes: st.ibytes,
                    tx_bytes: st.obytes,
                    rx_missed: st.imissed,
                    rx_errors: st.ierrors,
                    tx_errors: st.oerrors,
                }
            })
            .collect();
        let workers = self
            .workers
            .iter()
            .map(|w| {
                let s = &w.shared;
                WorkerStatsView {
                    lcore: w.lcore,
                    rx_packets: l(&s.rx_packets),
                    tx_packets: l(&s.tx_packets),
                    rx_bytes: l(&s.rx_bytes),
                    tx_bytes: l(&s.tx_bytes),
                    sessions: l(&s.sessions),
                    sessions_created: l(&s.sessions_created),
                    sessions_expired: l(&s.sessions_expired),
                    redirected_out: l(&s.redirected_out),
                    redirected_in: l(&s.redirected_in),
                    generation: l(&s.generation),
                    polls: l(&s.polls),
                    empty_polls: l(&s.empty_polls),
                    drops: DropReason::ALL
                        .iter()
                        .filter_map(|r| {
                            let n = l(&s.drops[*r as usize]);
                            (n > 0).then(|| (r.name().to_string(), n))
                        })
                        .collect(),
                    guard_on: s.guard_on.load(Ordering::Relaxed),
                    guard: GuardCounters::NAMES
                        .iter()
                        .zip(&s.guard)
                        .map(|(n, a)| ((*n).to_string(), l(a)))
                        .collect(),
                    events: dataplane::stats::EVENT_NAMES
                        .iter()
                        .zip(&s.events)
                        .map(|(n, a)| ((*n).to_string(), l(a)))
                        .collect(),
                    frags: FragCounters::NAMES
                        .iter()
                        .zip(&s.frags)
                        .map(|(n, a)| ((*n).to_string(), l(a)))
                        .collect(),
                    synproxy: dataplane::synproxy::Counters::NAMES
                        .iter()
                        .zip(&s.synproxy)
                        .map(|(n, a)| ((*n).to_string(), l(a)))
                        .collect(),
                }
            })
            .collect();
        Response::Stats { workers, ports }
    }
}

/// A worker's lcore and request channel, cloned off the daemon.
#[derive(Debug, Clone)]
pub(super) struct WorkerLine {
    /// The lcore it runs on (for messages).
    pub lcore: u32,
    /// Where its requests go.
    pub requests: Sender<WorkerRequest>,
}

/// Every worker's sessions, a page at a time (see
/// [`WorkerRequest::DumpSessions`]): each worker copies a bounded page per
/// request, the workers in parallel. Runs on a thread of its own, never on
/// the control loop: a table of millions of sessions takes many pages, and
/// reloads, health results and other clients must not wait for them.
pub(super) fn list_connections(workers: &[WorkerLine]) -> Response {
    // Worker by worker, in the workers' order.
    let mut out: Vec<Vec<ConnectionView>> = workers.iter().map(|_| Vec::new()).collect();
    let paged = page_workers(
        workers,
        |from, reply| WorkerRequest::DumpSessions { from, reply },
        |i, page: dataplane::worker::SessionPage| {
            let lcore = workers[i].lcore;
            out[i].extend(page.sessions.iter().map(|s| ConnectionView {
                proto: proto_name(s.proto).into(),
                expires_in_secs: page.now.until(s.expires).div_ceil(1000),
                state: s.state.name().into(),
                client: endpoint(s.client),
                vip: endpoint(s.vip),
                rs: endpoint(s.rs),
                laddr: endpoint(s.laddr),
                worker: lcore,
            }));
            // Persistence templates (first page), as the kernel lists
            // them: state NONE, the (masked) client with port 0, the
            // VIP, the server. A fwmark service's template is the
            // kernel's `<IPPROTO_IP, client, 0, fwmark, 0, server, 0>`:
            // protocol `IP`, the mark as the address, no ports.
            out[i].extend(page.templates.iter().map(|t| ConnectionView {
                proto: if config::marks::is_fwmark(t.key.proto) {
                    "IP".into()
                } else {
                    proto_name(t.key.proto).into()
                },
                expires_in_secs: page.now.until(t.expires).div_ceil(1000),
                state: "NONE".into(),
                client: endpoint(dataplane::session::Endpoint::at(t.key.client, 0)),
                vip: endpoint(t.key.vip),
                rs: endpoint(if config::marks::is_fwmark(t.key.proto) {
                    dataplane::session::Endpoint::at(t.rs.ip, 0)
                } else {
                    t.rs
                }),
                laddr: String::new(),
                worker: lcore,
            }));
            page.next
        },
    );
    match paged {
        Ok(()) => Response::Connections(out.into_iter().flatten().collect()),
        Err(e) => Response::Error(e),
    }
}

/// Asks every worker for pages, the workers in parallel, until each says
/// it is done: `ask(from, reply)` is the request for the page from slot
/// `from`, `take(worker, page)` uses a page and says where the next one
/// starts (`None`: done). Stops at the first worker that does not take a
/// request within 1 s or answer within 2 s, and says which.
pub(super) fn page_workers<P>(
    workers: &[WorkerLine],
    ask: impl Fn(u32, Sender<P>) -> WorkerRequest,
    mut take: impl FnMut(usize, P) -> Option<u32>,
) -> Result<(), String> {
    let mut from: Vec<Option<u32>> = vec![Some(0); workers.len()];
    while from.iter().any(Option::is_some) {
        let mut pending = Vec::new();
        for (i, w) in workers.iter().enumerate() {
            let Some(f) = from[i] else { continue };
            let (tx, rx) = bounded(1);
            if w.requests
                .send_timeout(ask(f, tx), Duration::from_secs(1))
                .is_err()
            {
                return Err(format!(
                    "worker on lcore {} is not taking requests",
                    w.lcore
                ));
            }
            pending.push((i, rx));
        }
        for (i, rx) in pending {
            let Ok(page) = rx.recv_timeout(Duration::from_secs(2)) else {
                return Err(format!(
                    "worker on lcore {} did not answer",
                    workers[i].lcore
                ));
            };
            from[i] = take(i, page);
        }
    }
    Ok(())
}
