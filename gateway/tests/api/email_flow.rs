//! The whole reactivation journey with real email: identity-svc owes the
//! email through its outbox, notify-svc sends it over SMTP to a mail server
//! running inside the test, and the person follows the link.

use std::time::Duration;

use platform::testing::smtp::ReceivedMail;
use reqwest::StatusCode;
use serde_json::json;

use crate::helpers::{
    PASSWORD, Service, TestMesh, eventually, problem, reactivation_link, spawn_mesh, spawn_mesh_without_notify,
};

const WAIT: Duration = Duration::from_secs(15);

/// Waits until nothing is owed any more: every request answered, every
/// email handed to notify-svc and sent. What has not arrived by then never
/// will.
async fn settled(mesh: &TestMesh) {
    eventually("identity-svc and notify-svc owe nothing", || async {
        let owed = "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND topic LIKE $1";
        mesh.count(Service::Identity, owed, "%").await == 0
            && mesh
                .count(
                    Service::Notify,
                    "SELECT count(*) FROM messages WHERE state = $1",
                    "pending",
                )
                .await
                == 0
    })
    .await;
}

fn link_in(mail: &ReceivedMail) -> String {
    reactivation_link(mail).expect("a reactivation link in the email")
}

async fn follow(mesh: &TestMesh, link: &str) -> String {
    let token = link.rsplit_once("token=").unwrap().1.to_owned();
    // The person opens the link: a page, and the token is still good.
    let page = mesh.get(&format!("/reactivate?token={token}"), None).await;
    assert_eq!(page.status(), StatusCode::OK);
    token
}

#[tokio::test]
async fn deactivate_refused_email_link_confirm_login() {
    let mesh = spawn_mesh().await;
    mesh.register_and_leave("ada@example.com").await;
    let refused = problem(mesh.login("ada@example.com", PASSWORD).await, StatusCode::FORBIDDEN).await;
    assert_eq!(refused["reason"], "ACCOUNT_INACTIVE");

    let response = mesh
        .post("/reactivate_user", None, json!({ "email": "ada@example.com" }))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let mail = mesh.smtp.wait_for(1, WAIT).await.remove(0);
    assert_eq!(mail.to, ["ada@example.com"]);
    let token = follow(&mesh, &link_in(&mail)).await;

    let confirmed = mesh.post("/reactivate_user", None, json!({ "token": token })).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
    assert_eq!(mesh.login("ada@example.com", PASSWORD).await.status(), StatusCode::OK);

    // And the "account reactivated" confirmation follows.
    let mails = mesh.smtp.wait_for(2, WAIT).await;
    assert_eq!(mails[1].to, ["ada@example.com"]);
    assert!(!mails[1].text_body().unwrap().contains("token="));
}

#[tokio::test]
async fn only_an_eligible_account_receives_an_email() {
    let mesh = spawn_mesh().await;
    mesh.register("active@example.com").await;
    mesh.register_and_leave("ada@example.com").await;
    for email in ["nobody@example.com", "active@example.com", "ada@example.com"] {
        let response = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    mesh.smtp.wait_for(1, WAIT).await;
    settled(&mesh).await;
    let mails = mesh.smtp.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(mails[0].to, ["ada@example.com"]);
}

#[tokio::test]
async fn an_email_owed_while_notify_is_down_arrives_once_it_is_back_exactly_once() {
    let mesh = spawn_mesh_without_notify().await;
    mesh.register_and_leave("ada@example.com").await;
    let response = mesh
        .post("/reactivate_user", None, json!({ "email": "ada@example.com" }))
        .await;
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // identity-svc keeps trying while notify-svc is down…
    eventually("identity-svc tried to reach notify-svc", || async {
        let tried = "SELECT count(*) FROM outbox WHERE topic = $1 AND delivered_at IS NULL AND attempts > 0";
        mesh.count(Service::Identity, tried, "notify.enqueue").await > 0
    })
    .await;
    assert!(mesh.smtp.messages().is_empty());
    mesh.start_notify().await;

    // …and once it is back the email arrives, once.
    let mail = mesh.smtp.wait_for(1, WAIT).await.remove(0);
    let token = follow(&mesh, &link_in(&mail)).await;
    settled(&mesh).await;
    assert_eq!(mesh.smtp.messages().len(), 1, "delivered exactly once");
    let confirmed = mesh.post("/reactivate_user", None, json!({ "token": token })).await;
    assert_eq!(confirmed.status(), StatusCode::OK);
}
