//! `spawn_mesh`: identity-svc, license-svc, notify-svc, billing-svc and the
//! gateway of a test's own — fresh databases, own Redis key space, port 0 —
//! a Stripe double delivering webhooks to the gateway, and an HTTP client.

use std::time::Duration;

use billing_svc::config::StripeConfig;
use notify_svc::config::{SmtpConfig, SmtpTls, Transport};
pub use platform::testing::{eventually, eventually_some};
use platform::{
    auth::{InternalToken, KeyPair},
    clock::Clock,
    config::{Secret, ServiceConfig},
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace, smtp::SmtpSink},
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};
use stripe_double::{CataloguePrice, StripeDouble};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "staff secret 1234";
pub const PASSWORD: &str = "correct horse battery";
pub const STRIPE_WEBHOOK_SECRET: &str = "whsec_test_mesh";

pub struct TestMesh {
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
    /// license-svc, for changes made behind the gateway's back (as billing
    /// makes them).
    pub license_url: String,
    /// The token services present to each other.
    pub internal: InternalToken,
    /// The mail server notify-svc delivers to.
    pub smtp: SmtpSink,
    billing: Restartable<billing_svc::Config>,
    /// Stripe, as billing-svc sees it; webhooks go to the gateway.
    pub stripe: StripeDouble,
    /// "Now" for license-svc, billing-svc, Stripe and the gateway
    /// (identity-svc keeps the real time: tokens must stay valid).
    pub clock: Clock,
    identity_database: TestDatabase,
    license: Restartable<license_svc::Config>,
    pub keys: TestKeySpace,
    notify: PendingNotify,
}

/// notify-svc's settings, kept so it can be started late (to show that
/// emails owed while it was down still arrive).
struct PendingNotify {
    config: notify_svc::Config,
    database: TestDatabase,
}

pub async fn spawn_mesh() -> TestMesh {
    spawn_mesh_with(|_| {}, |_| {}).await
}

/// The mesh with notify-svc not running yet: see [`TestMesh::start_notify`].
pub async fn spawn_mesh_without_notify() -> TestMesh {
    build_mesh(|_| {}, |_| {}, Clock::system()).await
}

/// As [`spawn_mesh`], with license-svc, billing-svc, Stripe and the gateway
/// reading "now" from `clock` (identity-svc keeps the real time: tokens must
/// stay valid).
pub async fn spawn_mesh_at(clock: Clock) -> TestMesh {
    let mesh = build_mesh(|_| {}, |_| {}, clock).await;
    mesh.start_notify().await;
    mesh
}

/// As [`spawn_mesh`], with identity-svc's and the gateway's settings
/// adjusted first.
pub async fn spawn_mesh_with(
    adjust_identity: impl FnOnce(&mut identity_svc::Config),
    adjust_gateway: impl FnOnce(&mut gateway::Config),
) -> TestMesh {
    let mesh = build_mesh(adjust_identity, adjust_gateway, Clock::system()).await;
    mesh.start_notify().await;
    mesh
}

