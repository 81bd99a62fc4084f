//! notify-svc: arguments first (`--help` needs no environment), then the
//! configuration from the environment; then serve and deliver until SIGTERM or Ctrl-C
//! (the default), apply the migrations, or print the settings.

platform::service_main!(notify_svc::NotifySvc, notify_svc::config::SETTINGS);
