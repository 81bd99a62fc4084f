//! The admin console in a real browser, against the whole mesh: keys run
//! through their lifecycle, a customer found by email, the funnel after a
//! real journey, and a customer kept out of every page and action — with a
//! screenshot of each page.

use chrono::{Duration, Utc};
use platform::clock::Clock;
use reqwest::StatusCode;
use serde_json::json;

use crate::{
    browser::Browser,
    helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, PASSWORD, TestMesh, spawn_mesh_at, spawn_mesh_with},
};

async fn log_in(browser: &Browser, email: &str, password: &str) {
    browser.open("/login").await;
    browser.fill("Email", email).await;
    browser.fill("Password", password).await;
    browser.click_and_wait("Log in").await;
}

async fn admin_browser(mesh: &TestMesh) -> Browser {
    let browser = Browser::start(&mesh.base).await;
    log_in(&browser, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    assert_eq!(browser.path().await, "/admin/keys", "an admin lands in the console");
    browser
}

/// The buttons of the key's row, in order.
async fn row_buttons(browser: &Browser, key: &str) -> Vec<String> {
    browser
        .texts_of_all(&format!("tr[data-key='{key}'] .row-actions .button"))
        .await
}

async fn row_cell(browser: &Browser, key: &str, cell: &str) -> String {
    browser.text_of(&format!("tr[data-key='{key}'] {cell}")).await
}

fn day(at: chrono::DateTime<Utc>) -> String {
    at.format("%b %-d, %Y").to_string()
}

#[tokio::test]
async fn an_admin_runs_a_trial_key_through_its_lifecycle_in_the_console() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let browser = admin_browser(&mesh).await;
    browser.wait_for_text("No key matches these filters.").await;

    browser.click("New trial key").await;
    browser.fill("Customer email", "console-trial@example.com").await;
    browser.fill("Company", "Acme").await;
    browser.click_and_wait("Create key").await;
    browser.wait_for_text("Trial key SK-").await;
    let notice = browser.text_of("#notice").await;
    let key = notice
        .split_whitespace()
        .find(|word| word.starts_with("SK-"))
        .expect("the notice names the key")
        .to_owned();
    assert_eq!(row_cell(&browser, &key, ".badge").await, "Active");
    assert_eq!(
        row_buttons(&browser, &key).await,
        ["Edit", "+Days", "Close", "Email", "Disable"]
    );
    browser.screenshot("admin-keys").await;

    browser.click_in(&format!("tr[data-key='{key}']"), "Disable").await;
    browser.wait_for_text(&format!("Key {key} disabled.")).await;
    assert_eq!(row_cell(&browser, &key, ".badge").await, "Disabled");
    assert_eq!(row_buttons(&browser, &key).await, ["Edit", "Reactivate"]);

    browser.click_in(&format!("tr[data-key='{key}']"), "Reactivate").await;
    browser.wait_for_text(&format!("Key {key} reactivated")).await;
    assert_eq!(row_cell(&browser, &key, ".badge").await, "Active");
    let in_a_week = day(mesh.clock.now() + Duration::days(7));
    assert_eq!(row_cell(&browser, &key, ".expires").await, in_a_week);

    // The API agrees with the page.
    assert_eq!(mesh.key(&key).await["status"], "ACTIVE");

    browser.click_in(&format!("tr[data-key='{key}']"), "Close").await;
    browser.wait_for_text("Deal closed").await;
    assert_eq!(row_cell(&browser, &key, ".expires").await, "Never (Subscribed)");
    assert!(row_cell(&browser, &key, "td:nth-child(3)").await.contains("Production"));
    assert_eq!(row_buttons(&browser, &key).await, ["Edit", "+Days", "Email", "Disable"]);

    // The key's page: its fields and its whole history.
    browser.open(&format!("/admin/keys/{key}")).await;
    browser.wait_for_text("History").await;
    let history = browser.text_of("#history + .table-scroll").await.to_lowercase();
    for action in ["created", "disabled", "reactivated", "deal closed"] {
        assert!(history.contains(action), "{action} in {history}");
    }
    assert!(history.contains("new_expiry"), "details are shown: {history}");
    browser.wait_for_text("Acme").await;
    browser.screenshot("admin-key").await;

    // The status filter: no disabled key now.
    browser.open("/admin/keys?status=disabled").await;
    browser.wait_for_text("No key matches these filters.").await;
    browser.close().await;
}

