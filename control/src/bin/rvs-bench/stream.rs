//! The **stream** method: the real [`dataplane::worker::Worker::run`] on lcore 1
//! (CPU 1), built as rvsd builds it, and a generator on the main lcore (CPU
//! 0). Generator TX queue `net_ringD/q` -> the same ring -> worker RX queue
//! `net_ringD/q`; the worker transmits on `net_null0` (TX frees the mbufs, as
//! a NIC's TX completion would). First SYNs for N distinct flows (new
//! connections per second), then 64-byte ACK/data frames over those N
//! established flows, half client->VIP, half RS->local address, in a fixed
//! pseudo-random flow order. Mpps is wall-clock; cycles/packet is the worker
//! thread's own CPU time (`/proc/self/task/TID/schedstat`) in TSC cycles per
//! packet. On a 2-CPU VM this measures the hand-over between the CPUs more
//! than rvs.

use crate::gen::Traffic;
use crate::lab::{secs, syn_phase, Feeder, Lab, Running};
use crate::Res;
use dataplane::dpdk::MbufBatch;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Default)]
pub(crate) struct StreamRow {
    pub(crate) flows: u32,
    /// Frames per second the generator writes when it sends nothing (allocate,
    /// write, free on its own CPU).
    pub(crate) gen_alone: f64,
    pub(crate) syn_rate: f64,
    pub(crate) syn_cycles: f64,
    pub(crate) mpps: f64,
    pub(crate) cycles: f64,
    pub(crate) per_poll: f64,
    pub(crate) empty_pct: f64,
}

/// One worker fed by the generator on the main lcore (the "stream" method).
pub(crate) fn stream(lab: &mut Lab, flows: u32, run: Duration) -> Res<StreamRow> {
    let (running, mut feeders) = lab.start(1, 1, flows, false)?;
    let result = stream_inner(lab, &running, &mut feeders, flows, run);
    drop(feeders);
    lab.stop(running)?;
    result
}

/// How fast the generator writes frames with no worker involved (0.3 s).
fn generator_alone(f: &mut Feeder) -> f64 {
    let t = Instant::now();
    let mut k = 0u64;
    let mut b = MbufBatch::new();
    while t.elapsed() < Duration::from_millis(300) {
        for _ in 0..64 {
            if f.pool.alloc_fill(&mut b) {
                let len = f.gen.frame_len();
                for m in b.iter_mut() {
                    if m.set_len(len) {
                        f.gen.write(m.data_mut());
                    }
                }
                k += b.len() as u64;
                b.clear();
            }
        }
    }
    k as f64 / t.elapsed().as_secs_f64()
}

/// The stream method with frames the worker drops at once: how fast the
/// generator and the hand-over between the two CPUs can go at all.
pub(crate) fn stream_ceiling(lab: &mut Lab, run: Duration) -> Res<StreamRow> {
    let (running, mut feeders) = lab.start(1, 1, 1, false)?;
    let result = (|| {
        let (w, f) = (&running[0], &mut feeders[0]);
        f.gen.traffic = Traffic::Junk;
        let gen_alone = generator_alone(f);
        f.pump_for(Duration::from_millis(300));
        let s0 = f.snapshot(w)?;
        f.pump_for(run);
        let s1 = f.snapshot(w)?;
        let (rx, polls) = ((s1.rx - s0.rx) as f64, (s1.polls - s0.polls).max(1) as f64);
        Ok(StreamRow {
            flows: 0,
            gen_alone,
            mpps: rx / secs(s1.tsc - s0.tsc, lab.tsc_hz) / 1e6,
            cycles: (s1.cpu_ns - s0.cpu_ns) as f64 * lab.tsc_hz as f64 / 1e9 / rx,
            per_poll: rx / polls,
            empty_pct: 100.0 * (s1.empty - s0.empty) as f64 / polls,
            ..StreamRow::default()
        })
    })();
    drop(feeders);
    lab.stop(running)?;
    result
}

fn stream_inner(
    lab: &Lab,
    running: &[Running],
    feeders: &mut [Feeder],
    flows: u32,
    run: Duration,
) -> Res<StreamRow> {
    let hz = lab.tsc_hz;
    let (b, a, t0) = syn_phase(running, feeders, flows)?;
    let (w, f) = (&running[0], &mut feeders[0]);
    let syn_rate = f64::from(flows) / secs(a[0].tsc - t0, hz);
    let syn_cycles = (a[0].cpu_ns - b[0].cpu_ns) as f64 * hz as f64 / 1e9 / f64::from(flows);
    // Warm-up: every flow seen in both directions at least once (bounded).
    let warm_until = f.sent + 2 * u64::from(flows);
    let t = Instant::now();
    while (f.sent < warm_until || t.elapsed() < Duration::from_millis(300))
        && t.elapsed() < Duration::from_secs(6)
    {
        f.pump_for(Duration::from_millis(10));
    }
    let gen_alone = generator_alone(f);
    let s0 = f.snapshot(w)?;
    f.pump_for(run);
    let s1 = f.snapshot(w)?;
    if let Some(d) = s1.dropped_since(&a[0]) {
        return Err(format!("established phase ({flows} flows): worker dropped: {d}").into());
    }
    let (rx, polls) = ((s1.rx - s0.rx) as f64, (s1.polls - s0.polls).max(1) as f64);
    Ok(StreamRow {
        flows,
        gen_alone,
        syn_rate,
        syn_cycles,
        mpps: (s1.tx - s0.tx) as f64 / secs(s1.tsc - s0.tsc, hz) / 1e6,
        cycles: (s1.cpu_ns - s0.cpu_ns) as f64 * hz as f64 / 1e9 / rx,
        per_poll: rx / polls,
        empty_pct: 100.0 * (s1.empty - s0.empty) as f64 / polls,
    })
}
