//! Seeds 000 and 001 through the REST API.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, problem, spawn_mesh};

#[tokio::test]
async fn register_login_deactivate_then_login_is_refused_as_inactive() {
    let mesh = spawn_mesh().await;
    let user = mesh.register("ada@example.com").await;
    assert_eq!(user["is_active"], true);
    let token = mesh.token("ada@example.com", PASSWORD).await;

    let me: Value = mesh.get("/me", Some(&token)).await.json().await.unwrap();
    assert_eq!(me["email"], "ada@example.com");

    let response = mesh
        .post(
            "/deactivate_user",
            Some(&token),
            json!({ "comment": "moving to a competitor" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["is_active"], false);
    assert_eq!(body["user"]["deactivation_reason"], "self");
    assert_eq!(body["user"]["last_cancellation_reason"], "moving to a competitor");

    let refused = problem(mesh.login("ada@example.com", PASSWORD).await, StatusCode::FORBIDDEN).await;
    assert_eq!(refused["reason"], "ACCOUNT_INACTIVE");
    assert_eq!(
        refused["detail"],
        "Your account is inactive. Would you like to reactivate it?"
    );
    assert_eq!(refused["self_service_reactivation"], true);
}

#[tokio::test]
async fn a_token_issued_before_deactivation_is_refused_by_the_gateway_after_it() {
    let mesh = spawn_mesh().await;
    mesh.register("ada@example.com").await;
    let token = mesh.token("ada@example.com", PASSWORD).await;
    // An empty body deactivates the caller.
    let response = mesh
        .http
        .post(mesh.url("/deactivate_user"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    let refused = problem(mesh.get("/me", Some(&token)).await, StatusCode::UNAUTHORIZED).await;
    assert_eq!(refused["reason"], "SESSION_REVOKED");
}

#[tokio::test]
async fn an_admin_reactivates_through_the_admin_route_and_the_trail_has_trace_ids() {
    let mesh = spawn_mesh().await;
    let user = mesh.register("ada@example.com").await;
    let id = user["id"].as_str().unwrap();
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let response = mesh
        .post(
            "/deactivate_user",
            Some(&admin),
            json!({ "user_id": id, "reason": "fraud" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let refused = problem(mesh.login("ada@example.com", PASSWORD).await, StatusCode::FORBIDDEN).await;
    assert_eq!(refused["self_service_reactivation"], false, "fraud needs an admin");

    let response = mesh
        .post(
            &format!("/admin/users/{id}/reactivate"),
            Some(&admin),
            json!({ "note": "cleared by support" }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["user"]["is_active"], true);
    assert_eq!(body["user"]["reactivation_count"], 1);

    assert_eq!(mesh.login("ada@example.com", PASSWORD).await.status(), StatusCode::OK);

    let events: Value = mesh
        .get(&format!("/admin/users/{id}/events"), Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let events = events["events"].as_array().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|event| event["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["registered", "deactivated", "reactivated"]);
    assert!(
        events
            .iter()
            .all(|event| event["trace_id"].as_str().is_some_and(|id| id.len() == 32))
    );
    assert_eq!(events[2]["data"]["note"], "cleared by support");
}

#[tokio::test]
async fn a_non_admin_gets_403_on_admin_routes() {
    let mesh = spawn_mesh().await;
    let ada = mesh.register("ada@example.com").await;
    mesh.register("bob@example.com").await;
    let bob = mesh.token("bob@example.com", PASSWORD).await;
    let id = ada["id"].as_str().unwrap();

    let refused = problem(
        mesh.post(&format!("/admin/users/{id}/reactivate"), Some(&bob), json!({}))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(refused["reason"], "ADMIN_REQUIRED");
    let refused = problem(
        mesh.get(&format!("/admin/users/{id}/events"), Some(&bob)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(refused["reason"], "ADMIN_REQUIRED");
    // Nor may a user deactivate someone else.
    let refused = problem(
        mesh.post("/deactivate_user", Some(&bob), json!({ "user_id": id }))
            .await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(refused["reason"], "NOT_YOUR_ACCOUNT");
    // And without a token at all: 401.
    let refused = problem(
        mesh.post(&format!("/admin/users/{id}/reactivate"), None, json!({}))
            .await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(refused["reason"], "TOKEN_INVALID");
}

#[tokio::test]
async fn an_admin_finds_accounts_by_email_a_page_at_a_time() {
    let mesh = spawn_mesh().await;
    let ada = mesh.register("ada@example.com").await;
    mesh.register("adam@example.com").await;
    mesh.register("bob@example.com").await;
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;

    let response = mesh
        .get("/api/admin/users?email=ADA&prefix=true&page_size=1", Some(&admin))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    let users = page["users"].as_array().unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0]["id"], ada["id"]);
    assert_eq!(users[0]["email"], "ada@example.com");
    assert_eq!(users[0]["role"], "user");
    assert_eq!(users[0]["is_active"], true);
    let token = page["next_page_token"].as_str().expect("a next page");

    let page: Value = mesh
        .get(
            &format!("/api/admin/users?email=ada&prefix=true&page_size=1&page_token={token}"),
            Some(&admin),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(page["users"][0]["email"], "adam@example.com");
    assert!(page["next_page_token"].is_null(), "the last page");

    let page: Value = mesh
        .get("/api/admin/users?email=Bob@Example.com", Some(&admin))
        .await
        .json()
        .await
        .unwrap();
    let emails: Vec<&str> = page["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|user| user["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, ["bob@example.com"]);

    let refused = problem(
        mesh.get("/api/admin/users", Some(&admin)).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(refused["reason"], "INVALID_FIELD");
}

#[tokio::test]
async fn a_plain_user_cannot_find_accounts() {
    let mesh = spawn_mesh().await;
    mesh.register("ada@example.com").await;
    mesh.register("bob@example.com").await;
    let bob = mesh.token("bob@example.com", PASSWORD).await;

    let refused = problem(
        mesh.get("/api/admin/users?email=ada&prefix=true", Some(&bob)).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    assert_eq!(refused["reason"], "ADMIN_REQUIRED");
    assert!(refused.get("users").is_none());
    let refused = problem(
        mesh.get("/api/admin/users?email=ada", None).await,
        StatusCode::UNAUTHORIZED,
    )
    .await;
    assert_eq!(refused["reason"], "TOKEN_INVALID");
}

#[tokio::test]
async fn a_duplicate_email_is_409() {
    let mesh = spawn_mesh().await;
    mesh.register("ada@example.com").await;
    let response = mesh
        .post(
            "/register",
            None,
            json!({ "email": "Ada@Example.com", "password": PASSWORD }),
        )
        .await;
    let refused = problem(response, StatusCode::CONFLICT).await;
    assert_eq!(refused["reason"], "EMAIL_TAKEN");
}

#[tokio::test]
async fn a_malformed_email_or_weak_password_is_400_naming_the_field() {
    let mesh = spawn_mesh().await;
    for (email, password, field) in [
        ("ada.example.com", PASSWORD, "email"),
        ("ada@example.com", "hunter2", "password"),
    ] {
        let response = mesh
            .post("/register", None, json!({ "email": email, "password": password }))
            .await;
        let refused = problem(response, StatusCode::BAD_REQUEST).await;
        assert_eq!(refused["reason"], "INVALID_FIELD");
        assert_eq!(refused["invalid_params"][0]["name"], field);
        assert!(refused["detail"].as_str().unwrap().contains(field));
    }
    // A body that is not the expected JSON is a problem too, not a plain-text 422.
    let response = mesh
        .http
        .post(mesh.url("/register"))
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let refused = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["reason"], "MALFORMED_BODY");
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_identical_responses() {
    let mesh = spawn_mesh().await;
    mesh.register("ada@example.com").await;
    let wrong_password = mesh.login("ada@example.com", "not the password").await;
    let unknown_email = mesh.login("nobody@example.com", PASSWORD).await;
    assert_eq!(wrong_password.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(wrong_password.status(), unknown_email.status());
    let strip = |mut body: Value| {
        body.as_object_mut().unwrap().remove("instance");
        body
    };
    let wrong_password = strip(wrong_password.json().await.unwrap());
    let unknown_email = strip(unknown_email.json().await.unwrap());
    assert_eq!(wrong_password, unknown_email);
    assert_eq!(wrong_password["reason"], "INVALID_CREDENTIALS");
}

#[tokio::test]
async fn unknown_routes_are_problem_json_and_cors_allows_only_configured_origins() {
    let mesh = spawn_mesh().await;
    let refused = problem(mesh.get("/nope", None).await, StatusCode::NOT_FOUND).await;
    assert_eq!(refused["detail"], "No such route.");

    let preflight = |origin: &'static str| {
        mesh.http
            .request(reqwest::Method::OPTIONS, mesh.url("/login"))
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .send()
    };
    let allowed = preflight("https://app.example.com").await.unwrap();
    assert_eq!(
        allowed.headers()["access-control-allow-origin"],
        "https://app.example.com"
    );
    let other = preflight("https://evil.example.net").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn every_response_carries_a_request_id() {
    let mesh = spawn_mesh().await;
    let response = mesh.get("/healthz", None).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert!(response.headers().contains_key("x-request-id"));
    let response = mesh
        .http
        .get(mesh.url("/healthz"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "req-42");
}

#[tokio::test]
async fn healthz_turns_503_while_draining() {
    let mesh = crate::helpers::spawn_mesh_with(
        |_| {},
        |config| config.drain_delay = std::time::Duration::from_millis(800),
    )
    .await;
    assert_eq!(mesh.get("/healthz", None).await.status(), StatusCode::OK);
    mesh.shutdown.trigger();
    crate::helpers::eventually("/healthz answers 503", || async {
        mesh.get("/healthz", None).await.status() == StatusCode::SERVICE_UNAVAILABLE
    })
    .await;
    let refused = problem(mesh.get("/healthz", None).await, StatusCode::SERVICE_UNAVAILABLE).await;
    assert_eq!(refused["reason"], "DRAINING");
}
