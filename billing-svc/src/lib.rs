//! billing-svc: subscriptions of the reactivation mesh.
//!
//! It owns tenants (one per customer), their subscriptions and the money
//! side of coming back: plans and prices, Stripe Checkout with the
//! welcome-back offer for returning customers, cancelling and undoing a
//! cancellation, and Stripe's webhooks, applied exactly once.
//! It stands on the mesh's skeleton ([`platform::service`]) and runs the
//! expiry and reminder jobs beside the server.

pub mod billing;
pub mod config;
pub mod db;
pub mod domain;
pub mod effects;
pub mod error;
pub mod grpc;
pub mod payments;
pub mod reminders;
pub mod signature;
pub mod webhooks;

use platform::{
    clock::Clock,
    config::{ConfigError, ServiceConfig},
    outbox::Waker,
    service::{Foundation, Parts, Tasks},
};
use proto::{
    billing::v1::billing_service_server::{BillingServiceServer, SERVICE_NAME},
    identity::v1::identity_service_client::IdentityServiceClient,
    license::v1::license_service_client::LicenseServiceClient,
};

pub use crate::config::Config;
use crate::{billing::Billing, effects::Effects, grpc::BillingService, payments::Payments};

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// billing-svc on the mesh's skeleton ([`platform::service`]).
#[derive(Debug)]
pub struct BillingSvc;

/// A built billing-svc, bound and ready to serve; its domain is
/// [`Billing`], for jobs and commands.
pub type Application = platform::service::Application<BillingSvc>;

impl platform::service::Service for BillingSvc {
    const NAME: &'static str = "billing-svc";
    const MIGRATOR: &'static sqlx::migrate::Migrator = &MIGRATOR;
    type Config = Config;
    type Domain = Billing;

    fn config_from_env() -> Result<Config, ConfigError> {
        Config::from_env()
    }

    fn service_config(config: &Config) -> &ServiceConfig {
        &config.service
    }

    /// The billing use cases over Stripe; beside the server run the outbox
    /// relay, the expiry and reminder jobs, and a start-up look at the
    /// welcome-back coupons.
    async fn build(config: Config, foundation: Foundation) -> anyhow::Result<Parts<Billing>> {
        let effects = Effects {
            license: LicenseServiceClient::new(foundation.channel(&config.license_url)?),
            identity: IdentityServiceClient::new(foundation.channel(&config.identity_url)?),
            internal: foundation.internal.clone(),
        };
        let relay = foundation.relay(effects).max_backoff(config.outbox_max_backoff);
        let billing = Billing {
            pool: foundation.pool.clone(),
            clock: foundation.clock.clone(),
            payments: Payments::new(&config.stripe)?,
            stripe: config.stripe.clone(),
            public_url: config.public_url.clone(),
            waker: foundation.waker.clone(),
        };
        let mut tasks = Tasks::default();
        tasks.relay(relay);
        let coupons = billing.clone();
        tasks.spawn_until_stopped("coupon check", async move { coupons.check_coupons().await });
        let (expiry, reminders) = (billing.clone(), billing.clone());
        tasks.spawn("subscription expiry", move |stop| {
            expiry.run_expiry(config.expiry_interval, stop)
        });
        tasks.spawn("reminders", move |stop| {
            reminders.run_reminders(config.expiry_interval, stop)
        });
        let service = BillingService {
            billing: billing.clone(),
            authenticator: foundation.authenticator,
        };
        Ok(Parts {
            routes: tonic::service::Routes::new(BillingServiceServer::new(service)),
            service_names: vec![SERVICE_NAME],
            domain: billing,
            tasks,
        })
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
