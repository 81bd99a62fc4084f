//! Two replicas of every service, as a cluster would run them: separate
//! servers on separate ports sharing one database per service, one Redis and
//! one mail server. A mixed workload spread over both gateways must behave
//! exactly as with one replica: every email sent once, no job done twice.

use std::{collections::HashMap, time::Duration};

use platform::{
    auth::{InternalToken, KeyPair},
    config::Secret,
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace, service_config, smtp::SmtpSink},
};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery";
const USERS: usize = 12;

struct Replicas {
    gateways: Vec<String>,
    smtp: SmtpSink,
    shutdown: Shutdown,
    databases: (TestDatabase, TestDatabase),
    _keys: TestKeySpace,
}

async fn start_two_of_everything() -> Replicas {
    platform::testing::spans();
    let identity_db = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let notify_db = TestDatabase::create(&notify_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let pair = KeyPair::generate();
    let internal = InternalToken::generate();
    let smtp = SmtpSink::start().await;
    let shutdown = Shutdown::new();

    let mut gateways = Vec::new();
    for _ in 0..2 {
        let notify = notify_svc::Application::build(notify_svc::Config {
            service: service_config(&notify_db, &keys, &pair.public_pem, &internal),
            transport: notify_svc::config::Transport::Smtp(notify_svc::config::SmtpConfig {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                tls: notify_svc::config::SmtpTls::None,
                credentials: None,
            }),
            mail_from: notify_svc::config::DEFAULT_MAIL_FROM.into(),
            product_name: "Reactivation".into(),
            public_url: "https://app.example.com".into(),
            max_attempts: 8,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            poll_interval: Duration::from_millis(50),
            delivery_concurrency: 2,
        })
        .await
        .expect("notify-svc builds");
        let notify_url = format!("http://{}", notify.local_addr());
        tokio::spawn(notify.run(shutdown.clone()));

        let identity = identity_svc::Application::build(identity_svc::Config {
            service: service_config(&identity_db, &keys, &pair.public_pem, &internal),
            jwt_private_key: pair.private_pem.clone(),
            password_hash_concurrency: 1,
            // Both replicas race to create the admin: exactly one must win.
            bootstrap_admin: Some(("admin@example.com".into(), Secret::from("staff secret 1234"))),
            notify_url,
            // Not exercised here: the deactivation cascade is covered by the gateway's tests.
            billing_url: "http://127.0.0.1:9".into(),
            license_url: "http://127.0.0.1:9".into(),
            outbox_max_backoff: Duration::from_secs(1),
            reactivation: identity_svc::config::ReactivationConfig {
                public_url: "https://app.example.com".into(),
                token_ttl: Duration::from_secs(3600),
                cooldown: Duration::ZERO,
                max_per_email_per_hour: 100,
                max_per_client_per_hour: 1000,
            },
            login: identity_svc::config::LoginConfig::default(),
            retention: Default::default(),
        })
        .await
        .expect("identity-svc builds");
        let identity_url = format!("http://{}", identity.local_addr());
        tokio::spawn(identity.run(shutdown.clone()));

        let gateway = gateway::Application::build(
            gateway::Config {
                listen_addr: "127.0.0.1:0".parse().unwrap(),
                identity_url,
                // Not exercised here: license routes are covered by the gateway's tests.
                license_url: "http://127.0.0.1:9".into(),
                billing_url: "http://127.0.0.1:9".into(),
                validate_rate_limit_per_sec: 100,
                validation_cache_capacity: 1000,
                validation_cache_max_age: Duration::from_secs(60),
                redis_url: keys.url.clone(),
                redis_key_prefix: keys.prefix.clone(),
                redis_timeout: Duration::from_secs(1),
                jwt_public_key: pair.public_pem.clone(),
                access_token_ttl: Duration::from_secs(900),
                downstream_timeout: Duration::from_secs(10),
                cors_allowed_origins: Vec::new(),
                drain_delay: Duration::ZERO,
                secure_cookies: false,
                trusted_proxies: Default::default(),
                limits: Default::default(),
            },
            shutdown.clone(),
        )
        .await
        .expect("gateway builds");
        gateways.push(format!("http://{}", gateway.local_addr()));
        tokio::spawn(gateway.run());
    }
    Replicas {
        gateways,
        smtp,
        shutdown,
        databases: (identity_db, notify_db),
        _keys: keys,
    }
}

impl Replicas {
    /// Waits until identity-svc owes no email or link request and notify-svc
    /// has nothing pending: a copy that has not arrived by then never will.
    async fn wait_until_nothing_owed(&self) {
        let (identity, notify) = &self.databases;
        let identity = platform::db::connect(&identity.url, 1).await.unwrap();
        let notify = platform::db::connect(&notify.url, 1).await.unwrap();
        platform::testing::eventually("nothing is owed", || async {
            // Emails and link requests; no billing-svc runs here to take
            // what identity-svc owes it.
            let owed: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM outbox WHERE delivered_at IS NULL \
                 AND topic IN ('notify.enqueue', 'identity.reactivation_request')",
            )
            .fetch_one(&identity)
            .await
            .unwrap();
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE state = 'pending'")
                .fetch_one(&notify)
                .await
                .unwrap();
            owed == 0 && pending == 0
        })
        .await;
    }
}

