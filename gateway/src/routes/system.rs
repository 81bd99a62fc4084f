//! Routes for machines: liveness/readiness and the API description.

use axum::{
    Json,
    extract::State,
    http::{StatusCode, header},
    response::IntoResponse,
};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::{AppState, problem::Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(health)).routes(routes!(openapi))
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
            Some("DRAINING"),
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
