//! The fault suite: the mesh as real processes — each service and the
//! gateway from its own binary — on a Postgres and a Redis of the suite's
//! own (started here with `initdb`/`pg_ctl` and `redis-server` on spare
//! ports, so the shared servers other tests use are never touched), with a
//! dependency stopped, flushed or killed in the middle of a flow.
//!
//! Each case asserts what a customer would notice (a 503 with `Retry-After`
//! rather than a 500 or a timeout, nothing lost after recovery, no revoked
//! session back, no effect applied twice) and prints one summary line with
//! its figures; timings are printed, not asserted. The services are built
//! with the `fail-points` feature, so the SIGKILL cases can kill one at the
//! worst moment (after sending, before recording).

// Items of a test binary are never reachable from outside it.
#![allow(unreachable_pub)]

use std::{
    collections::{BTreeMap, BTreeSet},
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use platform::{
    auth::{InternalToken, KeyPair},
    clock::Clock,
    config::Secret,
    testing::{eventually, eventually_some},
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use stripe_double::{CataloguePrice, StripeDouble};
use tokio::process::{Child, Command};

const PASSWORD: &str = "correct horse battery";
const ADMIN_EMAIL: &str = "admin@faults.test";
const ADMIN_PASSWORD: &str = "staff secret 1234";
const WEBHOOK_SECRET: &str = "whsec_fault_suite";
/// The gateway's deadline for every downstream call (its default).
const DEADLINE: Duration = Duration::from_secs(5);
const SERVICES: [&str; 5] = ["identity-svc", "license-svc", "billing-svc", "notify-svc", "gateway"];

#[tokio::test]
async fn every_outage_gets_a_fast_clean_answer_and_loses_nothing() {
    let mut mesh = Mesh::start().await;
    let mut summary = Vec::new();
    summary.push(postgres_down(&mut mesh).await);
    summary.push(redis_down(&mut mesh).await);
    summary.push(redis_flushed(&mut mesh).await);
    summary.push(notify_killed_after_sending(&mut mesh).await);
    summary.push(license_killed_after_committing(&mut mesh).await);
    summary.push(billing_killed_after_delivering(&mut mesh).await);
    eprintln!("\nfault suite summary:");
    for line in &summary {
        eprintln!("  {line}");
    }
    mesh.stop().await;
}

/// Postgres stopped: login, key validation, checkout and a reactivation
/// request answer 503 with `Retry-After` well before the gateway's deadline,
/// health shows Postgres down while `/healthz` keeps the gateway in
/// rotation, and notify-svc keeps running with an email due; back: all of it
/// works without a restart, and the email owed before the outage is sent.
async fn postgres_down(mesh: &mut Mesh) -> String {
    let ada = mesh.customer("ada@faults.test").await;
    // The mailbox refuses mail, so the link owed below waits in notify-svc's
    // queue, due, through the outage.
    mesh.mailbox.refuse();
    let owed = mesh.deactivated("owed@faults.test").await;
    mesh.expect(Method::POST, "/reactivate_user", None, json!({ "email": owed }), 202)
        .await;
    eventually("notify-svc tried to send the owed email", || async {
        mesh.notify_attempts(&owed).await > 0
    })
    .await;
    assert_eq!(mesh.notify_unsent(&owed).await, 1, "the email is still due");

    mesh.postgres.stop();
    let mut slowest = Duration::ZERO;
    for attempt in 0..2 {
        let key = format!("SK-FAUL-T{attempt}AA-BBBB-CCCC");
        let calls = [
            (
                Method::POST,
                "/login",
                None,
                json!({ "email": ada.email, "password": PASSWORD }),
            ),
            (Method::POST, "/api/keys/validate", None, json!({ "key": key })),
            (
                Method::POST,
                "/api/create-checkout-session",
                Some(ada.token.as_str()),
                json!({ "plan": "builder", "billing_period": "monthly" }),
            ),
            // Accepted only once it is recorded: never a 202 that is forgotten.
            (
                Method::POST,
                "/reactivate_user",
                None,
                json!({ "email": format!("later{attempt}@faults.test") }),
            ),
        ];
        for (method, path, token, body) in calls {
            let answer = mesh.call(method, path, token, body).await;
            answer.assert_unavailable(path);
            slowest = slowest.max(answer.took);
        }
    }
    assert!(
        slowest < DEADLINE,
        "a 503 took {slowest:?}, not well before the deadline"
    );
    mesh.wait_store_shown_down("postgres").await;
    mesh.services.get_mut("notify-svc").unwrap().assert_running();
    assert!(
        mesh.mailbox.to(&owed).is_empty(),
        "nothing sent while the mailbox refused"
    );

    mesh.mailbox.accept();
    mesh.postgres.start();
    let recovered = Instant::now();
    eventually("login works again", || async {
        mesh.call(
            Method::POST,
            "/login",
            None,
            json!({ "email": ada.email, "password": PASSWORD }),
        )
        .await
        .status
            == StatusCode::OK
    })
    .await;
    let recovery = recovered.elapsed();
    let ada = mesh.customer_again(&ada).await;
    mesh.expect(
        Method::POST,
        "/api/keys/validate",
        None,
        json!({ "key": "SK-FAUL-TBAC-KAAA-AAAA" }),
        404,
    )
    .await;
    mesh.expect(
        Method::POST,
        "/api/create-checkout-session",
        Some(&ada.token),
        json!({ "plan": "builder", "billing_period": "monthly" }),
        200,
    )
    .await;
    let sent = eventually_some(
        "the owed email is sent by the notify-svc that ran through the outage",
        || async { mesh.mailbox.to(&owed).first().cloned() },
    )
    .await;
    let lost = usize::from(sent.message_id.is_empty());
    format!(
        "postgres down: 503 in {:.2} s at worst (deadline {} s), health showed it, recovered in {:.1} s, {lost} lost",
        slowest.as_secs_f64(),
        DEADLINE.as_secs(),
        recovery.as_secs_f64()
    )
}

/// Redis stopped: every route that needs it answers 503, none 500, and
/// health shows Redis down while `/healthz` keeps the gateway in rotation;
/// back: the first calls work (a stale connection is replaced and the call
/// retried), the very first being a reactivation link opened.
async fn redis_down(mesh: &mut Mesh) -> String {
    let ada = mesh.customer_again(&mesh.customer_named("ada@faults.test")).await;
    mesh.redis.stop();
    let calls = [
        (Method::GET, "/me", Some(ada.token.as_str()), Value::Null),
        (
            Method::POST,
            "/login",
            None,
            json!({ "email": ada.email, "password": PASSWORD }),
        ),
        (
            Method::POST,
            "/reactivate_user",
            None,
            json!({ "email": "someone@faults.test" }),
        ),
        (Method::GET, "/api/subscription", Some(ada.token.as_str()), Value::Null),
        (
            Method::POST,
            "/deactivate_user",
            Some(ada.token.as_str()),
            json!({ "comment": "while Redis is down" }),
        ),
    ];
    let mut slowest = Duration::ZERO;
    let routes = calls.len();
    for (method, path, token, body) in calls {
        let answer = mesh.call(method, path, token, body).await;
        answer.assert_unavailable(path);
        slowest = slowest.max(answer.took);
    }
    mesh.wait_store_shown_down("redis").await;
    // Still a customer: the deactivation above did not happen.
    let unrecorded = "could not record a reactivation link as opened";
    let unrecorded_before = mesh.log_mentions("gateway", unrecorded);
    mesh.redis.start();
    let recovered = Instant::now();
    // The first call after the restart: identity-svc looks the link up on
    // its stale connection, which is replaced and the lookup run again.
    // (Redis came back empty, so the link itself is unknown now.)
    let opened = mesh
        .call(
            Method::GET,
            &format!("/reactivate?token={}", "A".repeat(43)),
            None,
            Value::Null,
        )
        .await;
    assert_eq!(opened.status, StatusCode::OK, "the link page: {:?}", opened.body);
    assert_eq!(
        mesh.log_mentions("gateway", unrecorded),
        unrecorded_before,
        "the first link opened after Redis returned was looked up, not refused"
    );
    // Redis came back empty: the first login rebuilds the session floor.
    let login = mesh
        .call(
            Method::POST,
            "/login",
            None,
            json!({ "email": ada.email, "password": PASSWORD }),
        )
        .await;
    assert_eq!(
        login.status,
        StatusCode::OK,
        "the first login after Redis returned: {:?}",
        login.body
    );
    let token = login.body["access_token"].as_str().unwrap().to_owned();
    mesh.expect(Method::GET, "/me", Some(&token), Value::Null, 200).await;
    let me = mesh.expect(Method::GET, "/me", Some(&token), Value::Null, 200).await;
    assert_eq!(me["is_active"], true, "nothing was deactivated while Redis was down");
    mesh.expect(
        Method::POST,
        "/reactivate_user",
        None,
        json!({ "email": "someone@faults.test" }),
        202,
    )
    .await;
    format!(
        "redis down: {routes} routes 503 in {:.2} s at worst, 0 answered 500, recovered in {:.2} s",
        slowest.as_secs_f64(),
        recovered.elapsed().as_secs_f64()
    )
}

/// Redis flushed after an account was deactivated: its old token stays
/// refused; a new login of an active account works.
async fn redis_flushed(mesh: &mut Mesh) -> String {
    let carol = mesh.customer("carol@faults.test").await;
    let dave = mesh.customer("dave@faults.test").await;
    mesh.expect(Method::POST, "/deactivate_user", Some(&carol.token), json!({}), 200)
        .await;
    mesh.redis.flush();
    let refused = mesh.call(Method::GET, "/me", Some(&carol.token), Value::Null).await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED, "{:?}", refused.body);
    let logged_out = mesh.call(Method::GET, "/me", Some(&dave.token), Value::Null).await;
    assert_eq!(
        logged_out.status,
        StatusCode::UNAUTHORIZED,
        "an unprovable session is refused"
    );
    let dave = mesh.customer_again(&dave).await;
    mesh.expect(Method::GET, "/me", Some(&dave.token), Value::Null, 200)
        .await;
    "redis flushed: the deactivated account's old token 401, an active account logs in again, 0 revived".to_owned()
}

/// notify-svc killed after the SMTP hand-off, before recording it: the
/// email goes out again after the restart, as a copy with the same
/// Message-ID, and never a third time.
async fn notify_killed_after_sending(mesh: &mut Mesh) -> String {
    let erin = mesh.deactivated("erin@faults.test").await;
    mesh.restart_service("notify-svc", &[("FAIL_POINTS", "notify.after_send")])
        .await;
    mesh.expect(Method::POST, "/reactivate_user", None, json!({ "email": erin }), 202)
        .await;
    mesh.wait_killed("notify-svc").await;
    mesh.start_service("notify-svc", &[]).await;
    eventually("the email is sent again and recorded as sent", || async {
        mesh.mailbox.to(&erin).len() >= 2 && mesh.notify_unsent(&erin).await == 0
    })
    .await;
    // Recorded as sent: nothing sends it a third time.
    let copies = mesh.mailbox.to(&erin);
    let ids: BTreeSet<&str> = copies.iter().map(|mail| mail.message_id.as_str()).collect();
    assert_eq!(copies.len(), 2, "one send, one resend after the crash");
    assert_eq!(ids.len(), 1, "the copies share one Message-ID: {ids:?}");
    format!(
        "notify killed after sending: 1 email, {} copies with 1 Message-ID, 0 lost",
        copies.len()
    )
}

/// license-svc killed after committing a customer's new access, before
/// answering billing: billing retries, the key is active, the change is in
/// its history once.
async fn license_killed_after_committing(mesh: &mut Mesh) -> String {
    let frank = mesh.customer_with_trial_key("frank@faults.test").await;
    mesh.restart_service("license-svc", &[("FAIL_POINTS", "license.after_access_commit")])
        .await;
    let checkout = mesh.checkout(&frank).await;
    mesh.wait_killed("license-svc").await;
    mesh.start_service("license-svc", &[]).await;
    if checkout.is_err() {
        mesh.redeliver_webhooks().await;
    }
    let changes = mesh.access_changes_applied(&frank).await;
    assert_eq!(changes, 1, "the access change is applied once");
    let (attempts, delivered) = mesh.access_entry(&frank).await.expect("billing owed the access change");
    assert!(
        delivered && attempts >= 1,
        "billing retried the delivery license-svc never answered: {attempts} failed attempts, delivered {delivered}"
    );
    "license killed after committing: key active, 1 access change applied, 0 lost".to_owned()
}

/// billing-svc killed after license-svc applied an access change, before
/// the outbox entry was marked delivered: the entry is delivered again after
/// the restart and changes nothing more.
async fn billing_killed_after_delivering(mesh: &mut Mesh) -> String {
    let grace = mesh.customer_with_trial_key("grace@faults.test").await;
    mesh.restart_service("billing-svc", &[("FAIL_POINTS", "outbox.after_deliver")])
        .await;
    let checkout = mesh.checkout(&grace).await;
    mesh.wait_killed("billing-svc").await;
    let (attempts, delivered) = mesh.access_entry(&grace).await.expect("billing owed the access change");
    assert!(
        !delivered,
        "killed before the delivery was recorded (attempts {attempts})"
    );
    mesh.start_service("billing-svc", &[]).await;
    if checkout.is_err() {
        mesh.redeliver_webhooks().await;
    }
    let changes = mesh.access_changes_applied(&grace).await;
    assert_eq!(changes, 1, "the access change is applied once");
    assert_eq!(
        mesh.access_entry(&grace).await.map(|(_, delivered)| delivered),
        Some(true),
        "delivered again after the restart"
    );
    let subscription = mesh
        .expect(Method::GET, "/api/subscription", Some(&grace.token), Value::Null, 200)
        .await;
    assert_eq!(subscription["subscription_status"], "active");
    "billing killed after delivering: subscription active, 1 access change applied, 0 lost".to_owned()
}

// ---------------------------------------------------------------------------
// The mesh under test.

#[derive(Debug, Clone)]
struct Customer {
    email: String,
    token: String,
    key: Option<String>,
}

#[derive(Debug)]
struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    body: Value,
    took: Duration,
}

