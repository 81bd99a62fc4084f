//! Retention with the clock moved forward: reminders before the purge, each
//! sent once, the purge itself, and a reactivation that cancels it — with
//! two replicas running the job at the same moments.

use chrono::{Duration, TimeZone as _, Utc};
use identity_svc::{Application, accounts::Accounts, config::RetentionConfig, retention::RetentionPass};
use platform::clock::Clock;
use proto::identity::v1 as pb;
use tonic::Code;

use crate::helpers::{PASSWORD, TestApp, bearer, spawn_app_at, test_config};

/// A second identity-svc on the same database and Redis, for its job only.
async fn second_replica(app: &TestApp, clock: &Clock) -> Accounts {
    let config = test_config(&app.database, &app.keys);
    Application::build_with_clock(config, clock.clone())
        .await
        .expect("a second replica builds")
        .domain()
}

/// Both replicas run one pass at the same moment; what they did together.
async fn both_run(first: &Accounts, second: &Accounts) -> RetentionPass {
    let retention = RetentionConfig::default();
    let (a, b) = tokio::join!(
        first.run_retention_once(&retention),
        second.run_retention_once(&retention)
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    RetentionPass {
        reminded: a.reminded + b.reminded,
        purged: a.purged + b.purged,
    }
}

/// Retention reminders owed to `email`, as (days left) in the order owed.
async fn reminders(app: &TestApp, email: &str) -> Vec<String> {
    let pool = platform::db::connect(&app.database.url, 1).await.unwrap();
    sqlx::query_scalar(
        "SELECT payload->'variables'->>'days_left' FROM outbox WHERE topic = 'notify.enqueue' \
         AND payload->>'template' = 'TEMPLATE_RETENTION_REMINDER' AND payload->>'recipient' = $1 \
         ORDER BY created_at, id",
    )
    .bind(email)
    .fetch_all(&pool)
    .await
    .unwrap()
}

#[tokio::test]
async fn reminders_go_out_once_each_and_the_account_is_erased_at_the_end() {
    let clock = Clock::manual(Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap());
    let app = spawn_app_at(clock.clone(), |_| {}).await;
    let second = second_replica(&app, &clock).await;
    let leaving = "leaving@example.com";
    let returning = "returning@example.com";
    for email in [leaving, returning] {
        app.register(email).await;
        app.deactivate(email, pb::DeactivationReason::Self_).await;
    }
    let nothing = RetentionPass::default();

    clock.advance(Duration::days(149));
    assert_eq!(both_run(&app.accounts, &second).await, nothing);
    clock.advance(Duration::days(1)); // T-30
    assert_eq!(both_run(&app.accounts, &second).await.reminded, 2, "one reminder each");
    assert_eq!(both_run(&app.accounts, &second).await, nothing);
    assert_eq!(reminders(&app, leaving).await, ["30"]);

    // One of them comes back at T-10: no more reminders, no purge.
    clock.advance(Duration::days(20));
    let admin = app.admin_token().await;
    let inactive = app.login(returning, PASSWORD).await.unwrap_err();
    assert_eq!(inactive.code(), Code::FailedPrecondition);
    let id = sqlx::query_scalar::<_, uuid::Uuid>("SELECT id FROM users WHERE email = $1")
        .bind(returning)
        .fetch_one(&platform::db::connect(&app.database.url, 1).await.unwrap())
        .await
        .unwrap();
    app.client
        .clone()
        .admin_reactivate_user(bearer(
            &admin,
            pb::AdminReactivateUserRequest {
                user_id: id.to_string(),
                note: "came back".into(),
            },
        ))
        .await
        .unwrap();

    clock.advance(Duration::days(3)); // T-7
    assert_eq!(
        both_run(&app.accounts, &second).await,
        RetentionPass { reminded: 1, purged: 0 }
    );
    assert_eq!(reminders(&app, leaving).await, ["30", "7"]);
    assert_eq!(reminders(&app, returning).await, ["30"]);

    clock.advance(Duration::days(7)); // T
    assert_eq!(
        both_run(&app.accounts, &second).await,
        RetentionPass { reminded: 0, purged: 1 }
    );
    assert_eq!(both_run(&app.accounts, &second).await, nothing);
    assert_eq!(
        app.login(leaving, PASSWORD).await.unwrap_err().code(),
        Code::Unauthenticated
    );
    assert!(
        app.login(returning, PASSWORD).await.is_ok(),
        "the returning customer is kept"
    );
    let pool = platform::db::connect(&app.database.url, 1).await.unwrap();
    let erased: Vec<String> =
        sqlx::query_scalar("SELECT data->>'cause' FROM account_events WHERE event_type = 'erased'")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(erased, ["retention"]);
}
