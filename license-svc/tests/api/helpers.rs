//! `spawn_app`: a license-svc of a test's own — fresh database, own Redis
//! key space, port 0, a clock pinned to the seed's "today" — and a gRPC
//! client to it, with admin and user tokens signed by a key pair it trusts.

use std::time::Duration;

use chrono::{DateTime, TimeZone as _, Utc};
use license_svc::{Application, Config};
use platform::{
    auth::{InternalToken, KeyPair, Role, TokenSigner},
    clock::Clock,
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace},
};
use proto::license::v1::{self as pb, license_service_client::LicenseServiceClient};
use sqlx::PgPool;
use tonic::{Request, transport::Channel};
use uuid::Uuid;

pub struct TestApp {
    pub client: LicenseServiceClient<Channel>,
    pub clock: Clock,
    pub admin_id: Uuid,
    pub admin: String,
    pub user: String,
    pub internal: InternalToken,
    /// Reads the service's tables directly, as an operator would.
    pub pool: PgPool,
    pub shutdown: Shutdown,
    /// The Redis key space the service works (and announces changes) in.
    pub keys: TestKeySpace,
    _database: TestDatabase,
}

/// The seed's "today": 2024-11-03, mid-morning.
pub fn today() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2024, 11, 3, 10, 30, 0).unwrap()
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    platform::testing::spans();
    let database = TestDatabase::create(&license_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let pair = KeyPair::generate();
    let internal = InternalToken::generate();
    let mut config = Config {
        service: platform::testing::service_config(&database, &keys, &pair.public_pem, &internal),
        // Nothing listens there: emails wait in the outbox, where tests read them.
        notify_url: "http://127.0.0.1:9".into(),
        outbox_max_backoff: Duration::from_secs(1),
        trial_days: 14,
        max_trials_per_customer: 3,
    };
    adjust(&mut config);
    let clock = Clock::manual(today());
    let application = Application::build_with_clock(config, clock.clone())
        .await
        .expect("license-svc builds");
    let address = application.local_addr();
    let shutdown = Shutdown::new();
    tokio::spawn(application.run(shutdown.clone()));
    let client = LicenseServiceClient::connect(format!("http://{address}"))
        .await
        .expect("connect");
    let signer = TokenSigner::from_pem(&pair.private_pem, Duration::from_secs(900)).unwrap();
    let admin_id = Uuid::new_v4();
    TestApp {
        client,
        clock,
        admin_id,
        admin: platform::testing::access_token(&signer, &keys, admin_id, vec![Role::User, Role::Admin]),
        user: platform::testing::access_token(&signer, &keys, Uuid::new_v4(), vec![Role::User]),
        internal,
        pool: platform::db::connect(&database.url, 2).await.unwrap(),
        shutdown,
        keys,
        _database: database,
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

impl TestApp {
    fn client(&self) -> LicenseServiceClient<Channel> {
        self.client.clone()
    }

    pub async fn create(&self, email: &str, key_type: pb::KeyType) -> Result<pb::LicenseKey, tonic::Status> {
        let request = pb::CreateKeyRequest {
            email: email.into(),
            key_type: key_type.into(),
            ..Default::default()
        };
        self.client()
            .create_key(bearer(&self.admin, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn trial(&self, email: &str) -> pb::LicenseKey {
        self.create(email, pb::KeyType::Trial).await.expect("create trial")
    }

    pub async fn get(&self, key: &str) -> Result<pb::LicenseKey, tonic::Status> {
        let request = pb::GetKeyRequest { key: key.into() };
        self.client()
            .get_key(bearer(&self.admin, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn disable(&self, key: &str) -> Result<pb::LicenseKey, tonic::Status> {
        let request = pb::DisableKeyRequest { key: key.into() };
        self.client()
            .disable_key(bearer(&self.admin, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn reactivate(&self, key: &str) -> Result<pb::LicenseKey, tonic::Status> {
        let request = pb::ReactivateKeyRequest { key: key.into() };
        self.client()
            .reactivate_key(bearer(&self.admin, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn close_deal(&self, key: &str) -> Result<pb::LicenseKey, tonic::Status> {
        let request = pb::CloseDealRequest { key: key.into() };
        self.client()
            .close_deal(bearer(&self.admin, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn extend(&self, key: &str, days: u32) -> Result<pb::LicenseKey, tonic::Status> {
        let request = pb::ExtendKeyRequest { key: key.into(), days };
        self.client()
            .extend_key(bearer(&self.admin, request))
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn validate(&self, key: &str) -> Result<pb::ValidateKeyResponse, tonic::Status> {
        self.client()
            .validate_key(pb::ValidateKeyRequest { key: key.into() })
            .await
            .map(tonic::Response::into_inner)
    }

    pub async fn history(&self, key: &str) -> Vec<pb::KeyHistoryEntry> {
        let request = pb::GetKeyHistoryRequest { key: key.into() };
        self.client()
            .get_key_history(bearer(&self.admin, request))
            .await
            .expect("history")
            .into_inner()
            .entries
    }
}

pub fn expiry(key: &pb::LicenseKey) -> Option<DateTime<Utc>> {
    key.expires_at.as_ref().and_then(platform::wire::from_timestamp)
}

impl Drop for TestApp {
    /// The server stops with its test, before the database is dropped.
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}
