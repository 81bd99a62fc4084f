//! Every action leaves a history entry with its actor, details and trace
//! id, written in the same transaction; emailing a key owes an email.

use chrono::Duration;
use proto::license::v1 as pb;

use crate::helpers::{bearer, spawn_app, today};

#[tokio::test]
async fn every_action_appears_in_history_with_its_actor_and_details() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    app.extend(&key.key, 3).await.unwrap();
    app.client
        .clone()
        .update_key(bearer(
            &app.admin,
            pb::UpdateKeyRequest {
                key: key.key.clone(),
                customer: Some(pb::CustomerInfo {
                    name: "Ada Lovelace".into(),
                    company: "Analytical Engines".into(),
                    notes: String::new(),
                }),
                features: Some(pb::FeatureFlags {
                    flags: [("export".to_owned(), true)].into(),
                }),
            },
        ))
        .await
        .unwrap();
    app.client
        .clone()
        .email_key(bearer(&app.admin, pb::EmailKeyRequest { key: key.key.clone() }))
        .await
        .unwrap();
    app.disable(&key.key).await.unwrap();
    app.reactivate(&key.key).await.unwrap();
    app.close_deal(&key.key).await.unwrap();

    let history = app.history(&key.key).await;
    let actions: Vec<&str> = history.iter().map(|entry| entry.action.as_str()).collect();
    assert_eq!(
        actions,
        [
            "created",
            "extended",
            "updated",
            "emailed",
            "disabled",
            "reactivated",
            "deal_closed"
        ]
    );
    let admin = app.admin_id.to_string();
    for entry in &history {
        assert_eq!(entry.performed_by, admin, "{} has the admin as actor", entry.action);
        assert_eq!(entry.key, key.key);
        assert_eq!(entry.trace_id.len(), 32, "{} carries a trace id", entry.action);
        assert!(entry.performed_at.is_some());
    }
    let details = |action: &str| -> serde_json::Value {
        let entry = history.iter().find(|entry| entry.action == action).unwrap();
        serde_json::from_str(&entry.details_json).unwrap()
    };
    let reactivated = details("reactivated");
    assert_eq!(reactivated["key_type"], "trial");
    assert_eq!(reactivated["was_trial"], true);
    assert_eq!(reactivated["new_expiry"], (today() + Duration::days(7)).to_rfc3339());
    let closed = details("deal_closed");
    assert_eq!(closed["key_type"], "production");
    assert_eq!(closed["was_trial"], true);
    assert_eq!(closed["new_expiry"], serde_json::Value::Null);
    assert_eq!(details("extended")["days"], 3);
    assert_eq!(details("updated")["customer"]["company"], "Analytical Engines");
}

#[tokio::test]
async fn emailing_a_key_owes_the_license_key_email_in_the_outbox() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    app.client
        .clone()
        .email_key(bearer(&app.admin, pb::EmailKeyRequest { key: key.key.clone() }))
        .await
        .expect("email");

    let payloads: Vec<serde_json::Value> =
        sqlx::query_scalar("SELECT payload FROM outbox WHERE topic = 'notify.enqueue'")
            .fetch_all(&app.pool)
            .await
            .unwrap();
    assert_eq!(payloads.len(), 1);
    let email = &payloads[0];
    assert_eq!(email["template"], "TEMPLATE_LICENSE_KEY");
    assert_eq!(email["recipient"], "ada@example.com");
    assert_eq!(email["variables"]["license_key"], key.key.as_str());
    assert_eq!(email["variables"]["key_type"], "trial");
    assert_eq!(email["variables"]["expires_at"], "2024-11-17 10:30 UTC");
}

#[tokio::test]
async fn a_refused_action_leaves_no_history() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;
    app.reactivate(&key.key).await.unwrap_err();
    app.close_deal(&key.key).await.unwrap();
    app.close_deal(&key.key).await.unwrap_err();
    let actions: Vec<String> = app
        .history(&key.key)
        .await
        .into_iter()
        .map(|entry| entry.action)
        .collect();
    assert_eq!(actions, ["created", "deal_closed"]);
}
