//! Everything a license operation can answer besides success, and the one
//! place where it becomes a gRPC status.

use platform::error::{Failure, Refusal, reason};

/// What the gateway shows for an unknown key (seed 002).
pub const KEY_NOT_FOUND_MESSAGE: &str = "License key not found";

platform::service_error! {
    pub enum Error {
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
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let refusal = match err {
            Error::KeyNotFound => Refusal::not_found(reason::KEY_NOT_FOUND, KEY_NOT_FOUND_MESSAGE),
            Error::AlreadyDisabled => {
                Refusal::wrong_state(reason::KEY_ALREADY_DISABLED, "The license key is already disabled.")
            }
            Error::AlreadyActive => {
                Refusal::wrong_state(reason::KEY_ALREADY_ACTIVE, "The license key is already active.")
            }
            Error::KeyDisabled => Refusal::wrong_state(
                reason::KEY_DISABLED,
                "The license key is disabled. Reactivate it first.",
            ),
            Error::KeyExpired => Refusal::wrong_state(
                reason::KEY_EXPIRED,
                "The license key has expired. Reactivate it instead of extending it.",
            ),
            Error::NotExpiring => Refusal::wrong_state(reason::KEY_NOT_EXPIRING, "The license key does not expire."),
            Error::NotTrial => Refusal::wrong_state(reason::KEY_NOT_TRIAL, "Only a trial key can close a deal."),
            Error::TrialLimitReached { limit } => Refusal::wrong_state(
                reason::TRIAL_LIMIT_REACHED,
                format!("This customer has already had {limit} trial periods."),
            )
            .with("limit", limit.to_string()),
            Error::Failed(failure) => return failure,
        };
        refusal.into()
    }
}
