//! Webhooks that failed to apply, kept with their payload so an operator
//! (or Stripe's own retry) can apply them again.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::AssertSqlSafe;

use super::{Event, Outcome};
use crate::{billing::Billing, error::Error};

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

impl Billing {
    /// Applies `event`; a failure is kept in `failed_webhooks` (and returned,
    /// so Stripe retries too).
    pub(super) async fn apply_or_keep(&self, event: &Event, raw: &Value) -> Result<Outcome, Error> {
        match self.apply(event).await {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                tracing::warn!(event = %event.id, kind = %event.kind, error = %err, "stripe event failed to apply");
                let now = self.now();
                sqlx::query(
                    "INSERT INTO failed_webhooks (event_id, event_type, payload, error, first_failed_at, last_failed_at) \
                     VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (event_id) DO UPDATE SET \
                     error = EXCLUDED.error, attempts = failed_webhooks.attempts + 1, \
                     last_failed_at = EXCLUDED.last_failed_at, resolved_at = NULL",
                )
                .bind(&event.id)
                .bind(&event.kind)
                .bind(raw)
                .bind(err.to_string())
                .bind(now)
                .execute(&self.pool)
                .await?;
                Err(err)
            }
        }
    }

    pub async fn failed_webhooks(&self, include_resolved: bool) -> Result<Vec<FailedWebhook>, Error> {
        let filter = if include_resolved {
            ""
        } else {
            "WHERE resolved_at IS NULL"
        };
        Ok(sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {FAILED_COLUMNS} FROM failed_webhooks {filter} ORDER BY first_failed_at, event_id"
        )))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Applies failed webhooks again: `event_id`, or every unresolved one.
    /// Each comes back with its new state (resolved, or failed once more).
    pub async fn replay_failed(&self, event_id: Option<&str>) -> Result<Vec<FailedWebhook>, Error> {
        let pending: Vec<(String, Value)> =
            match event_id {
                Some(id) => {
                    let found: Option<(String, Value)> =
                        sqlx::query_as("SELECT event_id, payload FROM failed_webhooks WHERE event_id = $1")
                            .bind(id)
                            .fetch_optional(&self.pool)
                            .await?;
                    vec![found.ok_or(Error::WebhookNotFound)?]
                }
                None => sqlx::query_as(
                    "SELECT event_id, payload FROM failed_webhooks WHERE resolved_at IS NULL ORDER BY first_failed_at",
                )
                .fetch_all(&self.pool)
                .await?,
            };
        let mut replayed = Vec::with_capacity(pending.len());
        for (id, payload) in pending {
            let event: Event = serde_json::from_value(payload.clone()).map_err(anyhow::Error::from)?;
            match self.apply_or_keep(&event, &payload).await {
                Ok(outcome) => tracing::info!(event = %id, outcome = outcome.as_str(), "failed webhook replayed"),
                Err(err) => tracing::warn!(event = %id, error = %err, "failed webhook failed again"),
            }
            let state: FailedWebhook = sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {FAILED_COLUMNS} FROM failed_webhooks WHERE event_id = $1"
            )))
            .bind(&id)
            .fetch_one(&self.pool)
            .await?;
            replayed.push(state);
        }
        Ok(replayed)
    }
}
