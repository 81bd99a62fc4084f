//! The `license_keys` table.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::{Access, Customer, DisabledReason, Email, KeyStatus, KeyType, License, LicenseKey};

const COLUMNS: &str =
    "key, email, owner_user_id, key_type, expires_at, disabled_at, disabled_reason, created_at, features, customer";

#[derive(sqlx::FromRow)]
struct Row {
    key: String,
    email: String,
    owner_user_id: Option<Uuid>,
    key_type: String,
    expires_at: Option<DateTime<Utc>>,
    disabled_at: Option<DateTime<Utc>>,
    disabled_reason: Option<String>,
    created_at: DateTime<Utc>,
    features: Json<BTreeMap<String, bool>>,
    customer: Json<Customer>,
}

impl TryFrom<Row> for License {
    type Error = sqlx::Error;

    fn try_from(row: Row) -> Result<Self, Self::Error> {
        // The table's CHECK constraints hold these; a failure here is a
        // corrupted row, not a caller's mistake.
        let corrupt = |what: String| sqlx::Error::Decode(what.into());
        Ok(Self {
            key: LicenseKey::parse(&row.key).map_err(corrupt)?,
            email: Email::from_stored(row.email),
            owner_user_id: row.owner_user_id,
            key_type: KeyType::parse(&row.key_type).ok_or_else(|| corrupt(format!("key type {}", row.key_type)))?,
            expires_at: row.expires_at,
            disabled_at: row.disabled_at,
            disabled_reason: row
                .disabled_reason
                .as_deref()
                .map(|reason| DisabledReason::parse(reason).ok_or_else(|| corrupt(format!("disabled reason {reason}"))))
                .transpose()?,
            created_at: row.created_at,
            features: row.features.0,
            customer: row.customer.0,
        })
    }
}

/// Inserts a new key; a key already taken is a unique violation the caller
/// answers by drawing another.
#[tracing::instrument(skip_all, fields(key = %license.key))]
pub async fn insert(connection: &mut PgConnection, license: &License) -> Result<(), sqlx::Error> {
    let insert = sqlx::query(
        "INSERT INTO license_keys (key, owner_user_id, key_type, expires_at, disabled_at, features, customer, \
         created_at, updated_at, disabled_reason, email) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $9, $10)",
    );
    with_fields(insert, license, license.created_at)
        .bind(license.email.as_str())
        .execute(connection)
        .await?;
    Ok(())
}

/// Writes back every mutable field of `license`.
#[tracing::instrument(skip_all, fields(key = %license.key))]
pub async fn update(connection: &mut PgConnection, license: &License, now: DateTime<Utc>) -> Result<(), sqlx::Error> {
    let update = sqlx::query(
        "UPDATE license_keys SET owner_user_id = $2, key_type = $3, expires_at = $4, disabled_at = $5, \
         features = $6, customer = $7, updated_at = $8, disabled_reason = $9 WHERE key = $1",
    );
    with_fields(update, license, now).execute(connection).await?;
    Ok(())
}

/// `statement` with `license`'s fields bound as `$1` to `$9`: key, owner,
/// type, expiry, disabling, features, customer, `at` (when it is written)
/// and the reason it was disabled.
fn with_fields<'q>(
    statement: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    license: &'q License,
    at: DateTime<Utc>,
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    statement
        .bind(license.key.as_str())
        .bind(license.owner_user_id)
        .bind(license.key_type.as_str())
        .bind(license.expires_at)
        .bind(license.disabled_at)
        .bind(Json(&license.features))
        .bind(Json(&license.customer))
        .bind(at)
        .bind(license.disabled_reason.map(DisabledReason::as_str))
}

/// Every key `query` (a `SELECT {COLUMNS}`, its placeholders bound) reads.
async fn all<'q>(
    connection: &mut PgConnection,
    query: sqlx::query::QueryAs<'q, sqlx::Postgres, Row, sqlx::postgres::PgArguments>,
) -> Result<Vec<License>, sqlx::Error> {
    query
        .fetch_all(connection)
        .await?
        .into_iter()
        .map(License::try_from)
        .collect()
}

