//! notify-svc's settings, from the environment.
//!
//! Mail leaves either over SMTP (`SMTP_HOST`, production) or into a local
//! development mailbox (`MAILBOX_DIR`): exactly one of the two must be set,
//! so a production deployment can never silently write mail to disk.

use std::{path::PathBuf, str::FromStr, time::Duration};

use platform::config::{self, ConfigError, Secret, ServiceConfig};

/// The port notify-svc listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 50054;

/// The settings this binary reads besides `platform::cli::SERVICE_SETTINGS` and the telemetry ones, as
/// `--help` lists them (a test checks none is missing).
pub const SETTINGS: &str = "\
  SMTP_HOST                   deliver over SMTP to this host (or MAILBOX_DIR)
  SMTP_PORT                   default 587 (465 with SMTP_TLS=tls)
  SMTP_TLS                    none, starttls (default) or tls
  SMTP_USERNAME               SMTP login
  SMTP_PASSWORD               SMTP password (secret)
  MAILBOX_DIR                 development: write each message there as .eml
  MAIL_FROM                   sender (default Reactivation <no-reply@reactivation.test>)
  PRODUCT_NAME                named in emails (default Reactivation)
  PUBLIC_URL                  the gateway's public address (default http://127.0.0.1:8080)
  DELIVERY_MAX_ATTEMPTS       attempts before a message is given up (default 8)
  DELIVERY_BACKOFF_BASE_MS    first retry delay (default 2000)
  DELIVERY_BACKOFF_MAX_SECS   longest retry delay (default 3600)
  WORKER_POLL_MS              how often the queue is polled (default 1000)
  DELIVERY_CONCURRENCY        messages sent at once by one replica (default 4)
";

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    /// Where mail goes: `SMTP_*` or `MAILBOX_DIR`.
    pub transport: Transport,
    /// `MAIL_FROM`, default `Reactivation <no-reply@reactivation.test>`: the
    /// sender of every message, `Name <address>` or a bare address.
    pub mail_from: String,
    /// `PRODUCT_NAME`, default `Reactivation`: how the emails name the product.
    pub product_name: String,
    /// `PUBLIC_URL`, default `http://127.0.0.1:8080`: where the emails send
    /// people who want to log in.
    pub public_url: String,
    /// `DELIVERY_MAX_ATTEMPTS`, default 8: attempts before a message is
    /// marked failed.
    pub max_attempts: u32,
    /// `DELIVERY_BACKOFF_BASE_MS`, default 2000: the wait after the first
    /// failed attempt; it doubles after each further one.
    pub backoff_base: Duration,
    /// `DELIVERY_BACKOFF_MAX_SECS`, default 3600: the longest wait between
    /// two attempts.
    pub backoff_max: Duration,
    /// `WORKER_POLL_MS`, default 1000: how often the delivery worker looks
    /// for due retries and for messages enqueued through other replicas.
    /// Messages enqueued through this replica are picked up at once.
    pub poll_interval: Duration,
    /// `DELIVERY_CONCURRENCY`, default 4: messages this replica sends at
    /// once. Each holds a database connection while its send is in flight.
    pub delivery_concurrency: usize,
}

/// How messages leave the service.
#[derive(Debug, Clone)]
pub enum Transport {
    Smtp(SmtpConfig),
    /// `MAILBOX_DIR`: each message is written there as a `.eml` file, and the
    /// link of a reactivation email is logged, so a developer can follow the
    /// flow without a mail server.
    Mailbox(PathBuf),
}

#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `SMTP_HOST`; also the name the server's TLS certificate must carry.
    pub host: String,
    /// `SMTP_PORT`, default 587 (465 with `SMTP_TLS=tls`).
    pub port: u16,
    /// `SMTP_TLS`, default `starttls`.
    pub tls: SmtpTls,
    /// `SMTP_USERNAME` + `SMTP_PASSWORD`, both or neither.
    pub credentials: Option<(String, Secret<String>)>,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `none`: plain text, for a relay on the same host or network only.
    None,
    /// `starttls`: upgrade to TLS on the submission port; refused, not
    /// downgraded, if the server cannot.
    StartTls,
    /// `tls`: TLS from the first byte (SMTPS).
    Tls,
}

