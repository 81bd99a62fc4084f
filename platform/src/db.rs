//! Postgres: one pool per service, migrations applied at start-up.
//!
//! sqlx's migrator holds a Postgres advisory lock while it applies
//! migrations, so replicas starting at the same moment apply each migration
//! exactly once and the others wait, then find nothing left to do.

use std::time::Duration;

use sqlx::{PgPool, migrate::Migrator, postgres::PgPoolOptions};

use crate::config::Secret;

/// A pool with the default acquire timeout (tests and tools).
pub async fn connect(url: &Secret<String>, max_connections: u32) -> anyhow::Result<PgPool> {
    connect_with(
        url,
        max_connections,
        crate::config::StoreTimeouts::default().database_acquire,
    )
    .await
}

/// A pool whose calls wait at most `acquire_timeout` for a connection —
/// reconnecting included — so while Postgres is down each call fails fast
/// (and leaves as UNAVAILABLE) instead of hanging until its caller's
/// deadline. Connections are pinged before use, so the first call after
/// Postgres comes back gets a fresh one rather than a dead one.
pub async fn connect_with(
    url: &Secret<String>,
    max_connections: u32,
    acquire_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let pool = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .test_before_acquire(true)
        .connect(url.expose())
        .await
        .map_err(|err| anyhow::anyhow!("cannot connect to Postgres: {err}"))?;
    Ok(pool)
}

pub async fn migrate(pool: &PgPool, migrator: &Migrator) -> anyhow::Result<()> {
    migrator
        .run(pool)
        .await
        .map_err(|err| anyhow::anyhow!("cannot apply migrations: {err}"))?;
    Ok(())
}

/// Applies `migrator` to the database at `url` and closes the connection:
/// the `migrate` command of every service.
pub async fn migrate_database(url: &Secret<String>, migrator: &Migrator) -> anyhow::Result<()> {
    let pool = connect(url, 1).await?;
    migrate(&pool, migrator).await?;
    pool.close().await;
    Ok(())
}

/// Creates database `name` on the server of `server_url` unless it exists.
/// Used by the development launcher and tests; production databases are
/// provisioned by the operator.
pub async fn ensure_database(server_url: &Secret<String>, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(server_url.expose()).await?;
    let exists: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
        .bind(name)
        .fetch_one(&mut connection)
        .await?;
    if !exists {
        let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
        if let Err(err) = sqlx::query(sqlx::AssertSqlSafe(statement))
            .execute(&mut connection)
            .await
        {
            // (The name is quoted as an identifier above, so it cannot inject.)
            // Another launcher may have created it between the check and now.
            let duplicate = err
                .as_database_error()
                .and_then(|db| db.code())
                .is_some_and(|code| code == "42P04");
            if !duplicate {
                return Err(err.into());
            }
        }
    }
    Ok(())
}

/// `server_url` with its database path replaced by `name`.
pub fn database_url(server_url: &Secret<String>, name: &str) -> Secret<String> {
    let url = server_url.expose();
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url.as_str(), None),
    };
    // postgres://user@host:port/db → keep everything up to the last '/'
    // after the authority.
    let authority_start = base.find("://").map_or(0, |index| index + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    let mut result = format!("{base}/{name}");
    if let Some(query) = query {
        result.push('?');
        result.push_str(query);
    }
    Secret::new(result)
}

/// Runs an insert into a service's `admin_reads` table whose leading
/// placeholders (who read, and whose data) `insert` has already bound, and
/// whose last three are what was read, the current request's trace id and
/// when — the stamp every admin read carries, so support can find the
/// request's trace from the record.
pub async fn record_admin_read<'q>(
    connection: &mut sqlx::PgConnection,
    insert: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    what: &'q str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<(), sqlx::Error> {
    insert
        .bind(what)
        .bind(crate::telemetry::current_trace_id())
        .bind(now)
        .execute(connection)
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_url_swaps_only_the_database() {
        let server = Secret::from("postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable");
        assert_eq!(
            database_url(&server, "identity").expose(),
            "postgres://postgres@127.0.0.1:5432/identity?sslmode=disable"
        );
        let bare = Secret::from("postgres://u:p@db:5432");
        assert_eq!(database_url(&bare, "x").expose(), "postgres://u:p@db:5432/x");
    }
}
