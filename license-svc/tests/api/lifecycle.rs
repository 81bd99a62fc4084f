//! The key lifecycle of seed 002: its three tests and three examples, and
//! the improvements over it (disabled is stored, wrong states refused).

use chrono::Duration;
use proto::license::v1 as pb;
use tonic::Code;

use crate::helpers::{expiry, reason, spawn_app, today};

#[tokio::test]
async fn a_disabled_trial_reactivates_for_seven_days_from_today() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    assert_eq!(key.status(), pb::KeyStatus::Active);
    assert!(key.is_trial);
    assert_eq!(expiry(&key), Some(today() + Duration::days(14)));

    let disabled = app.disable(&key.key).await.expect("disable");
    assert_eq!(disabled.status(), pb::KeyStatus::Disabled);

    let reactivated = app.reactivate(&key.key).await.expect("reactivate");
    assert_eq!(reactivated.status(), pb::KeyStatus::Active);
    assert_eq!(reactivated.key_type(), pb::KeyType::Trial);
    assert!(reactivated.is_trial);
    assert_eq!(expiry(&reactivated), Some(today() + Duration::days(7)));
    assert_eq!(reactivated.disabled_at, None);
}

#[tokio::test]
async fn a_production_key_from_a_closed_deal_reactivates_with_no_expiry() {
    let app = spawn_app().await;
    let trial = app.trial("ada@example.com").await;

    let production = app.close_deal(&trial.key).await.expect("close deal");
    assert_eq!(production.key, trial.key, "closing a deal keeps the key");
    assert_eq!(production.key_type(), pb::KeyType::Production);
    assert!(!production.is_trial);
    assert_eq!(expiry(&production), None);

    let disabled = app.disable(&trial.key).await.expect("disable");
    assert_eq!(disabled.status(), pb::KeyStatus::Disabled);

    let reactivated = app.reactivate(&trial.key).await.expect("reactivate");
    assert_eq!(reactivated.status(), pb::KeyStatus::Active);
    assert_eq!(expiry(&reactivated), None);
    assert_eq!(reactivated.key_type(), pb::KeyType::Production);
}

#[tokio::test]
async fn an_expired_trial_is_reactivated_directly_for_seven_days() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    app.clock.advance(Duration::days(20));
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Expired);

    let reactivated = app
        .reactivate(&key.key)
        .await
        .expect("reactivate without disabling first");
    assert_eq!(reactivated.status(), pb::KeyStatus::Active);
    assert_eq!(expiry(&reactivated), Some(today() + Duration::days(20 + 7)));
}

#[tokio::test]
async fn a_disabled_key_stays_disabled_after_the_clock_moves_on() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    app.disable(&key.key).await.expect("disable");

    app.clock.advance(Duration::days(1));
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Disabled);
    app.clock.advance(Duration::days(30));
    let later = app.get(&key.key).await.unwrap();
    assert_eq!(later.status(), pb::KeyStatus::Disabled);
    let validation = app.validate(&key.key).await.unwrap();
    assert!(!validation.valid);
    assert_eq!(validation.status(), pb::KeyStatus::Disabled);
}

#[tokio::test]
async fn actions_from_the_wrong_state_are_refused_with_a_reason() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;

    let refused = app.reactivate(&key.key).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("KEY_ALREADY_ACTIVE"));

    app.disable(&key.key).await.expect("disable");
    let refused = app.disable(&key.key).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("KEY_ALREADY_DISABLED"));
    let refused = app.extend(&key.key, 5).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("KEY_DISABLED"));

    app.reactivate(&key.key).await.expect("reactivate");
    app.close_deal(&key.key).await.expect("close deal");
    let refused = app.close_deal(&key.key).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("KEY_NOT_TRIAL"));
    let refused = app.extend(&key.key, 5).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("KEY_NOT_EXPIRING"));

    // Nothing was applied by the refusals.
    let stored = app.get(&key.key).await.unwrap();
    assert_eq!(stored.status(), pb::KeyStatus::Active);
    assert_eq!(expiry(&stored), None);
}

#[tokio::test]
async fn extending_a_trial_moves_its_expiry_later() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    let extended = app.extend(&key.key, 10).await.expect("extend");
    assert_eq!(expiry(&extended), Some(today() + Duration::days(24)));

    let refused = app.extend(&key.key, 0).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);

    app.clock.advance(Duration::days(30));
    let refused = app.extend(&key.key, 5).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("KEY_EXPIRED"));
}

#[tokio::test]
async fn the_fourth_fresh_trial_of_a_customer_is_refused() {
    let app = spawn_app().await;
    // Trial 1: the key itself. Trials 2 and 3: two reactivations.
    let key = app.trial("ada@example.com").await;
    for _ in 0..2 {
        app.disable(&key.key).await.expect("disable");
        app.reactivate(&key.key).await.expect("reactivate within the cap");
    }
    app.disable(&key.key).await.expect("disable");

    let refused = app.reactivate(&key.key).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("TRIAL_LIMIT_REACHED"));
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Disabled);
    // A new trial key is a fresh trial too, for the same customer (any case).
    let refused = app.create("ADA@example.com", pb::KeyType::Trial).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("TRIAL_LIMIT_REACHED"));
    // Another customer is not affected; nor are keys that are not trials.
    app.trial("grace@example.com").await;
    app.create("ada@example.com", pb::KeyType::Production)
        .await
        .expect("a production key is not a trial");
}

#[tokio::test]
async fn the_trial_cap_is_configurable() {
    let app = crate::helpers::spawn_app_with(|config| config.max_trials_per_customer = 1).await;
    let key = app.trial("ada@example.com").await;
    app.disable(&key.key).await.unwrap();
    let refused = app.reactivate(&key.key).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("TRIAL_LIMIT_REACHED"));
}

#[tokio::test]
async fn unknown_and_malformed_keys_are_told_apart() {
    let app = spawn_app().await;
    let unknown = app.get("SK-AAAA-BBBB-CCCC-DDDD").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(unknown.message(), "License key not found");
    assert_eq!(reason(&unknown).as_deref(), Some("KEY_NOT_FOUND"));

    let malformed = app.disable("SK-1234").await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
    assert_eq!(reason(&malformed).as_deref(), Some("INVALID_FIELD"));
}

#[tokio::test]
async fn only_identity_svc_may_erase_a_customer_not_even_an_admin() {
    let app = spawn_app().await;
    let mut request = tonic::Request::new(pb::EraseCustomerRequest {
        user_id: uuid::Uuid::new_v4().to_string(),
        email: "someone@example.com".into(),
    });
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {}", app.admin).parse().unwrap());
    let refused = app.client.clone().erase_customer(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}