impl SmtpTls {
    pub fn default_port(self) -> u16 {
        match self {
            Self::None | Self::StartTls => 587,
            Self::Tls => 465,
        }
    }
}

impl FromStr for SmtpTls {
    type Err = String;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        match raw.trim().to_ascii_lowercase().as_str() {
            "none" => Ok(Self::None),
            "starttls" => Ok(Self::StartTls),
            "tls" => Ok(Self::Tls),
            other => Err(format!("expected none, starttls or tls, got {other:?}")),
        }
    }
}

pub const DEFAULT_MAIL_FROM: &str = "Reactivation <no-reply@reactivation.test>";
pub const DEFAULT_PRODUCT_NAME: &str = "Reactivation";
pub const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        let transport = match (config::optional("SMTP_HOST"), config::optional("MAILBOX_DIR")) {
            (Some(host), None) => Transport::Smtp(smtp_from_env(host)?),
            (None, Some(directory)) => Transport::Mailbox(PathBuf::from(directory)),
            (Some(_), Some(_)) => {
                return Err(ConfigError::Invalid {
                    name: "MAILBOX_DIR",
                    reason: "set SMTP_HOST (deliver over SMTP) or MAILBOX_DIR (development mailbox), not both".into(),
                });
            }
            (None, None) => {
                return Err(ConfigError::Invalid {
                    name: "SMTP_HOST",
                    reason: "set SMTP_HOST to deliver over SMTP, or MAILBOX_DIR to write messages to a \
                             development mailbox"
                        .into(),
                });
            }
        };
        let mail_from = config::optional("MAIL_FROM").unwrap_or_else(|| DEFAULT_MAIL_FROM.into());
        if let Err(reason) = crate::delivery::parse_sender(&mail_from) {
            return Err(ConfigError::Invalid {
                name: "MAIL_FROM",
                reason,
            });
        }
        Ok(Self {
            service: ServiceConfig::from_env(DEFAULT_PORT)?,
            transport,
            mail_from,
            product_name: config::optional("PRODUCT_NAME").unwrap_or_else(|| DEFAULT_PRODUCT_NAME.into()),
            public_url: config::optional("PUBLIC_URL").unwrap_or_else(|| DEFAULT_PUBLIC_URL.into()),
            max_attempts: config::parsed_or::<u32>("DELIVERY_MAX_ATTEMPTS", 8)?.max(1),
            backoff_base: Duration::from_millis(config::parsed_or("DELIVERY_BACKOFF_BASE_MS", 2000)?),
            backoff_max: Duration::from_secs(config::parsed_or("DELIVERY_BACKOFF_MAX_SECS", 3600)?),
            poll_interval: Duration::from_millis(config::parsed_or::<u64>("WORKER_POLL_MS", 1000)?.max(10)),
            delivery_concurrency: config::parsed_or::<usize>("DELIVERY_CONCURRENCY", 4)?.max(1),
        })
    }
}

fn smtp_from_env(host: String) -> Result<SmtpConfig, ConfigError> {
    let tls: SmtpTls = config::parsed_or("SMTP_TLS", SmtpTls::StartTls)?;
    let credentials = match (config::optional("SMTP_USERNAME"), config::optional("SMTP_PASSWORD")) {
        (Some(username), Some(password)) => Some((username, Secret::new(password))),
        (None, None) => None,
        (Some(_), None) => return Err(ConfigError::Missing("SMTP_PASSWORD")),
        (None, Some(_)) => return Err(ConfigError::Missing("SMTP_USERNAME")),
    };
    Ok(SmtpConfig {
        host: host.trim().to_owned(),
        port: config::parsed_or("SMTP_PORT", tls.default_port())?,
        tls,
        credentials,
    })
}

#[cfg(test)]
mod tests {
    use super::SmtpTls;

    #[test]
    fn tls_modes_parse_whatever_their_case() {
        assert_eq!("STARTTLS".parse::<SmtpTls>(), Ok(SmtpTls::StartTls));
        assert_eq!(" none ".parse::<SmtpTls>(), Ok(SmtpTls::None));
        assert_eq!("tls".parse::<SmtpTls>(), Ok(SmtpTls::Tls));
        assert!("ssl".parse::<SmtpTls>().is_err());
    }
}
