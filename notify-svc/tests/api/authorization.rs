//! Only services of the mesh and admins may send or read messages.

use platform::auth::Role;
use proto::notify::v1 as pb;
use tonic::{Code, Request};

use crate::helpers::{reactivation_link, reason, spawn_app};

fn bearer<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

#[tokio::test]
async fn a_call_without_a_token_is_unauthenticated() {
    let app = spawn_app().await;
    let mut client = app.client();

    let refused = client
        .enqueue(Request::new(reactivation_link("ada@example.com", "k")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(reason(&refused).as_deref(), Some("TOKEN_INVALID"));

    let refused = client
        .get_message(Request::new(pb::GetMessageRequest {
            message_id: uuid::Uuid::new_v4().to_string(),
        }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn a_wrong_internal_token_is_unauthenticated() {
    let app = spawn_app().await;
    let mut request = Request::new(reactivation_link("ada@example.com", "k"));
    platform::auth::InternalToken::generate().attach(&mut request);

    let refused = app.client().enqueue(request).await.unwrap_err();

    assert_eq!(refused.code(), Code::Unauthenticated);
    assert!(app.smtp.messages().is_empty());
}

#[tokio::test]
async fn a_user_who_is_not_an_admin_is_permission_denied() {
    let app = spawn_app().await;
    let token = app.token(vec![Role::User]);
    let mut client = app.client();

    let refused = client
        .enqueue(bearer(&token, reactivation_link("ada@example.com", "k")))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("ADMIN_REQUIRED"));

    let enqueued = app.enqueue(reactivation_link("ada@example.com", "k")).await.unwrap();
    let refused = client
        .get_message(bearer(
            &token,
            pb::GetMessageRequest {
                message_id: enqueued.message_id,
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn services_with_the_internal_token_and_admins_are_served() {
    let app = spawn_app().await;
    let enqueued = app
        .enqueue(reactivation_link("ada@example.com", "from-a-service"))
        .await
        .expect("a service may enqueue");

    let admin = app.token(vec![Role::User, Role::Admin]);
    let mut client = app.client();
    let message = client
        .get_message(bearer(
            &admin,
            pb::GetMessageRequest {
                message_id: enqueued.message_id.clone(),
            },
        ))
        .await
        .expect("an admin may read a message")
        .into_inner();
    assert_eq!(message.id, enqueued.message_id);
    client
        .enqueue(bearer(&admin, reactivation_link("bob@example.com", "from-an-admin")))
        .await
        .expect("an admin may enqueue");
}

#[tokio::test]
async fn only_identity_svc_may_erase_a_recipient_not_even_an_admin() {
    let app = spawn_app().await;
    let token = app.token(vec![Role::Admin]);
    let refused = app
        .client()
        .erase_recipient(bearer(
            &token,
            pb::EraseRecipientRequest {
                recipient: "ada@example.com".into(),
                keep_idempotency_key: String::new(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
}
