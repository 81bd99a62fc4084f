//! `SendCustomerEmail`: billing-svc emails customers it knows only by id;
//! identity-svc addresses the email and owes it to notify-svc.

use std::collections::HashMap;

use platform::auth::InternalToken;
use proto::identity::v1 as pb;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::{PASSWORD, TestApp, bearer, spawn_app_with};

/// An app that trusts `internal` as the mesh's internal token.
async fn app_trusting(internal: &InternalToken) -> TestApp {
    let secret = internal.secret().clone();
    spawn_app_with(move |config| config.service.internal_token = secret).await
}

fn confirmation(user_id: &str) -> pb::SendCustomerEmailRequest {
    pb::SendCustomerEmailRequest {
        user_id: user_id.into(),
        template: "TEMPLATE_SUBSCRIPTION_REACTIVATED".into(),
        variables: HashMap::from([
            ("plan".to_owned(), "Builder".to_owned()),
            ("next_billing_date".to_owned(), "February 19, 2026".to_owned()),
        ]),
        idempotency_key: format!("subscription-reactivated:{user_id}:1"),
    }
}

async fn send(app: &TestApp, internal: &InternalToken, message: pb::SendCustomerEmailRequest) -> bool {
    let mut request = Request::new(message);
    internal.attach(&mut request);
    app.client
        .clone()
        .send_customer_email(request)
        .await
        .expect("a service may send")
        .into_inner()
        .owed
}

/// The confirmations waiting in the outbox: (recipient, plan).
async fn confirmations(app: &TestApp) -> Vec<(String, String)> {
    let pool = platform::db::connect(&app.database.url, 1).await.unwrap();
    let owed = sqlx::query_as(
        "SELECT payload->>'recipient', payload->'variables'->>'plan' FROM outbox \
         WHERE topic = 'notify.enqueue' AND payload->>'template' = 'TEMPLATE_SUBSCRIPTION_REACTIVATED' \
         ORDER BY created_at, id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    pool.close().await;
    owed
}

#[tokio::test]
async fn a_customer_email_is_owed_to_their_address_once() {
    let internal = InternalToken::generate();
    let app = app_trusting(&internal).await;
    let user = app.register("paying@example.com").await;

    assert!(send(&app, &internal, confirmation(&user.id)).await);
    assert!(send(&app, &internal, confirmation(&user.id)).await, "a redelivery");
    assert_eq!(
        confirmations(&app).await,
        [("paying@example.com".to_owned(), "Builder".to_owned())]
    );
}

#[tokio::test]
async fn only_services_may_send_customer_emails() {
    let internal = InternalToken::generate();
    let app = app_trusting(&internal).await;
    let user = app.register("curious@example.com").await;
    let token = app.token("curious@example.com", PASSWORD).await;
    let refused = app
        .client
        .clone()
        .send_customer_email(bearer(&token, confirmation(&user.id)))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let mut unknown = confirmation(&user.id);
    unknown.template = "TEMPLATE_NO_SUCH_THING".into();
    let mut request = Request::new(unknown);
    internal.attach(&mut request);
    let refused = app.client.clone().send_customer_email(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(confirmations(&app).await.is_empty());
}

#[tokio::test]
async fn an_email_for_an_erased_customer_is_acknowledged_and_dropped() {
    let internal = InternalToken::generate();
    let app = app_trusting(&internal).await;
    let user = app.register("gone@example.com").await;
    let token = app.token("gone@example.com", PASSWORD).await;
    app.client
        .clone()
        .delete_user(bearer(&token, pb::DeleteUserRequest { user_id: String::new() }))
        .await
        .expect("erased");

    assert!(!send(&app, &internal, confirmation(&user.id)).await);
    assert!(!send(&app, &internal, confirmation(&Uuid::new_v4().to_string())).await);
    assert!(confirmations(&app).await.is_empty());
}
