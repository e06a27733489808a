//! The **pause** method: 1 and 2 workers, each alone on its CPU (the machine
//! has two), with no generator running while they are measured. Each worker
//! polls 128 `net_ring` RX queues. A round: pause every worker (a `Publish`
//! request whose reply channel has no buffer, so the worker publishes its
//! counters and then blocks in the reply until the main lcore takes it), read
//! the counters and the worker's CPU time, refill every queue, resume, sleep
//! while they work, and pause them again before the queues run dry. Windows
//! in which a worker polled an empty set of queues are discarded.

use crate::gen::Traffic;
use crate::lab::{syn_phase, Feeder, Lab, Running, Snap, PAUSE_QUEUES, RING_SLOTS};
use crate::procfs::thread_state;
use crate::Res;
use crossbeam_channel::{bounded, Receiver};
use std::time::{Duration, Instant};

/// Pause-method windows thrown away at the start (warm-up).
const WARM_WINDOWS: usize = 3;

#[derive(Debug, Clone, Default)]
pub(crate) struct PauseRow {
    pub(crate) workers: usize,
    pub(crate) flows: u32,
    pub(crate) traffic: Option<Traffic>,
    /// Per worker: packets (or sessions) per second of its own CPU time.
    pub(crate) rate: Vec<f64>,
    /// Per worker: TSC cycles per packet (or per new session).
    pub(crate) cycles: Vec<f64>,
    /// With two workers, per worker: the rate in the windows it ran alone.
    pub(crate) alone: Vec<f64>,
    pub(crate) windows: usize,
    pub(crate) dry: usize,
    pub(crate) measured_s: f64,
}

impl PauseRow {
    pub(crate) fn total(&self) -> f64 {
        self.rate.iter().sum()
    }

    /// Two workers together against one alone, in the same run.
    pub(crate) fn scaling(&self) -> Option<f64> {
        let alone = self.alone.iter().sum::<f64>() / self.alone.len().max(1) as f64;
        (self.workers == 2 && alone > 0.0).then(|| self.total() / alone)
    }
}

/// Pauses every worker: each publishes and then blocks in the reply until
/// [`resume`]. Returns the reply ends.
pub(crate) fn pause(running: &[Running]) -> Res<Vec<Receiver<()>>> {
    let all: Vec<usize> = (0..running.len()).collect();
    Ok(pause_some(running, &all)?
        .into_iter()
        .map(|(_, a)| a)
        .collect())
}

