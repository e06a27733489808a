//! `/proc` readings: resident memory, thread ids, a thread's CPU time and
//! scheduler state, the CPU model.

use crate::Res;

// ---------------------------------------------------------------------------
// /proc readings.

pub(crate) fn rss_bytes() -> Res<u64> {
    let s = std::fs::read_to_string("/proc/self/status")?;
    let kb = s
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .ok_or("no VmRSS in /proc/self/status")?;
    Ok(kb * 1024)
}

/// The calling thread's id (`/proc/thread-self` -> `PID/task/TID`).
pub(crate) fn thread_id() -> u32 {
    std::fs::read_link("/proc/thread-self")
        .ok()
        .and_then(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or(0)
}

/// Nanoseconds thread `tid` of this process has run on a CPU.
pub(crate) fn cpu_ns(tid: u32) -> Res<u64> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/schedstat"))?;
    Ok(s.split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .ok_or("bad schedstat")?)
}

/// Scheduler state letter of thread `tid` (`R`, `S`, ...).
pub(crate) fn thread_state(tid: u32) -> Res<char> {
    let s = std::fs::read_to_string(format!("/proc/self/task/{tid}/stat"))?;
    let after = s.rfind(')').map(|i| &s[i + 1..]).ok_or("bad stat")?;
    Ok(after.trim_start().chars().next().ok_or("bad stat")?)
}

pub(crate) fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| "unknown CPU".into())
}
