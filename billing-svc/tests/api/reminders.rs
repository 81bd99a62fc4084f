//! Billing's emails (seeds 003, 004), each owed once through the outbox:
//! the confirmation of a reactivated subscription, "expires soon" before a
//! cancelled one ends, and the win-back offer after one ended.

use chrono::Duration;
use proto::billing::v1 as pb;

use crate::helpers::{Customer, TestApp, spawn_app};

const REACTIVATED: &str = "TEMPLATE_SUBSCRIPTION_REACTIVATED";
const ENDING_SOON: &str = "TEMPLATE_SUBSCRIPTION_ENDING_SOON";
const WIN_BACK: &str = "TEMPLATE_WELCOME_BACK_OFFER";

/// A customer whose Builder monthly subscription was cancelled and has now
/// ended (the expiry job ran at its end).
async fn customer_whose_subscription_ended(app: &TestApp) -> Customer {
    let (customer, _) = app.subscriber().await;
    app.cancel(&customer).await.expect("cancel");
    app.clock.advance(Duration::days(30));
    assert_eq!(app.billing.expire_due().await.unwrap(), 1);
    customer
}

/// Cancelled or undone from Stripe's dashboard; returns the event.
async fn set_at_stripe(app: &TestApp, stripe_id: &str, cancel_at_period_end: &str) -> String {
    reqwest::Client::new()
        .post(format!("{}/v1/subscriptions/{stripe_id}", app.stripe.url()))
        .bearer_auth("sk_test_dashboard")
        .form(&[("cancel_at_period_end", cancel_at_period_end)])
        .send()
        .await
        .unwrap();
    app.stripe.events().last().unwrap().0.clone()
}

#[tokio::test]
async fn a_reactivated_subscription_is_confirmed_by_email_once() {
    let app = spawn_app().await;
    let (customer, stripe_id) = app.subscriber().await;
    app.cancel(&customer).await.expect("cancel");
    assert!(app.emails_to(&customer, REACTIVATED).await.is_empty());

    app.reactivate(&customer).await.expect("reactivate");
    // Stripe then tells of the changes billing made: nothing new.
    for (event, _) in app.stripe.events() {
        app.deliver(&event).await.expect("applies");
    }
    let confirmations = app.emails_to(&customer, REACTIVATED).await;
    assert_eq!(confirmations.len(), 1, "{confirmations:?}");
    assert_eq!(confirmations[0].variables["plan"], "Builder");
    assert_eq!(confirmations[0].variables["next_billing_date"], "February 19, 2026");

    // Cancelled again, and this time undone at Stripe: confirmed too, once.
    app.cancel(&customer).await.expect("cancel again");
    let undone = set_at_stripe(&app, &stripe_id, "false").await;
    app.deliver(&undone).await.expect("applies");
    app.deliver(&undone).await.expect("a replay changes nothing");
    assert_eq!(
        app.subscription(&customer).await.status(),
        pb::SubscriptionStatus::Active
    );
    let confirmations = app.emails_to(&customer, REACTIVATED).await;
    assert_eq!(confirmations.len(), 2, "one per reactivation");
    assert_ne!(confirmations[0].idempotency_key, confirmations[1].idempotency_key);
}

#[tokio::test]
async fn a_cancelled_subscription_is_reminded_once_three_days_before_it_ends() {
    let app = spawn_app().await;
    let (customer, _) = app.subscriber().await;
    let (still_paying, _) = app.subscriber().await;
    app.cancel(&customer).await.expect("cancel");

    app.clock.advance(Duration::days(26));
    app.billing.send_reminders().await.unwrap();
    assert!(
        app.emails_to(&customer, ENDING_SOON).await.is_empty(),
        "four days before: not yet"
    );

    app.clock.advance(Duration::days(1) + Duration::hours(1));
    for _ in 0..3 {
        app.billing.send_reminders().await.unwrap();
    }
    let reminders = app.emails_to(&customer, ENDING_SOON).await;
    assert_eq!(reminders.len(), 1, "{reminders:?}");
    assert_eq!(reminders[0].variables["plan"], "Builder");
    assert_eq!(reminders[0].variables["end_date"], "February 19, 2026");
    assert_eq!(
        reminders[0].variables["subscription_url"],
        "http://app.test/subscription"
    );
    assert!(app.emails_to(&still_paying, ENDING_SOON).await.is_empty());

    // It ends: no second reminder.
    app.clock.advance(Duration::days(3));
    app.billing.expire_due().await.unwrap();
    app.billing.send_reminders().await.unwrap();
    assert_eq!(app.emails_to(&customer, ENDING_SOON).await.len(), 1);
}

