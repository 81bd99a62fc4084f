//! Stripe webhooks: verified, applied exactly once, kept when they fail.

use chrono::Duration;
use futures::future::join_all;
use proto::billing::v1 as pb;
use tonic::Code;

use crate::helpers::{bearer, reason, spawn_app};

async fn applied_events(app: &crate::helpers::TestApp) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM stripe_events")
        .fetch_one(&app.pool)
        .await
        .unwrap()
}

/// `stripe_webhooks_total{outcome}` in this test's process.
fn counted(outcome: &'static str) -> u64 {
    platform::metrics::metrics()
        .stripe_webhooks
        .get_or_create(&platform::metrics::OutcomeLabels { outcome })
        .get()
}

#[tokio::test]
async fn a_bad_signature_is_refused_and_nothing_applied() {
    let app = spawn_app().await;
    let customer = app.customer();
    let completed = app.pay(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly).await;
    let event = &completed.events[1];
    let (payload, signature) = app.stripe.signed(event, app.clock.now().timestamp()).unwrap();

    let forged = signature.replace("v1=", "v1=00");
    let refused = app.deliver_raw(payload.clone(), forged).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(reason(&refused).as_deref(), Some("WEBHOOK_SIGNATURE_INVALID"));

    let mut tampered = payload.clone();
    let at = tampered.len() - 2;
    tampered[at] = b' ';
    assert_eq!(
        app.deliver_raw(tampered, signature.clone()).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    assert_eq!(
        app.deliver_raw(payload.clone(), String::new())
            .await
            .unwrap_err()
            .code(),
        Code::InvalidArgument
    );

    // Signed with another endpoint's secret.
    let other = stripe_double::signature::sign("whsec_someone_else", app.clock.now().timestamp(), &payload);
    assert_eq!(
        app.deliver_raw(payload, other).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    assert_eq!(applied_events(&app).await, 0);
    assert_eq!(app.subscription(&customer).await.status(), pb::SubscriptionStatus::None);
    assert_eq!(
        (counted("refused"), counted("applied")),
        (4, 0),
        "each refusal is counted"
    );
}

#[tokio::test]
async fn a_signature_older_than_the_tolerance_is_refused() {
    let app = spawn_app().await;
    let (_, stripe_id) = app.subscriber().await;
    let event = app.stripe.fail_payment(&stripe_id).unwrap();
    let now = app.clock.now().timestamp();

    let (payload, stale) = app.stripe.signed(&event, now - 301).unwrap();
    let refused = app.deliver_raw(payload, stale).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("WEBHOOK_SIGNATURE_INVALID"));
    assert!(refused.message().contains("tolerance"), "{}", refused.message());

    let (payload, recent) = app.stripe.signed(&event, now - 299).unwrap();
    assert_eq!(app.deliver_raw(payload, recent).await.unwrap().outcome, "applied");
}

#[tokio::test]
async fn the_same_event_delivered_100_times_is_applied_once() {
    let app = spawn_app().await;
    let customer = app.customer();
    let completed = app.pay(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly).await;
    let checkout_completed = &completed.events[1];

    // Stripe retrying, concurrently.
    let deliveries = join_all((0..100).map(|_| app.deliver(checkout_completed))).await;
    let outcomes: Vec<String> = deliveries.into_iter().map(|result| result.unwrap().outcome).collect();
    assert_eq!(outcomes.iter().filter(|outcome| *outcome == "applied").count(), 1);
    assert_eq!(outcomes.iter().filter(|outcome| *outcome == "duplicate").count(), 99);
    assert_eq!(app.events("subscribed").await, 1);
    let subscriptions: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(subscriptions, 1);
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Active
    );

    // The rest of the story, out of order: invoice.paid, then the creation.
    app.deliver(&completed.events[2]).await.unwrap();
    assert_eq!(app.deliver(&completed.events[0]).await.unwrap().outcome, "applied");
    assert_eq!(applied_events(&app).await, 3);
}

#[tokio::test]
async fn payment_failure_and_recovery_are_recorded_once() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    let failed = app.stripe.fail_payment(&stripe_id).unwrap();
    app.deliver(&failed).await.unwrap();
    app.deliver(&failed).await.unwrap();
    assert!(app.subscription(&customer).await.payment_failed);
    assert_eq!(app.events("payment_failed").await, 1);

    let paid = app.stripe.pay(&stripe_id).unwrap();
    app.deliver(&paid).await.unwrap();
    assert!(!app.subscription(&customer).await.payment_failed);
    assert_eq!(app.events("payment_recovered").await, 1);
}

#[tokio::test]
async fn a_cancellation_made_at_stripe_is_synced() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    // Cancelled from Stripe's dashboard, then the period ends there.
    let updated = {
        reqwest::Client::new()
            .post(format!("{}/v1/subscriptions/{stripe_id}", app.stripe.url()))
            .bearer_auth("sk_test_dashboard")
            .form(&[("cancel_at_period_end", "true")])
            .send()
            .await
            .unwrap();
        app.stripe.events().last().unwrap().0.clone()
    };
    app.deliver(&updated).await.unwrap();
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Cancelled
    );

    app.clock.advance(Duration::days(30));
    let deleted = app.stripe.end_period(&stripe_id).unwrap();
    app.deliver(&deleted).await.unwrap();
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Expired
    );
}

