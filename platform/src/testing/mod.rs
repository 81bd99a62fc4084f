//! Test support: every test gets a database and a Redis key space of its own.
//!
//! Real servers are used: `DATABASE_URL` names a Postgres server (any
//! database on it; each test creates `test_<uuid>`, migrates it and drops it
//! afterwards) and `REDIS_URL` a Redis server (each test works under its own
//! key prefix, deleted afterwards). When they are unset the tests say so and
//! stop: no Docker engine runs on the development machines, so containers
//! cannot stand in for them here.

pub mod cli;
mod poll;
pub mod redis_proxy;
pub mod smtp;

pub use poll::{eventually, eventually_some};

use std::sync::{Arc, Mutex};

use opentelemetry_sdk::{
    error::OTelSdkResult,
    trace::{SpanData, SpanExporter},
};
use sqlx::migrate::Migrator;

use crate::{config::Secret, db, kv::Kv};

fn server_variable(name: &'static str) -> Secret<String> {
    crate::config::optional(name).map(Secret::new).unwrap_or_else(|| {
        panic!(
            "{name} is not set: tests need a real server (see README, \"Running the tests\"); \
             e.g. {name}={}",
            match name {
                "DATABASE_URL" => "postgres://postgres@127.0.0.1:5432/postgres",
                _ => "redis://127.0.0.1:6379",
            }
        )
    })
}

/// The Postgres server the tests run against.
pub fn database_server_url() -> Secret<String> {
    server_variable("DATABASE_URL")
}

/// The Redis server the tests run against.
pub fn redis_url() -> Secret<String> {
    server_variable("REDIS_URL")
}

/// A freshly created, migrated database, dropped when this value is dropped.
#[derive(Debug)]
pub struct TestDatabase {
    pub url: Secret<String>,
    name: String,
    server: Secret<String>,
}

impl TestDatabase {
    pub async fn create(migrator: &Migrator) -> Self {
        let server = database_server_url();
        let name = format!("test_{}", uuid::Uuid::new_v4().simple());
        db::ensure_database(&server, &name).await.expect("create test database");
        let url = db::database_url(&server, &name);
        let pool = db::connect(&url, 2).await.expect("connect to test database");
        db::migrate(&pool, migrator).await.expect("migrate test database");
        pool.close().await;
        Self { url, name, server }
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let statement = format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name);
        // Drop runs inside the test's runtime, which must not block on
        // itself: clean up from a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                use sqlx::Connection as _;
                let mut connection = sqlx::PgConnection::connect(server.expose()).await?;
                // The name is generated above, never user input.
                sqlx::query(sqlx::AssertSqlSafe(statement))
                    .execute(&mut connection)
                    .await?;
                anyhow::Ok(())
            })
        })
        .join();
    }
}

/// A Redis key prefix of this test's own; its keys are deleted on drop.
#[derive(Debug)]
pub struct TestKeySpace {
    pub url: Secret<String>,
    pub prefix: String,
}

impl TestKeySpace {
    pub fn new() -> Self {
        Self {
            url: redis_url(),
            prefix: format!("test:{}:", uuid::Uuid::new_v4().simple()),
        }
    }

    pub async fn connect(&self) -> Kv {
        Kv::connect(&self.url, &self.prefix).await.expect("connect to Redis")
    }

    /// Every key and its value under this test's prefix.
    pub async fn entries(&self) -> Vec<(String, String)> {
        let kv = self.connect().await;
        let mut connection = kv.connection();
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut connection)
            .await
            .expect("list keys");
        let mut entries = Vec::new();
        for key in keys {
            let value: redis::Value = redis::cmd("DUMP")
                .arg(&key)
                .query_async(&mut connection)
                .await
                .expect("dump");
            entries.push((key, format!("{value:?}")));
        }
        entries
    }
}

impl Default for TestKeySpace {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestKeySpace {
    fn drop(&mut self) {
        let url = self.url.clone();
        let pattern = format!("{}*", self.prefix);
        let _ = std::thread::spawn(move || {
            let client = redis::Client::open(url.expose().as_str())?;
            let mut connection = client.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut connection)?;
            if !keys.is_empty() {
                let () = redis::cmd("DEL").arg(keys).query(&mut connection)?;
            }
            anyhow::Ok(())
        })
        .join();
    }
}