/// Pauses the workers `which` (indices into `running`).
fn pause_some(running: &[Running], which: &[usize]) -> Res<Vec<(usize, Receiver<()>)>> {
    let mut acks = Vec::new();
    for &w in which {
        let (tx, rx) = bounded(0);
        running[w].ask_publish(tx)?;
        acks.push((w, rx));
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    for &w in which {
        while thread_state(running[w].tid)? != 'S' {
            if Instant::now() > deadline {
                return Err(format!("worker on lcore {} did not pause", running[w].lcore).into());
            }
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    Ok(acks)
}

pub(crate) fn resume(acks: Vec<Receiver<()>>) -> Res<()> {
    for a in acks {
        a.recv_timeout(Duration::from_secs(2))
            .map_err(|_| "a paused worker did not resume")?;
    }
    Ok(())
}

/// The pause method: see the module documentation.
pub(crate) fn pause_run(
    lab: &mut Lab,
    workers: usize,
    flows: u32,
    traffic: Traffic,
    capacity: u32,
    wall: Duration,
) -> Res<PauseRow> {
    let (running, mut feeders) = lab.start(workers, PAUSE_QUEUES, capacity, true)?;
    let result = pause_inner(lab, &running, &mut feeders, flows, traffic, capacity, wall);
    drop(feeders);
    lab.stop(running)?;
    result
}

fn pause_inner(
    lab: &Lab,
    running: &[Running],
    feeders: &mut [Feeder],
    flows: u32,
    traffic: Traffic,
    capacity: u32,
    wall: Duration,
) -> Res<PauseRow> {
    let workers = running.len();
    if traffic == Traffic::Syn {
        for f in feeders.iter_mut() {
            f.gen.traffic = Traffic::Syn;
            f.limit = u64::from(capacity) * 9 / 10;
        }
    } else {
        syn_phase(running, feeders, flows)?;
    }
    // Reply ends of the workers that are paused now.
    let mut held: Vec<Option<Receiver<()>>> = (0..workers).map(|_| None).collect();
    let result = pause_rounds(lab, running, feeders, &mut held, traffic, wall);
    for h in held.into_iter().flatten() {
        resume(vec![h])?;
    }
    result.map(|r| PauseRow { flows, ..r })
}

/// The rounds of the pause method. With two workers, windows rotate between
/// both running and each running alone (the other stays paused), so the
/// scaling is measured within one run.
fn pause_rounds(
    lab: &Lab,
    running: &[Running],
    feeders: &mut [Feeder],
    held: &mut [Option<Receiver<()>>],
    traffic: Traffic,
    wall: Duration,
) -> Res<PauseRow> {
    let hz = lab.tsc_hz as f64;
    let workers = running.len();
    let kinds: Vec<Option<usize>> = if workers == 2 {
        vec![None, Some(0), Some(1)]
    } else {
        vec![None]
    };
    let cap_pkts = (PAUSE_QUEUES * RING_SLOTS) as f64;
    let mut rate_guess = 20e6f64;
    // Per worker (work, CPU ns): windows with every worker running, and alone.
    let (mut together, mut alone) = (vec![(0u64, 0u64); workers], vec![(0u64, 0u64); workers]);
    let (mut windows, mut dry) = (0usize, 0usize);
    let mut prev: Option<Vec<Snap>> = None;
    let mut base: Option<Vec<Snap>> = None;
    let mut ran: Option<usize> = None;
    let start = Instant::now();
    let mut round = 0usize;
    loop {
        let to_pause: Vec<usize> = (0..workers).filter(|w| held[*w].is_none()).collect();
        for (w, ack) in pause_some(running, &to_pause)? {
            held[w] = Some(ack);
        }
        let snaps: Vec<Snap> = running.iter().map(Running::read).collect::<Res<_>>()?;
        let b = base.get_or_insert_with(|| snaps.clone());
        for (w, (s, b)) in snaps.iter().zip(b.iter()).enumerate() {
            if let Some(d) = s.dropped_since(b) {
                return Err(format!("pause method: worker {w} dropped: {d}").into());
            }
            if s.redirected != b.redirected {
                return Err(format!("pause method: worker {w} redirected packets (flows not steered to their owner)").into());
            }
        }
        if let Some(p) = &prev {
            let active: Vec<usize> = to_pause;
            let mut fastest = 0f64;
            let mut all_busy = true;
            for &w in &active {
                let (rx, c) = (snaps[w].rx - p[w].rx, snaps[w].cpu_ns - p[w].cpu_ns);
                fastest = fastest.max(rx as f64 / (c.max(1) as f64 / 1e9));
                all_busy &= snaps[w].empty == p[w].empty && (rx as f64) < 0.95 * cap_pkts;
            }
            if round > WARM_WINDOWS {
                if all_busy {
                    windows += 1;
                    for &w in &active {
                        let (s, p) = (&snaps[w], &p[w]);
                        let acc = if ran.is_some() && workers > 1 {
                            &mut alone[w]
                        } else {
                            &mut together[w]
                        };
                        acc.0 += if traffic == Traffic::Syn {
                            s.created - p.created
                        } else {
                            s.tx - p.tx
                        };
                        acc.1 += s.cpu_ns - p.cpu_ns;
                    }
                } else {
                    dry += 1;
                }
            }
            if fastest > 0.0 {
                rate_guess = fastest;
            }
        }
        prev = Some(snaps);
        // At least `wall` and 8 usable windows; past 4 x `wall` two will do;
        // past 20 x `wall`, give up.
        let t = start.elapsed();
        let enough = (t >= wall && windows >= 8 * kinds.len())
            || (t >= 4 * wall && windows >= 2 * kinds.len())
            || t >= 20 * wall;
        if enough {
            break;
        }
        ran = kinds[round % kinds.len()];
        let next: Vec<usize> = ran.map_or_else(|| (0..workers).collect(), |w| vec![w]);
        let mut added = 0u64;
        for &w in &next {
            added += feeders[w].fill_all()?;
        }
        for &w in &next {
            if let Some(ack) = held[w].take() {
                resume(vec![ack])?;
            }
        }
        // Nothing added: the generator is spent (the end), or the workers
        // to run have not drained their queues since they last ran (they
        // got no CPU: a loaded machine). Then they run again, and the
        // window after it shows whether they worked.
        if added == 0 && next.iter().all(|&w| feeders[w].exhausted()) {
            break;
        }
        let sleep = (0.5 * cap_pkts / rate_guess - 0.0012).clamp(0.0003, 0.05);
        std::thread::sleep(Duration::from_secs_f64(sleep));
        round += 1;
    }
    if windows == 0 {
        return Err(format!("pause method: no usable window ({dry} ran dry)").into());
    }
    let rate = |v: &[(u64, u64)]| {
        v.iter()
            .map(|(n, c)| *n as f64 / *c.max(&1) as f64 * 1e9)
            .collect::<Vec<f64>>()
    };
    Ok(PauseRow {
        workers,
        traffic: Some(traffic),
        rate: rate(&together),
        cycles: together
            .iter()
            .map(|(n, c)| *c as f64 * hz / 1e9 / *n.max(&1) as f64)
            .collect(),
        alone: if workers > 1 {
            rate(&alone)
        } else {
            Vec::new()
        },
        windows,
        dry,
        measured_s: together
            .iter()
            .chain(&alone)
            .map(|(_, c)| *c as f64 / 1e9)
            .sum::<f64>()
            / workers as f64,
        ..PauseRow::default()
    })
}
