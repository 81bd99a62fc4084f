//! gateway: arguments first (`--help` needs no environment), then the
//! configuration from the environment; then serve until SIGTERM or Ctrl-C
//! (the default), or print the settings.

use clap::{Parser, Subcommand};
use gateway::{Application, Config, config::SETTINGS};
use platform::shutdown::Shutdown;

#[derive(Debug, Parser)]
#[command(version, about, after_help = platform::cli::settings_help(SETTINGS))]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

/// The gateway keeps nothing durable, so it has no migrations.
#[derive(Debug, Clone, Copy, Subcommand)]
enum Command {
    /// Serve until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Print the effective settings, secrets masked, then exit.
    CheckConfig,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let _telemetry = platform::telemetry::init("gateway")?;
    let config = Config::from_env()?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let shutdown = Shutdown::on_signals();
            platform::metrics::start_admin_from_env(shutdown.clone()).await?;
            Application::build(config, shutdown).await?.run().await
        }
        Command::CheckConfig => {
            platform::cli::print_settings(&config);
            Ok(())
        }
    }
}
