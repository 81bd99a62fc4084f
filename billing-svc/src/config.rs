//! billing-svc's settings, from the environment.

use std::{collections::HashMap, time::Duration};

use platform::config::{self, ConfigError, Secret, ServiceConfig};

use crate::domain::Product;

/// The port billing-svc listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 50053;

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    pub stripe: StripeConfig,
    /// `PUBLIC_URL`, default `http://127.0.0.1:8080`: where Checkout sends
    /// the customer back (`/billing/success`, `/billing/cancelled`).
    pub public_url: String,
    /// `EXPIRY_INTERVAL_SECS`, default 60: how often cancelled subscriptions
    /// whose paid period ended are marked expired.
    pub expiry_interval: Duration,
    /// `LICENSE_URL`, default `http://127.0.0.1:50052`: where key access changes go.
    pub license_url: String,
    /// `OUTBOX_MAX_BACKOFF_SECS`, default 300: the longest wait between two
    /// attempts to deliver an effect while its receiver is down.
    pub outbox_max_backoff: Duration,
}

#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `STRIPE_SECRET_KEY` (`sk_…`).
    pub secret_key: Secret<String>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`): verifies `Stripe-Signature`.
    pub webhook_secret: Secret<String>,
    /// `STRIPE_API_BASE`, default `https://api.stripe.com`: a local double
    /// in tests and local runs.
    pub api_base: String,
    /// `STRIPE_PRICE_<PLAN>_<PERIOD>` (e.g. `STRIPE_PRICE_BUILDER_ANNUAL`),
    /// default `price_<plan>_<period>`: the Stripe price of each product.
    pub prices: HashMap<Product, String>,
    /// `STRIPE_TIMEOUT_SECS`, default 10: the longest a Stripe call may take.
    pub timeout: Duration,
}

impl StripeConfig {
    /// The default price id of `product`, as the local double knows it.
    pub fn default_price_id(product: Product) -> String {
        format!("price_{}_{}", product.plan.as_str(), product.period.as_str())
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let prices = Product::all()
            .map(|product| {
                let name = format!(
                    "STRIPE_PRICE_{}_{}",
                    product.plan.as_str().to_uppercase(),
                    product.period.as_str().to_uppercase()
                );
                let id = std::env::var(&name).unwrap_or_else(|_| Self::default_price_id(product));
                (product, id)
            })
            .collect();
        Ok(Self {
            secret_key: config::secret("STRIPE_SECRET_KEY")?,
            webhook_secret: config::secret("STRIPE_WEBHOOK_SECRET")?,
            api_base: config::optional("STRIPE_API_BASE").unwrap_or_else(|| "https://api.stripe.com".into()),
            prices,
            timeout: Duration::from_secs(config::parsed_or("STRIPE_TIMEOUT_SECS", 10)?),
        })
    }

    /// Every default price id with its amount in cents and Stripe interval
    /// (`month` or `year`): what a local Stripe double sells.
    pub fn default_catalogue() -> impl Iterator<Item = (String, i64, &'static str)> {
        Product::all().map(|product| {
            let interval = match product.period {
                crate::domain::BillingPeriod::Monthly => "month",
                crate::domain::BillingPeriod::Annual => "year",
            };
            (Self::default_price_id(product), product.amount_cents(), interval)
        })
    }

    /// The product a Stripe price id stands for.
    pub fn product_of(&self, price_id: &str) -> Option<Product> {
        self.prices
            .iter()
            .find(|(_, id)| id.as_str() == price_id)
            .map(|(product, _)| *product)
    }
}

impl Config {
    pub fn from_env() -> Result<Self, ConfigError> {
        Ok(Self {
            service: ServiceConfig::from_env(DEFAULT_PORT)?,
            stripe: StripeConfig::from_env()?,
            public_url: config::optional("PUBLIC_URL").unwrap_or_else(|| "http://127.0.0.1:8080".into()),
            expiry_interval: Duration::from_secs(config::parsed_or("EXPIRY_INTERVAL_SECS", 60)?),
            license_url: config::optional("LICENSE_URL").unwrap_or_else(|| "http://127.0.0.1:50052".into()),
            outbox_max_backoff: Duration::from_secs(config::parsed_or("OUTBOX_MAX_BACKOFF_SECS", 300)?),
        })
    }
}
