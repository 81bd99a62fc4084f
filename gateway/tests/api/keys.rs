//! License keys through the gateway (seed 002): the admin routes with the
//! seed's JSON shapes, the public validation, and the emailed key arriving
//! at a real mail server.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestMesh, problem, spawn_mesh, spawn_mesh_with};

async fn admin(mesh: &TestMesh) -> String {
    mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
}

async fn create_trial(mesh: &TestMesh, token: &str, email: &str) -> Value {
    let response = mesh
        .post("/api/keys", Some(token), json!({ "email": email, "keyType": "trial" }))
        .await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["data"].clone()
}

fn at(value: &Value) -> DateTime<Utc> {
    value.as_str().expect("a timestamp").parse().unwrap()
}

#[tokio::test]
async fn a_disabled_trial_is_reactivated_for_seven_days_in_the_seeds_shape() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    let key = create_trial(&mesh, &token, "customer@example.com").await;
    let id = key["key"].as_str().unwrap().to_owned();
    assert_eq!(key["status"], "ACTIVE");
    assert_eq!(key["keyType"], "trial");
    assert_eq!(key["isTrial"], true);
    let created = at(&key["createdAt"]);
    assert_eq!(at(&key["expiresAt"]), created + chrono::Duration::days(14));

    let response = mesh
        .post(&format!("/api/keys/{id}/disable"), Some(&token), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.json::<Value>().await.unwrap()["data"]["status"], "DISABLED");

    let response = mesh
        .post(&format!("/api/keys/{id}/reactivate"), Some(&token), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    let data = &body["data"];
    assert_eq!(data["key"], id.as_str());
    assert_eq!(data["email"], "customer@example.com");
    assert_eq!(data["keyType"], "trial");
    assert_eq!(data["isTrial"], true);
    assert_eq!(data["status"], "ACTIVE");
    let in_a_week = Utc::now() + chrono::Duration::days(7);
    assert!((at(&data["expiresAt"]) - in_a_week).num_seconds().abs() < 60);
    assert!(data["createdAt"].is_string());
}

#[tokio::test]
async fn a_closed_deal_gives_a_production_key_that_reactivates_with_no_expiry() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    let id = create_trial(&mesh, &token, "customer@example.com").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = mesh
        .post(&format!("/api/keys/{id}/close-deal"), Some(&token), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let closed: Value = response.json().await.unwrap();
    assert_eq!(closed["data"]["keyType"], "production");
    assert_eq!(closed["data"]["expiresAt"], Value::Null);

    mesh.post(&format!("/api/keys/{id}/disable"), Some(&token), json!({}))
        .await;
    let response = mesh
        .post(&format!("/api/keys/{id}/reactivate"), Some(&token), json!({}))
        .await;
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["status"], "ACTIVE");
    assert_eq!(body["data"]["expiresAt"], Value::Null);
    assert_eq!(body["data"]["isTrial"], false);

    // The wrong state is refused, with the reason.
    let refused = mesh
        .post(&format!("/api/keys/{id}/reactivate"), Some(&token), json!({}))
        .await;
    let refused = problem(refused, StatusCode::BAD_REQUEST).await;
    assert_eq!(refused["reason"], "KEY_ALREADY_ACTIVE");
    let refused = mesh
        .post(&format!("/api/keys/{id}/close-deal"), Some(&token), json!({}))
        .await;
    assert_eq!(
        problem(refused, StatusCode::BAD_REQUEST).await["reason"],
        "KEY_NOT_TRIAL"
    );
}

