//! The synthetic FULLNAT service and the frames rvs-bench sends it: the
//! addressing (VIP, real servers, local addresses, client tuples, which
//! worker owns which flow), the frame templates, the per-worker generator,
//! and the in-process self-check that proves a generated frame hits the
//! session predicted for it.

use crate::frame::Template;
use crate::Res;
use dataplane::neigh::{NeighEntry, NeighMap};
use dataplane::pipeline::{client_owner, Pipeline, Verdict};
use dataplane::sched::SchedKind;
use dataplane::session::{Endpoint, FlowKey, TcpState, Timeouts};
use dataplane::tables::{Interface, RealServer, Service, Tables};
use dataplane::time::Millis;
use dataplane::wire::{ipv4, tcp};
use std::sync::Arc;

// ---------------------------------------------------------------------------
// Addressing of the synthetic service.

pub(crate) const VIP: Endpoint = Endpoint::new([10, 77, 0, 100], 80);
pub(crate) const IF_ADDR: [u8; 4] = [10, 77, 0, 2];
pub(crate) const IF_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
pub(crate) const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0xc1];
/// Real servers (round robin).
pub(crate) const N_RS: u32 = 4;
/// FULLNAT local addresses: 256 x 64512 ports, so 10 M sessions fit on one worker.
pub(crate) const N_LADDR: u32 = 256;
pub(crate) const LPORT: (u16, u16) = (1024, 65535);

pub(crate) fn rs(j: u32) -> (Endpoint, [u8; 6]) {
    let i = (j % N_RS) as u8;
    (
        Endpoint::new([10, 77, 0, 11 + i], 8080),
        [0x02, 0, 0, 0, 0x11, i],
    )
}

pub(crate) fn laddr_ip(i: u32) -> [u8; 4] {
    [10, 200, i as u8, 1]
}

/// Client tuple number `c`: 32768 ports on each of the addresses 11.0.0.0, 11.0.0.1, ...
pub(crate) fn client_tuple(c: u32) -> Endpoint {
    let q = c >> 15;
    Endpoint::new(
        [11, (q >> 16) as u8, (q >> 8) as u8, q as u8],
        1024 + (c & 0x7fff) as u16,
    )
}

/// With several workers, rvs gives a client flow to the worker
/// `client_owner(client -> VIP)` (a hash; other workers redirect it there).
/// The generator sends each worker its own flows, as a NIC's flow steering
/// would: this lists, per worker, the first `n` client tuple numbers it owns.
/// `None` for one worker (every tuple is its own).
pub(crate) fn owned_clients(workers: usize, n: u32) -> Option<Vec<Vec<u32>>> {
    if workers <= 1 {
        return None;
    }
    let mut out: Vec<Vec<u32>> = (0..workers)
        .map(|_| Vec::with_capacity(n as usize))
        .collect();
    let mut c = 0u32;
    while out.iter().any(|v| v.len() < n as usize) {
        let key = FlowKey {
            src: client_tuple(c),
            dst: VIP,
            proto: ipv4::PROTO_TCP,
        };
        let v = &mut out[client_owner(&key, workers as u16)];
        if v.len() < n as usize {
            v.push(c);
        }
        c += 1;
    }
    Some(out)
}

/// First port of worker `w`'s slice of the local port range ([`dataplane::laddr::owner_of`]).
fn first_port(w: usize, workers: usize) -> u32 {
    let (lo, wk) = (u32::from(LPORT.0), workers as u32);
    lo + ((w as u32 + wk - lo % wk) % wk)
}

/// Sessions one worker can hold before its local ports run out.
pub(crate) fn port_capacity(workers: usize) -> u32 {
    N_LADDR * ((u32::from(LPORT.1) - u32::from(LPORT.0) + 1) / workers as u32)
}

