//! The Stripe events billing has applied (`stripe_events`, so a second
//! delivery changes nothing) and those that failed to apply
//! (`failed_webhooks`, kept with their payload for a replay).

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{AssertSqlSafe, PgExecutor};

/// A failed webhook as stored for replay.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct FailedWebhook {
    pub event_id: String,
    pub event_type: String,
    pub error: String,
    pub attempts: i32,
    pub first_failed_at: DateTime<Utc>,
    pub last_failed_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const FAILED_COLUMNS: &str = "event_id, event_type, error, attempts, first_failed_at, last_failed_at, resolved_at";

/// Whether the event `event_id` has been applied already.
#[tracing::instrument(skip(executor))]
pub async fn already_applied<'e>(executor: impl PgExecutor<'e>, event_id: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM stripe_events WHERE event_id = $1)")
        .bind(event_id)
        .fetch_one(executor)
        .await
}

/// Records the event as applied; `false` when a concurrent delivery of the
/// same event recorded it first.
#[tracing::instrument(skip(executor))]
pub async fn record_applied<'e>(
    executor: impl PgExecutor<'e>,
    event_id: &str,
    kind: &str,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let inserted = sqlx::query(
        "INSERT INTO stripe_events (event_id, event_type, applied_at) VALUES ($1, $2, $3) \
         ON CONFLICT (event_id) DO NOTHING",
    )
    .bind(event_id)
    .bind(kind)
    .bind(now)
    .execute(executor)
    .await?
    .rows_affected();
    Ok(inserted > 0)
}

/// Marks a failed webhook of the event, if any is open, resolved at `now`.
#[tracing::instrument(skip(executor))]
pub async fn resolve_failed<'e>(
    executor: impl PgExecutor<'e>,
    event_id: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE failed_webhooks SET resolved_at = $2 WHERE event_id = $1 AND resolved_at IS NULL")
        .bind(event_id)
        .bind(now)
        .execute(executor)
        .await?;
    Ok(())
}

/// Keeps the event's failure to apply with its `payload`: a first failure
/// is added, a repeated one counted (and opened again if it was resolved).
#[tracing::instrument(skip(executor, payload))]
pub async fn keep_failed<'e>(
    executor: impl PgExecutor<'e>,
    event_id: &str,
    kind: &str,
    payload: &Value,
    error: String,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO failed_webhooks (event_id, event_type, payload, error, first_failed_at, last_failed_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (event_id) DO UPDATE SET \
         error = EXCLUDED.error, attempts = failed_webhooks.attempts + 1, \
         last_failed_at = EXCLUDED.last_failed_at, resolved_at = NULL",
    )
    .bind(event_id)
    .bind(kind)
    .bind(payload)
    .bind(error)
    .bind(now)
    .execute(executor)
    .await?;
    Ok(())
}

/// The failed webhooks, the resolved ones too when `include_resolved`, in
/// the order they first failed.
#[tracing::instrument(skip(executor))]
pub async fn failed<'e>(
    executor: impl PgExecutor<'e>,
    include_resolved: bool,
) -> Result<Vec<FailedWebhook>, sqlx::Error> {
    let filter = if include_resolved {
        ""
    } else {
        "WHERE resolved_at IS NULL"
    };
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {FAILED_COLUMNS} FROM failed_webhooks {filter} ORDER BY first_failed_at, event_id"
    )))
    .fetch_all(executor)
    .await
}

/// The failed webhook of the event `event_id`, as it stands.
#[tracing::instrument(skip(executor))]
pub async fn failed_one<'e>(executor: impl PgExecutor<'e>, event_id: &str) -> Result<FailedWebhook, sqlx::Error> {
    sqlx::query_as(AssertSqlSafe(format!(
        "SELECT {FAILED_COLUMNS} FROM failed_webhooks WHERE event_id = $1"
    )))
    .bind(event_id)
    .fetch_one(executor)
    .await
}

/// The event id and payload of the failed webhook of `event_id`, if any.
#[tracing::instrument(skip(executor))]
pub async fn failed_payload<'e>(
    executor: impl PgExecutor<'e>,
    event_id: &str,
) -> Result<Option<(String, Value)>, sqlx::Error> {
    sqlx::query_as("SELECT event_id, payload FROM failed_webhooks WHERE event_id = $1")
        .bind(event_id)
        .fetch_optional(executor)
        .await
}

/// The event id and payload of every unresolved failed webhook, in the
/// order they first failed.
#[tracing::instrument(skip(executor))]
pub async fn unresolved_payloads<'e>(executor: impl PgExecutor<'e>) -> Result<Vec<(String, Value)>, sqlx::Error> {
    sqlx::query_as("SELECT event_id, payload FROM failed_webhooks WHERE resolved_at IS NULL ORDER BY first_failed_at")
        .fetch_all(executor)
        .await
}
