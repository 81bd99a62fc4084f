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
pub mod error;
pub mod grpc;

use std::net::SocketAddr;

use platform::{
    auth::{Authenticator, InternalToken, SessionFloors, TokenSigner},
    clock::Clock,
    kv::Kv,
    shutdown::Shutdown,
};
use proto::identity::v1::identity_service_server::{IdentityServiceServer, SERVICE_NAME};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use crate::config::Config;
use crate::{accounts::Accounts, domain::PasswordHasher, grpc::IdentityService};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built identity-svc, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    service: IdentityService,
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
        let floors = SessionFloors::new(kv, service_config.access_token_ttl);
        let accounts = Accounts {
            pool: pool.clone(),
            hasher: PasswordHasher::new(config.password_hash_concurrency).await?,
            signer: TokenSigner::from_pem(&config.jwt_private_key, service_config.access_token_ttl)?,
            floors: floors.clone(),
            clock,
        };
        if let Some((email, password)) = &config.bootstrap_admin {
            accounts.ensure_admin(email, password.expose().clone()).await?;
        }
        let authenticator = Authenticator::from_pem(&service_config.jwt_public_key, floors)?
            .with_internal_token(InternalToken::new(service_config.internal_token.clone()));
        let listener = TcpListener::bind(service_config.listen_addr).await?;
        Ok(Self {
            listener,
            service: IdentityService {
                accounts,
                authenticator,
            },
            pool,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves until `shutdown` triggers, drains in-flight calls, then closes
    /// the database pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let routes = tonic::service::Routes::new(IdentityServiceServer::new(self.service));
        let result = platform::serve::serve_grpc(
            self.listener,
            routes,
            &[SERVICE_NAME],
            shutdown,
            self.config.service.drain_delay,
        )
        .await;
        self.pool.close().await;
        result
    }
}
