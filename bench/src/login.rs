//! Logins per second through the gateway, against raw argon2id.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use argon2::{Algorithm, Argon2, Params, PasswordHasher as _, Version};
use platform::{
    auth::KeyPair,
    config::ServiceConfig,
    shutdown::Shutdown,
    testing::{TestDatabase, TestKeySpace},
};
use serde_json::json;

use crate::measure::{self, Sample, millis};

const PASSWORD: &str = "benchmark password 1";

pub(crate) async fn run(window: Duration, concurrency: usize) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    println!(
        "login benchmark: {concurrency} concurrent clients, {}s window, {cores} cores",
        window.as_secs()
    );

    let database = TestDatabase::create(&identity_svc::MIGRATOR).await;
    let keys = TestKeySpace::new();
    let pair = KeyPair::generate();
    let shutdown = Shutdown::new();
    let identity = identity_svc::Application::build(identity_svc::Config {
        service: ServiceConfig {
            listen_addr: "127.0.0.1:0".parse()?,
            database_url: database.url.clone(),
            database_max_connections: 10,
            redis_url: keys.url.clone(),
            redis_key_prefix: keys.prefix.clone(),
            jwt_public_key: pair.public_pem.clone(),
            access_token_ttl: Duration::from_secs(900),
            drain_delay: Duration::ZERO,
        },
        jwt_private_key: pair.private_pem,
        password_hash_concurrency: cores,
        bootstrap_admin: None,
    })
    .await?;
    let identity_url = format!("http://{}", identity.local_addr());
    let identity = tokio::spawn(identity.run(shutdown.clone()));
    let gateway = gateway::Application::build(
        gateway::Config {
            listen_addr: "127.0.0.1:0".parse()?,
            identity_url,
            redis_url: keys.url.clone(),
            redis_key_prefix: keys.prefix.clone(),
            jwt_public_key: pair.public_pem,
            access_token_ttl: Duration::from_secs(900),
            downstream_timeout: Duration::from_secs(30),
            cors_allowed_origins: Vec::new(),
            drain_delay: Duration::ZERO,
        },
        shutdown.clone(),
    )
    .await?;
    let base = Arc::new(format!("http://{}", gateway.local_addr()));
    let gateway = tokio::spawn(gateway.run());

    let http = reqwest::Client::new();
    let emails: Vec<String> = (0..concurrency).map(|n| format!("bench{n}@example.com")).collect();
    for email in &emails {
        let response = http
            .post(format!("{base}/register"))
            .json(&json!({ "email": email, "password": PASSWORD }))
            .send()
            .await?;
        anyhow::ensure!(response.status().is_success(), "register failed: {}", response.status());
    }

    // Warm up connections and caches, then measure.
    let _ = drive(&http, &base, &emails, Duration::from_secs(2)).await;
    let mut logins = drive(&http, &base, &emails, window).await;
    let login_rate = logins.latencies.len() as f64 / window.as_secs_f64();
    let (p50, p99) = (logins.percentile(50.0), logins.percentile(99.0));

    let raw_rate = raw_argon2_rate(window, cores).await;
    let ratio = login_rate / raw_rate;

    println!();
    println!(
        "  logins through the gateway   {login_rate:8.1} /s   p50 {:7.1} ms   p99 {:7.1} ms   failures {}",
        millis(p50),
        millis(p99),
        logins.failures
    );
    println!("  raw argon2id on {cores} threads    {raw_rate:8.1} /s   (m=19456 KiB, t=2, p=1: the physical limit)");
    println!(
        "  ratio                        {:8.1} %   (target >= 85 %)",
        ratio * 100.0
    );
    if let Some(rss) = measure::peak_rss_mib() {
        println!("  peak RSS, whole process      {rss:8.1} MiB (gateway + identity-svc + load generator)");
    }
    println!("  for scale: Keycloak publishes 15 password logins/s per vCPU");

    shutdown.trigger();
    identity.await??;
    gateway.await??;
    Ok(())
}

async fn drive(http: &reqwest::Client, base: &Arc<String>, emails: &[String], window: Duration) -> Sample {
    let deadline = Instant::now() + window;
    let workers: Vec<_> = emails
        .iter()
        .cloned()
        .map(|email| {
            let http = http.clone();
            let url = format!("{base}/login");
            tokio::spawn(async move {
                let body = json!({ "email": email, "password": PASSWORD });
                measure::until(deadline, || {
                    let request = http.post(&url).json(&body).send();
                    async move { request.await.is_ok_and(|response| response.status().is_success()) }
                })
                .await
            })
        })
        .collect();
    let mut total = Sample::default();
    for worker in workers {
        if let Ok(sample) = worker.await {
            total.merge(sample);
        }
    }
    total
}

/// argon2id hashes per second with identity-svc's parameters, one thread per core.
async fn raw_argon2_rate(window: Duration, threads: usize) -> f64 {
    let deadline = Instant::now() + window;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                let params = Params::new(19 * 1024, 2, 1, None).expect("valid parameters");
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let _ = argon2.hash_password(PASSWORD.as_bytes());
                    count += 1;
                }
                count
            })
        })
        .collect();
    let mut total = 0;
    for handle in handles {
        total += handle.await.unwrap_or(0);
    }
    total as f64 / window.as_secs_f64()
}
