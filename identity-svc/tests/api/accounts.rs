//! Register, log in, deactivate, reactivate.

use proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{PASSWORD, bearer, reason, spawn_app};

#[tokio::test]
async fn a_registered_user_can_log_in_and_see_themselves() {
    let app = spawn_app().await;
    let user = app.register("Ada@Example.com").await;
    assert_eq!(user.email, "ada@example.com");
    assert!(user.is_active);

    let session = app.login("ada@example.com", PASSWORD).await.expect("login");
    assert_eq!(session.token_type, "Bearer");
    assert_eq!(session.expires_in, 900);

    let me = app
        .client
        .clone()
        .get_me(bearer(&session.access_token, pb::GetMeRequest {}))
        .await
        .expect("me")
        .into_inner();
    assert_eq!(me.id, user.id);
    assert_eq!(me.role(), pb::Role::User);
}

#[tokio::test]
async fn a_deactivated_account_is_refused_at_login_as_inactive() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let token = app.token("ada@example.com", PASSWORD).await;

    let user = app
        .client
        .clone()
        .deactivate_user(bearer(
            &token,
            pb::DeactivateUserRequest {
                comment: "too expensive".into(),
                ..Default::default()
            },
        ))
        .await
        .expect("deactivate")
        .into_inner();
    assert!(!user.is_active);
    assert_eq!(user.deactivation_reason(), pb::DeactivationReason::Self_);
    assert_eq!(user.last_cancellation_reason, "too expensive");

    let refused = app.login("ada@example.com", PASSWORD).await.unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("ACCOUNT_INACTIVE"));
    assert_eq!(
        refused.message(),
        "Your account is inactive. Would you like to reactivate it?"
    );
}

#[tokio::test]
async fn a_token_issued_before_deactivation_is_refused_after_it() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let token = app.token("ada@example.com", PASSWORD).await;
    let mut client = app.client.clone();
    client
        .get_me(bearer(&token, pb::GetMeRequest {}))
        .await
        .expect("valid before");

    client
        .deactivate_user(bearer(&token, pb::DeactivateUserRequest::default()))
        .await
        .expect("deactivate");

    let refused = client.get_me(bearer(&token, pb::GetMeRequest {})).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(reason(&refused).as_deref(), Some("SESSION_REVOKED"));
    // Nor can the old session deactivate again or do anything else.
    let refused = client
        .deactivate_user(bearer(&token, pb::DeactivateUserRequest::default()))
        .await
        .unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("SESSION_REVOKED"));
}

#[tokio::test]
async fn an_admin_reactivation_lets_the_user_log_in_again_and_is_audited() {
    let app = spawn_app().await;
    let user = app.register("ada@example.com").await;
    let token = app.token("ada@example.com", PASSWORD).await;
    let admin = app.admin_token().await;
    let mut client = app.client.clone();
    client
        .deactivate_user(bearer(
            &admin,
            pb::DeactivateUserRequest {
                user_id: user.id.clone(),
                reason: pb::DeactivationReason::Fraud.into(),
                comment: String::new(),
            },
        ))
        .await
        .expect("admin deactivates");

    let reactivated = client
        .admin_reactivate_user(bearer(
            &admin,
            pb::AdminReactivateUserRequest {
                user_id: user.id.clone(),
                note: "verified identity by phone".into(),
            },
        ))
        .await
        .expect("admin reactivates")
        .into_inner();
    assert!(reactivated.is_active);
    assert_eq!(reactivated.reactivation_count, 1);
    assert!(reactivated.reactivated_at.is_some());

    app.login("ada@example.com", PASSWORD).await.expect("login works again");
    // The session from before the deactivation stays dead.
    let refused = client.get_me(bearer(&token, pb::GetMeRequest {})).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("SESSION_REVOKED"));

    let events = client
        .list_account_events(bearer(
            &admin,
            pb::ListAccountEventsRequest {
                user_id: user.id.clone(),
            },
        ))
        .await
        .expect("events")
        .into_inner()
        .events;
    let kinds: Vec<&str> = events.iter().map(|event| event.event_type.as_str()).collect();
    assert_eq!(kinds, ["registered", "deactivated", "reactivated"]);
    for event in &events {
        assert_eq!(
            event.trace_id.len(),
            32,
            "event {} has trace id {:?}",
            event.event_type,
            event.trace_id
        );
        assert_ne!(event.trace_id, "0".repeat(32));
    }
    assert_ne!(events[1].trace_id, events[2].trace_id, "each request is its own trace");
    let reactivation: serde_json::Value = serde_json::from_str(&events[2].data_json).unwrap();
    assert_eq!(reactivation["via"], "admin");
    assert_eq!(reactivation["previous_reason"], "fraud");
    assert_ne!(events[2].actor_id, user.id, "the admin is recorded as the actor");
}