/// One key, read with the row lock `lock` (`""` for none).
async fn one(connection: &mut PgConnection, key: &LicenseKey, lock: &str) -> Result<Option<License>, sqlx::Error> {
    let statement = format!("SELECT {COLUMNS} FROM license_keys WHERE key = $1 {lock}");
    sqlx::query_as::<_, Row>(sqlx::AssertSqlSafe(statement))
        .bind(key.as_str())
        .fetch_optional(connection)
        .await?
        .map(License::try_from)
        .transpose()
}

/// One key, without locking it.
#[tracing::instrument(skip(connection))]
pub async fn find(connection: &mut PgConnection, key: &LicenseKey) -> Result<Option<License>, sqlx::Error> {
    one(connection, key, "").await
}

/// One key, locked until the transaction ends: two actions on one key
/// happen one after the other, each seeing the other's result.
#[tracing::instrument(skip(connection))]
pub async fn lock(connection: &mut PgConnection, key: &LicenseKey) -> Result<Option<License>, sqlx::Error> {
    one(connection, key, "FOR UPDATE").await
}

/// One key, kept from being erased (or changed) until the transaction
/// ends: a read recorded in the same transaction is never left behind by an
/// erasure that ran meanwhile, which waits for it or is waited for.
#[tracing::instrument(skip(connection))]
pub async fn hold(connection: &mut PgConnection, key: &LicenseKey) -> Result<Option<License>, sqlx::Error> {
    one(connection, key, "FOR KEY SHARE").await
}

/// Which customer: their account, or their email.
#[derive(Debug, Clone)]
pub enum CustomerRef {
    UserId(Uuid),
    Email(Email),
}

impl CustomerRef {
    /// The customer's row in `customer_access`.
    fn access_id(&self) -> String {
        match self {
            Self::UserId(id) => format!("user:{id}"),
            Self::Email(email) => format!("email:{}", email.as_str()),
        }
    }
}

/// The spelling of every key owned by `user_id` or issued to `email`,
/// locked, in a stable order.
#[tracing::instrument(skip(connection))]
pub async fn lock_keys_of(
    connection: &mut PgConnection,
    user_id: Option<Uuid>,
    email: Option<&Email>,
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT key FROM license_keys WHERE owner_user_id = $1 OR email = $2 ORDER BY key FOR UPDATE")
        .bind(user_id)
        .bind(email.map(Email::as_str))
        .fetch_all(connection)
        .await
}

/// Deletes the keys spelt `keys` (their history goes first: see
/// [`super::history::delete_of_keys`]).
#[tracing::instrument(skip_all)]
pub async fn delete(connection: &mut PgConnection, keys: &[String]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM license_keys WHERE key = ANY($1)")
        .bind(keys)
        .execute(connection)
        .await?;
    Ok(())
}

/// Forgets the latest access change recorded for each of `customers`.
#[tracing::instrument(skip_all)]
pub async fn forget_access(connection: &mut PgConnection, customers: &[CustomerRef]) -> Result<(), sqlx::Error> {
    let customers: Vec<String> = customers.iter().map(CustomerRef::access_id).collect();
    sqlx::query("DELETE FROM customer_access WHERE customer = ANY($1)")
        .bind(&customers)
        .execute(connection)
        .await?;
    Ok(())
}

/// Every key of one customer, locked, in a stable order (so two callers
/// lock them in the same order and cannot deadlock).
#[tracing::instrument(skip(connection))]
pub async fn lock_of_customer(
    connection: &mut PgConnection,
    customer: &CustomerRef,
) -> Result<Vec<License>, sqlx::Error> {
    let (user_id, email) = match customer {
        CustomerRef::UserId(id) => (Some(*id), None),
        CustomerRef::Email(email) => (None, Some(email.as_str())),
    };
    // The unused one is NULL, and `= NULL` matches nothing.
    let statement =
        format!("SELECT {COLUMNS} FROM license_keys WHERE owner_user_id = $1 OR email = $2 ORDER BY key FOR UPDATE");
    let query = sqlx::query_as(sqlx::AssertSqlSafe(statement)).bind(user_id).bind(email);
    all(connection, query).await
}

