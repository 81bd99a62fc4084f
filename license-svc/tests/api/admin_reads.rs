//! An admin's reads of a key's details (the key, its history) are recorded,
//! with the admin, the key's owner and the request's trace; services and
//! products read nothing that is recorded; erasing the customer forgets the
//! records of their keys.

use proto::license::v1 as pb;
use tonic::{Code, Request};
use uuid::Uuid;

use crate::helpers::{TestApp, bearer, spawn_app};

/// (actor, owner, what, trace id) of every recorded read of `key`.
async fn reads_of(app: &TestApp, key: &str) -> Vec<(Uuid, Option<Uuid>, String, Option<String>)> {
    sqlx::query_as("SELECT actor_id, owner_user_id, what, trace_id FROM admin_reads WHERE key = $1 ORDER BY id")
        .bind(key)
        .fetch_all(&app.pool)
        .await
        .unwrap()
}

async fn owned_key(app: &TestApp, email: &str, owner: Uuid) -> pb::LicenseKey {
    let request = pb::CreateKeyRequest {
        email: email.into(),
        owner_user_id: owner.to_string(),
        key_type: pb::KeyType::Production.into(),
        ..Default::default()
    };
    app.client
        .clone()
        .create_key(bearer(&app.admin, request))
        .await
        .expect("create key")
        .into_inner()
}

#[tokio::test]
async fn an_admin_reading_a_key_or_its_history_is_recorded() {
    let app = spawn_app().await;
    let owner = Uuid::new_v4();
    let key = owned_key(&app, "ada@example.com", owner).await;
    assert!(reads_of(&app, &key.key).await.is_empty(), "creating is not reading");

    app.get(&key.key).await.expect("admin reads the key");
    app.history(&key.key).await;

    let reads = reads_of(&app, &key.key).await;
    let kinds: Vec<(Uuid, Option<Uuid>, &str)> = reads
        .iter()
        .map(|(actor, owner, what, _)| (*actor, *owner, what.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            (app.admin_id, Some(owner), "key"),
            (app.admin_id, Some(owner), "key_history")
        ]
    );
    for (_, _, _, trace_id) in &reads {
        assert!(
            trace_id
                .as_ref()
                .is_some_and(|id| id.len() == 32 && id != &"0".repeat(32)),
            "the read carries the request's trace id: {trace_id:?}"
        );
    }
}

#[tokio::test]
async fn services_and_products_reading_a_key_record_nothing() {
    let app = spawn_app().await;
    let key = app.trial("ada@example.com").await;

    // Products validate keys; that is no admin's read.
    assert!(app.validate(&key.key).await.unwrap().valid);
    // A service's internal token is no admin: it reads no details at all.
    let mut request = Request::new(pb::GetKeyRequest { key: key.key.clone() });
    app.internal.attach(&mut request);
    let refused = app.client.clone().get_key(request).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    // Nor does a user's token.
    let refused = app
        .client
        .clone()
        .get_key(bearer(&app.user, pb::GetKeyRequest { key: key.key.clone() }))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    assert!(reads_of(&app, &key.key).await.is_empty());
}

#[tokio::test]
async fn erasing_a_customer_forgets_the_reads_of_their_keys() {
    let app = spawn_app().await;
    let ada = Uuid::new_v4();
    let owned = owned_key(&app, "ada@example.com", ada).await;
    // Issued to her email before her account was known.
    let by_email = app.trial("ada@example.com").await;
    let bob = owned_key(&app, "bob@example.com", Uuid::new_v4()).await;
    for key in [&owned, &by_email, &bob] {
        app.get(&key.key).await.expect("admin reads the key");
        app.history(&key.key).await;
    }

    let mut request = Request::new(pb::EraseCustomerRequest {
        user_id: ada.to_string(),
        email: "ada@example.com".into(),
    });
    app.internal.attach(&mut request);
    let erased = app
        .client
        .clone()
        .erase_customer(request)
        .await
        .expect("erase")
        .into_inner();
    assert_eq!(erased.keys_erased, 2);

    assert!(reads_of(&app, &owned.key).await.is_empty());
    assert!(reads_of(&app, &by_email.key).await.is_empty());
    let left: i64 = sqlx::query_scalar("SELECT count(*) FROM admin_reads WHERE owner_user_id = $1")
        .bind(ada)
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(left, 0, "no read of hers is left");
    assert_eq!(reads_of(&app, &bob.key).await.len(), 2, "another customer's reads stay");
}