/// The local address and port the `j`-th session of a worker gets, when its
/// SYNs are processed in order and none is refused: the service's local
/// addresses are taken round robin, each address's port pool is FIFO.
pub(crate) fn laddr_of(j: u32, first: u32, workers: usize) -> Endpoint {
    Endpoint::new(
        laddr_ip(j % N_LADDR),
        (first + (j / N_LADDR) * workers as u32) as u16,
    )
}

pub(crate) fn tables(positions: usize) -> Arc<Tables> {
    Arc::new(Tables {
        interfaces: (0..positions)
            .map(|p| Interface {
                port: p as u16,
                mac: IF_MAC,
                addr: IF_ADDR,
                prefix_len: 16,
                gateway: None,
                mtu: 1500,
            })
            .collect(),
        services: vec![Service {
            vip: VIP,
            proto: ipv4::PROTO_TCP,
            sched: SchedKind::RoundRobin,
            laddrs: (0..N_LADDR as u16).collect(),
            servers: (0..N_RS)
                .map(|i| RealServer {
                    addr: rs(i).0,
                    weight: 1,
                    index: i as u16,
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }],
        laddrs: (0..N_LADDR).map(|i| laddr_ip(i).into()).collect(),
        lport_range: LPORT,
        timeouts: Timeouts::default(),
        rs_count: N_RS as u16,
        generation: 1,
        routes: Default::default(),
        tentative: Vec::new(),
        standby: Vec::new(),
        vlans: Default::default(),
        marks: Default::default(),
    })
}

pub(crate) fn neigh() -> Arc<NeighMap> {
    Arc::new(NeighMap::new(
        (0..N_RS)
            .map(|i| {
                let (e, mac) = rs(i);
                NeighEntry {
                    ip: e.ip,
                    mac,
                    port: 0,
                }
            })
            .collect(),
    ))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Traffic {
    /// SYNs of flows 0, 1, 2, ... (each a new connection).
    Syn,
    /// ACK/data frames of the established flows 0..n, alternately client ->
    /// VIP and RS -> local address, each stream in its own pseudo-random order.
    Established,
    /// 64-byte frames of an unknown ethertype, which a worker drops after
    /// reading the Ethernet header: the ceiling of the harness itself.
    Junk,
}

/// The frames of one worker's flows.
pub(crate) struct Gen {
    /// Client tuple numbers of this worker's flows (`None`: flow j is tuple j).
    clients: Option<Vec<u32>>,
    pub(crate) workers: usize,
    pub(crate) n: u32,
    pub(crate) traffic: Traffic,
    pub(crate) syn: Template,
    pub(crate) ack: Template,
    next_syn: u32,
    j_in: u32,
    j_out: u32,
    stride: u32,
    inbound: bool,
    first: u32,
}

fn gcd(mut a: u32, mut b: u32) -> u32 {
    while b != 0 {
        (a, b) = (b, a % b);
    }
    a
}

impl Gen {
    pub(crate) fn new(w: usize, workers: usize, n: u32, clients: Option<Vec<u32>>) -> Self {
        let n = n.max(1);
        let mut stride = ((f64::from(n) * 0.618_034) as u32).max(1) % n;
        while gcd(stride, n) != 1 {
            stride += 1;
        }
        Self {
            clients,
            workers,
            n,
            traffic: Traffic::Syn,
            syn: Template::new(tcp::SYN, 0, 64),
            ack: Template::new(tcp::ACK, 10, 64),
            next_syn: 0,
            j_in: 0,
            j_out: n / 2,
            stride,
            inbound: false,
            first: first_port(w, workers),
        }
    }

    pub(crate) fn frame_len(&self) -> usize {
        match self.traffic {
            Traffic::Syn => self.syn.len,
            Traffic::Established | Traffic::Junk => self.ack.len,
        }
    }

    #[inline]
    pub(crate) fn client(&self, j: u32) -> Endpoint {
        client_tuple(self.clients.as_ref().map_or(j, |c| c[j as usize]))
    }

    #[inline]
    fn step(&self, j: u32) -> u32 {
        let j = j + self.stride;
        if j >= self.n {
            j - self.n
        } else {
            j
        }
    }

    #[inline]
    pub(crate) fn write(&mut self, d: &mut [u8]) {
        match self.traffic {
            Traffic::Syn => {
                let j = self.next_syn;
                self.next_syn += 1;
                self.syn.write(d, CLIENT_MAC, self.client(j), VIP);
            }
            Traffic::Established => {
                self.inbound = !self.inbound;
                if self.inbound {
                    let j = self.j_in;
                    self.j_in = self.step(j);
                    self.ack.write(d, CLIENT_MAC, self.client(j), VIP);
                } else {
                    let j = self.j_out;
                    self.j_out = self.step(j);
                    let (rs, mac) = rs(j);
                    self.ack
                        .write(d, mac, rs, laddr_of(j, self.first, self.workers));
                }
            }
            Traffic::Junk => {
                self.ack.write(d, CLIENT_MAC, self.client(0), VIP);
                d[12..14].copy_from_slice(&0x88b5u16.to_be_bytes());
            }
        }
    }
}

/// Checks the generator against the real pipeline, in-process: checksums
/// are valid, every SYN creates the session predicted for it, and every
/// established frame of both directions is forwarded with the expected
/// rewrite.
pub(crate) fn self_check() -> Res<()> {
    for workers in [1usize, 2] {
        let n = 2000u32;
        let mut owned = owned_clients(workers, n);
        for w in 0..workers {
            let mut p = Pipeline::new(tables(1), neigh(), n, 1, w as u16, workers as u16);
            let mut g = Gen::new(
                w,
                workers,
                n,
                owned.as_mut().map(|o| std::mem::take(&mut o[w])),
            );
            let mut f = [0u8; 64];
            for j in 0..n {
                g.write(&mut f);
                let ip = ipv4::Packet::new_checked(&f[14..g.syn.len])
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let seg = tcp::Packet::new_checked(ip.payload())
                    .map_err(|e| format!("self-check: {e:?}"))?;
                if !ip.verify_checksum() || !seg.verify_checksum_v4(ip.src(), ip.dst()) {
                    return Err("self-check: generated SYN has a bad checksum".into());
                }
                let v = p.process(&mut f[..g.syn.len], 0, Millis(1));
                if v != (Verdict::Forward { port: 0 }) {
                    return Err(
                        format!("self-check: SYN {j} of worker {w}/{workers}: {v:?}").into(),
                    );
                }
                let ip = ipv4::Packet::new_checked(&f[14..g.syn.len])
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let seg = tcp::Packet::new_checked(ip.payload())
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let want = laddr_of(j, g.first, workers);
                if Endpoint::new(ip.src(), seg.src_port()) != want
                    || Endpoint::new(ip.dst(), seg.dst_port()) != rs(j).0
                {
                    return Err(format!(
                        "self-check: session {j} of worker {w}/{workers} not as predicted"
                    )
                    .into());
                }
            }
            g.traffic = Traffic::Established;
            for i in 0..4 * n {
                g.write(&mut f);
                let ip = ipv4::Packet::new_checked(&f[14..g.ack.len])
                    .map_err(|e| format!("self-check: {e:?}"))?;
                let seg = tcp::Packet::new_checked(ip.payload())
                    .map_err(|e| format!("self-check: {e:?}"))?;
                if !ip.verify_checksum() || !seg.verify_checksum_v4(ip.src(), ip.dst()) {
                    return Err("self-check: generated ACK has a bad checksum".into());
                }
                let v = p.process(&mut f[..g.ack.len], 0, Millis(2));
                if v != (Verdict::Forward { port: 0 }) {
                    return Err(format!(
                        "self-check: established frame {i} of worker {w}/{workers}: {v:?}"
                    )
                    .into());
                }
            }
            if p.sessions()
                .iter()
                .any(|s| s.state != TcpState::Established)
            {
                return Err("self-check: a session did not reach ESTABLISHED".into());
            }
        }
    }
    Ok(())
}
