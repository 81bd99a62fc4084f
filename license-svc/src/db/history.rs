//! The `key_history` table: every action on every key, with who did it and
//! the trace id of the request that caused it.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Action, Email, LicenseKey};

/// One history entry as read back.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Entry {
    pub key: String,
    pub action: String,
    pub performed_at: DateTime<Utc>,
    pub performed_by: String,
    pub details: serde_json::Value,
    pub trace_id: Option<String>,
}

/// Appends an entry, stamped with the trace id of the current request.
/// `fresh_trial` marks an action that gave the customer a new trial period.
#[tracing::instrument(skip(connection, details))]
pub async fn record(
    connection: &mut PgConnection,
    key: &LicenseKey,
    action: Action,
    performed_by: &str,
    details: serde_json::Value,
    fresh_trial: bool,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO key_history (id, key, action, performed_at, performed_by, details, fresh_trial, trace_id) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(Uuid::now_v7())
    .bind(key.as_str())
    .bind(action.as_str())
    .bind(now)
    .bind(performed_by)
    .bind(details)
    .bind(fresh_trial)
    .bind(platform::telemetry::current_trace_id())
    .execute(connection)
    .await?;
    Ok(())
}

/// Every entry of one key, oldest first.
#[tracing::instrument(skip(connection))]
pub async fn list(connection: &mut PgConnection, key: &LicenseKey) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT key, action, performed_at, performed_by, details, trace_id FROM key_history \
         WHERE key = $1 ORDER BY performed_at, id",
    )
    .bind(key.as_str())
    .fetch_all(connection)
    .await
}

/// Every entry of every key `owner` owns, oldest first.
#[tracing::instrument(skip(connection))]
pub async fn list_of_owner(connection: &mut PgConnection, owner: Uuid) -> Result<Vec<Entry>, sqlx::Error> {
    sqlx::query_as(
        "SELECT h.key, h.action, h.performed_at, h.performed_by, h.details, h.trace_id FROM key_history h \
         JOIN license_keys k ON k.key = h.key WHERE k.owner_user_id = $1 ORDER BY h.performed_at, h.id",
    )
    .bind(owner)
    .fetch_all(connection)
    .await
}

/// Serialises trial decisions for one customer until the transaction ends,
/// so two concurrent reactivations cannot both take the last trial period.
#[tracing::instrument(skip(connection))]
pub async fn lock_trials_of(connection: &mut PgConnection, email: &Email) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended('license-trials:' || $1, 0))")
        .bind(email.as_str())
        .execute(connection)
        .await?;
    Ok(())
}

/// How many fresh trial periods the customer `email` has had.
#[tracing::instrument(skip(connection))]
pub async fn trials_of(connection: &mut PgConnection, email: &Email) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM key_history h JOIN license_keys k ON k.key = h.key \
         WHERE k.email = $1 AND h.fresh_trial",
    )
    .bind(email.as_str())
    .fetch_one(connection)
    .await
}

/// Deletes every entry of the keys spelt `keys`.
#[tracing::instrument(skip_all)]
pub async fn delete_of_keys(connection: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM key_history WHERE key = ANY($1)")
        .bind(keys)
        .execute(connection)
        .await?;
    Ok(())
}
