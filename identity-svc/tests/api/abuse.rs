//! What an attacker can and cannot do to someone else's account: wrong
//! passwords and reactivation requests from one address slow that address
//! down, never the owner elsewhere.

use proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, reason, spawn_app_with};

async fn login_from(
    app: &TestApp,
    email: &str,
    password: &str,
    client: &str,
) -> Result<pb::LoginResponse, tonic::Status> {
    app.client
        .clone()
        .login(pb::LoginRequest {
            email: email.into(),
            password: password.into(),
            client_address: client.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

async fn request_link_from(app: &TestApp, email: &str, client: &str) -> Result<(), tonic::Status> {
    app.client
        .clone()
        .request_reactivation(pb::RequestReactivationRequest {
            email: email.into(),
            client_address: client.into(),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn guessing_a_password_throttles_the_guesser_not_the_owner() {
    let app = spawn_app_with(|config| config.login.max_failures_per_account_per_client = 3).await;
    app.register("ada@example.com").await;

    for _ in 0..3 {
        let wrong = login_from(&app, "ada@example.com", "not the password", "198.51.100.9").await;
        assert_eq!(wrong.unwrap_err().code(), Code::Unauthenticated);
    }
    // Now even the right password is refused from the guesser's address…
    let throttled = login_from(&app, "ada@example.com", PASSWORD, "198.51.100.9")
        .await
        .unwrap_err();
    assert_eq!(throttled.code(), Code::ResourceExhausted);
    assert_eq!(reason(&throttled).as_deref(), Some("RATE_LIMITED"));
    // …while the owner, from their own address, logs in.
    login_from(&app, "ada@example.com", PASSWORD, "192.0.2.44")
        .await
        .expect("the owner is not locked out");
}

#[tokio::test]
async fn one_address_is_limited_whatever_the_emails() {
    let app = spawn_app_with(|config| config.login.max_per_client_per_minute = 5).await;
    app.register("ada@example.com").await;
    for n in 0..5 {
        let email = format!("nobody{n}@example.com");
        let refused = login_from(&app, &email, PASSWORD, "198.51.100.9").await.unwrap_err();
        assert_eq!(refused.code(), Code::Unauthenticated);
    }
    let refused = login_from(&app, "ada@example.com", PASSWORD, "198.51.100.9")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::ResourceExhausted);
    login_from(&app, "ada@example.com", PASSWORD, "192.0.2.44")
        .await
        .expect("another address is not limited");
}

#[tokio::test]
async fn an_oversized_password_is_refused_without_hashing() {
    let app = spawn_app_with(|_| {}).await;
    let huge = "x".repeat(1_000_000);
    let refused = login_from(&app, "ada@example.com", &huge, "198.51.100.9")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("at most 128"), "{}", refused.message());
}

#[tokio::test]
async fn an_attacker_cannot_spend_a_victims_reactivation_budget() {
    let app = spawn_app_with(|config| {
        config.reactivation.cooldown = std::time::Duration::from_secs(60);
        config.reactivation.max_per_email_per_hour = 3;
        config.reactivation.max_per_client_per_hour = 2;
    })
    .await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;

    // The attacker's first request sends Ada a link; then the cooldown holds…
    request_link_from(&app, "ada@example.com", "198.51.100.9")
        .await
        .unwrap();
    let first = app.wait_for_token(1).await;
    let cooled = request_link_from(&app, "ada@example.com", "198.51.100.9")
        .await
        .unwrap_err();
    assert_eq!(cooled.code(), Code::ResourceExhausted);
    // …and every further request is refused for the attacker's own address,
    // costing Ada's email nothing.
    for _ in 0..20 {
        let refused = request_link_from(&app, "ada@example.com", "198.51.100.9")
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::ResourceExhausted);
    }
    app.wait_until_requests_answered().await;
    assert_eq!(app.outbox_links().await.len(), 1, "the link Ada has is not replaced");
    let user = app.confirm(&first).await.expect("Ada's link still works");
    assert!(user.is_active);
}
