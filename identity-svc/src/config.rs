//! identity-svc's settings, from the environment.

use platform::config::{self, ConfigError, Secret, ServiceConfig};

/// The port identity-svc listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 50051;

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
        })
    }
}

pub fn default_concurrency() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