#[tokio::test]
async fn a_refused_key_action_says_why_on_the_page() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let customer = mesh.customer_with_trial_key("refused-action@example.com").await;
    let browser = admin_browser(&mesh).await;
    browser.open(&format!("/admin/keys/{}", customer.key)).await;
    // Another admin disables the key meanwhile; this page still offers Disable.
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let disabled = mesh
        .post(&format!("/api/keys/{}/disable", customer.key), Some(&admin), json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    browser.click_in(".card-head", "Disable").await;
    let notice = browser.text_of("#notice.error").await;
    assert!(
        notice.to_lowercase().contains("disabled"),
        "the refusal says why: {notice}"
    );
    browser.close().await;
}

#[tokio::test]
async fn an_admin_finds_a_customer_by_email_and_sees_keys_subscription_and_timeline() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "findable.customer@example.com";
    let customer = mesh.customer_with_trial_key(email).await;
    mesh.subscribe(&customer.token, "builder", "monthly").await;
    mesh.register("findable.other@example.com").await;

    let browser = admin_browser(&mesh).await;
    browser.click_and_wait("Customers").await;
    browser.fill("Email", "FINDABLE.").await;
    browser.tick("Starts with").await;
    browser.click_and_wait("Find").await;
    browser.wait_for_text(email).await;
    browser.wait_for_text("findable.other@example.com").await;
    browser.screenshot("admin-users").await;

    browser.click_and_wait(email).await;
    assert_eq!(browser.path().await, "/admin/users/findable.customer%40example.com");
    browser.wait_for_text("Timeline").await;
    let keys = browser.texts_of_all(".key-card code.key").await;
    assert_eq!(keys, std::slice::from_ref(&customer.key));
    assert!(browser.text_of("#subscription + dl").await.contains("Builder, monthly"));
    let timeline = browser.text_of("table.timeline").await.to_lowercase();
    for (service, event) in [("identity", "registered"), ("license", "created")] {
        assert!(
            timeline.contains(service) && timeline.contains(event),
            "{service} {event} in {timeline}"
        );
    }
    let traces = browser.texts_of_all("table.timeline code.trace").await;
    assert!(
        traces.iter().any(|trace| trace.len() == 32),
        "events carry their trace ids: {traces:?}"
    );
    browser.screenshot("admin-user").await;

    // Disable the key from its card, then reactivate it: the page shows each.
    browser.click_in(".key-card", "Disable Key").await;
    browser.wait_for_text(&format!("Key {} disabled.", customer.key)).await;
    assert_eq!(browser.text_of(".key-card .badge").await, "Disabled");
    browser.click_in(".key-card", "Reactivate Key").await;
    browser.wait_for_text("reactivated").await;
    assert_eq!(browser.text_of(".key-card .badge").await, "Active");

    // An unknown address is a plain "not found" page.
    browser.open("/admin/users/nobody%40example.com").await;
    browser.wait_for_text("No account has this email address.").await;
    browser.close().await;
}

