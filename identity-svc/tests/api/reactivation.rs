//! Self-service reactivation by one-time link, at the gRPC level. The links
//! are read from identity-svc's outbox: notify-svc is not running here.

use std::time::Duration;

use identity_svc::{Application, accounts::Accounts};
use platform::{
    auth::{Caller, Role},
    config::Secret,
    testing::{TestDatabase, TestKeySpace, redis_proxy::RedisProxy},
};
use proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{PASSWORD, reason, spawn_app, spawn_app_with, test_config};

#[tokio::test]
async fn a_self_deactivated_account_is_reactivated_by_its_link() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;

    app.request_reactivation("ada@example.com").await.expect("answered");
    let token = app.wait_for_token(1).await;
    assert_eq!(token.len(), 43, "256 bits, URL-safe base64");
    let user = app.confirm(&token).await.expect("confirmed");
    assert!(user.is_active);
    assert_eq!(user.reactivation_count, 1);
    app.login("ada@example.com", PASSWORD).await.expect("login works again");

    let used = app.confirm(&token).await.unwrap_err();
    assert_eq!(used.code(), Code::FailedPrecondition);
    assert_eq!(reason(&used).as_deref(), Some("REACTIVATION_LINK_INVALID"));
    assert_eq!(
        used.message(),
        "This link is invalid or has expired. Please request a new reactivation link."
    );
}

#[tokio::test]
async fn redis_holds_no_raw_token() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Nonpayment)
        .await;
    app.request_reactivation("ada@example.com").await.unwrap();
    let token = app.wait_for_token(1).await;

    let entries = app.keys.entries().await;
    assert!(
        entries.iter().any(|(key, _)| key.contains(":reactivation:token:")),
        "{entries:?}"
    );
    for (key, value) in &entries {
        assert!(
            !key.contains(&token) && !value.contains(&token),
            "raw token stored at {key}"
        );
        assert!(
            !key.contains("ada@example.com") && !value.contains("ada@example.com"),
            "email stored at {key}"
        );
    }
}

#[tokio::test]
async fn a_new_request_supersedes_the_previous_link() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;
    app.request_reactivation("ada@example.com").await.unwrap();
    let first = app.wait_for_token(1).await;
    app.request_reactivation("ada@example.com").await.unwrap();
    let second = app.wait_for_token(2).await;

    let superseded = app.confirm(&first).await.unwrap_err();
    assert_eq!(reason(&superseded).as_deref(), Some("REACTIVATION_LINK_INVALID"));
    app.confirm(&second).await.expect("the newest link works");
}

#[tokio::test]
async fn an_expired_link_is_refused() {
    let app = spawn_app_with(|config| config.reactivation.token_ttl = Duration::from_secs(1)).await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;
    app.request_reactivation("ada@example.com").await.unwrap();
    let token = app.wait_for_token(1).await;
    platform::testing::eventually("Redis expired the token", || async {
        !app.keys
            .entries()
            .await
            .iter()
            .any(|(key, _)| key.contains("reactivation:token:"))
    })
    .await;
    let expired = app.confirm(&token).await.unwrap_err();
    assert_eq!(reason(&expired).as_deref(), Some("REACTIVATION_LINK_INVALID"));
}

#[tokio::test]
async fn a_link_issued_before_the_account_changed_is_void() {
    let app = spawn_app().await;
    let ada = app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;
    app.request_reactivation("ada@example.com").await.unwrap();
    let token = app.wait_for_token(1).await;

    // Support reactivates and the customer leaves again: the state moved on.
    let admin = app.admin_token().await;
    let mut client = app.client.clone();
    client
        .admin_reactivate_user(crate::helpers::bearer(
            &admin,
            pb::AdminReactivateUserRequest {
                user_id: ada.id.clone(),
                note: String::new(),
            },
        ))
        .await
        .unwrap();
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;

    let stale = app.confirm(&token).await.unwrap_err();
    assert_eq!(reason(&stale).as_deref(), Some("REACTIVATION_LINK_INVALID"));
}

#[tokio::test]
async fn unknown_active_and_fraud_accounts_get_the_same_answer_and_no_link() {
    let app = spawn_app().await;
    app.register("active@example.com").await;
    app.register("fraud@example.com").await;
    app.deactivate("fraud@example.com", pb::DeactivationReason::Fraud).await;

    for email in ["nobody@example.com", "active@example.com", "fraud@example.com"] {
        app.request_reactivation(email).await.expect("the same empty answer");
    }
    // The control case gets its link, so the others had time to get theirs.
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;
    app.request_reactivation("ada@example.com").await.unwrap();
    app.wait_for_token(1).await;
    app.wait_until_requests_answered().await;
    assert_eq!(
        app.outbox_links().await.len(),
        1,
        "only the eligible account got a link"
    );
}

