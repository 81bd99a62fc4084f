//! A mail server that refuses: retries with exponential backoff, a final
//! failure after the last attempt, and exactly one delivery once it accepts.

use std::time::Duration;

use proto::notify::v1 as pb;

use crate::{
    delivery::stored_content,
    helpers::{reactivation_link, spawn_app_with},
};

#[tokio::test]
async fn a_refusing_server_is_retried_with_backoff_then_the_message_fails_after_the_last_attempt() {
    let app = spawn_app_with(|config| {
        config.max_attempts = 4;
        config.backoff_base = Duration::from_millis(200);
        config.backoff_max = Duration::from_secs(10);
    })
    .await;
    app.smtp.refuse(true);
    // Every change of the message's delivery state, as the worker records it.
    sqlx::raw_sql(
        "CREATE TABLE attempt_log (attempts integer, updated_at timestamptz, next_attempt_at timestamptz); \
         CREATE FUNCTION log_attempt() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN \
           INSERT INTO attempt_log VALUES (NEW.attempts, NEW.updated_at, NEW.next_attempt_at); RETURN NEW; \
         END $$; \
         CREATE TRIGGER log_attempt AFTER UPDATE ON messages FOR EACH ROW EXECUTE FUNCTION log_attempt();",
    )
    .execute(&app.pool)
    .await
    .unwrap();

    let enqueued = app
        .enqueue(reactivation_link("ada@example.com", "reactivation:ada:refused"))
        .await
        .expect("enqueue");
    let id: uuid::Uuid = enqueued.message_id.parse().unwrap();

    // While it is retried, GetMessage shows it pending with its last error.
    let pending = app
        .wait_for_message(&enqueued.message_id, Duration::from_secs(10), |message| {
            message.attempts >= 1
        })
        .await;
    assert_eq!(pending.state(), pb::MessageState::Pending);
    assert!(pending.last_error.contains("451"), "{}", pending.last_error);
    let next = pending.next_attempt_at.expect("a next attempt is scheduled");
    let created = pending.created_at.expect("a creation time");
    assert!((next.seconds, next.nanos) > (created.seconds, created.nanos));

    let failed = app
        .wait_for_message(&enqueued.message_id, Duration::from_secs(15), |message| {
            message.state() != pb::MessageState::Pending
        })
        .await;

    // Each recorded attempt: when it was made and the wait it scheduled.
    let attempts: Vec<(i32, f64, Option<f64>)> = sqlx::query_as(
        "SELECT attempts, (EXTRACT(EPOCH FROM updated_at) * 1000)::float8, \
         (EXTRACT(EPOCH FROM (next_attempt_at - updated_at)) * 1000)::float8 \
         FROM attempt_log ORDER BY attempts",
    )
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let numbers: Vec<i32> = attempts.iter().map(|(number, _, _)| *number).collect();
    assert_eq!(numbers, [1, 2, 3, 4]);
    // base × 2^(attempts − 1), less up to 10 % jitter; the last attempt
    // schedules nothing.
    for ((number, _, wait), nominal) in attempts.iter().zip([200.0, 400.0, 800.0]) {
        let wait = wait.unwrap_or_else(|| panic!("attempt {number} scheduled no retry"));
        assert!(
            wait <= nominal && wait >= nominal * 0.9 - 1.0,
            "after attempt {number}: waits {wait} ms, expected about {nominal} ms"
        );
    }
    assert_eq!(attempts[3].2, None);
    // And no attempt came before its time.
    for pair in attempts.windows(2) {
        let ((number, made_at, wait), (_, next_made_at, _)) = (pair[0], pair[1]);
        let wait = wait.unwrap_or_default();
        assert!(
            next_made_at - made_at >= wait - 1.0,
            "attempt {} came {} ms after attempt {number}, which scheduled {wait} ms",
            number + 1,
            next_made_at - made_at
        );
    }

    assert_eq!(failed.state(), pb::MessageState::Failed);
    assert_eq!(failed.attempts, 4);
    assert!(failed.last_error.contains("451"), "{}", failed.last_error);
    assert_eq!(failed.next_attempt_at, None);
    assert_eq!(failed.sent_at, None);
    assert!(app.smtp.messages().is_empty());
    // A message given up is erased like a sent one.
    let stored = stored_content(&app.pool, id).await;
    assert_eq!(
        (stored.text_body, stored.html_body, stored.variables),
        (None, None, None)
    );
}

