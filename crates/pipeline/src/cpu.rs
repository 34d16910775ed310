//! This process's CPU time, from `/proc/self/stat` (Linux): what benches and load tests
//! divide by the work done (CPU per participant, per frame).
//!
//! ```
//! let before = wavecast_pipeline::cpu::process_cpu_seconds();
//! // … the work being measured …
//! let used = wavecast_pipeline::cpu::process_cpu_seconds() - before;
//! assert!(used >= 0.0);
//! ```

use std::sync::OnceLock;

/// CPU seconds this process used so far (user + system, all threads); 0 where `/proc` is
/// missing.
pub fn process_cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / clock_ticks()
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 when that cannot run).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn cpu_time_grows_with_work() {
        // Work until the counter moves (an outcome), not for a wall-clock time the scheduler
        // may not give us: on a loaded machine 300 ms of wall time can be less than one tick.
        let before = super::process_cpu_seconds();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let mut x = 0u64;
        while super::process_cpu_seconds() <= before {
            assert!(
                std::time::Instant::now() < deadline,
                "no CPU time counted after 60 s of work"
            );
            for i in 0..100_000u64 {
                x = std::hint::black_box(x ^ i).rotate_left(1);
            }
        }
        std::hint::black_box(x);
    }
}