#[tokio::test]
async fn only_admins_reactivate_deactivate_others_or_give_other_reasons() {
    let app = spawn_app().await;
    let ada = app.register("ada@example.com").await;
    app.register("bob@example.com").await;
    let bob = app.token("bob@example.com", PASSWORD).await;
    let mut client = app.client.clone();

    let refused = client
        .admin_reactivate_user(bearer(
            &bob,
            pb::AdminReactivateUserRequest {
                user_id: ada.id.clone(),
                note: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("ADMIN_REQUIRED"));

    let refused = client
        .deactivate_user(bearer(
            &bob,
            pb::DeactivateUserRequest {
                user_id: ada.id.clone(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("NOT_YOUR_ACCOUNT"));

    let refused = client
        .deactivate_user(bearer(
            &bob,
            pb::DeactivateUserRequest {
                reason: pb::DeactivationReason::Fraud.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let refused = client
        .get_me(tonic::Request::new(pb::GetMeRequest {}))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(reason(&refused).as_deref(), Some("TOKEN_INVALID"));
}

#[tokio::test]
async fn wrong_state_transitions_are_refused() {
    let app = spawn_app().await;
    let ada = app.register("ada@example.com").await;
    let admin = app.admin_token().await;
    let mut client = app.client.clone();
    let refused = client
        .admin_reactivate_user(bearer(
            &admin,
            pb::AdminReactivateUserRequest {
                user_id: ada.id.clone(),
                note: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(reason(&refused).as_deref(), Some("ACCOUNT_ALREADY_ACTIVE"));

    let deactivate = pb::DeactivateUserRequest {
        user_id: ada.id.clone(),
        ..Default::default()
    };
    client
        .deactivate_user(bearer(&admin, deactivate.clone()))
        .await
        .expect("first");
    let refused = client.deactivate_user(bearer(&admin, deactivate)).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("ACCOUNT_ALREADY_INACTIVE"));
}

#[tokio::test]
async fn a_taken_email_is_already_exists_whatever_its_case() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let refused = app
        .client
        .clone()
        .register(pb::RegisterRequest {
            email: "ADA@example.com".into(),
            password: PASSWORD.into(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::AlreadyExists);
    assert_eq!(reason(&refused).as_deref(), Some("EMAIL_TAKEN"));
}

#[tokio::test]
async fn a_malformed_email_or_weak_password_names_the_field() {
    let app = spawn_app().await;
    let mut client = app.client.clone();
    for (email, password, field) in [
        ("not-an-email", PASSWORD, "email"),
        ("ada@example.com", "short", "password"),
    ] {
        let refused = client
            .register(pb::RegisterRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(reason(&refused).as_deref(), Some("INVALID_FIELD"));
        let info = tonic_types::StatusExt::get_details_error_info(&refused).unwrap();
        assert_eq!(info.metadata["field"], field);
        assert!(
            refused.message().contains(field),
            "{} does not name {field}",
            refused.message()
        );
    }
}

#[tokio::test]
async fn unknown_email_and_wrong_password_get_the_identical_answer() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let wrong_password = app.login("ada@example.com", "not the password").await.unwrap_err();
    let unknown_email = app.login("nobody@example.com", PASSWORD).await.unwrap_err();
    assert_eq!(wrong_password.code(), Code::Unauthenticated);
    assert_eq!(wrong_password.code(), unknown_email.code());
    assert_eq!(wrong_password.message(), unknown_email.message());
    assert_eq!(wrong_password.details(), unknown_email.details());
}

#[tokio::test]
async fn unknown_email_costs_the_same_argon2_work_as_a_wrong_password() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    // Warm up connections so neither side pays for them.
    let _ = app.login("ada@example.com", "not the password").await;
    let _ = app.login("nobody@example.com", PASSWORD).await;
    let mut known = Vec::new();
    let mut unknown = Vec::new();
    for _ in 0..5 {
        let started = std::time::Instant::now();
        let _ = app.login("ada@example.com", "not the password").await;
        known.push(started.elapsed());
        let started = std::time::Instant::now();
        let _ = app.login("nobody@example.com", PASSWORD).await;
        unknown.push(started.elapsed());
    }
    known.sort();
    unknown.sort();
    let (known, unknown) = (known[2].as_secs_f64(), unknown[2].as_secs_f64());
    // Without the decoy hash an unknown email answers in well under a
    // millisecond, against ≈20 ms of argon2 for a known one.
    assert!(
        unknown > known * 0.5 && unknown < known * 2.0,
        "median known {known:.4}s vs unknown {unknown:.4}s"
    );
}
