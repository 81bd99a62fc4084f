//! The web app in a real browser, against the whole mesh: the customer's
//! journeys clicked through as a person would, with a screenshot of each
//! page on the way.

use chrono::Utc;
use platform::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::{
    browser::Browser,
    helpers::{PASSWORD, TestMesh, eventually, spawn_mesh_at, spawn_mesh_with},
};

async fn register_in_browser(browser: &Browser, email: &str) {
    browser.open("/register").await;
    browser.fill("Email", email).await;
    browser.fill("Password", PASSWORD).await;
    browser.click_and_wait("Create account").await;
}

async fn log_in(browser: &Browser, email: &str) {
    browser.open("/login").await;
    browser.fill("Email", email).await;
    browser.fill("Password", PASSWORD).await;
    browser.click_and_wait("Log in").await;
}

async fn subscription_of(mesh: &TestMesh, token: &str) -> Value {
    let response = mesh.get("/api/subscription", Some(token)).await;
    assert_eq!(response.status(), StatusCode::OK);
    response.json().await.unwrap()
}

#[tokio::test]
async fn a_customer_leaves_and_comes_back_by_email_in_a_browser() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let browser = Browser::start(&mesh.base).await;
    let email = "browser-journey@example.com";

    browser.open("/").await;
    browser.wait_for_text("Log in").await;
    browser.screenshot("login").await;
    browser.open("/register").await;
    browser.screenshot("register").await;
    register_in_browser(&browser, email).await;
    browser.wait_for_text(&format!("Signed in as {email}")).await;
    browser.screenshot("home").await;

    // Leave from the account page.
    browser.click_and_wait("Account").await;
    browser.wait_for_text(email).await;
    browser.wait_for_text("You have no license keys yet.").await;
    browser.screenshot("account").await;
    browser.fill("Why are you leaving? (optional)", "Taking a break").await;
    browser.tick("I understand").await;
    browser.click_and_wait("Deactivate account").await;
    browser.wait_for_text("Your account is deactivated").await;

    // Back: the right password shows the prompt.
    log_in(&browser, email).await;
    browser
        .wait_for_text("Your account is inactive. Would you like to reactivate it?")
        .await;
    browser.screenshot("login-inactive").await;
    browser.click_and_wait("Reactivate my account").await;
    browser.wait_for_text("Check your email").await;
    browser.screenshot("link-sent").await;

    // The email's link, opened in the same browser: confirm, and in.
    let link = mesh.wait_for_link(1).await;
    browser.open(&link).await;
    browser
        .wait_for_text("Press the button to reactivate your account.")
        .await;
    browser.screenshot("reactivate-link").await;
    browser.click_and_wait("Reactivate my account").await;
    assert_eq!(browser.path().await, "/welcome-back");
    browser.wait_for_text("Welcome back").await;
    browser.screenshot("welcome-back").await;

    // Signed in: the account page is theirs, with no password asked.
    browser.click_and_wait("Account").await;
    assert_eq!(browser.path().await, "/account");
    browser.wait_for_text(email).await;
    assert!(!browser.url().await.contains(email), "no email in a page's URL");
    browser.close().await;
}

#[tokio::test]
async fn the_link_alone_signs_no_one_in() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let email = "other-browser@example.com";
    mesh.register_and_leave(email).await;
    let requested = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    let link = mesh.wait_for_link(1).await;

    // A browser that never gave the password: reactivated, then asked to log in.
    let browser = Browser::start(&mesh.base).await;
    browser.open(&link).await;
    browser.click_and_wait("Reactivate my account").await;
    browser
        .wait_for_text("Your account is active again. Log in to continue.")
        .await;
    browser.open("/account").await;
    assert_eq!(browser.path().await, "/login");
    log_in(&browser, email).await;
    browser.wait_for_text("Welcome back").await;
    browser.close().await;
}

