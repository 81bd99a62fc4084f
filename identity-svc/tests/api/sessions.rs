//! Session floors: what keeps ended sessions ended when Redis loses data
//! or a change of state fails to commit.

use proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{PASSWORD, bearer, reason, spawn_app};

/// Deletes every key of the test's key space, as a Redis restarted without
/// persistence (or a failover that lost writes) would.
async fn lose_redis_data(app: &crate::helpers::TestApp) {
    let kv = app.keys.connect().await;
    let mut connection = kv.connection();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.keys.prefix))
        .query_async(&mut connection)
        .await
        .unwrap();
    assert!(!keys.is_empty(), "a login leaves its session floor in Redis");
    let _: i64 = redis::cmd("DEL").arg(&keys).query_async(&mut connection).await.unwrap();
}

#[tokio::test]
async fn a_token_of_a_deactivated_account_stays_refused_after_redis_loses_its_floor() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let token = app.token("ada@example.com", PASSWORD).await;
    let mut client = app.client.clone();
    client
        .deactivate_user(bearer(&token, pb::DeactivateUserRequest::default()))
        .await
        .expect("deactivate");

    lose_redis_data(&app).await;

    let refused = client.get_me(bearer(&token, pb::GetMeRequest {})).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unauthenticated);
    assert_eq!(reason(&refused).as_deref(), Some("SESSION_REVOKED"));
}

#[tokio::test]
async fn a_session_whose_floor_was_lost_ends_and_the_next_login_rebuilds_it() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let token = app.token("ada@example.com", PASSWORD).await;

    lose_redis_data(&app).await;

    let mut client = app.client.clone();
    let refused = client.get_me(bearer(&token, pb::GetMeRequest {})).await.unwrap_err();
    assert_eq!(reason(&refused).as_deref(), Some("SESSION_REVOKED"));
    assert_eq!(refused.message(), "This session has ended. Please log in again.");

    let fresh = app.token("ada@example.com", PASSWORD).await;
    client
        .get_me(bearer(&fresh, pb::GetMeRequest {}))
        .await
        .expect("a new login works at once");
}

#[tokio::test]
async fn a_deactivation_that_fails_to_commit_leaves_new_logins_working() {
    let app = spawn_app().await;
    app.register("ada@example.com").await;
    let token = app.token("ada@example.com", PASSWORD).await;
    // Make every commit that wrote an audit event fail, after the floor was
    // raised: a deferred constraint trigger runs at COMMIT.
    let pool = platform::db::connect(&app.database.url, 1).await.unwrap();
    sqlx::raw_sql(
        "CREATE FUNCTION refuse_commit() RETURNS trigger LANGUAGE plpgsql AS \
           $$ BEGIN RAISE EXCEPTION 'commit refused'; END $$; \
         CREATE CONSTRAINT TRIGGER refuse_commit AFTER INSERT ON account_events \
           DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_commit();",
    )
    .execute(&pool)
    .await
    .unwrap();
    let mut client = app.client.clone();
    client
        .deactivate_user(bearer(&token, pb::DeactivateUserRequest::default()))
        .await
        .expect_err("the commit fails");
    sqlx::raw_sql("DROP TRIGGER refuse_commit ON account_events")
        .execute(&pool)
        .await
        .unwrap();

    let fresh = app.token("ada@example.com", PASSWORD).await;
    let me = client
        .get_me(bearer(&fresh, pb::GetMeRequest {}))
        .await
        .expect("a login after the failed commit works")
        .into_inner();
    assert!(me.is_active, "nothing was deactivated");
}
