//! Seed 003: cancel, undo the cancellation, and everything that must refuse.

use chrono::Duration;
use proto::billing::v1 as pb;
use tonic::Code;

use crate::helpers::{billing_date, reason, spawn_app};

#[tokio::test]
async fn cancel_then_reactivate_keeps_the_billing_date_and_tells_stripe() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    let active = app.subscription(&customer).await;
    assert_eq!(active.status(), pb::SubscriptionStatus::Active);
    assert!(active.can_cancel && !active.can_reactivate);
    let date = billing_date(&active);
    assert_eq!(date, app.clock.now() + Duration::days(30), "a month paid");

    let cancelled = app.cancel(&customer).await.expect("cancel");
    assert_eq!(cancelled.status(), pb::SubscriptionStatus::Cancelled);
    assert_eq!(billing_date(&cancelled), date, "access until the end of the period");
    assert!(cancelled.can_reactivate && !cancelled.can_cancel);

    let reactivated = app.reactivate(&customer).await.expect("reactivate");
    assert_eq!(reactivated.status(), pb::SubscriptionStatus::Active);
    assert_eq!(billing_date(&reactivated), date, "the billing date does not move");
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Active
    );

    assert_eq!(app.stripe.cancel_at_period_end_updates(&stripe_id), ["true", "false"]);
    let stripe = app.stripe.subscription(&stripe_id).unwrap();
    assert_eq!(stripe["cancel_at_period_end"], false);
    let keys: Vec<_> = app
        .stripe
        .requests()
        .into_iter()
        .filter(|request| request.method == "POST" && request.path == format!("/v1/subscriptions/{stripe_id}"))
        .map(|request| request.idempotency_key.expect("mutations carry an Idempotency-Key"))
        .collect();
    assert_eq!(keys.len(), 2);
    assert_ne!(keys[0], keys[1], "two different changes, two keys");
}

#[tokio::test]
async fn cancel_and_reactivate_can_repeat() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    for _ in 0..2 {
        app.cancel(&customer).await.expect("cancel");
        app.reactivate(&customer).await.expect("reactivate");
    }
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Active
    );
    assert_eq!(
        app.stripe.cancel_at_period_end_updates(&stripe_id),
        ["true", "false", "true", "false"]
    );
    assert_eq!(app.events("cancelled").await, 2);
    assert_eq!(app.events("reactivated").await, 2);
}

#[tokio::test]
async fn only_a_cancelled_subscription_can_be_reactivated() {
    let app = spawn_app().await;
    let (active, _) = app.subscriber().await;
    let refused = app.reactivate(&active).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(refused.message(), "Only cancelled subscriptions can be reactivated");
    assert_eq!(reason(&refused).as_deref(), Some("SUBSCRIPTION_NOT_CANCELLED"));

    // A trial (set at Stripe, synced by webhook).
    let (trial, stripe_id) = app.subscriber().await;
    let event = app.stripe.set_status(&stripe_id, "trialing").unwrap();
    app.deliver(&event).await.expect("sync");
    assert_eq!(app.subscription(&trial).await.status(), pb::SubscriptionStatus::Trial);
    let refused = app.reactivate(&trial).await.unwrap_err();
    assert_eq!(refused.message(), "Only cancelled subscriptions can be reactivated");
}

#[tokio::test]
async fn after_the_period_ends_reactivation_says_expired() {
    let app = spawn_app().await;
    let (customer, _) = app.subscriber().await;
    let cancelled = app.cancel(&customer).await.unwrap();
    // Exactly at the end of the paid period, before the expiry job runs.
    app.clock.advance(billing_date(&cancelled) - app.clock.now());
    let refused = app.reactivate(&customer).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "Subscription has expired. Please purchase a new subscription."
    );
    assert_eq!(reason(&refused).as_deref(), Some("SUBSCRIPTION_EXPIRED"));
    assert!(!app.subscription(&customer).await.can_reactivate);
}

#[tokio::test]
async fn once_the_expiry_job_ran_reactivation_still_says_expired() {
    let app = spawn_app().await;
    let (customer, _) = app.subscriber().await;
    app.cancel(&customer).await.expect("cancel");
    app.clock.advance(Duration::days(31));
    assert_eq!(app.billing.expire_due().await.unwrap(), 1);
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Expired
    );
    let refused = app.reactivate(&customer).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(
        refused.message(),
        "Subscription has expired. Please purchase a new subscription."
    );
    assert_eq!(reason(&refused).as_deref(), Some("SUBSCRIPTION_EXPIRED"));
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Expired
    );
}

#[tokio::test]
async fn without_a_tenant_there_is_nothing_to_act_on() {
    let app = spawn_app().await;
    let stranger = app.customer();
    let refused = app.reactivate(&stranger).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(refused.message(), "Tenant not found");
    assert_eq!(app.cancel(&stranger).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(app.subscription(&stranger).await.status(), pb::SubscriptionStatus::None);
}

#[tokio::test]
async fn a_user_acts_only_on_their_own_subscription() {
    let app = spawn_app().await;
    let (alice, _) = app.subscriber().await;
    app.cancel(&alice).await.unwrap();
    let bob = app.customer();
    // Bob's token can only ever name Bob's tenant, which does not exist.
    assert_eq!(app.reactivate(&bob).await.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        app.subscription(&alice).await.status(),
        pb::SubscriptionStatus::Cancelled
    );

    let anonymous = app
        .client
        .clone()
        .reactivate_subscription(pb::ReactivateSubscriptionRequest {})
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_stripe_failure_changes_nothing_and_says_try_again() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    app.stripe.fail_next("POST", "/v1/subscriptions/", 500);
    let refused = app.cancel(&customer).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused).as_deref(), Some("PAYMENT_PROVIDER_UNAVAILABLE"));
    assert!(refused.message().contains("try again"), "{}", refused.message());
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Active
    );
    assert_eq!(app.events("cancelled").await, 0);

    // Trying again works, under the same idempotency key (same change).
    app.cancel(&customer).await.expect("retry succeeds");
    let keys: Vec<_> = app
        .stripe
        .requests()
        .into_iter()
        .filter(|request| request.path == format!("/v1/subscriptions/{stripe_id}") && request.method == "POST")
        .map(|request| request.idempotency_key.unwrap())
        .collect();
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[0], keys[1]);
}

#[tokio::test]
async fn the_expiry_job_expires_each_subscription_once_across_replicas() {
    let app = spawn_app().await;
    let (first, _) = app.subscriber().await;
    let (second, _) = app.subscriber().await;
    let (kept, _) = app.subscriber().await;
    app.cancel(&first).await.unwrap();
    app.cancel(&second).await.unwrap();
    app.clock.advance(Duration::days(30));
    // Two replicas run the job at the same moment.
    let (a, b) = tokio::join!(app.billing.expire_due(), app.billing.expire_due());
    assert_eq!(a.unwrap() + b.unwrap(), 2);
    assert_eq!(app.events("expired").await, 2);
    assert_eq!(app.subscription(&first).await.status(), pb::SubscriptionStatus::Expired);
    assert_eq!(app.subscription(&kept).await.status(), pb::SubscriptionStatus::Active);
}
