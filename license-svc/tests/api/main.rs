//! license-svc over gRPC, against real Postgres and Redis, with a pinned clock.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod access;
mod admin_reads;
mod announcements;
mod cli;
mod helpers;
mod history;
mod lifecycle;
mod listing;
