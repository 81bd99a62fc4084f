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
//! The table's schema has one source, [`SCHEMA`] (`platform/migrations`);
//! a service built on [`crate::service`] takes it from there by setting
//! `OUTBOX_FROM_PLATFORM`. (identity-svc, license-svc and billing-svc carry
//! older copies in their applied migrations, which stay as history.)
//!
//! A payload is a [`Payload`] type. One that concerns a person names them
//! in a top-level `recipient` (their email address) or `user_id` field, so
//! that [`forget_pending`] finds it when the person is erased.

use std::{future::Future, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use sqlx::{PgConnection, PgPool, migrate::Migrator};
use tokio::sync::Notify;
use tracing::Instrument as _;
use uuid::Uuid;

use crate::{backoff::Backoff, shutdown::Shutdown, telemetry};

/// The outbox table and its index, as a migration (version 0, before any
/// of a service's own): the one source of the schema.
pub static SCHEMA: Migrator = sqlx::migrate!("./migrations");

/// `service`'s migrations preceded by [`SCHEMA`].
pub fn with_schema(service: &Migrator) -> Migrator {
    Migrator::with_migrations(SCHEMA.iter().chain(service.iter()).cloned().collect())
}

/// An owed effect's payload, stored as JSON in the entry.
pub trait Payload: Serialize + DeserializeOwned {
    /// What it is, in the error that parks a malformed one.
    const WHAT: &'static str;
}

/// Records `payload` under `topic`, to deliver once the surrounding
/// transaction commits; `key` makes it one effect however often it is
/// recorded or delivered.
pub async fn owe<P: Payload>(
    connection: &mut PgConnection,
    topic: &str,
    key: &str,
    payload: &P,
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_value(payload).map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    enqueue(connection, topic, key, payload).await
}

/// Forgets the effects owed to a person and not delivered yet, when the
/// person is erased: every pending entry whose payload names `email` as
/// its `recipient` or `user_id` as its `user_id`. How many went.
pub async fn forget_pending(
    connection: &mut PgConnection,
    user_id: Option<Uuid>,
    email: Option<&str>,
) -> Result<u64, sqlx::Error> {
    let forgotten = sqlx::query(
        "DELETE FROM outbox WHERE delivered_at IS NULL \
         AND (payload->>'recipient' = $1 OR payload->>'user_id' = $2)",
    )
    .bind(email)
    .bind(user_id.map(|id| id.to_string()))
    .execute(connection)
    .await?;
    Ok(forgotten.rows_affected())
}

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

impl Entry {
    /// The payload as `P`; a malformed one is [`Rejected`] (parked), as
    /// trying again cannot mend it.
    pub fn parse<P: Payload>(&self) -> Result<P, Rejected> {
        serde_json::from_value(self.payload.clone()).map_err(|err| Rejected(format!("malformed {}: {err}", P::WHAT)))
    }
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
        let mut topics = std::collections::HashSet::new();
        // Database failures in a row: the relay backs off while it is down.
        let mut failures = 0;
        loop {
            if shutdown.is_triggered() {
                return;
            }
            match self.deliver_one().await {
                // Delivered (or failed) one entry: look for the next at once.
                Ok(true) => {
                    failures = 0;
                    continue;
                }
                // Nothing due: a quiet moment to measure what is waiting.
                Ok(false) => {
                    failures = 0;
                    if let Err(err) = self.measure_backlog(&mut topics).await {
                        tracing::warn!(error = %err, "cannot measure the outbox backlog");
                    }
                }
                Err(err) => {
                    failures += 1;
                    tracing::error!(
                        error = format!("{err:#}"),
                        failures,
                        "outbox relay cannot reach its database"
                    );
                }
            }
            tokio::select! {
                () = shutdown.wait() => return,
                () = self.waker.0.notified() => {}
                () = tokio::time::sleep(crate::health::outage_pause(self.poll_interval, failures)) => {}
            }
        }
    }

    /// Publishes the undelivered entries and the oldest one's age per topic
    /// (`outbox_backlog`, `outbox_oldest_age_seconds`); a topic seen before
    /// and now empty reads 0. The query reads the `outbox_due` partial index.
    async fn measure_backlog(&self, topics: &mut std::collections::HashSet<String>) -> Result<(), sqlx::Error> {
        let waiting: Vec<(String, i64, f64)> = sqlx::query_as(
            "SELECT topic, count(*), COALESCE(EXTRACT(EPOCH FROM now() - min(created_at)), 0)::float8 \
             FROM outbox WHERE delivered_at IS NULL GROUP BY topic",
        )
        .fetch_all(&self.pool)
        .await?;
        let waiting: std::collections::HashMap<String, (i64, f64)> = waiting
            .into_iter()
            .map(|(topic, count, age)| (topic, (count, age)))
            .collect();
        topics.extend(waiting.keys().cloned());
        let metrics = crate::metrics::metrics();
        for topic in topics.iter() {
            let (count, age) = waiting.get(topic).copied().unwrap_or_default();
            let labels = crate::metrics::TopicLabels { topic: topic.clone() };
            metrics.outbox_backlog.get_or_create(&labels).set(count);
            metrics.outbox_oldest_age.get_or_create(&labels).set(age);
        }
        Ok(())
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
                // Delivered but not yet recorded: a crash here delivers it
                // again later, which its idempotency key makes harmless.
                crate::fail_point::fail_point("outbox.after_deliver");
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
                // 0.5 s, 1 s, 2 s, … never past `max_backoff`, jittered so
                // replicas retrying the same receiver do not stampede it.
                let backoff = Backoff {
                    base: Duration::from_millis(500),
                    max: self.max_backoff,
                }
                .delay(attempts.unsigned_abs());
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
