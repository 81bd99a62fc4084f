//! Command lines: every binary of the mesh parses its arguments (clap)
//! before it reads the environment, so `--help` and `--version` answer on
//! any machine, and a mistyped command is refused instead of starting a
//! server. The help lists every setting the binary reads; a test per binary
//! checks it against the variables its `config.rs` really reads.

use std::fmt::Debug;

/// What every service binary can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq, clap::Subcommand)]
pub enum ServiceCommand {
    /// Serve until SIGTERM or Ctrl-C (the default).
    Serve,
    /// Apply the database migrations, then exit: run it as a Job before a
    /// rollout so a slow migration never holds up a pod's start.
    Migrate,
    /// Print the effective settings, secrets masked, then exit.
    CheckConfig,
}

/// The settings every gRPC service reads the same way
/// ([`crate::config::ServiceConfig`]).
pub const SERVICE_SETTINGS: &str = "\
  LISTEN_ADDR                 gRPC address (default 0.0.0.0:<port>)
  DATABASE_URL                this service's Postgres database (secret)
  DATABASE_MAX_CONNECTIONS    pool size (default 10)
  DATABASE_ACQUIRE_TIMEOUT_MS longest wait for a connection before UNAVAILABLE (default 1000)
  REDIS_URL                   redis:// or rediss:// (TLS) (secret)
  REDIS_KEY_PREFIX            every Redis key lives under it (default reactivation:)
  REDIS_TIMEOUT_MS            longest wait to connect or for an answer (default 1000)
  JWT_PUBLIC_KEY              Ed25519 SPKI PEM that verifies access tokens
  INTERNAL_API_TOKEN          the secret services present to each other (secret)
  ACCESS_TOKEN_TTL_SECS       access token lifetime (default 900)
  SHUTDOWN_DRAIN_DELAY_SECS   answer this long after NOT_SERVING (default 0)
  CALL_TIMEOUT_MS             deadline of a call to another service (default 5000)
  PAYMENT_CALL_TIMEOUT_MS     deadline of a call that waits on Stripe (default 30000)
";

/// Logs, traces and metrics, read by every binary.
pub const TELEMETRY_SETTINGS: &str = "\
  RUST_LOG                    log filter, logs only (default info)
  LOG_FORMAT                  json for JSON lines with trace_id and span_id
  OTEL_EXPORTER_OTLP_ENDPOINT export spans over OTLP/gRPC (http:// or https://)
  OTEL_TRACES_SAMPLER         e.g. parentbased_traceidratio (default parentbased_always_on)
  OTEL_TRACES_SAMPLER_ARG     the ratio for the *traceidratio samplers
";

/// The `--help` epilogue: the settings `own` (this binary's), then the
/// telemetry ones.
pub fn settings_help(own: &str) -> String {
    format!("Settings (environment variables):\n{own}{TELEMETRY_SETTINGS}")
}

/// Re-exported for [`crate::settings_only_start`], which builds the calling
/// crate's command.
pub use clap;

/// Parses the command line of a binary that takes no arguments besides
/// `--help` and `--version` (its settings all come from the environment,
/// `own` listed in the help), then starts its telemetry as `service`.
pub fn start_settings_only(
    command: clap::Command,
    own: &str,
    service: &str,
) -> anyhow::Result<crate::telemetry::Telemetry> {
    command.after_help(settings_help(own)).get_matches();
    crate::telemetry::init(service)
}

/// [`start_settings_only`] with the calling crate's name, version and
/// description, as `#[command(version, about)]` would give them.
#[macro_export]
macro_rules! settings_only_start {
    ($settings:expr, $service:expr $(,)?) => {
        $crate::cli::start_settings_only(
            $crate::cli::clap::Command::new(env!("CARGO_PKG_NAME"))
                .version(env!("CARGO_PKG_VERSION"))
                .about(env!("CARGO_PKG_DESCRIPTION")),
            $settings,
            $service,
        )
    };
}

/// `check-config`: the effective settings as `Debug` prints them, where
/// every [`crate::config::Secret`] shows `[redacted]`.
pub fn print_settings(config: &impl Debug) {
    println!("{config:#?}");
}

/// Every environment variable a config source file reads by name: the
/// all-capital string literals in it (`"DATABASE_URL"`). Tests compare them
/// with `--help`.
pub fn variables_named_in(source: &str) -> Vec<&str> {
    let mut names: Vec<&str> = source
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|literal| {
            literal.len() > 3
                && literal.contains('_')
                && literal
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_service_settings_name_every_variable_service_config_reads() {
        let read = variables_named_in(include_str!("config.rs"));
        assert!(read.contains(&"DATABASE_URL"), "{read:?}");
        for name in read {
            assert!(SERVICE_SETTINGS.contains(name), "{name} is read but not in the help");
        }
    }
}
