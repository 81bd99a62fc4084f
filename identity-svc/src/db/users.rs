//! The `users` table.

use chrono::{DateTime, Utc};
use platform::auth::Role;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Account, DeactivationReason, Email, EmailSearch};

const COLUMNS: &str = "id, email, password_hash, role, is_active, created_at, deactivated_at, \
     deactivation_reason, reactivated_at, reactivation_count, last_cancellation_reason, state_version";

#[derive(sqlx::FromRow)]
struct Row {
    id: Uuid,
    email: String,
    password_hash: String,
    role: String,
    is_active: bool,
    created_at: DateTime<Utc>,
    deactivated_at: Option<DateTime<Utc>>,
    deactivation_reason: Option<String>,
    reactivated_at: Option<DateTime<Utc>>,
    reactivation_count: i32,
    last_cancellation_reason: Option<String>,
    state_version: i64,
}

impl From<Row> for Account {
    fn from(row: Row) -> Self {
        Self {
            id: row.id,
            email: row.email,
            password_hash: row.password_hash,
            role: if row.role == "admin" { Role::Admin } else { Role::User },
            is_active: row.is_active,
            created_at: row.created_at,
            deactivated_at: row.deactivated_at,
            deactivation_reason: row.deactivation_reason.as_deref().and_then(DeactivationReason::parse),
            reactivated_at: row.reactivated_at,
            reactivation_count: row.reactivation_count,
            last_cancellation_reason: row.last_cancellation_reason,
            state_version: row.state_version,
        }
    }
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Admin => "admin",
        Role::User => "user",
    }
}

/// Inserts an active account. A taken email fails with the database's
/// unique violation on `users_email_key`.
#[tracing::instrument(skip(connection, password_hash))]
pub async fn insert(
    connection: &mut PgConnection,
    email: &Email,
    password_hash: &str,
    role: Role,
    now: DateTime<Utc>,
) -> Result<Account, sqlx::Error> {
    let sql = format!(
        "INSERT INTO users (id, email, password_hash, role, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(Uuid::now_v7())
        .bind(email.as_str())
        .bind(password_hash)
        .bind(role_name(role))
        .bind(now)
        .fetch_one(connection)
        .await
        .map(Account::from)
}

#[tracing::instrument(skip(connection))]
pub async fn find_by_email(connection: &mut PgConnection, email: &Email) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE email = $1");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(email.as_str())
        .fetch_optional(connection)
        .await
        .map(|row| row.map(Account::from))
}

/// Gives the account `role`.
#[tracing::instrument(skip(connection))]
pub async fn set_role(
    connection: &mut PgConnection,
    id: Uuid,
    role: Role,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE users SET role = $2, updated_at = $3 WHERE id = $1")
        .bind(id)
        .bind(role_name(role))
        .bind(now)
        .execute(connection)
        .await?;
    Ok(())
}

#[tracing::instrument(skip(connection))]
pub async fn find(connection: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(connection)
        .await
        .map(|row| row.map(Account::from))
}

/// Up to `limit` accounts matching `search`, in email order (bytes), after
/// the email `after` when given. Erased accounts have no row, so are never
/// found.
///
/// One range of `users_by_email_bytes`: from the text to the text itself
/// (exact) or to the text followed by the highest code point (prefix: no
/// email has it; `starts_with` keeps the answer exact regardless). The text
/// is compared as it is, so `%`, `_` and `\` are literal.
///
/// The accounts found are kept from being erased until the transaction
/// ends (see [`hold`]).
#[tracing::instrument(skip_all, fields(prefix = search.is_prefix(), limit = limit))]
pub async fn find_by_email_start(
    connection: &mut PgConnection,
    search: &EmailSearch,
    after: Option<&str>,
    limit: i64,
) -> Result<Vec<Account>, sqlx::Error> {
    let text = search.text();
    let last = if search.is_prefix() {
        format!("{text}\u{10FFFF}")
    } else {
        text.to_owned()
    };
    let sql = format!(
        "SELECT {COLUMNS} FROM users \
         WHERE email COLLATE \"C\" >= $1 AND email COLLATE \"C\" <= $2 AND starts_with(email, $1) \
           AND email COLLATE \"C\" > $3 \
         ORDER BY email COLLATE \"C\" LIMIT $4 FOR KEY SHARE"
    );
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(text)
        .bind(last)
        // Every email sorts after the empty text.
        .bind(after.unwrap_or_default())
        .bind(limit)
        .fetch_all(connection)
        .await
        .map(|rows| rows.into_iter().map(Account::from).collect())
}

/// Whether the account exists, kept from being erased until the transaction
/// ends: a read recorded in the same transaction is never left behind by an
/// erasure that ran meanwhile, which waits for it or is waited for.
#[tracing::instrument(skip(connection))]
pub async fn hold(connection: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let held: Option<i32> = sqlx::query_scalar("SELECT 1 FROM users WHERE id = $1 FOR KEY SHARE")
        .bind(id)
        .fetch_optional(connection)
        .await?;
    Ok(held.is_some())
}

/// The account, locked until the transaction ends, so two changes of state
/// cannot interleave.
#[tracing::instrument(skip(connection))]
pub async fn lock(connection: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 FOR UPDATE");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(connection)
        .await
        .map(|row| row.map(Account::from))
}

/// The account, share-locked until the transaction ends: no change of state
/// is in flight while it is held, so its state version is the committed
/// truth (login sets the session floor to it).
#[tracing::instrument(skip(connection))]
pub async fn lock_shared(connection: &mut PgConnection, id: Uuid) -> Result<Option<Account>, sqlx::Error> {
    let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1 FOR SHARE");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .fetch_optional(connection)
        .await
        .map(|row| row.map(Account::from))
}

/// Marks the account inactive; the caller has checked it was active.
#[tracing::instrument(skip(connection, comment))]
pub async fn deactivate(
    connection: &mut PgConnection,
    id: Uuid,
    reason: DeactivationReason,
    comment: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Account, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET is_active = false, deactivated_at = $2, deactivation_reason = $3, \
         last_cancellation_reason = COALESCE($4, last_cancellation_reason), \
         state_version = state_version + 1, updated_at = $2 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(now)
        .bind(reason.as_str())
        .bind(comment)
        .fetch_one(connection)
        .await
        .map(Account::from)
}

/// Marks the account active again; the caller has checked it was inactive.
/// `deactivated_at` is kept: it dates the absence that just ended.
#[tracing::instrument(skip(connection))]
pub async fn reactivate(connection: &mut PgConnection, id: Uuid, now: DateTime<Utc>) -> Result<Account, sqlx::Error> {
    let sql = format!(
        "UPDATE users SET is_active = true, deactivation_reason = NULL, reactivated_at = $2, \
         reactivation_count = reactivation_count + 1, state_version = state_version + 1, updated_at = $2 \
         WHERE id = $1 RETURNING {COLUMNS}"
    );
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(sql))
        .bind(id)
        .bind(now)
        .fetch_one(connection)
        .await
        .map(Account::from)
}

/// Deletes the account `id`.
#[tracing::instrument(skip(connection))]
pub async fn delete(connection: &mut PgConnection, id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(connection)
        .await?;
    Ok(())
}
