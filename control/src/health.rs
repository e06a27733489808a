//! Health checking of real servers, keepalived-style, run by control.
//!
//! Each checked real server gets a thread that probes it every `interval`
//! from the appliance's own address (through the kernel exception path, so
//! the probe leaves through the DPDK port like any other traffic) and
//! reports state *changes* to the control loop: DOWN after `fall`
//! consecutive failures, UP after `rise` consecutive successes. The control
//! loop then publishes tables where a down server has weight 0
//! ("inhibit", keepalived's `inhibit_on_failure`; existing connections carry
//! on) or is left out ("remove"), and, when every server of a service is
//! down, the service's sorry server instead.
//!
//! Kinds: `tcp` (connect), `http` (GET, expected status), `udp` (send a
//! payload, expect an answer, optionally containing a string; an ICMP port
//! unreachable or silence is a failure), `icmp` (echo request and reply, on
//! an unprivileged ping socket where the kernel allows one, else a raw
//! socket) and `script` (exit code 0).
//!
//! Where a probe goes ([`Target`]): a FULLNAT or NAT server is probed at its
//! own address. A DR server holds the VIP on a loopback and serves there,
//! so "is the service up" means "does it answer on the VIP": the probe is
//! sent to the VIP with a firewall mark on its socket, and a policy rule
//! installed by [`DrRoute`] (`ip rule fwmark M table T`, `ip route VIP via
//! RIP table T`) makes the kernel hand it to that server's MAC through the
//! exception path. The server answers from the VIP to the appliance's
//! interface address, which the data plane punts back to the kernel.
//!
//! On failure a service may also reset its servers' existing connections
//! ([`Connections::Reset`]): control then asks every worker to flush the
//! sessions to that server.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CheckKind {
    /// A TCP connect to the server.
    Tcp,
    /// An HTTP GET of `path`, expecting `status`.
    Http {
        /// Request path.
        path: String,
        /// Expected status code.
        status: u16,
    },
    /// A datagram with `payload`, answered by any datagram (containing
    /// `expect`, if set).
    Udp {
        /// What to send.
        payload: Vec<u8>,
        /// What the answer must contain.
        expect: Option<Vec<u8>>,
    },
    /// An ICMP echo request, answered by an echo reply.
    Icmp,
    /// A command (run by `sh -c`) with the server's address and port as
    /// `$1 $2`; exit code 0 is success.
    Script(String),
}

/// What happens to a failed server's existing connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Connections {
    /// They carry on (keepalived's and IPVS's default).
    #[default]
    Keep,
    /// Their sessions are flushed from every worker: further packets of
    /// them are dropped (IPVS `expire_nodest_conn`), UDP flows are
    /// rescheduled by their next datagram.
    Reset,
}

/// Where a probe goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target {
    /// Address and port probed (the VIP for a DR server).
    pub addr: SocketAddr,
    /// Firewall mark on the probe's socket (DR: selects its route).
    pub mark: Option<u32>,
}

impl Target {
    /// The server itself, unmarked.
    #[must_use]
    pub fn direct(addr: impl Into<SocketAddr>) -> Self {
        Self {
            addr: addr.into(),
            mark: None,
        }
    }
}

/// What happens to a server that fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFail {
    /// Weight 0: no new connections, existing ones continue.
    Inhibit,
    /// Left out of the service.
    Remove,
}

/// A service's health check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Probe kind.
    pub kind: CheckKind,
    /// Time between probes.
    pub interval: Duration,
    /// Time a probe may take.
    pub timeout: Duration,
    /// Successes before a down server is up.
    pub rise: u32,
    /// Failures before an up server is down.
    pub fall: u32,
    /// Wait before the first probe.
    pub delay: Duration,
    /// What a failed server becomes.
    pub on_fail: OnFail,
    /// What becomes of a failed server's existing connections.
    pub connections: Connections,
    /// Where new connections go when every server is down.
    pub sorry_server: Option<SocketAddr>,
}

