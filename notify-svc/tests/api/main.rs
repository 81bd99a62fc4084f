//! notify-svc over gRPC, against real Postgres and Redis and a real SMTP
//! server (the platform's test sink).

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod authorization;
mod cli;
mod delivery;
mod enqueue;
mod helpers;
mod retries;
mod serving;
