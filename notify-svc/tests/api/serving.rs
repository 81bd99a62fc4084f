//! Starting, answering health checks, and stopping.

use std::time::Duration;

use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};

use crate::helpers::{reactivation_link, spawn_app};

#[tokio::test]
async fn the_binary_refuses_to_start_without_exactly_one_mail_transport() {
    for (smtp_host, mailbox_dir) in [(None, None), (Some("mail.example.com"), Some("/tmp/mailbox"))] {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_notify-svc"));
        command
            .env_remove("SMTP_HOST")
            .env_remove("MAILBOX_DIR")
            .env("RUST_LOG", "off");
        if let Some(host) = smtp_host {
            command.env("SMTP_HOST", host);
        }
        if let Some(directory) = mailbox_dir {
            command.env("MAILBOX_DIR", directory);
        }
        let output = command.output().expect("run notify-svc");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            !output.status.success(),
            "started with SMTP_HOST={smtp_host:?} MAILBOX_DIR={mailbox_dir:?}"
        );
        assert!(
            stderr.contains("SMTP_HOST") && stderr.contains("MAILBOX_DIR"),
            "unclear error: {stderr}"
        );
    }
}

#[tokio::test]
async fn health_reports_the_notify_service_serving() {
    let app = spawn_app().await;
    let address = app.instance.address;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let status = health
        .check(HealthCheckRequest {
            service: "reactivation.notify.v1.NotifyService".into(),
        })
        .await
        .expect("health check")
        .into_inner()
        .status();
    assert_eq!(status, ServingStatus::Serving);
}

#[tokio::test]
async fn after_shutdown_the_worker_sends_nothing_more() {
    let app = spawn_app().await;
    app.smtp.refuse(true);
    let enqueued = app
        .enqueue(reactivation_link("ada@example.com", "reactivation:ada:late"))
        .await
        .expect("enqueue");
    app.wait_for_message(&enqueued.message_id, Duration::from_secs(10), |message| {
        message.attempts >= 1
    })
    .await;

    app.instance.stop().await;
    app.smtp.refuse(false);
    // Proving that nothing is delivered after the stop: no outcome to poll
    // for, so many poll intervals and backoff waits, in which a worker left
    // running would deliver the retry.
    tokio::time::sleep(Duration::from_millis(600)).await;

    assert!(app.smtp.messages().is_empty());
    let state: String = sqlx::query_scalar("SELECT state FROM messages")
        .fetch_one(&app.pool)
        .await
        .unwrap();
    assert_eq!(state, "pending", "the message waits for the next start");
}
