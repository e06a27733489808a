//! Schedulers: which real server gets a new connection.
//!
//! A scheduler is built from the service's real servers in the published
//! tables and keeps its own per-worker state (the round-robin cursor). Only
//! round robin exists so far; the kernel's other policies follow the same
//! shape, one file each, registered by name in [`SchedKind`].

pub mod rr;

/// What a scheduler needs to know of a real server.
pub trait Candidate {
    /// Weight; 0 means "no new connections".
    fn weight(&self) -> u32;
}

/// The scheduling policies, by their ipvsadm names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedKind {
    /// Round robin (`rr`).
    RoundRobin,
}

impl SchedKind {
    /// Parses an ipvsadm scheduler name.
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "rr" => Some(Self::RoundRobin),
            _ => None,
        }
    }

    /// The ipvsadm name.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::RoundRobin => "rr",
        }
    }
}

/// Per-worker scheduler state for one service.
#[derive(Debug, Clone)]
pub enum Scheduler {
    /// Round robin.
    RoundRobin(rr::RoundRobin),
}

impl Scheduler {
    /// Fresh state for `kind`.
    #[must_use]
    pub fn new(kind: SchedKind) -> Self {
        match kind {
            SchedKind::RoundRobin => Self::RoundRobin(rr::RoundRobin::default()),
        }
    }

    /// Picks the index of a server in `servers`, or `None` if none can take
    /// a new connection.
    pub fn pick<C: Candidate>(&mut self, servers: &[C]) -> Option<usize> {
        match self {
            Self::RoundRobin(r) => r.pick(servers),
        }
    }
}
