//! `spawn_app`: a notify-svc of a test's own — fresh database, own Redis key
//! space, port 0, an SMTP sink to deliver to — and a gRPC client to it.

use std::{collections::HashMap, net::SocketAddr, path::PathBuf, time::Duration};

use notify_svc::{
    Application, Config,
    config::{SmtpConfig, SmtpTls, Transport},
};
use platform::{
    auth::{InternalToken, KeyPair, Role, TokenSigner},
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace, smtp::SmtpSink},
};
use proto::notify::v1::{self as pb, notify_service_client::NotifyServiceClient};
use sqlx::PgPool;
use tonic::{Request, transport::Channel};

pub const LINK: &str = "http://127.0.0.1:8080/reactivate?token=tok_4f1c2a9e";

/// One running notify-svc.
pub struct Instance {
    pub address: SocketAddr,
    pub client: NotifyServiceClient<Channel>,
    pub shutdown: Shutdown,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Instance {
    pub async fn start(config: Config) -> Self {
        let application = Application::build(config).await.expect("notify-svc builds");
        let address: SocketAddr = application.local_addr();
        let shutdown = Shutdown::new();
        let server = tokio::spawn(application.run(shutdown.clone()));
        let client = NotifyServiceClient::connect(format!("http://{address}"))
            .await
            .expect("connect");
        Self {
            address,
            client,
            shutdown,
            server,
        }
    }

    /// Stops the server and its worker and waits until both have finished.
    pub async fn stop(self) {
        self.shutdown.trigger();
        self.server.await.expect("server task").expect("server ran");
    }
}

pub struct TestApp {
    pub instance: Instance,
    pub smtp: SmtpSink,
    /// The configuration the instance runs with, to start replicas of it.
    pub config: Config,
    /// Reads the service's table directly, as an operator would.
    pub pool: PgPool,
    pub internal: InternalToken,
    /// The key pair whose public half the service trusts.
    pub keys: KeyPair,
    /// Held so the database and key space live as long as the app.
    _database: TestDatabase,
    key_space: TestKeySpace,
}

/// Fast retries, so failure paths take milliseconds.
pub fn test_config(database: &TestDatabase, key_space: &TestKeySpace, keys: &KeyPair, smtp_port: u16) -> Config {
    Config {
        service: platform::testing::service_config(database, key_space, &keys.public_pem, &InternalToken::generate()),
        transport: Transport::Smtp(SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp_port,
            tls: SmtpTls::None,
            credentials: None,
        }),
        mail_from: notify_svc::config::DEFAULT_MAIL_FROM.into(),
        product_name: "Reactivation".into(),
        public_url: "http://127.0.0.1:8080".into(),
        max_attempts: 8,
        backoff_base: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        poll_interval: Duration::from_millis(50),
        delivery_concurrency: 4,
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// As [`spawn_app`], with the configuration adjusted by `adjust` first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    platform::testing::spans();
    let database = TestDatabase::create(&notify_svc::MIGRATOR).await;
    let key_space = TestKeySpace::new();
    let keys = KeyPair::generate();
    let smtp = SmtpSink::start().await;
    let mut config = test_config(&database, &key_space, &keys, smtp.port());
    adjust(&mut config);
    let instance = Instance::start(config.clone()).await;
    let pool = platform::db::connect(&database.url, 2)
        .await
        .expect("connect to the test database");
    TestApp {
        instance,
        smtp,
        internal: InternalToken::new(config.service.internal_token.clone()),
        config,
        pool,
        keys,
        _database: database,
        key_space,
    }
}

impl TestApp {
    pub fn client(&self) -> NotifyServiceClient<Channel> {
        self.instance.client.clone()
    }

    /// `message` as another service of the mesh sends it.
    pub fn internal<T>(&self, message: T) -> Request<T> {
        let mut request = Request::new(message);
        self.internal.attach(&mut request);
        request
    }

    /// An access token for a fresh account with `roles`.
    pub fn token(&self, roles: Vec<Role>) -> String {
        let signer = TokenSigner::from_pem(&self.keys.private_pem, Duration::from_secs(300)).expect("signer");
        platform::testing::access_token(&signer, &self.key_space, uuid::Uuid::new_v4(), roles)
    }

    pub async fn enqueue(&self, request: pb::EnqueueRequest) -> Result<pb::EnqueueResponse, tonic::Status> {
        self.client()
            .enqueue(self.internal(request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn get_message(&self, message_id: &str) -> Result<pb::Message, tonic::Status> {
        self.client()
            .get_message(self.internal(pb::GetMessageRequest {
                message_id: message_id.into(),
            }))
            .await
            .map(tonic::Response::into_inner)
    }

    /// Polls GetMessage until `done` holds; panics with the last state after
    /// `timeout`.
    pub async fn wait_for_message(
        &self,
        message_id: &str,
        timeout: Duration,
        done: impl Fn(&pb::Message) -> bool,
    ) -> pb::Message {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = self.get_message(message_id).await.expect("get message");
            if done(&message) {
                return message;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "message never reached the expected state; last seen: {message:?}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    pub async fn wait_until_sent(&self, message_id: &str) -> pb::Message {
        self.wait_for_message(message_id, Duration::from_secs(10), |message| {
            message.state() == pb::MessageState::Sent
        })
        .await
    }

    /// Waits until no message is pending: every stored message has had its
    /// last send, so a mail that has not arrived by then never will.
    pub async fn wait_until_nothing_pending(&self) {
        platform::testing::eventually("no message is pending", || async {
            let pending: i64 = sqlx::query_scalar("SELECT count(*) FROM messages WHERE state = 'pending'")
                .fetch_one(&self.pool)
                .await
                .unwrap();
            pending == 0
        })
        .await;
    }
}

/// A reactivation-link request for `recipient` under `key`.
pub fn reactivation_link(recipient: &str, key: &str) -> pb::EnqueueRequest {
    pb::EnqueueRequest {
        template: pb::Template::ReactivationLink.into(),
        recipient: recipient.into(),
        variables: HashMap::from([
            ("link".to_owned(), LINK.to_owned()),
            ("expires_in_hours".to_owned(), "24".to_owned()),
        ]),
        idempotency_key: key.into(),
    }
}

pub fn reason(status: &tonic::Status) -> Option<String> {
    platform::error::reason_of(status)
}

/// The `field` an INVALID_FIELD refusal names.
pub fn field(status: &tonic::Status) -> String {
    let info = tonic_types::StatusExt::get_details_error_info(status).expect("error info");
    info.metadata.get("field").cloned().unwrap_or_default()
}

/// A directory of this test's own under the system's temporary directory,
/// removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> Self {
        Self(std::env::temp_dir().join(format!("notify-svc-test-{}", uuid::Uuid::new_v4().simple())))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
