//! The requests and answers of `rvsadm link|addr|route|neigh` (inside the
//! control socket's JSON): [`IpRequest`] and [`IpResponse`] with the views
//! rvsd fills in. rvsadm parses the command line into them and renders the
//! answers as `ip` would (control/src/bin/rvsadm/ip.rs).

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::config::net::RouteView;

/// A route named on the command line.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSpec {
    /// `PREFIX/LEN` or `default`.
    pub prefix: String,
    /// `via ADDRESS`.
    pub via: Option<String>,
    /// `dev NAME`.
    pub dev: Option<String>,
}

/// What `rvsadm link|addr|route|neigh` asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpRequest {
    /// `link show`.
    LinkShow,
    /// `addr show`.
    AddrShow,
    /// `addr add ADDRESS/LEN dev NAME`.
    AddrAdd {
        /// `ADDRESS/LEN`.
        addr: String,
        /// Interface.
        dev: String,
    },
    /// `addr del ADDRESS[/LEN] dev NAME`.
    AddrDel {
        /// `ADDRESS[/LEN]`.
        addr: String,
        /// Interface.
        dev: String,
    },
    /// `route show`.
    RouteShow,
    /// `route add`.
    RouteAdd(RouteSpec),
    /// `route del`.
    RouteDel(RouteSpec),
    /// `neigh show`.
    NeighShow,
    /// `neigh add ADDRESS lladdr MAC dev NAME`: a permanent entry.
    NeighAdd {
        /// Address.
        addr: String,
        /// MAC address.
        lladdr: String,
        /// Interface.
        dev: String,
    },
    /// `neigh del ADDRESS dev NAME`.
    NeighDel {
        /// Address.
        addr: String,
        /// Interface.
        dev: String,
    },
}

/// A DPDK port as `link show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkView {
    /// Interface name.
    pub name: String,
    /// The DPDK device string.
    pub device: String,
    /// MAC address.
    pub mac: [u8; 6],
    /// Link up.
    pub up: bool,
    /// MTU (0 if the device does not say).
    pub mtu: u32,
    /// Counters: rx packets, rx bytes, rx errors, rx missed, rx no-mbuf,
    /// tx packets, tx bytes, tx errors.
    pub stats: [u64; 8],
    /// For an 802.1Q sub-interface: its parent's name and the VLAN id.
    #[serde(default)]
    pub vlan: Option<(String, u16)>,
}

/// An address as `addr show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddrView {
    /// Interface name.
    pub dev: String,
    /// Address.
    pub addr: IpAddr,
    /// Prefix length.
    pub len: u8,
    /// From the config file (`false`: added with `rvsadm addr add`).
    pub configured: bool,
    /// Duplicate address detection's word for an IPv6 address, as `ip`
    /// prints it: "tentative", "dadfailed tentative", or nothing.
    #[serde(default)]
    pub flags: String,
}

/// A neighbour as `neigh show` prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NeighView {
    /// Address.
    pub addr: std::net::IpAddr,
    /// Interface name.
    pub dev: String,
    /// MAC, once resolved.
    pub lladdr: Option<[u8; 6]>,
    /// `REACHABLE`, `INCOMPLETE`, `FAILED` or `PERMANENT`.
    pub state: String,
}

/// What rvsd answers to an [`IpRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum IpResponse {
    /// `link show`, one per DPDK port in port order.
    Links(Vec<LinkView>),
    /// `addr show`: the links (for their headers) and every address.
    Addrs(Vec<LinkView>, Vec<AddrView>),
    /// `route show`.
    Routes(Vec<RouteView>),
    /// `neigh show`.
    Neighbours(Vec<NeighView>),
    /// A change was applied.
    Done,
    /// The request was refused (nothing changed).
    Refused(String),
}
