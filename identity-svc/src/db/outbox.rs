//! What identity reads of its outbox (the relay in `platform` owns the
//! table and its writes).

use sqlx::PgConnection;

/// Whether an effect keyed `idempotency_key` is owed already (pending or
/// delivered, until the relay forgets it).
#[tracing::instrument(skip(connection))]
pub async fn is_owed(connection: &mut PgConnection, idempotency_key: &str) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM outbox WHERE idempotency_key = $1)")
        .bind(idempotency_key)
        .fetch_one(connection)
        .await
}
