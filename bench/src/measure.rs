//! Counting requests and their latencies over a fixed window.

use std::time::{Duration, Instant};

/// Latencies of the requests that succeeded, and how many failed.
#[derive(Debug, Default)]
pub(crate) struct Sample {
    pub(crate) latencies: Vec<Duration>,
    pub(crate) failures: u64,
}

impl Sample {
    pub(crate) fn merge(&mut self, other: Sample) {
        self.latencies.extend(other.latencies);
        self.failures += other.failures;
    }

    pub(crate) fn percentile(&mut self, percentile: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        self.latencies.sort_unstable();
        let index = ((self.latencies.len() as f64 - 1.0) * percentile / 100.0).round() as usize;
        self.latencies[index]
    }
}

/// Runs `operation` in a loop until `deadline`, timing each success.
pub(crate) async fn until<F, Fut>(deadline: Instant, mut operation: F) -> Sample
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut sample = Sample::default();
    while Instant::now() < deadline {
        let started = Instant::now();
        if operation().await {
            sample.latencies.push(started.elapsed());
        } else {
            sample.failures += 1;
        }
    }
    sample
}

/// Peak resident memory (`VmHWM`) of process `pid`, in MiB.
pub(crate) fn peak_rss_mib_of(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

pub(crate) fn millis(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}
