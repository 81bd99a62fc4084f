//! The mesh as real processes: the release binaries of the services and the
//! gateway, started beside this benchmark with a database and key space of
//! their own, so each one's memory can be read from `/proc`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    process::Stdio,
    time::{Duration, Instant},
};

use platform::{
    auth::{InternalToken, KeyPair, Role, TokenSigner},
    testing::{TestDatabase, TestKeySpace},
};
use tokio::process::{Child, Command};

/// One running service process.
#[derive(Debug)]
pub(crate) struct Process {
    pub(crate) name: &'static str,
    child: Child,
}

impl Process {
    pub(crate) fn new(name: &'static str, child: Child) -> Self {
        Self { name, child }
    }

    /// Peak resident memory (`VmHWM`) in MiB.
    pub(crate) fn peak_rss_mib(&self) -> Option<f64> {
        crate::measure::peak_rss_mib_of(self.child.id()?)
    }

    /// SIGTERM, then wait for the graceful drain.
    pub(crate) async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            std::process::Command::new("kill")
                .args(["-TERM", &pid.to_string()])
                .status()?;
        }
        let status = tokio::time::timeout(Duration::from_secs(15), self.child.wait()).await??;
        anyhow::ensure!(status.success(), "{} exited with {status}", self.name);
        Ok(())
    }
}

/// identity-svc and the gateway, running (the `login` scenario).
#[derive(Debug)]
pub(crate) struct Mesh {
    pub(crate) gateway_url: String,
    pub(crate) processes: Vec<Process>,
    _database: TestDatabase,
    _keys: TestKeySpace,
}

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the release binaries are: beside this benchmark's own binary.
pub(crate) fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::current_exe()?
        .parent()
        .map(Path::to_path_buf)
        .ok_or_else(|| anyhow::anyhow!("no directory for the current executable"))?;
    let path = dir.join(name);
    anyhow::ensure!(
        path.exists(),
        "{} is missing; build it first (scripts/bench does: cargo build --release -p {name})",
        path.display()
    );
    Ok(path)
}

/// Stops `processes` one after the other, in the order given.
pub(crate) async fn stop_all(processes: Vec<Process>) -> anyhow::Result<()> {
    for process in processes {
        process.stop().await?;
    }
    Ok(())
}

