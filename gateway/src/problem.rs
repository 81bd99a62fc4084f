//! RFC 9457 problem details: the one error shape of the REST API.
//!
//! Every refusal from a service arrives as a gRPC status with an
//! `ErrorInfo` reason; it leaves here as `application/problem+json` with the
//! HTTP status that fits, `detail` holding the human message and `reason`
//! the machine-readable one, so a client can branch on `reason` and show
//! `detail`. `error` repeats `detail`: clients written to the seeds read
//! `{"error": "License key not found"}`.

use axum::{
    Json,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use platform::error::{Refusal, reason};
use serde::Serialize;
use tonic::Code;
use tonic_types::StatusExt as _;
use utoipa::ToSchema;

/// A problem details object (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    /// A URI naming the kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// Short summary of the HTTP status.
    pub title: String,
    /// The HTTP status code.
    pub status: u16,
    /// What happened, for a person to read.
    pub detail: String,
    /// The same message as `detail`, for clients written to the seeds'
    /// `{"error": "…"}` shape.
    pub error: String,
    /// Machine-readable reason, e.g. `ACCOUNT_INACTIVE`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The request fields that were refused, with why.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_params: Vec<InvalidParam>,
    /// Whether the account may reactivate itself by email (inactive login only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub self_service_reactivation: Option<bool>,
    #[serde(skip)]
    retry_after: Option<u64>,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InvalidParam {
    pub name: String,
    pub reason: String,
}

impl Problem {
    pub fn new(status: StatusCode, reason: Option<&str>, detail: impl Into<String>) -> Self {
        let kind = reason.map_or_else(
            || "about:blank".to_owned(),
            |reason| format!("urn:reactivation:problem:{}", reason.to_lowercase().replace('_', "-")),
        );
        let detail = detail.into();
        Self {
            kind,
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            error: detail.clone(),
            detail,
            reason: reason.map(str::to_owned),
            invalid_params: Vec::new(),
            self_service_reactivation: None,
            retry_after: None,
        }
    }

    /// A malformed request field.
    pub fn invalid_field(name: &str, reason: impl Into<String>) -> Self {
        let reason = reason.into();
        let mut problem = Self::new(
            StatusCode::BAD_REQUEST,
            Some(reason::INVALID_FIELD),
            format!("{name}: {reason}"),
        );
        problem.invalid_params.push(InvalidParam {
            name: name.to_owned(),
            reason,
        });
        problem
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, Some(reason::NOT_FOUND), detail)
    }

    /// Too many requests; the client may try again after `seconds`.
    pub fn rate_limited(detail: impl Into<String>, seconds: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, Some(reason::RATE_LIMITED), detail).retry_after(seconds)
    }

    /// The same problem, with `Retry-After: seconds`.
    pub fn retry_after(mut self, seconds: u64) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    pub fn status_code(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

/// The HTTP status for a gRPC refusal. A few reasons deserve a status other
/// than their code's usual one: an inactive account is *forbidden* to log
/// in, not a malformed request.
fn http_status(code: Code, reason: Option<&str>) -> StatusCode {
    match (code, reason) {
        (_, Some(reason::ACCOUNT_INACTIVE)) => StatusCode::FORBIDDEN,
        (Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange, _) => StatusCode::BAD_REQUEST,
        (Code::Unauthenticated, _) => StatusCode::UNAUTHORIZED,
        (Code::PermissionDenied, _) => StatusCode::FORBIDDEN,
        (Code::NotFound, _) => StatusCode::NOT_FOUND,
        (Code::AlreadyExists | Code::Aborted, _) => StatusCode::CONFLICT,
        (Code::ResourceExhausted, _) => StatusCode::TOO_MANY_REQUESTS,
        (Code::Unavailable, _) => StatusCode::SERVICE_UNAVAILABLE,
        (Code::DeadlineExceeded | Code::Cancelled, _) => StatusCode::GATEWAY_TIMEOUT,
        (Code::Unimplemented, _) => StatusCode::NOT_IMPLEMENTED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<tonic::Status> for Problem {
    fn from(status: tonic::Status) -> Self {
        let details = status.get_error_details();
        let info = details.error_info();
        let reason = info.map(|info| info.reason.as_str());
        let http = http_status(status.code(), reason);
        let detail = match (status.code(), reason) {
            // A service without a reason is reporting a failure of its own or
            // of transport: never pass its words through.
            (Code::Unavailable, None) => "A service is unavailable; please try again shortly.".to_owned(),
            (Code::DeadlineExceeded, None) => "A service took too long to answer; please try again.".to_owned(),
            (_, None) if http.is_server_error() => "Internal error".to_owned(),
            _ => status.message().to_owned(),
        };
        if http.is_server_error() && reason.is_none() {
            tracing::error!(code = ?status.code(), message = status.message(), "downstream call failed");
        }
        let mut problem = Self::new(http, reason, detail);
        if let Some(bad_request) = details.bad_request() {
            problem.invalid_params = bad_request
                .field_violations
                .iter()
                .map(|violation| InvalidParam {
                    name: violation.field.clone(),
                    reason: violation.description.clone(),
                })
                .collect();
        }
        if let Some(info) = info {
            problem.self_service_reactivation = info
                .metadata
                .get("self_service_reactivation")
                .map(|value| value == "true");
            problem.retry_after = info
                .metadata
                .get("retry_after_secs")
                .and_then(|value| value.parse().ok());
        }
        // A service or its store is down: worth trying again soon, and
        // clients that honour `Retry-After` should know when.
        if http == StatusCode::SERVICE_UNAVAILABLE && problem.retry_after.is_none() {
            problem.retry_after = Some(platform::error::STORE_RETRY_AFTER_SECS);
        }
        problem
    }
}

/// A refusal the gateway makes itself (a non-admin, a malformed key),
/// answered exactly as the same refusal from a service would be.
impl From<Refusal> for Problem {
    fn from(refusal: Refusal) -> Self {
        tonic::Status::from(refusal).into()
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let status = self.status_code();
        let retry_after = self.retry_after;
        let mut response = (status, Json(self)).into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(seconds) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inactive_login_is_forbidden_with_its_reason() {
        let status: tonic::Status = Refusal::new(Code::FailedPrecondition, reason::ACCOUNT_INACTIVE, "inactive").into();
        let problem = Problem::from(status);
        assert_eq!(problem.status, 403);
        assert_eq!(problem.reason.as_deref(), Some("ACCOUNT_INACTIVE"));
        assert_eq!(problem.kind, "urn:reactivation:problem:account-inactive");
    }

    #[test]
    fn internal_messages_never_leak() {
        let problem = Problem::from(tonic::Status::internal("connection refused to 10.0.0.7:5432"));
        assert_eq!(problem.status, 500);
        assert_eq!(problem.detail, "Internal error");
    }

    #[test]
    fn an_unavailable_service_or_store_asks_to_retry_later() {
        let store: tonic::Status = platform::error::store_unavailable().into();
        let response = Problem::from(store).into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(response.headers().contains_key(header::RETRY_AFTER));

        let unreachable = Problem::from(tonic::Status::unavailable("tcp connect error"));
        assert_eq!(unreachable.status, 503);
        assert!(unreachable.into_response().headers().contains_key(header::RETRY_AFTER));
    }

    #[test]
    fn field_violations_become_invalid_params() {
        let status: tonic::Status = Refusal::invalid_field("email", "email must contain an @").into();
        let problem = Problem::from(status);
        assert_eq!(problem.status, 400);
        assert_eq!(problem.invalid_params.len(), 1);
        assert_eq!(problem.invalid_params[0].name, "email");
    }
}