/// The keys an account owns, newest first, at most `limit`.
#[tracing::instrument(skip(connection))]
pub async fn of_owner(connection: &mut PgConnection, owner: Uuid, limit: i64) -> Result<Vec<License>, sqlx::Error> {
    let statement =
        format!("SELECT {COLUMNS} FROM license_keys WHERE owner_user_id = $1 ORDER BY created_at DESC, key LIMIT $2");
    let query = sqlx::query_as(sqlx::AssertSqlSafe(statement)).bind(owner).bind(limit);
    all(connection, query).await
}

/// Listing filters; `None` means any.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub email: Option<Email>,
    pub status: Option<KeyStatus>,
    pub key_type: Option<KeyType>,
}

/// Where a page starts: just after this key in (created_at, key) order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub key: String,
}

/// Up to `limit` keys matching `filter` after `after`, oldest first (ties
/// by key), with status evaluated at `now`.
#[tracing::instrument(skip(connection))]
pub async fn list(
    connection: &mut PgConnection,
    filter: &Filter,
    after: Option<&Cursor>,
    limit: i64,
    now: DateTime<Utc>,
) -> Result<Vec<License>, sqlx::Error> {
    let status = filter.status.map(|status| match status {
        KeyStatus::Active => "active",
        KeyStatus::Disabled => "disabled",
        KeyStatus::Expired => "expired",
    });
    let statement = format!(
        "SELECT {COLUMNS} FROM license_keys \
         WHERE ($1::text IS NULL OR email = $1) \
           AND ($2::text IS NULL OR key_type = $2) \
           AND ($3::text IS NULL \
                OR ($3 = 'disabled' AND disabled_at IS NOT NULL) \
                OR ($3 = 'expired' AND disabled_at IS NULL AND expires_at <= $4) \
                OR ($3 = 'active' AND disabled_at IS NULL AND (expires_at IS NULL OR expires_at > $4))) \
           AND ($5::timestamptz IS NULL OR (created_at, key) > ($5, $6)) \
         ORDER BY created_at, key LIMIT $7"
    );
    let query = sqlx::query_as(sqlx::AssertSqlSafe(statement))
        .bind(filter.email.as_ref().map(Email::as_str))
        .bind(filter.key_type.map(KeyType::as_str))
        .bind(status)
        .bind(now)
        .bind(after.map(|cursor| cursor.created_at))
        .bind(after.map(|cursor| cursor.key.as_str()))
        .bind(limit);
    all(connection, query).await
}

/// What validation needs, and nothing else: the hot path reads one row by
/// primary key, without a transaction.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Validation {
    pub key_type: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub features: Json<BTreeMap<String, bool>>,
}

#[tracing::instrument(skip(executor))]
pub async fn validation<'e, E>(executor: E, key: &LicenseKey) -> Result<Option<Validation>, sqlx::Error>
where
    E: sqlx::PgExecutor<'e>,
{
    sqlx::query_as("SELECT key_type, expires_at, disabled_at, features FROM license_keys WHERE key = $1")
        .bind(key.as_str())
        .fetch_optional(executor)
        .await
}

/// Records `access` as the customer's latest change, unless a newer one was
/// recorded already; whether it is the latest. Concurrent calls for one
/// customer serialize on its row.
#[tracing::instrument(skip(connection))]
pub async fn record_access(
    connection: &mut PgConnection,
    customer: &CustomerRef,
    access: Access,
    version: i64,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let customer = customer.access_id();
    let access = match access {
        Access::Active => "active",
        Access::Suspended(_) => "suspended",
    };
    let latest = sqlx::query(
        "INSERT INTO customer_access (customer, access, version, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (customer) DO UPDATE SET access = EXCLUDED.access, version = EXCLUDED.version, \
         updated_at = EXCLUDED.updated_at WHERE customer_access.version < EXCLUDED.version",
    )
    .bind(customer)
    .bind(access)
    .bind(version)
    .bind(now)
    .execute(connection)
    .await?
    .rows_affected();
    Ok(latest == 1)
}