#[tokio::test]
async fn a_server_refusing_then_accepting_again_receives_the_message_exactly_once() {
    let app = spawn_app_with(|config| config.max_attempts = 50).await;
    app.smtp.refuse(true);
    let enqueued = app
        .enqueue(reactivation_link("ada@example.com", "reactivation:ada:outage"))
        .await
        .expect("enqueue");
    app.wait_for_message(&enqueued.message_id, Duration::from_secs(10), |message| {
        message.attempts >= 2
    })
    .await;

    app.smtp.refuse(false);
    let sent = app.wait_until_sent(&enqueued.message_id).await;

    assert!(sent.attempts >= 3, "{sent:?}");
    let mail = app.smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mail[0].to, ["ada@example.com"]);
    // Once nothing is pending, no retry can repeat this one.
    app.wait_until_nothing_pending().await;
    assert_eq!(app.smtp.messages().len(), 1);
}

#[tokio::test]
async fn an_erasures_confirmation_keeps_no_address_not_even_in_its_last_error() {
    // The retry waits long enough for the test to play the echoing server.
    let app = spawn_app_with(|config| config.backoff_base = Duration::from_secs(2)).await;
    app.smtp.refuse(true);
    let recipient = "erased@example.com";
    let enqueued = app
        .enqueue(pb::EnqueueRequest {
            template: pb::Template::AccountErased.into(),
            recipient: recipient.into(),
            variables: Default::default(),
            idempotency_key: "account-erased:echo".into(),
        })
        .await
        .expect("enqueue");
    app.wait_for_message(&enqueued.message_id, Duration::from_secs(10), |message| {
        message.attempts >= 1
    })
    .await;
    // A mail server that names the mailbox in its refusal, as many do.
    let id: uuid::Uuid = enqueued.message_id.parse().unwrap();
    sqlx::query("UPDATE messages SET last_error = $2 WHERE id = $1")
        .bind(id)
        .bind(format!("451 4.2.0 <{recipient}>: mailbox busy"))
        .execute(&app.pool)
        .await
        .unwrap();
    app.smtp.refuse(false);
    let sent = app
        .wait_for_message(&enqueued.message_id, Duration::from_secs(15), |message| {
            message.state() == pb::MessageState::Sent
        })
        .await;
    assert!(!sent.last_error.contains(recipient), "{}", sent.last_error);
    assert!(
        sent.last_error.contains("mailbox busy"),
        "the gist is kept: {}",
        sent.last_error
    );
    assert_eq!(
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM messages WHERE recipient = $1")
            .bind(recipient)
            .fetch_one(&app.pool)
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn the_queue_depth_rises_while_the_mail_server_refuses_and_falls_once_it_accepts() {
    let app = spawn_app_with(|config| {
        config.backoff_base = Duration::from_millis(100);
        config.backoff_max = Duration::from_millis(300);
        config.poll_interval = Duration::from_millis(50);
    })
    .await;
    let metrics = platform::metrics::metrics();
    let retried = || {
        metrics
            .notify_deliveries
            .get_or_create(&platform::metrics::OutcomeLabels { outcome: "retry" })
            .get()
    };
    app.smtp.refuse(true);
    for n in 0..3 {
        app.enqueue(reactivation_link(
            "ada@example.com",
            &format!("reactivation:ada:depth:{n}"),
        ))
        .await
        .expect("enqueue");
    }
    platform::testing::eventually("three messages wait and attempts are retried", || async {
        metrics.notify_queue_depth.get() == 3 && retried() >= 3
    })
    .await;
    let rendered = platform::metrics::render();
    assert!(rendered.contains("notify_queue_depth 3"), "{rendered}");

    app.smtp.refuse(false);
    platform::testing::eventually("the queue drains", || async { metrics.notify_queue_depth.get() == 0 }).await;
    let sent = metrics
        .notify_deliveries
        .get_or_create(&platform::metrics::OutcomeLabels { outcome: "sent" })
        .get();
    assert_eq!(sent, 3);
}
