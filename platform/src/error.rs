//! The one error model of the mesh.
//!
//! A domain refusal ("your account is inactive") leaves a service as a gRPC
//! status whose details hold a `google.rpc.ErrorInfo` with a stable,
//! machine-readable `reason`; the gateway turns that into RFC 9457 problem
//! JSON. Anything unexpected is logged here with its whole cause chain and
//! leaves as an opaque `INTERNAL`, so no internals reach a client — unless
//! its cause is a store (Postgres or Redis) that cannot be reached: that is
//! an outage, not a bug, and leaves as `UNAVAILABLE` (reason
//! `STORE_UNAVAILABLE`, with a `retry_after_secs`), which the gateway turns
//! into 503 with `Retry-After`.
//!
//! Each service keeps one error enum of its own domain refusals, plus one
//! [`Failure`] variant for what every service answers alike (a malformed
//! field, a refusal made by shared code, an internal failure);
//! [`service_error!`](crate::service_error) gives that enum its common
//! conversions and its one way to a `Status`. The reasons are the constants
//! of [`reason`], which the gateway matches on.

use std::{collections::HashMap, fmt};

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// `ErrorInfo.domain` of every refusal the mesh makes.
pub const ERROR_DOMAIN: &str = "reactivation";

/// The machine-readable reasons of the mesh's refusals (`ErrorInfo.reason`,
/// and the problem JSON's `reason`): named once, so a service that refuses
/// and the gateway that branches on the refusal cannot drift apart.
pub mod reason {
    // Any service.
    pub const INVALID_FIELD: &str = "INVALID_FIELD";
    pub const STORE_UNAVAILABLE: &str = "STORE_UNAVAILABLE";
    pub const RATE_LIMITED: &str = "RATE_LIMITED";
    pub const TOKEN_INVALID: &str = "TOKEN_INVALID";
    pub const ADMIN_REQUIRED: &str = "ADMIN_REQUIRED";
    pub const NOT_YOUR_ACCOUNT: &str = "NOT_YOUR_ACCOUNT";
    pub const SERVICE_ONLY: &str = "SERVICE_ONLY";
    pub const SESSION_REVOKED: &str = "SESSION_REVOKED";

    // identity-svc.
    pub const INVALID_CREDENTIALS: &str = "INVALID_CREDENTIALS";
    pub const ACCOUNT_INACTIVE: &str = "ACCOUNT_INACTIVE";
    pub const SESSION_ENDED: &str = "SESSION_ENDED";
    pub const EMAIL_TAKEN: &str = "EMAIL_TAKEN";
    pub const USER_NOT_FOUND: &str = "USER_NOT_FOUND";
    pub const ACCOUNT_ALREADY_INACTIVE: &str = "ACCOUNT_ALREADY_INACTIVE";
    pub const ACCOUNT_ALREADY_ACTIVE: &str = "ACCOUNT_ALREADY_ACTIVE";
    pub const BUSY: &str = "BUSY";
    pub const REACTIVATION_LINK_INVALID: &str = "REACTIVATION_LINK_INVALID";

    // license-svc.
    pub const KEY_NOT_FOUND: &str = "KEY_NOT_FOUND";
    pub const KEY_ALREADY_DISABLED: &str = "KEY_ALREADY_DISABLED";
    pub const KEY_ALREADY_ACTIVE: &str = "KEY_ALREADY_ACTIVE";
    pub const KEY_DISABLED: &str = "KEY_DISABLED";
    pub const KEY_EXPIRED: &str = "KEY_EXPIRED";
    pub const KEY_NOT_EXPIRING: &str = "KEY_NOT_EXPIRING";
    pub const KEY_NOT_TRIAL: &str = "KEY_NOT_TRIAL";
    pub const TRIAL_LIMIT_REACHED: &str = "TRIAL_LIMIT_REACHED";

