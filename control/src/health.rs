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
//! Kinds: `tcp` (connect), `http` (GET, expected status), `script` (exit
//! code 0). UDP and ICMP checks are not there yet and are refused by config
//! validation.

use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::Sender;

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
    /// A command (run by `sh -c`) with the server's address and port as
    /// `$1 $2`; exit code 0 is success.
    Script(String),
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
    /// Where new connections go when every server is down.
    pub sorry_server: Option<SocketAddrV4>,
}

/// A state change, as the control loop receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    /// The service (VIP, protocol).
    pub service: (SocketAddrV4, u8),
    /// The server.
    pub server: SocketAddrV4,
    /// Now up?
    pub up: bool,
    /// Why (the last probe's result).
    pub detail: String,
}

/// One probe of `server` from the appliance.
///
/// # Errors
/// Why the probe failed, in words.
pub fn probe(kind: &CheckKind, server: SocketAddrV4, timeout: Duration) -> Result<(), String> {
    match kind {
        CheckKind::Tcp => connect(server, timeout).map(drop),
        CheckKind::Http { path, status } => {
            let deadline = Instant::now() + timeout;
            let mut s = connect(server, timeout)?;
            let left = || deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(1));
            s.set_write_timeout(Some(left())).map_err(|e| e.to_string())?;
            write!(s, "GET {path} HTTP/1.0\r\nHost: {}\r\nUser-Agent: rvsd-health\r\nConnection: close\r\n\r\n", server.ip())
                .map_err(|e| format!("send: {e}"))?;
            let mut head = [0u8; 64];
            let mut got = 0;
            while got < 12 {
                s.set_read_timeout(Some(left())).map_err(|e| e.to_string())?;
                match s.read(&mut head[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    // A signal meant for another thread: try again.
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("receive: {e}")),
                }
            }
            let line = String::from_utf8_lossy(&head[..got]);
            let code: Option<u16> = line.split_whitespace().nth(1).and_then(|c| c.parse().ok());
            match code {
                Some(c) if c == *status => Ok(()),
                Some(c) => Err(format!("HTTP status {c}, expected {status}")),
                None => Err(format!("not an HTTP answer: {line:?}")),
            }
        }
        CheckKind::Script(cmd) => {
            let mut child = std::process::Command::new("sh")
                .args(["-c", cmd, "rvsd-check", &server.ip().to_string(), &server.port().to_string()])
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

/// Connects, retrying a connect interrupted by a signal.
fn connect(server: SocketAddrV4, timeout: Duration) -> Result<TcpStream, String> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("connect: timed out".into());
        }
        match TcpStream::connect_timeout(&SocketAddr::V4(server), left) {
            Ok(s) => return Ok(s),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(format!("connect: {e}")),
        }
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
        Self { up: true, run: 0 }
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
}

impl Drop for Checker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts probing `server` of `service`, reporting changes on `changes`.
#[must_use]
pub fn spawn(check: HealthCheck, service: (SocketAddrV4, u8), server: SocketAddrV4, changes: Sender<Change>) -> Checker {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&stop);
    let name = format!("health {server}");
    let _ = std::thread::Builder::new().name(name).spawn(move || {
        let nap = |d: Duration| {
            let until = Instant::now() + d;
            while Instant::now() < until && !flag.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(50).min(until.saturating_duration_since(Instant::now())));
            }
        };
        nap(check.delay);
        let mut streak = Streak::new();
        while !flag.load(Ordering::Relaxed) {
            let started = Instant::now();
            let result = probe(&check.kind, server, check.timeout);
            if let Some(up) = streak.record(result.is_ok(), check.rise, check.fall) {
                let detail = match &result {
                    Ok(()) => "ok".to_string(),
                    Err(e) => e.clone(),
                };
                if changes.send(Change { service, server, up, detail }).is_err() {
                    return;
                }
            }
            nap(check.interval.saturating_sub(started.elapsed()));
        }
    });
    Checker { stop }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use super::*;

    #[test]
    fn streak_needs_fall_failures_then_rise_successes() {
        let mut s = Streak::new();
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None, "a success resets the failure run");
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(false, 2, 3), Some(false));
        assert_eq!(s.record(false, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), None);
        assert_eq!(s.record(true, 2, 3), Some(true));
    }

    fn local_http(status: &'static str) -> SocketAddrV4 {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else { unreachable!() };
        std::thread::spawn(move || {
            for s in l.incoming().flatten().take(4) {
                let mut s = s;
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = write!(s, "HTTP/1.0 {status}\r\n\r\nbody");
            }
        });
        addr
    }

    #[test]
    fn probes_against_real_sockets() {
        let t = Duration::from_secs(2);
        let ok = local_http("200 OK");
        assert_eq!(probe(&CheckKind::Tcp, ok, t), Ok(()));
        assert_eq!(probe(&CheckKind::Http { path: "/".into(), status: 200 }, ok, t), Ok(()));
        let bad = local_http("503 Service Unavailable");
        let e = probe(&CheckKind::Http { path: "/".into(), status: 200 }, bad, t).unwrap_err();
        assert!(e.contains("503"), "{e}");
        // A port nobody listens on.
        let closed = {
            let l = TcpListener::bind("127.0.0.1:0").unwrap();
            let SocketAddr::V4(a) = l.local_addr().unwrap() else { unreachable!() };
            a
        };
        assert!(probe(&CheckKind::Tcp, closed, t).unwrap_err().starts_with("connect"));
        assert_eq!(probe(&CheckKind::Script("exit 0".into()), ok, t), Ok(()));
        assert!(probe(&CheckKind::Script("test \"$2\" = 1".into()), ok, t).is_err());
        let slow = probe(&CheckKind::Script("sleep 5".into()), ok, Duration::from_millis(200)).unwrap_err();
        assert!(slow.contains("timed out"), "{slow}");
    }
}
