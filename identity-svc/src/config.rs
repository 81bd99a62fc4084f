//! identity-svc's settings, from the environment.

use std::time::Duration;

use platform::config::{self, ConfigError, Secret, ServiceConfig};

/// The port identity-svc listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 50051;

/// The settings this binary reads besides `platform::cli::SERVICE_SETTINGS` and the telemetry ones, as
/// `--help` lists them (a test checks none is missing).
pub const SETTINGS: &str = "\
  JWT_PRIVATE_KEY             Ed25519 PKCS#8 PEM that signs access tokens (secret)
  PASSWORD_HASH_CONCURRENCY   argon2id hashes at once (default: the number of cores)
  PASSWORD_HASH_QUEUE         password checks waiting; beyond, a login is told to retry (default 64)
  LOGIN_MAX_PER_CLIENT_PER_MINUTE            login attempts per client address (default 30)
  LOGIN_MAX_FAILURES_PER_ACCOUNT_PER_CLIENT  wrong passwords per email per address (default 10)
  LOGIN_FAILURE_WINDOW_SECS   the window of those failures (default 900)
  BOOTSTRAP_ADMIN_EMAIL       the first admin, created at start-up if unknown
  BOOTSTRAP_ADMIN_PASSWORD    that admin's password (secret)
  NOTIFY_URL                  notify-svc (default http://127.0.0.1:50054)
  BILLING_URL                 billing-svc (default http://127.0.0.1:50053)
  LICENSE_URL                 license-svc (default http://127.0.0.1:50052)
  OUTBOX_MAX_BACKOFF_SECS     longest wait between deliveries to a service that is down (default 300)
  PUBLIC_URL                  the gateway's public address, for emailed links (default http://127.0.0.1:8080)
  REACTIVATION_TOKEN_TTL_SECS how long a reactivation link works (default 86400)
  REACTIVATION_COOLDOWN_SECS  one link request per email per period (default 60)
  REACTIVATION_MAX_PER_EMAIL_PER_HOUR   (default 5)
  REACTIVATION_MAX_PER_CLIENT_PER_HOUR  (default 20)
  RETENTION_DAYS              a deactivated account is erased after this (default 180)
  RETENTION_REMINDER_DAYS     reminder emails this many days before (default 30,7)
  RETENTION_INTERVAL_SECS     how often the retention job looks (default 300)
";

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    /// `JWT_PRIVATE_KEY`: Ed25519 private key (PKCS#8 PEM) that signs access
    /// tokens. Only identity-svc holds it.
    pub jwt_private_key: Secret<String>,
    /// `PASSWORD_HASH_CONCURRENCY`, default: the number of cores. argon2id
    /// takes 19 MiB and one core per hash; more at once only queues.
    pub password_hash_concurrency: usize,
    /// `BOOTSTRAP_ADMIN_EMAIL` + `BOOTSTRAP_ADMIN_PASSWORD`: the first admin
    /// of a fresh install, created at start-up if the email is unknown.
    pub bootstrap_admin: Option<(String, Secret<String>)>,
    /// `NOTIFY_URL`, default `http://127.0.0.1:50054`: where emails go.
    pub notify_url: String,
    /// `BILLING_URL`, default `http://127.0.0.1:50053`: where a closed
    /// account's subscription is cancelled and its access suspended.
    pub billing_url: String,
    /// `LICENSE_URL`, default `http://127.0.0.1:50052`: where an erased
    /// account's keys are deleted.
    pub license_url: String,
    /// `OUTBOX_MAX_BACKOFF_SECS`, default 300: the longest wait between two
    /// attempts to deliver an effect to a service that is down.
    pub outbox_max_backoff: Duration,
    pub reactivation: ReactivationConfig,
    pub retention: RetentionConfig,
    pub login: LoginConfig,
}

/// What a flood of logins may cost: a bounded queue of password checks, and
/// limits per client address and per account seen from one address. Nothing
/// is counted per account alone, so an attacker elsewhere cannot lock the
/// owner out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginConfig {
    /// `PASSWORD_HASH_QUEUE`, default 64: password checks waiting for a
    /// thread; beyond it a login answers RESOURCE_EXHAUSTED at once.
    pub hash_queue: usize,
    /// `LOGIN_MAX_PER_CLIENT_PER_MINUTE`, default 30: attempts per client
    /// address, whatever the email.
    pub max_per_client_per_minute: u32,
    /// `LOGIN_MAX_FAILURES_PER_ACCOUNT_PER_CLIENT`, default 10: wrong
    /// passwords for one email from one address per `failure_window`.
    pub max_failures_per_account_per_client: u32,
    /// `LOGIN_FAILURE_WINDOW_SECS`, default 900.
    pub failure_window: Duration,
}

impl Default for LoginConfig {
    fn default() -> Self {
        Self {
            hash_queue: 64,
            max_per_client_per_minute: 30,
            max_failures_per_account_per_client: 10,
            failure_window: Duration::from_secs(900),
        }
    }
}

impl LoginConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        Ok(Self {
            hash_queue: config::parsed_or("PASSWORD_HASH_QUEUE", defaults.hash_queue)?,
            max_per_client_per_minute: config::parsed_or(
                "LOGIN_MAX_PER_CLIENT_PER_MINUTE",
                defaults.max_per_client_per_minute,
            )?,
            max_failures_per_account_per_client: config::parsed_or(
                "LOGIN_MAX_FAILURES_PER_ACCOUNT_PER_CLIENT",
                defaults.max_failures_per_account_per_client,
            )?,
            failure_window: Duration::from_secs(config::parsed_or(
                "LOGIN_FAILURE_WINDOW_SECS",
                defaults.failure_window.as_secs(),
            )?),
        })
    }
}

