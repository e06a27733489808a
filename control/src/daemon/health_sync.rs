//! Health checks and the tables: which checkers run (one per checked
//! real server), where DR/TUN servers' probes go, and the config as the
//! data plane sees it once servers found down are inhibited or removed.

use super::*;

impl Control {
    /// Starts checkers for checked servers that lack one (or whose check or
    /// target changed) and stops those of servers or checks that are gone.
    pub(super) fn sync_checkers(&mut self) {
        let mut wanted = std::collections::HashSet::new();
        let mut dr_pairs = std::collections::HashSet::new();
        let services = self.config.services.clone();
        for s in &services {
            let key: ServiceKey = (s.vip, s.proto);
            let Some(check) = self.config.health.get(&key).cloned() else {
                continue;
            };
            for r in &s.real_servers {
                wanted.insert((key, r.addr));
                let forward = self
                    .config
                    .service_options
                    .get(&key)
                    .map_or(s.forward, |o| o.forward_of(r.addr, s.forward));
                // A TUN server on a connected subnet holds the VIP too and
                // is probed there like a DR one (not encapsulated: the
                // kernel may have no ipip); a routed one at its address.
                let on_vip = forward == Forward::Dr
                    || (forward == Forward::Tun && self.iface_for(r.addr.ip()).is_some());
                let target = if on_vip {
                    dr_pairs.insert((s.vip.ip(), r.addr.ip()));
                    self.dr_target(s.vip, r.addr)
                } else {
                    Target::direct(r.addr)
                };
                let current = self
                    .checkers
                    .get(&(key, r.addr))
                    .is_some_and(|c| c.runs(&check, target));
                if !current {
                    let up = !self.down.contains(&(key, r.addr));
                    let c = health::spawn(
                        check.clone(),
                        key,
                        r.addr,
                        target,
                        up,
                        self.health_tx.clone(),
                    );
                    self.checkers.insert((key, r.addr), c);
                }
            }
        }
        self.checkers.retain(|k, _| wanted.contains(k));
        self.down.retain(|k| wanted.contains(k));
        self.dr_routes.retain(&dr_pairs);
    }

    /// Where a DR server's probes go: the VIP (at the server's port, which
    /// DR keeps), routed to that server through the exception path of the
    /// interface it is on. Without such an interface or route, the server's
    /// own address (logged: that checks the host, not the VIP service).
    pub(super) fn dr_target(&mut self, vip: SocketAddr, rs: SocketAddr) -> Target {
        let result = match self.iface_for(rs.ip()) {
            Some(dev) => self
                .dr_routes
                .target(SocketAddr::new(vip.ip(), rs.port()), rs.ip(), &dev),
            None => Err(format!("{rs} is on no interface's subnet")),
        };
        result.unwrap_or_else(|e| {
            eprintln!("rvsd: health: DR server {rs} of {vip}: cannot route probes to the VIP ({e}); probing {rs} itself");
            Target::direct(rs)
        })
    }

