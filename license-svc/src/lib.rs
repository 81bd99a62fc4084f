//! license-svc: license keys of the reactivation mesh.
//!
//! It owns keys (`SK-XXXX-XXXX-XXXX-XXXX`), their lifecycle — create,
//! extend, close a deal, disable, reactivate — their history and the record
//! of which admin read which key (`admin_reads`), answers the public "is
//! this key valid?" that products call, and lets billing suspend or restore
//! a customer's keys. Emailing a key goes to notify-svc
//! through the outbox. It stands on the mesh's skeleton
//! ([`platform::service`]); Redis also carries the announcements of changed
//! keys to the gateways' validation caches.

pub mod config;
pub mod db;
pub mod domain;
pub mod effects;
pub mod error;
pub mod grpc;
pub mod licenses;

use platform::{
    config::{ConfigError, ServiceConfig},
    invalidation::Publisher,
    license_key,
    service::{Foundation, Parts, Tasks},
};
use proto::{
    license::v1::license_service_server::{LicenseServiceServer, SERVICE_NAME},
    notify::v1::notify_service_client::NotifyServiceClient,
};

pub use crate::config::Config;
use crate::{effects::Effects, grpc::LicenseService, licenses::Licenses};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// license-svc on the mesh's skeleton ([`platform::service`]).
#[derive(Debug)]
pub struct LicenseSvc;

/// A built license-svc, bound and ready to serve.
pub type Application = platform::service::Application<LicenseSvc>;

impl platform::service::Service for LicenseSvc {
    const NAME: &'static str = "license-svc";
    const MIGRATOR: &'static sqlx::migrate::Migrator = &MIGRATOR;
    type Config = Config;
    type Domain = Licenses;

    fn config_from_env() -> Result<Config, ConfigError> {
        Config::from_env()
    }

    fn service_config(config: &Config) -> &ServiceConfig {
        &config.service
    }

    /// The key use cases, which announce changed keys on Redis; the outbox
    /// relay (emailed keys) runs beside the server.
    async fn build(config: Config, foundation: Foundation) -> anyhow::Result<Parts<Licenses>> {
        let licenses = Licenses {
            pool: foundation.pool.clone(),
            clock: foundation.clock.clone(),
            waker: foundation.waker.clone(),
            changes: Publisher::new(&foundation.kv, license_key::CHANGED_TOPIC),
            trial_days: config.trial_days,
            max_trials_per_customer: config.max_trials_per_customer,
        };
        let effects = Effects {
            notify: NotifyServiceClient::new(foundation.channel(&config.notify_url)?),
            internal: foundation.internal.clone(),
        };
        let mut tasks = Tasks::default();
        tasks.relay(foundation.relay(effects).max_backoff(config.outbox_max_backoff));
        let service = LicenseService {
            licenses: licenses.clone(),
            authenticator: foundation.authenticator,
        };
        Ok(Parts {
            routes: tonic::service::Routes::new(LicenseServiceServer::new(service)),
            service_names: vec![SERVICE_NAME],
            domain: licenses,
            tasks,
        })
    }
}
