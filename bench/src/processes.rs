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
    /// Peak resident memory (`VmHWM`) in MiB.
    pub(crate) fn peak_rss_mib(&self) -> Option<f64> {
        crate::measure::peak_rss_mib_of(self.child.id()?)
    }

    /// SIGTERM, then wait for the graceful drain.
    async fn stop(mut self) -> anyhow::Result<()> {
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

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where the release binaries are: beside this benchmark's own binary.
fn binary(name: &str) -> anyhow::Result<PathBuf> {
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

impl Mesh {
    pub(crate) async fn start() -> anyhow::Result<Self> {
        let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
        let keys = TestKeySpace::new();
        let pair = KeyPair::generate();
        let identity_port = free_port()?;
        let gateway_port = free_port()?;
        let common = [
            ("REDIS_URL", keys.url.expose().clone()),
            ("REDIS_KEY_PREFIX", keys.prefix.clone()),
            ("JWT_PUBLIC_KEY", pair.public_pem.clone()),
            (
                "INTERNAL_API_TOKEN",
                InternalToken::generate().secret().expose().clone(),
            ),
            ("RUST_LOG", "warn".to_owned()),
        ];
        let identity = Command::new(binary("identity-svc")?)
            .envs(common.clone())
            .env("LISTEN_ADDR", format!("127.0.0.1:{identity_port}"))
            .env("DATABASE_URL", database.url.expose())
            .env("JWT_PRIVATE_KEY", pair.private_pem.expose())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let gateway = Command::new(binary("gateway")?)
            .envs(common)
            .env("LISTEN_ADDR", format!("127.0.0.1:{gateway_port}"))
            .env("IDENTITY_URL", format!("http://127.0.0.1:{identity_port}"))
            .env("DOWNSTREAM_TIMEOUT_MS", "30000")
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let mesh = Self {
            gateway_url: format!("http://127.0.0.1:{gateway_port}"),
            processes: vec![
                Process {
                    name: "identity-svc",
                    child: identity,
                },
                Process {
                    name: "gateway",
                    child: gateway,
                },
            ],
            _database: database,
            _keys: keys,
        };
        mesh.wait_until_ready().await?;
        Ok(mesh)
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // The gateway answers /healthz at once; identity-svc is ready when a
        // call through the gateway reaches it (a bad login is 401, not 503).
        loop {
            let probe = http
                .post(format!("{}/login", self.gateway_url))
                .json(&serde_json::json!({ "email": "probe@example.com", "password": "probe" }))
                .send()
                .await;
            if probe.is_ok_and(|response| response.status() == reqwest::StatusCode::UNAUTHORIZED) {
                return Ok(());
            }
            anyhow::ensure!(Instant::now() < deadline, "the mesh did not become ready in 30 s");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        for process in self.processes {
            process.stop().await?;
        }
        Ok(())
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
        let admin_token = TokenSigner::from_pem(&pair.private_pem, Duration::from_secs(3600))?.sign(
            uuid_for_bench(),
            vec![Role::User, Role::Admin],
            0,
        )?;
        let license_port = free_port()?;
        let gateway_port = free_port()?;
        let uncached_port = free_port()?;
        let common = [
            ("REDIS_URL", keys.url.expose().clone()),
            ("REDIS_KEY_PREFIX", keys.prefix.clone()),
            ("JWT_PUBLIC_KEY", pair.public_pem.clone()),
            (
                "INTERNAL_API_TOKEN",
                InternalToken::generate().secret().expose().clone(),
            ),
            ("RUST_LOG", "info".to_owned()),
            ("LOG_FORMAT", "json".to_owned()),
        ];
        let license = Command::new(binary("license-svc")?)
            .envs(common.clone())
            .env("LISTEN_ADDR", format!("127.0.0.1:{license_port}"))
            .env("DATABASE_URL", database.url.expose())
            .env("DATABASE_MAX_CONNECTIONS", pool_size.to_string())
            .stdout(Stdio::null())
            .kill_on_drop(true)
            .spawn()?;
        let gateway = |port: u16, cache_capacity: &str| {
            Command::new(binary("gateway")?)
                .envs(common.clone())
                .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
                .env("LICENSE_URL", format!("http://127.0.0.1:{license_port}"))
                // One client drives all the load: its limit must not be what is measured.
                .env("VALIDATE_RATE_LIMIT_PER_SEC", "1000000000")
                .env("VALIDATION_CACHE_CAPACITY", cache_capacity)
                .stdout(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .map_err(anyhow::Error::from)
        };
        let cached = gateway(gateway_port, "50000")?;
        let uncached = gateway(uncached_port, "0")?;
        let mesh = Self {
            gateway: SocketAddr::from(([127, 0, 0, 1], gateway_port)),
            uncached_gateway: SocketAddr::from(([127, 0, 0, 1], uncached_port)),
            license_url: format!("http://127.0.0.1:{license_port}"),
            admin_token,
            processes: vec![
                Process {
                    name: "license-svc",
                    child: license,
                },
                Process {
                    name: "gateway",
                    child: cached,
                },
                Process {
                    name: "gateway (no cache)",
                    child: uncached,
                },
            ],
            _database: database,
            _keys: keys,
        };
        mesh.wait_until_ready().await?;
        Ok(mesh)
    }

    async fn wait_until_ready(&self) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        // Ready when a validation through each gateway reaches license-svc
        // and its database (an unknown key is 404, not 503).
        for gateway in [self.gateway, self.uncached_gateway] {
            loop {
                let probe = http
                    .post(format!("http://{gateway}/api/keys/validate"))
                    .json(&serde_json::json!({ "key": "SK-AAAA-BBBB-CCCC-DDDD" }))
                    .send()
                    .await;
                if probe.is_ok_and(|response| response.status() == reqwest::StatusCode::NOT_FOUND) {
                    break;
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "license-svc and the gateways did not become ready in 30 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    pub(crate) async fn stop(self) -> anyhow::Result<()> {
        for process in self.processes {
            process.stop().await?;
        }
        Ok(())
    }
}

/// The benchmark's admin: any id will do, the token is what is checked.
fn uuid_for_bench() -> uuid::Uuid {
    uuid::Uuid::from_u128(0xbe9c_0000_0000_4000_8000_0000_0000_0001)
}
