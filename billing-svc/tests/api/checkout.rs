//! Seed 004: prices, and the welcome-back offer at checkout — to returning
//! customers only, once.

use chrono::{Datelike, Duration};
use proto::billing::v1 as pb;
use tonic::Code;

use crate::helpers::{Customer, TestApp, bearer, reason, spawn_app};

/// `(plan, period, regular, welcome-back)` for every price.
fn table(pricing: &pb::Pricing) -> Vec<(pb::Plan, pb::BillingPeriod, i64, Option<i64>)> {
    pricing
        .prices
        .iter()
        .map(|price| {
            (
                price.plan(),
                price.billing_period(),
                price.amount_cents,
                price.welcome_back_amount_cents,
            )
        })
        .collect()
}

/// A customer who subscribed, cancelled and saw the period end.
async fn returning_customer(app: &TestApp) -> Customer {
    let (customer, _) = app.subscriber().await;
    app.cancel(&customer).await.unwrap();
    app.clock.advance(Duration::days(31));
    app.billing.expire_due().await.unwrap();
    customer
}

/// The coupon the double's Checkout session was created with, if any.
fn session_coupon(app: &TestApp) -> Option<String> {
    app.stripe
        .requests()
        .into_iter()
        .rfind(|request| request.method == "POST" && request.path == "/v1/checkout/sessions")
        .and_then(|request| request.field("discounts[0][coupon]").map(str::to_owned))
}

#[tokio::test]
async fn prices_match_seed_004_exactly() {
    use pb::{BillingPeriod::*, Plan::*};
    let app = spawn_app().await;
    let newcomer = app.customer();
    let pricing = app.pricing(&newcomer).await;
    assert!(!pricing.welcome_back_eligible);
    assert_eq!(pricing.currency, "usd");
    assert_eq!(
        table(&pricing),
        [
            (Grower, Monthly, 1_500, None),
            (Grower, Annual, 15_300, None),
            (Builder, Monthly, 3_500, None),
            (Builder, Annual, 35_700, None),
            (Maven, Monthly, 10_000, None),
            (Maven, Annual, 102_000, None),
        ]
    );

    let returning = returning_customer(&app).await;
    let pricing = app.pricing(&returning).await;
    assert!(pricing.welcome_back_eligible);
    assert_eq!(
        table(&pricing),
        [
            (Grower, Monthly, 1_500, Some(750)),
            (Grower, Annual, 15_300, Some(12_240)),
            (Builder, Monthly, 3_500, Some(1_750)),
            (Builder, Annual, 35_700, Some(28_560)),
            (Maven, Monthly, 10_000, Some(5_000)),
            (Maven, Annual, 102_000, Some(81_600)),
        ]
    );
    let coupons: Vec<_> = pricing
        .prices
        .iter()
        .map(|price| price.welcome_back_coupon.as_str())
        .collect();
    assert_eq!(coupons[..2], ["PR_WELCOME_BACK_MONTHLY", "PR_WELCOME_BACK_ANNUAL"]);
}

#[tokio::test]
async fn a_first_time_customer_gets_no_coupon() {
    let app = spawn_app().await;
    app.billing
        .setup_coupon(billing_svc::domain::WelcomeBack::MONTHLY)
        .await
        .unwrap();
    let newcomer = app.customer();
    let session = app
        .checkout(&newcomer, pb::Plan::Builder, pb::BillingPeriod::Monthly)
        .await
        .unwrap();
    assert_eq!(session.coupon, "");
    assert_eq!(session_coupon(&app), None);
    assert!(session.url.starts_with(app.stripe.url()), "{}", session.url);
    let stripe_session = app.stripe.checkout_session(&session.id).unwrap();
    assert_eq!(stripe_session["amount_total"], 3_500);
    assert_eq!(
        stripe_session["success_url"],
        "http://app.test/billing/success?session_id={CHECKOUT_SESSION_ID}"
    );
}

#[tokio::test]
async fn a_returning_customer_gets_the_offer_once() {
    let app = spawn_app().await;
    for offer in billing_svc::domain::WelcomeBack::ALL {
        app.billing.setup_coupon(offer).await.unwrap();
    }
    let customer = returning_customer(&app).await;

    let session = app
        .checkout(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly)
        .await
        .unwrap();
    assert_eq!(session.coupon, "PR_WELCOME_BACK_MONTHLY");
    assert_eq!(session_coupon(&app).as_deref(), Some("PR_WELCOME_BACK_MONTHLY"));
    assert_eq!(
        app.stripe.checkout_session(&session.id).unwrap()["amount_total"],
        1_750,
        "$17.50"
    );
    let completed = app.stripe.complete_checkout(&session.id).await.unwrap();
    for event in &completed.events {
        app.deliver(event).await.unwrap();
    }
    let back = app.subscription(&customer).await;
    assert_eq!(back.status(), pb::SubscriptionStatus::Active);
    assert_eq!(back.plan(), pb::Plan::Builder);
    let (count, reactivated_at, used): (i32, Option<chrono::DateTime<chrono::Utc>>, bool) = sqlx::query_as(
        "SELECT reactivation_count, reactivated_at, welcome_back_used_at IS NOT NULL FROM tenants WHERE owner_user_id = $1",
    )
    .bind(customer.id)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!((count, reactivated_at, used), (1, Some(app.clock.now()), true));

    // They leave again: no second welcome-back.
    app.cancel(&customer).await.unwrap();
    app.clock.advance(Duration::days(31));
    app.billing.expire_due().await.unwrap();
    assert!(!app.pricing(&customer).await.welcome_back_eligible);
    let again = app
        .checkout(&customer, pb::Plan::Builder, pb::BillingPeriod::Annual)
        .await
        .unwrap();
    assert_eq!(again.coupon, "");
    assert_eq!(session_coupon(&app), None);
}

