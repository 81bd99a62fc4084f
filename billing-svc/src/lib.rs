//! billing-svc: subscriptions of the reactivation mesh.
//!
//! It owns tenants (one per customer), their subscriptions and the money
//! side of coming back: plans and prices, Stripe Checkout with the
//! welcome-back offer for returning customers, cancelling and undoing a
//! cancellation, and Stripe's webhooks, applied exactly once.
//! [`Application::build`] connects to Postgres and Redis (session floors),
//! applies migrations and binds the listener; [`Application::run`] serves
//! and runs the expiry job until shutdown, then drains.

pub mod billing;
pub mod config;
pub mod db;
pub mod domain;
pub mod effects;
pub mod error;
pub mod grpc;
pub mod payments;
pub mod webhooks;

use std::{net::SocketAddr, time::Duration};

use platform::{
    auth::{Authenticator, InternalToken, SessionFloors},
    clock::Clock,
    kv::Kv,
    outbox::{Relay, Waker},
    shutdown::Shutdown,
};
use proto::{
    billing::v1::billing_service_server::{BillingServiceServer, SERVICE_NAME},
    license::v1::license_service_client::LicenseServiceClient,
};
use sqlx::PgPool;
use tokio::net::TcpListener;

pub use crate::config::Config;
use crate::{billing::Billing, effects::Effects, grpc::BillingService, payments::Payments};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built billing-svc, bound and ready to serve.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    service: BillingService,
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
        let floors = SessionFloors::new(kv, service_config.access_token_ttl);
        let internal = InternalToken::new(service_config.internal_token.clone());
        let waker = Waker::default();
        let effects = Effects {
            license: LicenseServiceClient::new(platform::client::channel(&config.license_url, Duration::from_secs(5))?),
            internal: internal.clone(),
        };
        let relay = Relay::new(pool.clone(), effects, waker.clone()).max_backoff(config.outbox_max_backoff);
        let authenticator =
            Authenticator::from_pem(&service_config.jwt_public_key, floors)?.with_internal_token(internal);
        let billing = Billing {
            pool: pool.clone(),
            clock,
            payments: Payments::new(&config.stripe)?,
            stripe: config.stripe.clone(),
            public_url: config.public_url.clone(),
            waker,
        };
        let listener = TcpListener::bind(service_config.listen_addr).await?;
        Ok(Self {
            listener,
            service: BillingService { billing, authenticator },
            relay,
            pool,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// The domain behind the service, for jobs and commands.
    pub fn billing(&self) -> Billing {
        self.service.billing.clone()
    }

    /// Serves (and runs the expiry job and the outbox relay) until
    /// `shutdown` triggers, drains in-flight calls, then closes the pool.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let relay = tokio::spawn(self.relay.run(shutdown.clone()));
        let expiry = tokio::spawn(
            self.service
                .billing
                .clone()
                .run_expiry(self.config.expiry_interval, shutdown.clone()),
        );
        let routes = tonic::service::Routes::new(BillingServiceServer::new(self.service));
        let result = platform::serve::serve_grpc(
            self.listener,
            routes,
            &[SERVICE_NAME],
            shutdown,
            self.config.service.drain_delay,
        )
        .await;
        let _ = expiry.await;
        let _ = relay.await;
        self.pool.close().await;
        result
    }
}

/// Connects to billing's database and Stripe without serving, for the
/// operator commands (`setup-coupons`, `replay-webhooks`). Effects they owe
/// are left in the outbox for the running replicas to deliver.
pub async fn connect(config: &Config) -> anyhow::Result<Billing> {
    let pool = platform::db::connect(&config.service.database_url, 2).await?;
    platform::db::migrate(&pool, &MIGRATOR).await?;
    Ok(Billing {
        pool,
        clock: Clock::system(),
        payments: Payments::new(&config.stripe)?,
        stripe: config.stripe.clone(),
        public_url: config.public_url.clone(),
        waker: Waker::default(),
    })
}