/// A state change, as the control loop receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The service (VIP, protocol).
    pub service: (SocketAddr, u8),
    /// The server.
    pub server: SocketAddr,
    /// Now up?
    pub up: bool,
    /// Why (the last probe's result).
    pub detail: String,
}

/// One probe of `target` from the appliance. A script gets the target's
/// address and port as `$1 $2`.
///
/// # Errors
/// Why the probe failed, in words.
pub fn probe(kind: &CheckKind, target: Target, timeout: Duration) -> Result<(), String> {
    let server = target.addr;
    match kind {
        CheckKind::Tcp => connect(target, timeout).map(drop),
        CheckKind::Http { path, status } => http_probe(target, path, *status, timeout),
        CheckKind::Udp { payload, expect } => {
            udp_probe(target, payload, expect.as_deref(), timeout)
        }
        CheckKind::Icmp => icmp_probe(target, timeout),
        CheckKind::Script(cmd) => {
            let mut child = std::process::Command::new("sh")
                .args([
                    "-c",
                    cmd,
                    "rvsd-check",
                    &server.ip().to_string(),
                    &server.port().to_string(),
                ])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .map_err(|e| format!("cannot run script: {e}"))?;
            let deadline = Instant::now() + timeout;
            loop {
                match child.try_wait() {
                    Ok(Some(st)) if st.success() => return Ok(()),
                    Ok(Some(st)) => return Err(format!("script exited with {st}")),
                    Ok(None) if Instant::now() >= deadline => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("script timed out".into());
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                    Err(e) => return Err(e.to_string()),
                }
            }
        }
    }
}

/// `GET path` on a connection made here (marked if the target says so),
/// sent and answered by hyper's HTTP/1 client on a runtime of the probe's
/// own; up when the answer's status is `status`. The whole exchange has
/// the probe's timeout.
fn http_probe(target: Target, path: &str, status: u16, timeout: Duration) -> Result<(), String> {
    use http_body_util::Empty;
    use hyper::header::{CONNECTION, HOST, USER_AGENT};
    use hyper_util::rt::TokioIo;

    let deadline = Instant::now() + timeout;
    let s = connect(target, timeout)?;
    s.set_nonblocking(true).map_err(|e| e.to_string())?;
    let request = hyper::Request::get(path)
        .header(HOST, target.addr.ip().to_string())
        .header(USER_AGENT, "rvsd-health")
        .header(CONNECTION, "close")
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("bad request for {path:?}: {e}"))?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))?;
    let left = deadline
        .saturating_duration_since(Instant::now())
        .max(Duration::from_millis(1));
    let code = rt.block_on(async move {
        let exchange = async move {
            let stream = tokio::net::TcpStream::from_std(s).map_err(|e| e.to_string())?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| format!("send: {e}"))?;
            tokio::spawn(conn);
            let answer = sender
                .send_request(request)
                .await
                .map_err(|e| format!("not an HTTP answer: {e}"))?;
            Ok::<u16, String>(answer.status().as_u16())
        };
        tokio::time::timeout(left, exchange)
            .await
            .unwrap_or_else(|_| Err("receive: timed out".into()))
    })?;
    if code == status {
        Ok(())
    } else {
        Err(format!("HTTP status {code}, expected {status}"))
    }
}

/// A socket for `target`, marked if it says so.
fn socket(target: Target, ty: Type, proto: Protocol) -> std::io::Result<Socket> {
    let s = Socket::new(Domain::for_address(target.addr), ty, Some(proto))?;
    if let Some(m) = target.mark {
        s.set_mark(m)?;
    }
    Ok(s)
}

/// Connects, retrying a connect interrupted by a signal.
fn connect(target: Target, timeout: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    let addr = SockAddr::from(target.addr);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("connect: timed out".into());
        }
        let s = socket(target, Type::STREAM, Protocol::TCP).map_err(|e| format!("socket: {e}"))?;
        match s.connect_timeout(&addr, left) {
            Ok(()) => return Ok(s.into()),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("connect: {e}")),
        }
    }
}

