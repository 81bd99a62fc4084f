//! Routes for machines: liveness/readiness, the stores' reachability, and
//! the API description.

use std::collections::BTreeMap;

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use platform::{client::TracedChannel, kv::Kv};
use serde::Serialize;
use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, problem::Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(stores))
        .routes(routes!(openapi))
}

/// Whom `/healthz/stores` asks: each service's health service (which
/// probes that service's Postgres and Redis), and the gateway's own Redis.
#[derive(Clone, Debug)]
pub struct StoreProbes {
    pub services: Vec<(&'static str, HealthClient<TracedChannel>)>,
    pub redis: Kv,
}

/// How long `/healthz/stores` waits for any one answer.
const PROBE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(1);

impl StoreProbes {
    /// Also what the gateway's `store_up{store="redis"}` reports.
    async fn redis_up(&self) -> &'static str {
        let up = self.redis.is_reachable(PROBE_TIMEOUT).await;
        platform::metrics::metrics().record_store(platform::health::REDIS, up);
        if up { "up" } else { "down" }
    }

    async fn store_of(mut client: HealthClient<TracedChannel>, store: &str) -> &'static str {
        let request = HealthCheckRequest {
            service: store.to_owned(),
        };
        match tokio::time::timeout(PROBE_TIMEOUT, client.check(request)).await {
            Ok(Ok(answer)) if answer.get_ref().status() == ServingStatus::Serving => "up",
            Ok(Ok(_)) => "down",
            // The service itself does not answer (or is too old to know).
            _ => "unknown",
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct StoresHealth {
    /// Always `ok`: this answer is for operators, not a readiness probe.
    pub status: String,
    /// The gateway's own Redis (session floors, key announcements): `up` or `down`.
    pub redis: String,
    /// Per service, `postgres` and `redis`: `up`, `down`, or `unknown` when
    /// the service itself does not answer.
    pub services: BTreeMap<String, BTreeMap<String, String>>,
}

/// Which stores are reachable, as the gateway and each service see them.
/// Always 200: a store being down is reported here and answered with fast
/// 503s on the routes that need it, while `/healthz` keeps every replica in
/// rotation.
#[utoipa::path(get, path = "/healthz/stores", tag = "system",
    responses((status = 200, description = "Each store's reachability", body = StoresHealth)))]
async fn stores(State(state): State<AppState>) -> Json<StoresHealth> {
    let probes = &state.store_probes;
    let per_service = probes.services.iter().map(|(name, client)| async move {
        let (postgres, redis) = tokio::join!(
            StoreProbes::store_of(client.clone(), platform::health::POSTGRES),
            StoreProbes::store_of(client.clone(), platform::health::REDIS),
        );
        let stores = BTreeMap::from([
            ("postgres".to_owned(), postgres.to_owned()),
            ("redis".to_owned(), redis.to_owned()),
        ]);
        ((*name).to_owned(), stores)
    });
    let (redis, services) = tokio::join!(probes.redis_up(), futures::future::join_all(per_service));
    Json(StoresHealth {
        status: "ok".into(),
        redis: redis.into(),
        services: services.into_iter().collect(),
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// Readiness: 200 while serving, 503 once shutdown has begun, so a load
/// balancer stops routing here before connections close.
#[utoipa::path(get, path = "/healthz", tag = "system",
    responses(
        (status = 200, description = "Serving", body = Health),
        (status = 503, description = "Shutting down (reason `DRAINING`)", body = Problem, content_type = "application/problem+json"),
    ))]
async fn health(State(state): State<AppState>) -> Result<Json<Health>, Problem> {
    if state.shutdown.is_triggered() {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            Some(platform::error::reason::DRAINING),
            "The gateway is shutting down.",
        ));
    }
    Ok(Json(Health { status: "ok".into() }))
}

/// This document: the OpenAPI 3.1 description of every route.
#[utoipa::path(get, path = "/openapi.json", tag = "system",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json")))]
async fn openapi(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], state.openapi.to_string())
}
