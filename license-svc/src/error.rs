//! Everything a license operation can answer besides success, and the one
//! place where it becomes a gRPC status.

use platform::error::Refusal;
use tonic::{Code, Status};

/// What the gateway shows for an unknown key (seed 002).
pub const KEY_NOT_FOUND_MESSAGE: &str = "License key not found";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// INVALID_ARGUMENT, reason `INVALID_FIELD`; `field` names the culprit.
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    /// NOT_FOUND, reason `KEY_NOT_FOUND`.
    #[error("license key not found")]
    KeyNotFound,
    /// FAILED_PRECONDITION, reason `KEY_ALREADY_DISABLED`.
    #[error("key already disabled")]
    AlreadyDisabled,
    /// FAILED_PRECONDITION, reason `KEY_ALREADY_ACTIVE`.
    #[error("key already active")]
    AlreadyActive,
    /// FAILED_PRECONDITION, reason `KEY_DISABLED`.
    #[error("key disabled")]
    KeyDisabled,
    /// FAILED_PRECONDITION, reason `KEY_EXPIRED`.
    #[error("key expired")]
    KeyExpired,
    /// FAILED_PRECONDITION, reason `KEY_NOT_EXPIRING`.
    #[error("key does not expire")]
    NotExpiring,
    /// FAILED_PRECONDITION, reason `KEY_NOT_TRIAL`.
    #[error("key is not a trial")]
    NotTrial,
    /// FAILED_PRECONDITION, reason `TRIAL_LIMIT_REACHED`, with `limit`.
    #[error("trial limit reached")]
    TrialLimitReached { limit: u32 },
    /// A refusal made by shared code (authorization), passed through as is.
    #[error("{}", .0.message)]
    Refused(Refusal),
    /// INTERNAL: logged with its cause chain, opaque to the caller.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl Error {
    pub fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        Self::InvalidField {
            field,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for Error {
    fn from(err: sqlx::Error) -> Self {
        Self::Internal(err.into())
    }
}

impl From<Refusal> for Error {
    fn from(refusal: Refusal) -> Self {
        Self::Refused(refusal)
    }
}

fn wrong_state(reason: &'static str, message: &str) -> Refusal {
    Refusal::new(Code::FailedPrecondition, reason, message)
}

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let refusal = match err {
            Error::InvalidField { field, message } => Refusal::invalid_field(field, message),
            Error::KeyNotFound => Refusal::new(Code::NotFound, "KEY_NOT_FOUND", KEY_NOT_FOUND_MESSAGE),
            Error::AlreadyDisabled => wrong_state("KEY_ALREADY_DISABLED", "The license key is already disabled."),
            Error::AlreadyActive => wrong_state("KEY_ALREADY_ACTIVE", "The license key is already active."),
            Error::KeyDisabled => wrong_state("KEY_DISABLED", "The license key is disabled. Reactivate it first."),
            Error::KeyExpired => wrong_state(
                "KEY_EXPIRED",
                "The license key has expired. Reactivate it instead of extending it.",
            ),
            Error::NotExpiring => wrong_state("KEY_NOT_EXPIRING", "The license key does not expire."),
            Error::NotTrial => wrong_state("KEY_NOT_TRIAL", "Only a trial key can close a deal."),
            Error::TrialLimitReached { limit } => wrong_state(
                "TRIAL_LIMIT_REACHED",
                &format!("This customer has already had {limit} trial periods."),
            )
            .with("limit", limit.to_string()),
            Error::Refused(refusal) => refusal,
            Error::Internal(err) => return platform::error::internal(&err),
        };
        refusal.into()
    }
}
