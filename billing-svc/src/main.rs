//! billing-svc: arguments first (`--help` needs no environment), then the
//! configuration from the environment; then serve (the default), or run an
//! operator command:
//!
//! - `billing-svc serve` — serve until SIGTERM or Ctrl-C.
//! - `billing-svc migrate` — apply the migrations, then exit.
//! - `billing-svc check-config` — print the settings, secrets masked.
//! - `billing-svc setup-coupons` — create or update the welcome-back coupons
//!   at Stripe; running it again changes nothing.
//! - `billing-svc replay-webhooks [EVENT_ID]` — apply failed Stripe webhooks
//!   again (one, or every unresolved one).

use billing_svc::{BillingSvc, Config, config::SETTINGS, domain::WelcomeBack};

platform::service_main!(BillingSvc, SETTINGS, Command, run);

/// billing-svc's own operator commands.
#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Create or update the welcome-back coupons at Stripe (idempotent).
    SetupCoupons,
    /// Apply failed Stripe webhooks again: one, or every unresolved one.
    ReplayWebhooks {
        /// The Stripe event id (`evt_…`) to replay; all unresolved ones when absent.
        event_id: Option<String>,
    },
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    let billing = billing_svc::connect(&config).await?;
    match command {
        Command::SetupCoupons => {
            for offer in WelcomeBack::ALL {
                let done = billing.setup_coupon(offer).await?;
                println!("{}: {done:?}", offer.coupon);
            }
        }
        Command::ReplayWebhooks { event_id } => {
            let replayed = billing.replay_failed(event_id.as_deref()).await?;
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
        }
    }
    Ok(())
}
