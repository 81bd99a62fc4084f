//! The transactional outbox: effects a state change owes other services,
//! recorded in the same transaction as the change and delivered later.
//!
//! A service writes [`enqueue`] inside the transaction that changes its
//! state, so the effect exists exactly when the change does. A [`Relay`]
//! running in the service then delivers each entry, one at a time, under
//! `FOR UPDATE SKIP LOCKED` (replicas never deliver the same entry at once),
//! retrying with capped exponential backoff for as long as it takes: a
//! receiver being down delays an effect, never drops it. Entries carry an
//! idempotency key the receiver honours, so a redelivery after a crash
//! between "delivered" and "marked delivered" is harmless. The trace context
//! of the request that caused the entry is stored with it, so delivery
//! continues the same trace.
//!
//! Each service that uses it has this table in its migrations:
//!
//! ```sql
//! CREATE TABLE outbox (
//!     id              uuid PRIMARY KEY,
//!     topic           text NOT NULL,
//!     idempotency_key text NOT NULL UNIQUE,
//!     payload         jsonb,
//!     traceparent     text,
//!     attempts        integer NOT NULL DEFAULT 0,
//!     last_error      text,
//!     created_at      timestamptz NOT NULL DEFAULT now(),
//!     next_attempt_at timestamptz NOT NULL DEFAULT now(),
//!     delivered_at    timestamptz
//! );
//! CREATE INDEX outbox_due ON outbox (next_attempt_at) WHERE delivered_at IS NULL;
//! ```

use std::{future::Future, sync::Arc, time::Duration};

use sqlx::{PgConnection, PgPool};
use tokio::sync::Notify;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{shutdown::Shutdown, telemetry};

/// Records an effect to deliver once the surrounding transaction commits.
/// A second entry with the same idempotency key is ignored.
pub async fn enqueue(
    connection: &mut PgConnection,
    topic: &str,
    idempotency_key: &str,
    payload: serde_json::Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO outbox (id, topic, idempotency_key, payload, traceparent) VALUES ($1, $2, $3, $4, $5) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(topic)
    .bind(idempotency_key)
    .bind(payload)
    .bind(telemetry::current_traceparent())
    .execute(connection)
    .await?;
    Ok(())
}

/// One entry to deliver.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub id: Uuid,
    pub topic: String,
    pub idempotency_key: String,
    pub payload: serde_json::Value,
    pub attempts: i32,
    traceparent: Option<String>,
}

/// What delivers entries: one implementation per service, dispatching on
/// `topic`. An error means "try again later", unless it is a [`Rejected`].
pub trait Deliver: Send + Sync + 'static {
    fn deliver(&self, entry: &Entry) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The receiver refused the entry itself (it is malformed), so trying again
/// cannot help. The entry is parked — kept, with its error, never retried —
/// for an operator to look at, rather than retried forever.
#[derive(Debug, thiserror::Error)]
#[error("rejected by the receiver: {0}")]
pub struct Rejected(pub String);

/// A receiver's answer as the relay wants it: INVALID_ARGUMENT means the
/// entry itself is wrong ([`Rejected`], parked), anything else failed is
/// tried again later.
pub fn delivered<T>(answer: Result<T, tonic::Status>) -> anyhow::Result<()> {
    match answer {
        Ok(_) => Ok(()),
        Err(status) if status.code() == tonic::Code::InvalidArgument => {
            Err(Rejected(status.message().to_owned()).into())
        }
        Err(status) => Err(status.into()),
    }
}

/// Wakes the relay right after a commit, so effects leave at once rather
/// than at the next poll.
#[derive(Clone, Debug, Default)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

/// Delivers a service's outbox until shutdown.
#[derive(Debug)]
pub struct Relay<D> {
    pool: PgPool,
    deliver: D,
    waker: Waker,
    poll_interval: Duration,
    max_backoff: Duration,
}

impl<D: Deliver> Relay<D> {
    pub fn new(pool: PgPool, deliver: D, waker: Waker) -> Self {
        Self {
            pool,
            deliver,
            waker,
            poll_interval: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
        }
    }