    // billing-svc.
    pub const TENANT_NOT_FOUND: &str = "TENANT_NOT_FOUND";
    pub const SUBSCRIPTION_NOT_CANCELLED: &str = "SUBSCRIPTION_NOT_CANCELLED";
    pub const SUBSCRIPTION_EXPIRED: &str = "SUBSCRIPTION_EXPIRED";
    pub const SUBSCRIPTION_NOT_CANCELLABLE: &str = "SUBSCRIPTION_NOT_CANCELLABLE";
    pub const ALREADY_SUBSCRIBED: &str = "ALREADY_SUBSCRIBED";
    pub const CANCELLED_SUBSCRIPTION_RUNNING: &str = "CANCELLED_SUBSCRIPTION_RUNNING";
    pub const OFFER_NOT_SET_UP: &str = "OFFER_NOT_SET_UP";
    pub const PAYMENT_PROVIDER_UNAVAILABLE: &str = "PAYMENT_PROVIDER_UNAVAILABLE";
    pub const WEBHOOK_SIGNATURE_INVALID: &str = "WEBHOOK_SIGNATURE_INVALID";
    pub const WEBHOOK_NOT_FOUND: &str = "WEBHOOK_NOT_FOUND";

    // notify-svc.
    pub const MESSAGE_NOT_FOUND: &str = "MESSAGE_NOT_FOUND";

    // The gateway's own.
    pub const NOT_FOUND: &str = "NOT_FOUND";
    pub const MALFORMED_BODY: &str = "MALFORMED_BODY";
    pub const MALFORMED_QUERY: &str = "MALFORMED_QUERY";
    pub const OVERLOADED: &str = "OVERLOADED";
    pub const TIMEOUT: &str = "TIMEOUT";
    pub const DRAINING: &str = "DRAINING";
}

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
        Self::new(Code::InvalidArgument, reason::INVALID_FIELD, message).with("field", field)
    }

    /// FAILED_PRECONDITION: the thing is in the wrong state for this.
    pub fn wrong_state(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::FailedPrecondition, reason, message)
    }

    /// NOT_FOUND.
    pub fn not_found(reason: &'static str, message: impl Into<String>) -> Self {
        Self::new(Code::NotFound, reason, message)
    }

    pub fn with(mut self, key: &str, value: impl Into<String>) -> Self {
        self.metadata.insert(key.to_owned(), value.into());
        self
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.metadata.get("field") {
            Some(field) => write!(f, "{field}: {}", self.message),
            None => f.write_str(&self.message),
        }
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

/// What every service answers alike besides success: a refusal the caller
/// can act on (a malformed field, or one made by shared code such as
/// authorization), or an internal failure.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// Passed to the caller as is, with its code and reason.
    #[error("{0}")]
    Refused(Refusal),
    /// INTERNAL (UNAVAILABLE when a store is down): logged with its cause
    /// chain, opaque to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

#[cfg(feature = "postgres")]
impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

impl From<Failure> for Status {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::Refused(refusal) => refusal.into(),
            Failure::Internal(err) => internal(&err),
        }
    }
}

