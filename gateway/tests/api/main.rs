//! The gateway in front of real identity-svc, license-svc, notify-svc and billing-svc (with a
//! Stripe double), over HTTP, against real Postgres and Redis.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod accounts;
mod billing;
mod email_flow;
mod helpers;
mod journey;
mod keys;
mod lifecycle;
mod openapi;
mod reactivation;
mod tracing;
mod validation_cache;