/// Sends `payload` and waits for one answer (containing `expect`, if set).
fn udp_probe(
    target: Target,
    payload: &[u8],
    expect: Option<&[u8]>,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let s = socket(target, Type::DGRAM, Protocol::UDP).map_err(|e| format!("socket: {e}"))?;
    s.connect(&SockAddr::from(target.addr))
        .map_err(|e| format!("connect: {e}"))?;
    let s: UdpSocket = s.into();
    s.send(payload).map_err(|e| format!("send: {e}"))?;
    let mut buf = vec![0u8; 65536];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer: timed out".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match s.recv(&mut buf) {
            Ok(n) => {
                let got = &buf[..n];
                return match expect {
                    Some(want) if !contains(got, want) => Err(format!(
                        "answer {:?} lacks {:?}",
                        String::from_utf8_lossy(&got[..n.min(64)]),
                        String::from_utf8_lossy(want)
                    )),
                    _ => Ok(()),
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no answer: timed out".into())
            }
            // ECONNREFUSED: the server's host said port unreachable.
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

const ICMP_ECHO_REQUEST: u8 = 8;
const ICMP_ECHO_REPLY: u8 = 0;
const ICMPV6_ECHO_REQUEST: u8 = 128;
const ICMPV6_ECHO_REPLY: u8 = 129;

/// Sequence numbers for echo requests, shared by every checker thread.
static ICMP_SEQ: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(1);

/// An ICMP echo request: type, code, checksum, identifier, sequence, data.
#[must_use]
pub fn echo_request(ident: u16, seq: u16, data: &[u8]) -> Vec<u8> {
    let mut m = vec![ICMP_ECHO_REQUEST, 0, 0, 0];
    m.extend_from_slice(&ident.to_be_bytes());
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(data);
    let sum = internet_checksum(&m);
    m[2..4].copy_from_slice(&sum.to_be_bytes());
    m
}

fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], c.get(1).copied().unwrap_or(0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// The ICMP message in what a socket returned: a raw socket hands over the
/// IP header too (whose source must be the target), a ping socket only the
/// message.
fn icmp_message(got: &[u8], raw: bool, from: IpAddr) -> Option<&[u8]> {
    let IpAddr::V4(from) = from else {
        // An ICMPv6 socket, raw or not, hands over the message only.
        return Some(got);
    };
    if !raw {
        return Some(got);
    }
    let ihl = usize::from(*got.first()? & 0x0f) * 4;
    if got.len() < ihl + 8 || got[..ihl].len() < 20 || got[12..16] != from.octets() || got[9] != 1 {
        return None;
    }
    Some(&got[ihl..])
}

/// Echo request to the target's address; success on the matching reply.
/// A ping socket (`net.ipv4.ping_group_range`) is tried first, then a raw
/// socket (root, as rvsd runs). ICMPv6 for an IPv6 target (the kernel
/// fills in the ICMPv6 checksum, which covers a pseudo-header).
fn icmp_probe(target: Target, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let v6 = target.addr.is_ipv6();
    let proto = if v6 {
        Protocol::ICMPV6
    } else {
        Protocol::ICMPV4
    };
    let (s, raw) = match socket(target, Type::DGRAM, proto) {
        Ok(s) => (s, false),
        Err(_) => (
            socket(target, Type::RAW, proto).map_err(|e| format!("ICMP socket: {e}"))?,
            true,
        ),
    };
    let dst = target.addr.ip();
    // Connected: the kernel passes up only datagrams from the target.
    s.connect(&SockAddr::from(SocketAddr::new(dst, 0)))
        .map_err(|e| format!("connect: {e}"))?;
    let ident = (std::process::id() as u16) ^ 0x5256;
    let seq = ICMP_SEQ.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let data = *b"rvsd-health-icmp";
    let mut request = echo_request(ident, seq, &data);
    if v6 {
        request[0] = ICMPV6_ECHO_REQUEST;
        request[2..4].fill(0);
    }
    let reply_type = if v6 {
        ICMPV6_ECHO_REPLY
    } else {
        ICMP_ECHO_REPLY
    };
    s.send(&request).map_err(|e| format!("send: {e}"))?;
    let mut buf = [0u8; 1500];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no echo reply: timed out".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        match (&s).read(&mut buf) {
            Ok(n) => {
                let Some(m) = icmp_message(&buf[..n], raw, dst) else {
                    continue;
                };
                // A ping socket rewrites the identifier: only the sequence
                // and data tell our reply from another thread's.
                let ours = m.len() >= 8 + data.len()
                    && m[0] == reply_type
                    && m[6..8] == seq.to_be_bytes()
                    && m[8..8 + data.len()] == data;
                if ours && (!raw || m[4..6] == ident.to_be_bytes()) {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no echo reply: timed out".into())
            }
            Err(e) => return Err(format!("receive: {e}")),
        }
    }
}

/// First firewall mark (and routing table id) of DR probes: the k-th
/// (VIP, server) pair gets `DR_MARK_BASE + k`.
pub const DR_MARK_BASE: u32 = 0x5256_0000;
/// Priority of the policy rules for DR probes (before the main table's 32766).
pub const DR_RULE_PRIORITY: u32 = 100;

fn ip(args: &[&str]) -> Result<(), String> {
    let out = std::process::Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// One DR server's probe route: `ip rule fwmark M table M` and, in table
/// M, `VIP via RIP dev TAP`. Installed by [`DrRoute::install`], removed
/// on drop.
#[derive(Debug)]
pub struct DrRoute {
    mark: u32,
    /// `-4` or `-6`: rules and routes live per family.
    family: &'static str,
}

impl DrRoute {
    /// Routes probes marked `DR_MARK_BASE + slot` for `vip` to the server
    /// `rip`, on-link on the exception-path interface `dev`. A rule or
    /// route with the same mark left by an earlier rvsd is replaced.
    ///
    /// # Errors
    /// What `ip` said.
    pub fn install(slot: u16, vip: IpAddr, rip: IpAddr, dev: &str) -> Result<Self, String> {
        if vip.is_ipv4() != rip.is_ipv4() {
            return Err(format!(
                "VIP {vip} and server {rip} are of different families"
            ));
        }
        let mark = DR_MARK_BASE + u32::from(slot);
        let (family, host) = if vip.is_ipv4() {
            ("-4", 32)
        } else {
            ("-6", 128)
        };
        let route = Self { mark, family };
        route.clear();
        let m = mark.to_string();
        ip(&[
            family,
            "route",
            "replace",
            &format!("{vip}/{host}"),
            "via",
            &rip.to_string(),
            "dev",
            dev,
            "onlink",
            "table",
            &m,
        ])?;
        ip(&[
            family,
            "rule",
            "add",
            "fwmark",
            &m,
            "table",
            &m,
            "priority",
            &DR_RULE_PRIORITY.to_string(),
        ])?;
        Ok(route)
    }

    /// The mark probes carry.
    #[must_use]
    pub fn mark(&self) -> u32 {
        self.mark
    }

    fn clear(&self) {
        let m = self.mark.to_string();
        // Every copy of the rule (an earlier rvsd may have left some).
        for _ in 0..16 {
            if ip(&[self.family, "rule", "del", "fwmark", &m, "table", &m]).is_err() {
                break;
            }
        }
        let _ = ip(&[self.family, "route", "flush", "table", &m]);
    }
}

impl Drop for DrRoute {
    fn drop(&mut self) {
        self.clear();
    }
}

/// The DR probe routes in force, one per (VIP, server) pair.
#[derive(Debug, Default)]
pub struct DrRoutes {
    routes: std::collections::BTreeMap<(IpAddr, IpAddr), DrRoute>,
}

impl DrRoutes {
    /// The target of a DR server's probes: `vip:port`, marked for the
    /// route to `rip` (installed now if it is new).
    ///
    /// # Errors
    /// The route could not be installed.
    pub fn target(&mut self, vip: SocketAddr, rip: IpAddr, dev: &str) -> Result<Target, String> {
        let key = (vip.ip(), rip);
        if let Some(r) = self.routes.get(&key) {
            return Ok(Target {
                addr: vip,
                mark: Some(r.mark()),
            });
        }
        let used: std::collections::BTreeSet<u32> =
            self.routes.values().map(DrRoute::mark).collect();
        let slot = (0..=u16::MAX)
            .find(|k| !used.contains(&(DR_MARK_BASE + u32::from(*k))))
            .ok_or("no free DR probe mark")?;
        let r = DrRoute::install(slot, key.0, rip, dev)?;
        let t = Target {
            addr: vip,
            mark: Some(r.mark()),
        };
        self.routes.insert(key, r);
        Ok(t)
    }

    /// Removes the routes of pairs not in `wanted`.
    pub fn retain(&mut self, wanted: &std::collections::HashSet<(IpAddr, IpAddr)>) {
        self.routes.retain(|k, _| wanted.contains(k));
    }
}

/// Counts consecutive results and says when the state flips.
#[derive(Debug, Clone)]
pub struct Streak {
    up: bool,
    run: u32,
}

impl Streak {
    /// Servers start up (keepalived's default), so traffic flows at once.
    #[must_use]
    pub fn new() -> Self {
        Self::starting(true)
    }

    /// Starts in a known state (a checker replaced on reload goes on from
    /// where the old one left the server).
    #[must_use]
    pub fn starting(up: bool) -> Self {
        Self { up, run: 0 }
    }

    /// Records one result; returns the new state when it changes.
    pub fn record(&mut self, ok: bool, rise: u32, fall: u32) -> Option<bool> {
        if ok == self.up {
            self.run = 0;
            return None;
        }
        self.run += 1;
        let needed = if self.up { fall } else { rise };
        if self.run >= needed.max(1) {
            self.up = ok;
            self.run = 0;
            return Some(ok);
        }
        None
    }
}

impl Default for Streak {
    fn default() -> Self {
        Self::new()
    }
}

/// A running checker; dropping it stops the thread (at its next wake-up).
#[derive(Debug)]
pub struct Checker {
    stop: Arc<AtomicBool>,
    check: HealthCheck,
    target: Target,
}

impl Checker {
    /// Whether this checker runs `check` against `target` (if not, a
    /// reload or a change of forwarding method replaces it).
    #[must_use]
    pub fn runs(&self, check: &HealthCheck, target: Target) -> bool {
        self.check == *check && self.target == target
    }
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts probing `server` of `service` at `target`, reporting changes on
/// `changes`; `up` is the state the server is in now (true for a new one).
#[must_use]
pub fn spawn(
    check: HealthCheck,
    service: (SocketAddr, u8),
    server: SocketAddr,
    target: Target,
    up: bool,
    changes: Sender<Change>,
) -> Checker {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let name = format!("health {server}");
    let kept = check.clone();
    let _ = std::thread::Builder::new().name(name).spawn(move || {
        crate::affinity::pin_current();
        let nap = |d: Duration| {
            let until = Instant::now() + d;
            while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                std::thread::sleep(
                    Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())),
                );
            }
        };
        nap(check.delay);
        let mut streak = Streak::starting(up);
        while !flag.load(Ordering::Relaxed) {
            let started = Instant::now();
            let result = probe(&check.kind, target, check.timeout);
            if let Some(up) = streak.record(result.is_ok(), check.rise, check.fall) {
                let detail = match &result {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.clone(),
                };
                if changes
                    .send(Change {
                        service,
                        server,
                        up,
                        detail,
                    })
                    .is_err()
                {
                    return;
                }
            }
            nap(check.interval.saturating_sub(started.elapsed()));
        }
    });
    Checker {
        stop,
        check: kept,
        target,
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpListener;

    use std::net::{Ipv4Addr, SocketAddrV4};

    use super::*;

    #[test]
    fn streak_needs_fall_failures_then_rise_successes() {
        let mut s = Streak::new();
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(
            s.record(true, 2, 3),
            None,
            "a success resets the failure run"
        );
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), Some(false));
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), Some(true));
        // A replacement checker for a server that is down reports it up
        // after `rise` successes, never down again first.
        let mut s = Streak::starting(false);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), Some(true));
    }

    fn local_http(status: &'static str) -> SocketAddrV4 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            unreachable!()
        };
        std::thread::spawn(move || {
            for s in l.incoming().flatten().take(4) {
                let mut s = s;
                // The whole request (it may come in several segments) before
                // answering: closing with unread bytes would reset the
                // connection under the client's next write.
                let mut req = Vec::new();
                let mut buf = [0u8; 512];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(s, "HTTP/1.0 {status}\r\n\r\nbody");
            }
        });
        addr
    }

    #[test]
    fn probes_against_real_sockets() {
        let t = Duration::from_secs(2);
        let ok = local_http("200 OK");
        assert_eq!(probe(&CheckKind::Tcp, Target::direct(ok), t), Ok(()));
        assert_eq!(
            probe(
                &CheckKind::Http {
                    path: "/".into(),
                    status: 200
                },
                Target::direct(ok),
                t
            ),
            Ok(())
        );
        let bad = local_http("503 Service Unavailable");
        let e = probe(
            &CheckKind::Http {
                path: "/".into(),
                status: 200,
            },
            Target::direct(bad),
            t,
        )
        .unwrap_err();
        assert!(e.contains("503"), "{e}");
        let http = CheckKind::Http {
            path: "/".into(),
            status: 200,
        };
        let garbage = local_http("two hundred");
        let e = probe(&http, Target::direct(garbage), t).unwrap_err();
        assert!(e.contains("not an HTTP answer"), "{e}");
        // Accepts, never answers: the probe's timeout.
        let mute = TcpListener::bind("127.0.0.1:0").unwrap();
        let e = probe(
            &http,
            Target::direct(mute.local_addr().unwrap()),
            Duration::from_millis(300),
        )
        .unwrap_err();
        assert!(e.contains("timed out"), "{e}");
        // A port nobody listens on.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let SocketAddr::V4(a) = l.local_addr().unwrap() else {
                unreachable!()
            };
            a
        };
        assert!(probe(&CheckKind::Tcp, Target::direct(closed), t)
            .unwrap_err()
            .starts_with("connect"));
        assert_eq!(
            probe(&CheckKind::Script("exit 0".into()), Target::direct(ok), t),
            Ok(())
        );
        assert!(probe(
            &CheckKind::Script("test \"$2\" = 1".into()),
            Target::direct(ok),
            t
        )
        .is_err());
        let slow = probe(
            &CheckKind::Script("sleep 5".into()),
            Target::direct(ok),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(slow.contains("timed out"), "{slow}");
    }

    fn udp_echo(prefix: &'static [u8]) -> (SocketAddrV4, UdpSocket) {
        let s = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = s.local_addr().unwrap() else {
            unreachable!()
        };
        let server = s.try_clone().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while let Ok((n, peer)) = server.recv_from(&mut buf) {
                let mut answer = prefix.to_vec();
                answer.extend_from_slice(&buf[..n]);
                let _ = server.send_to(&answer, peer);
            }
        });
        (addr, s)
    }

    #[test]
    fn udp_probe_needs_an_answer_with_the_expected_text() {
        let t = Duration::from_millis(500);
        let (echo, _keep) = udp_echo(b"rs1 ");
        let kind = |expect: Option<&str>| CheckKind::Udp {
            payload: b"ping".to_vec(),
            expect: expect.map(|e| e.as_bytes().to_vec()),
        };
        assert_eq!(probe(&kind(None), Target::direct(echo), t), Ok(()));
        assert_eq!(
            probe(&kind(Some("rs1 ping")), Target::direct(echo), t),
            Ok(())
        );
        let e = probe(&kind(Some("pong")), Target::direct(echo), t).unwrap_err();
        assert!(e.contains("lacks \"pong\""), "{e}");
        // Nobody on the port: the kernel's port unreachable refuses it.
        let closed = {
            let s = UdpSocket::bind("127.0.0.1:0").unwrap();
            let SocketAddr::V4(a) = s.local_addr().unwrap() else {
                unreachable!()
            };
            a
        };
        let e = probe(&kind(None), Target::direct(closed), t).unwrap_err();
        assert!(e.contains("refused"), "{e}");
        // Someone who never answers: a timeout.
        let silent = UdpSocket::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(quiet) = silent.local_addr().unwrap() else {
            unreachable!()
        };
        let e = probe(
            &kind(None),
            Target::direct(quiet),
            Duration::from_millis(200),
        )
        .unwrap_err();
        assert!(e.contains("timed out"), "{e}");
    }

    #[test]
    fn echo_request_checksum_verifies() {
        let m = echo_request(0x1234, 7, b"abc");
        assert_eq!((m[0], m[1], &m[4..8]), (8, 0, &[0x12, 0x34, 0, 7][..]));
        assert_eq!(
            internet_checksum(&m),
            0,
            "a message with its checksum sums to zero"
        );
    }

    #[test]
    fn icmp_probe_gets_an_echo_reply_from_loopback() {
        // rvsd runs as root; so do these tests (a raw socket if no ping socket).
        let t = Duration::from_secs(1);
        assert_eq!(
            probe(
                &CheckKind::Icmp,
                Target::direct(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
                t
            ),
            Ok(())
        );
        // Several at once (one thread each, as the checkers) all succeed.
        let all: Vec<_> = (0..4)
            .map(|_| {
                std::thread::spawn(move || {
                    probe(
                        &CheckKind::Icmp,
                        Target::direct(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0)),
                        t,
                    )
                })
            })
            .collect();
        for h in all {
            assert_eq!(h.join().unwrap(), Ok(()));
        }
        // (Silence is tested end to end: no address is sure to be silent here.)
    }

    #[test]
    fn raw_replies_are_taken_from_the_target_only() {
        let mut pkt = vec![
            0x45, 0, 0, 36, 0, 0, 0, 0, 64, 1, 0, 0, 10, 77, 0, 11, 10, 77, 0, 2,
        ];
        pkt.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 7, 1, 2, 3, 4, 5, 6, 7, 8]);
        let from = Ipv4Addr::new(10, 77, 0, 11);
        assert_eq!(
            icmp_message(&pkt, true, from.into()).map(|m| m[0..8].to_vec()),
            Some(vec![0, 0, 0, 0, 0x12, 0x34, 0, 7])
        );
        assert_eq!(
            icmp_message(&pkt, true, Ipv4Addr::new(10, 77, 0, 12).into()),
            None,
            "another source"
        );
        assert_eq!(
            icmp_message(&pkt[..24], true, from.into()),
            None,
            "truncated"
        );
        assert_eq!(
            icmp_message(&pkt, false, from.into()),
            Some(&pkt[..]),
            "a ping socket hands over the message only"
        );
    }

    #[test]
    fn probes_reach_ipv6_targets() {
        let t = Duration::from_secs(2);
        let l = TcpListener::bind("[::1]:0").unwrap();
        let addr = l.local_addr().unwrap();
        assert!(addr.is_ipv6());
        assert_eq!(probe(&CheckKind::Tcp, Target::direct(addr), t), Ok(()));
        let u = UdpSocket::bind("[::1]:0").unwrap();
        let echo = u.local_addr().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            if let Ok((n, from)) = u.recv_from(&mut buf) {
                let _ = u.send_to(&buf[..n], from);
            }
        });
        let kind = CheckKind::Udp {
            payload: b"ping6".to_vec(),
            expect: Some(b"ping6".to_vec()),
        };
        assert_eq!(probe(&kind, Target::direct(echo), t), Ok(()));
        let lo6 = SocketAddr::new(std::net::Ipv6Addr::LOCALHOST.into(), 0);
        assert_eq!(
            probe(&CheckKind::Icmp, Target::direct(lo6), t),
            Ok(()),
            "ICMPv6 echo from ::1"
        );
    }
}
