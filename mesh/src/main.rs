//! `mesh`: the whole reactivation mesh in one process, for development.
//!
//! Creates each service's database on the local Postgres server (migrations
//! run as each service starts), generates a token key pair for this run,
//! creates a local admin, starts every service and the gateway on fixed
//! local ports, prints where they are, and stops them all cleanly on Ctrl-C.
//! It runs the same `Application` code as the service binaries; only the
//! wiring differs.
//!
//! Settings (all optional): `DATABASE_URL` (a Postgres server; default
//! `postgres://postgres@127.0.0.1:5432/postgres`), `REDIS_URL` (default
//! `redis://127.0.0.1:6379`), `GATEWAY_ADDR` (default `127.0.0.1:8080`),
//! `IDENTITY_ADDR` (default `127.0.0.1:50051`), `LICENSE_ADDR` (default
//! `127.0.0.1:50052`), `BILLING_ADDR` (default `127.0.0.1:50053`),
//! `NOTIFY_ADDR` (default `127.0.0.1:50054`), `MAILBOX_DIR` (default
//! `var/mailbox`: every email is written there as an `.eml` file, and
//! reactivation links are logged), `MESH_ADMIN_EMAIL` and
//! `MESH_ADMIN_PASSWORD`.
//!
//! Stripe: with `STRIPE_SECRET_KEY` (and `STRIPE_WEBHOOK_SECRET`, prices as
//! billing-svc reads them) billing talks to real Stripe. Without it a local
//! Stripe double runs on `STRIPE_DOUBLE_ADDR` (default `127.0.0.1:12111`):
//! Checkout URLs open its hosted page, whose "Pay" button completes the
//! payment and sends the signed webhooks to the gateway, so the whole
//! checkout flow can be walked in a browser.

use std::time::Duration;

use billing_svc::config::StripeConfig;
use platform::{
    auth::{InternalToken, KeyPair},
    clock::Clock,
    config::{self, Secret, ServiceConfig},
    shutdown::Shutdown,
};
use stripe_double::{CataloguePrice, StripeDouble};

const KEY_PREFIX: &str = "reactivation:dev:";

const SETTINGS: &str = "\
  DATABASE_URL                a Postgres server (default postgres://postgres@127.0.0.1:5432/postgres)
  REDIS_URL                   default redis://127.0.0.1:6379
  GATEWAY_ADDR                default 127.0.0.1:8080
  IDENTITY_ADDR               default 127.0.0.1:50051
  LICENSE_ADDR                default 127.0.0.1:50052
  BILLING_ADDR                default 127.0.0.1:50053
  NOTIFY_ADDR                 default 127.0.0.1:50054
  STRIPE_DOUBLE_ADDR          the local Stripe double (default 127.0.0.1:12111)
  MAILBOX_DIR                 every email as an .eml file (default var/mailbox)
  MESH_ADMIN_EMAIL            the local admin's login
  MESH_ADMIN_PASSWORD         and password
  STRIPE_SECRET_KEY           use real Stripe (test mode) instead of the double
  ADMIN_ADDR                  Prometheus metrics of the whole mesh (default 127.0.0.1:9090)
  TRIAL_DAYS                  how long a new trial key runs (default 14)
  MAX_TRIALS_PER_CUSTOMER     fresh trial periods per customer email (default 3)
  VALIDATE_RATE_LIMIT_PER_SEC license validations per client address per second (default 100)
  VALIDATION_CACHE_CAPACITY   cached validations, 0 turns the cache off (default 50000)
  VALIDATION_CACHE_MAX_AGE_MS longest a cached validation is used (default 5000)
";

