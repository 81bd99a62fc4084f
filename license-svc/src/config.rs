//! license-svc's settings, from the environment.

use std::time::Duration;

use platform::config::{self, ConfigError, ServiceConfig};

/// The port license-svc listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 50052;

/// The settings this binary reads besides `platform::cli::SERVICE_SETTINGS` and the telemetry ones, as
/// `--help` lists them (a test checks none is missing).
pub const SETTINGS: &str = "\
  NOTIFY_URL                  notify-svc (default http://127.0.0.1:50054)
  OUTBOX_MAX_BACKOFF_SECS     longest wait between deliveries to notify-svc (default 300)
  TRIAL_DAYS                  how long a new trial key runs (default 14)
  MAX_TRIALS_PER_CUSTOMER     fresh trial periods per customer email (default 3)
";

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    /// `NOTIFY_URL`, default `http://127.0.0.1:50054`: where emailed keys go.
    pub notify_url: String,
    /// `OUTBOX_MAX_BACKOFF_SECS`, default 300: the longest wait between two
    /// attempts to deliver an email while notify-svc is down.
    pub outbox_max_backoff: Duration,
    /// `TRIAL_DAYS`, default 14: how long a new trial key runs.
    pub trial_days: u32,
    /// `MAX_TRIALS_PER_CUSTOMER`, default 3: fresh trial periods (a new
    /// trial key, or a trial reactivated) one customer email can get, so
    /// trials cannot be farmed.
    pub max_trials_per_customer: u32,
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            service: ServiceConfig::from_env(DEFAULT_PORT)?,
            notify_url: config::optional("NOTIFY_URL").unwrap_or_else(|| "http://127.0.0.1:50054".into()),
            outbox_max_backoff: Duration::from_secs(config::parsed_or("OUTBOX_MAX_BACKOFF_SECS", 300)?),
            trial_days: config::parsed_or("TRIAL_DAYS", 14)?,
            max_trials_per_customer: config::parsed_or("MAX_TRIALS_PER_CUSTOMER", 3)?,
        })
    }
}
