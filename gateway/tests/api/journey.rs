//! One customer's whole story through the gateway, every service and Stripe
//! (the double) involved: subscribe, cancel and undo, close the account,
//! come back by email, undo the cancellation the closure made (the key is
//! active again), be forgotten — and the admin's timeline and funnel that
//! tell it. Buying again with the welcome-back offer once a subscription
//! has ended is in `lifecycle`.

use platform::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, Service, eventually, spawn_mesh_at};

async fn ok(response: reqwest::Response) -> Value {
    let status = response.status();
    let body: Value = response.json().await.unwrap();
    assert!(status.is_success(), "{status}: {body}");
    body
}

#[tokio::test]
async fn a_customer_closes_the_account_comes_back_resumes_paying_and_is_forgotten() {
    // Every service on the real clock, so their events interleave truly.
    let mesh = spawn_mesh_at(Clock::system()).await;
    let email = "journey@example.com";
    // Support gave them a trial key when they signed up.
    let customer = mesh.customer_with_trial_key(email).await;
    let (id, token) = (customer.id.clone(), customer.token.clone());
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let key_is = |status: &'static str| {
        let (mesh, key) = (&mesh, &customer.key);
        async move {
            let key = mesh.key(key).await;
            key["status"] == status && key["expiresAt"].is_null()
        }
    };

    // Buy Builder monthly: the key becomes active, with no expiry.
    let subscription = mesh.subscribe(&token, "builder", "monthly").await;
    eventually("the key is active as subscribed", || key_is("ACTIVE")).await;

    // Cancel, then undo.
    ok(mesh.post("/api/cancel-subscription", Some(&token), json!({})).await).await;
    let undone = ok(mesh.post("/api/subscription/reactivate", Some(&token), json!({})).await).await;
    assert_eq!(undone["message"], "Subscription reactivated successfully!");

    // Cancel the account: login is refused, the renewal stops, the key is disabled.
    ok(mesh
        .post("/api/cancel-account", Some(&token), json!({ "reason": "budget cuts" }))
        .await)
    .await;
    let refused = mesh.login(email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);
    assert_eq!(refused.json::<Value>().await.unwrap()["reason"], "ACCOUNT_INACTIVE");
    eventually("the key is disabled", || key_is("DISABLED")).await;

    // Back by email: request a link, open it, confirm.
    let requested = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    let link = mesh.wait_for_token(1).await;
    let page = mesh.get(&format!("/reactivate?token={link}"), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    ok(mesh.post("/reactivate_user", None, json!({ "token": link })).await).await;
    let token = mesh.token(email, PASSWORD).await;

    // The subscription was not restored and the key stays disabled.
    let shown = ok(mesh.get("/api/subscription", Some(&token)).await).await;
    assert_eq!(shown["subscription_status"], "cancelled");
    assert!(key_is("DISABLED").await);
    // Its paid month still runs: no second plan, no offer; undo instead.
    let pricing = ok(mesh.get("/api/pricing", Some(&token)).await).await;
    assert_eq!(pricing["welcome_back_eligible"], false);
    let refused = mesh
        .post(
            "/api/create-checkout-session",
            Some(&token),
            json!({ "plan": "builder", "billing_period": "monthly" }),
        )
        .await;
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json::<Value>().await.unwrap()["reason"],
        "CANCELLED_SUBSCRIPTION_RUNNING"
    );

    // Undo the cancellation: billing resumes, and so does access.
    let undone = ok(mesh.post("/api/subscription/reactivate", Some(&token), json!({})).await).await;
    assert_eq!(undone["message"], "Subscription reactivated successfully!");
    eventually("the key is active again", || key_is("ACTIVE")).await;
    assert_eq!(
        mesh.stripe.cancel_at_period_end_updates(&subscription).last().unwrap(),
        "false"
    );
    let shown = ok(mesh.get("/api/subscription", Some(&token)).await).await;
    assert_eq!(shown["subscription_status"], "active");

    // The admin's view: one timeline across services, in order, with trace ids.
    let timeline = ok(mesh.get(&format!("/api/admin/users/{id}/timeline"), Some(&admin)).await).await;
    assert_eq!(timeline["incomplete"], json!([]));
    let events = timeline["events"].as_array().unwrap();
    let story: Vec<String> = events
        .iter()
        .map(|event| {
            format!(
                "{}:{}",
                event["service"].as_str().unwrap(),
                event["event"].as_str().unwrap()
            )
        })
        .collect();
    let expected = [
        "identity:registered",
        "license:created",
        "billing:subscribed",
        "license:restored",
        "billing:cancelled",
        "billing:reactivated",
        "identity:deactivated",
        "billing:cancelled",
        "license:suspended",
        "identity:reactivation_requested",
        "identity:reactivation_link_opened",
        "identity:reactivated",
        "billing:reactivated",
        "license:restored",
    ];
    let mut position = 0;
    for step in expected {
        let found = story[position..].iter().position(|event| event == step);
        assert!(found.is_some(), "{step} missing (in order) from {story:?}");
        position += found.unwrap() + 1;
    }
    let times: Vec<&str> = events
        .iter()
        .map(|event| event["occurred_at"].as_str().unwrap())
        .collect();
    assert!(times.windows(2).all(|pair| pair[0] <= pair[1]), "in order: {times:?}");
    for event in events {
        let trace = event["trace_id"].as_str().unwrap_or_default();
        assert_eq!(trace.len(), 32, "every event carries its trace id: {event}");
    }

    // `paid` counts plans bought after leaving; resuming the subscription
    // that still ran is not a new purchase.
    let funnel = ok(mesh.get("/api/admin/metrics/funnel", Some(&admin)).await).await;
    assert_eq!(
        funnel,
        json!({ "requested": 1, "email_sent": 1, "link_opened": 1, "confirmed": 1, "paid": 0 })
    );

    // Forgotten: gone from all four databases, at Stripe, and from Redis.
    ok(mesh.post("/delete_user", Some(&token), json!({})).await).await;
    let gone = [
        (Service::Identity, "SELECT count(*) FROM users WHERE id::text = $1"),
        (
            Service::Billing,
            "SELECT count(*) FROM tenants WHERE owner_user_id::text = $1",
        ),
        (
            Service::License,
            "SELECT count(*) FROM license_keys WHERE owner_user_id::text = $1",
        ),
    ];
    for (service, sql) in gone {
        eventually(&format!("{service:?} forgets them"), || async {
            mesh.count(service, sql, &id).await == 0
        })
        .await;
    }
    // Once the confirmation is sent, notify-svc keeps nothing addressed to them.
    let to_them = "SELECT count(*) FROM messages WHERE recipient = $1";
    eventually("notify-svc forgets them", || async {
        mesh.count(Service::Notify, to_them, email).await == 0
    })
    .await;
    eventually("the customer is deleted at Stripe", || async {
        mesh.stripe.customers().is_empty()
    })
    .await;
    let entries = mesh.keys.entries().await;
    let left: Vec<&String> = entries
        .iter()
        .map(|(key, _)| key)
        .filter(|key| key.contains(&id) && !key.contains("session-floor"))
        .collect();
    assert!(left.is_empty(), "Redis still holds {left:?}");
}