/// What every process of one benchmark mesh shares (one Redis key space,
/// one token key pair, one internal token, one log setting), and how each
/// is started: from its release binary, killed if the benchmark stops.
pub(crate) struct Launcher {
    common: Vec<(&'static str, String)>,
}

impl Launcher {
    pub(crate) fn new(keys: &TestKeySpace, pair: &KeyPair, logging: &[(&'static str, &str)]) -> Self {
        let mut common = vec![
            ("REDIS_URL", keys.url.expose().clone()),
            ("REDIS_KEY_PREFIX", keys.prefix.clone()),
            ("JWT_PUBLIC_KEY", pair.public_pem.clone()),
            (
                "INTERNAL_API_TOKEN",
                InternalToken::generate().secret().expose().clone(),
            ),
        ];
        common.extend(logging.iter().map(|(name, value)| (*name, (*value).to_owned())));
        Self { common }
    }

    /// Starts identity-svc on `port` with its database at `database`,
    /// signing tokens with `pair`, and `settings` on top.
    pub(crate) fn spawn_identity<'a>(
        &self,
        port: u16,
        database: &TestDatabase,
        pair: &KeyPair,
        settings: impl IntoIterator<Item = (&'a str, String)>,
    ) -> anyhow::Result<Process> {
        let own = [
            ("DATABASE_URL", database.url.expose().clone()),
            ("JWT_PRIVATE_KEY", pair.private_pem.expose().clone()),
        ];
        self.spawn("identity-svc", "identity-svc", port, own.into_iter().chain(settings))
    }

    /// Starts a gateway on `port` in front of identity-svc on
    /// `identity_port`, with `settings` on top.
    pub(crate) fn spawn_gateway<'a>(
        &self,
        port: u16,
        identity_port: u16,
        settings: impl IntoIterator<Item = (&'a str, String)>,
    ) -> anyhow::Result<Process> {
        let own = [("IDENTITY_URL", format!("http://127.0.0.1:{identity_port}"))];
        self.spawn("gateway", "gateway", port, own.into_iter().chain(settings))
    }

    /// Starts the binary `program` as `name`, listening on `port`, with
    /// `settings` on top of the common ones.
    pub(crate) fn spawn<'a>(
        &self,
        name: &'static str,
        program: &str,
        port: u16,
        settings: impl IntoIterator<Item = (&'a str, String)>,
    ) -> anyhow::Result<Process> {
        let child = Command::new(binary(program)?)
            .envs(self.common.iter().map(|(name, value)| (*name, value.as_str())))
            .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
            .envs(settings)
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        Ok(Process::new(name, child))
    }
}

/// Polls `probe` until it holds; an error naming `what` after `within`.
pub(crate) async fn ready<F, Fut>(what: &str, within: Duration, mut probe: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !probe().await {
        anyhow::ensure!(
            Instant::now() < deadline,
            "{what} did not become ready in {} s",
            within.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Whether a failed login through `gateway` answers 401: identity-svc is
/// reached (a 503 would say it is not).
pub(crate) async fn login_reaches_identity(http: &reqwest::Client, gateway: &str) -> bool {
    http.post(format!("{gateway}/login"))
        .json(&serde_json::json!({ "email": "probe@example.com", "password": "probe" }))
        .send()
        .await
        .is_ok_and(|response| response.status() == reqwest::StatusCode::UNAUTHORIZED)
}

impl Mesh {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
        let keys = TestKeySpace::new();
        let pair = KeyPair::generate();
        let launcher = Launcher::new(&keys, &pair, &[("RUST_LOG", "warn")]);
        let identity_port = free_port()?;
        let gateway_port = free_port()?;
        let identity = launcher.spawn_identity(
            identity_port,
            &database,
            &pair,
            // Every login comes from this one address: its limit must not
            // be what is measured.
            [("LOGIN_MAX_PER_CLIENT_PER_MINUTE", "1000000000".to_owned())],
        )?;
        let gateway = launcher.spawn_gateway(
            gateway_port,
            identity_port,
            [("DOWNSTREAM_TIMEOUT_MS", "30000".to_owned())],
        )?;
        let mesh = Self {
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            processes: vec![identity, gateway],
            _database: database,
            _keys: keys,
        };
        // The gateway answers /healthz at once; identity-svc is ready when a
        // call through the gateway reaches it.
        let http = reqwest::Client::new();
        ready("identity-svc and the gateway", Duration::from_secs(30), || {
            login_reaches_identity(&http, &mesh.gateway_url)
        })
        .await?;
        Ok(mesh)
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        stop_all(self.processes).await
    }
}

/// license-svc and two gateways in front of it, one with its validation
/// cache and one without, running (the `validate` scenario).
#[derive(Debug)]
pub(crate) struct LicenseMesh {
    pub(crate) gateway: SocketAddr,
    pub(crate) uncached_gateway: SocketAddr,
    pub(crate) license_url: String,
    /// An admin access token the processes trust, to create keys.
    pub(crate) admin_token: String,
    pub(crate) processes: Vec<Process>,
    _database: TestDatabase,
    _keys: TestKeySpace,
}

impl LicenseMesh {
    /// Starts all three; `pool_size` is license-svc's `DATABASE_MAX_CONNECTIONS`.
    /// They log as deployed (`k8s/base`: JSON, `info`), so the cost of
    /// their spans and logs is part of what is measured.
    pub(crate) async fn start(pool_size: u32) -> anyhow::Result<Self> {
        let database = TestDatabase::create(&license_svc::MIGRATOR).await;
        let keys = TestKeySpace::new();
        let pair = KeyPair::generate();
        let admin_token = platform::testing::access_token(
            &TokenSigner::from_pem(&pair.private_pem, Duration::from_secs(3600))?,
            &keys,
            uuid_for_bench(),
            vec![Role::User, Role::Admin],
        );
        let launcher = Launcher::new(&keys, &pair, &[("RUST_LOG", "info"), ("LOG_FORMAT", "json")]);
        let license_port = free_port()?;
        let gateway_port = free_port()?;
        let uncached_port = free_port()?;
        let license = launcher.spawn(
            "license-svc",
            "license-svc",
            license_port,
            [
                ("DATABASE_URL", database.url.expose().clone()),
                ("DATABASE_MAX_CONNECTIONS", pool_size.to_string()),
            ],
        )?;
        let gateway = |name: &'static str, port: u16, cache_capacity: &str| {
            launcher.spawn(
                name,
                "gateway",
                port,
                [
                    ("LICENSE_URL", format!("http://127.0.0.1:{license_port}")),
                    // One client drives all the load: its limit must not be what is measured.
                    ("VALIDATE_RATE_LIMIT_PER_SEC", "1000000000".to_owned()),
                    ("VALIDATION_CACHE_CAPACITY", cache_capacity.to_owned()),
                ],
            )
        };
        let cached = gateway("gateway", gateway_port, "50000")?;
        let uncached = gateway("gateway (no cache)", uncached_port, "0")?;
        let mesh = Self {
            gateway: SocketAddr::from(([127, 0, 0, 1], gateway_port)),
            uncached_gateway: SocketAddr::from(([127, 0, 0, 1], uncached_port)),
            license_url: format!("http://127.0.0.1:{license_port}"),
            admin_token,
            processes: vec![license, cached, uncached],
            _database: database,
            _keys: keys,
        };
        // Ready when a validation through each gateway reaches license-svc
        // and its database (an unknown key is 404, not 503).
        let http = reqwest::Client::new();
        for gateway in [mesh.gateway, mesh.uncached_gateway] {
            ready("license-svc and the gateways", Duration::from_secs(30), || async {
                http.post(format!("http://{gateway}/api/keys/validate"))
                    .json(&serde_json::json!({ "key": "SK-AAAA-BBBB-CCCC-DDDD" }))
                    .send()
                    .await
                    .is_ok_and(|response| response.status() == reqwest::StatusCode::NOT_FOUND)
            })
            .await?;
        }
        Ok(mesh)
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        stop_all(self.processes).await
    }
}

/// The benchmark's admin: any id will do, the token is what is checked.
fn uuid_for_bench() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xbe9c_0000_0000_4000_8000_0000_0000_0001)
}