#[tokio::test]
async fn editing_extending_listing_and_history_work_for_an_admin() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    let id = create_trial(&mesh, &token, "customer@example.com").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = mesh
        .patch(
            &format!("/api/keys/{id}"),
            Some(&token),
            json!({ "customer": { "name": "Ada", "company": "Engines Ltd" }, "features": { "export": true } }),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let edited: Value = response.json().await.unwrap();
    assert_eq!(edited["data"]["customer"]["company"], "Engines Ltd");
    assert_eq!(edited["data"]["features"]["export"], true);

    let before = at(&edited["data"]["expiresAt"]);
    let response = mesh
        .post(&format!("/api/keys/{id}/extend"), Some(&token), json!({ "days": 5 }))
        .await;
    let extended: Value = response.json().await.unwrap();
    assert_eq!(at(&extended["data"]["expiresAt"]), before + chrono::Duration::days(5));

    let response = mesh
        .get("/api/keys?email=customer@example.com&status=active", Some(&token))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let page: Value = response.json().await.unwrap();
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["key"], id.as_str());
    let refused = mesh.get("/api/keys?status=sleeping", Some(&token)).await;
    assert_eq!(
        problem(refused, StatusCode::BAD_REQUEST).await["invalid_params"][0]["name"],
        "status"
    );

    let response = mesh.get(&format!("/api/keys/{id}/history"), Some(&token)).await;
    let history: Value = response.json().await.unwrap();
    let actions: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "updated", "extended"]);
    let extended = &history["data"][2];
    assert_eq!(extended["details"]["days"], 5);
    assert_eq!(extended["details"]["key_type"], "trial");
    assert!(
        extended["performed_by"].as_str().unwrap().len() == 36,
        "the admin's user id"
    );
    assert_eq!(extended["trace_id"].as_str().unwrap().len(), 32);
}

#[tokio::test]
async fn seed_002_clients_read_errors_and_history_in_their_shape() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    // `{"error": "License key not found"}`, inside the problem details.
    let unknown = mesh.get("/api/keys/SK-AAAA-BBBB-CCCC-DDDD/history", Some(&token)).await;
    let body = problem(unknown, StatusCode::NOT_FOUND).await;
    assert_eq!(body["error"], "License key not found");
    assert_eq!(body["detail"], body["error"]);

    let id = create_trial(&mesh, &token, "customer@example.com").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let disabled = mesh
        .post(&format!("/api/keys/{id}/disable"), Some(&token), json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    let reactivated = mesh
        .post(&format!("/api/keys/{id}/reactivate"), Some(&token), json!({}))
        .await;
    assert_eq!(reactivated.status(), StatusCode::OK);
    let history: Value = mesh
        .get(&format!("/api/keys/{id}/history"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    let entry = &history["data"][2];
    assert_eq!(entry["key_value"], id.as_str());
    assert_eq!(entry["action"], "reactivated");
    assert!(entry["performed_at"].as_str().unwrap().ends_with('Z'), "{entry}");
    assert_eq!(entry["details"]["key_type"], "trial");
    assert_eq!(entry["details"]["was_trial"], true);
    assert!(entry["details"]["new_expiry"].is_string(), "{entry}");
    assert_eq!(entry["performed_by"].as_str().unwrap().len(), 36);
    assert_eq!(entry["trace_id"].as_str().unwrap().len(), 32);
    assert_eq!(history["data"][1]["details"]["reason"], "admin");
}

#[tokio::test]
async fn non_admins_are_refused_on_every_admin_key_route() {
    let mesh = spawn_mesh().await;
    let admin_token = admin(&mesh).await;
    let id = create_trial(&mesh, &admin_token, "customer@example.com").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    mesh.register("ada@example.com").await;
    let user = mesh.token("ada@example.com", PASSWORD).await;

    let key_path = format!("/api/keys/{id}");
    for (method, path) in [
        ("GET", "/api/keys".to_owned()),
        ("POST", "/api/keys".to_owned()),
        ("GET", key_path.clone()),
        ("PATCH", key_path.clone()),
        ("POST", format!("{key_path}/disable")),
        ("POST", format!("{key_path}/reactivate")),
        ("POST", format!("{key_path}/extend")),
        ("POST", format!("{key_path}/close-deal")),
        ("POST", format!("{key_path}/email")),
        ("GET", format!("{key_path}/history")),
    ] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = mesh
            .http
            .request(method.clone(), mesh.url(&path))
            .bearer_auth(&user)
            .json(&json!({ "email": "x@example.com", "keyType": "trial", "days": 1 }))
            .send()
            .await
            .unwrap();
        let body = problem(response, StatusCode::FORBIDDEN).await;
        assert_eq!(body["reason"], "ADMIN_REQUIRED", "{method} {path}");
        let anonymous = mesh.http.request(method.clone(), mesh.url(&path)).send().await.unwrap();
        assert_eq!(anonymous.status(), StatusCode::UNAUTHORIZED, "{method} {path}");
    }
    // Nothing was changed by the refused calls.
    let key: Value = mesh.get(&key_path, Some(&admin_token)).await.json().await.unwrap();
    assert_eq!(key["data"]["status"], "ACTIVE");
}

#[tokio::test]
async fn an_unknown_key_is_not_found_and_a_malformed_one_is_a_bad_request() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    let unknown = mesh
        .post("/api/keys/SK-AAAA-BBBB-CCCC-DDDD/reactivate", Some(&token), json!({}))
        .await;
    let body = problem(unknown, StatusCode::NOT_FOUND).await;
    assert_eq!(body["detail"], "License key not found");
    assert_eq!(body["reason"], "KEY_NOT_FOUND");

    let malformed = mesh.post("/api/keys/SK-1234/disable", Some(&token), json!({})).await;
    let body = problem(malformed, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["invalid_params"][0]["name"], "key");

    let unknown = mesh
        .post("/api/keys/validate", None, json!({ "key": "SK-AAAA-BBBB-CCCC-DDDD" }))
        .await;
    assert_eq!(
        problem(unknown, StatusCode::NOT_FOUND).await["detail"],
        "License key not found"
    );
}