#[tokio::test]
async fn a_returning_customer_pays_with_the_welcome_back_offer() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "returning-browser@example.com";
    // Had Builder monthly, closed the account, and the paid month ended.
    mesh.register(email).await;
    let token = mesh.token(email, PASSWORD).await;
    mesh.subscribe(&token, "builder", "monthly").await;
    let closed = mesh.post("/api/cancel-account", Some(&token), json!({})).await;
    assert_eq!(closed.status(), StatusCode::OK);
    mesh.clock.advance(chrono::Duration::days(32));
    let requested = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    let link = mesh.wait_for_link(1).await;

    let browser = Browser::start(&mesh.base).await;
    browser.open(&link).await;
    browser.click_and_wait("Reactivate my account").await;
    log_in(&browser, email).await;
    browser.wait_for_text("Welcome back offer").await;
    browser
        .wait_for_text("50% off your first month, or 20% off your first year")
        .await;
    browser.screenshot("welcome-back-offer").await;

    browser.click_and_wait("Choose a plan with the offer").await;
    assert_eq!(browser.path().await, "/pricing");
    let builder_monthly = browser.text_of("[data-plan=builder][data-period=monthly] .price").await;
    assert!(
        builder_monthly.contains("$35") && builder_monthly.contains("$17.50"),
        "{builder_monthly}"
    );
    let maven_annual = browser.text_of("[data-plan=maven][data-period=annual] .price").await;
    assert!(
        maven_annual.contains("$1,020") && maven_annual.contains("$816"),
        "{maven_annual}"
    );
    browser.screenshot("pricing-offer").await;

    browser
        .click_in("[data-plan=builder][data-period=monthly]", "Subscribe")
        .await;
    browser.wait_for_text("Pay $17.50").await;
    browser.click_and_wait("Pay $17.50").await;
    browser.wait_for_text("Your subscription is active.").await;
    assert_eq!(browser.path().await, "/billing/success");
    browser.screenshot("checkout-success").await;
    browser.click_and_wait("Go to my subscription").await;
    browser.wait_for_text("Status: Active").await;
    browser.wait_for_text("Builder · Monthly").await;
    browser.close().await;
}

#[tokio::test]
async fn cancel_and_undo_on_the_subscription_page() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "subscription-page@example.com";
    // Support gave them a trial key; buying a plan makes it subscribed.
    let customer = mesh.customer_with_trial_key(email).await;
    let token = customer.token.clone();
    mesh.subscribe(&token, "grower", "annual").await;
    eventually("the key is subscribed", || async {
        mesh.key(&customer.key).await["expiresAt"].is_null()
    })
    .await;
    let renews = subscription_of(&mesh, &token).await["next_billing_date"]
        .as_str()
        .unwrap()
        .parse::<chrono::DateTime<Utc>>()
        .unwrap()
        .format("%b %-d, %Y")
        .to_string();

    let browser = Browser::start(&mesh.base).await;
    log_in(&browser, email).await;
    browser.click_and_wait("Subscription").await;
    browser.wait_for_text(&format!("Renews: {renews}")).await;
    browser.wait_for_text("Status: Active").await;
    browser.screenshot("subscription-active").await;

    browser.click("Cancel Subscription").await;
    browser.wait_for_text("Cancel Subscription?").await;
    browser.screenshot("subscription-cancel-dialog").await;
    browser.click_and_wait("Yes, Cancel").await;
    browser.wait_for_text(&format!("Access until: {renews}")).await;
    browser.wait_for_text("Status: Cancelled").await;
    browser.screenshot("subscription-cancelled").await;

    browser.click("Reactivate Subscription").await;
    browser.wait_for_text("Reactivate Subscription?").await;
    browser
        .wait_for_text(
            "Your subscription will be reactivated and you will continue to be charged at the end of your current \
             billing period. Your access will remain uninterrupted.",
        )
        .await;
    browser.control("Cancel").await;
    let button = browser.control("Yes, Reactivate").await;
    assert_eq!(
        button.attr("class").await.unwrap().unwrap_or_default(),
        "button success",
        "the positive action is green"
    );
    browser.screenshot("subscription-reactivate-dialog").await;
    browser.click_and_wait("Yes, Reactivate").await;
    browser.wait_for_text("Subscription reactivated successfully!").await;
    browser.wait_for_text("Status: Active").await;
    browser.wait_for_text(&format!("Renews: {renews}")).await;
    browser.screenshot("subscription-reactivated").await;
    assert_eq!(subscription_of(&mesh, &token).await["subscription_status"], "active");

    // Their key, on their account page.
    browser.click_and_wait("Account").await;
    let row = browser.text_of("table tbody tr").await;
    assert!(
        row.contains(&customer.key) && row.contains("Active") && row.contains("Never (Subscribed)"),
        "{row}"
    );
    browser.screenshot("account-keys").await;
    browser.click_and_wait("Subscription").await;

    // A Stripe outage: a clear message, and nothing changes.
    mesh.stripe.fail_next("POST", "/v1/subscriptions/", 500);
    browser.click("Cancel Subscription").await;
    browser.click_and_wait("Yes, Cancel").await;
    browser.wait_for_text("Please try again").await;
    browser.wait_for_text("Status: Active").await;
    assert_eq!(subscription_of(&mesh, &token).await["subscription_status"], "active");
    browser.close().await;
}

