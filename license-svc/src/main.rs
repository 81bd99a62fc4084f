//! license-svc: configuration from the environment, then serve until
//! SIGTERM or Ctrl-C.

use license_svc::{Application, Config};
use platform::shutdown::Shutdown;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("license-svc")?;
    let config = Config::from_env()?;
    let application = Application::build(config).await?;
    application.run(Shutdown::on_signals()).await
}
