//! identity-svc: arguments first (`--help` needs no environment), then the
//! configuration from the environment; then serve until SIGTERM or Ctrl-C
//! (the default), apply the migrations, or print the settings.

platform::service_main!(identity_svc::IdentitySvc, identity_svc::config::SETTINGS);
