//! Redis: the mesh's only shared, short-lived state (session floors,
//! one-time tokens, rate-limit counters).
//!
//! Every key is built by [`Kv::key`] under a configurable prefix, so several
//! environments — or several tests — can share one Redis without touching
//! each other's keys.

use std::sync::Arc;

use redis::aio::ConnectionManager;

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
    pub async fn connect(url: &Secret<String>, prefix: &str) -> anyhow::Result<Self> {
        let client = redis::Client::open(url.expose().as_str())?;
        let connection = ConnectionManager::new(client).await?;
        Ok(Self {
            connection,
            prefix: Arc::from(prefix),
        })
    }

    /// `prefix` + the parts joined with `:`.
    pub fn key(&self, parts: &[&str]) -> String {
        let mut key = String::from(&*self.prefix);
        for (index, part) in parts.iter().enumerate() {
            if index > 0 {
                key.push(':');
            }
            key.push_str(part);
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
}
