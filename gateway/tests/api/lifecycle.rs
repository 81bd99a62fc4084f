//! The services as one product: product access follows money, and closing an
//! account cancels the subscription and disables the keys — even when a
//! service is down at the moment it happens.

use chrono::Utc;
use platform::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::{ADMIN_EMAIL, ADMIN_PASSWORD, Customer, PASSWORD, Service, TestMesh, eventually, spawn_mesh_at};

/// Entries of a topic still owed after at least one failed delivery.
const TRIED_IN_VAIN: &str = "SELECT count(*) FROM outbox WHERE topic = $1 AND delivered_at IS NULL AND attempts > 0";
/// Entries of a topic still owed.
const PENDING: &str = "SELECT count(*) FROM outbox WHERE topic = $1 AND delivered_at IS NULL";

async fn key_becomes(mesh: &TestMesh, customer: &Customer, status: &str) -> Value {
    eventually(&format!("key {} becomes {status}", customer.key), || async {
        mesh.key(&customer.key).await["status"] == status
    })
    .await;
    mesh.key(&customer.key).await
}

#[tokio::test]
async fn access_follows_money() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let customer = mesh.customer_with_trial_key("paying@example.com").await;
    assert_eq!(mesh.key(&customer.key).await["isTrial"], true);

    let subscription = mesh.subscribe(&customer.token, "builder", "monthly").await;
    let subscribed = key_becomes(&mesh, &customer, "ACTIVE").await;
    eventually("the trial is converted", || async {
        mesh.key(&customer.key).await["isTrial"] == false
    })
    .await;
    let subscribed_key = mesh.key(&customer.key).await;
    assert_eq!(subscribed_key["keyType"], "production");
    assert_eq!(subscribed_key["expiresAt"], Value::Null, "{subscribed}");

    let failed = mesh.stripe.fail_payment(&subscription).unwrap();
    assert_eq!(mesh.stripe.deliver(&failed).await.unwrap(), 200);
    key_becomes(&mesh, &customer, "DISABLED").await;

    let paid = mesh.stripe.pay(&subscription).unwrap();
    assert_eq!(mesh.stripe.deliver(&paid).await.unwrap(), 200);
    let restored = key_becomes(&mesh, &customer, "ACTIVE").await;
    assert_eq!(restored["expiresAt"], Value::Null);
}

