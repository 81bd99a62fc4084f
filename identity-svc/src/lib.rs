//! identity-svc: accounts of the reactivation mesh.
//!
//! It owns users and their credentials (argon2id), the `is_active` flag and
//! its history (`account_events`), the record of what support staff read of
//! each account (`admin_reads`), and signs the access tokens every other
//! service verifies. It stands on the mesh's skeleton
//! ([`platform::service`]): [`IdentitySvc`] adds its use cases, creates the
//! bootstrap admin, and runs the outbox relay (which also answers
//! reactivation requests) and the retention job beside the server.

pub mod accounts;
pub mod admins;
pub mod config;
pub mod customer_email;
pub mod db;
pub mod domain;
pub mod effects;
pub mod error;
pub mod grpc;
pub mod reactivation;
pub mod retention;
pub mod tokens;
pub mod web_sessions;

use platform::{
    auth::TokenSigner,
    config::{ConfigError, ServiceConfig},
    limits::Limiter,
    service::{Foundation, Parts, Tasks},
};
use proto::{
    billing::v1::billing_service_client::BillingServiceClient,
    identity::v1::identity_service_server::{IdentityServiceServer, SERVICE_NAME},
    license::v1::license_service_client::LicenseServiceClient,
    notify::v1::notify_service_client::NotifyServiceClient,
};

pub use crate::config::Config;
use crate::{
    accounts::Accounts, domain::PasswordHasher, effects::Effects, grpc::IdentityService, tokens::ReactivationTokens,
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// identity-svc on the mesh's skeleton ([`platform::service`]).
#[derive(Debug)]
pub struct IdentitySvc;

/// A built identity-svc, bound and ready to serve; its domain is the
/// use cases, for jobs.
pub type Application = platform::service::Application<IdentitySvc>;

impl platform::service::Service for IdentitySvc {
    const NAME: &'static str = "identity-svc";
    const MIGRATOR: &'static sqlx::migrate::Migrator = &MIGRATOR;
    type Config = Config;
    type Domain = Accounts;

    fn config_from_env() -> Result<Config, ConfigError> {
        Config::from_env()
    }

    fn service_config(config: &Config) -> &ServiceConfig {
        &config.service
    }

    /// The use cases and the relay (which also answers reactivation
    /// requests); the bootstrap admin exists before the listener binds.
    /// Beside the server run the outbox relay and the retention job.
    async fn build(config: Config, foundation: Foundation) -> anyhow::Result<Parts<Accounts>> {
        let notify = NotifyServiceClient::new(foundation.channel(&config.notify_url)?);
        // Closing an account waits on Stripe at billing-svc.
        let billing = BillingServiceClient::new(foundation.payment_channel(&config.billing_url)?);
        let license = LicenseServiceClient::new(foundation.channel(&config.license_url)?);
        let accounts = Accounts {
            pool: foundation.pool.clone(),
            hasher: PasswordHasher::new(config.password_hash_concurrency, config.login.hash_queue).await?,
            signer: TokenSigner::from_pem(&config.jwt_private_key, config.service.access_token_ttl)?,
            floors: foundation.floors.clone(),
            clock: foundation.clock.clone(),
            tokens: ReactivationTokens::new(foundation.kv.clone(), config.reactivation.token_ttl),
            web_sessions: web_sessions::WebSessions::new(foundation.kv.clone()),
            limiter: Limiter::new(foundation.kv.clone()),
            waker: foundation.waker.clone(),
            reactivation: config.reactivation.clone(),
            login: config.login.clone(),
        };
        let effects = Effects {
            notify,
            billing,
            license,
            internal: foundation.internal.clone(),
            accounts: accounts.clone(),
        };
        let mut tasks = Tasks::default();
        tasks.relay(foundation.relay(effects).max_backoff(config.outbox_max_backoff));
        let retention = accounts.clone();
        tasks.spawn("retention", move |stop| retention.run_retention(config.retention, stop));
        if let Some((email, password)) = &config.bootstrap_admin {
            accounts.ensure_admin(email, password.expose().clone()).await?;
        }
        let service = IdentityService {
            accounts: accounts.clone(),
            authenticator: foundation.authenticator,
        };
        Ok(Parts {
            routes: tonic::service::Routes::new(IdentityServiceServer::new(service)),
            service_names: vec![SERVICE_NAME],
            domain: accounts,
            tasks,
        })
    }
}
