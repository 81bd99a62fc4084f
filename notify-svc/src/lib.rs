//! notify-svc: the outgoing email of the reactivation mesh.
//!
//! Other services (and admins) enqueue a message naming a template, a
//! recipient and the template's variables; the message is rendered at once,
//! stored in this service's own database and acknowledged, and a delivery
//! worker running inside the service sends it over SMTP, retrying with
//! backoff until the server accepts it or the attempts run out. Idempotency
//! keys make a retried enqueue harmless. [`Application::build`] connects to
//! Postgres and Redis, applies migrations, prepares the mail transport and
//! binds the listener; [`Application::run`] serves and delivers until
//! shutdown, then drains.

pub mod config;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod messages;
pub mod templates;

use std::{net::SocketAddr, sync::Arc};

use platform::{
    auth::{Authenticator, InternalToken, SessionFloors},
    clock::Clock,
    kv::Kv,
    shutdown::Shutdown,
};
use proto::notify::v1::notify_service_server::{NotifyServiceServer, SERVICE_NAME};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::Notify};

pub use crate::config::Config;
use crate::{
    delivery::{Mailer, Worker},
    domain::Backoff,
    grpc::NotifyService,
    messages::Messages,
    templates::Renderer,
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// A built notify-svc, bound and ready to serve and deliver.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    service: NotifyService,
    worker: Worker,
    pool: PgPool,
    config: Config,
}

impl Application {
    pub async fn build(config: Config) -> anyhow::Result<Self> {
        Self::build_with_clock(config, Clock::system()).await
    }

    /// As [`Application::build`], with "now" taken from `clock`.
    pub async fn build_with_clock(config: Config, clock: Clock) -> anyhow::Result<Self> {
        let service_config = &config.service;
        let pool = platform::db::connect(&service_config.database_url, service_config.database_max_connections).await?;
        platform::db::migrate(&pool, &MIGRATOR).await?;
        let kv = Kv::connect(&service_config.redis_url, &service_config.redis_key_prefix).await?;
        let floors = SessionFloors::new(kv, service_config.access_token_ttl);
        let authenticator = Authenticator::from_pem(&service_config.jwt_public_key, floors)?
            .with_internal_token(InternalToken::new(service_config.internal_token.clone()));
        let mailer = Mailer::new(&config.transport, &config.mail_from).await?;
        let wake = Arc::new(Notify::new());
        let messages = Messages {
            pool: pool.clone(),
            renderer: Renderer::new(&config.product_name, &config.public_url),
            clock: clock.clone(),
            wake: Arc::clone(&wake),
        };
        // Each attempt in flight holds a connection; keep one free for calls.
        let max_in_flight = usize::try_from(service_config.database_max_connections.saturating_sub(1))
            .unwrap_or(1)
            .max(1);
        let worker = Worker {
            pool: pool.clone(),
            mailer,
            clock,
            wake,
            backoff: Backoff {
                base: config.backoff_base,
                max: config.backoff_max,
            },
            max_attempts: config.max_attempts.max(1),
            poll_interval: config.poll_interval,
            concurrency: config.delivery_concurrency.clamp(1, max_in_flight),
        };
        let listener = TcpListener::bind(service_config.listen_addr).await?;
        Ok(Self {
            listener,
            service: NotifyService {
                messages,
                authenticator,
            },
            worker,
            pool,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener has an address")
    }

    /// Serves and delivers until `shutdown` triggers: the worker stops taking
    /// messages at once (an attempt in flight is finished and recorded), the
    /// server drains in-flight calls, then the database pool closes.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        // The worker has a stop of its own so that a server that fails to
        // serve stops it too, without triggering the caller's shutdown
        // (which, in the development launcher, every service shares).
        let stop = Shutdown::new();
        let forward = tokio::spawn({
            let (shutdown, stop) = (shutdown.clone(), stop.clone());
            async move {
                shutdown.wait().await;
                stop.trigger();
            }
        });
        let worker = tokio::spawn(self.worker.run(stop.clone()));

        let routes = tonic::service::Routes::new(NotifyServiceServer::new(self.service));
        let result = platform::serve::serve_grpc(
            self.listener,
            routes,
            &[SERVICE_NAME],
            shutdown,
            self.config.service.drain_delay,
        )
        .await;

        stop.trigger();
        forward.abort();
        if let Err(err) = worker.await {
            tracing::error!(error = %err, "the delivery worker ended abnormally");
        }
        self.pool.close().await;
        result
    }
}
