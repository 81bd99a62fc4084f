//! identity-svc: accounts of the reactivation mesh.
//!
//! It owns users and their credentials (argon2id), the `is_active` flag and
//! its history (`account_events`), and signs the access tokens every other
//! service verifies. [`Application::build`] connects to Postgres and Redis,
//! applies migrations, creates the bootstrap admin and binds the listener;
//! [`Application::run`] serves until shutdown and then drains.

pub mod accounts;
pub mod config;
pub mod db;
pub mod domain;
pub mod effects;
pub mod error;
pub mod grpc;
pub mod reactivation;
pub mod retention;
pub mod tokens;

use std::{net::SocketAddr, time::Duration};

use platform::{
    auth::{Authenticator, InternalToken, SessionFloors, TokenSigner},
    clock::Clock,
    kv::Kv,
    limits::Limiter,
    outbox::{Relay, Waker},
    shutdown::Shutdown,
};
use proto::{
    billing::v1::billing_service_client::BillingServiceClient,
    identity::v1::identity_service_server::{IdentityServiceServer, SERVICE_NAME},
    license::v1::license_service_client::LicenseServiceClient,
    notify::v1::notify_service_client::NotifyServiceClient,
};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use crate::config::Config;
use crate::{
    accounts::Accounts, domain::PasswordHasher, effects::Effects, grpc::IdentityService, tokens::ReactivationTokens,
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built identity-svc, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    service: IdentityService,
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
        let floors = SessionFloors::new(kv.clone(), service_config.access_token_ttl);
        let internal = InternalToken::new(service_config.internal_token.clone());
        let waker = Waker::default();
        let accounts = Accounts {
            pool: pool.clone(),
            hasher: PasswordHasher::new(config.password_hash_concurrency).await?,
            signer: TokenSigner::from_pem(&config.jwt_private_key, service_config.access_token_ttl)?,
            floors: floors.clone(),
            clock,
            tokens: ReactivationTokens::new(kv.clone(), config.reactivation.token_ttl),
            limiter: Limiter::new(kv),
            waker: waker.clone(),
            reactivation: config.reactivation.clone(),
        };
        let effects = Effects {
            notify: NotifyServiceClient::new(platform::client::channel(&config.notify_url, Duration::from_secs(5))?),
            billing: BillingServiceClient::new(platform::client::channel(
                &config.billing_url,
                Duration::from_secs(30),
            )?),
            license: LicenseServiceClient::new(platform::client::channel(&config.license_url, Duration::from_secs(5))?),
            internal: internal.clone(),
        };
        let relay = Relay::new(pool.clone(), effects, waker).max_backoff(config.outbox_max_backoff);
        if let Some((email, password)) = &config.bootstrap_admin {
            accounts.ensure_admin(email, password.expose().clone()).await?;
        }
        let authenticator =
            Authenticator::from_pem(&service_config.jwt_public_key, floors)?.with_internal_token(internal);
        let listener = TcpListener::bind(service_config.listen_addr).await?;
        Ok(Self {
            listener,
            service: IdentityService {
                accounts,
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

    /// The use cases behind the service, for jobs.
    pub fn accounts(&self) -> Accounts {
        self.service.accounts.clone()
    }

    /// Serves (and delivers the outbox, and runs the retention job) until
    /// `shutdown` triggers, drains in-flight calls, then closes the pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let retention = tokio::spawn(
            self.service
                .accounts
                .clone()
                .run_retention(self.config.retention.clone(), shutdown.clone()),
        );
        let routes = tonic::service::Routes::new(IdentityServiceServer::new(self.service));
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
        let _ = retention.await;
        self.pool.close().await;
        result
    }
}
