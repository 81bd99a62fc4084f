//! The `account_events` table: the audit trail of every account.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{AccountEvent, EventKind};

/// Appends an event, stamped with the trace id of the current request.
#[tracing::instrument(skip(connection, data))]
pub async fn record(
    connection: &mut PgConnection,
    user_id: Uuid,
    kind: EventKind,
    data: serde_json::Value,
    actor_id: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO account_events (id, user_id, event_type, data, actor_id, trace_id, occurred_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(Uuid::now_v7())
    .bind(user_id)
    .bind(kind.as_str())
    .bind(data)
    .bind(actor_id)
    .bind(platform::telemetry::current_trace_id())
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    user_id: Uuid,
    event_type: String,
    data: serde_json::Value,
    actor_id: Option<Uuid>,
    trace_id: Option<String>,
    occurred_at: DateTime<Utc>,
}

/// Every event of one account, oldest first.
#[tracing::instrument(skip(connection))]
pub async fn list(connection: &mut PgConnection, user_id: Uuid) -> Result<Vec<AccountEvent>, sqlx::Error> {
    let rows = sqlx::query_as::<_, Row>(
        "SELECT id, user_id, event_type, data, actor_id, trace_id, occurred_at \
         FROM account_events WHERE user_id = $1 ORDER BY occurred_at, id",
    )
    .bind(user_id)
    .fetch_all(connection)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| AccountEvent {
            id: row.id,
            user_id: row.user_id,
            event_type: row.event_type,
            data: row.data,
            actor_id: row.actor_id,
            trace_id: row.trace_id,
            occurred_at: row.occurred_at,
        })
        .collect())
}

/// Empties the data of every event of `user_id`: the events stay (the
/// funnel counts them), what they said about the person goes.
#[tracing::instrument(skip(connection))]
pub async fn forget_data_of(connection: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE account_events SET data = '{}'::jsonb WHERE user_id = $1")
        .bind(user_id)
        .execute(connection)
        .await?;
    Ok(())
}

/// The reactivation funnel so far: (requested, email sent, link opened,
/// confirmed by link).
#[tracing::instrument(skip(executor))]
pub async fn funnel<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<(i64, i64, i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE event_type = 'reactivation_requested'), \
                count(*) FILTER (WHERE event_type = 'reactivation_requested' AND data->>'sent' = 'true'), \
                count(*) FILTER (WHERE event_type = 'reactivation_link_opened'), \
                count(*) FILTER (WHERE event_type = 'reactivated' AND data->>'via' = 'email_link') \
         FROM account_events",
    )
    .fetch_one(executor)
    .await
}

/// The funnel of one week, as read back.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct FunnelWeek {
    pub week_start: chrono::DateTime<chrono::Utc>,
    pub requested: i64,
    pub email_sent: i64,
    pub link_opened: i64,
    pub confirmed: i64,
}

/// The funnel per week (Monday, UTC) since `since`, oldest first; weeks
/// with nothing are left out.
#[tracing::instrument(skip(executor))]
pub async fn funnel_weeks<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    since: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<FunnelWeek>, sqlx::Error> {
    sqlx::query_as(
        "SELECT date_trunc('week', occurred_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS week_start, \
                count(*) FILTER (WHERE event_type = 'reactivation_requested') AS requested, \
                count(*) FILTER (WHERE event_type = 'reactivation_requested' AND data->>'sent' = 'true') AS email_sent, \
                count(*) FILTER (WHERE event_type = 'reactivation_link_opened') AS link_opened, \
                count(*) FILTER (WHERE event_type = 'reactivated' AND data->>'via' = 'email_link') AS confirmed \
         FROM account_events \
         WHERE occurred_at >= $1 \
           AND event_type IN ('reactivation_requested', 'reactivation_link_opened', 'reactivated') \
         GROUP BY 1 ORDER BY 1",
    )
    .bind(since)
    .fetch_all(executor)
    .await
}
