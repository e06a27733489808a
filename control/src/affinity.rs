//! Where rvsd's own threads run: the serving thread (control socket and
//! `/metrics`, see `serve`) and the health checkers are pinned to one CPU
//! that no worker polls on, so they never take a worker's core.
//!
//! The CPU is chosen once at start-up ([`choose`]): the main lcore's CPU
//! if no worker shares it, else the first CPU without a worker. Workers'
//! CPUs come from `[dpdk] lcore_map` (`LCORE@CPU,...`) or, without one,
//! are their lcore numbers (EAL's `-l`). When every CPU has a worker,
//! nothing is pinned and the threads run where the kernel puts them. The
//! control loop itself runs on the main lcore, where EAL pinned it.

use std::sync::OnceLock;

use core_affinity::CoreId;

static CONTROL_CPU: OnceLock<Option<usize>> = OnceLock::new();

/// Where the lcores are, as the config says (`[dpdk] main_lcore`,
/// `lcore_map`, `[dataplane] worker_lcores`).
#[derive(Debug, Clone, Copy)]
pub struct Lcores<'a> {
    /// The main lcore.
    pub main: u32,
    /// The worker lcores.
    pub workers: &'a [u32],
    /// `LCORE@CPU,...`, if given.
    pub map: Option<&'a str>,
}

/// The CPU each lcore runs on (main lcore first, then the workers), as
/// EAL places them.
#[must_use]
pub fn lcore_cpus(l: Lcores<'_>) -> Vec<(u32, usize)> {
    let lcores = std::iter::once(l.main).chain(l.workers.iter().copied());
    let map: Vec<(u32, usize)> = l
        .map
        .unwrap_or("")
        .split(',')
        .filter_map(|e| {
            let (l, c) = e.split_once('@')?;
            Some((l.trim().parse().ok()?, c.trim().parse().ok()?))
        })
        .collect();
    lcores
        .map(|l| {
            let cpu = map
                .iter()
                .find(|(ml, _)| *ml == l)
                .map_or(l as usize, |(_, c)| *c);
            (l, cpu)
        })
        .collect()
}

/// The CPU for rvsd's own threads: the main lcore's if no worker runs
/// there, else the first of `cpus` without a worker; `None` if every CPU
/// has one.
#[must_use]
pub fn control_cpu(l: Lcores<'_>, cpus: &[usize]) -> Option<usize> {
    let placed = lcore_cpus(l);
    let workers: Vec<usize> = placed.iter().skip(1).map(|(_, c)| *c).collect();
    let main = placed.first().map(|(_, c)| *c);
    main.filter(|m| !workers.contains(m) && cpus.contains(m))
        .or_else(|| cpus.iter().copied().find(|c| !workers.contains(c)))
}

/// Chooses the CPU for rvsd's own threads (once, at start-up) and says
/// which.
pub fn choose(l: Lcores<'_>) {
    let cpus: Vec<usize> = core_affinity::get_core_ids()
        .unwrap_or_default()
        .iter()
        .map(|c| c.id)
        .collect();
    let chosen = control_cpu(l, &cpus);
    match chosen {
        Some(c) => {
            eprintln!("rvsd: serving and health-check threads run on CPU {c} (no worker there)")
        }
        None => eprintln!(
            "rvsd: note: every CPU has a worker; serving and health-check threads are not pinned"
        ),
    }
    let _ = CONTROL_CPU.set(chosen);
}

/// Pins the calling thread to the CPU [`choose`] picked (nothing before
/// `choose`, as in tests and rvs-bench, or when none was free).
pub fn pin_current() {
    if let Some(Some(id)) = CONTROL_CPU.get() {
        // A refusal (a cpuset without that CPU) leaves the thread where it is.
        let _ = core_affinity::set_for_current(CoreId { id: *id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at<'a>(main: u32, workers: &'a [u32], map: Option<&'a str>) -> Lcores<'a> {
        Lcores { main, workers, map }
    }

    #[test]
    fn own_threads_go_where_no_worker_polls() {
        // The lab: main lcore 0, one worker on lcore 1, no map.
        let lab = at(0, &[1], None);
        assert_eq!(lcore_cpus(lab), [(0, 0), (1, 1)]);
        assert_eq!(control_cpu(lab, &[0, 1]), Some(0));
        assert_eq!(control_cpu(lab, &[1]), None, "the only CPU has a worker");
        let mapped = at(1, &[0, 2], Some("1@0,0@1,2@3"));
        assert_eq!(lcore_cpus(mapped), [(1, 0), (0, 1), (2, 3)]);
        assert_eq!(control_cpu(mapped, &[0, 1, 2, 3]), Some(0));
        // The main lcore shares CPU 1 with a worker: the first free CPU.
        let shared = at(1, &[0, 2], Some("1@1,0@1,2@3"));
        assert_eq!(control_cpu(shared, &[0, 1, 2, 3]), Some(0));
        assert_eq!(control_cpu(shared, &[1, 2, 3]), Some(2));
        assert_eq!(control_cpu(shared, &[1, 3]), None);
    }
}
