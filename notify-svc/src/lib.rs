//! notify-svc: the outgoing email of the reactivation mesh.
//!
//! Other services (and admins) enqueue a message naming a template, a
//! recipient and the template's variables; the message is rendered at once,
//! stored in this service's own database and acknowledged, and a delivery
//! worker running inside the service sends it over SMTP, retrying with
//! backoff until the server accepts it or the attempts run out. Idempotency
//! keys make a retried enqueue harmless. It stands on the mesh's skeleton
//! ([`platform::service`]), with the delivery worker beside the server.

pub mod config;
pub mod db;
pub mod delivery;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod messages;
pub mod templates;

use std::sync::Arc;

use platform::{
    config::{ConfigError, ServiceConfig},
    service::{Foundation, Parts, Tasks},
};
use proto::notify::v1::notify_service_server::{NotifyServiceServer, SERVICE_NAME};
use tokio::sync::Notify;

pub use crate::config::Config;
use crate::{
    delivery::{Mailer, Worker},
    domain::Backoff,
    grpc::NotifyService,
    messages::Messages,
    templates::Renderer,
};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// notify-svc on the mesh's skeleton ([`platform::service`]).
#[derive(Debug)]
pub struct NotifySvc;

/// A built notify-svc, bound and ready to serve and deliver.
pub type Application = platform::service::Application<NotifySvc>;

impl platform::service::Service for NotifySvc {
    const NAME: &'static str = "notify-svc";
    const MIGRATOR: &'static sqlx::migrate::Migrator = &MIGRATOR;
    type Config = Config;
    type Domain = Messages;

    fn config_from_env() -> Result<Config, ConfigError> {
        Config::from_env()
    }

    fn service_config(config: &Config) -> &ServiceConfig {
        &config.service
    }

    /// The mail transport, the messages and the delivery worker, which runs
    /// beside the server: on shutdown it stops taking messages at once (an
    /// attempt in flight is finished and recorded).
    async fn build(config: Config, foundation: Foundation) -> anyhow::Result<Parts<Messages>> {
        let mailer = Mailer::new(&config.transport, &config.mail_from).await?;
        let wake = Arc::new(Notify::new());
        let messages = Messages {
            pool: foundation.pool.clone(),
            renderer: Renderer::new(&config.product_name, &config.public_url),
            clock: foundation.clock.clone(),
            wake: Arc::clone(&wake),
        };
        // Each attempt in flight holds a connection; keep one free for calls.
        let max_in_flight = usize::try_from(config.service.database_max_connections.saturating_sub(1))
            .unwrap_or(1)
            .max(1);
        let worker = Worker {
            pool: foundation.pool.clone(),
            mailer,
            clock: foundation.clock.clone(),
            wake,
            backoff: Backoff {
                base: config.backoff_base,
                max: config.backoff_max,
            },
            max_attempts: config.max_attempts.max(1),
            poll_interval: config.poll_interval,
            concurrency: config.delivery_concurrency.clamp(1, max_in_flight),
        };
        let mut tasks = Tasks::default();
        tasks.spawn("delivery worker", move |stop| worker.run(stop));
        let service = NotifyService {
            messages: messages.clone(),
            authenticator: foundation.authenticator,
        };
        Ok(Parts {
            routes: tonic::service::Routes::new(NotifyServiceServer::new(service)),
            service_names: vec![SERVICE_NAME],
            domain: messages,
            tasks,
        })
    }
}