/// Collects finished spans in memory, for tests that assert on traces.
#[derive(Debug, Clone, Default)]
pub struct SpanCollector {
    spans: Arc<Mutex<Vec<SpanData>>>,
}

impl SpanCollector {
    pub fn spans(&self) -> Vec<SpanData> {
        self.spans.lock().expect("span collector poisoned").clone()
    }
}

impl SpanExporter for SpanCollector {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        self.spans.lock().expect("span collector poisoned").extend(batch);
        Ok(())
    }
}

/// An access token for `user_id` as identity issues one at login: signed,
/// and with the account's session floor set to its state version (0), since
/// verifiers refuse a token whose account has no floor.
pub fn access_token(
    signer: &crate::auth::TokenSigner,
    keys: &TestKeySpace,
    user_id: uuid::Uuid,
    roles: Vec<crate::auth::Role>,
) -> String {
    let parts = crate::auth::floor_key_parts(user_id);
    let key = format!("{}{}", keys.prefix, parts.join(":"));
    let mut connection = redis::Client::open(keys.url.expose().as_str())
        .and_then(|client| client.get_connection())
        .expect("connect to Redis");
    redis::cmd("SET")
        .arg(&key)
        .arg(0)
        .arg("EX")
        .arg(signer.ttl().as_secs().max(1) * 2)
        .exec(&mut connection)
        .expect("set the session floor");
    signer.sign(user_id, roles, 0).expect("sign an access token")
}

/// The settings of a service under test: port 0 on loopback, the test's
/// database and key space, no drain delay.
pub fn service_config(
    database: &TestDatabase,
    keys: &TestKeySpace,
    public_key: &str,
    internal: &crate::auth::InternalToken,
) -> crate::config::ServiceConfig {
    crate::config::ServiceConfig {
        listen_addr: "127.0.0.1:0".parse().expect("a loopback address"),
        database_url: database.url.clone(),
        database_max_connections: 5,
        redis_url: keys.url.clone(),
        redis_key_prefix: keys.prefix.clone(),
        jwt_public_key: public_key.to_owned(),
        internal_token: internal.secret().clone(),
        access_token_ttl: std::time::Duration::from_secs(900),
        drain_delay: std::time::Duration::ZERO,
        store_timeouts: crate::config::StoreTimeouts::default(),
        call_timeouts: crate::config::CallTimeouts::default(),
    }
}

static TELEMETRY: std::sync::OnceLock<(crate::telemetry::Telemetry, SpanCollector)> = std::sync::OnceLock::new();

/// Installs tracing once for this test process — so audit events get trace
/// ids — and returns the collector of every span finished since.
pub fn spans() -> SpanCollector {
    TELEMETRY
        .get_or_init(|| {
            let collector = SpanCollector::default();
            let telemetry = crate::telemetry::init_with_exporter("tests", collector.clone());
            (telemetry, collector)
        })
        .1
        .clone()
}

/// A free port for a server a test starts later, when others must know its
/// address first.
///
/// Picked at random below the kernel's ephemeral range (32768 and up), so a
/// port another test process binds with port 0 cannot take it between now
/// and the server's own bind; a lock file per port keeps the other test
/// processes from picking it too.
pub fn free_port() -> u16 {
    use std::hash::{BuildHasher as _, Hasher as _};
    // Held until this process exits: a port picked here stays this
    // process's even while nothing listens on it (before its server starts,
    // or while a test has stopped it), and no other test process picks it.
    static RESERVED: std::sync::Mutex<Vec<std::fs::File>> = std::sync::Mutex::new(Vec::new());
    let reservations = std::env::temp_dir().join("reactivation-test-ports");
    std::fs::create_dir_all(&reservations).expect("a folder for port reservations");
    loop {
        let random = std::collections::hash_map::RandomState::new().build_hasher().finish();
        let port = 20_000 + (random % 12_000) as u16;
        let Ok(reservation) = std::fs::File::create(reservations.join(port.to_string())) else {
            continue;
        };
        // A lock is per opened file, so this process's own earlier
        // reservation of the same port refuses it too.
        if reservation.try_lock().is_err() {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            RESERVED
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .push(reservation);
            return port;
        }
    }
}
