//! Configuration from environment variables (12-factor).
//!
//! Each service describes its settings as a struct built by `from_env`; these
//! helpers give every variable the same parsing and the same error messages,
//! and [`Secret`] keeps credentials out of logs and `Debug` output.

use std::{fmt, str::FromStr};

/// A value that must never be printed: database URLs with passwords, keys,
/// SMTP credentials. `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Self(value)
    }

    /// The secret value itself; call sites are easy to audit by this name.
    pub fn expose(&self) -> &T {
        &self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret<String> {
    fn from(value: String) -> Self {
        Self(value)
    }
}

impl From<&str> for Secret<String> {
    fn from(value: &str) -> Self {
        Self(value.to_owned())
    }
}

/// A setting that is missing or does not parse.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is required")]
    Missing(&'static str),
    #[error("environment variable {name} is invalid: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// The variable's value, or `None` when unset or empty.
pub fn optional(name: &'static str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.trim().is_empty())
}

/// The variable's value; an error naming it when unset.
pub fn required(name: &'static str) -> Result<String, ConfigError> {
    optional(name).ok_or(ConfigError::Missing(name))
}

/// The variable parsed as `T`, or `default` when unset.
pub fn parsed_or<T>(name: &'static str, default: T) -> Result<T, ConfigError>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    match optional(name) {
        None => Ok(default),
        Some(raw) => raw.trim().parse().map_err(|err: T::Err| ConfigError::Invalid {
            name,
            reason: err.to_string(),
        }),
    }
}

/// A secret variable; an error naming it when unset.
pub fn secret(name: &'static str) -> Result<Secret<String>, ConfigError> {
    required(name).map(Secret::new)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_their_value() {
        let secret = Secret::from("postgres://app:hunter2@db/identity");
        assert_eq!(format!("{secret:?}"), "[redacted]");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert!(!format!("{:?}", Some(&secret)).contains("hunter2"));
    }
}

/// The settings every gRPC service of the mesh reads the same way.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// `LISTEN_ADDR`, default `0.0.0.0:<default port>`.
    pub listen_addr: std::net::SocketAddr,
    /// `DATABASE_URL`: this service's own database.
    pub database_url: Secret<String>,
    /// `DATABASE_MAX_CONNECTIONS`, default 10.
    pub database_max_connections: u32,
    /// `REDIS_URL`.
    pub redis_url: Secret<String>,
    /// `REDIS_KEY_PREFIX`, default `reactivation:`; every key lives under it.
    pub redis_key_prefix: String,
    /// `JWT_PUBLIC_KEY`: Ed25519 public key (SPKI PEM) that verifies access tokens.
    pub jwt_public_key: String,
    /// `INTERNAL_API_TOKEN`: the secret services present to each other.
    pub internal_token: Secret<String>,
    /// `ACCESS_TOKEN_TTL_SECS`, default 900: how long an access token lives.
    pub access_token_ttl: std::time::Duration,
    /// `SHUTDOWN_DRAIN_DELAY_SECS`, default 0: how long to keep answering
    /// after reporting NOT_SERVING, so load balancers can stop routing here.
    pub drain_delay: std::time::Duration,
    /// How long a call waits for Postgres or Redis before answering UNAVAILABLE.
    pub store_timeouts: StoreTimeouts,
    /// How long this service waits for another service's answer.
    pub call_timeouts: CallTimeouts,
}

/// The deadline of a call to another service of the mesh (an outbox
/// delivery): past it the call fails and the relay tries again later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallTimeouts {
    /// `CALL_TIMEOUT_MS`, default 5000: a call answered from the callee's
    /// own stores.
    pub call: std::time::Duration,
    /// `PAYMENT_CALL_TIMEOUT_MS`, default 30000: a call the callee answers
    /// only after the payment provider has (billing-svc cancelling a
    /// subscription or deleting a customer at Stripe).
    pub payment_call: std::time::Duration,
}

impl Default for CallTimeouts {
    fn default() -> Self {
        Self {
            call: std::time::Duration::from_secs(5),
            payment_call: std::time::Duration::from_secs(30),
        }
    }
}

impl CallTimeouts {
    pub fn from_env() -> Result<Self, ConfigError> {
        let default = Self::default();
        Ok(Self {
            call: millis_or("CALL_TIMEOUT_MS", default.call)?,
            payment_call: millis_or("PAYMENT_CALL_TIMEOUT_MS", default.payment_call)?,
        })
    }
}

/// The variable as a number of milliseconds, or `default` when unset.
fn millis_or(name: &'static str, default: std::time::Duration) -> Result<std::time::Duration, ConfigError> {
    let default = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    Ok(std::time::Duration::from_millis(parsed_or(name, default)?))
}

/// How long a call waits for a store before giving up with UNAVAILABLE:
/// well under the gateway's deadline (`DOWNSTREAM_TIMEOUT_MS`), so a store
/// that is down gets a fast, clean 503 rather than a timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreTimeouts {
    /// `DATABASE_ACQUIRE_TIMEOUT_MS`, default 1000: the longest wait for a
    /// Postgres connection from the pool, connecting included.
    pub database_acquire: std::time::Duration,
    /// `REDIS_TIMEOUT_MS`, default 1000: the longest wait to connect to
    /// Redis, and for any one answer from it.
    pub redis: std::time::Duration,
}

impl Default for StoreTimeouts {
    fn default() -> Self {
        Self {
            database_acquire: std::time::Duration::from_secs(1),
            redis: std::time::Duration::from_secs(1),
        }
    }
}

impl StoreTimeouts {
    pub fn from_env() -> Result<Self, ConfigError> {
        let default = Self::default();
        Ok(Self {
            database_acquire: millis_or("DATABASE_ACQUIRE_TIMEOUT_MS", default.database_acquire)?,
            redis: millis_or("REDIS_TIMEOUT_MS", default.redis)?,
        })
    }
}

impl ServiceConfig {
    pub fn from_env(default_port: u16) -> Result<Self, ConfigError> {
        let default_addr = std::net::SocketAddr::from(([0, 0, 0, 0], default_port));
        Ok(Self {
            listen_addr: parsed_or("LISTEN_ADDR", default_addr)?,
            database_url: secret("DATABASE_URL")?,
            database_max_connections: parsed_or("DATABASE_MAX_CONNECTIONS", 10)?,
            redis_url: secret("REDIS_URL")?,
            redis_key_prefix: optional("REDIS_KEY_PREFIX").unwrap_or_else(|| "reactivation:".into()),
            jwt_public_key: required("JWT_PUBLIC_KEY")?,
            internal_token: secret("INTERNAL_API_TOKEN")?,
            access_token_ttl: std::time::Duration::from_secs(parsed_or("ACCESS_TOKEN_TTL_SECS", 900)?),
            drain_delay: std::time::Duration::from_secs(parsed_or("SHUTDOWN_DRAIN_DELAY_SECS", 0)?),
            store_timeouts: StoreTimeouts::from_env()?,
            call_timeouts: CallTimeouts::from_env()?,
        })
    }

    /// This service's Postgres pool, with its acquire timeout.
    #[cfg(feature = "postgres")]
    pub async fn connect_database(&self) -> anyhow::Result<sqlx::PgPool> {
        crate::db::connect_with(
            &self.database_url,
            self.database_max_connections,
            self.store_timeouts.database_acquire,
        )
        .await
    }

    /// This service's Redis connection, with its timeouts.
    pub async fn connect_redis(&self) -> anyhow::Result<crate::kv::Kv> {
        crate::kv::Kv::connect_with(&self.redis_url, &self.redis_key_prefix, self.store_timeouts.redis).await
    }
}