    /// The interface whose connected subnet holds `ip`, by name.
    pub(super) fn iface_for(&self, ip: IpAddr) -> Option<String> {
        let on_link = |i: &&crate::config::InterfaceConfig| match ip {
            IpAddr::V4(ip) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(i.prefix_len))
                    .unwrap_or(0);
                u32::from(i.addr) & mask == u32::from(ip) & mask
            }
            IpAddr::V6(ip) => i
                .addr6
                .is_some_and(|(a, len)| Addr::from(a).masked(len) == Addr::from(ip).masked(len)),
        };
        self.config
            .interfaces
            .iter()
            .find(on_link)
            .map(|i| i.name.clone())
    }

    /// Asks every worker to drop its sessions to `server` of `service`
    /// (after the tables without it went out) and logs how many there were.
    /// The workers flush a page of their table per request; the pages are
    /// asked for from a thread of its own, so the loop goes on serving.
    pub(super) fn flush_server(&self, service: ServiceKey, server: SocketAddr) {
        let Some(index) = self.registry.server_index(service.0, service.1, server) else {
            return;
        };
        let Ok(rs_index) = u16::try_from(index) else {
            return;
        };
        let workers = self.worker_lines();
        let what = format!("{server} of {}/{}", proto_name(service.1), service.0);
        let spawned = std::thread::Builder::new()
            .name("rvsd-flush".into())
            .spawn(move || {
                let (flushed, stopped) = flush_pages(&workers, rs_index);
                eprintln!("rvsd: health: reset {flushed} connection(s) to {what}");
                if let Some(why) = stopped {
                    eprintln!("rvsd: health: flush of {what} stopped early: {why}");
                }
            });
        if let Err(e) = spawned {
            eprintln!("rvsd: cannot start a flush thread: {e}");
        }
    }

    /// The config as the data plane should see it: servers found down are
    /// inhibited (weight 0) or removed, and a service with none left up
    /// uses its sorry server.
    pub(super) fn effective_config(&self) -> Config {
        let mut c = self.config.clone();
        // IPv4 addresses being probed, or found in use elsewhere: not yet
        // (or never) the appliance's.
        let withheld: Vec<_> = self.acd.withheld().map(IpAddr::V4).collect();
        c.addresses.retain(|a| !withheld.contains(&a.addr));
        for s in &mut c.services {
            let key: ServiceKey = (s.vip, s.proto);
            let Some(check) = self.config.health.get(&key) else {
                continue;
            };
            let all_down = !s.real_servers.is_empty()
                && s.real_servers
                    .iter()
                    .all(|r| self.down.contains(&(key, r.addr)));
            match check.on_fail {
                OnFail::Inhibit => {
                    for r in &mut s.real_servers {
                        if self.down.contains(&(key, r.addr)) {
                            r.weight = 0;
                        }
                    }
                }
                OnFail::Remove => s
                    .real_servers
                    .retain(|r| !self.down.contains(&(key, r.addr))),
            }
            if all_down {
                if let Some(sorry) = check.sorry_server {
                    if check.on_fail == OnFail::Inhibit {
                        s.real_servers.retain(|r| r.addr == sorry);
                    }
                    if !s.real_servers.iter().any(|r| r.addr == sorry) {
                        s.real_servers.push(RealServerConfig {
                            addr: sorry,
                            weight: 1,
                        });
                    }
                }
            }
        }
        c
    }

    /// Takes in the checkers' results: a server that changed state
    /// changes the tables, and one found down under `connections =
    /// "reset"` loses its sessions.
    pub(super) fn apply_health_results(&mut self) {
        let mut health_changed = false;
        let mut to_flush = Vec::new();
        while let Ok(ch) = self.health_rx.try_recv() {
            if !self.checkers.contains_key(&(ch.service, ch.server)) {
                continue; // a checker stopped since
            }
            let key = (ch.service, ch.server);
            let was_down = self.down.contains(&key);
            if ch.up && was_down {
                self.down.remove(&key);
            } else if !ch.up && !was_down {
                self.down.insert(key);
            } else {
                continue;
            }
            health_changed = true;
            if !ch.up
                && self
                    .config
                    .health
                    .get(&ch.service)
                    .is_some_and(|c| c.connections == Connections::Reset)
            {
                to_flush.push(key);
            }
            eprintln!(
                "rvsd: health: real server {} of {}/{} is {} ({})",
                ch.server,
                proto_name(ch.service.1),
                ch.service.0,
                if ch.up { "UP" } else { "DOWN" },
                ch.detail
            );
        }
        if health_changed {
            self.publish_tables();
        }
        for (service, server) in to_flush {
            self.flush_server(service, server);
        }
    }
}

/// Every worker's sessions to `rs_index` removed, page by page, the
/// workers in parallel; how many there were (and why it stopped early, if
/// a worker did not answer: its sessions then expire on their own).
fn flush_pages(workers: &[listings::WorkerLine], rs_index: u16) -> (usize, Option<String>) {
    let mut flushed = 0;
    let paged = listings::page_workers(
        workers,
        |from, reply| WorkerRequest::FlushServer {
            rs_index,
            from,
            reply,
        },
        |_, (n, next): (usize, Option<u32>)| {
            flushed += n;
            next
        },
    );
    (flushed, paged.err())
}
