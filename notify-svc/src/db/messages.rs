//! The `messages` table: what was asked for, what was rendered, and how
//! delivery is going.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{Email, IdempotencyKey, Message, MessageState, Template},
    templates::Rendered,
};

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    idempotency_key: String,
    template: String,
    recipient: String,
    state: String,
    attempts: i32,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    next_attempt_at: Option<DateTime<Utc>>,
    sent_at: Option<DateTime<Utc>>,
}

/// A stored name this build does not know: only a newer build can have
/// written it, so the row is reported as corrupt rather than guessed at.
fn unknown(what: &str, name: &str) -> sqlx::Error {
    sqlx::Error::Decode(format!("unknown {what} {name:?} in messages").into())
}

impl TryFrom<Row> for Message {
    type Error = sqlx::Error;

    fn try_from(row: Row) -> Result<Self, Self::Error> {
        Ok(Self {
            id: row.id,
            idempotency_key: row.idempotency_key,
            template: Template::parse(&row.template).ok_or_else(|| unknown("template", &row.template))?,
            recipient: row.recipient,
            state: MessageState::parse(&row.state).ok_or_else(|| unknown("state", &row.state))?,
            attempts: row.attempts,
            last_error: row.last_error,
            created_at: row.created_at,
            next_attempt_at: row.next_attempt_at,
            sent_at: row.sent_at,
        })
    }
}

/// A message to store, already rendered. Its `Debug` leaves out what the
/// message says.
pub struct NewMessage<'a> {
    pub id: Uuid,
    pub idempotency_key: &'a IdempotencyKey,
    pub template: Template,
    pub recipient: &'a Email,
    pub rendered: &'a Rendered,
    /// The template's variables, kept until delivery so the development
    /// mailbox can show the reactivation link.
    pub variables: serde_json::Value,
    pub now: DateTime<Utc>,
}

impl std::fmt::Debug for NewMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMessage")
            .field("id", &self.id)
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// Stores `message` as pending and due at once, unless its idempotency key
/// is taken: then nothing is written and `None` is returned. A concurrent
/// insert of the same key waits for the other transaction and then yields.
#[tracing::instrument(skip_all, fields(message_id = %message.id))]
pub async fn insert(connection: &mut PgConnection, message: &NewMessage<'_>) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO messages (id, idempotency_key, template, recipient, subject, text_body, html_body, \
         variables, state, attempts, next_attempt_at, created_at, updated_at, traceparent) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending', 0, $9, $9, $9, $10) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(message.id)
    .bind(message.idempotency_key.as_str())
    .bind(message.template.as_str())
    .bind(message.recipient.as_str())
    .bind(&message.rendered.subject)
    .bind(&message.rendered.text)
    .bind(&message.rendered.html)
    .bind(&message.variables)
    .bind(message.now)
    .bind(platform::telemetry::current_traceparent())
    .fetch_optional(connection)
    .await
}

/// The id of the message stored under `key`, if any.
#[tracing::instrument(skip_all)]
pub async fn find_id_by_idempotency_key(
    connection: &mut PgConnection,
    key: &IdempotencyKey,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM messages WHERE idempotency_key = $1")
        .bind(key.as_str())
        .fetch_optional(connection)
        .await
}

#[tracing::instrument(skip(connection))]
pub async fn find(connection: &mut PgConnection, id: Uuid) -> Result<Option<Message>, sqlx::Error> {
    let row = sqlx::query_as::<_, Row>(
        "SELECT id, idempotency_key, template, recipient, state, attempts, last_error, created_at, \
         next_attempt_at, sent_at FROM messages WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(connection)
    .await?;
    row.map(Message::try_from).transpose()
}

/// A pending message whose attempt is due, locked by the caller's
/// transaction. Its `Debug` leaves out what the message says.
#[derive(sqlx::FromRow)]
pub struct Due {
    pub id: Uuid,
    pub template: String,
    pub recipient: String,
    pub subject: String,
    pub text_body: String,
    pub html_body: String,
    pub variables: Option<serde_json::Value>,
    /// Attempts made before this one.
    pub attempts: i32,
    /// The trace of the request that enqueued the message.
    pub traceparent: Option<String>,
}

impl std::fmt::Debug for Due {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Due")
            .field("id", &self.id)
            .field("template", &self.template)
            .field("attempts", &self.attempts)
            .finish_non_exhaustive()
    }
}

