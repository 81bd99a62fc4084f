//! `rediss://`: the real identity-svc binary keeps its Redis state on a
//! Redis that speaks only TLS, trusting it through the system certificate
//! store — here `SSL_CERT_FILE`, naming a CA made for this test. The Redis
//! server is a local `redis-server --tls-port` this test starts.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use proto::identity::v1::{self as pb, identity_service_client::IdentityServiceClient};

use crate::helpers::test_config;

/// A TLS-only Redis on a spare port, with its throwaway CA; stopped and
/// removed on drop.
struct TlsRedis {
    server: Child,
    port: u16,
    directory: PathBuf,
}

fn run(directory: &Path, program: &str, args: &[&str]) {
    let output = Command::new(program)
        .args(args)
        .current_dir(directory)
        .output()
        .unwrap_or_else(|err| panic!("{program}: {err}"));
    assert!(output.status.success(), "{program} {args:?}: {output:?}");
}

impl TlsRedis {
    fn start() -> Self {
        let directory = std::env::temp_dir().join(format!("redis-tls-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&directory).unwrap();
        std::fs::write(
            directory.join("server.ext"),
            "subjectAltName=DNS:localhost,IP:127.0.0.1\n",
        )
        .unwrap();
        for args in [
            &[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "1",
                "-subj",
                "/CN=Test CA",
            ][..],
            &[
                "req",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-keyout",
                "server.key",
                "-out",
                "server.csr",
                "-subj",
                "/CN=localhost",
            ],
            &[
                "x509",
                "-req",
                "-in",
                "server.csr",
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-out",
                "server.pem",
                "-days",
                "1",
                "-extfile",
                "server.ext",
            ],
        ] {
            run(&directory, "openssl", args);
        }
        let port = platform::testing::free_port();
        let server = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--tls-cert-file",
                "server.pem",
                "--tls-key-file",
                "server.key",
                "--tls-ca-cert-file",
                "ca.pem",
            ])
            .args(["--tls-auth-clients", "no", "--save", "", "--appendonly", "no"])
            .current_dir(&directory)
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server (Debian's speaks TLS)");
        let redis = Self {
            server,
            port,
            directory,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis.cli(&["PING"]).trim() != "PONG" {
            assert!(Instant::now() < deadline, "the TLS Redis did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        redis
    }

    fn cli(&self, args: &[&str]) -> String {
        let output = Command::new("redis-cli")
            .args([
                "--tls",
                "--cacert",
                "ca.pem",
                "-h",
                "localhost",
                "-p",
                &self.port.to_string(),
            ])
            .args(args)
            .current_dir(&self.directory)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.server.kill();
        let _ = self.server.wait();
        let _ = std::fs::remove_dir_all(&self.directory);
    }
}

#[tokio::test]
async fn identity_svc_keeps_its_redis_state_on_a_tls_only_redis() {
    let redis = TlsRedis::start();
    let database = platform::testing::TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = platform::testing::TestKeySpace::new();
    let config = test_config(&database, &keys);
    let port = platform::testing::free_port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_identity-svc"))
        .env("LISTEN_ADDR", format!("127.0.0.1:{port}"))
        .env("DATABASE_URL", config.service.database_url.expose())
        .env("REDIS_URL", format!("rediss://localhost:{}", redis.port))
        .env("SSL_CERT_FILE", redis.directory.join("ca.pem"))
        .env("REDIS_KEY_PREFIX", &keys.prefix)
        .env("JWT_PUBLIC_KEY", &config.service.jwt_public_key)
        .env("JWT_PRIVATE_KEY", config.jwt_private_key.expose())
        .env("INTERNAL_API_TOKEN", config.service.internal_token.expose())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start identity-svc");

    let endpoint = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut client = loop {
        if let Some(status) = child.try_wait().unwrap() {
            panic!("identity-svc exited ({status}): it could not use the TLS Redis");
        }
        match IdentityServiceClient::connect(endpoint.clone()).await {
            Ok(client) => break client,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(50)).await,
            Err(err) => panic!("identity-svc never listened: {err}"),
        }
    };
    // Asking for a link counts against its limits in Redis before answering.
    client
        .request_reactivation(pb::RequestReactivationRequest {
            email: "ada@example.com".into(),
            client_address: "203.0.113.7".into(),
        })
        .await
        .expect("answered");
    let stored = redis.cli(&["--scan", "--pattern", &format!("{}*", keys.prefix)]);
    assert!(
        !stored.trim().is_empty(),
        "no key under {} in the TLS Redis",
        keys.prefix
    );
    // And none in the plain Redis the other tests use.
    assert!(keys.entries().await.is_empty());
}
