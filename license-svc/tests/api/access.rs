//! Who may call what: admins for the admin RPCs, anyone for validation,
//! services (internal token) or admins for a customer's access.

use proto::license::v1 as pb;
use tonic::{Code, Request};

use crate::helpers::{bearer, reason, spawn_app};

#[tokio::test]
async fn admin_rpcs_refuse_users_and_anonymous_callers() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;

    let refused = app
        .client
        .clone()
        .disable_key(bearer(&app.user, pb::DisableKeyRequest { key: key.key.clone() }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("ADMIN_REQUIRED"));

    let refused = app
        .client
        .clone()
        .get_key(pb::GetKeyRequest { key: key.key.clone() })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);

    // The internal token alone is not an admin.
    let mut request = Request::new(pb::CreateKeyRequest {
        email: "eve@example.com".into(),
        key_type: pb::KeyType::Production.into(),
        ..Default::default()
    });
    app.internal.attach(&mut request);
    let refused = app.client.clone().create_key(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Active);
}

#[tokio::test]
async fn anyone_can_validate_a_key_without_a_token() {
    let app = spawn_app().await;
    let key = app
        .client
        .clone()
        .create_key(bearer(
            &app.admin,
            pb::CreateKeyRequest {
                email: "ada@example.com".into(),
                key_type: pb::KeyType::Trial.into(),
                features: [("export".to_owned(), true)].into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();

    let validation = app.validate(&key.key.to_lowercase()).await.expect("validate");
    assert!(validation.valid);
    assert_eq!(validation.status(), pb::KeyStatus::Active);
    assert_eq!(validation.key_type(), pb::KeyType::Trial);
    assert_eq!(validation.expires_at, key.expires_at);
    assert_eq!(validation.features.get("export"), Some(&true));

    // Disabling takes effect on the very next validation.
    app.disable(&key.key).await.unwrap();
    assert!(!app.validate(&key.key).await.unwrap().valid);

    let unknown = app.validate("SK-AAAA-BBBB-CCCC-DDDD").await.unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let malformed = app.validate("not a key").await.unwrap_err();
    assert_eq!(malformed.code(), Code::InvalidArgument);
}

fn access_request(email: &str, access: pb::CustomerAccess) -> pb::SetCustomerAccessRequest {
    pb::SetCustomerAccessRequest {
        customer: Some(pb::set_customer_access_request::Customer::Email(email.into())),
        access: access.into(),
        version: 0,
        suspension: pb::DisabledReason::Unspecified.into(),
    }
}

#[tokio::test]
async fn a_key_disabled_by_an_admin_stays_disabled_when_billing_restores_access() {
    let app = spawn_app().await;
    let abused = app.create("ada@example.com", pb::KeyType::Production).await.unwrap();
    let unpaid = app.create("ada@example.com", pb::KeyType::Production).await.unwrap();
    let disabled = app.disable(&abused.key).await.expect("admin disables");
    assert_eq!(disabled.disabled_reason(), pb::DisabledReason::Admin);
    let send = |access, suspension: pb::DisabledReason| {
        let mut request = Request::new(pb::SetCustomerAccessRequest {
            suspension: suspension.into(),
            ..access_request("ada@example.com", access)
        });
        app.internal.attach(&mut request);
        let mut client = app.client.clone();
        async move { client.set_customer_access(request).await.unwrap().into_inner().changed }
    };

    // The account is closed: the other key is suspended, and says why.
    let suspended = send(pb::CustomerAccess::Suspended, pb::DisabledReason::AccountClosed).await;
    assert_eq!(suspended.len(), 1);
    assert_eq!(suspended[0].key, unpaid.key);
    let held = app.get(&unpaid.key).await.unwrap();
    assert_eq!(held.disabled_reason(), pb::DisabledReason::AccountClosed);
    assert_eq!(
        app.get(&abused.key).await.unwrap().disabled_reason(),
        pb::DisabledReason::Admin,
        "an admin's reason is never overwritten"
    );

    // They pay again: billing's key comes back, the admin's does not.
    let restored = send(pb::CustomerAccess::Active, pb::DisabledReason::Unspecified).await;
    assert_eq!(restored.len(), 1);
    assert_eq!(restored[0].key, unpaid.key);
    let back = app.get(&unpaid.key).await.unwrap();
    assert_eq!(back.status(), pb::KeyStatus::Active);
    assert_eq!(back.disabled_reason(), pb::DisabledReason::Unspecified);
    let still = app.get(&abused.key).await.unwrap();
    assert_eq!(still.status(), pb::KeyStatus::Disabled);
    assert!(!app.validate(&abused.key).await.unwrap().valid);

    // The history says why each was disabled.
    let reason_of = |entry: &pb::KeyHistoryEntry| {
        serde_json::from_str::<serde_json::Value>(&entry.details_json).unwrap()["reason"].clone()
    };
    let history = app.history(&abused.key).await;
    let disabling = history.iter().find(|entry| entry.action == "disabled").unwrap();
    assert_eq!(reason_of(disabling), "admin");
    let history = app.history(&unpaid.key).await;
    let suspension = history.iter().find(|entry| entry.action == "suspended").unwrap();
    assert_eq!(reason_of(suspension), "account_closed");
    assert_eq!(history.last().unwrap().action, "restored");

    // Only an admin brings it back.
    let reactivated = app.reactivate(&abused.key).await.expect("admin reactivates");
    assert_eq!(reactivated.status(), pb::KeyStatus::Active);
    assert_eq!(reactivated.disabled_reason(), pb::DisabledReason::Unspecified);
}

#[tokio::test]
async fn suspending_and_restoring_a_customer_follows_billing_idempotently() {
    let app = spawn_app().await;
    let trial = app.trial("ada@example.com").await;
    let production = app.create("ada@example.com", pb::KeyType::Production).await.unwrap();
    let other = app.trial("grace@example.com").await;
    let set = |access| {
        let mut request = Request::new(access_request("ada@example.com", access));
        app.internal.attach(&mut request);
        let mut client = app.client.clone();
        async move {
            client
                .set_customer_access(request)
                .await
                .map(|r| r.into_inner().changed)
        }
    };

    let changed = set(pb::CustomerAccess::Suspended).await.expect("suspend");
    assert_eq!(changed.len(), 2);
    assert_eq!(app.get(&trial.key).await.unwrap().status(), pb::KeyStatus::Disabled);
    assert_eq!(
        app.get(&production.key).await.unwrap().status(),
        pb::KeyStatus::Disabled
    );
    assert_eq!(app.get(&other.key).await.unwrap().status(), pb::KeyStatus::Active);
    assert!(
        set(pb::CustomerAccess::Suspended).await.unwrap().is_empty(),
        "idempotent"
    );

    let changed = set(pb::CustomerAccess::Active).await.expect("restore");
    assert_eq!(changed.len(), 2);
    let restored = app.get(&trial.key).await.unwrap();
    assert_eq!(restored.status(), pb::KeyStatus::Active);
    assert_eq!(restored.key_type(), pb::KeyType::Production, "a trial is converted");
    assert_eq!(restored.expires_at, None);
    assert!(set(pb::CustomerAccess::Active).await.unwrap().is_empty(), "idempotent");

    let history = app.history(&trial.key).await;
    let last = history.last().unwrap();
    assert_eq!(last.action, "restored");
    assert_eq!(last.performed_by, "service");

    // A plain user may not do it.
    let refused = app
        .client
        .clone()
        .set_customer_access(bearer(
            &app.user,
            access_request("ada@example.com", pb::CustomerAccess::Suspended),
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn customer_access_can_name_the_customer_by_account() {
    let app = spawn_app().await;
    let owner = uuid::Uuid::new_v4();
    let key = app
        .client
        .clone()
        .create_key(bearer(
            &app.admin,
            pb::CreateKeyRequest {
                email: "ada@example.com".into(),
                owner_user_id: owner.to_string(),
                key_type: pb::KeyType::Production.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner();
    let request = pb::SetCustomerAccessRequest {
        customer: Some(pb::set_customer_access_request::Customer::UserId(owner.to_string())),
        access: pb::CustomerAccess::Suspended.into(),
        version: 0,
        ..Default::default()
    };
    let changed = app
        .client
        .clone()
        .set_customer_access(bearer(&app.admin, request))
        .await
        .expect("an admin may")
        .into_inner()
        .changed;
    assert_eq!(changed.len(), 1);
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Disabled);
    assert_eq!(
        app.history(&key.key).await.last().unwrap().performed_by,
        app.admin_id.to_string()
    );
}

#[tokio::test]
async fn an_access_change_older_than_the_last_applied_is_ignored() {
    let app = spawn_app().await;
    let key = app.create("late@example.com", pb::KeyType::Production).await.unwrap();
    let send = |access: pb::CustomerAccess, version: i64| {
        let mut request = Request::new(pb::SetCustomerAccessRequest {
            version,
            ..access_request("late@example.com", access)
        });
        app.internal.attach(&mut request);
        let mut client = app.client.clone();
        async move { client.set_customer_access(request).await.unwrap().into_inner().changed }
    };
    // Suspended at t=2; then the "active" of t=1, retried, arrives late.
    assert_eq!(send(pb::CustomerAccess::Suspended, 2_000).await.len(), 1);
    assert!(send(pb::CustomerAccess::Active, 1_000).await.is_empty());
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Disabled);
    // The same change again changes nothing; a newer one applies.
    assert!(send(pb::CustomerAccess::Suspended, 2_000).await.is_empty());
    assert_eq!(send(pb::CustomerAccess::Active, 3_000).await.len(), 1);
    assert_eq!(app.get(&key.key).await.unwrap().status(), pb::KeyStatus::Active);
}
