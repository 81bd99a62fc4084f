//! `spawn_app`: an identity-svc of a test's own — fresh database, own Redis
//! key space, port 0 — and a gRPC client to it.

use std::{net::SocketAddr, sync::OnceLock};

use identity_svc::{Application, Config};
use platform::{
    auth::{InternalToken, KeyPair},
    config::Secret,
    shutdown::Shutdown,
    telemetry::Telemetry,
    testing::{SpanCollector, TestDatabase, TestKeySpace},
};
use proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use tonic::{Request, transport::Channel};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "staff secret 1234";
pub const PASSWORD: &str = "correct horse battery";

static TELEMETRY: OnceLock<(Telemetry, SpanCollector)> = OnceLock::new();

/// Installs tracing once per test process, so events get trace ids.
pub fn spans() -> SpanCollector {
    TELEMETRY
        .get_or_init(|| {
            let collector = SpanCollector::default();
            let telemetry = platform::telemetry::init_with_exporter("identity-tests", collector.clone());
            (telemetry, collector)
        })
        .1
        .clone()
}

pub struct TestApp {
    pub address: SocketAddr,
    pub client: IdentityServiceClient<Channel>,
    /// Held so the database and key space live as long as the app.
    _database: TestDatabase,
    _keys: TestKeySpace,
    pub shutdown: Shutdown,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub fn test_config(database: &TestDatabase, keys: &TestKeySpace) -> Config {
    let pair = KeyPair::generate();
    Config {
        service: platform::testing::service_config(database, keys, &pair.public_pem, &InternalToken::generate()),
        jwt_private_key: pair.private_pem,
        password_hash_concurrency: 2,
        bootstrap_admin: Some((ADMIN_EMAIL.into(), Secret::from(ADMIN_PASSWORD))),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the configuration adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spans();
    let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let mut config = test_config(&database, &keys);
    adjust(&mut config);
    let application = Application::build(config).await.expect("identity-svc builds");
    let address = application.local_addr();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run(shutdown.clone()));
    let client = IdentityServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    TestApp {
        address,
        client,
        _database: database,
        _keys: keys,
        shutdown,
        server,
    }
}

impl TestApp {
    pub async fn register(&self, email: &str) -> pb::User {
        self.client
            .clone()
            .register(pb::RegisterRequest {
                email: email.into(),
                password: PASSWORD.into(),
            })
            .await
            .expect("register")
            .into_inner()
            .user
            .expect("user")
    }

    pub async fn login(&self, email: &str, password: &str) -> Result<pb::LoginResponse, tonic::Status> {
        self.client
            .clone()
            .login(pb::LoginRequest {
                email: email.into(),
                password: password.into(),
            })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn token(&self, email: &str, password: &str) -> String {
        self.login(email, password).await.expect("login").access_token
    }

    pub async fn admin_token(&self) -> String {
        self.token(ADMIN_EMAIL, ADMIN_PASSWORD).await
    }

    /// Stops the server and waits until it has drained.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.server.await.expect("server task").expect("server ran");
    }
}

/// `message` with `authorization: Bearer <token>`.
pub fn bearer<T>(token: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse().unwrap());
    request
}

pub fn reason(status: &tonic::Status) -> Option<String> {
    platform::error::reason_of(status)
}
