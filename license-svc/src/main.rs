//! license-svc: arguments first (`--help` needs no environment), then the
//! configuration from the environment; then serve until SIGTERM or Ctrl-C
//! (the default), apply the migrations, or print the settings.

platform::service_main!(license_svc::LicenseSvc, license_svc::config::SETTINGS);
