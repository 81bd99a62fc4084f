//! Messages reach the mail server once, and what they said does not outlive
//! their delivery.

use std::{collections::HashSet, time::Duration};

use notify_svc::config::Transport;
use proto::notify::v1 as pb;

use crate::helpers::{Instance, LINK, TempDir, reactivation_link, spawn_app, spawn_app_with};

#[tokio::test]
async fn an_enqueued_message_arrives_over_smtp_with_the_rendered_link_and_is_sent_after_one_attempt() {
    let app = spawn_app().await;

    let enqueued = app
        .enqueue(reactivation_link("ada@example.com", "reactivation:ada:1"))
        .await
        .expect("enqueue");
    assert!(!enqueued.duplicate);

    let mail = app.smtp.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(mail[0].from, "no-reply@reactivation.test");
    assert_eq!(mail[0].to, ["ada@example.com"]);
    assert_eq!(
        mail[0].header("Subject").as_deref(),
        Some("Reactivate your Reactivation account")
    );
    assert_eq!(
        mail[0].header("From").as_deref(),
        Some("Reactivation <no-reply@reactivation.test>")
    );
    let message_id = mail[0].header("Message-ID").expect("a Message-ID");
    assert!(message_id.contains(&enqueued.message_id), "{message_id}");
    let text = mail[0].text_body().expect("a plain-text part");
    assert!(text.contains(LINK), "{text}");
    assert!(text.contains("expires in 24 hours"));
    let html = mail[0].html_body().expect("an HTML part");
    assert!(html.contains("Reactivate my account"), "{html}");

    let message = app.wait_until_sent(&enqueued.message_id).await;
    assert_eq!(message.attempts, 1);
    assert_eq!(message.last_error, "");
    assert_eq!(message.template(), pb::Template::ReactivationLink);
    assert_eq!(message.recipient, "ada@example.com");
    assert_eq!(message.idempotency_key, "reactivation:ada:1");
    assert!(message.sent_at.is_some() && message.created_at.is_some());
    assert_eq!(message.next_attempt_at, None);
}

#[tokio::test]
async fn the_same_idempotency_key_twice_sends_one_email_and_answers_duplicate_with_the_same_id() {
    let app = spawn_app().await;
    let request = reactivation_link("ada@example.com", "reactivation:ada:7");

    let first = app.enqueue(request.clone()).await.expect("first enqueue");
    let second = app.enqueue(request).await.expect("second enqueue");

    assert!(!first.duplicate);
    assert!(second.duplicate);
    assert_eq!(first.message_id, second.message_id);
    app.wait_until_sent(&first.message_id).await;
    // A second message, had one been stored, has had its send too.
    app.wait_until_nothing_pending().await;
    assert_eq!(app.smtp.messages().len(), 1);
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(stored, 1);
}

#[tokio::test]
async fn concurrent_enqueues_with_one_key_store_one_message() {
    let app = spawn_app().await;
    let mut calls = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let mut client = app.client();
        let request = app.internal(reactivation_link("ada@example.com", "reactivation:ada:race"));
        calls.spawn(async move { client.enqueue(request).await.expect("enqueue").into_inner() });
    }
    let answers = calls.join_all().await;

    let ids: HashSet<&str> = answers.iter().map(|answer| answer.message_id.as_str()).collect();
    assert_eq!(ids.len(), 1, "{answers:?}");
    assert_eq!(answers.iter().filter(|answer| !answer.duplicate).count(), 1);
    app.wait_until_sent(&answers[0].message_id).await;
    app.wait_until_nothing_pending().await;
    assert_eq!(app.smtp.messages().len(), 1);
}

