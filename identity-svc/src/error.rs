//! Everything an identity operation can answer besides success, and the one
//! place where it becomes a gRPC status.

use platform::error::{Failure, Refusal, reason};
use tonic::Code;

use crate::domain::HashingError;

/// The message an inactive account sees at login (seed 000).
pub const ACCOUNT_INACTIVE_MESSAGE: &str = "Your account is inactive. Would you like to reactivate it?";

/// The message for a reactivation link that cannot be used (seed 000: ask
/// for another link).
pub const LINK_INVALID_MESSAGE: &str = "This link is invalid or has expired. Please request a new reactivation link.";

platform::service_error! {
    pub enum Error {
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
        /// RESOURCE_EXHAUSTED, reason `RATE_LIMITED`, with `retry_after_secs`:
        /// too many logins from one address, or wrong passwords for one account
        /// from one address.
        #[error("login throttled")]
        LoginThrottled { retry_after: std::time::Duration },
        /// RESOURCE_EXHAUSTED, reason `BUSY`, with `retry_after_secs`: the
        /// password checks' queue is full.
        #[error("password checks busy")]
        Busy,
        /// FAILED_PRECONDITION, reason `REACTIVATION_LINK_INVALID`: invalid,
        /// expired, used, superseded, or issued before the account changed —
        /// deliberately one answer.
        #[error("reactivation link invalid")]
        LinkInvalid,
        /// UNAUTHENTICATED, reason `SESSION_ENDED`: a web session that is
        /// unknown, expired, logged out, or whose account changed since.
        #[error("web session ended")]
        SessionEnded,
    }
}

impl From<HashingError> for Error {
    fn from(err: HashingError) -> Self {
        match err {
            HashingError::Busy => Self::Busy,
            HashingError::Failed(err) => err.into(),
        }
    }
}

/// RESOURCE_EXHAUSTED, reason `RATE_LIMITED`: try again after `retry_after`.
fn throttled(message: &str, retry_after: std::time::Duration) -> Refusal {
    Refusal::new(Code::ResourceExhausted, reason::RATE_LIMITED, message)
        .with("retry_after_secs", retry_after.as_secs().max(1).to_string())
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let refusal = match err {
            Error::InvalidCredentials => Refusal::new(
                Code::Unauthenticated,
                reason::INVALID_CREDENTIALS,
                "Invalid email or password.",
            ),
            Error::AccountInactive { self_service } => {
                Refusal::wrong_state(reason::ACCOUNT_INACTIVE, ACCOUNT_INACTIVE_MESSAGE)
                    .with("self_service_reactivation", self_service.to_string())
            }
            Error::SessionEnded => Refusal::new(
                Code::Unauthenticated,
                reason::SESSION_ENDED,
                "Your session has ended. Please log in again.",
            ),
            Error::EmailTaken => Refusal::new(
                Code::AlreadyExists,
                reason::EMAIL_TAKEN,
                "An account with this email already exists.",
            ),
            Error::UserNotFound => Refusal::not_found(reason::USER_NOT_FOUND, "User not found."),
            Error::AlreadyInactive => {
                Refusal::wrong_state(reason::ACCOUNT_ALREADY_INACTIVE, "The account is already inactive.")
            }
            Error::AlreadyActive => {
                Refusal::wrong_state(reason::ACCOUNT_ALREADY_ACTIVE, "The account is already active.")
            }
            Error::RateLimited { retry_after } => throttled(
                "Too many reactivation requests. Please wait before asking again.",
                retry_after,
            ),
            Error::LoginThrottled { retry_after } => {
                throttled("Too many login attempts. Please wait before trying again.", retry_after)
            }
            Error::Busy => Refusal::new(
                Code::ResourceExhausted,
                reason::BUSY,
                "Too many logins at once. Please try again in a moment.",
            )
            .with("retry_after_secs", "1"),
            Error::LinkInvalid => Refusal::wrong_state(reason::REACTIVATION_LINK_INVALID, LINK_INVALID_MESSAGE),
            Error::Failed(failure) => return failure,
        };
        refusal.into()
    }
}

impl From<crate::domain::account::Refused> for Error {
    fn from(refused: crate::domain::account::Refused) -> Self {
        match refused {
            crate::domain::account::Refused::AlreadyInactive => Self::AlreadyInactive,
            crate::domain::account::Refused::AlreadyActive => Self::AlreadyActive,
        }
    }
}
