//! What Enqueue and GetMessage refuse, and how.

use std::collections::HashMap;

use proto::notify::v1 as pb;
use tonic::Code;

use crate::helpers::{field, reactivation_link, reason, spawn_app};

#[tokio::test]
async fn a_missing_template_variable_is_refused_naming_it_and_nothing_is_stored() {
    let app = spawn_app().await;
    let mut request = reactivation_link("ada@example.com", "reactivation:ada:1");
    request.variables.remove("expires_in_hours");

    let refused = app.enqueue(request).await.unwrap_err();

    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(reason(&refused).as_deref(), Some("INVALID_FIELD"));
    assert_eq!(field(&refused), "variables.expires_in_hours");
    assert!(refused.message().contains("expires_in_hours"), "{}", refused.message());
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 0);
}

#[tokio::test]
async fn each_malformed_field_is_refused_by_name() {
    let app = spawn_app().await;
    let valid = reactivation_link("ada@example.com", "key-1");
    let cases = [
        (
            pb::EnqueueRequest {
                template: pb::Template::Unspecified.into(),
                ..valid.clone()
            },
            "template",
        ),
        (
            pb::EnqueueRequest {
                template: 99,
                ..valid.clone()
            },
            "template",
        ),
        (
            pb::EnqueueRequest {
                recipient: "not-an-email".into(),
                ..valid.clone()
            },
            "recipient",
        ),
        (
            pb::EnqueueRequest {
                recipient: String::new(),
                ..valid.clone()
            },
            "recipient",
        ),
        (
            pb::EnqueueRequest {
                idempotency_key: String::new(),
                ..valid.clone()
            },
            "idempotency_key",
        ),
        (
            pb::EnqueueRequest {
                idempotency_key: "k".repeat(201),
                ..valid.clone()
            },
            "idempotency_key",
        ),
        (
            pb::EnqueueRequest {
                variables: HashMap::from([
                    ("link".to_owned(), "javascript:alert(1)".to_owned()),
                    ("expires_in_hours".to_owned(), "24".to_owned()),
                ]),
                ..valid.clone()
            },
            "variables.link",
        ),
        (
            pb::EnqueueRequest {
                template: pb::Template::WelcomeBackOffer.into(),
                ..valid.clone()
            },
            "variables.monthly_offer",
        ),
    ];
    for (request, expected) in cases {
        let refused = app.enqueue(request.clone()).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument, "{request:?}");
        assert_eq!(reason(&refused).as_deref(), Some("INVALID_FIELD"));
        assert_eq!(field(&refused), expected, "{request:?}");
    }
    // The longest key allowed is accepted.
    let longest = pb::EnqueueRequest {
        idempotency_key: "k".repeat(200),
        ..valid
    };
    app.enqueue(longest).await.expect("a 200-character key");
}

#[tokio::test]
async fn a_template_without_variables_needs_none() {
    let app = spawn_app().await;
    let enqueued = app
        .enqueue(pb::EnqueueRequest {
            template: pb::Template::AccountReactivated.into(),
            recipient: "ada@example.com".into(),
            variables: HashMap::new(),
            idempotency_key: "reactivated:ada".into(),
        })
        .await
        .expect("enqueue");
    app.wait_until_sent(&enqueued.message_id).await;
    let mail = app.smtp.messages();
    assert_eq!(
        mail[0].header("Subject").as_deref(),
        Some("Your Reactivation account is active again")
    );
}

#[tokio::test]
async fn an_unknown_message_is_not_found_and_a_malformed_id_names_the_field() {
    let app = spawn_app().await;

    let refused = app.get_message(&uuid::Uuid::new_v4().to_string()).await.unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    assert_eq!(reason(&refused).as_deref(), Some("MESSAGE_NOT_FOUND"));

    let refused = app.get_message("not-a-uuid").await.unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(reason(&refused).as_deref(), Some("INVALID_FIELD"));
    assert_eq!(field(&refused), "message_id");
}