async fn build_mesh(
    adjust_identity: impl FnOnce(&mut identity_svc::Config),
    adjust_gateway: impl FnOnce(&mut gateway::Config),
    clock: Clock,
) -> TestMesh {
    platform::testing::spans();
    let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let pair = KeyPair::generate();
    let shutdown = Shutdown::new();
    let internal = InternalToken::generate();

    // The gateway's address is chosen now: emailed links and Stripe's
    // return pages point at it, so a browser can follow them.
    let gateway_port = platform::testing::free_port();
    let public_url = format!("http://127.0.0.1:{gateway_port}");

    // notify-svc gets a port now, so identity-svc knows where to send.
    let smtp = SmtpSink::start().await;
    let notify_database = TestDatabase::create(&notify_svc::MIGRATOR).await;
    let notify_port = platform::testing::free_port();
    let mut notify_service = platform::testing::service_config(&notify_database, &keys, &pair.public_pem, &internal);
    notify_service.listen_addr = format!("127.0.0.1:{notify_port}").parse().unwrap();
    let notify = PendingNotify {
        config: notify_svc::Config {
            service: notify_service,
            transport: Transport::Smtp(SmtpConfig {
                host: "127.0.0.1".into(),
                port: smtp.port(),
                tls: SmtpTls::None,
                credentials: None,
            }),
            mail_from: notify_svc::config::DEFAULT_MAIL_FROM.into(),
            product_name: "Reactivation".into(),
            public_url: public_url.clone(),
            max_attempts: 8,
            backoff_base: Duration::from_millis(50),
            backoff_max: Duration::from_millis(500),
            poll_interval: Duration::from_millis(50),
            delivery_concurrency: 2,
        },
        database: notify_database,
    };

    // billing-svc too: identity-svc closes accounts there, and it can be
    // stopped and started again on the same port.
    let billing_port = platform::testing::free_port();
    let license_port = platform::testing::free_port();
    let mut identity_config = identity_svc::Config {
        service: platform::testing::service_config(&database, &keys, &pair.public_pem, &internal),
        jwt_private_key: pair.private_pem.clone(),
        password_hash_concurrency: 2,
        bootstrap_admin: Some((ADMIN_EMAIL.into(), Secret::from(ADMIN_PASSWORD))),
        notify_url: format!("http://127.0.0.1:{notify_port}"),
        billing_url: format!("http://127.0.0.1:{billing_port}"),
        license_url: format!("http://127.0.0.1:{license_port}"),
        outbox_max_backoff: Duration::from_secs(1),
        reactivation: identity_svc::config::ReactivationConfig {
            public_url: public_url.clone(),
            token_ttl: Duration::from_secs(3600),
            cooldown: Duration::ZERO,
            max_per_email_per_hour: 100,
            max_per_client_per_hour: 100,
        },
        login: identity_svc::config::LoginConfig::default(),
        retention: Default::default(),
    };
    adjust_identity(&mut identity_config);
    let identity = identity_svc::Application::build(identity_config)
        .await
        .expect("identity-svc builds");
    let identity_url = format!("http://{}", identity.local_addr());
    tokio::spawn(identity.run(shutdown.clone()));

    // license-svc emails keys through the same notify-svc.
    // It can be stopped and started again on the same port.
    let license_database = TestDatabase::create(&license_svc::MIGRATOR).await;
    let license = Restartable {
        config: license_svc::Config {
            service: ServiceConfig {
                listen_addr: format!("127.0.0.1:{license_port}").parse().unwrap(),
                ..platform::testing::service_config(&license_database, &keys, &pair.public_pem, &internal)
            },
            notify_url: format!("http://127.0.0.1:{notify_port}"),
            outbox_max_backoff: Duration::from_secs(1),
            trial_days: 14,
            max_trials_per_customer: 3,
        },
        address: format!("127.0.0.1:{license_port}").parse().unwrap(),
        running: std::sync::Mutex::new(None),
        database: license_database,
    };
    let license_url = format!("http://127.0.0.1:{license_port}");

    // billing-svc, against a Stripe double sharing its clock.
    let catalogue = StripeConfig::default_catalogue()
        .map(|(id, amount, interval)| CataloguePrice::new(id, amount, interval))
        .collect();
    let stripe = StripeDouble::start(stripe_double::Options::new(
        clock.clone(),
        STRIPE_WEBHOOK_SECRET,
        catalogue,
    ))
    .await
    .expect("the Stripe double starts");
    let billing_database = TestDatabase::create(&billing_svc::MIGRATOR).await;
    let mut billing_service = platform::testing::service_config(&billing_database, &keys, &pair.public_pem, &internal);
    billing_service.listen_addr = format!("127.0.0.1:{billing_port}").parse().unwrap();
    let billing = Restartable {
        config: billing_svc::Config {
            service: billing_service,
            stripe: StripeConfig {
                secret_key: Secret::from("sk_test_mesh"),
                webhook_secret: Secret::from(STRIPE_WEBHOOK_SECRET),
                api_base: stripe.url().to_owned(),
                prices: billing_svc::domain::Product::all()
                    .map(|product| (product, StripeConfig::default_price_id(product)))
                    .collect(),
                timeout: Duration::from_secs(5),
            },
            public_url: public_url.clone(),
            expiry_interval: Duration::from_secs(3600),
            license_url: license_url.clone(),
            identity_url: identity_url.clone(),
            outbox_max_backoff: Duration::from_secs(1),
        },
        address: format!("127.0.0.1:{billing_port}").parse().unwrap(),
        running: std::sync::Mutex::new(None),
        database: billing_database,
    };
    let billing_url = format!("http://127.0.0.1:{billing_port}");

    let mut config = gateway::Config {
        listen_addr: format!("127.0.0.1:{gateway_port}").parse().unwrap(),
        identity_url,
        license_url: license_url.clone(),
        billing_url,
        validate_rate_limit_per_sec: 100,
        validation_cache_capacity: 1000,
        validation_cache_max_age: Duration::from_secs(60),
        redis_url: keys.url.clone(),
        redis_key_prefix: keys.prefix.clone(),
        redis_timeout: Duration::from_secs(1),
        jwt_public_key: pair.public_pem,
        access_token_ttl: Duration::from_secs(900),
        downstream_timeout: Duration::from_secs(5),
        cors_allowed_origins: vec!["https://app.example.com".into()],
        drain_delay: Duration::ZERO,
        secure_cookies: false,
        trusted_proxies: Default::default(),
        limits: Default::default(),
    };
    adjust_gateway(&mut config);
    let gateway = gateway::Application::build_with_clock(config, shutdown.clone(), clock.clone())
        .await
        .expect("gateway builds");
    let base = format!("http://{}", gateway.local_addr());
    tokio::spawn(gateway.run());
    stripe.set_webhook_url(format!("{base}/api/stripe/webhook"));

    let mesh = TestMesh {
        base,
        http: reqwest::Client::new(),
        shutdown,
        license_url,
        internal,
        smtp,
        stripe,
        clock,
        identity_database: database,
        license,
        billing,
        keys,
        notify,
    };
    mesh.start_license().await;
    mesh.start_billing().await;
    mesh
}

