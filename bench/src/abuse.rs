//! `abuse`: hostile traffic against the real binaries, one figure per case
//! (how long, how much memory, what was answered). Nothing here asserts a
//! wall-clock time; a case fails only when the mesh answers wrongly — an
//! honest call refused, a forged header that dodges a limit, a victim left
//! without a link.

use std::time::{Duration, Instant};

use platform::{
    auth::KeyPair,
    testing::{TestDatabase, TestKeySpace},
};
use proto::billing::v1::{HandleStripeWebhookRequest, billing_service_client::BillingServiceClient};
use serde_json::json;
use tokio::{io::AsyncWriteExt as _, net::TcpStream};

use crate::{
    measure::millis,
    processes::{Launcher, Process, free_port, login_reaches_identity, ready, stop_all},
};

const PASSWORD: &str = "an honest password";
/// identity-svc's manifest: its memory limit is what the login flood must fit in.
const IDENTITY_MANIFEST: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../k8s/base/identity-svc.yaml");

/// The `limits: { …, memory: <n>Mi }` of identity-svc's container.
fn identity_memory_limit_mib() -> anyhow::Result<f64> {
    let manifest = std::fs::read_to_string(IDENTITY_MANIFEST)?;
    manifest
        .lines()
        .filter_map(|line| line.trim().strip_prefix("limits:"))
        .find_map(|limits| limits.split("memory:").nth(1))
        .and_then(|memory| memory.trim().trim_end_matches('}').trim().strip_suffix("Mi"))
        .and_then(|mib| mib.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no memory limit in {IDENTITY_MANIFEST}"))
}

/// identity-svc, billing-svc and a gateway behind one trusted proxy hop.
struct Mesh {
    gateway: String,
    billing: String,
    identity_database: TestDatabase,
    keys: TestKeySpace,
    processes: Vec<Process>,
    _billing_database: TestDatabase,
}

impl Mesh {
    async fn start() -> anyhow::Result<Self> {
        let identity_database = TestDatabase::create(&identity_svc::MIGRATOR).await;
        let billing_database = TestDatabase::create(&billing_svc::MIGRATOR).await;
        let keys = TestKeySpace::new();
        let pair = KeyPair::generate();
        let launcher = Launcher::new(&keys, &pair, &[("RUST_LOG", "error")]);
        let (identity_port, billing_port, gateway_port) = (free_port()?, free_port()?, free_port()?);
        let identity = launcher.spawn_identity(
            identity_port,
            &identity_database,
            &pair,
            [
                // The flood comes from one address here: the per-client
                // limit must not be what stops it, the queue must.
                ("LOGIN_MAX_PER_CLIENT_PER_MINUTE", "1000000".to_owned()),
                ("REACTIVATION_MAX_PER_CLIENT_PER_HOUR", "5".to_owned()),
                ("NOTIFY_URL", "http://127.0.0.1:9".to_owned()),
            ],
        )?;
        let billing = launcher.spawn(
            "billing-svc",
            "billing-svc",
            billing_port,
            [
                ("DATABASE_URL", billing_database.url.expose().clone()),
                ("STRIPE_SECRET_KEY", "sk_test_abuse".to_owned()),
                ("STRIPE_WEBHOOK_SECRET", "whsec_abuse".to_owned()),
                ("STRIPE_API_BASE", "http://127.0.0.1:9".to_owned()),
                ("IDENTITY_URL", format!("http://127.0.0.1:{identity_port}")),
            ],
        )?;
        let gateway = launcher.spawn_gateway(
            gateway_port,
            identity_port,
            [
                ("BILLING_URL", format!("http://127.0.0.1:{billing_port}")),
                ("TRUSTED_PROXIES", "1".to_owned()),
                ("DOWNSTREAM_TIMEOUT_MS", "30000".to_owned()),
                ("REQUEST_TIMEOUT_MS", "40000".to_owned()),
            ],
        )?;
        let mesh = Self {
            gateway: format!("http://127.0.0.1:{gateway_port}"),
            billing: format!("http://127.0.0.1:{billing_port}"),
            identity_database,
            keys,
            processes: vec![identity, billing, gateway],
            _billing_database: billing_database,
        };
        let http = reqwest::Client::new();
        ready("the mesh", Duration::from_secs(60), || async {
            login_reaches_identity(&http, &mesh.gateway).await
                && BillingServiceClient::connect(mesh.billing.clone()).await.is_ok()
        })
        .await?;
        Ok(mesh)
    }

    fn peak_rss(&self, name: &str) -> f64 {
        self.processes
            .iter()
            .find(|process| process.name == name)
            .and_then(Process::peak_rss_mib)
            .unwrap_or(f64::NAN)
    }
}

pub(crate) async fn run() -> anyhow::Result<()> {
    println!("abuse suite: identity-svc, billing-svc and a gateway as real processes");
    let mesh = Mesh::start().await?;
    let http = reqwest::Client::builder().pool_max_idle_per_host(0).build()?;
    webhook_flood(&mesh, &http).await?;
    login_flood(&mesh, &http).await?;
    idle_connections(&mesh, &http).await?;
    forged_forwarded_for(&mesh, &http).await?;
    victims_reactivation(&mesh, &http).await?;
    stop_all(mesh.processes).await?;
    println!("\nabuse suite: every case answered as it must");
    Ok(())
}

async fn webhook_flood(mesh: &Mesh, http: &reqwest::Client) -> anyhow::Result<()> {
    println!("\n# webhook: 100,000 `v1` entries and a 1 MB body");
    let signature = format!("t={}{}", chrono_now(), ",v1=".repeat(100_000));
    let body = vec![b' '; 1_000_000];

    let started = Instant::now();
    let response = http
        .post(format!("{}/api/stripe/webhook", mesh.gateway))
        .header("stripe-signature", &signature)
        .body(body.clone())
        .send()
        .await;
    let status = response.map(|response| response.status().as_u16());
    println!(
        "  through the gateway          {status:?} in {:8.1} ms",
        millis(started.elapsed())
    );
    anyhow::ensure!(
        matches!(status, Ok(400 | 431) | Err(_)),
        "the gateway took the flood: {status:?}"
    );

    // Straight at billing-svc, ten at once, with an honest call meanwhile.
    let client = BillingServiceClient::connect(mesh.billing.clone())
        .await?
        .max_decoding_message_size(8 * 1024 * 1024)
        .max_encoding_message_size(8 * 1024 * 1024);
    let started = Instant::now();
    let floods = (0..10).map(|_| {
        let mut client = client.clone();
        let request = HandleStripeWebhookRequest {
            payload: body.clone(),
            signature: signature.clone(),
        };
        async move {
            client
                .handle_stripe_webhook(request)
                .await
                .map_err(|status| status.code())
        }
    });
    let honest = async {
        let started = Instant::now();
        let mut client = client.clone();
        let answer = client
            .handle_stripe_webhook(HandleStripeWebhookRequest {
                payload: b"{}".to_vec(),
                signature: format!("t={},v1={}", chrono_now(), "0".repeat(64)),
            })
            .await;
        (answer.map(|_| ()).map_err(|status| status.code()), started.elapsed())
    };
    let (floods, (honest, honest_took)) = tokio::join!(futures::future::join_all(floods), honest);
    let refused = floods
        .iter()
        .filter(|answer| matches!(answer, Err(tonic::Code::InvalidArgument)))
        .count();
    println!(
        "  10 at billing-svc            {refused}/10 refused (INVALID_ARGUMENT) in {:8.1} ms",
        millis(started.elapsed())
    );
    println!(
        "  another call meanwhile       {:?} in {:8.1} ms",
        honest,
        millis(honest_took)
    );
    println!(
        "  billing-svc peak RSS         {:8.1} MiB",
        mesh.peak_rss("billing-svc")
    );
    anyhow::ensure!(refused == 10, "a flooded webhook was not refused");
    anyhow::ensure!(
        honest == Err(tonic::Code::InvalidArgument),
        "billing-svc did not answer the other call: {honest:?}"
    );
    Ok(())
}

async fn login_flood(mesh: &Mesh, http: &reqwest::Client) -> anyhow::Result<()> {
    println!("\n# logins: 500 at the length cap and 200 oversized, at once");
    register(http, &mesh.gateway, "owner@example.com").await?;
    let at_cap = "p".repeat(127) + "!";
    let oversized = "p".repeat(100_000);
    let send = |n: usize, password: String| {
        let request = http
            .post(format!("{}/login", mesh.gateway))
            .header("x-forwarded-for", format!("198.51.100.{}", n % 250))
            .json(&json!({ "email": format!("flood{n}@example.com"), "password": password }))
            .send();
        async move { request.await.map(|response| response.status().as_u16()).unwrap_or(0) }
    };
    let started = Instant::now();
    let flood = (0..500)
        .map(|n| send(n, at_cap.clone()))
        .chain((500..700).map(|n| send(n, oversized.clone())));
    let honest = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let started = Instant::now();
        for _ in 0..20 {
            let response = http
                .post(format!("{}/login", mesh.gateway))
                .header("x-forwarded-for", "192.0.2.10")
                .json(&json!({ "email": "owner@example.com", "password": PASSWORD }))
                .send()
                .await?;
            let status = response.status().as_u16();
            if status == 200 {
                return Ok::<_, anyhow::Error>((status, started.elapsed()));
            }
            // Told to come back: do as told.
            let wait = response
                .headers()
                .get("retry-after")
                .and_then(|value| value.to_str().ok()?.parse().ok())
                .unwrap_or(1);
            tokio::time::sleep(Duration::from_secs(wait)).await;
        }
        Ok((0, started.elapsed()))
    };
    let (statuses, honest) = tokio::join!(futures::future::join_all(flood), honest);
    let took = started.elapsed();
    let count = |code: u16| statuses.iter().filter(|status| **status == code).count();
    println!(
        "  answers                      401 {}  429 {}  503 {}  413 {}  400 {}  other {}   in {:8.1} ms",
        count(401),
        count(429),
        count(503),
        count(413),
        count(400),
        statuses.len() - [401, 429, 503, 413, 400].iter().map(|code| count(*code)).sum::<usize>(),
        millis(took)
    );
    let (honest_status, honest_took) = honest?;
    println!(
        "  honest login meanwhile       {honest_status} after {:8.1} ms",
        millis(honest_took)
    );
    let rss = mesh.peak_rss("identity-svc");
    let limit = identity_memory_limit_mib()?;
    println!("  identity-svc peak RSS        {rss:8.1} MiB   (Kubernetes limit {limit} MiB)");
    anyhow::ensure!(honest_status == 200, "the honest login did not get through");
    anyhow::ensure!(count(429) + count(503) > 0, "the queue never said it was full");
    anyhow::ensure!(!rss.is_nan(), "identity-svc's peak memory could not be read");
    anyhow::ensure!(rss <= limit, "identity-svc outgrew its limit");
    Ok(())
}

