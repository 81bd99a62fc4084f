//! The gateway in front of real identity-svc, license-svc and notify-svc, over HTTP, against real
//! Postgres and Redis.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod accounts;
mod email_flow;
mod helpers;
mod keys;
mod openapi;
mod reactivation;
mod tracing;
mod validation_cache;