#[tokio::test]
async fn an_expired_link_offers_a_new_one() {
    let mesh = spawn_mesh_with(
        |identity| identity.reactivation.token_ttl = std::time::Duration::from_secs(1),
        |_| {},
    )
    .await;
    let email = "expired-link@example.com";
    mesh.register_and_leave(email).await;
    let requested = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(requested.status(), StatusCode::ACCEPTED);
    let link = mesh.wait_for_link(1).await;
    eventually("Redis expired the link's token", || async {
        !mesh
            .keys
            .entries()
            .await
            .iter()
            .any(|(key, _)| key.contains("reactivation:token:"))
    })
    .await;

    let browser = Browser::start(&mesh.base).await;
    browser.open(&link).await;
    browser.click_and_wait("Reactivate my account").await;
    browser
        .wait_for_text("This link is invalid or has expired. Please request a new reactivation link.")
        .await;
    browser.screenshot("link-expired").await;
    browser.fill("Email", email).await;
    browser.click_and_wait("Send me a new link").await;
    browser.wait_for_text("Check your email").await;
    let second = mesh.wait_for_link(2).await;
    assert_ne!(second, link);
    browser.close().await;
}

#[tokio::test]
async fn a_deactivated_accounts_open_browser_is_signed_out_on_its_next_click() {
    let mesh = spawn_mesh_with(|_| {}, |_| {}).await;
    let email = "open-session@example.com";
    let browser = Browser::start(&mesh.base).await;
    register_in_browser(&browser, email).await;
    browser.wait_for_text(&format!("Signed in as {email}")).await;

    // Deactivated elsewhere (another device, through the API).
    let token = mesh.token(email, PASSWORD).await;
    let response = mesh.post("/deactivate_user", Some(&token), json!({})).await;
    assert_eq!(response.status(), StatusCode::OK);

    browser.click_and_wait("Account").await;
    assert_eq!(browser.path().await, "/login");
    browser.wait_for_text("Log in").await;
    browser.open("/subscription").await;
    assert_eq!(browser.path().await, "/login", "the session is gone for good");
    browser.close().await;
}

#[tokio::test]
async fn pages_carry_their_policy_and_forms_need_the_csrf_value() {
    let mesh = spawn_mesh_with(|_| {}, |gateway| gateway.secure_cookies = true).await;
    // A browser that shows each answer as it comes (no redirect followed).
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let page = http.get(mesh.url("/login")).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let headers = page.headers().clone();
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'") && !csp.contains("unsafe"));
    assert_eq!(headers["x-frame-options"], "DENY");
    let cookie = headers["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("__Host-csrf="), "{cookie}");
    for flag in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{cookie} lacks {flag}");
    }
    let csrf = cookie.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();

    // A form without the value, or with another one, is refused before anything happens.
    let email = "csrf@example.com";
    mesh.register(email).await;
    for sent in ["", "forged"] {
        let response = http
            .post(mesh.url("/sign-in"))
            .header("cookie", format!("__Host-csrf={csrf}"))
            .form(&[("csrf", sent), ("email", email), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::FORBIDDEN);
        assert!(
            response
                .headers()
                .get("set-cookie")
                .is_none_or(|c| !c.to_str().unwrap().contains("session"))
        );
        let request_id = response.headers()["x-request-id"].to_str().unwrap().to_owned();
        let body = response.text().await.unwrap();
        assert!(body.contains("This form has expired") && body.contains(&request_id));
    }
    // With it, the session cookies are flagged too.
    let response = http
        .post(mesh.url("/sign-in"))
        .header("cookie", format!("__Host-csrf={csrf}"))
        .form(&[("csrf", csrf.as_str()), ("email", email), ("password", PASSWORD)])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let cookies: Vec<String> = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|value| value.to_str().unwrap().to_owned())
        .collect();
    for name in ["__Host-access=", "__Host-session="] {
        let cookie = cookies.iter().find(|cookie| cookie.starts_with(name)).expect(name);
        for flag in ["HttpOnly", "Secure", "SameSite=Lax"] {
            assert!(cookie.contains(flag), "{cookie} lacks {flag}");
        }
    }
    // The session outlives the access token: with only the session cookie,
    // a page is served and a fresh access token set.
    let session = cookies
        .iter()
        .find(|cookie| cookie.starts_with("__Host-session="))
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let jar = format!("__Host-csrf={csrf}; {session}");
    let page = http
        .get(mesh.url("/account"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let refreshed = page.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(refreshed.starts_with("__Host-access="), "{refreshed}");
    assert!(page.text().await.unwrap().contains(email));
    // Logging out ends it for good.
    let out = http
        .post(mesh.url("/logout"))
        .header("cookie", &jar)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    let page = http
        .get(mesh.url("/account"))
        .header("cookie", &jar)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), StatusCode::SEE_OTHER);
    assert_eq!(page.headers()["location"], "/login");

    // The JSON API answers as before on the shared path.
    let json = mesh.login(email, PASSWORD).await;
    assert_eq!(json.status(), StatusCode::OK);
}
