//! Listing keys: filters and stable pages.

use chrono::Duration;
use proto::license::v1 as pb;
use tonic::Code;

use crate::helpers::{bearer, spawn_app};

#[tokio::test]
async fn keys_are_listed_in_stable_pages_with_filters() {
    let app = spawn_app().await;
    let mut created = Vec::new();
    for index in 0..5 {
        let email = if index % 2 == 0 {
            "ada@example.com"
        } else {
            "grace@example.com"
        };
        created.push(app.create(email, pb::KeyType::Production).await.unwrap().key);
        app.clock.advance(Duration::seconds(1));
    }
    let expired = app.trial("linus@example.com").await.key;
    app.clock.advance(Duration::days(15));
    app.disable(&created[0]).await.unwrap();

    let list = |request: pb::ListKeysRequest| {
        let mut client = app.client.clone();
        let token = app.admin.clone();
        async move { client.list_keys(bearer(&token, request)).await.map(|r| r.into_inner()) }
    };

    let mut seen = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(pb::ListKeysRequest {
            page_size: 2,
            page_token: token.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
        assert!(page.keys.len() <= 2);
        seen.extend(page.keys.into_iter().map(|key| key.key));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let mut expected = created.clone();
    expected.push(expired.clone());
    assert_eq!(seen, expected, "every key once, oldest first");

    let ada = list(pb::ListKeysRequest {
        email: "Ada@Example.com".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(ada.keys.len(), 3);
    let disabled = list(pb::ListKeysRequest {
        status: pb::KeyStatus::Disabled.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(
        disabled.keys.iter().map(|key| key.key.clone()).collect::<Vec<_>>(),
        [created[0].clone()]
    );
    let expired_keys = list(pb::ListKeysRequest {
        status: pb::KeyStatus::Expired.into(),
        key_type: pb::KeyType::Trial.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(expired_keys.keys.len(), 1);
    assert_eq!(expired_keys.keys[0].key, expired);
    let active = list(pb::ListKeysRequest {
        status: pb::KeyStatus::Active.into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(active.keys.len(), 4);

    let refused = list(pb::ListKeysRequest {
        page_token: "garbage".into(),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
}

#[tokio::test]
async fn a_customer_lists_only_their_own_keys_without_supports_notes() {
    let app = spawn_app().await;
    let owned = |owner: uuid::Uuid, email: &str| pb::CreateKeyRequest {
        email: email.into(),
        owner_user_id: owner.to_string(),
        key_type: pb::KeyType::Production.into(),
        customer: Some(pb::CustomerInfo {
            name: "Ada".into(),
            company: "Engines".into(),
            notes: "asked for a discount twice".into(),
        }),
        ..Default::default()
    };
    let mine = app
        .client
        .clone()
        .create_key(bearer(&app.admin, owned(app.admin_id, "ada@example.com")))
        .await
        .unwrap()
        .into_inner();
    app.client
        .clone()
        .create_key(bearer(&app.admin, owned(uuid::Uuid::new_v4(), "grace@example.com")))
        .await
        .unwrap();

    // The admin token's own account owns one key: only it comes back.
    let listed = app
        .client
        .clone()
        .list_my_keys(bearer(&app.admin, pb::ListMyKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.keys.len(), 1);
    assert_eq!(listed.keys[0].key, mine.key);
    assert_eq!(listed.keys[0].customer, None, "support's notes stay with support");

    // Another customer owns none of them; no token, no answer.
    let other = app
        .client
        .clone()
        .list_my_keys(bearer(&app.user, pb::ListMyKeysRequest {}))
        .await
        .unwrap()
        .into_inner();
    assert!(other.keys.is_empty());
    let anonymous = app
        .client
        .clone()
        .list_my_keys(tonic::Request::new(pb::ListMyKeysRequest {}))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated);
}
