//! The gateway's settings, from the environment.

use std::{net::SocketAddr, time::Duration};

use platform::config::{self, ConfigError, Secret};

use crate::client_address::TrustedProxies;

pub const DEFAULT_PORT: u16 = 8080;

/// The settings this binary reads besides the telemetry ones, as
/// `--help` lists them (a test checks none is missing).
pub const SETTINGS: &str = "\
  LISTEN_ADDR                 HTTP address (default 0.0.0.0:8080)
  IDENTITY_URL                identity-svc (default http://127.0.0.1:50051)
  LICENSE_URL                 license-svc (default http://127.0.0.1:50052)
  BILLING_URL                 billing-svc (default http://127.0.0.1:50053)
  REDIS_URL                   redis:// or rediss:// (TLS) (secret)
  REDIS_KEY_PREFIX            must match the services' (default reactivation:)
  REDIS_TIMEOUT_MS            longest wait to connect or for an answer (default 1000)
  JWT_PUBLIC_KEY              Ed25519 SPKI PEM that verifies access tokens
  ACCESS_TOKEN_TTL_SECS       default 900
  DOWNSTREAM_TIMEOUT_MS       deadline of every call to a service (default 5000)
  VALIDATE_RATE_LIMIT_PER_SEC license validations per client address per second (default 100)
  VALIDATION_CACHE_CAPACITY   cached validations, 0 turns the cache off (default 50000)
  VALIDATION_CACHE_MAX_AGE_MS longest a cached validation is used (default 5000)
  CORS_ALLOWED_ORIGINS        comma-separated browser origins allowed
  SHUTDOWN_DRAIN_DELAY_SECS   default 0
  TRUSTED_PROXIES             proxies in front: a hop count or CIDRs, for X-Forwarded-For (default none)
  MAX_CONNECTIONS             open connections; more wait (default 4096)
  MAX_REQUESTS_IN_FLIGHT      requests at once; more get 503 (default 512)
  REQUEST_TIMEOUT_MS          a request's deadline (default 15000)
  HEADER_READ_TIMEOUT_MS      longest wait for a request's headers (default 5000)
  MAX_HEADER_BYTES            request line and headers; 431 beyond (default 16384)
  MAX_BODY_BYTES              request bodies; 413 beyond (default 65536)
  WEB_SECURE_COOKIES          the web app's cookies are Secure, __Host- named (default true; false for local HTTP)
";

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
    /// `REDIS_TIMEOUT_MS`, default 1000: the longest wait to connect to
    /// Redis or for one of its answers, so a Redis that is down costs a
    /// request a fast 503, not the whole deadline.
    pub redis_timeout: Duration,
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
    /// `TRUSTED_PROXIES`, default none: how many proxies stand in front
    /// (`1` behind one ingress), or their networks (`10.0.0.0/8,…`), so the
    /// client's address is read from the right of `X-Forwarded-For`.
    pub trusted_proxies: TrustedProxies,
    pub limits: Limits,
    /// `WEB_SECURE_COOKIES`, default true: the web app's cookies are
    /// `Secure` with `__Host-` names. Turn off only for local development
    /// over plain HTTP.
    pub secure_cookies: bool,
}

/// What a flood or a slow client may take from the gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `MAX_CONNECTIONS`, default 4096: open connections; more wait.
    pub max_connections: usize,
    /// `MAX_REQUESTS_IN_FLIGHT`, default 512: requests served at once; more
    /// are refused with 503 and `Retry-After`.
    pub max_in_flight: usize,
    /// `REQUEST_TIMEOUT_MS`, default 15000: a request still unanswered then
    /// is abandoned with 503 (longer than `DOWNSTREAM_TIMEOUT_MS`).
    pub request_timeout: Duration,
    /// `HEADER_READ_TIMEOUT_MS`, default 5000: longest wait for a request's headers.
    pub header_read_timeout: Duration,
    /// `MAX_HEADER_BYTES`, default 16384: request line and headers; 431 beyond.
    pub max_header_bytes: usize,
    /// `MAX_BODY_BYTES`, default 65536: request bodies (the Stripe webhook
    /// takes up to 1 MiB); 413 beyond.
    pub max_body_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_connections: 4096,
            max_in_flight: 512,
            request_timeout: Duration::from_secs(15),
            header_read_timeout: Duration::from_secs(5),
            max_header_bytes: 16 * 1024,
            max_body_bytes: 64 * 1024,
        }
    }
}

impl Limits {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            max_connections: config::parsed_or("MAX_CONNECTIONS", defaults.max_connections)?,
            max_in_flight: config::parsed_or("MAX_REQUESTS_IN_FLIGHT", defaults.max_in_flight)?,
            request_timeout: Duration::from_millis(config::parsed_or("REQUEST_TIMEOUT_MS", 15_000)?),
            header_read_timeout: Duration::from_millis(config::parsed_or("HEADER_READ_TIMEOUT_MS", 5000)?),
            max_header_bytes: config::parsed_or("MAX_HEADER_BYTES", defaults.max_header_bytes)?,
            max_body_bytes: config::parsed_or("MAX_BODY_BYTES", defaults.max_body_bytes)?,
        })
    }
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
            redis_timeout: Duration::from_millis(config::parsed_or("REDIS_TIMEOUT_MS", 1000)?),
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
            secure_cookies: config::parsed_or("WEB_SECURE_COOKIES", true)?,
            trusted_proxies: config::optional("TRUSTED_PROXIES")
                .unwrap_or_default()
                .parse()
                .map_err(|reason| ConfigError::Invalid {
                    name: "TRUSTED_PROXIES",
                    reason,
                })?,
            limits: Limits::from_env()?,
        })
    }
}
