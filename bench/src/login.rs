//! Logins per second through the gateway, against raw argon2id.

use std::time::{Duration, Instant};

use argon2::{Algorithm, Argon2, Block, Params, Version};
use serde_json::json;

use crate::{
    measure::{self, Sample, millis},
    processes::Mesh,
};

const PASSWORD: &str = "benchmark password 1";

pub(crate) async fn run(window: Duration, concurrency: usize) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    println!(
        "login benchmark: {concurrency} concurrent clients, {}s window, {cores} cores",
        window.as_secs()
    );
    let mesh = Mesh::start().await?;
    let base = mesh.gateway_url.clone();

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

    // The limit, measured now on the same machine with the mesh idle.
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
    for process in &mesh.processes {
        if let Some(rss) = process.peak_rss_mib() {
            println!("  peak RSS {:<19} {rss:8.1} MiB", process.name);
        }
    }
    println!("  for scale: Keycloak publishes 15 password logins/s per vCPU");
    mesh.stop().await
}

async fn drive(http: &reqwest::Client, base: &str, emails: &[String], window: Duration) -> Sample {
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

/// argon2id hashes per second with identity-svc's parameters, one thread per
/// core, each reusing one memory buffer as identity-svc's hashing threads do:
/// the compute limit itself, without allocating and faulting in 19 MiB per
/// hash.
async fn raw_argon2_rate(window: Duration, threads: usize) -> f64 {
    let deadline = Instant::now() + window;
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            tokio::task::spawn_blocking(move || {
                let params = Params::new(19 * 1024, 2, 1, None).expect("valid parameters");
                let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
                let mut memory = vec![Block::default(); 19 * 1024];
                let salt = [7u8; 16];
                let mut out = [0u8; 32];
                let mut count = 0u64;
                while Instant::now() < deadline {
                    let _ = argon2.hash_password_into_with_memory(PASSWORD.as_bytes(), &salt, &mut out, &mut memory);
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
