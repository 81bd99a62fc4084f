//! Redis: the mesh's only shared, short-lived state (session floors,
//! one-time tokens, rate-limit counters).
//!
//! Every key is built by [`Kv::key`] under a configurable prefix, so several
//! environments — or several tests — can share one Redis without touching
//! each other's keys.
//!
//! Every connect and every answer is bounded by a timeout, so a Redis that
//! is down costs a call a second at most (it then leaves as UNAVAILABLE).
//! The connection reconnects by itself; [`Kv::retry_once`] lets a command
//! that met a stale connection (Redis restarted, a proxy dropped it) run
//! again on the fresh one instead of failing.

use std::{future::Future, sync::Arc, time::Duration};

use redis::{
    RedisResult,
    aio::{ConnectionManager, ConnectionManagerConfig},
};

use crate::config::Secret;

/// A reconnecting Redis connection and the key space it works in.
#[derive(Clone)]
pub struct Kv {
    connection: ConnectionManager,
    prefix: Arc<str>,
}

impl std::fmt::Debug for Kv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kv")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

impl Kv {
    /// A connection with the default timeouts (tests and tools).
    pub async fn connect(url: &Secret<String>, prefix: &str) -> anyhow::Result<Self> {
        Self::connect_with(url, prefix, crate::config::StoreTimeouts::default().redis).await
    }

    /// A connection whose connects and answers each take at most `timeout`.
    pub async fn connect_with(url: &Secret<String>, prefix: &str, timeout: Duration) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose().as_str())?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            // Commands wait for a reconnect in progress, so it must give up
            // quickly: one more try, then the command fails (UNAVAILABLE)
            // and the next command starts a fresh reconnect — a Redis that
            // comes back is used by the first call after it does.
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(200));
        let connection = ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            connection,
            prefix: Arc::from(prefix),
        })
    }

    /// `prefix` + the parts joined with `:`.
    pub fn key<S: AsRef<str>>(&self, parts: &[S]) -> String {
        let mut key = String::from(&*self.prefix);
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                key.push(':');
            }
            key.push_str(part.as_ref());
        }
        key
    }

    /// A handle for running commands; cheap to clone, reconnects by itself.
    pub fn connection(&self) -> ConnectionManager {
        self.connection.clone()
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Whether Redis answers a `PING` within `timeout`.
    pub async fn is_reachable(&self, timeout: Duration) -> bool {
        let mut connection = self.connection();
        let command = redis::cmd("PING");
        let ping = command.query_async::<String>(&mut connection);
        matches!(tokio::time::timeout(timeout, ping).await, Ok(Ok(_)))
    }

    /// Runs `command`, and once more if the connection turned out to be
    /// dropped (the manager reconnects meanwhile). Only for commands that
    /// are safe to repeat: a second run must not change what the first
    /// would have done.
    pub async fn retry_once<T, F, Fut>(&self, command: F) -> RedisResult<T>
    where
        F: Fn(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match command(self.connection()).await {
            Err(err) if err.is_connection_dropped() => {
                tracing::info!(error = %err, "Redis connection was dropped; retrying on a new one");
                command(self.connection()).await
            }
            answer => answer,
        }
    }
}
