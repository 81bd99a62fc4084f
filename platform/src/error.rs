//! The one error model of the mesh.
//!
//! A domain refusal ("your account is inactive") leaves a service as a gRPC
//! status whose details hold a `google.rpc.ErrorInfo` with a stable,
//! machine-readable `reason`; the gateway turns that into RFC 9457 problem
//! JSON. Anything unexpected is logged here with its whole cause chain and
//! leaves as an opaque `INTERNAL`, so no internals reach a client.

use std::collections::HashMap;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every refusal the mesh makes.
pub const ERROR_DOMAIN: &str = "reactivation";

/// A refusal a client is meant to understand and act on.
#[derive(Debug, Clone)]
pub struct Refusal {
    pub code: Code,
    /// Stable machine-readable reason, e.g. `ACCOUNT_INACTIVE`.
    pub reason: &'static str,
    /// The human message shown to the user.
    pub message: String,
    pub metadata: HashMap<String, String>,
}

impl Refusal {
    pub fn new(code: Code, reason: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            metadata: HashMap::new(),
        }
    }

    /// A malformed request field; `field` is named in the metadata and the
    /// status carries a `BadRequest` violation for it.
    pub fn invalid_field(field: &str, message: impl Into<String>) -> Self {
        Self::new(Code::InvalidArgument, "INVALID_FIELD", message).with("field", field)
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

impl From<Refusal> for Status {
    fn from(refusal: Refusal) -> Self {
        let mut details = ErrorDetails::with_error_info(refusal.reason, ERROR_DOMAIN, refusal.metadata.clone());
        if let Some(field) = refusal.metadata.get("field") {
            details.add_bad_request_violation(field.clone(), refusal.message.clone());
        }
        Status::with_error_details(refusal.code, refusal.message, details)
    }
}

/// Logs an unexpected failure with its cause chain and returns the opaque
/// status a client sees.
pub fn internal(error: &anyhow::Error) -> Status {
    tracing::error!(error = format!("{error:#}"), "internal error");
    Status::internal("Internal error")
}

/// The `ErrorInfo` reason carried by a status, if any.
pub fn reason_of(status: &Status) -> Option<String> {
    status.get_details_error_info().map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refusal_keeps_its_reason_and_field_across_the_wire_format() {
        let status: Status = Refusal::invalid_field("email", "email is malformed").into();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(reason_of(&status).as_deref(), Some("INVALID_FIELD"));
        let info = status.get_details_error_info().expect("error info");
        assert_eq!(info.metadata.get("field").map(String::as_str), Some("email"));
        assert_eq!(info.domain, ERROR_DOMAIN);
    }
}
