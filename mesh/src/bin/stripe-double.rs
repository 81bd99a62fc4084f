//! `stripe-double`: the local Stripe on its own, for a cluster with no Stripe
//! account (the dev overlay). It sells billing-svc's default catalogue, signs
//! its webhooks with `STRIPE_WEBHOOK_SECRET` and delivers each event to
//! `WEBHOOK_URL` as it happens; its hosted checkout page's "Pay" button
//! completes a payment, so the checkout flow can be walked in a browser.

use billing_svc::config::StripeConfig;
use platform::{clock::Clock, config};
use stripe_double::{CataloguePrice, Options, StripeDouble};

const SETTINGS: &str = "\
  LISTEN_ADDR                 where the API and checkout pages listen (default 0.0.0.0:12111)
  STRIPE_WEBHOOK_SECRET       the endpoint secret webhooks are signed with (required; billing-svc's)
  WEBHOOK_URL                 where events are delivered, e.g. http://gateway/api/stripe/webhook (required)
  PUBLIC_URL                  where a browser reaches the checkout pages (default http://LISTEN_ADDR)
";

/// No arguments besides `--help` and `--version`; settings come from the
/// environment.
#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::settings_only_start!(SETTINGS, "stripe-double")?;
    let catalogue = StripeConfig::default_catalogue()
        .map(|(id, amount, interval)| CataloguePrice::new(id, amount, interval))
        .collect();
    let webhook_secret = config::secret("STRIPE_WEBHOOK_SECRET")?;
    let mut options = Options::new(Clock::system(), webhook_secret.expose().clone(), catalogue);
    options.listen = config::parsed_or("LISTEN_ADDR", "0.0.0.0:12111".parse()?)?;
    options.webhook_url = Some(config::required("WEBHOOK_URL")?);
    options.public_url = config::optional("PUBLIC_URL");
    options.auto_deliver = true;
    let double = StripeDouble::start(options).await?;
    tracing::info!(url = double.url(), "stripe double listening");
    platform::shutdown::Shutdown::on_signals().wait().await;
    Ok(())
}