/// A service a test can stop and start again, on the same port and database.
struct Restartable<C> {
    config: C,
    address: std::net::SocketAddr,
    running: std::sync::Mutex<Option<Shutdown>>,
    database: TestDatabase,
}

impl<C> Restartable<C> {
    /// Records a new run and returns its shutdown.
    fn started(&self) -> Shutdown {
        let shutdown = Shutdown::new();
        let previous = self.running.lock().unwrap().replace(shutdown.clone());
        assert!(previous.is_none(), "already running");
        shutdown
    }

    /// Stops the running service; returns once nothing accepts connections
    /// on its port any more.
    async fn stop(&self) {
        if let Some(shutdown) = self.running.lock().unwrap().take() {
            shutdown.trigger();
        }
        wait_until_closed(self.address).await;
    }
}

/// A registered, logged-in customer and the license key they hold.
pub struct Customer {
    pub id: String,
    pub token: String,
    pub key: String,
}

/// A service of the mesh, whose database a test reads as an operator would.
#[derive(Clone, Copy, Debug)]
pub enum Service {
    Identity,
    License,
    Billing,
    Notify,
}

impl TestMesh {
    /// The single number `sql` answers in `service`'s database, with `value`
    /// bound to `$1`.
    pub async fn count(&self, service: Service, sql: &str, value: &str) -> i64 {
        let database = match service {
            Service::Identity => &self.identity_database,
            Service::License => &self.license.database,
            Service::Billing => &self.billing.database,
            Service::Notify => &self.notify.database,
        };
        let pool = platform::db::connect(&database.url, 1).await.unwrap();
        let count = sqlx::query_scalar(sqlx::AssertSqlSafe(sql.to_owned()))
            .bind(value)
            .fetch_one(&pool)
            .await
            .unwrap();
        pool.close().await;
        count
    }

    /// Starts billing-svc (already started by [`spawn_mesh`]) with the
    /// welcome-back coupons set up at Stripe.
    pub async fn start_billing(&self) {
        let billing = billing_svc::Application::build_with_clock(self.billing.config.clone(), self.clock.clone())
            .await
            .expect("billing-svc builds");
        for offer in billing_svc::domain::WelcomeBack::ALL {
            billing.domain().setup_coupon(offer).await.expect("coupons set up");
        }
        tokio::spawn(billing.run(self.billing.started()));
    }

    /// Stops billing-svc until [`TestMesh::start_billing`]; waits until it no
    /// longer accepts connections.
    pub async fn stop_billing(&self) {
        self.billing.stop().await;
    }

    /// Starts license-svc (already started by [`spawn_mesh`]).
    pub async fn start_license(&self) {
        let license = license_svc::Application::build_with_clock(self.license.config.clone(), self.clock.clone())
            .await
            .expect("license-svc builds");
        tokio::spawn(license.run(self.license.started()));
    }

    /// Stops license-svc until [`TestMesh::start_license`].
    pub async fn stop_license(&self) {
        self.license.stop().await;
    }

    /// Starts notify-svc (already started by [`spawn_mesh`]).
    pub async fn start_notify(&self) {
        let notify = notify_svc::Application::build(self.notify.config.clone())
            .await
            .expect("notify-svc builds");
        tokio::spawn(notify.run(self.shutdown.clone()));
    }

    /// Waits for the `count`-th reactivation email to reach the mail server
    /// and returns the token of its link.
    pub async fn wait_for_token(&self, count: usize) -> String {
        let link = self.wait_for_link(count).await;
        link.rsplit_once("token=").unwrap().1.to_owned()
    }

    /// Waits for the `count`-th reactivation email to reach the mail server
    /// and returns its link, as mailed.
    pub async fn wait_for_link(&self, count: usize) -> String {
        eventually_some(&format!("reactivation email number {count} arrives"), || async {
            let links: Vec<String> = self.smtp.messages().iter().filter_map(reactivation_link).collect();
            links.get(count - 1).cloned()
        })
        .await
    }

