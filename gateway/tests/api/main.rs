//! The gateway in front of a real identity-svc, over HTTP, against real
//! Postgres and Redis.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod accounts;
mod email_flow;
mod helpers;
mod openapi;
mod reactivation;
mod tracing;
