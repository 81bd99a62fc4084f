//! Seed 000's reactivation through the REST API: ask, open, confirm.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{PASSWORD, problem, spawn_mesh, spawn_mesh_with};

const LINK_INVALID: &str = "This link is invalid or has expired. Please request a new reactivation link.";

#[tokio::test]
async fn every_link_request_gets_the_same_202_whatever_the_email() {
    let mesh = spawn_mesh().await;
    mesh.register_and_leave("ada@example.com").await;
    let mut bodies = Vec::new();
    for email in ["ada@example.com", "nobody@example.com"] {
        let response = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        bodies.push(response.text().await.unwrap());
    }
    assert_eq!(bodies[0], bodies[1]);
}

#[tokio::test]
async fn opening_the_link_shows_a_confirm_page_and_does_not_use_it_up() {
    let mesh = spawn_mesh().await;
    mesh.register_and_leave("ada@example.com").await;
    mesh.post("/reactivate_user", None, json!({ "email": "ada@example.com" }))
        .await;
    let token = mesh.wait_for_token(1).await;

    // A mail scanner (or the person) opens the link, twice.
    let mut csrf = String::new();
    for _ in 0..2 {
        let page = mesh.get(&format!("/reactivate?token={token}"), None).await;
        assert_eq!(page.status(), StatusCode::OK);
        assert_eq!(page.headers()["referrer-policy"], "no-referrer");
        assert!(
            page.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/html")
        );
        // The page's forms repeat the browser's CSRF cookie.
        let cookie = page.headers()["set-cookie"].to_str().unwrap().to_owned();
        csrf = cookie.split(';').next().unwrap().trim_start_matches("csrf=").to_owned();
        let html = page.text().await.unwrap();
        assert!(html.contains("Reactivate my account"));
        assert!(html.contains(&token));
    }

    // A form posted without the CSRF value does nothing.
    let forged = mesh
        .http
        .post(mesh.url("/reactivate"))
        .form(&[("token", &token)])
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        mesh.login("ada@example.com", PASSWORD).await.status(),
        StatusCode::FORBIDDEN
    );

    // The button posts the form: the account is back, and this browser
    // (which never gave the password) is asked to log in.
    let confirmed = mesh
        .http
        .post(mesh.url("/reactivate"))
        .header("cookie", format!("csrf={csrf}"))
        .form(&[("token", &token), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert!(
        confirmed
            .text()
            .await
            .unwrap()
            .contains("Your account is active again. Log in to continue.")
    );
    assert_eq!(mesh.login("ada@example.com", PASSWORD).await.status(), StatusCode::OK);

    let again = mesh
        .http
        .post(mesh.url("/reactivate"))
        .header("cookie", format!("csrf={csrf}"))
        .form(&[("token", &token), ("csrf", &csrf)])
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), StatusCode::BAD_REQUEST);
    assert!(again.text().await.unwrap().contains("request a new reactivation link"));
}

#[tokio::test]
async fn fifty_concurrent_confirmations_of_one_token_succeed_exactly_once() {
    let mesh = spawn_mesh().await;
    mesh.register_and_leave("ada@example.com").await;
    mesh.post("/reactivate_user", None, json!({ "email": "ada@example.com" }))
        .await;
    let token = mesh.wait_for_token(1).await;

    let attempts = (0..50).map(|_| mesh.post("/reactivate_user", None, json!({ "token": token })));
    let responses = futures::future::join_all(attempts).await;
    let mut ok = 0;
    for response in responses {
        match response.status() {
            StatusCode::OK => ok += 1,
            StatusCode::BAD_REQUEST => {
                let refused: Value = response.json().await.unwrap();
                assert_eq!(refused["detail"], LINK_INVALID);
                assert_eq!(refused["reason"], "REACTIVATION_LINK_INVALID");
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert_eq!(ok, 1);

    let me: Value = mesh
        .get("/me", Some(&mesh.token("ada@example.com", PASSWORD).await))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(me["reactivation_count"], 1);
}

#[tokio::test]
async fn asking_again_within_the_cooldown_is_429_with_retry_after() {
    let mesh = spawn_mesh_with(
        |identity| identity.reactivation.cooldown = Duration::from_secs(60),
        |_| {},
    )
    .await;
    let first = mesh
        .post("/reactivate_user", None, json!({ "email": "ada@example.com" }))
        .await;
    assert_eq!(first.status(), StatusCode::ACCEPTED);
    let second = mesh
        .post("/reactivate_user", None, json!({ "email": "ada@example.com" }))
        .await;
    let retry_after: u64 = second.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry_after));
    let refused = problem(second, StatusCode::TOO_MANY_REQUESTS).await;
    assert_eq!(refused["reason"], "RATE_LIMITED");
}

#[tokio::test]
async fn the_per_client_limit_applies_across_emails() {
    let mesh = spawn_mesh_with(|identity| identity.reactivation.max_per_client_per_hour = 3, |_| {}).await;
    for n in 0..3 {
        let response = mesh
            .post(
                "/reactivate_user",
                None,
                json!({ "email": format!("u{n}@example.com") }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    let response = mesh
        .post("/reactivate_user", None, json!({ "email": "u9@example.com" }))
        .await;
    problem(response, StatusCode::TOO_MANY_REQUESTS).await;
}

#[tokio::test]
async fn a_body_with_both_or_neither_field_is_400() {
    let mesh = spawn_mesh().await;
    for body in [json!({}), json!({ "email": "ada@example.com", "token": "x" })] {
        let refused = problem(mesh.post("/reactivate_user", None, body).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(refused["reason"], "INVALID_FIELD");
    }
    let refused = problem(
        mesh.post("/reactivate_user", None, json!({ "token": "nope" })).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["detail"], LINK_INVALID);
}
