//! billing-svc: serve (the default), or run an operator command.
//!
//! - `billing-svc` — serve until SIGTERM or Ctrl-C.
//! - `billing-svc setup-coupons` — create or update the welcome-back coupons
//!   at Stripe; running it again changes nothing.
//! - `billing-svc replay-webhooks [EVENT_ID]` — apply failed Stripe webhooks
//!   again (one, or every unresolved one).

use billing_svc::{Application, Config, domain::WelcomeBack};
use platform::shutdown::Shutdown;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("billing-svc")?;
    let config = Config::from_env()?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        None | Some("serve") => Application::build(config).await?.run(Shutdown::on_signals()).await,
        Some("setup-coupons") => {
            let billing = billing_svc::connect(&config).await?;
            for offer in WelcomeBack::ALL {
                let done = billing.setup_coupon(offer).await?;
                println!("{}: {done:?}", offer.coupon);
            }
            Ok(())
        }
        Some("replay-webhooks") => {
            let billing = billing_svc::connect(&config).await?;
            let replayed = billing.replay_failed(args.get(1).map(String::as_str)).await?;
            for webhook in &replayed {
                let state = if webhook.resolved_at.is_some() {
                    "resolved"
                } else {
                    "failed again"
                };
                println!(
                    "{} {}: {state} ({})",
                    webhook.event_id, webhook.event_type, webhook.error
                );
            }
            println!("{} webhook(s) replayed", replayed.len());
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected serve, setup-coupons or replay-webhooks"),
    }
}
