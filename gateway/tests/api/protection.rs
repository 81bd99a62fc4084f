//! The gateway protecting itself and the limits behind it: body and header
//! caps, load shedding, and client addresses that a forged
//! `X-Forwarded-For` cannot change.

use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{problem, spawn_mesh_with};

#[tokio::test]
async fn oversized_bodies_and_headers_are_refused_before_any_work() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let padding = "x".repeat(100 * 1024);
    let response = mesh
        .post(
            "/login",
            None,
            json!({ "email": "ada@example.com", "password": padding }),
        )
        .await;
    let refused = problem(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert_eq!(refused["reason"], "MALFORMED_BODY");

    // The webhook takes Stripe-sized events (up to 1 MiB): a 100 KiB body
    // gets as far as the signature check.
    let response = mesh
        .http
        .post(mesh.url("/api/stripe/webhook"))
        .header("content-type", "application/json")
        .header("stripe-signature", "t=1,v1=00")
        .body(format!("{{\"pad\":\"{padding}\"}}"))
        .send()
        .await
        .unwrap();
    let refused = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["reason"], "WEBHOOK_SIGNATURE_INVALID");

    // 100,000 empty signatures do not fit in a request head.
    let response = mesh
        .http
        .post(mesh.url("/api/stripe/webhook"))
        .header("stripe-signature", format!("t=1{}", ",v1=".repeat(100_000)))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    // And the gateway is still there.
    assert_eq!(mesh.get("/healthz", None).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn requests_beyond_the_in_flight_cap_are_shed_with_retry_after() {
    let mesh = spawn_mesh_with(
        |_| {},
        |gateway| {
            gateway.limits.max_in_flight = 1;
            gateway.limits.request_timeout = std::time::Duration::from_secs(30);
        },
    )
    .await;
    // Logins take an argon2 check each: several at once overlap.
    let logins = (0..6).map(|n| {
        mesh.post(
            "/login",
            None,
            json!({ "email": format!("u{n}@example.com"), "password": "correct horse battery" }),
        )
    });
    let responses = futures::future::join_all(logins).await;
    let shed: Vec<_> = responses
        .into_iter()
        .filter(|response| response.status() == StatusCode::SERVICE_UNAVAILABLE)
        .collect();
    assert!(!shed.is_empty(), "six logins at once with room for one");
    for response in shed {
        assert_eq!(response.headers()["retry-after"], "1");
        let refused = problem(response, StatusCode::SERVICE_UNAVAILABLE).await;
        assert_eq!(refused["reason"], "OVERLOADED");
    }
}

#[tokio::test]
async fn a_forged_forwarded_for_neither_dodges_a_limit_nor_makes_new_keys() {
    let mesh = spawn_mesh_with(
        |identity| identity.reactivation.max_per_client_per_hour = 3,
        |gateway| gateway.trusted_proxies = "1".parse().unwrap(),
    )
    .await;
    // The test plays the one trusted proxy, appending the client it saw;
    // the client writes whatever it likes to the left.
    let request = |n: usize| {
        mesh.http
            .post(mesh.url("/reactivate_user"))
            .header("x-forwarded-for", format!("10.{n}.0.1, 2001:db8::{n}, 198.51.100.7"))
            .json(&json!({ "email": format!("u{n}@example.com") }))
            .send()
    };
    for n in 0..3 {
        assert_eq!(request(n).await.unwrap().status(), StatusCode::ACCEPTED);
    }
    let refused = request(3).await.unwrap();
    problem(refused, StatusCode::TOO_MANY_REQUESTS).await;

    let client_keys: Vec<String> = mesh
        .keys
        .entries()
        .await
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.contains(":limit:reactivation-client:"))
        .collect();
    assert_eq!(client_keys.len(), 1, "{client_keys:?}");
    assert!(client_keys[0].contains(":198.51.100.7:"), "{client_keys:?}");

    // Another client of the same proxy has a bucket of its own.
    let other = mesh
        .http
        .post(mesh.url("/reactivate_user"))
        .header("x-forwarded-for", "198.51.100.8")
        .json(&json!({ "email": "u9@example.com" }))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::ACCEPTED);
}

#[tokio::test]
async fn a_malformed_query_string_is_problem_json_and_a_link_cut_short_is_a_page() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    // A person's browser: the page offers to send a new link.
    let page = mesh.get("/reactivate", None).await;
    assert_eq!(page.status(), StatusCode::BAD_REQUEST);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.text().await.unwrap().contains("This link is incomplete"));
    let admin = mesh
        .token(crate::helpers::ADMIN_EMAIL, crate::helpers::ADMIN_PASSWORD)
        .await;
    let refused = problem(
        mesh.get("/api/keys?pageSize=many", Some(&admin)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["reason"], "MALFORMED_QUERY");
}