#[tokio::test]
async fn an_annual_return_gets_the_annual_coupon() {
    let app = spawn_app().await;
    for offer in billing_svc::domain::WelcomeBack::ALL {
        app.billing.setup_coupon(offer).await.unwrap();
    }
    let customer = returning_customer(&app).await;
    let session = app
        .checkout(&customer, pb::Plan::Maven, pb::BillingPeriod::Annual)
        .await
        .unwrap();
    assert_eq!(session.coupon, "PR_WELCOME_BACK_ANNUAL");
    assert_eq!(
        app.stripe.checkout_session(&session.id).unwrap()["amount_total"],
        81_600,
        "$816.00"
    );
}

#[tokio::test]
async fn a_subscribed_customer_cannot_check_out_again() {
    let app = spawn_app().await;
    let (customer, _) = app.subscriber().await;
    let refused = app
        .checkout(&customer, pb::Plan::Maven, pb::BillingPeriod::Monthly)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("ALREADY_SUBSCRIBED"));
    let malformed = app
        .client
        .clone()
        .create_checkout_session(bearer(
            &customer.token,
            pb::CreateCheckoutSessionRequest {
                plan: 42,
                billing_period: 1,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn metrics_count_returns_time_away_and_billing_choice() {
    let app = spawn_app().await;
    for offer in billing_svc::domain::WelcomeBack::ALL {
        app.billing.setup_coupon(offer).await.unwrap();
    }
    // Two customers leave; one comes back, annual, 31 days later.
    let returning = returning_customer(&app).await;
    let (gone, _) = app.subscriber().await;
    app.cancel(&gone).await.unwrap();
    app.buy(&returning, pb::Plan::Grower, pb::BillingPeriod::Annual).await;
    // One stays (no churn).
    app.subscriber().await;

    let metrics = app
        .client
        .clone()
        .get_reactivation_metrics(bearer(&app.admin, pb::GetReactivationMetricsRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(metrics.churned_customers, 2);
    assert_eq!(metrics.returned_customers, 1);
    assert!((metrics.reactivation_rate_percent - 50.0).abs() < 1e-9);
    assert!(
        (metrics.average_days_to_return - 31.0).abs() < 1e-9,
        "{}",
        metrics.average_days_to_return
    );
    assert_eq!((metrics.returned_monthly, metrics.returned_annual), (0, 1));
    assert_eq!(metrics.welcome_back_offers_used, 1);

    // Week by week: the same events, each in the week (from Monday) it happened.
    let sum = |field: fn(&pb::ReturnsWeek) -> u64| metrics.weeks.iter().map(field).sum::<u64>();
    assert_eq!(sum(|week| week.cancelled), 2);
    assert_eq!((sum(|week| week.returned), sum(|week| week.returned_annual)), (1, 1));
    assert_eq!(sum(|week| week.welcome_back_offers_used), 1);
    let starts: Vec<_> = metrics
        .weeks
        .iter()
        .map(|week| platform::wire::from_timestamp(week.week_start.as_ref().unwrap()).unwrap())
        .collect();
    assert!(starts.is_sorted() && !starts.is_empty(), "{starts:?}");
    assert!(
        starts
            .iter()
            .all(|start| start.weekday() == chrono::Weekday::Mon && start.time() == chrono::NaiveTime::MIN),
        "{starts:?}"
    );
    let returned_week = metrics.weeks.iter().find(|week| week.returned == 1).unwrap();
    assert!((returned_week.average_days_to_return - 31.0).abs() < 1e-9);

    let customer = app.customer();
    let refused = app
        .client
        .clone()
        .get_reactivation_metrics(bearer(&customer.token, pb::GetReactivationMetricsRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn checkout_is_refused_while_a_cancelled_subscription_still_runs() {
    let app = spawn_app().await;
    for offer in billing_svc::domain::WelcomeBack::ALL {
        app.billing.setup_coupon(offer).await.unwrap();
    }
    let (customer, _) = app.subscriber().await;
    app.cancel(&customer).await.unwrap();
    // No cancel-and-rebuy at 50 % off while the paid month runs.
    assert!(!app.pricing(&customer).await.welcome_back_eligible);
    let refused = app
        .checkout(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("CANCELLED_SUBSCRIPTION_RUNNING"));
    assert!(refused.message().contains("Reactivate it"), "{}", refused.message());

    // Once the period is over (the expiry job has not run yet), they may
    // buy again, with the offer.
    app.clock.advance(Duration::days(31));
    assert!(app.pricing(&customer).await.welcome_back_eligible);
    let session = app
        .checkout(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly)
        .await
        .expect("checkout");
    assert_eq!(session.coupon, "PR_WELCOME_BACK_MONTHLY");
}

#[tokio::test]
async fn a_second_paid_checkout_never_leaves_two_subscriptions_charging() {
    let app = spawn_app().await;
    let customer = app.customer();
    // Two tabs: the first session is paid just before the second is
    // opened (too late to expire it), and both are paid.
    let kept = app.pay(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly).await;
    let duplicate = app.pay(&customer, pb::Plan::Maven, pb::BillingPeriod::Annual).await;
    for event in &kept.events {
        app.deliver(event).await.unwrap();
    }
    for event in &duplicate.events {
        app.deliver(event).await.expect("acknowledged");
    }

    let at_stripe = app.stripe.subscription(&duplicate.subscription_id).unwrap();
    assert_eq!(at_stripe["status"], "canceled", "the duplicate is ended at Stripe");
    let paid = app.stripe.latest_payment(&duplicate.subscription_id).unwrap();
    let refunds = app.stripe.refunds();
    assert_eq!(refunds.len(), 1, "refunded once, whatever the events: {refunds:?}");
    assert_eq!(refunds[0].payment_intent, paid, "what was paid for the duplicate");
    assert_eq!(refunds[0].amount, 102_000, "in full: Maven annual");
    assert_eq!(
        app.stripe.subscription(&kept.subscription_id).unwrap()["status"],
        "active"
    );
    let shown = app.subscription(&customer).await;
    assert_eq!(shown.status(), pb::SubscriptionStatus::Active);
    assert_eq!(shown.plan(), pb::Plan::Builder);
    assert_eq!(app.events("duplicate_cancelled").await, 1);
    let failed: i64 = sqlx::query_scalar("SELECT count(*) FROM failed_webhooks")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(failed, 0);
}

#[tokio::test]
async fn a_new_checkout_session_expires_the_previous_one() {
    let app = spawn_app().await;
    let customer = app.customer();
    let first = app
        .checkout(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly)
        .await
        .unwrap();
    let second = app
        .checkout(&customer, pb::Plan::Maven, pb::BillingPeriod::Annual)
        .await
        .unwrap();

    assert_eq!(app.stripe.checkout_session(&first.id).unwrap()["status"], "expired");
    assert_eq!(app.stripe.checkout_session(&second.id).unwrap()["status"], "open");
    assert!(
        app.stripe.complete_checkout(&first.id).await.is_err(),
        "an expired session cannot be paid"
    );
    let paid = app.stripe.complete_checkout(&second.id).await.unwrap();
    for event in &paid.events {
        app.deliver(event).await.unwrap();
    }
    let shown = app.subscription(&customer).await;
    assert_eq!(shown.status(), pb::SubscriptionStatus::Active);
    assert_eq!(shown.plan(), pb::Plan::Maven);
}

#[tokio::test]
async fn two_paid_sessions_completing_at_once_leave_one_subscription() {
    let app = spawn_app().await;
    let customer = app.customer();
    let first = app.pay(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly).await;
    let second = app.pay(&customer, pb::Plan::Grower, pb::BillingPeriod::Monthly).await;
    let deliver_all = |events: Vec<String>| {
        let app = &app;
        async move {
            for event in &events {
                app.deliver(event).await.expect("acknowledged");
            }
        }
    };
    tokio::join!(deliver_all(first.events.clone()), deliver_all(second.events.clone()));

    let subscriptions: i64 = sqlx::query_scalar("SELECT count(*) FROM subscriptions")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(subscriptions, 1, "one subscription kept");
    let statuses = [&first, &second].map(|paid| {
        app.stripe.subscription(&paid.subscription_id).unwrap()["status"]
            .as_str()
            .unwrap()
            .to_owned()
    });
    let mut sorted = statuses.clone();
    sorted.sort();
    assert_eq!(sorted, ["active", "canceled"], "{statuses:?}");
    assert_eq!(app.stripe.refunds().len(), 1);
    assert_eq!(app.events("duplicate_cancelled").await, 1);
}

#[tokio::test]
async fn checkout_without_the_coupons_set_up_says_offer_not_set_up() {
    let app = spawn_app().await;
    // Nobody ran `billing-svc setup-coupons` against this Stripe.
    let customer = returning_customer(&app).await;
    let refused = app
        .checkout(&customer, pb::Plan::Builder, pb::BillingPeriod::Monthly)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable);
    assert_eq!(reason(&refused).as_deref(), Some("OFFER_NOT_SET_UP"));
    assert!(
        refused.message().contains("nothing was charged"),
        "{}",
        refused.message()
    );
}