/// The whole mesh in one process: no arguments besides `--help` and
/// `--version`; settings come from the environment.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::settings_only_start!(SETTINGS, "mesh")?;
    let server = Secret::new(
        config::optional("DATABASE_URL").unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432/postgres".into()),
    );
    let redis_url = Secret::new(config::optional("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into()));
    let gateway_addr = config::parsed_or("GATEWAY_ADDR", "127.0.0.1:8080".parse()?)?;
    let identity_addr = config::parsed_or("IDENTITY_ADDR", "127.0.0.1:50051".parse()?)?;
    let license_addr = config::parsed_or("LICENSE_ADDR", "127.0.0.1:50052".parse()?)?;
    let billing_addr = config::parsed_or("BILLING_ADDR", "127.0.0.1:50053".parse()?)?;
    let stripe_double_addr = config::parsed_or("STRIPE_DOUBLE_ADDR", "127.0.0.1:12111".parse()?)?;
    let notify_addr: std::net::SocketAddr = config::parsed_or("NOTIFY_ADDR", "127.0.0.1:50054".parse()?)?;
    let mailbox = std::path::PathBuf::from(config::optional("MAILBOX_DIR").unwrap_or_else(|| "var/mailbox".into()));
    let admin_email = config::optional("MESH_ADMIN_EMAIL").unwrap_or_else(|| "admin@reactivation.test".into());
    let admin_password = config::optional("MESH_ADMIN_PASSWORD").unwrap_or_else(|| "local dev secret 42".into());

    // Tokens are signed with a key pair made for this run: restarting the
    // mesh logs everyone out, which is what a developer expects.
    let keys = KeyPair::generate();
    let internal = InternalToken::generate();
    let token_ttl = Duration::from_secs(3600);
    let shutdown = Shutdown::on_signals();
    let admin_addr = config::parsed_or("ADMIN_ADDR", "127.0.0.1:9090".parse()?)?;
    let admin_addr = platform::metrics::start_admin(admin_addr, shutdown.clone()).await?;

    let service = |database: &str, listen_addr| ServiceConfig {
        listen_addr,
        database_url: platform::db::database_url(&server, database),
        database_max_connections: 10,
        redis_url: redis_url.clone(),
        redis_key_prefix: KEY_PREFIX.into(),
        jwt_public_key: keys.public_pem.clone(),
        internal_token: internal.secret().clone(),
        access_token_ttl: token_ttl,
        drain_delay: Duration::ZERO,
        store_timeouts: config::StoreTimeouts::default(),
        call_timeouts: config::CallTimeouts::default(),
    };

    platform::db::ensure_database(&server, "reactivation_notify").await?;
    std::fs::create_dir_all(&mailbox)?;
    let notify = notify_svc::Application::build(notify_svc::Config {
        service: service("reactivation_notify", notify_addr),
        transport: notify_svc::config::Transport::Mailbox(mailbox.clone()),
        mail_from: notify_svc::config::DEFAULT_MAIL_FROM.into(),
        product_name: notify_svc::config::DEFAULT_PRODUCT_NAME.into(),
        public_url: "http://127.0.0.1:8080".into(),
        max_attempts: 8,
        backoff_base: Duration::from_secs(2),
        backoff_max: Duration::from_secs(300),
        poll_interval: Duration::from_secs(1),
        delivery_concurrency: 2,
    })
    .await?;
    let notify_url = format!("http://{}", notify.local_addr());

    platform::db::ensure_database(&server, "reactivation_identity").await?;
    let identity = identity_svc::Application::build(identity_svc::Config {
        service: service("reactivation_identity", identity_addr),
        jwt_private_key: keys.private_pem.clone(),
        password_hash_concurrency: identity_svc::config::default_concurrency(),
        bootstrap_admin: Some((admin_email.clone(), Secret::new(admin_password.clone()))),
        notify_url: notify_url.clone(),
        billing_url: format!("http://{billing_addr}"),
        license_url: format!("http://{license_addr}"),
        outbox_max_backoff: Duration::from_secs(30),
        reactivation: identity_svc::config::ReactivationConfig::from_env()?,
        login: identity_svc::config::LoginConfig::from_env()?,
        retention: identity_svc::config::RetentionConfig::from_env()?,
    })
    .await?;
    let identity_url = format!("http://{}", identity.local_addr());

    platform::db::ensure_database(&server, "reactivation_license").await?;
    let license = license_svc::Application::build(license_svc::Config {
        service: service("reactivation_license", license_addr),
        notify_url: notify_url.clone(),
        outbox_max_backoff: Duration::from_secs(30),
        trial_days: config::parsed_or("TRIAL_DAYS", 14)?,
        max_trials_per_customer: config::parsed_or("MAX_TRIALS_PER_CUSTOMER", 3)?,
    })
    .await?;
    let license_url = format!("http://{}", license.local_addr());

    let gateway_public_url = format!("http://{gateway_addr}");
    let (stripe, stripe_double) = match config::optional("STRIPE_SECRET_KEY") {
        Some(_) => (StripeConfig::from_env()?, None),
        None => {
            let webhook_secret = format!("whsec_local_{}", uuid::Uuid::new_v4().simple());
            let catalogue = StripeConfig::default_catalogue()
                .map(|(id, amount, interval)| CataloguePrice::new(id, amount, interval))
                .collect();
            let mut options = stripe_double::Options::new(Clock::system(), webhook_secret.clone(), catalogue);
            options.listen = stripe_double_addr;
            options.webhook_url = Some(format!("{gateway_public_url}/api/stripe/webhook"));
            options.auto_deliver = true;
            let double = StripeDouble::start(options).await?;
            let stripe = StripeConfig {
                secret_key: Secret::from("sk_test_local_double"),
                webhook_secret: Secret::new(webhook_secret),
                api_base: double.url().to_owned(),
                prices: billing_svc::domain::Product::all()
                    .map(|product| (product, StripeConfig::default_price_id(product)))
                    .collect(),
                timeout: Duration::from_secs(10),
            };
            (stripe, Some(double))
        }
    };
    platform::db::ensure_database(&server, "reactivation_billing").await?;
    let billing = billing_svc::Application::build(billing_svc::Config {
        service: service("reactivation_billing", billing_addr),
        stripe,
        public_url: gateway_public_url.clone(),
        expiry_interval: Duration::from_secs(60),
        license_url: license_url.clone(),
        identity_url: identity_url.clone(),
        outbox_max_backoff: Duration::from_secs(30),
    })
    .await?;
    let billing_url = format!("http://{}", billing.local_addr());
    if stripe_double.is_some() {
        // The local Stripe starts empty: the welcome-back coupons must exist.
        for offer in billing_svc::domain::WelcomeBack::ALL {
            billing.domain().setup_coupon(offer).await?;
        }
    }

    let gateway = gateway::Application::build(
        gateway::Config {
            listen_addr: gateway_addr,
            identity_url: identity_url.clone(),
            license_url: license_url.clone(),
            billing_url: billing_url.clone(),
            validate_rate_limit_per_sec: config::parsed_or("VALIDATE_RATE_LIMIT_PER_SEC", 100)?,
            validation_cache_capacity: config::parsed_or("VALIDATION_CACHE_CAPACITY", 50_000)?,
            validation_cache_max_age: Duration::from_millis(config::parsed_or("VALIDATION_CACHE_MAX_AGE_MS", 5000)?),
            redis_url,
            redis_key_prefix: KEY_PREFIX.into(),
            redis_timeout: Duration::from_secs(1),
            jwt_public_key: keys.public_pem,
            access_token_ttl: token_ttl,
            downstream_timeout: Duration::from_secs(5),
            cors_allowed_origins: vec!["http://localhost:3000".into(), "http://127.0.0.1:3000".into()],
            drain_delay: Duration::ZERO,
            // Local development over plain HTTP.
            secure_cookies: false,
            trusted_proxies: Default::default(),
            limits: gateway::config::Limits::from_env()?,
        },
        shutdown.clone(),
    )
    .await?;
    let gateway_url = format!("http://{}", gateway.local_addr());

    println!();
    println!("The reactivation mesh is up. Ctrl-C stops it.");
    println!("  web app            {gateway_url}/");
    println!("  gateway (REST)     {gateway_url}");
    println!("  OpenAPI document   {gateway_url}/openapi.json");
    println!("  identity-svc gRPC  {identity_url}");
    println!("  license-svc gRPC   {license_url}");
    println!("  billing-svc gRPC   {billing_url}");
    match &stripe_double {
        Some(double) => println!(
            "  Stripe (local)     {} (Checkout pages: pay with one click)",
            double.url()
        ),
        None => println!("  Stripe             real Stripe (STRIPE_SECRET_KEY)"),
    }
    println!("  notify-svc gRPC    {notify_url}");
    println!("  mailbox            {}/ (one .eml per email)", mailbox.display());
    println!("  metrics            http://{admin_addr}/metrics");
    println!("  admin login        {admin_email} / {admin_password}");
    println!();

    let (identity, license, billing, notify, gateway) = tokio::join!(
        identity.run(shutdown.clone()),
        license.run(shutdown.clone()),
        billing.run(shutdown.clone()),
        notify.run(shutdown.clone()),
        gateway.run()
    );
    identity?;
    license?;
    billing?;
    notify?;
    gateway?;
    println!("The mesh has stopped.");
    Ok(())
}
