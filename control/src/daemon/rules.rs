//! Changing the rules: ipvsadm's `-A/-E/-D` (services), `-a/-e/-d` (real
//! servers), DPVS's `-P/-Q` (local addresses), and `--reload` / SIGHUP.
//! Each change is checked in full, then applied to the live config and
//! published as a new tables snapshot; a refused one changes nothing.

use super::*;

impl Control {
    /// Finds the service `spec` names: its index, or the error to answer.
    pub(super) fn find_service(
        &self,
        spec: &ServiceSpec,
    ) -> Result<(SocketAddr, u8, Option<usize>), Response> {
        let (vip, proto) = service_key(&spec.proto, &spec.vip).map_err(Response::Error)?;
        let at = self
            .config
            .services
            .iter()
            .position(|s| s.vip == vip && s.proto == proto);
        Ok((vip, proto, at))
    }

    pub(super) fn change_service(&mut self, spec: &ServiceSpec, change: Change) -> Response {
        let (vip, proto, at) = match self.find_service(spec) {
            Ok(x) => x,
            Err(r) => return r,
        };
        if let Err(e) = config::check_ops(spec.ops, proto) {
            return Response::Error(e);
        }
        let client_address = match &spec.client_address {
            None => None,
            Some(word) => {
                let forward = at.map_or(Forward::FullNat, |i| self.config.services[i].forward);
                match config::check_client_address(word, proto, forward) {
                    Ok(m) => Some(m),
                    Err(e) => return Response::Error(e),
                }
            }
        };
        // As ipvsadm: -A and -E take the whole definition; what is not given
        // takes its default (wlc, no persistence, no flags).
        let name = spec.scheduler.as_deref().unwrap_or("wlc");
        let Some(scheduler) = SchedKind::from_name(name) else {
            // libipvs's text for the kernel's ENOENT (the kernel logs
            // "Scheduler not found: ip_vs_NAME" to its own log only).
            return Response::Error("Scheduler or persistence engine not found".into());
        };
        let mut flags = SchedFlags::default();
        for f in spec
            .sched_flags
            .iter()
            .flat_map(|f| f.split(','))
            .filter(|f| !f.is_empty())
        {
            match SchedFlags::parse(scheduler, f) {
                Ok(bit) => flags = flags.union(bit),
                Err(e) => return Response::Error(e.to_string()),
            }
        }
        let persistence = match (spec.persistent, &spec.netmask) {
            // As the kernel: a netmask without persistence is kept by no one
            // and means nothing (ipvsadm -S prints -M only with -p).
            (None, _) => None,
            (Some(t), mask) => {
                if let Err(e) = config::ranges::persistent_secs(i64::from(t)) {
                    return Response::Error(e);
                }
                let mut p = Persistence::new(t);
                if let Some(m) = mask.as_deref().filter(|_| vip.is_ipv6()) {
                    match config::check_netmask6(m) {
                        Ok(len) => p.prefix6 = len,
                        Err(e) => return Response::Error(e),
                    }
                } else if let Some(m) = mask {
                    match m.parse::<Ipv4Addr>() {
                        Ok(m)
                            if u32::from(m).leading_ones() + u32::from(m).trailing_zeros()
                                == 32 =>
                        {
                            p.netmask = m.octets()
                        }
                        _ => return Response::Error(format!("illegal persistence netmask {m}")),
                    }
                }
                Some(p)
            }
        };
        // A fwmark service has no address to claim (its rules' are).
        if let (Change::Add, None, false) = (change, at, config::marks::is_fwmark(proto)) {
            let name = format!("of service {}", service_name(proto, vip));
            if let Err(e) = Claims::of(&self.config).claim(vip.ip(), Use::Vip, name) {
                return Response::Error(e);
            }
        }
        match (change, at) {
            (Change::Add, Some(_)) => return Response::Error("Service already exists".into()),
            // libipvs: ipvs_update_service / ipvs_del_service, ESRCH.
            (Change::Edit | Change::Delete, None) => {
                return Response::Error("No such service".into())
            }
            (Change::Delete, Some(i)) => {
                self.config.services.remove(i);
                self.config.remove_service_options(vip, proto);
                self.publish_tables();
                return Response::Ok;
            }
            (Change::Add | Change::Edit, _) => {}
        }
        let servers = at.map_or(0, |i| self.config.services[i].real_servers.len());
        let mut options = self
            .config
            .service_options(vip, proto)
            .cloned()
            .unwrap_or_default();
        options.sched_flags = flags;
        options.persistence = persistence;
        options.ops = spec.ops;
        // Unlike ipvsadm's flags, kept by an -E that does not name it: the
        // servers' own configuration depends on it.
        if let Some(m) = client_address {
            options.client_address = m;
        }
        // As DPVS's -j: an -E that does not name it keeps it.
        if let Some(on) = spec.syn_proxy {
            options.syn_proxy = on;
        }
        if options.syn_proxy {
            let default = at.map_or(Forward::FullNat, |i| self.config.services[i].forward);
            let forwards = std::iter::once(default).chain(options.forwards.values().copied());
            if let Err(e) = config::check_syn_proxy(proto, forwards) {
                return Response::Error(e);
            }
        }
        if scheduler != SchedKind::MaglevHashing {
            options.mh_table_size = None;
        }
        if let Err(e) = options.check_for(scheduler, servers, vip.is_ipv4()) {
            return Response::Error(e);
        }
        match at {
            None => self.config.services.push(ServiceConfig {
                vip,
                proto,
                scheduler,
                forward: Forward::FullNat,
                local_addresses: Vec::new(),
                real_servers: Vec::new(),
            }),
            Some(i) => self.config.services[i].scheduler = scheduler,
        }
        *self.config.service_options_mut(vip, proto) = options;
        self.publish_tables();
        Response::Ok
    }

