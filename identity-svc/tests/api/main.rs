//! identity-svc over gRPC, against real Postgres and Redis.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod accounts;
mod helpers;
mod reactivation;
mod retention;
mod serving;
