//! The gateway's cache of license validations never answers from before a
//! change: not after an admin change made through it, not after a change
//! made in license-svc directly, not past a key's expiry, and not while it
//! cannot hear of changes. The tests' cache keeps entries a minute, so only
//! the invalidation can make them right.

use std::time::{Duration, Instant};

use chrono::{TimeZone as _, Utc};
use platform::clock::Clock;
use proto::license::v1::{self as pb, license_service_client::LicenseServiceClient};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{
    ADMIN_EMAIL, ADMIN_PASSWORD, RedisRelay, TestMesh, problem, spawn_mesh, spawn_mesh_at, spawn_mesh_with,
};

/// One validation: the `Cache-Status` header and the `data` of the answer.
async fn validate(mesh: &TestMesh, key: &str) -> (String, Value) {
    let response = mesh.post("/api/keys/validate", None, json!({ "key": key })).await;
    assert_eq!(response.status(), StatusCode::OK);
    let cache_status = response
        .headers()
        .get("cache-status")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let body: Value = response.json().await.unwrap();
    (cache_status, body["data"].clone())
}

/// Validates `key` until the answer comes from the cache.
async fn until_cached(mesh: &TestMesh, key: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (cache_status, data) = validate(mesh, key).await;
        if cache_status == "gateway; hit" {
            return data;
        }
        assert!(
            Instant::now() < deadline,
            "never answered from the cache: {cache_status:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn create_key(mesh: &TestMesh, body: Value) -> String {
    let token = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let response = mesh.post("/api/keys", Some(&token), body).await;
    assert_eq!(response.status(), StatusCode::CREATED);
    response.json::<Value>().await.unwrap()["data"]["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn production_key(mesh: &TestMesh, email: &str) -> String {
    create_key(mesh, json!({ "email": email, "keyType": "production" })).await
}

/// billing's word, given to license-svc directly, as billing-svc will.
async fn suspend_customer(mesh: &TestMesh, email: &str) {
    let mut client = LicenseServiceClient::connect(mesh.license_url.clone()).await.unwrap();
    let mut request = tonic::Request::new(pb::SetCustomerAccessRequest {
        customer: Some(pb::set_customer_access_request::Customer::Email(email.into())),
        access: pb::CustomerAccess::Suspended.into(),
        version: 0,
        ..Default::default()
    });
    mesh.internal.attach(&mut request);
    let changed = client.set_customer_access(request).await.unwrap().into_inner().changed;
    assert_eq!(changed.len(), 1);
}

#[tokio::test]
async fn a_key_disabled_through_the_gateway_is_disabled_in_its_next_validation() {
    let mesh = spawn_mesh().await;
    let token = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let key = production_key(&mesh, "customer@example.com").await;
    let cached = until_cached(&mesh, &key).await;
    assert_eq!(cached["status"], "ACTIVE");
    assert_eq!(cached["valid"], true);

    let response = mesh
        .post(
            &format!("/api/keys/{}/disable", key.to_lowercase()),
            Some(&token),
            json!({}),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (_, data) = validate(&mesh, &key).await;
    assert_eq!(data["status"], "DISABLED");
    assert_eq!(data["valid"], false);

    let response = mesh
        .post(&format!("/api/keys/{key}/reactivate"), Some(&token), json!({}))
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    let (_, data) = validate(&mesh, &key).await;
    assert_eq!(data["status"], "ACTIVE");
}

#[tokio::test]
async fn a_change_made_in_license_svc_directly_reaches_the_cached_validation() {
    let mesh = spawn_mesh().await;
    let key = production_key(&mesh, "customer@example.com").await;
    assert_eq!(until_cached(&mesh, &key).await["status"], "ACTIVE");

    suspend_customer(&mesh, "customer@example.com").await;

    // The announcement travels through Redis: it arrives within moments,
    // far sooner than the cached entry would age out (a minute here).
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (cache_status, data) = validate(&mesh, &key).await;
        if data["status"] == "DISABLED" {
            assert_eq!(data["valid"], false);
            assert_ne!(
                cache_status, "gateway; hit",
                "the stale entry was dropped, not refreshed by age"
            );
            break;
        }
        assert!(Instant::now() < deadline, "the suspension never reached the gateway");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(until_cached(&mesh, &key).await["status"], "DISABLED");
}

#[tokio::test]
async fn a_cached_trial_turns_expired_the_moment_its_expiry_passes() {
    let clock = Clock::manual(Utc.with_ymd_and_hms(2024, 11, 3, 10, 30, 0).unwrap());
    let mesh = spawn_mesh_at(clock.clone()).await;
    let key = create_key(
        &mesh,
        json!({ "email": "customer@example.com", "keyType": "trial", "trialDays": 1 }),
    )
    .await;
    let cached = until_cached(&mesh, &key).await;
    assert_eq!(cached["status"], "ACTIVE");
    assert_eq!(cached["expiresAt"], "2024-11-04T10:30:00Z");

    clock.advance(chrono::Duration::days(1) - chrono::Duration::seconds(1));
    let (cache_status, data) = validate(&mesh, &key).await;
    assert_eq!(
        (cache_status.as_str(), &data["status"]),
        ("gateway; hit", &json!("ACTIVE"))
    );

    clock.advance(chrono::Duration::seconds(1));
    let (cache_status, data) = validate(&mesh, &key).await;
    assert_eq!(cache_status, "gateway; hit", "answered from the cache, and still right");
    assert_eq!(data["status"], "EXPIRED");
    assert_eq!(data["valid"], false);
    assert_eq!(data["expiresAt"], "2024-11-04T10:30:00Z");
}

#[tokio::test]
async fn the_cache_is_bypassed_while_redis_is_unreachable_and_emptied_when_it_is_back() {
    let relay = RedisRelay::start().await;
    let redis_url = relay.url.clone();
    let mesh = spawn_mesh_with(|_| {}, |gateway| gateway.redis_url = redis_url).await;
    let key = production_key(&mesh, "customer@example.com").await;
    assert_eq!(until_cached(&mesh, &key).await["status"], "ACTIVE");

    // The gateway loses Redis: announcements cannot reach it any more.
    relay.cut();
    let deadline = Instant::now() + Duration::from_secs(10);
    while validate(&mesh, &key).await.0 != "gateway; fwd=bypass" {
        assert!(Instant::now() < deadline, "the cache was still used without Redis");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A change it cannot hear of is still seen: the cache is not used.
    suspend_customer(&mesh, "customer@example.com").await;
    let (cache_status, data) = validate(&mesh, &key).await;
    assert_eq!(
        (cache_status.as_str(), &data["status"]),
        ("gateway; fwd=bypass", &json!("DISABLED"))
    );

    // Back: the entry from before the outage is gone, never served again.
    relay.restore();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (cache_status, data) = validate(&mesh, &key).await;
        assert_eq!(data["status"], "DISABLED", "{cache_status}");
        if cache_status == "gateway; hit" {
            break;
        }
        assert!(Instant::now() < deadline, "the cache was never used again");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_malformed_key_is_refused_before_the_cache_and_an_unknown_one_is_remembered() {
    let mesh = spawn_mesh().await;
    let response = mesh.post("/api/keys/validate", None, json!({ "key": "SK-1234" })).await;
    assert!(response.headers().get("cache-status").is_none());
    let body = problem(response, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["reason"], "INVALID_FIELD");
    assert_eq!(body["invalid_params"][0]["name"], "key");

    let mut statuses = Vec::new();
    for _ in 0..2 {
        let response = mesh
            .post("/api/keys/validate", None, json!({ "key": "sk-aaaa-bbbb-cccc-dddd" }))
            .await;
        statuses.push(response.headers()["cache-status"].to_str().unwrap().to_owned());
        let body = problem(response, StatusCode::NOT_FOUND).await;
        assert_eq!(body["detail"], "License key not found");
        assert_eq!(body["reason"], "KEY_NOT_FOUND");
    }
    assert_eq!(statuses, ["gateway; fwd=miss; stored", "gateway; hit"]);
}
