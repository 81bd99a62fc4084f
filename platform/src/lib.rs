//! What every service of the reactivation mesh shares.
//!
//! A service is a thin `main.rs` over a `lib.rs` that builds its gRPC server
//! from these pieces: [`config`] reads the environment (secrets never print),
//! [`telemetry`] installs tracing and OpenTelemetry and carries trace context
//! across calls, [`auth`] issues and verifies access tokens, [`error`] turns
//! domain refusals into gRPC statuses, [`db`] and [`kv`] open Postgres and
//! Redis, [`invalidation`] tells caches in other processes what changed, and
//! [`serve`] runs a server with health, reflection and a graceful drain.
//! [`license_key`] is the key format license-svc and the gateway both parse.
//! With the `testing` feature, [`testing`] gives every test its own database
//! and key space.

pub mod auth;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod error;
pub mod invalidation;
pub mod kv;
pub mod license_key;
pub mod limits;
pub mod mail;
pub mod outbox;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;