/// How many messages wait to be sent, due now or later.
#[tracing::instrument(skip(executor))]
pub async fn waiting<'e>(executor: impl sqlx::PgExecutor<'e>) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM messages WHERE state = 'pending'")
        .fetch_one(executor)
        .await
}

/// Locks the pending message that has been due the longest. Rows another
/// transaction holds are skipped, so each replica's worker takes a different
/// message and none is sent twice; the lock lasts until the caller commits
/// the outcome of its attempt.
#[tracing::instrument(skip(connection))]
pub async fn lock_next_due(connection: &mut PgConnection, now: DateTime<Utc>) -> Result<Option<Due>, sqlx::Error> {
    sqlx::query_as::<_, Due>(
        "SELECT id, template, recipient, subject, text_body, html_body, variables, attempts, traceparent \
         FROM messages WHERE state = 'pending' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_optional(connection)
    .await
}

/// Records a successful attempt and erases what the message said: bodies
/// and variables can hold one-time links and license keys, which must not
/// outlive their delivery. An erasure's confirmation keeps no address, not
/// even one a mail server echoed into the last error.
#[tracing::instrument(skip(connection))]
pub async fn mark_sent(
    connection: &mut PgConnection,
    id: Uuid,
    attempts: i32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = 'sent', attempts = $2, sent_at = $3, updated_at = $3, \
         next_attempt_at = NULL, text_body = NULL, html_body = NULL, variables = NULL, \
         last_error = CASE WHEN template = 'account_erased' THEN replace(last_error, recipient, '[erased]') \
           ELSE last_error END, \
         recipient = CASE WHEN template = 'account_erased' THEN '[erased]' ELSE recipient END WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// Records a failed attempt that will be retried at `next_attempt_at`.
#[tracing::instrument(skip(connection, error))]
pub async fn schedule_retry(
    connection: &mut PgConnection,
    id: Uuid,
    attempts: i32,
    error: &str,
    next_attempt_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET attempts = $2, last_error = $3, next_attempt_at = $4, updated_at = $5 WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(error)
    .bind(next_attempt_at)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// Records the last failed attempt: the message is given up and, as after a
/// success, what it said is erased.
#[tracing::instrument(skip(connection, error))]
pub async fn mark_failed(
    connection: &mut PgConnection,
    id: Uuid,
    attempts: i32,
    error: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE messages SET state = 'failed', attempts = $2, updated_at = $4, \
         last_error = CASE WHEN template = 'account_erased' THEN replace($3, recipient, '[erased]') ELSE $3 END, \
         next_attempt_at = NULL, text_body = NULL, html_body = NULL, variables = NULL, \
         recipient = CASE WHEN template = 'account_erased' THEN '[erased]' ELSE recipient END WHERE id = $1",
    )
    .bind(id)
    .bind(attempts)
    .bind(error)
    .bind(now)
    .execute(connection)
    .await?;
    Ok(())
}

/// Deletes every message to `recipient` (lower-cased: compared with each
/// stored address lower-cased, so rows stored with their original case
/// match too) but the one whose idempotency key is `keep`. Returns how many.
#[tracing::instrument(skip_all)]
pub async fn delete_to<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    recipient: &str,
    keep: &str,
) -> Result<u64, sqlx::Error> {
    Ok(
        sqlx::query("DELETE FROM messages WHERE lower(recipient) = $1 AND idempotency_key <> $2")
            .bind(recipient)
            .bind(keep)
            .execute(executor)
            .await?
            .rows_affected(),
    )
}
