//! Subscriptions over REST (seeds 003 and 004): the seed's checklist, the
//! welcome-back prices, Checkout, and Stripe's webhook through the gateway.

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use platform::clock::Clock;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestMesh, spawn_mesh_at};

async fn customer(mesh: &TestMesh, email: &str) -> String {
    mesh.register(email).await;
    mesh.token(email, PASSWORD).await
}

async fn json_of(response: reqwest::Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    response.json().await.unwrap()
}

fn date(body: &Value) -> DateTime<Utc> {
    body["next_billing_date"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn seed_003_checklist() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let token = customer(&mesh, "tenant@example.com").await;
    let none = json_of(mesh.get("/api/subscription", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(none["subscription_status"], "none");

    let stripe_id = mesh.subscribe(&token, "builder", "monthly").await;
    let active = json_of(mesh.get("/api/subscription", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(active["subscription_status"], "active");
    assert_eq!(active["plan"], "builder");
    assert_eq!(active["can_cancel"], true);
    assert_eq!(active["can_reactivate"], false);
    let renews = date(&active);

    // Reactivating an active subscription.
    let refused = mesh.post("/api/subscription/reactivate", Some(&token), json!({})).await;
    let problem = json_of(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["detail"], "Only cancelled subscriptions can be reactivated");

    // Cancel → reactivate, twice; the date never moves.
    for _ in 0..2 {
        let cancelled = mesh
            .post(
                "/api/cancel-subscription",
                Some(&token),
                json!({ "reason": "on holiday" }),
            )
            .await;
        let cancelled = json_of(cancelled, StatusCode::OK).await;
        assert_eq!(cancelled["subscription_status"], "cancelled");
        assert_eq!(date(&cancelled), renews);
        let shown = json_of(mesh.get("/api/subscription", Some(&token)).await, StatusCode::OK).await;
        assert_eq!(shown["can_reactivate"], true);

        let reactivated = mesh.post("/api/subscription/reactivate", Some(&token), json!({})).await;
        let reactivated = json_of(reactivated, StatusCode::OK).await;
        assert_eq!(reactivated["status"], true);
        assert_eq!(reactivated["message"], "Subscription reactivated successfully!");
        assert_eq!(reactivated["subscription_status"], "active");
        assert_eq!(date(&reactivated), renews);
    }
    assert_eq!(
        mesh.stripe.cancel_at_period_end_updates(&stripe_id),
        ["true", "false", "true", "false"]
    );

    // Another customer cannot reach this tenant; no token, no answer.
    let other = customer(&mesh, "other@example.com").await;
    let problem = json_of(
        mesh.post("/api/subscription/reactivate", Some(&other), json!({})).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(problem["detail"], "Tenant not found");
    let anonymous = mesh.post("/api/subscription/reactivate", None, json!({})).await;
    assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        mesh.post("/api/cancel-subscription", None, json!({})).await.status(),
        StatusCode::UNAUTHORIZED
    );

    // Cancelled, and the paid period runs out.
    json_of(
        mesh.post("/api/cancel-subscription", Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    mesh.clock
        .advance(renews - mesh.clock.now() + chrono::Duration::seconds(1));
    let problem = json_of(
        mesh.post("/api/subscription/reactivate", Some(&token), json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        problem["detail"],
        "Subscription has expired. Please purchase a new subscription."
    );
    assert_eq!(problem["reason"], "SUBSCRIPTION_EXPIRED");
}

#[tokio::test]
async fn a_stripe_outage_during_cancel_changes_nothing() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let token = customer(&mesh, "outage@example.com").await;
    mesh.subscribe(&token, "grower", "annual").await;
    mesh.stripe.fail_next("POST", "/v1/subscriptions/", 500);
    let problem = json_of(
        mesh.post("/api/cancel-subscription", Some(&token), json!({})).await,
        StatusCode::SERVICE_UNAVAILABLE,
    )
    .await;
    assert_eq!(problem["reason"], "PAYMENT_PROVIDER_UNAVAILABLE");
    let shown = json_of(mesh.get("/api/subscription", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(shown["subscription_status"], "active");
}

#[tokio::test]
async fn pricing_and_checkout_with_the_welcome_back_offer() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let token = customer(&mesh, "returning@example.com").await;
    let pricing = json_of(mesh.get("/api/pricing", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(pricing["welcome_back_eligible"], false);
    let builder_monthly = &pricing["prices"][2];
    assert_eq!(builder_monthly["plan"], "builder");
    assert_eq!(builder_monthly["billing_period"], "monthly");
    assert_eq!(builder_monthly["amount"], "35.00");
    assert_eq!(builder_monthly["welcome_back_amount"], Value::Null);

    // They subscribe, cancel and the period ends: they are returning now.
    mesh.subscribe(&token, "builder", "monthly").await;
    json_of(
        mesh.post("/api/cancel-subscription", Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    mesh.clock.advance(chrono::Duration::days(31));
    let pricing = json_of(mesh.get("/api/pricing", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(pricing["welcome_back_eligible"], true);
    assert_eq!(pricing["prices"][2]["welcome_back_amount"], "17.50");
    assert_eq!(pricing["prices"][2]["welcome_back_coupon"], "PR_WELCOME_BACK_MONTHLY");
    assert_eq!(pricing["prices"][5]["plan"], "maven");
    assert_eq!(pricing["prices"][5]["amount"], "1020.00");
    assert_eq!(pricing["prices"][5]["welcome_back_amount"], "816.00");

    let response = mesh
        .post(
            "/api/create-checkout-session",
            Some(&token),
            json!({ "plan": "platinum", "billing_period": "monthly" }),
        )
        .await;
    let problem = json_of(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["invalid_params"][0]["name"], "plan");
}

#[tokio::test]
async fn stripe_webhooks_pass_through_the_gateway_verified() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let token = customer(&mesh, "webhook@example.com").await;
    let stripe_id = mesh.subscribe(&token, "maven", "monthly").await;
    let event = mesh.stripe.fail_payment(&stripe_id).unwrap();
    let (payload, signature) = mesh.stripe.signed(&event, mesh.clock.now().timestamp()).unwrap();
    let send = |signature: String, payload: Vec<u8>| {
        mesh.http
            .post(mesh.url("/api/stripe/webhook"))
            .header("content-type", "application/json")
            .header("stripe-signature", signature)
            .body(payload)
            .send()
    };

    let forged = send(signature.replace("v1=", "v1=0"), payload.clone()).await.unwrap();
    let problem = json_of(forged, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["reason"], "WEBHOOK_SIGNATURE_INVALID");
    let shown = json_of(mesh.get("/api/subscription", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(shown["payment_failed"], false, "nothing applied");

    for expected in ["applied", "duplicate", "duplicate"] {
        let received = json_of(send(signature.clone(), payload.clone()).await.unwrap(), StatusCode::OK).await;
        assert_eq!(received["received"], true);
        assert_eq!(received["outcome"], expected);
    }
    let shown = json_of(mesh.get("/api/subscription", Some(&token)).await, StatusCode::OK).await;
    assert_eq!(shown["payment_failed"], true);
}

#[tokio::test]
async fn win_back_metrics_are_for_admins() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let token = customer(&mesh, "metrics@example.com").await;
    let refused = mesh.get("/api/admin/metrics/reactivation", Some(&token)).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    mesh.subscribe(&token, "grower", "monthly").await;
    json_of(
        mesh.post("/api/cancel-subscription", Some(&token), json!({})).await,
        StatusCode::OK,
    )
    .await;
    mesh.clock.advance(chrono::Duration::days(45));
    mesh.subscribe(&token, "grower", "annual").await;

    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let metrics = json_of(
        mesh.get("/api/admin/metrics/reactivation", Some(&admin)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(metrics["churned_customers"], 1);
    assert_eq!(metrics["returned_customers"], 1);
    assert_eq!(metrics["reactivation_rate_percent"], 100.0);
    assert_eq!(metrics["average_days_to_return"], 45.0);
    assert_eq!(
        metrics["billing_choice_on_reactivation"],
        json!({ "monthly": 0, "annual": 1 })
    );
    let failed = json_of(
        mesh.get("/api/admin/webhooks/failed", Some(&admin)).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(failed["data"], json!([]));
}
