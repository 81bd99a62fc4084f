//! License validations per second — the public hot path products call —
//! through the gateway with its validation cache (HTTP → gateway, and on a
//! miss → gRPC → license-svc → Postgres), through a gateway without it, and
//! directly over gRPC, against raw Postgres select-only throughput measured
//! in the same run with pgbench (prepared statements, TCP): each uncached
//! validation is one primary-key select, so that is the floor under
//! everything above it.

use std::{
    net::SocketAddr,
    process::Stdio,
    sync::Arc,
    time::{Duration, Instant},
};

use platform::config::Secret;
use proto::license::v1::{self as pb, license_service_client::LicenseServiceClient};
use tonic::transport::Channel;

use crate::{
    http_load::{self, Outcome},
    measure::{self, Sample, millis},
    processes::LicenseMesh,
};

/// Keys created before measuring; each request picks the next one.
const KEYS: usize = 500;
/// gRPC connections the direct run spreads its requests over (the gateway,
/// like any tonic client, multiplexes over one).
const CHANNELS: usize = 4;
const PGBENCH_SECONDS: u64 = 10;
const WARM_UP: Duration = Duration::from_secs(2);
/// What a validation of a valid key answers.
const VALID: &str = r#""valid":true"#;

pub(crate) async fn run(window: Duration, concurrency: usize) -> anyhow::Result<()> {
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    println!(
        "validate benchmark: {concurrency} in flight, {}s window, {KEYS} keys, {cores} cores",
        window.as_secs()
    );
    let mesh = LicenseMesh::start(16).await?;
    let keys = create_keys(&mesh).await?;

    let cached = through_gateway(mesh.gateway, &keys, concurrency, window).await?;
    let uncached = through_gateway(mesh.uncached_gateway, &keys, concurrency, window).await?;

    let mut channels = Vec::new();
    for _ in 0..CHANNELS {
        channels.push(Channel::from_shared(mesh.license_url.clone())?.connect().await?);
    }
    let _ = over_grpc(&channels, &keys, concurrency, WARM_UP).await;
    let mut grpc = over_grpc(&channels, &keys, concurrency, window).await;

    // The limit, measured now on the same machine with the mesh idle.
    let raw_tps = raw_postgres_tps().await?;

    let rate = |sample: &Sample| sample.latencies.len() as f64 / window.as_secs_f64();
    let Outcome {
        sample: mut gateway,
        cache_hits,
    } = cached;
    let mut uncached = uncached.sample;
    let gateway_rate = rate(&gateway);
    let uncached_rate = rate(&uncached);
    let grpc_rate = rate(&grpc);
    let gateway_p99 = gateway.percentile(99.0);
    let hit_ratio = cache_hits as f64 / (gateway.latencies.len() as f64).max(1.0) * 100.0;
    println!();
    println!(
        "  validations through the gateway  {gateway_rate:9.0} /s   p50 {:6.2} ms   p99 {:6.2} ms   failures {}   cache hits {hit_ratio:.1} %",
        millis(gateway.percentile(50.0)),
        millis(gateway_p99),
        gateway.failures
    );
    println!(
        "  … gateway with its cache off     {uncached_rate:9.0} /s   p50 {:6.2} ms   p99 {:6.2} ms   failures {}",
        millis(uncached.percentile(50.0)),
        millis(uncached.percentile(99.0)),
        uncached.failures
    );
    println!(
        "  validations over gRPC (direct)   {grpc_rate:9.0} /s   p50 {:6.2} ms   p99 {:6.2} ms   failures {}",
        millis(grpc.percentile(50.0)),
        millis(grpc.percentile(99.0)),
        grpc.failures
    );
    println!(
        "  raw Postgres select-only         {raw_tps:9.0} TPS  (pgbench -S -M prepared -c 8 -j 2 -T {PGBENCH_SECONDS} -h 127.0.0.1, scale 10: the physical limit)"
    );
    println!(
        "  ratio gateway / raw              {:9.1} %    (target >= 25 %)",
        gateway_rate / raw_tps * 100.0
    );
    println!(
        "  ratio gateway, cache off / raw   {:9.1} %",
        uncached_rate / raw_tps * 100.0
    );
    println!(
        "  ratio gRPC / raw                 {:9.1} %",
        grpc_rate / raw_tps * 100.0
    );
    println!(
        "  gateway p99                      {:9.2} ms   (target <= 10 ms)",
        millis(gateway_p99)
    );
    for process in &mesh.processes {
        if let Some(rss) = process.peak_rss_mib() {
            println!("  peak RSS {:<23} {rss:9.1} MiB", process.name);
        }
    }
    println!("  for scale: LicenseSpring allows 30-300 validations/s per customer");
    mesh.stop().await
}

