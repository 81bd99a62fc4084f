//! The gateway's settings, from the environment.

use std::{net::SocketAddr, time::Duration};

use platform::config::{self, ConfigError, Secret};

pub const DEFAULT_PORT: u16 = 8080;

#[derive(Debug, Clone)]
pub struct Config {
    /// `LISTEN_ADDR`, default `0.0.0.0:8080`.
    pub listen_addr: SocketAddr,
    /// `IDENTITY_URL`, default `http://127.0.0.1:50051`.
    pub identity_url: String,
    /// `LICENSE_URL`, default `http://127.0.0.1:50052`.
    pub license_url: String,
    /// `BILLING_URL`, default `http://127.0.0.1:50053`.
    pub billing_url: String,
    /// `VALIDATE_RATE_LIMIT_PER_SEC`, default 100: license validations one
    /// client address may make per second, counted in this process (each
    /// gateway replica allows this many).
    pub validate_rate_limit_per_sec: u32,
    /// `VALIDATION_CACHE_CAPACITY`, default 50000: license validations kept
    /// in this process's memory (about 250 bytes each); 0 turns the cache
    /// off, and every validation asks license-svc.
    pub validation_cache_capacity: usize,
    /// `VALIDATION_CACHE_MAX_AGE_MS`, default 5000: the longest a cached
    /// validation is used. Announced changes drop entries at once; this
    /// bounds how long one whose announcement was lost can be used.
    pub validation_cache_max_age: Duration,
    /// `REDIS_URL`: where session floors are read and changed keys announced.
    pub redis_url: Secret<String>,
    /// `REDIS_KEY_PREFIX`, default `reactivation:` (must match the services').
    pub redis_key_prefix: String,
    /// `JWT_PUBLIC_KEY`: Ed25519 public key (SPKI PEM) that verifies access tokens.
    pub jwt_public_key: String,
    /// `ACCESS_TOKEN_TTL_SECS`, default 900.
    pub access_token_ttl: Duration,
    /// `DOWNSTREAM_TIMEOUT_MS`, default 5000: the deadline of every call to a service.
    pub downstream_timeout: Duration,
    /// `CORS_ALLOWED_ORIGINS`: comma-separated origins allowed to call the
    /// API from a browser; empty allows none.
    pub cors_allowed_origins: Vec<String>,
    /// `SHUTDOWN_DRAIN_DELAY_SECS`, default 0.
    pub drain_delay: Duration,
    /// `TRUST_FORWARDED_FOR`, default false: take the client's address from
    /// the first `X-Forwarded-For` entry (set it only behind a proxy that
    /// overwrites that header), else from the TCP peer.
    pub trust_forwarded_for: bool,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            listen_addr: config::parsed_or("LISTEN_ADDR", SocketAddr::from(([0, 0, 0, 0], DEFAULT_PORT)))?,
            identity_url: config::optional("IDENTITY_URL").unwrap_or_else(|| "http://127.0.0.1:50051".into()),
            license_url: config::optional("LICENSE_URL").unwrap_or_else(|| "http://127.0.0.1:50052".into()),
            billing_url: config::optional("BILLING_URL").unwrap_or_else(|| "http://127.0.0.1:50053".into()),
            validate_rate_limit_per_sec: config::parsed_or("VALIDATE_RATE_LIMIT_PER_SEC", 100)?,
            validation_cache_capacity: config::parsed_or("VALIDATION_CACHE_CAPACITY", 50_000)?,
            validation_cache_max_age: Duration::from_millis(config::parsed_or("VALIDATION_CACHE_MAX_AGE_MS", 5000)?),
            redis_url: config::secret("REDIS_URL")?,
            redis_key_prefix: config::optional("REDIS_KEY_PREFIX").unwrap_or_else(|| "reactivation:".into()),
            jwt_public_key: config::required("JWT_PUBLIC_KEY")?,
            access_token_ttl: Duration::from_secs(config::parsed_or("ACCESS_TOKEN_TTL_SECS", 900)?),
            downstream_timeout: Duration::from_millis(config::parsed_or("DOWNSTREAM_TIMEOUT_MS", 5000)?),
            cors_allowed_origins: config::optional("CORS_ALLOWED_ORIGINS")
                .map(|origins| {
                    origins
                        .split(',')
                        .map(|origin| origin.trim().to_owned())
                        .filter(|origin| !origin.is_empty())
                        .collect()
                })
                .unwrap_or_default(),
            drain_delay: Duration::from_secs(config::parsed_or("SHUTDOWN_DRAIN_DELAY_SECS", 0)?),
            trust_forwarded_for: config::parsed_or("TRUST_FORWARDED_FOR", false)?,
        })
    }
}