impl Answer {
    fn assert_unavailable(&self, path: &str) {
        assert_eq!(
            self.status,
            StatusCode::SERVICE_UNAVAILABLE,
            "{path} answered {} {:?}",
            self.status,
            self.body
        );
        assert!(self.retry_after.is_some(), "{path}: 503 without Retry-After");
        assert_eq!(self.body["status"], 503, "{path}: problem+json body");
    }
}

struct Mesh {
    postgres: OwnPostgres,
    redis: OwnRedis,
    stripe: StripeDouble,
    services: BTreeMap<&'static str, Service>,
    gateway: String,
    /// identity-svc's `/metrics` (its admin port).
    identity_metrics: String,
    http: reqwest::Client,
    mailbox: Mailbox,
    /// Last, so it is removed after the stores and processes in it stopped.
    _work: WorkDir,
}

/// A folder of this run, removed when the run ends, passed or not.
struct WorkDir(Vec<PathBuf>);

impl Drop for WorkDir {
    fn drop(&mut self) {
        for dir in &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

impl Mesh {
    async fn start() -> Self {
        let (binaries, bin_dir) = build_binaries();
        let work = std::env::temp_dir().join(format!("faults-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&work).unwrap();
        let postgres = OwnPostgres::init(&work);
        postgres.start();
        let redis = OwnRedis::new();
        redis.start();
        let server = Secret::from(postgres.url("postgres"));
        for database in ["identity", "license", "billing", "notify"] {
            platform::db::ensure_database(&server, database).await.unwrap();
        }

        let port = |_: &str| platform::testing::free_port();
        let ports: BTreeMap<&str, u16> = SERVICES.iter().map(|name| (*name, port(name))).collect();
        let url = |name: &str| format!("http://127.0.0.1:{}", ports[name]);
        let gateway = url("gateway");
        let identity_admin = format!("127.0.0.1:{}", platform::testing::free_port());
        let catalogue = billing_svc::config::StripeConfig::default_catalogue()
            .map(|(id, amount, interval)| CataloguePrice::new(id, amount, interval))
            .collect();
        let mut options = stripe_double::Options::new(Clock::system(), WEBHOOK_SECRET, catalogue);
        options.webhook_url = Some(format!("{gateway}/api/stripe/webhook"));
        let stripe = StripeDouble::start(options).await.unwrap();

        let keys = KeyPair::generate();
        let mailbox = Mailbox(work.join("mailbox"));
        let common = vec![
            ("REDIS_URL".to_owned(), format!("redis://127.0.0.1:{}", redis.port)),
            ("REDIS_KEY_PREFIX".to_owned(), "faults:".to_owned()),
            ("JWT_PUBLIC_KEY".to_owned(), keys.public_pem.clone()),
            (
                "INTERNAL_API_TOKEN".to_owned(),
                InternalToken::generate().secret().expose().clone(),
            ),
            ("OUTBOX_MAX_BACKOFF_SECS".to_owned(), "1".to_owned()),
            ("RUST_LOG".to_owned(), "info".to_owned()),
        ];
        let own = |name: &str, pairs: &[(&str, String)]| {
            let mut env = common.clone();
            env.push(("LISTEN_ADDR".to_owned(), format!("127.0.0.1:{}", ports[name])));
            env.extend(pairs.iter().map(|(key, value)| ((*key).to_owned(), value.clone())));
            env
        };
        let database = |name: &str| ("DATABASE_URL", postgres.url(name));
        let envs = [
            (
                "notify-svc",
                own(
                    "notify-svc",
                    &[
                        database("notify"),
                        ("MAILBOX_DIR", mailbox.0.display().to_string()),
                        ("WORKER_POLL_MS", "200".into()),
                        ("DELIVERY_BACKOFF_BASE_MS", "200".into()),
                        ("DELIVERY_BACKOFF_MAX_SECS", "1".into()),
                        // An email held through an outage is not given up.
                        ("DELIVERY_MAX_ATTEMPTS", "1000".into()),
                    ],
                ),
            ),
            (
                "license-svc",
                own("license-svc", &[database("license"), ("NOTIFY_URL", url("notify-svc"))]),
            ),
            (
                "billing-svc",
                own(
                    "billing-svc",
                    &[
                        database("billing"),
                        ("LICENSE_URL", url("license-svc")),
                        ("IDENTITY_URL", url("identity-svc")),
                        ("STRIPE_SECRET_KEY", "sk_test_fault_suite".into()),
                        ("STRIPE_WEBHOOK_SECRET", WEBHOOK_SECRET.into()),
                        ("STRIPE_API_BASE", stripe.url().to_owned()),
                        ("PUBLIC_URL", gateway.clone()),
                    ],
                ),
            ),
            (
                "identity-svc",
                own(
                    "identity-svc",
                    &[
                        database("identity"),
                        ("JWT_PRIVATE_KEY", keys.private_pem.expose().clone()),
                        ("NOTIFY_URL", url("notify-svc")),
                        ("BILLING_URL", url("billing-svc")),
                        ("LICENSE_URL", url("license-svc")),
                        ("PUBLIC_URL", gateway.clone()),
                        ("BOOTSTRAP_ADMIN_EMAIL", ADMIN_EMAIL.into()),
                        ("BOOTSTRAP_ADMIN_PASSWORD", ADMIN_PASSWORD.into()),
                        ("REACTIVATION_COOLDOWN_SECS", "0".into()),
                        // Every call comes from this one address, retried
                        // through each outage: its login limit is not under test.
                        ("LOGIN_MAX_PER_CLIENT_PER_MINUTE", "1000000".into()),
                        ("PASSWORD_HASH_CONCURRENCY", "2".into()),
                        ("ADMIN_ADDR", identity_admin.clone()),
                    ],
                ),
            ),
            (
                "gateway",
                own(
                    "gateway",
                    &[
                        ("IDENTITY_URL", url("identity-svc")),
                        ("LICENSE_URL", url("license-svc")),
                        ("BILLING_URL", url("billing-svc")),
                    ],
                ),
            ),
        ];
        let mut mesh = Self {
            postgres,
            redis,
            stripe,
            services: BTreeMap::new(),
            gateway,
            identity_metrics: format!("http://{identity_admin}/metrics"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(15))
                .build()
                .unwrap(),
            mailbox,
            _work: WorkDir(vec![work.clone(), bin_dir]),
        };
        for (name, env) in envs {
            mesh.services.insert(
                name,
                Service {
                    name,
                    binary: binaries[name].clone(),
                    port: ports[name],
                    env,
                    log: work.join(format!("{name}.log")),
                    child: None,
                },
            );
            mesh.start_service(name, &[]).await;
        }
        mesh
    }

    async fn stop(mut self) {
        for service in self.services.values_mut() {
            service.stop().await;
        }
        self.redis.stop();
        self.postgres.stop();
    }

    async fn start_service(&mut self, name: &str, extra: &[(&str, &str)]) {
        let service = self.services.get_mut(name).unwrap();
        service.start(extra);
        service.wait_listening().await;
    }

    async fn stop_service(&mut self, name: &str) {
        self.services.get_mut(name).unwrap().stop().await;
    }

    async fn restart_service(&mut self, name: &str, extra: &[(&str, &str)]) {
        self.stop_service(name).await;
        self.start_service(name, extra).await;
    }

    /// Waits for a service's armed fail point to kill it.
    async fn wait_killed(&mut self, name: &str) {
        let service = self.services.get_mut(name).unwrap();
        let child = service.child.as_mut().unwrap();
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .unwrap_or_else(|_| panic!("{name} did not reach its fail point"))
            .unwrap();
        use std::os::unix::process::ExitStatusExt as _;
        assert_eq!(status.signal(), Some(9), "{name} was killed by SIGKILL: {status}");
        service.child = None;
    }

    async fn call(&self, method: Method, path: &str, token: Option<&str>, body: Value) -> Answer {
        let mut request = self.http.request(method.clone(), format!("{}{path}", self.gateway));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if !body.is_null() {
            request = request.json(&body);
        }
        let started = Instant::now();
        let response = request
            .send()
            .await
            .unwrap_or_else(|err| panic!("{method} {path}: {err}"));
        let took = started.elapsed();
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        let body = response.json().await.unwrap_or(Value::Null);
        Answer {
            status,
            retry_after,
            body,
            took,
        }
    }

    async fn expect(&self, method: Method, path: &str, token: Option<&str>, body: Value, status: u16) -> Value {
        let answer = self.call(method.clone(), path, token, body).await;
        assert_eq!(answer.status.as_u16(), status, "{method} {path}: {:?}", answer.body);
        answer.body
    }

    fn customer_named(&self, email: &str) -> Customer {
        Customer {
            email: email.to_owned(),
            token: String::new(),
            key: None,
        }
    }

    /// Registers `email` and logs in.
    async fn customer(&self, email: &str) -> Customer {
        self.expect(
            Method::POST,
            "/register",
            None,
            json!({ "email": email, "password": PASSWORD }),
            201,
        )
        .await;
        self.customer_again(&self.customer_named(email)).await
    }

    /// Logs `customer` in again: a fresh token.
    async fn customer_again(&self, customer: &Customer) -> Customer {
        let session = self
            .expect(
                Method::POST,
                "/login",
                None,
                json!({ "email": customer.email, "password": PASSWORD }),
                200,
            )
            .await;
        Customer {
            token: session["access_token"].as_str().unwrap().to_owned(),
            ..customer.clone()
        }
    }

    /// A registered account that deactivated itself (so it may ask for a link).
    async fn deactivated(&self, email: &str) -> String {
        let customer = self.customer(email).await;
        self.expect(Method::POST, "/deactivate_user", Some(&customer.token), json!({}), 200)
            .await;
        email.to_owned()
    }

    async fn admin(&self) -> String {
        let session = self
            .expect(
                Method::POST,
                "/login",
                None,
                json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }),
                200,
            )
            .await;
        session["access_token"].as_str().unwrap().to_owned()
    }

    /// A customer holding a trial key support created for them.
    async fn customer_with_trial_key(&self, email: &str) -> Customer {
        let customer = self.customer(email).await;
        let me = self
            .expect(Method::GET, "/me", Some(&customer.token), Value::Null, 200)
            .await;
        let admin = self.admin().await;
        let body = json!({ "email": email, "keyType": "trial", "ownerUserId": me["id"] });
        let created = self.expect(Method::POST, "/api/keys", Some(&admin), body, 201).await;
        Customer {
            key: Some(created["data"]["key"].as_str().unwrap().to_owned()),
            ..customer
        }
    }

    /// Buys Builder monthly at the Stripe double, whose webhooks reach
    /// billing through the gateway. An error if a webhook was not accepted
    /// (billing was killed answering it).
    async fn checkout(&self, customer: &Customer) -> anyhow::Result<()> {
        let session = self
            .expect(
                Method::POST,
                "/api/create-checkout-session",
                Some(&customer.token),
                json!({ "plan": "builder", "billing_period": "monthly" }),
                200,
            )
            .await;
        self.stripe
            .complete_checkout(session["session_id"].as_str().unwrap())
            .await
            .map(|_| ())
    }

    /// Delivers every webhook event again, as Stripe retries unanswered ones.
    async fn redeliver_webhooks(&self) {
        for (id, _) in self.stripe.events() {
            let status = self.stripe.deliver(&id).await.unwrap();
            assert!((200..300).contains(&status), "redelivered {id}: {status}");
        }
    }

    /// Waits until the customer's key is active as subscribed, then counts
    /// the access changes its history records.
    async fn access_changes_applied(&self, customer: &Customer) -> i64 {
        let key = customer.key.as_deref().unwrap();
        let admin = self.admin().await;
        eventually("the key follows the payment", || async {
            let shown = self
                .call(Method::GET, &format!("/api/keys/{key}"), Some(&admin), Value::Null)
                .await;
            shown.body["data"]["status"] == "ACTIVE" && shown.body["data"]["keyType"] != "trial"
        })
        .await;
        // Once billing owes nothing more, every redelivery has happened.
        eventually("billing's outbox is delivered", || async {
            self.access_entry(customer)
                .await
                .is_some_and(|(_, delivered)| delivered)
        })
        .await;
        let pool = platform::db::connect(&Secret::from(self.postgres.url("license")), 1)
            .await
            .unwrap();
        let changes: i64 =
            sqlx::query_scalar("SELECT count(*) FROM key_history WHERE key = $1 AND performed_by = 'service'")
                .bind(key)
                .fetch_one(&pool)
                .await
                .unwrap();
        pool.close().await;
        changes
    }

    /// Billing's outbox entries of the customer's access changes: the most
    /// failed attempts any had, and whether all are recorded as delivered;
    /// `None` before there is one.
    async fn access_entry(&self, customer: &Customer) -> Option<(i32, bool)> {
        let me = self
            .expect(Method::GET, "/me", Some(&customer.token), Value::Null, 200)
            .await;
        let key = format!("access:{}:%", me["id"].as_str().unwrap());
        let pool = self.pool("billing").await;
        let (entries, attempts, delivered): (i64, i32, bool) = sqlx::query_as(
            "SELECT count(*), COALESCE(max(attempts), 0), COALESCE(bool_and(delivered_at IS NOT NULL), false) \
             FROM outbox WHERE idempotency_key LIKE $1",
        )
        .bind(key)
        .fetch_one(&pool)
        .await
        .unwrap();
        pool.close().await;
        (entries > 0).then_some((attempts, delivered))
    }

    /// Delivery attempts notify-svc made of the emails to `recipient`.
    async fn notify_attempts(&self, recipient: &str) -> i64 {
        let pool = self.pool("notify").await;
        let attempts = sqlx::query_scalar("SELECT COALESCE(sum(attempts), 0)::int8 FROM messages WHERE recipient = $1")
            .bind(recipient)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        attempts
    }

    /// Emails to `recipient` notify-svc has not recorded as sent.
    async fn notify_unsent(&self, recipient: &str) -> i64 {
        let pool = self.pool("notify").await;
        let unsent = sqlx::query_scalar("SELECT count(*) FROM messages WHERE recipient = $1 AND state <> 'sent'")
            .bind(recipient)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        unsent
    }

    async fn pool(&self, database: &str) -> sqlx::PgPool {
        platform::db::connect(&Secret::from(self.postgres.url(database)), 1)
            .await
            .unwrap()
    }

    /// Waits until `/healthz/stores` shows `store` down — the gateway's own
    /// Redis and every service's — and identity-svc's `store_up` metric
    /// reads 0, while `/healthz` stays 200 throughout.
    async fn wait_store_shown_down(&self, store: &str) {
        let series = format!(r#"store_up{{store="{store}"}} "#);
        eventually(&format!("identity-svc's metrics show {store} down"), || async {
            let scrape = self
                .http
                .get(&self.identity_metrics)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            scrape.lines().any(|line| line.strip_prefix(&series) == Some("0"))
        })
        .await;
        eventually(&format!("/healthz/stores shows {store} down"), || async {
            let health = self.call(Method::GET, "/healthz", None, Value::Null).await;
            assert_eq!(health.status, StatusCode::OK, "/healthz keeps the gateway in rotation");
            let stores = self
                .expect(Method::GET, "/healthz/stores", None, Value::Null, 200)
                .await;
            let gateway_sees = store != "redis" || stores["redis"] == "down";
            let services = stores["services"].as_object().cloned().unwrap_or_default();
            gateway_sees && !services.is_empty() && services.values().all(|service| service[store] == "down")
        })
        .await;
    }

    /// How many lines of `service`'s log mention `text`.
    fn log_mentions(&self, service: &str, text: &str) -> usize {
        std::fs::read_to_string(&self.services[service].log)
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(text))
            .count()
    }
}

/// One service process, started from its binary with its environment.
struct Service {
    name: &'static str,
    binary: PathBuf,
    port: u16,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
}

impl Service {
    fn start(&mut self, extra: &[(&str, &str)]) {
        assert!(self.child.is_none(), "{} is already running", self.name);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let child = Command::new(&self.binary)
            .envs(self.env.iter().map(|(key, value)| (key.as_str(), value.as_str())))
            .envs(extra.iter().copied())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("start {}: {err}", self.binary.display()));
        self.child = Some(child);
    }

    /// Panics if the process has exited.
    fn assert_running(&mut self) {
        let child = self.child.as_mut().expect("started");
        if let Ok(Some(status)) = child.try_wait() {
            panic!("{} exited with {status}; see {}", self.name, self.log.display());
        }
    }

    /// Services bind once their stores are reached and migrated.
    async fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.is_err() {
            if let Some(status) = self.child.as_mut().and_then(|child| child.try_wait().ok().flatten()) {
                panic!("{} exited with {status}; see {}", self.name, self.log.display());
            }
            assert!(Instant::now() < deadline, "{} did not listen in 60 s", self.name);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGTERM, then wait for the drain.
    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            if tokio::time::timeout(Duration::from_secs(20), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

/// The services' binaries, built with their fail points, copied to a
/// folder of this run (so no other build can replace them meanwhile).
fn build_binaries() -> (BTreeMap<&'static str, PathBuf>, PathBuf) {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = std::process::Command::new(cargo);
    command
        .current_dir(Path::new(env!("CARGO_MANIFEST_DIR")).join(".."))
        .args([
            "build",
            // The lock file as committed: no resolution (or network) in
            // the middle of a test run.
            "--locked",
            "--message-format=json-render-diagnostics",
            "--features",
            "platform/fail-points",
        ]);
    for name in SERVICES {
        command.args(["-p", name, "--bin", name]);
    }
    let output = command.stderr(Stdio::inherit()).output().expect("run cargo build");
    assert!(output.status.success(), "building the services with fail points failed");
    let dir = std::env::temp_dir().join(format!("faults-bin-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut binaries = BTreeMap::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let (Some(name), Some(executable)) = (message["target"]["name"].as_str(), message["executable"].as_str())
        else {
            continue;
        };
        if let Some(name) = SERVICES.iter().find(|service| **service == name) {
            let copy = dir.join(name);
            std::fs::copy(executable, &copy).unwrap();
            binaries.insert(*name, copy);
        }
    }
    assert_eq!(binaries.len(), SERVICES.len(), "every service binary was built");
    (binaries, dir)
}

/// Emails the development mailbox received, as notify-svc wrote them.
struct Mailbox(PathBuf);

#[derive(Debug, Clone)]
struct Mail {
    message_id: String,
}

impl Mailbox {
    /// The folder held aside while the mailbox refuses mail.
    fn held(&self) -> PathBuf {
        self.0.with_extension("held")
    }

    /// Makes every delivery fail, as a mail server that refuses would: a
    /// file stands where the folder was.
    fn refuse(&self) {
        std::fs::create_dir_all(&self.0).unwrap();
        std::fs::rename(&self.0, self.held()).unwrap();
        std::fs::write(&self.0, b"").unwrap();
    }

    /// Accepts mail again, keeping what was delivered before.
    fn accept(&self) {
        std::fs::remove_file(&self.0).unwrap();
        std::fs::rename(self.held(), &self.0).unwrap();
    }

    fn to(&self, recipient: &str) -> Vec<Mail> {
        let Ok(entries) = std::fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let to = format!("To: {recipient}");
        entries
            .filter_map(Result::ok)
            .filter(|entry| entry.path().extension().is_some_and(|ext| ext == "eml"))
            .filter_map(|entry| std::fs::read_to_string(entry.path()).ok())
            .filter(|raw| raw.lines().any(|line| line.trim() == to))
            .map(|raw| Mail {
                message_id: raw
                    .lines()
                    .find_map(|line| line.strip_prefix("Message-ID: "))
                    .unwrap_or_default()
                    .trim()
                    .to_owned(),
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// The suite's own stores.

/// A Postgres cluster of the suite's own, in a temporary folder, on a
/// spare port.
struct OwnPostgres {
    bin: PathBuf,
    dir: PathBuf,
    port: u16,
}

impl OwnPostgres {
    fn init(work: &Path) -> Self {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's binaries under /usr/lib/postgresql")
            .filter_map(Result::ok)
            .map(|entry| entry.path().join("bin"))
            .filter(|bin| bin.join("pg_ctl").exists())
            .max()
            .expect("pg_ctl under /usr/lib/postgresql/*/bin");
        let dir = work.join("postgres");
        std::fs::create_dir_all(&dir).unwrap();
        let postgres = Self {
            bin,
            dir,
            port: platform::testing::free_port(),
        };
        if is_root() {
            // initdb refuses to run as root.
            run(std::process::Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(&postgres.dir));
        }
        let data = postgres.dir.join("data");
        run(postgres
            .command("initdb")
            .args(["-A", "trust", "-U", "postgres", "--no-sync", "-D"])
            .arg(&data));
        postgres
    }

    /// `program` from PostgreSQL's binaries, as the `postgres` user when
    /// this process is root.
    fn command(&self, program: &str) -> std::process::Command {
        let path = self.bin.join(program);
        if is_root() {
            let mut command = std::process::Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            std::process::Command::new(path)
        }
    }

    /// Starts the server, trying again a few times: a restart right after a
    /// stop can meet the old server's last moments on a loaded machine. A
    /// start that keeps failing panics with the server's own log.
    fn start(&self) {
        // Dynamic shared memory in the data folder, not /dev/shm, which a
        // container may keep small.
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c dynamic_shared_memory_type=mmap",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("log");
        for attempt in 1.. {
            let output = self
                .command("pg_ctl")
                .arg("-D")
                .arg(self.dir.join("data"))
                .args(["-o", &options, "-l"])
                .arg(&log)
                .args(["-w", "-t", "120", "start"])
                .output()
                .expect("pg_ctl");
            if output.status.success() {
                return;
            }
            if attempt == 5 {
                panic!(
                    "postgres did not start on port {}: {}{}\n{}",
                    self.port,
                    String::from_utf8_lossy(&output.stdout),
                    String::from_utf8_lossy(&output.stderr),
                    std::fs::read_to_string(&log).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_secs(attempt));
        }
    }

    /// As an operator would: connections are closed, the server stops.
    fn stop(&self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "-w", "-t", "120", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }
}

impl Drop for OwnPostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A Redis of the suite's own, without persistence: stopped and started
/// again, it comes back empty, as after a crash of an unreplicated node.
struct OwnRedis {
    port: u16,
    child: std::sync::Mutex<Option<std::process::Child>>,
}

impl OwnRedis {
    fn new() -> Self {
        Self {
            port: platform::testing::free_port(),
            child: std::sync::Mutex::new(None),
        }
    }

    fn start(&self) {
        let child = std::process::Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server");
        *self.child.lock().unwrap() = Some(child);
        for _ in 0..100 {
            if self.cli(&["PING"]) == "PONG" {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    fn stop(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn flush(&self) {
        assert_eq!(self.cli(&["FLUSHALL"]), "OK");
    }

    fn cli(&self, args: &[&str]) -> String {
        std::process::Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .map(|output| String::from_utf8_lossy(&output.stdout).trim().to_owned())
            .unwrap_or_default()
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn is_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|output| String::from_utf8_lossy(&output.stdout).trim() == "0")
}

fn run(command: &mut std::process::Command) {
    let output = command.output().unwrap_or_else(|err| panic!("{command:?}: {err}"));
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}