#[tokio::test]
async fn the_metrics_page_shows_the_funnel_of_one_whole_journey() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "funnel-journey@example.com";
    // A customer whose plan ended after they closed the account …
    mesh.register(email).await;
    let token = mesh.token(email, PASSWORD).await;
    mesh.subscribe(&token, "builder", "monthly").await;
    let closed = mesh.post("/api/cancel-account", Some(&token), json!({})).await;
    assert_eq!(closed.status(), StatusCode::OK);
    mesh.clock.advance(Duration::days(32));
    // … asks for a link, opens it, confirms, and pays again.
    let requested = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    let link = mesh.wait_for_link(1).await;
    let customer_browser = Browser::start(&mesh.base).await;
    customer_browser.open(&link).await;
    customer_browser.click_and_wait("Reactivate my account").await;
    customer_browser.close().await;
    let token = mesh.token(email, PASSWORD).await;
    mesh.subscribe(&token, "builder", "annual").await;

    let browser = admin_browser(&mesh).await;
    browser.click_and_wait("Metrics").await;
    browser.wait_for_text("Reactivation funnel").await;
    for step in ["Requested", "Email sent", "Link opened", "Confirmed", "Paid"] {
        let count = browser.text_of(&format!("td[data-step='{step}']")).await;
        assert_eq!(count, "1", "{step}");
    }
    browser.wait_for_text("100.0%").await;
    // Week by week, each step counted once, in the week it happened.
    for (column, step) in [(2, "requested"), (4, "link opened"), (5, "confirmed"), (6, "paid")] {
        let counts = browser
            .texts_of_all(&format!("table.weeks tbody td:nth-child({column})"))
            .await;
        let total: u64 = counts.iter().map(|count| count.parse::<u64>().unwrap()).sum();
        assert_eq!(total, 1, "{step} per week: {counts:?}\n{}", browser.text().await);
    }
    browser.screenshot("admin-metrics").await;

    browser.click_and_wait("Webhooks").await;
    browser.wait_for_text("No failing webhooks.").await;
    browser.close().await;
}

/// Every page of the console, as a customer might type it.
const CONSOLE_PAGES: &[&str] = &[
    "/admin",
    "/admin/keys",
    "/admin/keys?email=victim%40example.com",
    "/admin/users?email=victim%40example.com",
    "/admin/users/victim%40example.com",
    "/admin/metrics",
    "/admin/webhooks",
];

#[tokio::test]
async fn a_customer_gets_no_admin_data_and_no_admin_action() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let victim = mesh.customer_with_trial_key("victim@example.com").await;
    let intruder = mesh.customer_with_trial_key("intruder@example.com").await;

    let browser = Browser::start(&mesh.base).await;
    log_in(&browser, "intruder@example.com", PASSWORD).await;
    let key_path = format!("/admin/keys/{}", victim.key);
    for page in CONSOLE_PAGES.iter().copied().chain([key_path.as_str()]) {
        browser.open(page).await;
        browser.wait_for_text("For administrators only").await;
        let text = browser.text().await;
        assert!(
            !text.contains("victim@") && !text.contains(&victim.key) && !text.contains("License keys"),
            "{page} showed admin data:\n{text}"
        );
    }
    browser.screenshot("admin-refused").await;
    browser.close().await;

    // Every action, posted with the customer's own valid cookies and CSRF value.
    let cookies = format!("access={}; csrf=c", intruder.token);
    let key = &victim.key;
    let actions = [
        "/admin/keys".to_owned(),
        format!("/admin/keys/{key}/edit"),
        format!("/admin/keys/{key}/disable"),
        format!("/admin/keys/{key}/reactivate"),
        format!("/admin/keys/{key}/extend"),
        format!("/admin/keys/{key}/close"),
        format!("/admin/keys/{key}/email"),
        "/admin/users/victim%40example.com/account/deactivate".to_owned(),
        "/admin/users/victim%40example.com/account/reactivate".to_owned(),
        "/admin/users/victim%40example.com/account/erase".to_owned(),
        "/admin/webhooks/replay".to_owned(),
    ];
    let before = mesh.key(key).await;
    for action in &actions {
        let response = mesh
            .http
            .post(mesh.url(action))
            .header("cookie", &cookies)
            .form(&[
                ("csrf", "c"),
                ("email", "intruder@example.com"),
                ("days", "30"),
                ("confirmation", "DELETE"),
                ("back", "/admin/keys"),
            ])
            .send()
            .await
            .unwrap();
        let status = response.status();
        let body = response.text().await.unwrap();
        assert_eq!(status, StatusCode::FORBIDDEN, "{action}: {body}");
        assert!(body.contains("For administrators only"), "{action}: {body}");
    }
    assert_eq!(mesh.key(key).await, before, "the victim's key is unchanged");
    let victim_login = mesh.login("victim@example.com", PASSWORD).await;
    assert_eq!(
        victim_login.status(),
        StatusCode::OK,
        "the victim's account is untouched"
    );
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let keys = mesh.get("/api/keys?email=intruder%40example.com", Some(&admin)).await;
    let keys: serde_json::Value = keys.json().await.unwrap();
    assert_eq!(keys["data"].as_array().unwrap().len(), 1, "no key was created");
}

