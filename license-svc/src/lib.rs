//! license-svc: license keys of the reactivation mesh.
//!
//! It owns keys (`SK-XXXX-XXXX-XXXX-XXXX`), their lifecycle — create,
//! extend, close a deal, disable, reactivate — and their history, answers
//! the public "is this key valid?" that products call, and lets billing
//! suspend or restore a customer's keys. Emailing a key goes to notify-svc
//! through the outbox. [`Application::build`] connects to Postgres and
//! Redis (session floors, and announcing changed keys to the gateways'
//! validation caches), applies migrations and binds the listener;
//! [`Application::run`] serves until shutdown and then drains.

pub mod config;
pub mod db;
pub mod domain;
pub mod effects;
pub mod error;
pub mod grpc;
pub mod licenses;

use std::{net::SocketAddr, time::Duration};

use platform::{
    auth::{Authenticator, InternalToken, SessionFloors},
    clock::Clock,
    invalidation::Publisher,
    kv::Kv,
    license_key,
    outbox::{Relay, Waker},
    shutdown::Shutdown,
};
use proto::{
    license::v1::license_service_server::{LicenseServiceServer, SERVICE_NAME},
    notify::v1::notify_service_client::NotifyServiceClient,
};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use crate::config::Config;
use crate::{effects::Effects, grpc::LicenseService, licenses::Licenses};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built license-svc, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    service: LicenseService,
    relay: Relay<Effects>,
    pool: PgPool,
    config: Config,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// As [`Application::build`], with "now" taken from `clock` (tests pin it).
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let service_config = &config.service;
        let pool = platform::db::connect(&service_config.database_url, service_config.database_max_connections).await?;
        platform::db::migrate(&pool, &MIGRATOR).await?;
        let kv = Kv::connect(&service_config.redis_url, &service_config.redis_key_prefix).await?;
        let changes = Publisher::new(&kv, license_key::CHANGED_TOPIC);
        let floors = SessionFloors::new(kv, service_config.access_token_ttl);
        let internal = InternalToken::new(service_config.internal_token.clone());
        let waker = Waker::default();
        let licenses = Licenses {
            pool: pool.clone(),
            clock,
            waker: waker.clone(),
            changes,
            trial_days: config.trial_days,
            max_trials_per_customer: config.max_trials_per_customer,
        };
        let effects = Effects {
            notify: NotifyServiceClient::new(platform::client::channel(&config.notify_url, Duration::from_secs(5))?),
            internal: internal.clone(),
        };
        let relay = Relay::new(pool.clone(), effects, waker).max_backoff(config.outbox_max_backoff);
        let authenticator =
            Authenticator::from_pem(&service_config.jwt_public_key, floors)?.with_internal_token(internal);
        let listener = TcpListener::bind(service_config.listen_addr).await?;
        Ok(Self {
            listener,
            service: LicenseService {
                licenses,
                authenticator,
            },
            relay,
            pool,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves (and delivers the outbox) until `shutdown` triggers, drains
    /// in-flight calls, then closes the database pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let routes = tonic::service::Routes::new(LicenseServiceServer::new(self.service));
        let result = platform::serve::serve_grpc(
            self.listener,
            routes,
            &[SERVICE_NAME],
            shutdown,
            self.config.service.drain_delay,
        )
        .await;
        // The relay finishes the delivery it is in, then stops.
        let _ = relay.await;
        self.pool.close().await;
        result
    }
}