#[tokio::test]
async fn two_instances_on_one_database_deliver_thirty_messages_exactly_once_each() {
    let app = spawn_app().await;
    let replica = Instance::start(app.config.clone()).await;

    let mut ids = Vec::new();
    for index in 0..30 {
        let request = app.internal(reactivation_link(
            &format!("user{index}@example.com"),
            &format!("bulk:{index}"),
        ));
        // Alternate the instances, so both workers are woken and compete.
        let mut client = if index % 2 == 0 {
            app.client()
        } else {
            replica.client.clone()
        };
        let answer = client.enqueue(request).await.expect("enqueue").into_inner();
        ids.push(answer.message_id);
    }

    app.smtp.wait_for(30, Duration::from_secs(20)).await;
    // Both workers keep polling until nothing is pending: a message sent
    // twice would have shown up by then.
    app.wait_until_nothing_pending().await;
    let mail = app.smtp.messages();
    assert_eq!(mail.len(), 30, "each message arrives exactly once");
    let recipients: HashSet<&str> = mail.iter().map(|mail| mail.to[0].as_str()).collect();
    assert_eq!(recipients.len(), 30);
    for id in &ids {
        let message = app.wait_until_sent(id).await;
        assert_eq!(message.attempts, 1, "{message:?}");
    }
    replica.stop().await;
}

#[tokio::test]
async fn the_development_mailbox_gets_one_eml_file_per_message() {
    let mailbox = TempDir::new();
    let directory = mailbox.0.clone();
    let app = spawn_app_with(|config| config.transport = Transport::Mailbox(directory)).await;

    let mut ids = Vec::new();
    for (index, recipient) in ["ada@example.com", "bob@example.com", "eve@example.com"]
        .iter()
        .enumerate()
    {
        let enqueued = app
            .enqueue(reactivation_link(recipient, &format!("mailbox:{index}")))
            .await
            .expect("enqueue");
        ids.push(enqueued.message_id);
    }
    for id in &ids {
        let message = app.wait_until_sent(id).await;
        assert_eq!(message.attempts, 1);
    }

    let files: Vec<String> = std::fs::read_dir(&mailbox.0)
        .expect("the mailbox directory exists")
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|extension| extension == "eml"))
        .map(|path| std::fs::read_to_string(path).unwrap())
        .collect();
    assert_eq!(files.len(), 3);
    for recipient in ["ada@example.com", "bob@example.com", "eve@example.com"] {
        let file = files
            .iter()
            .find(|file| file.contains(&format!("To: {recipient}")))
            .unwrap_or_else(|| panic!("no file for {recipient}"));
        assert!(file.contains(LINK));
    }
    assert!(app.smtp.messages().is_empty(), "nothing went over SMTP");
}

#[tokio::test]
async fn after_sending_the_stored_bodies_and_variables_are_gone() {
    let app = spawn_app().await;
    // Hold the message back first, to see what is stored before delivery.
    app.smtp.refuse(true);
    let enqueued = app
        .enqueue(reactivation_link("ada@example.com", "reactivation:ada:erase"))
        .await
        .unwrap();
    let id: uuid::Uuid = enqueued.message_id.parse().unwrap();
    let stored = stored_content(&app.pool, id).await;
    assert!(stored.text_body.unwrap().contains(LINK));
    assert!(stored.html_body.is_some());
    assert_eq!(stored.variables.unwrap()["link"], LINK);

    app.smtp.refuse(false);
    app.wait_until_sent(&enqueued.message_id).await;

    let stored = stored_content(&app.pool, id).await;
    assert_eq!(stored.text_body, None);
    assert_eq!(stored.html_body, None);
    assert_eq!(stored.variables, None);
    // The metadata stays, for support and audit.
    assert_eq!(stored.subject, "Reactivate your Reactivation account");
    assert_eq!(stored.recipient, "ada@example.com");
    assert_eq!(stored.template, "reactivation_link");
}

#[derive(sqlx::FromRow)]
pub struct StoredContent {
    pub subject: String,
    pub recipient: String,
    pub template: String,
    pub text_body: Option<String>,
    pub html_body: Option<String>,
    pub variables: Option<serde_json::Value>,
}

pub async fn stored_content(pool: &sqlx::PgPool, id: uuid::Uuid) -> StoredContent {
    sqlx::query_as("SELECT subject, recipient, template, text_body, html_body, variables FROM messages WHERE id = $1")
        .bind(id)
        .fetch_one(pool)
        .await
        .expect("the message row")
}
