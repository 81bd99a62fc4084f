//! identity-svc over gRPC, against real Postgres and Redis.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod abuse;
mod accounts;
mod cli;
mod customer_email;
mod find_users;
mod helpers;
mod reactivation;
mod redis_tls;
mod retention;
mod serving;
mod sessions;