    /// How often to look for due entries when nothing wakes the relay.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// The longest wait between two attempts at one entry.
    pub fn max_backoff(mut self, backoff: Duration) -> Self {
        self.max_backoff = backoff;
        self
    }

    pub async fn run(self, shutdown: Shutdown) {
        loop {
            if shutdown.is_triggered() {
                return;
            }
            match self.deliver_one().await {
                // Delivered (or failed) one entry: look for the next at once.
                Ok(true) => continue,
                Ok(false) => {}
                Err(err) => tracing::error!(error = format!("{err:#}"), "outbox relay cannot reach its database"),
            }
            tokio::select! {
                () = shutdown.wait() => return,
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(self.poll_interval) => {}
            }
        }
    }

    /// Claims and delivers one due entry; `false` when none is due.
    async fn deliver_one(&self) -> anyhow::Result<bool> {
        let mut tx = self.pool.begin().await?;
        let entry: Option<Entry> = sqlx::query_as(
            "SELECT id, topic, idempotency_key, payload, attempts, traceparent FROM outbox \
             WHERE delivered_at IS NULL AND next_attempt_at <= now() \
             ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED",
        )
        .fetch_optional(&mut *tx)
        .await?;
        let Some(entry) = entry else {
            return Ok(false);
        };
        let span = telemetry::span_continuing("outbox.deliver", entry.traceparent.as_deref());
        span.record("otel.name", format!("outbox.deliver {}", entry.topic));
        let outcome = self.deliver.deliver(&entry).instrument(span.clone()).await;
        match outcome {
            Ok(()) => {
                // The payload may hold secrets (one-time links): keep only
                // the record that the effect happened.
                sqlx::query("UPDATE outbox SET delivered_at = now(), payload = NULL, last_error = NULL WHERE id = $1")
                    .bind(entry.id)
                    .execute(&mut *tx)
                    .await?;
                span.in_scope(
                    || tracing::info!(topic = %entry.topic, key = %entry.idempotency_key, "outbox entry delivered"),
                );
            }
            Err(err) if err.downcast_ref::<Rejected>().is_some() => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, last_error = $2, next_attempt_at = 'infinity' \
                     WHERE id = $1",
                )
                .bind(entry.id)
                .bind(format!("{err:#}"))
                .execute(&mut *tx)
                .await?;
                span.in_scope(|| {
                    tracing::error!(topic = %entry.topic, error = format!("{err:#}"), "outbox entry rejected; parked");
                });
            }
            Err(err) => {
                let attempts = entry.attempts + 1;
                let backoff = backoff(attempts, self.max_backoff);
                sqlx::query(
                    "UPDATE outbox SET attempts = $2, last_error = $3, \
                     next_attempt_at = now() + make_interval(secs => $4) WHERE id = $1",
                )
                .bind(entry.id)
                .bind(attempts)
                .bind(format!("{err:#}"))
                .bind(backoff.as_secs_f64())
                .execute(&mut *tx)
                .await?;
                span.in_scope(|| {
                    tracing::warn!(
                        topic = %entry.topic, attempts, retry_in_secs = backoff.as_secs_f64(),
                        error = format!("{err:#}"), "outbox delivery failed; will retry"
                    );
                });
            }
        }
        tx.commit().await?;
        Ok(true)
    }
}

/// 0.5 s, 1 s, 2 s, … capped at `max`, with up to 20 % jitter so replicas
/// retrying the same receiver do not stampede it.
fn backoff(attempts: i32, max: Duration) -> Duration {
    let exponent = u32::try_from(attempts.clamp(1, 30) - 1).unwrap_or(0);
    let base = Duration::from_millis(500).saturating_mul(2u32.saturating_pow(exponent));
    let capped = base.min(max);
    let jitter = capped.mul_f64(rand::random::<f64>() * 0.2);
    capped + jitter
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_then_stays_under_its_cap() {
        let max = Duration::from_secs(300);
        assert!(backoff(1, max) >= Duration::from_millis(500) && backoff(1, max) < Duration::from_millis(601));
        assert!(backoff(2, max) >= Duration::from_secs(1));
        assert!(backoff(5, max) >= Duration::from_secs(8));
        assert!(backoff(40, max) <= max.mul_f64(1.2));
    }
}
