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
use clap::{Parser, Subcommand};
use platform::cli::ServiceCommand;

#[derive(Debug, Parser)]
#[command(version, about, after_help = platform::cli::settings_help(&format!("{}{SETTINGS}", platform::cli::SERVICE_SETTINGS)))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Service(ServiceCommand),
    /// Create or update the welcome-back coupons at Stripe (idempotent).
    SetupCoupons,
    /// Apply failed Stripe webhooks again: one, or every unresolved one.
    ReplayWebhooks {
        /// The Stripe event id (`evt_…`) to replay; all unresolved ones when absent.
        event_id: Option<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = platform::telemetry::init("billing-svc")?;
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Service(ServiceCommand::Serve)) {
        Command::Service(command) => platform::service::execute::<BillingSvc>(command, config).await,
        Command::SetupCoupons => {
            let billing = billing_svc::connect(&config).await?;
            for offer in WelcomeBack::ALL {
                let done = billing.setup_coupon(offer).await?;
                println!("{}: {done:?}", offer.coupon);
            }
            Ok(())
        }
        Command::ReplayWebhooks { event_id } => {
            let billing = billing_svc::connect(&config).await?;
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
            Ok(())
        }
    }
}
