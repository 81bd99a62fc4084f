//! What every service of the reactivation mesh shares.
//!
//! A service is a thin `main.rs` over a `lib.rs` that builds its gRPC server
//! from these pieces: [`config`] reads the environment (secrets never print),
//! [`telemetry`] installs tracing and OpenTelemetry and carries trace context
//! across calls, [`auth`] issues and verifies access tokens, [`error`] turns
//! domain refusals into gRPC statuses, [`db`] and [`kv`] open Postgres and
//! Redis, [`invalidation`] tells caches in other processes what changed, and
//! [`serve`] runs a server with health, reflection and a graceful drain.
//! [`service`] is the skeleton they all stand on: one builder for what every
//! service connects and binds, one `run` that tracks every background task
//! and stops them in order, one `main`; [`outbox`] is the effects a change
//! owes, from its table's schema to forgetting a person's pending ones.
//! [`license_key`] is the key format license-svc and the gateway both parse,
//! [`email`] the one rule every service applies to an address, [`backoff`]
//! the one schedule of retries.
//! [`db`], [`outbox`], [`mail`] and [`serve`] need Postgres and come with the
//! `postgres` feature, which every service turns on and the gateway does not.
//! With the `testing` feature, [`testing`] gives every test its own database
//! and key space.

pub mod auth;
pub mod backoff;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
#[cfg(feature = "postgres")]
pub mod db;
pub mod email;
pub mod error;
pub mod fail_point;
pub mod health;
pub mod invalidation;
pub mod kv;
pub mod license_key;
pub mod limits;
#[cfg(feature = "postgres")]
pub mod mail;
pub mod metrics;
#[cfg(feature = "postgres")]
pub mod outbox;
mod redacted;
#[cfg(feature = "postgres")]
pub mod serve;
#[cfg(feature = "postgres")]
pub mod service;
pub mod shutdown;
pub mod telemetry;
#[cfg(feature = "testing")]
pub mod testing;
pub mod wire;
