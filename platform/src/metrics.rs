//! Prometheus metrics: one registry per process, served apart from the API
//! on the admin port (`ADMIN_ADDR`, e.g. `0.0.0.0:9090`; the manifests set
//! it) at `GET /metrics`, so scraping needs no route through the public
//! ingress and the public port never shows them. Unset, nothing listens:
//! several processes on one machine (tests, benchmarks) never fight over a
//! port.
//!
//! Every family is declared here, so the names dashboards and alerts use
//! live in one place; the code that sees an event records it through
//! [`metrics`]. Labels are bounded: gRPC methods this server does not
//! implement and HTTP paths no route matches are counted under one value.

use std::{
    net::SocketAddr,
    sync::{LazyLock, atomic::AtomicU64},
    task::{Context, Poll},
    time::{Duration, Instant},
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

use crate::{config::ConfigError, shutdown::Shutdown};

/// The admin port the manifests give every process.
pub const ADMIN_PORT: u16 = 9090;

/// A gRPC call: its full method (`/package.Service/Method`) and status code.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RpcLabels {
    pub method: String,
    pub code: String,
}

/// An HTTP request: its route (the matched pattern, never the raw path),
/// method and status.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub route: String,
    pub method: String,
    pub status: u16,
}

/// An outbox topic (`notify.enqueue`, …).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    pub topic: String,
}

/// A store this process depends on (`postgres`, `redis`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StoreLabels {
    pub store: &'static str,
}

/// How something ended (`sent`, `retry`, `failed`, …).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: &'static str,
}

type Histograms<L> = Family<L, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 1 ms … about 33 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// Which connections of a database pool (`idle`, `in_use`).
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    pub state: &'static str,
}

/// Every metric this process exports.
#[derive(Debug)]
pub struct Metrics {
    /// `rpc_server_requests_total{method, code}`.
    pub rpc_requests: Family<RpcLabels, Counter>,
    /// `rpc_server_duration_seconds{method, code}`.
    pub rpc_duration: Histograms<RpcLabels>,
    /// `http_server_requests_total{route, method, status}` (gateway).
    pub http_requests: Family<HttpLabels, Counter>,
    /// `http_server_duration_seconds{route, method, status}` (gateway).
    pub http_duration: Histograms<HttpLabels>,
    /// `outbox_backlog{topic}`: effects recorded but not yet delivered.
    pub outbox_backlog: Family<TopicLabels, Gauge>,
    /// `outbox_oldest_age_seconds{topic}`: how long the oldest of them has waited.
    pub outbox_oldest_age: Family<TopicLabels, Gauge<f64, AtomicU64>>,
    /// `notify_deliveries_total{outcome}`: delivery attempts by outcome
    /// (`sent`, `retry`, `failed`).
    pub notify_deliveries: Family<OutcomeLabels, Counter>,
    /// `notify_queue_depth` (notify-svc): messages waiting to be sent, due
    /// now or later — what the notify HPA scales on.
    pub notify_queue_depth: Gauge,
    /// `stripe_webhooks_total{outcome}` (billing-svc): Stripe events by what
    /// became of them (`applied`, `duplicate`, `ignored`, `failed`,
    /// `refused` — a bad signature or body).
    pub stripe_webhooks: Family<OutcomeLabels, Counter>,
    /// `db_pool_connections{state}`: the process's Postgres connections,
    /// `idle` or `in_use`, sampled with every store probe.
    pub db_pool_connections: Family<PoolLabels, Gauge>,
    /// `store_up{store}`: 1 while the store answered this process's last
    /// probe, 0 while it does not.
    pub store_up: Family<StoreLabels, Gauge>,
    /// `validation_cache_total{outcome}` (gateway): license validations
    /// answered from memory (`hit`), asked of license-svc (`miss`), or
    /// asked because the cache could not be trusted (`bypass`).
    pub validation_cache: Family<OutcomeLabels, Counter>,
    /// `password_hash_queue` (identity-svc): argon2 jobs waiting for a thread.
    pub password_hash_queue: Gauge,
}

/// Registers `metric` under `name` and hands it back (a metric is a
/// shared handle: the registry and [`Metrics`] hold the same one).
fn registered<M>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M
where
    M: prometheus_client::metrics::TypedMetric
        + prometheus_client::encoding::EncodeMetric
        + Clone
        + Send
        + Sync
        + std::fmt::Debug
        + 'static,
{
    registry.register(name, help, metric.clone());
    metric
}

static METRICS: LazyLock<(Metrics, Registry)> = LazyLock::new(|| {
    let mut registry = Registry::default();
    let r = &mut registry;
    let metrics = Metrics {
        rpc_requests: registered(
            r,
            "rpc_server_requests",
            "gRPC calls served, by method and status code",
            Family::default(),
        ),
        rpc_duration: registered(
            r,
            "rpc_server_duration_seconds",
            "Time to answer a gRPC call",
            Family::new_with_constructor(latency_histogram),
        ),
        http_requests: registered(
            r,
            "http_server_requests",
            "HTTP requests served, by route, method and status",
            Family::default(),
        ),
        http_duration: registered(
            r,
            "http_server_duration_seconds",
            "Time to answer an HTTP request",
            Family::new_with_constructor(latency_histogram),
        ),
        outbox_backlog: registered(
            r,
            "outbox_backlog",
            "Outbox entries not yet delivered, by topic",
            Family::default(),
        ),
        outbox_oldest_age: registered(
            r,
            "outbox_oldest_age_seconds",
            "Age of the oldest undelivered outbox entry, by topic",
            Family::default(),
        ),
        notify_deliveries: registered(
            r,
            "notify_deliveries",
            "Email delivery attempts, by outcome",
            Family::default(),
        ),
        notify_queue_depth: registered(
            r,
            "notify_queue_depth",
            "Emails waiting to be sent, due now or later",
            Gauge::default(),
        ),
        stripe_webhooks: registered(
            r,
            "stripe_webhooks",
            "Stripe webhook events, by what became of them",
            Family::default(),
        ),
        db_pool_connections: registered(
            r,
            "db_pool_connections",
            "Postgres connections of this process, idle or in use",
            Family::default(),
        ),
        store_up: registered(
            r,
            "store_up",
            "Whether a store answered this process's last probe (1) or not (0)",
            Family::default(),
        ),
        validation_cache: registered(
            r,
            "validation_cache",
            "License validations at the gateway, by how its cache answered (hit, miss, bypass)",
            Family::default(),
        ),
        password_hash_queue: registered(
            r,
            "password_hash_queue",
            "Password hashing jobs waiting for a thread",
            Gauge::default(),
        ),
    };
    (metrics, registry)
});

