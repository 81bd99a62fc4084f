//! `setup-coupons`: the welcome-back coupons exist at Stripe with their
//! terms, however many times it runs.

use billing_svc::{domain::WelcomeBack, payments::CouponSetup};

use crate::helpers::spawn_app;

#[tokio::test]
async fn setting_up_twice_changes_nothing() {
    let app = spawn_app().await;
    for offer in WelcomeBack::ALL {
        assert_eq!(app.billing.setup_coupon(offer).await.unwrap(), CouponSetup::Created);
    }
    let first = app.stripe.coupons();
    for offer in WelcomeBack::ALL {
        assert_eq!(app.billing.setup_coupon(offer).await.unwrap(), CouponSetup::Unchanged);
    }
    assert_eq!(app.stripe.coupons(), first, "the same coupons, no duplicates");
    assert_eq!(first.len(), 2);
    let monthly = first
        .iter()
        .find(|coupon| coupon["id"] == "PR_WELCOME_BACK_MONTHLY")
        .unwrap();
    assert_eq!(monthly["percent_off"], 50.0);
    assert_eq!(monthly["duration"], "once");
    let annual = first
        .iter()
        .find(|coupon| coupon["id"] == "PR_WELCOME_BACK_ANNUAL")
        .unwrap();
    assert_eq!(annual["percent_off"], 20.0);
    let creations = app
        .stripe
        .requests()
        .iter()
        .filter(|request| request.method == "POST" && request.path == "/v1/coupons")
        .count();
    assert_eq!(creations, 2);
}

#[tokio::test]
async fn a_coupon_with_other_terms_is_replaced() {
    let app = spawn_app().await;
    // Someone made the coupon by hand with the wrong discount.
    reqwest::Client::new()
        .post(format!("{}/v1/coupons", app.stripe.url()))
        .bearer_auth("sk_test_dashboard")
        .form(&[
            ("id", "PR_WELCOME_BACK_MONTHLY"),
            ("percent_off", "30"),
            ("duration", "forever"),
        ])
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap();
    assert_eq!(
        app.billing.setup_coupon(WelcomeBack::MONTHLY).await.unwrap(),
        CouponSetup::Replaced
    );
    let coupons = app.stripe.coupons();
    assert_eq!(coupons.len(), 1);
    assert_eq!(coupons[0]["percent_off"], 50.0);
    assert_eq!(coupons[0]["duration"], "once");
    assert_eq!(
        app.billing.setup_coupon(WelcomeBack::MONTHLY).await.unwrap(),
        CouponSetup::Unchanged
    );
}