    pub(super) fn change_laddr(&mut self, spec: &ServiceSpec, addr: &str, add: bool) -> Response {
        let (vip, _, at) = match self.find_service(spec) {
            Ok(x) => x,
            Err(r) => return r,
        };
        let Some(i) = at else {
            return Response::Error("Service not defined".into());
        };
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return Response::Error(format!("invalid local address {addr}"));
        };
        let servers_v4 = self.config.services[i]
            .real_servers
            .first()
            .map(|r| r.addr.is_ipv4());
        if let Err(e) = config::check_laddr_family(vip, servers_v4, ip) {
            return Response::Error(e);
        }
        if add {
            let name = format!(
                "of service {}",
                service_name(self.config.services[i].proto, vip)
            );
            if let Err(e) = Claims::of(&self.config).claim(ip, Use::LocalAddress, name.clone()) {
                return Response::Error(e);
            }
            if let Some(e) = config::marks::prefix_over(&self.config.marks, ip) {
                return Response::Error(format!("{ip} cannot be a local address {name}: {e}"));
            }
        }
        let list = &mut self.config.services[i].local_addresses;
        match (add, list.iter().position(|a| *a == ip)) {
            (true, Some(_)) => return Response::Error("Local address already exists".into()),
            (true, None) => list.push(ip),
            (false, None) => return Response::Error("No such local address".into()),
            (false, Some(j)) => {
                list.remove(j);
            }
        }
        self.publish_tables();
        Response::Ok
    }

    /// Re-reads the config file; applies services and timeouts if nothing
    /// that needs a restart changed. The running config stays otherwise.
    pub(super) fn reload(&mut self) -> Response {
        let r = self.try_reload();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        self.last_reload = Some((!matches!(r, Response::Error(_)), now));
        r
    }

    pub(super) fn try_reload(&mut self) -> Response {
        let new = match config::load(&self.config.path) {
            Ok(c) => c,
            Err(e) => return Response::Error(e.to_string()),
        };
        let old = &self.config;
        let fixed = [
            ("[dpdk]", new.dpdk != old.dpdk),
            ("[dataplane]", new.dataplane != old.dataplane),
            ("[flood_guard]", new.flood_guard != old.flood_guard),
            ("[control] socket", new.socket != old.socket),
            ("[metrics] address", new.metrics != old.metrics),
            ("[[interface]]", new.interfaces != old.interfaces),
            ("[[route]]", new.routes != self.file_routes),
            ("[vip_routes]", new.vip_routes != old.vip_routes),
            (
                "[sync] follow_kernel_addresses",
                new.sync.follow_kernel_addresses != old.sync.follow_kernel_addresses,
            ),
        ];
        if let Some((what, _)) = fixed.iter().find(|(_, changed)| *changed) {
            return Response::Error(format!(
                "{}: {what} cannot change at run time (restart rvsd to apply it)",
                new.path.display()
            ));
        }
        let servers = |c: &Config| -> std::collections::HashSet<(SocketAddr, u8, SocketAddr)> {
            c.services
                .iter()
                .flat_map(|s| s.real_servers.iter().map(move |r| (s.vip, s.proto, r.addr)))
                .collect()
        };
        let sync = (new.sync != old.sync).then(|| new.sync.clone());
        let (before, after) = (servers(&self.config), servers(&new));
        self.config.services = new.services;
        self.config.timeouts = new.timeouts;
        self.config.service_options = new.service_options;
        self.config.health = new.health;
        self.config.marks = new.marks;
        self.publish_tables();
        // A changed [sync]: the daemons start over with the file's settings
        // (what rvsadm --start-daemon changed since is replaced).
        if let Some(sync) = sync {
            self.config.sync = sync.clone();
            self.restart_sync(sync);
        }
        // A server the file adds back starts its --stats from zero, as
        // `rvsadm -a` does (unless connections it had still run).
        let readded: Vec<_> = after
            .difference(&before)
            .filter_map(|&(v, p, r)| Some((self.registry.server_index(v, p, r)?, v, p, r)))
            .collect();
        if !readded.is_empty() {
            self.refresh();
            for (i, vip, proto, rs) in readded {
                self.zero_if_idle(i, vip, proto, rs);
            }
        }
        Response::Ok
    }

    pub(super) fn change_server(&mut self, spec: &ServerSpec, change: Change) -> Response {
        let (vip, proto) = match service_key(&spec.proto, &spec.vip) {
            Ok(k) => k,
            Err(e) => return Response::Error(e),
        };
        let Some(svc) = self
            .config
            .services
            .iter()
            .position(|s| s.vip == vip && s.proto == proto)
        else {
            return Response::Error("Service not defined".into());
        };
        let rs = match parse_endpoint(&spec.rs) {
            Some(a) => a,
            None => match spec
                .rs
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                Ok(ip) => SocketAddr::new(ip, vip.port()),
                Err(_) => {
                    return Response::Error(format!("invalid real server address {}", spec.rs))
                }
            },
        };
        // The method: as given (-g/-m/--fullnat); otherwise unchanged on -e,
        // and the service's default on -a (FULLNAT unless the file says
        // otherwise). rvsadm always sends one (ipvsadm's default is -g).
        let service_default = self.config.services[svc].forward;
        let current = self.config.server_forward(&self.config.services[svc], rs);
        let forward = match spec.forward.as_deref() {
            Some(word) => match config::parse_forward(word) {
                Ok(f) => f,
                Err(e) => return Response::Error(e),
            },
            None if matches!(change, Change::Edit) => current,
            None => service_default,
        };
        if matches!(change, Change::Add) {
            let name = format!("{rs} of service {}", service_name(proto, vip));
            if let Err(e) = Claims::of(&self.config).claim(rs.ip(), Use::RealServer, name) {
                return Response::Error(e);
            }
            if let Some(e) = config::marks::prefix_over(&self.config.marks, rs.ip()) {
                return Response::Error(format!(
                    "{} cannot be a real server {rs} of service {}: {e}",
                    rs.ip(),
                    service_name(proto, vip)
                ));
            }
        }
        if !matches!(change, Change::Delete) {
            if let Err(e) = config::check_forward(forward, vip, rs) {
                return Response::Error(e);
            }
            let service = &self.config.services[svc];
            let other = service
                .real_servers
                .iter()
                .map(|r| r.addr)
                .find(|a| *a != rs);
            if let Err(e) = config::check_server_family(vip, rs, forward, other) {
                return Response::Error(e);
            }
            if let Some(l) = service
                .local_addresses
                .iter()
                .find(|l| l.is_ipv4() != rs.is_ipv4())
            {
                return Response::Error(format!("real server {rs} is {} but the service's local address {l} is {}: remove it first (-Q)", config::family(rs.ip()), config::family(*l)));
            }
            if self
                .config
                .service_options(vip, proto)
                .is_some_and(|o| o.syn_proxy)
                && !matches!(forward, Forward::FullNat | Forward::Nat)
            {
                return Response::Error(format!("service {vip} has the SYN proxy on: its real servers forward by FULLNAT or NAT (the proxy must see their replies)"));
            }
            if forward == Forward::FullNat && self.config.services[svc].local_addresses.is_empty() {
                return Response::Error(format!("service {vip} has no FULLNAT local address: add one first with -P -t {vip} -z ADDRESS"));
            }
        }
        if let Some(w) = spec.weight {
            if let Err(e) = config::ranges::weight(i64::from(w)) {
                return Response::Error(e);
            }
        }
        for (t, what) in [
            (spec.upper_threshold, "upper threshold"),
            (spec.lower_threshold, "lower threshold"),
        ] {
            if let Some(Err(e)) = t.map(|t| config::ranges::threshold(i64::from(t), what)) {
                return Response::Error(e);
            }
        }
        let thresholds = |old: Thresholds| Thresholds {
            upper: spec.upper_threshold.unwrap_or(old.upper),
            lower: spec.lower_threshold.unwrap_or(old.lower),
        };
        let old_t = self
            .config
            .service_options(vip, proto)
            .and_then(|o| o.thresholds.get(&rs).copied())
            .unwrap_or_default();
        let new_t = thresholds(if matches!(change, Change::Add) {
            Thresholds::default()
        } else {
            old_t
        });
        if let Err(e) = config::check_thresholds(new_t) {
            return Response::Error(e);
        }
        // A server added back (same service, address and port) keeps its
        // registry index, whose counters run on. Once no connection holds
        // it, it starts from zero, as a new IPVS destination does (the
        // kernel keeps a removed one's counters only while connections
        // still refer to it, in its destination trash).
        let mut readded = None;
        let servers = &mut self.config.services[svc].real_servers;
        let at = servers.iter().position(|r| r.addr == rs);
        match (change, at) {
            (Change::Add, Some(_)) => return Response::Error("Destination already exists".into()),
            (Change::Add, None) => {
                readded = self.registry.server_index(vip, proto, rs);
                if readded.is_none() && self.registry.server_count() >= MAX_REAL_SERVERS {
                    return Response::Error(format!(
                        "too many real servers (at most {MAX_REAL_SERVERS} while rvsd runs)"
                    ));
                }
                servers.push(RealServerConfig {
                    addr: rs,
                    weight: spec.weight.unwrap_or(1),
                });
            }
            (Change::Edit | Change::Delete, None) => {
                return Response::Error("No such destination".into())
            }
            (Change::Edit, Some(i)) => {
                if let Some(w) = spec.weight {
                    servers[i].weight = w;
                }
            }
            (Change::Delete, Some(i)) => {
                servers.remove(i);
            }
        }
        let options = self.config.service_options_mut(vip, proto);
        if matches!(change, Change::Delete) || new_t == Thresholds::default() {
            options.thresholds.remove(&rs);
        } else {
            options.thresholds.insert(rs, new_t);
        }
        if matches!(change, Change::Delete) || forward == service_default {
            options.forwards.remove(&rs);
        } else {
            options.forwards.insert(rs, forward);
        }
        self.publish_tables();
        if let Some(i) = readded {
            self.refresh();
            self.zero_if_idle(i, vip, proto, rs);
        }
        Response::Ok
    }
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Change {
    Add,
    Edit,
    Delete,
}

/// The key of the service the API names: `tcp`/`udp` and `VIP:PORT`, or
/// `fwm`/`fwm6` and a mark (see [`config::marks`]).
fn service_key(proto: &str, vip: &str) -> Result<(SocketAddr, u8), String> {
    let proto = match proto {
        "tcp" => 6,
        "udp" => 17,
        "fwm" | "fwm6" => {
            let mark = vip
                .parse::<u32>()
                .ok()
                .filter(|m| *m > 0)
                .ok_or_else(|| format!("invalid fwmark value `{vip}' specified"))?;
            return Ok((
                config::marks::service_key(mark, proto == "fwm6"),
                dataplane::marks::FWMARK_PROTO,
            ));
        }
        p => return Err(format!("unknown protocol {p}")),
    };
    let vip = parse_endpoint(vip).ok_or_else(|| format!("invalid service address {vip}"))?;
    Ok((vip, proto))
}