async fn post(http: &reqwest::Client, url: String, token: Option<&str>, body: Value) -> reqwest::Response {
    let mut request = http.post(url).json(&body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn two_replicas_of_every_service_send_each_email_exactly_once() {
    let mesh = start_two_of_everything().await;
    let http = reqwest::Client::new();
    let at = |n: usize, path: &str| format!("{}{path}", mesh.gateways[n % 2]);

    // Each user goes through both gateways (and so both identity replicas).
    let journeys = (0..USERS).map(|n| {
        let http = http.clone();
        let email = format!("user{n}@example.com");
        let (register, login, deactivate, request) = (
            at(n, "/register"),
            at(n + 1, "/login"),
            at(n, "/deactivate_user"),
            at(n + 1, "/reactivate_user"),
        );
        async move {
            let credentials = json!({ "email": email, "password": PASSWORD });
            assert_eq!(post(&http, register, None, credentials.clone()).await.status(), 201);
            let session: Value = post(&http, login, None, credentials).await.json().await.unwrap();
            let token = session["access_token"].as_str().unwrap().to_owned();
            assert_eq!(post(&http, deactivate, Some(&token), json!({})).await.status(), 200);
            assert_eq!(
                post(&http, request, None, json!({ "email": email })).await.status(),
                202
            );
        }
    });
    futures::future::join_all(journeys).await;

    let mails = mesh.smtp.wait_for(USERS, Duration::from_secs(30)).await;
    let mut tokens = HashMap::new();
    for mail in &mails {
        let body = mail.text_body().unwrap();
        let start = body.find("token=").expect("a reactivation link") + "token=".len();
        let token = body[start..].split_whitespace().next().unwrap().to_owned();
        assert!(
            tokens.insert(mail.to[0].clone(), token).is_none(),
            "{} got two links",
            mail.to[0]
        );
    }
    assert_eq!(tokens.len(), USERS);

    // Confirm through the other gateway than the one that asked.
    let confirmations = tokens.iter().enumerate().map(|(n, (_, token))| {
        let http = http.clone();
        let url = at(n, "/reactivate_user");
        let token = token.clone();
        async move { post(&http, url, None, json!({ "token": token })).await.status() }
    });
    for status in futures::future::join_all(confirmations).await {
        assert_eq!(status, 200);
    }

    // Every user: one link, one "reactivated" confirmation. Nothing more,
    // once the relays and workers of both replicas owe nothing.
    mesh.smtp.wait_for(2 * USERS, Duration::from_secs(30)).await;
    mesh.wait_until_nothing_owed().await;
    let mails = mesh.smtp.messages();
    assert_eq!(mails.len(), 2 * USERS, "each email sent exactly once");
    let mut per_user: HashMap<String, usize> = HashMap::new();
    for mail in &mails {
        *per_user.entry(mail.to[0].clone()).or_default() += 1;
    }
    assert!(per_user.values().all(|count| *count == 2), "{per_user:?}");
    let mut message_ids: Vec<String> = mails.iter().filter_map(|mail| mail.header("Message-ID")).collect();
    message_ids.sort();
    message_ids.dedup();
    assert_eq!(message_ids.len(), 2 * USERS);

    // One bootstrap admin although both replicas tried to create it.
    let admin = post(
        &http,
        at(0, "/login"),
        None,
        json!({ "email": "admin@example.com", "password": "staff secret 1234" }),
    )
    .await;
    assert_eq!(admin.status(), 200);
    mesh.shutdown.trigger();
}