#[tokio::test]
async fn a_failing_event_is_kept_and_replays() {
    let app = spawn_app().await;
    let customer = app.customer();
    let completed = app.pay(&customer, pb::Plan::Maven, pb::BillingPeriod::Monthly).await;
    let checkout_completed = &completed.events[1];

    // Stripe cannot be reached while the event is applied.
    app.stripe.fail_next("GET", "/v1/subscriptions/", 500);
    let failed = app.deliver(checkout_completed).await.unwrap_err();
    assert_eq!(failed.code(), Code::Unavailable, "Stripe will retry it");
    assert_eq!(app.subscription(&customer).await.status(), pb::SubscriptionStatus::None);

    let listed = app
        .client
        .clone()
        .list_failed_webhooks(bearer(&app.admin, pb::ListFailedWebhooksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .webhooks;
    assert_eq!(listed.len(), 1);
    assert_eq!(&listed[0].event_id, checkout_completed);
    assert_eq!(listed[0].event_type, "checkout.session.completed");
    assert!(listed[0].error.contains("retrieve subscription"), "{}", listed[0].error);

    let replayed = app
        .client
        .clone()
        .replay_failed_webhooks(bearer(&app.admin, pb::ReplayFailedWebhooksRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .replayed;
    assert_eq!(replayed.len(), 1);
    assert!(replayed[0].resolved_at.is_some());
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Active
    );

    // Stripe's own retry arrives later: already applied.
    assert_eq!(app.deliver(checkout_completed).await.unwrap().outcome, "duplicate");
    assert_eq!((counted("failed"), counted("duplicate")), (1, 1));
    assert_eq!(app.events("subscribed").await, 1);
    let unresolved = app.billing.failed_webhooks(false).await.unwrap();
    assert!(unresolved.is_empty());

    let user = app.customer();
    let refused = app
        .client
        .clone()
        .replay_failed_webhooks(bearer(&user.token, pb::ReplayFailedWebhooksRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn invoice_events_in_any_order_end_in_the_state_stripe_holds_now() {
    let app = spawn_app().await;
    // A payment fails, then the retry goes through; Stripe sends both, but
    // the failure arrives last (late, or replayed).
    let (recovered, stripe_id) = app.subscriber().await;
    let failed = app.stripe.fail_payment(&stripe_id).unwrap();
    let paid = app.stripe.pay(&stripe_id).unwrap();
    app.deliver(&paid).await.unwrap();
    app.deliver(&failed).await.unwrap();
    assert!(!app.subscription(&recovered).await.payment_failed);

    // The reverse: paid, then a renewal fails; the paid one arrives last.
    let (failing, stripe_id) = app.subscriber().await;
    let paid = app.stripe.pay(&stripe_id).unwrap();
    let failed = app.stripe.fail_payment(&stripe_id).unwrap();
    app.deliver(&failed).await.unwrap();
    app.deliver(&paid).await.unwrap();
    assert!(app.subscription(&failing).await.payment_failed);

    // Each customer's last access change is what Stripe holds now.
    let last = |user: uuid::Uuid| {
        let pool = app.pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT payload->>'access' FROM outbox WHERE topic = 'license.customer_access' \
                 AND payload->>'user_id' = $1 ORDER BY created_at DESC, id DESC LIMIT 1",
            )
            .bind(user.to_string())
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(last(recovered.id).await, "active");
    assert_eq!(last(failing.id).await, "suspended");
}

#[tokio::test]
async fn events_about_an_erased_customer_are_acknowledged_and_forgotten() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    let mut request = tonic::Request::new(pb::EraseCustomerRequest {
        user_id: customer.id.to_string(),
    });
    app.internal.attach(&mut request);
    app.client.clone().erase_customer(request).await.expect("erased");

    // Stripe tells of the subscription the deletion ended, and of a late
    // invoice, after the customer is gone.
    reqwest::Client::new()
        .delete(format!("{}/v1/subscriptions/{stripe_id}", app.stripe.url()))
        .bearer_auth("sk_test_dashboard")
        .send()
        .await
        .unwrap();
    let deleted = app.stripe.events().last().unwrap().0.clone();
    let invoice = app.stripe.pay(&stripe_id).unwrap();
    for event in [deleted, invoice] {
        let answer = app.deliver(&event).await.expect("acknowledged, not a 500");
        assert_eq!(answer.outcome, "ignored");
    }
    let kept: i64 = sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM failed_webhooks) + (SELECT count(*) FROM tenants) \
         + (SELECT count(*) FROM subscriptions)",
    )
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(kept, 0, "nothing stored about them");
}