/// Declares a service's error enum: its domain refusals as written, plus
/// a `Failed(Failure)` variant for what every service answers alike; and
/// gives it what every such enum needs: `?` on an `anyhow`, `sqlx` or
/// shared-code refusal, `invalid(field, message)` for a malformed field,
/// and `Status` from it through the service's own
/// `From<Error> for Failure`, which names each refusal's code and reason.
#[macro_export]
macro_rules! service_error {
    ($(#[$meta:meta])* $vis:vis enum $error:ident { $($variants:tt)* }) => {
        $(#[$meta])*
        #[derive(Debug, ::thiserror::Error)]
        $vis enum $error {
            $($variants)*
            /// A malformed field (`INVALID_FIELD`), a refusal made by shared
            /// code (authentication, authorization), or an internal failure.
            #[error(transparent)]
            Failed(#[from] $crate::error::Failure),
        }

        impl $error {
            /// INVALID_ARGUMENT, reason `INVALID_FIELD`; `field` names the culprit.
            pub fn invalid(field: &str, message: impl Into<String>) -> Self {
                $crate::error::Refusal::invalid_field(field, message).into()
            }
        }

        impl From<$crate::error::Refusal> for $error {
            fn from(refusal: $crate::error::Refusal) -> Self {
                Self::Failed(refusal.into())
            }
        }

        impl From<::anyhow::Error> for $error {
            fn from(err: ::anyhow::Error) -> Self {
                Self::Failed(err.into())
            }
        }

        impl From<::sqlx::Error> for $error {
            fn from(err: ::sqlx::Error) -> Self {
                Self::Failed(err.into())
            }
        }

        impl From<$error> for ::tonic::Status {
            fn from(err: $error) -> Self {
                $crate::error::Failure::from(err).into()
            }
        }
    };
}

/// How long a client is asked to wait before trying again while a store is
/// down: long enough not to hammer it, short enough to notice its return.
pub const STORE_RETRY_AFTER_SECS: u64 = 2;

/// Logs an unexpected failure with its cause chain and returns the status a
/// client sees: `UNAVAILABLE` when a store could not be reached, else an
/// opaque `INTERNAL`.
pub fn internal(error: &anyhow::Error) -> Status {
    if is_store_outage(error) {
        tracing::warn!(error = format!("{error:#}"), "a store is unreachable");
        return store_unavailable().into();
    }
    tracing::error!(error = format!("{error:#}"), "internal error");
    Status::internal("Internal error")
}

/// The refusal of a call that needs a store that is down.
pub fn store_unavailable() -> Refusal {
    Refusal::new(
        Code::Unavailable,
        reason::STORE_UNAVAILABLE,
        "The service is temporarily unavailable; please try again shortly.",
    )
    .with("retry_after_secs", STORE_RETRY_AFTER_SECS.to_string())
}

/// Whether `error` was caused by Postgres or Redis being unreachable (down,
/// restarting, refusing connections, timing out) rather than by a bug or a
/// bad request.
pub fn is_store_outage(error: &anyhow::Error) -> bool {
    error.chain().any(|cause| {
        #[cfg(feature = "postgres")]
        if let Some(err) = cause.downcast_ref::<sqlx::Error>() {
            return postgres_outage(err);
        }
        if let Some(err) = cause.downcast_ref::<redis::RedisError>() {
            return redis_outage(err);
        }
        false
    })
}

#[cfg(feature = "postgres")]
fn postgres_outage(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_) => true,
        // Class 08: connection exception; 57P0x: the server is shutting
        // down, crashed or still starting; 53300: too many connections.
        sqlx::Error::Database(db) => db
            .code()
            .is_some_and(|code| code.starts_with("08") || code.starts_with("57P") || code == "53300"),
        _ => false,
    }
}

fn redis_outage(err: &redis::RedisError) -> bool {
    use redis::{ErrorKind, ServerErrorKind};
    err.is_io_error()
        || err.is_timeout()
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_cluster_error()
        || matches!(
            err.kind(),
            ErrorKind::Server(ServerErrorKind::BusyLoading | ServerErrorKind::MasterDown | ServerErrorKind::ReadOnly)
        )
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

    #[test]
    fn an_unreachable_store_is_unavailable_and_a_bug_stays_internal() {
        let outage = anyhow::Error::from(sqlx::Error::PoolTimedOut).context("loading the account");
        let status = internal(&outage);
        assert_eq!(status.code(), Code::Unavailable);
        assert_eq!(reason_of(&status).as_deref(), Some("STORE_UNAVAILABLE"));
        let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        assert!(is_store_outage(&redis::RedisError::from(refused).into()));

        let bug = anyhow::Error::from(sqlx::Error::RowNotFound);
        assert_eq!(internal(&bug).code(), Code::Internal);
        assert_eq!(internal(&anyhow::anyhow!("template missing")).code(), Code::Internal);
    }
}