#[tokio::test]
async fn the_win_back_offer_goes_out_30_60_and_80_days_after_the_end_each_once() {
    let app = spawn_app().await;
    let customer = customer_whose_subscription_ended(&app).await;
    let mut sent_on = Vec::new();
    for day in 1..=120 {
        app.clock.advance(Duration::days(1));
        let before = app.emails_to(&customer, WIN_BACK).await.len();
        app.billing.send_reminders().await.unwrap();
        app.billing.send_reminders().await.unwrap();
        let after = app.emails_to(&customer, WIN_BACK).await.len();
        if after > before {
            assert_eq!(after, before + 1, "one email on day {day}");
            sent_on.push(day);
        }
    }
    assert_eq!(sent_on, [30, 60, 80]);
    let emails = app.emails_to(&customer, WIN_BACK).await;
    assert_eq!(emails[0].variables["monthly_offer"], "50% off your first month");
    assert_eq!(emails[0].variables["annual_offer"], "20% off your first year");
    assert_eq!(emails[0].variables["pricing_url"], "http://app.test/pricing");
}

#[tokio::test]
async fn the_win_back_emails_stop_once_the_customer_returns() {
    let app = spawn_app().await;
    let customer = customer_whose_subscription_ended(&app).await;
    app.clock.advance(Duration::days(30));
    app.billing.send_reminders().await.unwrap();
    assert_eq!(app.emails_to(&customer, WIN_BACK).await.len(), 1);

    for offer in billing_svc::domain::WelcomeBack::ALL {
        app.billing.setup_coupon(offer).await.expect("coupons set up");
    }
    app.buy(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly).await;
    assert_eq!(app.events("offer_used").await, 1, "back with the offer");
    for _ in 0..6 {
        app.clock.advance(Duration::days(10));
        app.billing.send_reminders().await.unwrap();
    }
    assert_eq!(app.emails_to(&customer, WIN_BACK).await.len(), 1, "no more once back");
}

#[tokio::test]
async fn two_passes_at_once_send_each_reminder_once() {
    let app = spawn_app().await;
    let ended = customer_whose_subscription_ended(&app).await;
    app.clock.advance(Duration::days(2));
    let mut cancelled = Vec::new();
    for _ in 0..5 {
        let (customer, _) = app.subscriber().await;
        app.cancel(&customer).await.expect("cancel");
        cancelled.push(customer);
    }
    // 30 days after `ended`'s end; the others end in two days.
    app.clock.advance(Duration::days(28));

    let (first, second, third) = tokio::join!(
        app.billing.send_reminders(),
        app.billing.send_reminders(),
        app.billing.send_reminders()
    );
    let passes = [first.unwrap(), second.unwrap(), third.unwrap()];
    assert_eq!(passes.iter().map(|pass| pass.ending_soon).sum::<usize>(), 5);
    assert_eq!(passes.iter().map(|pass| pass.win_back).sum::<usize>(), 1);
    assert_eq!(app.emails_to(&ended, WIN_BACK).await.len(), 1);
    for customer in &cancelled {
        assert_eq!(app.emails_to(customer, ENDING_SOON).await.len(), 1);
    }
}

#[tokio::test]
async fn nothing_is_sent_to_a_customer_after_erasure() {
    let app = spawn_app().await;
    let customer = customer_whose_subscription_ended(&app).await;
    app.clock.advance(Duration::days(30));
    app.billing.send_reminders().await.unwrap();
    assert_eq!(
        app.emails_to(&customer, WIN_BACK).await.len(),
        1,
        "owed, not delivered yet"
    );

    let mut request = tonic::Request::new(pb::EraseCustomerRequest {
        user_id: customer.id.to_string(),
    });
    app.internal.attach(&mut request);
    app.client.clone().erase_customer(request).await.expect("erased");
    assert!(
        app.emails_owed()
            .await
            .iter()
            .all(|email| email.user_id != customer.id.to_string()),
        "the undelivered email goes with them"
    );

    for _ in 0..6 {
        app.clock.advance(Duration::days(10));
        app.billing.send_reminders().await.unwrap();
    }
    assert!(app.emails_owed().await.is_empty());
    let reminders: i64 = sqlx::query_scalar("SELECT count(*) FROM billing_reminders")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(reminders, 0, "nothing kept about them");
}