async fn idle_connections(mesh: &Mesh, http: &reqwest::Client) -> anyhow::Result<()> {
    println!("\n# 1,000 idle or byte-a-second connections");
    let address = mesh.gateway.trim_start_matches("http://").to_owned();
    let mut connections = Vec::new();
    for n in 0..1000 {
        let mut stream = TcpStream::connect(&address).await?;
        if n % 2 == 0 {
            stream.write_all(b"POST /login HTTP/1.1\r\nHost: x\r\n").await?;
        }
        connections.push(stream);
    }
    let trickle = tokio::spawn(async move {
        for _ in 0..5 {
            for stream in connections.iter_mut().step_by(2) {
                let _ = stream.write_all(b"X").await;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        connections
    });
    let started = Instant::now();
    let health = http.get(format!("{}/healthz", mesh.gateway)).send().await?.status();
    let health_took = started.elapsed();
    let started = Instant::now();
    let login = http
        .post(format!("{}/login", mesh.gateway))
        .header("x-forwarded-for", "192.0.2.11")
        .json(&json!({ "email": "owner@example.com", "password": PASSWORD }))
        .send()
        .await?
        .status();
    let login_took = started.elapsed();
    println!(
        "  /healthz                     {health} in {:8.1} ms",
        millis(health_took)
    );
    println!(
        "  login                        {login} in {:8.1} ms",
        millis(login_took)
    );
    println!("  gateway peak RSS             {:8.1} MiB", mesh.peak_rss("gateway"));
    drop(trickle.await?);
    anyhow::ensure!(
        health.is_success() && login.is_success(),
        "the gateway stopped answering"
    );
    Ok(())
}

async fn forged_forwarded_for(mesh: &Mesh, http: &reqwest::Client) -> anyhow::Result<()> {
    println!("\n# forged X-Forwarded-For: 50 link requests, a new forged address each");
    let mut statuses = Vec::new();
    for n in 0..50 {
        let response = http
            .post(format!("{}/reactivate_user", mesh.gateway))
            .header("x-forwarded-for", format!("10.0.{n}.1, 2001:db8::{n:x}, 203.0.113.50"))
            .json(&json!({ "email": format!("forger{n}@example.com") }))
            .send()
            .await?;
        statuses.push(response.status().as_u16());
    }
    let accepted = statuses.iter().filter(|status| **status == 202).count();
    let keys = mesh
        .keys
        .entries()
        .await
        .into_iter()
        .filter(|(key, _)| key.contains(":limit:reactivation-client:"))
        .count();
    println!("  accepted                     {accepted} of 50 (the limit is 5 per client)");
    println!("  limiter keys for clients     {keys}");
    anyhow::ensure!(accepted == 5, "forged addresses dodged the limit");
    anyhow::ensure!(keys == 1, "forged addresses made new limiter keys");
    Ok(())
}

async fn victims_reactivation(mesh: &Mesh, http: &reqwest::Client) -> anyhow::Result<()> {
    println!("\n# an attacker asking for a victim's links, from 40 addresses");
    register(http, &mesh.gateway, "victim@example.com").await?;
    let token = login_token(http, &mesh.gateway, "victim@example.com").await?;
    let response = http
        .post(format!("{}/deactivate_user", mesh.gateway))
        .bearer_auth(token)
        .json(&json!({}))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "deactivate: {}", response.status());
    let mut accepted = 0;
    for n in 0..40 {
        let response = http
            .post(format!("{}/reactivate_user", mesh.gateway))
            .header("x-forwarded-for", format!("203.0.113.{n}"))
            .json(&json!({ "email": "victim@example.com" }))
            .send()
            .await?;
        accepted += usize::from(response.status().as_u16() == 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pool = platform::db::connect(&mesh.identity_database.url, 1).await?;
    let links: i64 =
        sqlx::query_scalar("SELECT count(*) FROM outbox WHERE payload ->> 'template' = 'TEMPLATE_REACTIVATION_LINK'")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    println!("  accepted                     {accepted} of 40 (one per cooldown)");
    println!("  links sent to the victim     {links} (the first stays valid: none replaced it)");
    anyhow::ensure!(links == 1, "the victim's link was replaced or never sent");
    Ok(())
}

async fn register(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<()> {
    let response = http
        .post(format!("{base}/register"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?;
    anyhow::ensure!(response.status().is_success(), "register: {}", response.status());
    Ok(())
}

async fn login_token(http: &reqwest::Client, base: &str, email: &str) -> anyhow::Result<String> {
    let response: serde_json::Value = http
        .post(format!("{base}/login"))
        .header("x-forwarded-for", "192.0.2.12")
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await?
        .json()
        .await?;
    response["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| anyhow::anyhow!("no token: {response}"))
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs() as i64)
}
