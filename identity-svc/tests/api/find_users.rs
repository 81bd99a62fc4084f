//! Support staff find accounts by email, a page at a time; every account
//! they are shown, and every audit trail they open, is recorded as read by
//! them until the account is erased.

use proto::identity::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestApp, bearer, reason, spawn_app};

fn search(email: &str, prefix: bool) -> pb::FindUsersRequest {
    pb::FindUsersRequest {
        email: email.into(),
        prefix,
        page_size: 0,
        page_token: String::new(),
    }
}

async fn find(
    app: &TestApp,
    token: &str,
    request: pb::FindUsersRequest,
) -> Result<pb::FindUsersResponse, tonic::Status> {
    app.client
        .clone()
        .find_users(bearer(token, request))
        .await
        .map(tonic::Response::into_inner)
}

fn emails(found: &pb::FindUsersResponse) -> Vec<&str> {
    found.users.iter().map(|user| user.email.as_str()).collect()
}

/// The admin's token and account id.
async fn admin(app: &TestApp) -> (String, String) {
    let login = app.login(ADMIN_EMAIL, ADMIN_PASSWORD).await.expect("admin logs in");
    (login.access_token, login.user.expect("user").id)
}

/// (actor, what, trace id) of every recorded admin read of `user_id`'s data.
async fn reads_of(app: &TestApp, user_id: &str) -> Vec<(Uuid, String, Option<String>)> {
    let pool = platform::db::connect(&app.database.url, 1).await.unwrap();
    let reads =
        sqlx::query_as("SELECT actor_id, what, trace_id FROM admin_reads WHERE user_id = $1 ORDER BY read_at, id")
            .bind(Uuid::parse_str(user_id).unwrap())
            .fetch_all(&pool)
            .await
            .unwrap();
    pool.close().await;
    reads
}

#[tokio::test]
async fn an_admin_finds_an_account_by_its_exact_email_whatever_its_case() {
    let app = spawn_app().await;
    let ada = app.register("ada@example.com").await;
    app.register("adam@example.com").await;
    let (token, _) = admin(&app).await;

    let found = find(&app, &token, search("  ADA@Example.com ", false)).await.unwrap();
    assert_eq!(emails(&found), ["ada@example.com"]);
    assert_eq!(found.users[0].id, ada.id);
    assert!(found.next_page_token.is_empty());

    let found = find(&app, &token, search("ada@example.co", false)).await.unwrap();
    assert!(found.users.is_empty(), "exact means the whole address");
}

#[tokio::test]
async fn a_prefix_search_finds_every_account_starting_with_it_and_takes_wildcards_literally() {
    let app = spawn_app().await;
    for email in [
        "adam@example.com",
        "ada@example.com",
        "bob@example.com",
        "a%b@example.com",
        "axb@example.com",
        "a_c@example.com",
        "abc@example.com",
    ] {
        app.register(email).await;
    }
    let (token, _) = admin(&app).await;

    let found = find(&app, &token, search("ADA", true)).await.unwrap();
    assert_eq!(
        emails(&found),
        ["ada@example.com", "adam@example.com"],
        "in email order"
    );
    let found = find(&app, &token, search("a%", true)).await.unwrap();
    assert_eq!(emails(&found), ["a%b@example.com"]);
    let found = find(&app, &token, search("a_", true)).await.unwrap();
    assert_eq!(emails(&found), ["a_c@example.com"]);
    let found = find(&app, &token, search("zed", true)).await.unwrap();
    assert!(found.users.is_empty());
}

#[tokio::test]
async fn paging_two_at_a_time_returns_every_match_exactly_once() {
    let app = spawn_app().await;
    let mut expected = Vec::new();
    for n in [3, 1, 5, 2, 4] {
        let email = format!("page{n}@example.com");
        app.register(&email).await;
        expected.push(email);
    }
    app.register("other@example.com").await;
    expected.sort();
    let (token, _) = admin(&app).await;

    let mut seen = Vec::new();
    let mut pages = 0;
    let mut page_token = String::new();
    loop {
        let request = pb::FindUsersRequest {
            page_size: 2,
            page_token: page_token.clone(),
            ..search("page", true)
        };
        let page = find(&app, &token, request).await.unwrap();
        pages += 1;
        assert!(page.users.len() <= 2);
        seen.extend(page.users.into_iter().map(|user| user.email));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
        assert!(pages < 10, "paging does not end");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 3);
}