#[tokio::test]
async fn asking_too_often_is_refused_with_a_retry_time() {
    let app = spawn_app_with(|config| config.reactivation.cooldown = Duration::from_secs(60)).await;
    app.request_reactivation("nobody@example.com").await.unwrap();
    let limited = app.request_reactivation("nobody@example.com").await.unwrap_err();
    assert_eq!(limited.code(), Code::ResourceExhausted);
    assert_eq!(reason(&limited).as_deref(), Some("RATE_LIMITED"));
    let info = tonic_types::StatusExt::get_details_error_info(&limited).unwrap();
    let retry_after: u64 = info.metadata["retry_after_secs"].parse().unwrap();
    assert!((55..=60).contains(&retry_after), "retry after {retry_after}");
}

#[tokio::test]
async fn confirming_a_malformed_or_unknown_token_is_the_same_refusal() {
    let app = spawn_app().await;
    for token in ["", "short", &"A".repeat(43), "../../etc/passwd"] {
        let refused = app.confirm(token).await.unwrap_err();
        assert_eq!(
            reason(&refused).as_deref(),
            Some("REACTIVATION_LINK_INVALID"),
            "token {token:?}"
        );
    }
}

/// An identity-svc built on `database` and `keys` and Redis but never run: no
/// relay delivers what it records.
async fn stopped_replica(database: &TestDatabase, keys: &TestKeySpace) -> Accounts {
    Application::build(test_config(database, keys))
        .await
        .expect("a replica builds")
        .domain()
}

/// Reactivation requests recorded and not answered yet.
async fn pending_requests(database: &TestDatabase) -> Vec<Option<String>> {
    let pool = platform::db::connect(&database.url, 1).await.unwrap();
    let pending = sqlx::query_scalar(
        "SELECT payload->>'recipient' FROM outbox \
         WHERE topic = 'identity.reactivation_request' AND delivered_at IS NULL",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    pending
}

#[tokio::test]
async fn a_request_accepted_by_a_replica_that_stopped_still_gets_its_link() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;

    let stopped = stopped_replica(&app.database, &app.keys).await;
    stopped
        .request_reactivation("ada@example.com", "203.0.113.7")
        .await
        .expect("accepted");

    let token = app.wait_for_token(1).await;
    app.confirm(&token).await.expect("the link works");
    assert!(pending_requests(&app.database).await.is_empty());
}

#[tokio::test]
async fn an_erasure_forgets_a_reactivation_request_not_yet_answered() {
    platform::testing::spans();
    let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let accounts = stopped_replica(&database, &keys).await;
    let ada = accounts
        .register("ada@example.com", PASSWORD.into())
        .await
        .expect("registered");
    accounts
        .request_reactivation("Ada@Example.com", "203.0.113.7")
        .await
        .expect("accepted");
    assert_eq!(pending_requests(&database).await, [Some("ada@example.com".to_owned())]);

    let caller = Caller {
        user_id: ada.id,
        roles: vec![Role::User],
        token: Secret::from(String::new()),
    };
    accounts.erase(&caller, None).await.expect("erased");
    assert!(
        pending_requests(&database).await.is_empty(),
        "the erased person's request is gone"
    );
}

#[tokio::test]
async fn a_link_opened_and_confirmed_just_after_the_redis_connection_dropped_works() {
    let proxy = RedisProxy::start().await;
    let app = spawn_app_with(|config| config.service.redis_url = proxy.url()).await;
    app.register("ada@example.com").await;
    app.deactivate("ada@example.com", pb::DeactivationReason::Self_).await;
    app.request_reactivation("ada@example.com").await.unwrap();
    let token = app.wait_for_token(1).await;

    proxy.cut();
    app.client
        .clone()
        .record_link_opened(pb::RecordLinkOpenedRequest { token: token.clone() })
        .await
        .expect("the opening is recorded on a fresh connection");
    proxy.cut();
    let user = app
        .confirm(&token)
        .await
        .expect("the link is consumed on a fresh connection");
    assert!(user.is_active);
}