#[tokio::test]
async fn cancelling_the_account_cancels_the_subscription_and_disables_keys_until_a_new_plan() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "leaving@example.com";
    let customer = mesh.customer_with_trial_key(email).await;
    let subscription = mesh.subscribe(&customer.token, "builder", "monthly").await;
    key_becomes(&mesh, &customer, "ACTIVE").await;

    let cancelled = mesh
        .post(
            "/api/cancel-account",
            Some(&customer.token),
            json!({ "reason": "too expensive" }),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let body = cancelled.json::<Value>().await.unwrap();
    assert_eq!(body["user"]["is_active"], false);
    assert_eq!(body["user"]["last_cancellation_reason"], "too expensive");
    let refused = mesh.login(email, PASSWORD).await;
    assert_eq!(refused.status(), StatusCode::FORBIDDEN);

    key_becomes(&mesh, &customer, "DISABLED").await;
    eventually("Stripe stops the renewal", || async {
        mesh.stripe.cancel_at_period_end_updates(&subscription) == ["true"]
    })
    .await;

    // Support brings the account back: the subscription and keys stay as they are.
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let reactivated = mesh
        .post(
            &format!("/admin/users/{}/reactivate", customer.id),
            Some(&admin),
            json!({}),
        )
        .await;
    assert_eq!(reactivated.status(), StatusCode::OK);
    let token = mesh.token(email, PASSWORD).await;
    let shown = mesh
        .get("/api/subscription", Some(&token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(shown["subscription_status"], "cancelled");
    assert_eq!(mesh.key(&customer.key).await["status"], "DISABLED");
    let pricing = mesh
        .get("/api/pricing", Some(&token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(pricing["welcome_back_eligible"], false, "not while the paid month runs");

    // The month ends at Stripe: the subscription is over, the offer open.
    mesh.clock.advance(chrono::Duration::days(31));
    let ended = mesh.stripe.end_period(&subscription).unwrap();
    assert_eq!(mesh.stripe.deliver(&ended).await.unwrap(), 200);
    let pricing = mesh
        .get("/api/pricing", Some(&token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(pricing["welcome_back_eligible"], true);
    assert_eq!(pricing["prices"][2]["welcome_back_amount"], "17.50");

    // A new plan brings the keys back, no expiry.
    mesh.subscribe(&token, "builder", "monthly").await;
    let back = key_becomes(&mesh, &customer, "ACTIVE").await;
    assert_eq!(back["expiresAt"], Value::Null);
    let shown = mesh
        .get("/api/subscription", Some(&token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(shown["subscription_status"], "active");
}

#[tokio::test]
async fn an_account_closed_while_billing_is_down_is_cancelled_once_it_is_back() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let customer = mesh.customer_with_trial_key("outage@example.com").await;
    let subscription = mesh.subscribe(&customer.token, "grower", "annual").await;
    key_becomes(&mesh, &customer, "ACTIVE").await;

    mesh.stop_billing().await;
    let cancelled = mesh.post("/api/cancel-account", Some(&customer.token), json!({})).await;
    assert_eq!(cancelled.status(), StatusCode::OK, "identity does not wait for billing");
    // identity-svc tries billing-svc, in vain: nothing reaches Stripe.
    eventually("identity-svc tried to close the subscription", || async {
        mesh.count(Service::Identity, TRIED_IN_VAIN, "billing.close_account")
            .await
            > 0
    })
    .await;
    assert!(mesh.stripe.cancel_at_period_end_updates(&subscription).is_empty());
    assert_eq!(mesh.key(&customer.key).await["status"], "ACTIVE");

    mesh.start_billing().await;
    key_becomes(&mesh, &customer, "DISABLED").await;
    eventually("the renewal is stopped", || async {
        !mesh.stripe.cancel_at_period_end_updates(&subscription).is_empty()
    })
    .await;
    // The closure, tried many times, cancels once.
    eventually("identity-svc recorded the closure delivered", || async {
        mesh.count(Service::Identity, PENDING, "billing.close_account").await == 0
    })
    .await;
    assert_eq!(mesh.stripe.cancel_at_period_end_updates(&subscription), ["true"]);
}

#[tokio::test]
async fn erasure_forgets_the_customer_in_every_service() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "forget.me@example.com";
    let customer = mesh.customer_with_trial_key(email).await;
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let emailed = mesh
        .post(&format!("/api/keys/{}/email", customer.key), Some(&admin), json!({}))
        .await;
    assert_eq!(emailed.status(), StatusCode::ACCEPTED);
    mesh.subscribe(&customer.token, "maven", "monthly").await;
    key_becomes(&mesh, &customer, "ACTIVE").await;
    let stripe_customers = mesh.stripe.customers();
    assert_eq!(stripe_customers.len(), 1);
    eventually("the key email is stored at notify-svc", || async {
        mesh.count(
            Service::Notify,
            "SELECT count(*) FROM messages WHERE recipient = $1",
            email,
        )
        .await
            == 1
    })
    .await;

    // A link request leaves rate-limit counters naming the email's digest.
    let asked = mesh.post("/reactivate_user", None, json!({ "email": email })).await;
    assert_eq!(asked.status(), StatusCode::ACCEPTED);

    let erased = mesh.post("/delete_user", Some(&customer.token), json!({})).await;
    assert_eq!(erased.status(), StatusCode::OK);
    let erased = erased.json::<Value>().await.unwrap();
    let erasure_id = erased["erasure_id"].as_str().unwrap().to_owned();

    // At once: the account is gone and every session with it.
    assert_eq!(mesh.login(email, PASSWORD).await.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        mesh.get("/me", Some(&customer.token)).await.status(),
        StatusCode::UNAUTHORIZED
    );
    let id = customer.id.as_str();
    assert_eq!(
        mesh.count(Service::Identity, "SELECT count(*) FROM users WHERE id::text = $1", id)
            .await,
        0
    );

    // Then in every other service, through the outbox.
    eventually("billing forgets the tenant", || async {
        mesh.count(
            Service::Billing,
            "SELECT count(*) FROM tenants WHERE owner_user_id::text = $1",
            id,
        )
        .await
            == 0
    })
    .await;
    eventually("license-svc forgets the keys", || async {
        mesh.count(
            Service::License,
            "SELECT count(*) FROM license_keys WHERE email = $1",
            email,
        )
        .await
            == 0
    })
    .await;
    let history = "SELECT count(*) FROM key_history WHERE key = $1";
    assert_eq!(mesh.count(Service::License, history, &customer.key).await, 0);
    assert!(
        mesh.stripe.customer_deleted(&stripe_customers[0]),
        "deleted at Stripe too"
    );
    // The confirmation goes out; then not even its address is kept.
    let to_them = "SELECT count(*) FROM messages WHERE recipient = $1";
    eventually("the confirmation reaches the mail server", || async {
        mesh.smtp.messages().iter().any(|mail| {
            mail.header("To").is_some_and(|to| to.contains(email))
                && mail
                    .header("Subject")
                    .is_some_and(|subject| subject.contains("has been deleted"))
        })
    })
    .await;
    eventually("notify-svc keeps nothing addressed to them", || async {
        mesh.count(Service::Notify, to_them, email).await == 0
    })
    .await;

    // What remains: an erasure record without personal data.
    let record = "SELECT count(*) FROM account_events WHERE event_type = 'erased' AND data->>'erasure_id' = $1";
    assert_eq!(mesh.count(Service::Identity, record, &erasure_id).await, 1);
    let personal = "SELECT count(*) FROM account_events WHERE strpos(data::text, $1) > 0";
    assert_eq!(mesh.count(Service::Identity, personal, email).await, 0);
    // Redis: only the session floor that keeps old tokens out, expiring
    // with the last token it guards.
    let entries = mesh.keys.entries().await;
    let about_them: Vec<&String> = entries
        .iter()
        .map(|(key, _)| key)
        .filter(|key| key.contains(id))
        .collect();
    assert!(
        about_them.iter().all(|key| key.contains("session-floor")),
        "{about_them:?}"
    );
    let counters: Vec<&String> = entries
        .iter()
        .map(|(key, _)| key)
        .filter(|key| key.contains("reactivation-email"))
        .collect();
    assert!(counters.is_empty(), "{counters:?}");
}

#[tokio::test]
async fn a_payment_failure_while_license_svc_is_down_reaches_the_keys_once_it_is_back() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let customer = mesh.customer_with_trial_key("later@example.com").await;
    let subscription = mesh.subscribe(&customer.token, "builder", "annual").await;
    key_becomes(&mesh, &customer, "ACTIVE").await;

    mesh.stop_license().await;
    let failed = mesh.stripe.fail_payment(&subscription).unwrap();
    assert_eq!(
        mesh.stripe.deliver(&failed).await.unwrap(),
        200,
        "billing applies it at once"
    );
    let shown = mesh
        .get("/api/subscription", Some(&customer.token))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(shown["payment_failed"], true);
    eventually("billing-svc tried to tell license-svc", || async {
        mesh.count(Service::Billing, TRIED_IN_VAIN, "license.customer_access")
            .await
            > 0
    })
    .await;

    mesh.start_license().await;
    key_becomes(&mesh, &customer, "DISABLED").await;
}

#[tokio::test]
async fn a_key_disabled_by_an_admin_stays_disabled_whatever_the_customer_pays() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let customer = mesh.customer_with_trial_key("abuser@example.com").await;
    let admin = mesh.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
    let disabled = mesh
        .post(&format!("/api/keys/{}/disable", customer.key), Some(&admin), json!({}))
        .await;
    assert_eq!(disabled.status(), StatusCode::OK);
    assert_eq!(
        disabled.json::<Value>().await.unwrap()["data"]["disabledReason"],
        "admin"
    );

    // They buy a plan, fail a payment and recover it: billing says "active"
    // each time, and the key an admin disabled for cause stays disabled.
    let subscription = mesh.subscribe(&customer.token, "builder", "monthly").await;
    let failed = mesh.stripe.fail_payment(&subscription).unwrap();
    assert_eq!(mesh.stripe.deliver(&failed).await.unwrap(), 200);
    let paid = mesh.stripe.pay(&subscription).unwrap();
    assert_eq!(mesh.stripe.deliver(&paid).await.unwrap(), 200);
    let delivered = "SELECT count(*) FROM outbox WHERE topic = $1 AND delivered_at IS NOT NULL";
    // Checkout and its first invoice, the failure, the recovery.
    eventually("billing's four words reached license-svc", || async {
        mesh.count(Service::Billing, delivered, "license.customer_access").await == 4
    })
    .await;
    let key = mesh.key(&customer.key).await;
    assert_eq!(key["status"], "DISABLED");
    assert_eq!(key["disabledReason"], "admin");
    let history = mesh
        .get(&format!("/api/keys/{}/history", customer.key), Some(&admin))
        .await
        .json::<Value>()
        .await
        .unwrap();
    let actions: Vec<&str> = history["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["created", "disabled"], "billing touched nothing");
    assert_eq!(history["data"][1]["details"]["reason"], "admin");
}

#[tokio::test]
async fn login_tells_a_customer_who_left_and_holds_no_plan_to_choose_one() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "returning@example.com";
    let customer = mesh.customer_with_trial_key(email).await;
    let subscription = mesh.subscribe(&customer.token, "builder", "monthly").await;
    let cancelled = mesh
        .post("/api/cancel-subscription", Some(&customer.token), json!({}))
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    async fn login(mesh: &TestMesh, email: &str) -> Value {
        let response = mesh.login(email, PASSWORD).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()
    }
    // Cancelled, but the paid month runs: they still hold a plan.
    let running = login(&mesh, email).await;
    assert!(running.get("requires_action").is_none(), "{running}");

    mesh.clock.advance(chrono::Duration::days(31));
    let ended = mesh.stripe.end_period(&subscription).unwrap();
    assert_eq!(mesh.stripe.deliver(&ended).await.unwrap(), 200);
    let returning = login(&mesh, email).await;
    assert_eq!(returning["requires_action"], "choose_plan");
    assert_eq!(
        returning["welcome_back_offer"],
        json!([
            { "billing_period": "monthly", "coupon": "PR_WELCOME_BACK_MONTHLY", "percent_off": 50 },
            { "billing_period": "annual", "coupon": "PR_WELCOME_BACK_ANNUAL", "percent_off": 20 },
        ])
    );

    // Billing down: the login still succeeds, without the advice.
    mesh.stop_billing().await;
    let without = login(&mesh, email).await;
    assert!(without["access_token"].is_string());
    assert!(without.get("requires_action").is_none(), "{without}");
}

#[tokio::test]
async fn undoing_a_cancellation_is_confirmed_by_one_email() {
    let mesh = spawn_mesh_at(Clock::manual(Utc::now())).await;
    let email = "staying@example.com";
    mesh.register(email).await;
    let token = mesh.token(email, PASSWORD).await;
    mesh.subscribe(&token, "builder", "monthly").await;
    let cancelled = mesh
        .post(
            "/api/cancel-subscription",
            Some(&token),
            json!({ "reason": "on holiday" }),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    let undone = mesh.post("/api/subscription/reactivate", Some(&token), json!({})).await;
    assert_eq!(undone.status(), StatusCode::OK);

    // billing-svc → identity-svc (who holds the address) → notify-svc → SMTP.
    let mail = mesh
        .smtp
        .wait_for(1, std::time::Duration::from_secs(15))
        .await
        .remove(0);
    assert_eq!(mail.to, [email]);
    assert_eq!(
        mail.header("Subject").as_deref(),
        Some("Your Reactivation subscription is active again")
    );
    assert!(mail.text_body().unwrap().contains("Builder"));
    // Every hop has delivered: nothing more is on its way.
    let undelivered = "SELECT count(*) FROM outbox WHERE delivered_at IS NULL AND topic = $1";
    eventually("billing and identity have delivered the email", || async {
        mesh.count(Service::Billing, undelivered, "identity.customer_email")
            .await
            == 0
            && mesh.count(Service::Identity, undelivered, "notify.enqueue").await == 0
    })
    .await;
    let stored = "SELECT count(*) FROM messages WHERE recipient = $1";
    assert_eq!(mesh.count(Service::Notify, stored, email).await, 1);
    assert_eq!(mesh.smtp.messages().len(), 1, "sent once");
}