#[tokio::test]
async fn only_admins_find_users() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    app.register("bob@example.com").await;
    let bob = app.token("bob@example.com", PASSWORD).await;

    let refused = find(&app, &bob, search("ada@example.com", false)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    assert_eq!(reason(&refused).as_deref(), Some("ADMIN_REQUIRED"));

    let refused = app
        .client
        .clone()
        .find_users(search("ada@example.com", false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
}

#[tokio::test]
async fn an_empty_or_overlong_email_or_a_forged_page_token_names_the_field() {
    let app = spawn_app().await;
    let (token, _) = admin(&app).await;
    let forged = pb::FindUsersRequest {
        page_token: "not a token!".into(),
        ..search("ada", true)
    };
    for (request, field) in [
        (search("   ", true), "email"),
        (search(&"a".repeat(255), true), "email"),
        (forged, "page_token"),
    ] {
        let refused = find(&app, &token, request).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert_eq!(reason(&refused).as_deref(), Some("INVALID_FIELD"));
        let info = tonic_types::StatusExt::get_details_error_info(&refused).unwrap();
        assert_eq!(info.metadata["field"], field);
    }
}

#[tokio::test]
async fn every_account_found_is_recorded_as_read_by_the_admin() {
    let app = spawn_app().await;
    let ada = app.register("ada@example.com").await;
    let adam = app.register("adam@example.com").await;
    let bob = app.register("bob@example.com").await;
    let (token, admin_id) = admin(&app).await;
    let admin_id = Uuid::parse_str(&admin_id).unwrap();

    let found = find(&app, &token, search("ada", true)).await.unwrap();
    assert_eq!(found.users.len(), 2);

    for user in [&ada, &adam] {
        let reads = reads_of(&app, &user.id).await;
        assert_eq!(reads.len(), 1, "{} is read once", user.email);
        let (actor, what, trace_id) = &reads[0];
        assert_eq!(*actor, admin_id);
        assert_eq!(what, "account");
        assert!(
            trace_id
                .as_ref()
                .is_some_and(|id| id.len() == 32 && id != &"0".repeat(32)),
            "the read carries the request's trace id: {trace_id:?}"
        );
    }
    assert!(
        reads_of(&app, &bob.id).await.is_empty(),
        "an account not shown is not read"
    );
}

#[tokio::test]
async fn opening_a_timeline_is_recorded_and_erasure_forgets_every_read() {
    let app = spawn_app().await;
    let ada = app.register("ada@example.com").await;
    let bob = app.register("bob@example.com").await;
    let (token, admin_id) = admin(&app).await;
    let admin_id = Uuid::parse_str(&admin_id).unwrap();

    let events = app
        .client
        .clone()
        .list_account_events(bearer(
            &token,
            pb::ListAccountEventsRequest {
                user_id: ada.id.clone(),
            },
        ))
        .await
        .expect("admin reads the timeline")
        .into_inner()
        .events;
    assert!(!events.is_empty());
    find(&app, &token, search("ada@example.com", false)).await.unwrap();
    find(&app, &token, search("bob@example.com", false)).await.unwrap();
    let reads = reads_of(&app, &ada.id).await;
    let kinds: Vec<(Uuid, &str)> = reads.iter().map(|(actor, what, _)| (*actor, what.as_str())).collect();
    assert_eq!(kinds, [(admin_id, "timeline"), (admin_id, "account")]);

    app.client
        .clone()
        .delete_user(bearer(
            &token,
            pb::DeleteUserRequest {
                user_id: ada.id.clone(),
            },
        ))
        .await
        .expect("admin erases the account");

    assert!(
        reads_of(&app, &ada.id).await.is_empty(),
        "the erased account's reads are gone"
    );
    assert_eq!(reads_of(&app, &bob.id).await.len(), 1, "other accounts' reads stay");
    let found = find(&app, &token, search("ada@example.com", false)).await.unwrap();
    assert!(found.users.is_empty(), "an erased account is not found");
    // What remains of its trail holds no personal data: reading it leaves no row.
    app.client
        .clone()
        .list_account_events(bearer(
            &token,
            pb::ListAccountEventsRequest {
                user_id: ada.id.clone(),
            },
        ))
        .await
        .expect("the erasure record is readable");
    assert!(reads_of(&app, &ada.id).await.is_empty());
}