#[tokio::test]
async fn an_admin_deactivates_reactivates_and_erases_an_account_from_its_page() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let email = "managed@example.com";
    mesh.register(email).await;
    let browser = admin_browser(&mesh).await;
    browser.open("/admin/users/managed%40example.com").await;
    browser.wait_for_text("Manage the account").await;

    browser.fill("Comment", "Chargeback opened").await;
    browser.click_and_wait("Deactivate account").await;
    browser
        .wait_for_text("The account is deactivated (closed by support).")
        .await;
    browser.wait_for_text("Closed by support").await;
    assert_eq!(browser.text_of(".page-head .badge").await, "Inactive");
    let login = mesh.login(email, PASSWORD).await;
    assert_eq!(
        login.status(),
        StatusCode::FORBIDDEN,
        "an inactive account cannot log in"
    );

    browser.fill("Note", "Chargeback withdrawn").await;
    browser.click_and_wait("Reactivate account").await;
    browser.wait_for_text("The account is active again.").await;
    assert_eq!(browser.text_of(".page-head .badge").await, "Active");
    assert_eq!(mesh.login(email, PASSWORD).await.status(), StatusCode::OK);
    let timeline = browser.text_of("table.timeline").await.to_lowercase();
    assert!(
        timeline.contains("deactivated") && timeline.contains("reactivated"),
        "{timeline}"
    );

    // Erasure needs the word typed; then the account is gone everywhere.
    browser.fill("Type DELETE to confirm", "DELETE").await;
    browser.click_and_wait("Erase account").await;
    assert_eq!(browser.path().await, "/admin/users");
    browser
        .wait_for_text("The account and its data are erased in every service.")
        .await;
    assert_eq!(mesh.login(email, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    browser.open("/admin/users/managed%40example.com").await;
    browser.wait_for_text("No account has this email address.").await;
    browser.close().await;
}

#[tokio::test]
async fn a_failed_stripe_webhook_is_listed_with_its_error_and_replayed_from_the_console() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let email = "webhook-failure@example.com";
    mesh.register(email).await;
    let token = mesh.token(email, PASSWORD).await;
    let response = mesh
        .post(
            "/api/create-checkout-session",
            Some(&token),
            json!({ "plan": "grower", "billing_period": "monthly" }),
        )
        .await;
    let session: serde_json::Value = response.json().await.unwrap();
    // Stripe cannot be reached while billing applies the first event.
    mesh.stripe.fail_next("GET", "/v1/subscriptions/", 500);
    let refused = mesh
        .stripe
        .complete_checkout(session["session_id"].as_str().unwrap())
        .await;
    assert!(
        refused.is_err(),
        "the endpoint refused an event, so Stripe would retry it"
    );

    let browser = admin_browser(&mesh).await;
    browser.click_and_wait("Webhooks").await;
    browser.wait_for_text("retrieve subscription").await;
    assert_eq!(browser.texts_of_all("#failing + .table-scroll tbody tr").await.len(), 1);
    browser.screenshot("admin-webhooks").await;

    browser.click_in("#failing + .table-scroll tbody tr", "Replay").await;
    browser.wait_for_text("Replayed 1: every event applied.").await;
    browser.wait_for_text("No failing webhooks.").await;
    browser.wait_for_text("Resolved").await;
    let subscription: serde_json::Value = mesh.get("/api/subscription", Some(&token)).await.json().await.unwrap();
    assert_eq!(subscription["subscription_status"], "active", "{subscription}");
    browser.close().await;
}
