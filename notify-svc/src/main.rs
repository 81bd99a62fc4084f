//! notify-svc: configuration from the environment, then serve and deliver
//! until SIGTERM or Ctrl-C.

use notify_svc::{Application, Config};
use platform::shutdown::Shutdown;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("notify-svc")?;
    let config = Config::from_env()?;
    let application = Application::build(config).await?;
    application.run(Shutdown::on_signals()).await
}
