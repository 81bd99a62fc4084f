//! Whether a service's stores are reachable, told by its health service.
//!
//! Beside the service's own names, `grpc.health.v1` answers for `postgres`
//! and `redis`: SERVING while the store answers a probe (every
//! [`PROBE_INTERVAL`]), NOT_SERVING while it does not. The overall status
//! (`""`) and the service's own name stay about the process: probes that
//! took every replica out of rotation while a shared store is down would
//! help no one, whereas replicas that stay answer fast 503s and recover by
//! themselves. Operators (and the gateway's `/healthz/stores`) ask for the
//! store names to see what is down; the `store_up{store}` metric tells
//! the same to Prometheus.

use std::time::Duration;

#[cfg(feature = "postgres")]
use sqlx::PgPool;
#[cfg(feature = "postgres")]
use tonic_health::{ServingStatus, server::HealthReporter};

#[cfg(feature = "postgres")]
use crate::kv::Kv;
use crate::shutdown::Shutdown;

/// The health service name reporting Postgres's reachability.
pub const POSTGRES: &str = "postgres";
/// The health service name reporting Redis's reachability.
pub const REDIS: &str = "redis";

/// How often the stores are probed.
pub const PROBE_INTERVAL: Duration = Duration::from_secs(2);
#[cfg(feature = "postgres")]
const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// The longest a background job waits before looking at its store again
/// while the store is down: it backs off, yet catches up within this once
/// the store is back.
pub const MAX_OUTAGE_PAUSE: Duration = Duration::from_secs(5);

/// How long a background job waits after its store failed `failures` times
/// in a row: `interval` while all is well, then doubling up to
/// [`MAX_OUTAGE_PAUSE`].
pub fn outage_pause(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    let doubled = interval.saturating_mul(2u32.saturating_pow(failures.min(16)));
    doubled.min(MAX_OUTAGE_PAUSE).max(interval)
}

/// When a periodic job (expiry, retention) runs its next pass, after
/// `failures` failed passes in a row: `interval` while all is well; while
/// its store is down, sooner — 2 s, doubling up to [`MAX_OUTAGE_PAUSE`],
/// never later than `interval` — so what came due during an outage is done
/// within seconds of the store's return rather than a whole interval later,
/// without hammering a store that is down.
pub fn next_pass_in(interval: Duration, failures: u32) -> Duration {
    if failures == 0 {
        return interval;
    }
    outage_pause(Duration::from_secs(1), failures).min(interval)
}

/// Runs a periodic job's `pass` now and then on the schedule of
/// [`next_pass_in`] until shutdown; a failed pass is logged under `job`.
pub async fn run_periodically<F, Fut, E>(job: &'static str, interval: Duration, shutdown: Shutdown, mut pass: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    let mut failures = 0;
    loop {
        if shutdown.is_triggered() {
            return;
        }
        // A pass under way finishes: shutdown waits for it.
        match pass().await {
            Ok(()) => failures = 0,
            Err(err) => {
                failures += 1;
                tracing::error!(job, failures, error = %err, "job pass failed; trying again soon");
            }
        }
        tokio::select! {
            () = shutdown.wait() => return,
            () = tokio::time::sleep(next_pass_in(interval, failures)) => {}
        }
    }
}

/// The stores a service depends on.
#[cfg(feature = "postgres")]
#[derive(Clone, Debug)]
pub struct Stores {
    postgres: PgPool,
    redis: Kv,
}

#[cfg(feature = "postgres")]
impl Stores {
    pub fn new(postgres: PgPool, redis: Kv) -> Self {
        Self { postgres, redis }
    }

    async fn postgres_up(&self) -> bool {
        let probe = sqlx::query("SELECT 1").execute(&self.postgres);
        matches!(tokio::time::timeout(PROBE_TIMEOUT, probe).await, Ok(Ok(_)))
    }

    async fn redis_up(&self) -> bool {
        self.redis.is_reachable(PROBE_TIMEOUT).await
    }

    /// Probes both stores until shutdown, reporting each change of
    /// reachability to `health` and the log, and each probe's finding to
    /// the `store_up` metric.
    pub(crate) async fn watch(self, health: HealthReporter, shutdown: Shutdown) {
        let mut reported: [Option<bool>; 2] = [None, None];
        loop {
            let now = [self.postgres_up().await, self.redis_up().await];
            crate::metrics::metrics().record_pool(self.postgres.size(), self.postgres.num_idle());
            for ((name, up), last) in [POSTGRES, REDIS].into_iter().zip(now).zip(&mut reported) {
                crate::metrics::metrics().record_store(name, up);
                if *last == Some(up) {
                    continue;
                }
                if up {
                    tracing::info!(store = name, "store reachable");
                } else {
                    tracing::warn!(store = name, "store unreachable; calls that need it answer UNAVAILABLE");
                }
                let status = if up {
                    ServingStatus::Serving
                } else {
                    ServingStatus::NotServing
                };
                health.set_service_status(name, status).await;
                *last = Some(up);
            }
            tokio::select! {
                () = shutdown.wait() => return,
                () = tokio::time::sleep(PROBE_INTERVAL) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_backs_off_while_its_store_is_down_but_not_for_long() {
        let interval = Duration::from_secs(1);
        assert_eq!(outage_pause(interval, 0), interval);
        assert_eq!(outage_pause(interval, 1), Duration::from_secs(2));
        assert_eq!(outage_pause(interval, 2), Duration::from_secs(4));
        assert_eq!(outage_pause(interval, 40), MAX_OUTAGE_PAUSE);
        // A job that polls rarely anyway never polls more often.
        assert_eq!(outage_pause(Duration::from_secs(60), 3), Duration::from_secs(60));
    }

    #[test]
    fn a_periodic_job_comes_back_soon_after_a_failed_pass_but_never_later_than_usual() {
        let interval = Duration::from_secs(300);
        assert_eq!(next_pass_in(interval, 0), interval);
        assert_eq!(next_pass_in(interval, 1), Duration::from_secs(2));
        assert_eq!(next_pass_in(interval, 2), Duration::from_secs(4));
        assert_eq!(next_pass_in(interval, 9), MAX_OUTAGE_PAUSE);
        // A job that runs every second anyway does not wait longer.
        assert_eq!(next_pass_in(Duration::from_secs(1), 3), Duration::from_secs(1));
    }
}
