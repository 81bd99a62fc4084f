//! Everything an identity operation can answer besides success, and the one
//! place where it becomes a gRPC status.

use platform::error::Refusal;
use tonic::{Code, Status};

/// The message an inactive account sees at login (seed 000).
pub const ACCOUNT_INACTIVE_MESSAGE: &str = "Your account is inactive. Would you like to reactivate it?";

/// The message for a reactivation link that cannot be used (seed 000: ask
/// for another link).
pub const LINK_INVALID_MESSAGE: &str = "This link is invalid or has expired. Please request a new reactivation link.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// INVALID_ARGUMENT, reason `INVALID_FIELD`; `field` names the culprit.
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    /// UNAUTHENTICATED, reason `INVALID_CREDENTIALS`: unknown email and wrong
    /// password are deliberately the same answer.
    #[error("invalid credentials")]
    InvalidCredentials,
    /// FAILED_PRECONDITION, reason `ACCOUNT_INACTIVE`.
    #[error("account inactive")]
    AccountInactive { self_service: bool },
    /// ALREADY_EXISTS, reason `EMAIL_TAKEN`.
    #[error("email taken")]
    EmailTaken,
    /// NOT_FOUND, reason `USER_NOT_FOUND`.
    #[error("user not found")]
    UserNotFound,
    /// FAILED_PRECONDITION, reason `ACCOUNT_ALREADY_INACTIVE`.
    #[error("account already inactive")]
    AlreadyInactive,
    /// FAILED_PRECONDITION, reason `ACCOUNT_ALREADY_ACTIVE`.
    #[error("account already active")]
    AlreadyActive,
    /// RESOURCE_EXHAUSTED, reason `RATE_LIMITED`, with `retry_after_secs`.
    #[error("rate limited")]
    RateLimited { retry_after: std::time::Duration },
    /// FAILED_PRECONDITION, reason `REACTIVATION_LINK_INVALID`: invalid,
    /// expired, used, superseded, or issued before the account changed —
    /// deliberately one answer.
    #[error("reactivation link invalid")]
    LinkInvalid,
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

impl From<Error> for Status {
    fn from(err: Error) -> Self {
        let refusal = match err {
            Error::InvalidField { field, message } => Refusal::invalid_field(field, message),
            Error::InvalidCredentials => Refusal::new(
                Code::Unauthenticated,
                "INVALID_CREDENTIALS",
                "Invalid email or password.",
            ),
            Error::AccountInactive { self_service } => {
                Refusal::new(Code::FailedPrecondition, "ACCOUNT_INACTIVE", ACCOUNT_INACTIVE_MESSAGE)
                    .with("self_service_reactivation", self_service.to_string())
            }
            Error::EmailTaken => Refusal::new(
                Code::AlreadyExists,
                "EMAIL_TAKEN",
                "An account with this email already exists.",
            ),
            Error::UserNotFound => Refusal::new(Code::NotFound, "USER_NOT_FOUND", "User not found."),
            Error::AlreadyInactive => Refusal::new(
                Code::FailedPrecondition,
                "ACCOUNT_ALREADY_INACTIVE",
                "The account is already inactive.",
            ),
            Error::AlreadyActive => Refusal::new(
                Code::FailedPrecondition,
                "ACCOUNT_ALREADY_ACTIVE",
                "The account is already active.",
            ),
            Error::RateLimited { retry_after } => Refusal::new(
                Code::ResourceExhausted,
                "RATE_LIMITED",
                "Too many reactivation requests. Please wait before asking again.",
            )
            .with("retry_after_secs", retry_after.as_secs().max(1).to_string()),
            Error::LinkInvalid => Refusal::new(
                Code::FailedPrecondition,
                "REACTIVATION_LINK_INVALID",
                LINK_INVALID_MESSAGE,
            ),
            Error::Refused(refusal) => refusal,
            Error::Internal(err) => return platform::error::internal(&err),
        };
        refusal.into()
    }
}