/// How long a deactivated account is kept before it is erased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetentionConfig {
    /// `RETENTION_DAYS`, default 180: a deactivated account is erased this
    /// long after its deactivation, unless it comes back first.
    pub days: u32,
    /// `RETENTION_REMINDER_DAYS`, default `30,7`: reminder emails this many
    /// days before the erasure.
    pub reminder_days: Vec<u32>,
    /// `RETENTION_INTERVAL_SECS`, default 300: how often the job looks.
    pub interval: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            days: 180,
            reminder_days: vec![30, 7],
            interval: Duration::from_secs(300),
        }
    }
}

impl RetentionConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        let defaults = Self::default();
        let reminder_days = match config::optional("RETENTION_REMINDER_DAYS") {
            None => defaults.reminder_days,
            Some(raw) => raw
                .split(',')
                .map(str::trim)
                .filter(|day| !day.is_empty())
                .map(|day| {
                    day.parse().map_err(|_| ConfigError::Invalid {
                        name: "RETENTION_REMINDER_DAYS",
                        reason: format!("{day:?} is not a number of days"),
                    })
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Self {
            days: config::parsed_or("RETENTION_DAYS", defaults.days)?,
            reminder_days,
            interval: Duration::from_secs(config::parsed_or("RETENTION_INTERVAL_SECS", 300)?),
        })
    }
}

/// Self-service reactivation by email link.
#[derive(Debug, Clone)]
pub struct ReactivationConfig {
    /// `PUBLIC_URL`, default `http://127.0.0.1:8080`: the gateway's public
    /// address, which the emailed links point at.
    pub public_url: String,
    /// `REACTIVATION_TOKEN_TTL_SECS`, default 86400: how long a link works.
    pub token_ttl: Duration,
    /// `REACTIVATION_COOLDOWN_SECS`, default 60: one request per email per period.
    pub cooldown: Duration,
    /// `REACTIVATION_MAX_PER_EMAIL_PER_HOUR`, default 5.
    pub max_per_email_per_hour: u32,
    /// `REACTIVATION_MAX_PER_CLIENT_PER_HOUR`, default 20.
    pub max_per_client_per_hour: u32,
}

impl ReactivationConfig {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            public_url: config::optional("PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            token_ttl: Duration::from_secs(config::parsed_or("REACTIVATION_TOKEN_TTL_SECS", 86_400)?),
            cooldown: Duration::from_secs(config::parsed_or("REACTIVATION_COOLDOWN_SECS", 60)?),
            max_per_email_per_hour: config::parsed_or("REACTIVATION_MAX_PER_EMAIL_PER_HOUR", 5)?,
            max_per_client_per_hour: config::parsed_or("REACTIVATION_MAX_PER_CLIENT_PER_HOUR", 20)?,
        })
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let bootstrap_admin = match config::optional("BOOTSTRAP_ADMIN_EMAIL") {
            None => None,
            Some(email) => Some((email, config::secret("BOOTSTRAP_ADMIN_PASSWORD")?)),
        };
        Ok(Self {
            service: ServiceConfig::from_env(DEFAULT_PORT)?,
            jwt_private_key: config::secret("JWT_PRIVATE_KEY")?,
            password_hash_concurrency: config::parsed_or("PASSWORD_HASH_CONCURRENCY", default_concurrency())?,
            bootstrap_admin,
            notify_url: config::optional("NOTIFY_URL").unwrap_or_else(|| "http://127.0.0.1:50054".into()),
            billing_url: config::optional("BILLING_URL").unwrap_or_else(|| "http://127.0.0.1:50053".into()),
            license_url: config::optional("LICENSE_URL").unwrap_or_else(|| "http://127.0.0.1:50052".into()),
            outbox_max_backoff: Duration::from_secs(config::parsed_or("OUTBOX_MAX_BACKOFF_SECS", 300)?),
            reactivation: ReactivationConfig::from_env()?,
            login: LoginConfig::from_env()?,
            retention: RetentionConfig::from_env()?,
        })
    }
}

pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
