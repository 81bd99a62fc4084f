//! Load shedding: a cap on requests in flight and a deadline for each.
//!
//! Past `max_in_flight` requests at once, the next is refused at once with
//! 503 and `Retry-After` (reason `OVERLOADED`) instead of queueing until
//! memory or every downstream pool runs out; a request that takes longer
//! than `request_timeout` — a slow service, or a client trickling its body —
//! is abandoned with 503 (reason `TIMEOUT`). Both answers are the same
//! problem+json as every other error, and both are documented on every
//! operation of the OpenAPI document.

use std::{sync::Arc, time::Duration};

use axum::{
    extract::{Request, State},
    http::StatusCode,
    middleware::Next,
    response::{IntoResponse, Response},
};
use platform::error::reason;
use tokio::sync::Semaphore;

use crate::problem::Problem;

/// Limits on the requests being served.
#[derive(Debug, Clone)]
pub struct Admission {
    in_flight: Arc<Semaphore>,
    request_timeout: Duration,
}

impl Admission {
    pub fn new(max_in_flight: usize, request_timeout: Duration) -> Self {
        Self {
            in_flight: Arc::new(Semaphore::new(max_in_flight.max(1))),
            request_timeout,
        }
    }
}

/// The middleware: admits `request` or refuses it.
pub(crate) async fn admit(State(admission): State<Admission>, request: Request, next: Next) -> Response {
    let Ok(_permit) = admission.in_flight.try_acquire() else {
        return overloaded(
            reason::OVERLOADED,
            "The gateway is at capacity. Please try again shortly.",
        );
    };
    match tokio::time::timeout(admission.request_timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => overloaded(reason::TIMEOUT, "The request took too long. Please try again shortly."),
    }
}

fn overloaded(reason: &'static str, detail: &str) -> Response {
    Problem::new(StatusCode::SERVICE_UNAVAILABLE, Some(reason), detail)
        .retry_after(1)
        .into_response()
}

/// States in the OpenAPI document what every operation may answer because
/// of the limits above and the body limit: 503 (`OVERLOADED`, `TIMEOUT`)
/// everywhere, 413 wherever there is a body.
pub(crate) fn document(openapi: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, ResponseBuilder};
    let problem = |description: &str| {
        ResponseBuilder::new()
            .description(description)
            .content(
                "application/problem+json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Problem")))
                    .build(),
            )
            .build()
    };
    for item in openapi.paths.paths.values_mut() {
        let operations = [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
            &mut item.patch,
        ];
        for operation in operations.into_iter().flatten() {
            let responses = &mut operation.responses.responses;
            responses.entry("503".into()).or_insert_with(|| {
                problem(
                    "The gateway is at capacity (reason `OVERLOADED`) or the request took too long \
                     (reason `TIMEOUT`); see `Retry-After`",
                )
                .into()
            });
            // A page's form answers its own errors as a page.
            let is_page = matches!(
                responses.get("200"),
                Some(utoipa::openapi::RefOr::T(ok)) if ok.content.contains_key("text/html")
            );
            if operation.request_body.is_some() && !is_page {
                responses
                    .entry("413".into())
                    .or_insert_with(|| problem("The body is larger than this route accepts").into());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_operation_documents_load_shedding_and_every_body_its_limit() {
        let document = crate::openapi();
        let mut operations = 0;
        for (path, item) in &document.paths.paths {
            for operation in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                operations += 1;
                let responses = &operation.responses.responses;
                assert!(responses.contains_key("503"), "{path}: no 503");
                let is_page = matches!(
                    responses.get("200"),
                    Some(utoipa::openapi::RefOr::T(ok)) if ok.content.contains_key("text/html")
                );
                if operation.request_body.is_some() && !is_page {
                    assert!(responses.contains_key("413"), "{path}: no 413");
                }
            }
        }
        assert!(operations > 30, "only {operations} operations documented");
    }
}
