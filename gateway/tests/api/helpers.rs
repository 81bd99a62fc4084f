//! `spawn_mesh`: identity-svc and the gateway of a test's own — fresh
//! database, own Redis key space, port 0 — and an HTTP client.

use std::{sync::OnceLock, time::Duration};

use platform::{
    auth::{InternalToken, KeyPair},
    config::Secret,
    shutdown::Shutdown,
    telemetry::Telemetry,
    testing::{SpanCollector, TestDatabase, TestKeySpace},
};
use reqwest::{Response, StatusCode};
use serde_json::{Value, json};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "staff secret 1234";
pub const PASSWORD: &str = "correct horse battery";

static TELEMETRY: OnceLock<(Telemetry, SpanCollector)> = OnceLock::new();

/// Tracing for this test process, with finished spans kept in memory.
pub fn spans() -> SpanCollector {
    TELEMETRY
        .get_or_init(|| {
            let collector = SpanCollector::default();
            let telemetry = platform::telemetry::init_with_exporter("gateway-tests", collector.clone());
            (telemetry, collector)
        })
        .1
        .clone()
}

pub struct TestMesh {
    pub base: String,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
    _database: TestDatabase,
    _keys: TestKeySpace,
}

pub async fn spawn_mesh() -> TestMesh {
    spawn_mesh_with(|_| {}).await
}

pub async fn spawn_mesh_with(adjust: impl FnOnce(&mut gateway::Config)) -> TestMesh {
    spans();
    let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let pair = KeyPair::generate();
    let shutdown = Shutdown::new();

    let internal = InternalToken::generate();
    let identity = identity_svc::Application::build(identity_svc::Config {
        service: platform::testing::service_config(&database, &keys, &pair.public_pem, &internal),
        jwt_private_key: pair.private_pem.clone(),
        password_hash_concurrency: 2,
        bootstrap_admin: Some((ADMIN_EMAIL.into(), Secret::from(ADMIN_PASSWORD))),
    })
    .await
    .expect("identity-svc builds");
    let identity_url = format!("http://{}", identity.local_addr());
    tokio::spawn(identity.run(shutdown.clone()));

    let mut config = gateway::Config {
        listen_addr: "127.0.0.1:0".parse().unwrap(),
        identity_url,
        redis_url: keys.url.clone(),
        redis_key_prefix: keys.prefix.clone(),
        jwt_public_key: pair.public_pem,
        access_token_ttl: Duration::from_secs(900),
        downstream_timeout: Duration::from_secs(5),
        cors_allowed_origins: vec!["https://app.example.com".into()],
        drain_delay: Duration::ZERO,
    };
    adjust(&mut config);
    let gateway = gateway::Application::build(config, shutdown.clone())
        .await
        .expect("gateway builds");
    let base = format!("http://{}", gateway.local_addr());
    tokio::spawn(gateway.run());

    TestMesh {
        base,
        http: reqwest::Client::new(),
        shutdown,
        _database: database,
        _keys: keys,
    }
}

impl TestMesh {
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

    pub async fn get(&self, path: &str, token: Option<&str>) -> Response {
        let mut request = self.http.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("request sent")
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

/// Asserts a problem+json answer and returns its body.
pub async fn problem(response: Response, status: StatusCode) -> Value {
    assert_eq!(response.status(), status);
    let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
    assert_eq!(content_type, "application/problem+json");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["status"], status.as_u16());
    body
}
