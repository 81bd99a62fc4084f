//! The `admin_reads` table: which admin read which key's details, what of
//! them, when, and in which request's trace.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{License, ReadKind};

/// Records that `actor_id` read `what` of `license`, stamped with the trace
/// id of the current request.
#[tracing::instrument(skip(connection, license), fields(key = %license.key))]
pub async fn record(
    connection: &mut PgConnection,
    actor_id: Uuid,
    license: &License,
    what: ReadKind,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let insert = sqlx::query(
        "INSERT INTO admin_reads (actor_id, key, owner_user_id, what, trace_id, read_at) \
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(actor_id)
    .bind(license.key.as_str())
    .bind(license.owner_user_id);
    platform::db::record_admin_read(connection, insert, what.as_str(), now).await
}

/// Deletes every record of reads of the keys spelt `keys`, or of any key
/// `owner` owned when it was read: erasure leaves no trace of whose keys
/// support looked at.
#[tracing::instrument(skip_all)]
pub async fn forget_reads_of(
    connection: &mut PgConnection,
    keys: &[String],
    owner: Option<Uuid>,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_reads WHERE key = ANY($1) OR owner_user_id = $2")
        .bind(keys)
        .bind(owner)
        .execute(connection)
        .await?;
    Ok(())
}