    /// Registers `email`, logs in and deactivates the account itself.
    pub async fn register_and_leave(&self, email: &str) {
        self.register(email).await;
        let token = self.token(email, PASSWORD).await;
        let response = self.post("/deactivate_user", Some(&token), json!({})).await;
        assert_eq!(response.status(), StatusCode::OK);
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut request = self.http.post(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    pub async fn patch(&self, path: &str, token: Option<&str>, body: Value) -> Response {
        let mut request = self.http.patch(self.url(path)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
    }

    /// Buys `plan` for `period` through Checkout, paying at the Stripe double
    /// (whose webhooks reach billing through the gateway). Returns the Stripe
    /// subscription id.
    pub async fn subscribe(&self, token: &str, plan: &str, period: &str) -> String {
        let response = self
            .post(
                "/api/create-checkout-session",
                Some(token),
                json!({ "plan": plan, "billing_period": period }),
            )
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        let session = response.json::<Value>().await.unwrap();
        let session_id = session["session_id"].as_str().unwrap();
        self.stripe
            .complete_checkout(session_id)
            .await
            .expect("paid")
            .subscription_id
    }

    /// A registered, logged-in customer holding a trial key support created
    /// for them (buying a plan changes the keys a customer holds).
    pub async fn customer_with_trial_key(&self, email: &str) -> Customer {
        let user = self.register(email).await;
        let id = user["id"].as_str().unwrap().to_owned();
        let token = self.token(email, PASSWORD).await;
        let admin = self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let body = json!({ "email": email, "keyType": "trial", "ownerUserId": id });
        let created = self.post("/api/keys", Some(&admin), body).await;
        assert_eq!(created.status(), StatusCode::CREATED);
        let key = created.json::<Value>().await.unwrap()["data"]["key"]
            .as_str()
            .unwrap()
            .to_owned();
        Customer { id, token, key }
    }

    /// A license key as support sees it.
    pub async fn key(&self, key: &str) -> Value {
        let admin = self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await;
        let response = self.get(&format!("/api/keys/{key}"), Some(&admin)).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["data"].clone()
    }

    pub async fn register(&self, email: &str) -> Value {
        let response = self
            .post("/register", None, json!({ "email": email, "password": PASSWORD }))
            .await;
        assert_eq!(response.status(), StatusCode::CREATED);
        response.json::<Value>().await.unwrap()["user"].clone()
    }

    pub async fn login(&self, email: &str, password: &str) -> Response {
        self.post("/login", None, json!({ "email": email, "password": password }))
            .await
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        let response = self.login(email, password).await;
        assert_eq!(response.status(), StatusCode::OK);
        response.json::<Value>().await.unwrap()["access_token"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

/// Waits until nothing accepts connections at `address`.
async fn wait_until_closed(address: std::net::SocketAddr) {
    eventually(&format!("{address} refuses connections"), || async {
        tokio::net::TcpStream::connect(address).await.is_err()
    })
    .await;
}

/// The link in a reactivation email's plain-text body, if it is one.
pub fn reactivation_link(mail: &platform::testing::smtp::ReceivedMail) -> Option<String> {
    let body = mail.text_body()?;
    let path = body.find("/reactivate?token=")?;
    let start = body[..path].rfind("http://")?;
    body[start..].split_whitespace().next().map(str::to_owned)
}

/// Asserts a problem+json answer and returns its body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    body
}

/// A TCP relay in front of the test Redis that a test can cut and restore,
/// to play a Redis outage as the gateway sees it without touching the
/// server every test shares.
pub struct RedisRelay {
    /// The test Redis's URL, pointing at the relay.
    pub url: Secret<String>,
    up: tokio::sync::watch::Sender<bool>,
}

impl RedisRelay {
    pub async fn start() -> Self {
        let upstream = platform::testing::redis_url();
        // redis://[user:password@]host:port[/db]: only the address changes.
        let rest = upstream.expose().strip_prefix("redis://").expect("a redis:// URL");
        let (authority, path) = rest
            .split_once('/')
            .map_or((rest, ""), |(authority, path)| (authority, path));
        let (credentials, address) = authority
            .rsplit_once('@')
            .map_or(("", authority), |(credentials, address)| (credentials, address));
        let address = address.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let relay_address = listener.local_addr().unwrap();
        let at = if credentials.is_empty() {
            String::new()
        } else {
            format!("{credentials}@")
        };
        let url = Secret::new(format!("redis://{at}{relay_address}/{path}"));
        let (up, _) = tokio::sync::watch::channel(true);
        let watch = up.clone();
        tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                if !*watch.borrow() {
                    continue; // refused: dropped at once
                }
                let mut down = watch.subscribe();
                let address = address.clone();
                tokio::spawn(async move {
                    let Ok(mut server) = tokio::net::TcpStream::connect(&address).await else {
                        return;
                    };
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = down.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        Self { url, up }
    }

    /// Closes every relayed connection and refuses new ones.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}
