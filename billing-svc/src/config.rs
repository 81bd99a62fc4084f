//! billing-svc's settings, from the environment.

use std::{collections::HashMap, time::Duration};

use platform::config::{self, ConfigError, Secret, ServiceConfig};

use crate::domain::Product;

/// The port billing-svc listens on unless `LISTEN_ADDR` says otherwise.
pub const DEFAULT_PORT: u16 = 50053;

/// The settings this binary reads besides `platform::cli::SERVICE_SETTINGS` and the telemetry ones, as
/// `--help` lists them (a test checks none is missing).
pub const SETTINGS: &str = "\
  STRIPE_SECRET_KEY           sk_... (secret)
  STRIPE_WEBHOOK_SECRET       whsec_..., verifies Stripe-Signature (secret)
  STRIPE_API_BASE             default https://api.stripe.com (a local double in dev)
  STRIPE_TIMEOUT_SECS         the longest a Stripe call may take (default 10)
  STRIPE_PRICE_ID_GROWER, STRIPE_PRICE_ID_GROWER_ANNUAL, STRIPE_PRICE_ID_BUILDER,
  STRIPE_PRICE_ID_BUILDER_ANNUAL, STRIPE_PRICE_ID_MAVEN, STRIPE_PRICE_ID_MAVEN_ANNUAL
                              each product's Stripe price: required with real Stripe
                              (default price_<plan>_<period> with STRIPE_API_BASE)
  PUBLIC_URL                  where Checkout sends the customer back (default http://127.0.0.1:8080)
  EXPIRY_INTERVAL_SECS        how often ended subscriptions are expired and billing
                              reminders sent (default 60)
  LICENSE_URL                 license-svc (default http://127.0.0.1:50052)
  IDENTITY_URL                identity-svc, which emails customers (default http://127.0.0.1:50051)
  OUTBOX_MAX_BACKOFF_SECS     longest wait between deliveries to license-svc and identity-svc (default 300)
";

#[derive(Debug, Clone)]
pub struct Config {
    pub service: ServiceConfig,
    pub stripe: StripeConfig,
    /// `PUBLIC_URL`, default `http://127.0.0.1:8080`: where Checkout sends
    /// the customer back (`/billing/success`, `/billing/cancelled`).
    pub public_url: String,
    /// `EXPIRY_INTERVAL_SECS`, default 60: how often cancelled subscriptions
    /// whose paid period ended are marked expired, and how often the
    /// reminder emails that are due are sent.
    pub expiry_interval: Duration,
    /// `LICENSE_URL`, default `http://127.0.0.1:50052`: where key access changes go.
    pub license_url: String,
    /// `IDENTITY_URL`, default `http://127.0.0.1:50051`: where customer
    /// emails go (identity-svc holds the addresses).
    pub identity_url: String,
    /// `OUTBOX_MAX_BACKOFF_SECS`, default 300: the longest wait between two
    /// attempts to deliver an effect while its receiver is down.
    pub outbox_max_backoff: Duration,
}

/// Stripe itself, as opposed to a local double.
const REAL_STRIPE: &str = "https://api.stripe.com";

#[derive(Debug, Clone)]
pub struct StripeConfig {
    /// `STRIPE_SECRET_KEY` (`sk_…`).
    pub secret_key: Secret<String>,
    /// `STRIPE_WEBHOOK_SECRET` (`whsec_…`): verifies `Stripe-Signature`.
    pub webhook_secret: Secret<String>,
    /// `STRIPE_API_BASE`, default `https://api.stripe.com`: a local double
    /// in tests and local runs.
    pub api_base: String,
    /// `STRIPE_PRICE_ID_<PLAN>` (monthly) and `STRIPE_PRICE_ID_<PLAN>_ANNUAL`
    /// (seed 004's names): the Stripe price of each product. Required with
    /// real Stripe; against another Stripe (`STRIPE_API_BASE`, the local
    /// double) an unset one defaults to `price_<plan>_<period>`.
    pub prices: HashMap<Product, String>,
    /// `STRIPE_TIMEOUT_SECS`, default 10: the longest a Stripe call may take.
    pub timeout: Duration,
}

impl StripeConfig {
    /// The default price id of `product`, as the local double knows it.
    pub fn default_price_id(product: Product) -> String {
        format!("price_{}_{}", product.plan.as_str(), product.period.as_str())
    }

    /// The variable naming `product`'s price id (seed 004).
    pub fn price_variable(product: Product) -> &'static str {
        use crate::domain::{BillingPeriod::*, Plan::*};
        match (product.plan, product.period) {
            (Grower, Monthly) => "STRIPE_PRICE_ID_GROWER",
            (Grower, Annual) => "STRIPE_PRICE_ID_GROWER_ANNUAL",
            (Builder, Monthly) => "STRIPE_PRICE_ID_BUILDER",
            (Builder, Annual) => "STRIPE_PRICE_ID_BUILDER_ANNUAL",
            (Maven, Monthly) => "STRIPE_PRICE_ID_MAVEN",
            (Maven, Annual) => "STRIPE_PRICE_ID_MAVEN_ANNUAL",
        }
    }

    /// Every product's price id from `lookup` (the environment). With real
    /// Stripe a missing one is an error naming it — a made-up id would only
    /// fail later, at a customer's checkout.
    pub fn prices_from(
        lookup: impl Fn(&str) -> Option<String>,
        real_stripe: bool,
    ) -> Result<HashMap<Product, String>, ConfigError> {
        Product::all()
            .map(|product| {
                let name = Self::price_variable(product);
                match lookup(name).filter(|id| !id.trim().is_empty()) {
                    Some(id) => Ok((product, id.trim().to_owned())),
                    None if real_stripe => Err(ConfigError::Missing(name)),
                    None => Ok((product, Self::default_price_id(product))),
                }
            })
            .collect()
    }

    pub fn from_env() -> Result<Self, ConfigError> {
        let api_base = config::optional("STRIPE_API_BASE").unwrap_or_else(|| REAL_STRIPE.into());
        let real_stripe = api_base.trim_end_matches('/') == REAL_STRIPE;
        let prices = Self::prices_from(|name| std::env::var(name).ok(), real_stripe)?;
        Ok(Self {
            secret_key: config::secret("STRIPE_SECRET_KEY")?,
            webhook_secret: config::secret("STRIPE_WEBHOOK_SECRET")?,
            api_base,
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
            identity_url: config::optional("IDENTITY_URL").unwrap_or_else(|| "http://127.0.0.1:50051".into()),
            outbox_max_backoff: Duration::from_secs(config::parsed_or("OUTBOX_MAX_BACKOFF_SECS", 300)?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn with_real_stripe_a_missing_price_id_is_named() {
        let all_but_one = |name: &str| (name != "STRIPE_PRICE_ID_MAVEN_ANNUAL").then(|| format!("price_{name}"));
        let err = StripeConfig::prices_from(all_but_one, true).unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable STRIPE_PRICE_ID_MAVEN_ANNUAL is required"
        );

        let prices = StripeConfig::prices_from(all_but_one, false).expect("a double has defaults");
        let builder = Product {
            plan: crate::domain::Plan::Builder,
            period: crate::domain::BillingPeriod::Monthly,
        };
        assert_eq!(prices[&builder], "price_STRIPE_PRICE_ID_BUILDER");
        let maven_annual = Product {
            plan: crate::domain::Plan::Maven,
            period: crate::domain::BillingPeriod::Annual,
        };
        assert_eq!(prices[&maven_annual], "price_maven_annual");
    }
}
