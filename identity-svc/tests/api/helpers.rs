//! `spawn_app`: an identity-svc of a test's own — fresh database, own Redis
//! key space, port 0 — and a gRPC client to it.

use std::{net::SocketAddr, time::Duration};

use identity_svc::{Application, Config, accounts::Accounts, config::ReactivationConfig};
use platform::{
    auth::{InternalToken, KeyPair},
    clock::Clock,
    config::Secret,
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace, eventually, eventually_some},
};
use proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};
use tonic::{Request, transport::Channel};

pub const ADMIN_EMAIL: &str = "admin@example.com";
pub const ADMIN_PASSWORD: &str = "staff secret 1234";
pub const PASSWORD: &str = "correct horse battery";

pub struct TestApp {
    pub address: SocketAddr,
    pub client: IdentityServiceClient<Channel>,
    /// The use cases behind the server, for running its jobs by hand.
    pub accounts: Accounts,
    pub database: TestDatabase,
    pub keys: TestKeySpace,
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
        // Nothing listens there: emails wait in the outbox, where tests read them.
        notify_url: "http://127.0.0.1:9".into(),
        billing_url: "http://127.0.0.1:9".into(),
        license_url: "http://127.0.0.1:9".into(),
        outbox_max_backoff: Duration::from_secs(1),
        reactivation: ReactivationConfig {
            public_url: "https://app.example.com".into(),
            token_ttl: Duration::from_secs(3600),
            cooldown: Duration::ZERO,
            max_per_email_per_hour: 100,
            max_per_client_per_hour: 100,
        },
        login: identity_svc::config::LoginConfig::default(),
        retention: Default::default(),
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the configuration adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_at(Clock::system(), adjust).await
}

/// As [`spawn_app_with`], with "now" read from `clock`.
pub async fn spawn_app_at(clock: Clock, adjust: impl FnOnce(&mut Config)) -> TestApp {
    platform::testing::spans();
    let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let mut config = test_config(&database, &keys);
    adjust(&mut config);
    let application = Application::build_with_clock(config, clock)
        .await
        .expect("identity-svc builds");
    let accounts = application.domain();
    let address = application.local_addr();
    let shutdown = Shutdown::new();
    let server = tokio::spawn(application.run(shutdown.clone()));
    let client = IdentityServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    TestApp {
        address,
        client,
        accounts,
        database,
        keys,
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
                client_address: "192.0.2.1".into(),
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

    /// Deactivates `email`'s account with the admin's token and `reason`.
    pub async fn deactivate(&self, email: &str, reason: pb::DeactivationReason) -> pb::User {
        let admin = self.admin_token().await;
        let user = self.login(email, PASSWORD).await.expect("login").user.expect("user");
        self.client
            .clone()
            .deactivate_user(bearer(
                &admin,
                pb::DeactivateUserRequest {
                    user_id: user.id,
                    reason: reason.into(),
                    comment: String::new(),
                },
            ))
            .await
            .expect("deactivate")
            .into_inner()
    }

    pub async fn request_reactivation(&self, email: &str) -> Result<(), tonic::Status> {
        self.client
            .clone()
            .request_reactivation(pb::RequestReactivationRequest {
                email: email.into(),
                client_address: "203.0.113.7".into(),
            })
            .await
            .map(|_| ())
    }

    pub async fn confirm(&self, token: &str) -> Result<pb::User, tonic::Status> {
        self.client
            .clone()
            .confirm_reactivation(pb::ConfirmReactivationRequest { token: token.into() })
            .await
            .map(tonic::Response::into_inner)
    }

    /// The reactivation links waiting in the outbox, oldest first.
    pub async fn outbox_links(&self) -> Vec<String> {
        let pool = platform::db::connect(&self.database.url, 1).await.unwrap();
        let links: Vec<Option<String>> = sqlx::query_scalar(
            "SELECT payload -> 'variables' ->> 'link' FROM outbox \
             WHERE payload ->> 'template' = 'TEMPLATE_REACTIVATION_LINK' ORDER BY created_at, id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        pool.close().await;
        links.into_iter().flatten().collect()
    }

    /// Waits (the link is issued after the answer) for the `count`-th link's token.
    pub async fn wait_for_token(&self, count: usize) -> String {
        eventually_some(
            &format!("reactivation link number {count} is in the outbox"),
            || async {
                let links = self.outbox_links().await;
                let link = links.get(count - 1)?;
                Some(link.rsplit_once("token=").unwrap().1.to_owned())
            },
        )
        .await
    }

    /// Waits until every reactivation request so far is answered: a link
    /// that is not in the outbox by then is never issued.
    pub async fn wait_until_requests_answered(&self) {
        eventually("every reactivation request is answered", || async {
            let pool = platform::db::connect(&self.database.url, 1).await.unwrap();
            let pending: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM outbox WHERE topic = 'identity.reactivation_request' AND delivered_at IS NULL",
            )
            .fetch_one(&pool)
            .await
            .unwrap();
            pool.close().await;
            pending == 0
        })
        .await;
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