/// Production keys (no trial cap, no expiry), created over gRPC as an admin.
async fn create_keys(mesh: &LicenseMesh) -> anyhow::Result<Vec<String>> {
    let mut client = LicenseServiceClient::connect(mesh.license_url.clone()).await?;
    let mut keys = Vec::with_capacity(KEYS);
    for n in 0..KEYS {
        let mut request = tonic::Request::new(pb::CreateKeyRequest {
            email: format!("customer{n}@example.com"),
            key_type: pb::KeyType::Production.into(),
            features: [("export".to_owned(), true)].into(),
            ..Default::default()
        });
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {}", mesh.admin_token).parse()?);
        keys.push(client.create_key(request).await?.into_inner().key);
    }
    Ok(keys)
}

/// Validations of every key in turn through the gateway at `address`,
/// after a warm-up, by the lean load generator.
async fn through_gateway(
    address: SocketAddr,
    keys: &[String],
    concurrency: usize,
    window: Duration,
) -> anyhow::Result<Outcome> {
    let requests: Arc<Vec<_>> = Arc::new(
        keys.iter()
            .map(|key| http_load::Request::post_json(address, "/api/keys/validate", &format!(r#"{{"key":"{key}"}}"#)))
            .collect(),
    );
    http_load::run(address, Arc::clone(&requests), VALID, concurrency, WARM_UP).await?;
    http_load::run(address, requests, VALID, concurrency, window).await
}

async fn over_grpc(channels: &[Channel], keys: &[String], concurrency: usize, window: Duration) -> Sample {
    let deadline = Instant::now() + window;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let client = LicenseServiceClient::new(channels[worker % channels.len()].clone());
            let keys = keys.to_vec();
            tokio::spawn(async move {
                let mut next = worker;
                measure::until(deadline, || {
                    next = (next + concurrency) % keys.len();
                    let mut client = client.clone();
                    let request = pb::ValidateKeyRequest {
                        key: keys[next].clone(),
                    };
                    async move {
                        client
                            .validate_key(request)
                            .await
                            .is_ok_and(|response| response.into_inner().valid)
                    }
                })
                .await
            })
        })
        .collect();
    collect(workers).await
}

async fn collect(workers: Vec<tokio::task::JoinHandle<Sample>>) -> Sample {
    let mut total = Sample::default();
    for worker in workers {
        if let Ok(sample) = worker.await {
            total.merge(sample);
        }
    }
    total
}

/// pgbench's select-only TPS on a scratch database it initialises (scale
/// 10) and that is dropped afterwards, whatever happens.
async fn raw_postgres_tps() -> anyhow::Result<f64> {
    let server = platform::testing::database_server_url();
    let name = format!("bench_pgbench_{}", uuid::Uuid::new_v4().simple());
    platform::db::ensure_database(&server, &name).await?;
    let url = platform::db::database_url(&server, &name);
    let result = pgbench(&url).await;
    drop_database(&server, &name).await?;
    result
}

async fn pgbench(url: &Secret<String>) -> anyhow::Result<f64> {
    // The URL goes as the database argument (libpq expands it), so a
    // password in it is never on a printed command line; -h forces TCP.
    let init = tokio::process::Command::new("pgbench")
        .args(["-i", "-s", "10", "-q", "-h", "127.0.0.1", url.expose()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .await?;
    anyhow::ensure!(init.success(), "pgbench -i failed ({init})");
    let seconds = PGBENCH_SECONDS.to_string();
    let output = tokio::process::Command::new("pgbench")
        .args([
            "-S",
            "-M",
            "prepared",
            "-c",
            "8",
            "-j",
            "2",
            "-T",
            &seconds,
            "-h",
            "127.0.0.1",
            url.expose(),
        ])
        .stderr(Stdio::null())
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "pgbench -S failed ({})", output.status);
    let report = String::from_utf8_lossy(&output.stdout);
    report
        .lines()
        .find_map(|line| line.trim().strip_prefix("tps = "))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|tps| tps.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no tps line in pgbench's report"))
}

async fn drop_database(server: &Secret<String>, name: &str) -> anyhow::Result<()> {
    use sqlx::Connection as _;
    let mut connection = sqlx::PgConnection::connect(server.expose()).await?;
    // The name is generated above, never user input.
    let statement = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
    sqlx::query(sqlx::AssertSqlSafe(statement))
        .execute(&mut connection)
        .await?;
    Ok(())
}
