//! billing-svc over gRPC, against real Postgres and Redis, a Stripe double
//! speaking Stripe's wire format, and a pinned clock.

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

mod access;
mod checkout;
mod cli;
mod coupons;
mod helpers;
mod reminders;
mod subscriptions;
mod webhooks;
