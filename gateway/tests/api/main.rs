//! The gateway in front of real identity-svc, license-svc, notify-svc and billing-svc (with a
//! Stripe double), over HTTP, against real Postgres and Redis.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod accounts;
mod admin_console;
mod authorization;
mod billing;
mod browser;
mod cli;
mod email_flow;
mod email_links;
mod health;
mod helpers;
mod journey;
mod keys;
mod lifecycle;
mod metrics;
mod openapi;
mod otlp;
mod protection;
mod reactivation;
mod tracing;
mod validation_cache;
mod web;
