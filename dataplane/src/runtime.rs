//! Starting the workers: [`start`] turns a [`Plan`] (each worker's queues
//! and pipeline, on its lcore) into running [`Worker`]s and gives back
//! [`Handles`] to talk to them.
//!
//! The runtime owns what every worker set-up shares, so that callers
//! (rvsd, rvs-bench) never assemble a [`Worker`] themselves: the
//! worker-to-worker redirect rings (one per ordered pair), the request
//! channel of each worker, the event channel (lossy, bounded) and the
//! channel replaced snapshots come back on (unbounded: see
//! [`crate::worker::Retired`]), and each worker's published counters
//! ([`WorkerShared`]).

use std::sync::atomic::Ordering;
use std::sync::Arc;

use crossbeam_channel::{bounded, unbounded, Receiver, Sender};

use crate::dpdk::{
    Eal, LaunchError, LcoreId, MbufRing, Mempool, PortId, RingError, RxQueue, TxQueue,
};
use crate::pipeline::Pipeline;
use crate::worker::{Event, HeldFrames, Idle, Request, Retired, Worker, WorkerShared};

/// Requests a worker's channel holds before control's sends wait.
pub const REQUEST_DEPTH: usize = 64;
/// Events (neighbour reports) the shared channel holds; more are dropped.
pub const EVENT_DEPTH: usize = 4096;

/// One worker to start.
pub struct WorkerPlan {
    /// The lcore it runs on.
    pub lcore: LcoreId,
    /// Its RX queue on each port, in port order.
    pub rx: Vec<RxQueue>,
    /// Its TX queue on each port, in port order.
    pub tx: Vec<TxQueue>,
    /// DPDK id of each port, in port order.
    pub port_ids: Vec<PortId>,
    /// Its RX queue on each interface's exception-path TAP, if any (see
    /// [`Worker::tap_rx`]).
    pub tap_rx: Vec<Option<RxQueue>>,
    /// Its TX queue on each interface's TAP, if any.
    pub tap_tx: Vec<Option<TxQueue>>,
    /// Its packet path.
    pub pipeline: Pipeline,
    /// Run on the lcore just before the loop (rvs-bench learns the
    /// thread's id this way).
    pub on_start: Option<Box<dyn FnOnce() + Send>>,
}

/// What to start.
pub struct Plan {
    /// The workers, in order: a worker's index here is the one its
    /// pipeline was built with (redirects address workers by it).
    pub workers: Vec<WorkerPlan>,
    /// Pool for frames workers originate (ARP, NS, announcements).
    pub pool: Arc<Mempool>,
    /// Idle policy of every worker.
    pub idle: Idle,
    /// Real servers the per-worker counter arrays have room for.
    pub rs_count: usize,
    /// Redirect rings are named `{ring_prefix}_{from}_{to}` (DPDK ring
    /// names are global to the process).
    pub ring_prefix: String,
    /// Slots in each redirect ring.
    pub ring_size: u32,
}

/// A running worker, seen from control.
#[derive(Debug)]
pub struct WorkerHandle {
    /// The lcore it runs on.
    pub lcore: u32,
    /// Its published counters (and its stop flag).
    pub shared: Arc<WorkerShared>,
    /// Where requests for it go.
    pub requests: Sender<Request>,
}

/// The running workers and what they send control.
#[derive(Debug)]
pub struct Handles {
    /// One per worker, in the plan's order.
    pub workers: Vec<WorkerHandle>,
    /// Neighbour events from all workers.
    pub events: Receiver<Event>,
    /// Snapshots the workers replaced: dropping them here frees them.
    pub retired: Receiver<Retired>,
}

impl Handles {
    /// Asks every worker to stop (after its current iteration); wait for
    /// them with [`Eal::wait_all`] or [`Eal::wait`].
    pub fn stop(&self) {
        for w in &self.workers {
            w.shared.stop.store(true, Ordering::Relaxed);
        }
    }
}

/// Why the workers could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A redirect ring could not be created.
    #[error("cannot create a redirect ring: {0}")]
    Ring(RingError),
    /// A worker could not be launched (those launched before it run on:
    /// stop them through the error's handles).
    #[error("cannot launch worker on lcore {0}: {1}")]
    Launch(u32, LaunchError, Handles),
}

/// Creates the redirect rings and channels and launches every worker of
/// `plan` on its lcore.
///
/// # Errors
/// [`StartError`] when a ring cannot be created (nothing runs yet) or a
/// worker cannot be launched.
pub fn start(eal: &Eal, plan: Plan) -> Result<Handles, StartError> {
    let n = plan.workers.len();
    // rings[i][j]: worker i -> worker j.
    let mut rings: Vec<Vec<Option<Arc<MbufRing>>>> = vec![vec![None; n]; n];
    for (i, row) in rings.iter_mut().enumerate() {
        for (j, slot) in row.iter_mut().enumerate() {
            if i != j {
                let name = format!("{}_{i}_{j}", plan.ring_prefix);
                *slot = Some(Arc::new(
                    MbufRing::create(&name, plan.ring_size, -1).map_err(StartError::Ring)?,
                ));
            }
        }
    }
    let (events_tx, events) = bounded(EVENT_DEPTH);
    let (retired_tx, retired) = unbounded();
    let mut handles = Handles {
        workers: Vec::with_capacity(n),
        events,
        retired,
    };
    for (wi, w) in plan.workers.into_iter().enumerate() {
        let shared = Arc::new(WorkerShared::new(plan.rs_count));
        let (req_tx, req_rx) = bounded(REQUEST_DEPTH);
        let worker = Worker {
            rx: w.rx,
            tx: w.tx,
            port_ids: w.port_ids,
            tap_rx: w.tap_rx,
            tap_tx: w.tap_tx,
            redirect_out: rings[wi].clone(),
            redirect_in: rings.iter().filter_map(|row| row[wi].clone()).collect(),
            events: events_tx.clone(),
            retired: retired_tx.clone(),
            pool: Arc::clone(&plan.pool),
            pipeline: w.pipeline,
            shared: Arc::clone(&shared),
            requests: req_rx,
            idle: plan.idle,
            tsc_hz: eal.tsc_hz(),
            held: HeldFrames::default(),
            frag_held: crate::frag_hold::FragHold::default(),
        };
        let on_start = w.on_start;
        let launched = eal.launch(
            w.lcore,
            Box::new(move || {
                if let Some(f) = on_start {
                    f();
                }
                worker.run()
            }),
        );
        if let Err(e) = launched {
            return Err(StartError::Launch(w.lcore.0, e, handles));
        }
        handles.workers.push(WorkerHandle {
            lcore: w.lcore.0,
            shared,
            requests: req_tx,
        });
    }
    Ok(handles)
}
