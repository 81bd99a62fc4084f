//! Which deactivated accounts retention reminds and erases. A reminder is
//! recorded in `retention_reminders` as it is claimed, so each goes out once
//! however many replicas look.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

/// A reminder due: the account, its email and when it was deactivated.
pub type Due = (Uuid, String, DateTime<Utc>);

/// Claims the reminder `days_before` days ahead of erasure for every
/// account that may reactivate itself, deactivated long enough ago, and not
/// yet reminded so for its current absence.
#[tracing::instrument(skip(connection))]
pub async fn claim_reminders(
    connection: &mut PgConnection,
    now: DateTime<Utc>,
    retention_days: i32,
    days_before: i32,
) -> Result<Vec<Due>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS ( \
             SELECT id, email, deactivated_at FROM users \
             WHERE NOT is_active AND deactivation_reason IN ('self', 'nonpayment') \
               AND deactivated_at + make_interval(days => $2) - make_interval(days => $3) <= $1 \
               AND deactivated_at + make_interval(days => $2) > $1), \
         recorded AS ( \
             INSERT INTO retention_reminders (user_id, deactivated_at, days_before, sent_at) \
             SELECT id, deactivated_at, $3, $1 FROM due \
             ON CONFLICT DO NOTHING RETURNING user_id) \
         SELECT due.id, due.email, due.deactivated_at FROM due JOIN recorded ON recorded.user_id = due.id",
    )
    .bind(now)
    .bind(retention_days)
    .bind(days_before)
    .fetch_all(connection)
    .await
}

/// Up to `limit` inactive accounts whose retention period ended by `now`,
/// longest gone first.
#[tracing::instrument(skip(executor))]
pub async fn past_retention<'e>(
    executor: impl PgExecutor<'e>,
    now: DateTime<Utc>,
    retention_days: i32,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM users WHERE NOT is_active \
         AND deactivated_at + make_interval(days => $2) <= $1 ORDER BY deactivated_at LIMIT $3",
    )
    .bind(now)
    .bind(retention_days)
    .bind(limit)
    .fetch_all(executor)
    .await
}
