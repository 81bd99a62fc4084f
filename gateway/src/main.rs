//! gateway: configuration from the environment, then serve until SIGTERM
//! or Ctrl-C.

use gateway::{Application, Config};
use platform::shutdown::Shutdown;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = platform::telemetry::init("gateway")?;
    let config = Config::from_env()?;
    Application::build(config, Shutdown::on_signals()).await?.run().await
}
