//! The `admin_reads` table: which admin read which account's personal data,
//! what of it, when, and in which request's trace.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ReadKind;

/// Records that `actor_id` read `what` of each account of `user_ids`, in
/// one statement however many there are, stamped with the trace id of the
/// current request.
#[tracing::instrument(skip(connection, user_ids), fields(accounts = user_ids.len()))]
pub async fn record(
    connection: &mut PgConnection,
    actor_id: Uuid,
    user_ids: &[Uuid],
    what: ReadKind,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if user_ids.is_empty() {
        return Ok(());
    }
    let insert = sqlx::query(
        "INSERT INTO admin_reads (actor_id, user_id, what, trace_id, read_at) \
         SELECT $1, read.user_id, $3, $4, $5 FROM unnest($2::uuid[]) AS read (user_id)",
    )
    .bind(actor_id)
    .bind(user_ids);
    platform::db::record_admin_read(connection, insert, what.as_str(), now).await
}

/// Deletes every record of reads of `user_id`'s data: erasure leaves no
/// trace of whom support looked at.
#[tracing::instrument(skip(connection))]
pub async fn forget_reads_of(connection: &mut PgConnection, user_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM admin_reads WHERE user_id = $1")
        .bind(user_id)
        .execute(connection)
        .await?;
    Ok(())
}
