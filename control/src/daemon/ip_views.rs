//! `rvsadm link|addr|route|neigh`: the iproute-style views of the
//! appliance's interfaces, addresses, routes and neighbours, and their
//! changes (mirrored on the exception path's kernel side).

use super::*;

impl Control {
    /// `rvsadm link|addr|route|neigh`: listings, and changes checked on a
    /// copy of the config, applied to the kernel side (exception path)
    /// first, and only then made live and published. A refusal changes
    /// nothing.
    pub(super) fn ip(&mut self, r: crate::api::ip::IpRequest) -> crate::api::ip::IpResponse {
        use crate::api::ip::{IpRequest as Q, IpResponse as A};
        use crate::iproute as ipr;
        let mut next = self.config.clone();
        let kernel = match r {
            Q::LinkShow => return A::Links(self.links()),
            Q::AddrShow => {
                let mut views = ipr::addr_views(&self.config);
                for v in &mut views {
                    let state = match v.addr {
                        IpAddr::V6(_) => self.dad.state(v.addr.into()),
                        IpAddr::V4(v4) => self.acd.state(v4),
                    };
                    v.flags = state.map_or("", crate::dad::State::flags).into();
                }
                return A::Addrs(self.links(), views);
            }
            Q::RouteShow => {
                return A::Routes(crate::config::net::route_list(
                    &self.config.interfaces,
                    &self.config.addresses,
                    &self.config.routes,
                ))
            }
            Q::NeighShow => return A::Neighbours(self.neigh_views()),
            Q::NeighAdd { addr, lladdr, dev } => {
                return self.neigh_change(&addr, Some(&lladdr), &dev)
            }
            Q::NeighDel { addr, dev } => return self.neigh_change(&addr, None, &dev),
            Q::AddrAdd { addr, dev } => ipr::addr_add(&mut next, &addr, &dev).map(|a| {
                let cidr = format!("{}/{}", a.addr, a.len);
                if a.addr.is_ipv6() {
                    // The TAP may have IPv6 off (no address6 in the file).
                    let _ = std::fs::write(
                        format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", a.dev),
                        "0",
                    );
                    kernel_ip(&["-6", "addr", "add", &cidr, "dev", &a.dev, "nodad"])
                } else {
                    kernel_ip(&["addr", "add", &cidr, "dev", &a.dev])
                }
            }),
            Q::AddrDel { addr, dev } => ipr::addr_del(&mut next, &addr, &dev).map(|a| {
                kernel_ip(&[
                    "addr",
                    "del",
                    &format!("{}/{}", a.addr, a.len),
                    "dev",
                    &a.dev,
                ])
            }),
            Q::RouteAdd(spec) => ipr::route_add(&mut next, &spec).map(|r| kernel_route(&r, true)),
            Q::RouteDel(spec) => ipr::route_del(&mut next, &spec).map(|r| kernel_route(&r, false)),
        };
        match kernel {
            Err(e) => A::Refused(e.to_string()),
            Ok(Err(e)) => A::Refused(format!("exception path: {e}")),
            Ok(Ok(())) => {
                self.config = next;
                self.publish_tables();
                A::Done
            }
        }
    }

    pub(super) fn links(&self) -> Vec<crate::api::ip::LinkView> {
        let ports = self
            .ports
            .iter()
            .zip(&self.config.interfaces)
            .zip(&self.macs)
            .map(|((p, i), mac)| {
                let st = p.stats().unwrap_or_default();
                crate::api::ip::LinkView {
                    name: i.name.clone(),
                    device: i.device.clone(),
                    mac: *mac,
                    up: p.link_up(),
                    mtu: p.mtu().map_or(0, u32::from),
                    stats: [
                        st.ipackets,
                        st.ibytes,
                        st.ierrors,
                        st.imissed,
                        st.rx_nombuf,
                        st.opackets,
                        st.obytes,
                        st.oerrors,
                    ],
                    vlan: None,
                }
            });
        let mut links: Vec<_> = ports.collect();
        for i in &self.config.interfaces {
            let Some(v) = &i.vlan else { continue };
            let Some(parent) = links.iter().find(|l| l.name == v.link).cloned() else {
                continue;
            };
            links.push(crate::api::ip::LinkView {
                name: i.name.clone(),
                device: String::new(),
                mtu: u32::from(i.mtu),
                stats: [0; 8],
                vlan: Some((v.link.clone(), v.id)),
                ..parent
            });
        }
        links
    }

    pub(super) fn neigh_views(&self) -> Vec<crate::api::ip::NeighView> {
        self.neigh
            .iter()
            .map(|(ip, mac, port, state)| crate::api::ip::NeighView {
                addr: ip.ip(),
                dev: self
                    .config
                    .interfaces
                    .get(usize::from(port))
                    .map_or_else(|| format!("port{port}"), |i| i.name.clone()),
                lladdr: mac,
                state: state.name().into(),
            })
            .collect()
    }

    /// `neigh add` (with a MAC) or `neigh del`: a permanent entry in the
    /// neighbour table, published to the workers at once.
    pub(super) fn neigh_change(
        &mut self,
        addr: &str,
        lladdr: Option<&str>,
        dev: &str,
    ) -> crate::api::ip::IpResponse {
        use crate::api::ip::IpResponse as A;
        use crate::config::net::IpError;
        let refuse = |e: IpError| A::Refused(e.to_string());
        let Ok(ip) = addr.parse::<IpAddr>() else {
            return refuse(IpError::BadAddress(addr.into()));
        };
        let Some(port) = self.config.interfaces.iter().position(|i| i.name == dev) else {
            return refuse(IpError::NoDevice(dev.into()));
        };
        let changed =
            match lladdr {
                Some(m) => {
                    let mac = match crate::config::net::parse_mac(m) {
                        Ok(mac) => mac,
                        Err(e) => return refuse(e),
                    };
                    if self.neigh.iter().any(|(a, _, _, s)| {
                        a == Addr::from(ip) && s == crate::neigh::State::Permanent
                    }) {
                        return refuse(IpError::Exists(format!(
                            "{ip} is already a permanent neighbour"
                        )));
                    }
                    let entry = dataplane::neigh::NeighEntry {
                        ip: Addr::from(ip),
                        mac,
                        port: port as u16,
                    };
                    if !self.neigh.add_static(entry, Instant::now()) {
                        return A::Refused("the neighbour table is full".into());
                    }
                    true
                }
                None => {
                    if !self
                        .neigh
                        .iter()
                        .any(|(a, _, p, _)| a == Addr::from(ip) && usize::from(p) == port)
                    {
                        return refuse(IpError::Missing(format!("no neighbour {ip} on {dev}")));
                    }
                    self.neigh.remove(Addr::from(ip))
                }
            };
        if changed {
            let map = Arc::new(self.neigh.snapshot());
            self.broadcast(|| WorkerRequest::Neigh(Arc::clone(&map)));
        }
        A::Done
    }
}
