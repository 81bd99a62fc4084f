//! What support reads about customers coming and going: one customer's
//! billing events, and the churn and return counts of all of them.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

/// One billing event as read back: (event, details, trace id, when).
pub type Event = (String, serde_json::Value, Option<String>, DateTime<Utc>);

/// One customer's billing events, oldest first.
#[tracing::instrument(skip(executor))]
pub async fn events_of<'e>(executor: impl PgExecutor<'e>, user_id: Uuid) -> Result<Vec<Event>, sqlx::Error> {
    sqlx::query_as(
        "SELECT e.event, e.details, e.trace_id, e.occurred_at FROM billing_events e \
         JOIN tenants t ON t.id = e.tenant_id WHERE t.owner_user_id = $1 ORDER BY e.occurred_at, e.id",
    )
    .bind(user_id)
    .fetch_all(executor)
    .await
}

/// Customers who left or came back, who came back, who used the
/// welcome-back offer.
#[tracing::instrument(skip(executor))]
pub async fn churn<'e>(executor: impl PgExecutor<'e>) -> Result<(i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE left_at IS NOT NULL OR reactivated_at IS NOT NULL), \
                count(*) FILTER (WHERE reactivated_at IS NOT NULL), \
                count(*) FILTER (WHERE welcome_back_used_at IS NOT NULL) FROM tenants",
    )
    .fetch_one(executor)
    .await
}

/// Of the returns: the average days away, and how many took a monthly and
/// an annual plan.
#[tracing::instrument(skip(executor))]
pub async fn returns<'e>(executor: impl PgExecutor<'e>) -> Result<(Option<f64>, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT avg((details->>'away_secs')::float8) / 86400, \
                count(*) FILTER (WHERE details->>'billing_period' = 'monthly'), \
                count(*) FILTER (WHERE details->>'billing_period' = 'annual') \
         FROM billing_events WHERE event = 'returned'",
    )
    .fetch_one(executor)
    .await
}

/// One week of comings and goings, as read back.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct Week {
    pub week_start: DateTime<Utc>,
    pub cancelled: i64,
    pub returned: i64,
    pub returned_monthly: i64,
    pub returned_annual: i64,
    pub offers_used: i64,
    pub average_days_to_return: Option<f64>,
}

/// Per week (Monday, UTC) since `since`, oldest first; weeks with nothing
/// are left out.
#[tracing::instrument(skip(executor))]
pub async fn weeks<'e>(executor: impl PgExecutor<'e>, since: DateTime<Utc>) -> Result<Vec<Week>, sqlx::Error> {
    sqlx::query_as(
        "SELECT date_trunc('week', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS week_start, \
                count(*) FILTER (WHERE event = 'cancelled') AS cancelled, \
                count(*) FILTER (WHERE event = 'returned') AS returned, \
                count(*) FILTER (WHERE event = 'returned' AND details->>'billing_period' = 'monthly') AS returned_monthly, \
                count(*) FILTER (WHERE event = 'returned' AND details->>'billing_period' = 'annual') AS returned_annual, \
                count(*) FILTER (WHERE event = 'offer_used') AS offers_used, \
                avg((details->>'away_secs')::float8) FILTER (WHERE event = 'returned') / 86400 AS average_days_to_return \
         FROM billing_events \
         WHERE occurred_at >= $1 AND event IN ('cancelled', 'returned', 'offer_used') \
         GROUP BY 1 ORDER BY 1",
    )
    .bind(since)
    .fetch_all(executor)
    .await
}