#[tokio::test]
async fn anyone_can_validate_a_key_and_disabling_it_takes_effect_at_once() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    let id = create_trial(&mesh, &token, "customer@example.com").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = mesh.post("/api/keys/validate", None, json!({ "key": id })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["data"]["valid"], true);
    assert_eq!(body["data"]["status"], "ACTIVE");
    assert_eq!(body["data"]["keyType"], "trial");

    mesh.post(&format!("/api/keys/{id}/disable"), Some(&token), json!({}))
        .await;
    let body: Value = mesh
        .post("/api/keys/validate", None, json!({ "key": id }))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(body["data"]["valid"], false);
    assert_eq!(body["data"]["status"], "DISABLED");
}

#[tokio::test]
async fn validations_beyond_the_per_client_limit_are_refused_with_retry_after() {
    let mesh = spawn_mesh_with(|_| {}, |gateway| gateway.validate_rate_limit_per_sec = 3).await;
    let mut statuses = Vec::new();
    for _ in 0..10 {
        let response = mesh
            .post("/api/keys/validate", None, json!({ "key": "SK-AAAA-BBBB-CCCC-DDDD" }))
            .await;
        if response.status() == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(response.headers()["retry-after"], "1");
        }
        statuses.push(response.status());
    }
    // A second boundary may fall inside the burst, so no more than twice
    // the allowance passes.
    let refused = statuses
        .iter()
        .filter(|status| **status == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(statuses.len() - refused <= 6, "{statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|status| *status == StatusCode::NOT_FOUND || *status == StatusCode::TOO_MANY_REQUESTS)
    );
}

#[tokio::test]
async fn emailing_a_key_delivers_it_to_the_customer() {
    let mesh = spawn_mesh().await;
    let token = admin(&mesh).await;
    let id = create_trial(&mesh, &token, "customer@example.com").await["key"]
        .as_str()
        .unwrap()
        .to_owned();
    let response = mesh
        .post(&format!("/api/keys/{id}/email"), Some(&token), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    let mail = mesh.smtp.wait_for(1, Duration::from_secs(15)).await.remove(0);
    assert_eq!(mail.to, ["customer@example.com"]);
    let body = mail.text_body().unwrap();
    assert!(body.contains(&id), "the key is in the email");
    assert!(body.contains("trial"));

    let history: Value = mesh
        .get(&format!("/api/keys/{id}/history"), Some(&token))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(history["data"][1]["action"], "emailed");
}