/// The process's metrics.
pub fn metrics() -> &'static Metrics {
    &METRICS.0
}

/// Every metric in Prometheus' text exposition format.
pub fn render() -> String {
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &METRICS.1).expect("writing to a String cannot fail");
    text
}

impl Metrics {
    /// Records what the last probe of `store` found.
    pub fn record_store(&self, store: &'static str, up: bool) {
        self.store_up.get_or_create(&StoreLabels { store }).set(i64::from(up));
    }

    /// Counts one Stripe event by what became of it.
    pub fn record_webhook(&self, outcome: &'static str) {
        self.stripe_webhooks.get_or_create(&OutcomeLabels { outcome }).inc();
    }

    /// Records how many of the pool's connections are idle and in use.
    pub fn record_pool(&self, size: u32, idle: usize) {
        let idle = i64::try_from(idle).unwrap_or(i64::MAX);
        self.db_pool_connections
            .get_or_create(&PoolLabels { state: "idle" })
            .set(idle);
        self.db_pool_connections
            .get_or_create(&PoolLabels { state: "in_use" })
            .set(i64::from(size) - idle);
    }

    /// Records one gRPC call.
    pub fn record_rpc(&self, method: &str, code: tonic::Code, latency: Duration) {
        let method = if code == tonic::Code::Unimplemented {
            "unimplemented".to_owned()
        } else {
            method.to_owned()
        };
        let labels = RpcLabels {
            method,
            code: format!("{code:?}"),
        };
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_duration.get_or_create(&labels).observe(latency.as_secs_f64());
    }

    /// Records one HTTP request; `route` is the matched pattern, if any.
    pub fn record_http(&self, route: Option<&str>, method: &http::Method, status: http::StatusCode, latency: Duration) {
        let labels = HttpLabels {
            route: route.unwrap_or("unmatched").to_owned(),
            method: method.as_str().to_owned(),
            status: status.as_u16(),
        };
        self.http_requests.get_or_create(&labels).inc();
        self.http_duration.get_or_create(&labels).observe(latency.as_secs_f64());
    }
}

/// `ADMIN_ADDR`: where `/metrics` is served, if anywhere.
pub fn admin_addr() -> Result<Option<SocketAddr>, ConfigError> {
    crate::config::optional("ADMIN_ADDR")
        .map(|raw| {
            raw.trim()
                .parse()
                .map_err(|err: std::net::AddrParseError| ConfigError::Invalid {
                    name: "ADMIN_ADDR",
                    reason: err.to_string(),
                })
        })
        .transpose()
}

/// Serves `/metrics` on `ADMIN_ADDR` until `shutdown`, when it is set.
pub async fn start_admin_from_env(shutdown: Shutdown) -> anyhow::Result<()> {
    if let Some(address) = admin_addr()? {
        start_admin(address, shutdown).await?;
    }
    Ok(())
}

/// Binds `address` and serves `GET /metrics` there until `shutdown`;
/// returns the bound address.
pub async fn start_admin(address: SocketAddr, shutdown: Shutdown) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(address).await?;
    let bound = listener.local_addr()?;
    let router = axum::Router::new().route(
        "/metrics",
        axum::routing::get(|| async {
            (
                [(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")],
                render(),
            )
        }),
    );
    tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async move { shutdown.wait().await });
        if let Err(err) = server.await {
            tracing::error!(error = %err, "admin server failed");
        }
    });
    tracing::info!(address = %bound, "metrics at /metrics");
    Ok(bound)
}

/// A tower layer counting and timing every gRPC call a server answers.
#[derive(Debug, Clone, Copy, Default)]
pub struct RpcMetricsLayer;

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetrics { inner }
    }
}

/// See [`RpcMetricsLayer`].
#[derive(Debug, Clone)]
pub struct RpcMetrics<S> {
    inner: S,
}

impl<S, B, R> tower::Service<http::Request<B>> for RpcMetrics<S>
where
    S: tower::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let started = Instant::now();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let result = answer.await;
            // tonic puts a refusal's status in the response headers; an
            // answer that carries data ends with OK in its trailers.
            let code = match &result {
                Ok(response) => response
                    .headers()
                    .get("grpc-status")
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| value.parse::<i32>().ok())
                    .map_or(tonic::Code::Ok, tonic::Code::from_i32),
                Err(_) => tonic::Code::Unknown,
            };
            metrics().record_rpc(&method, code, started.elapsed());
            result
        })
    }
}

/// Axum middleware recording every HTTP request the gateway answers.
pub async fn record_http(request: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(|path| path.as_str().to_owned());
    let method = request.method().clone();
    let started = Instant::now();
    let response = next.run(request).await;
    metrics().record_http(route.as_deref(), &method, response.status(), started.elapsed());
    response
}
