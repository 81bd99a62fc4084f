//! Everything a billing operation can answer besides success, and the one
//! place where it becomes a gRPC status. The messages of seed 003 are shown
//! to customers as they are.

use platform::error::Refusal;
use tonic::{Code, Status};

use crate::payments::PaymentsError;

pub const TENANT_NOT_FOUND_MESSAGE: &str = "Tenant not found";
pub const NOT_CANCELLED_MESSAGE: &str = "Only cancelled subscriptions can be reactivated";
pub const EXPIRED_MESSAGE: &str = "Subscription has expired. Please purchase a new subscription.";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{field}: {message}")]
    InvalidField { field: &'static str, message: String },
    #[error("tenant not found")]
    TenantNotFound,
    #[error("subscription not cancelled")]
    NotCancelled,
    #[error("subscription expired")]
    Expired,
    #[error("subscription cannot be cancelled")]
    NotCancellable,
    #[error("already subscribed")]
    AlreadySubscribed,
    /// Stripe failed; nothing changed here.
    #[error(transparent)]
    Payments(#[from] PaymentsError),
    #[error("webhook signature invalid: {0}")]
    SignatureInvalid(&'static str),
    #[error("failed webhook not found")]
    WebhookNotFound,
    #[error("{}", .0.message)]
    Refused(Refusal),
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
            Error::TenantNotFound => Refusal::new(Code::NotFound, "TENANT_NOT_FOUND", TENANT_NOT_FOUND_MESSAGE),
            Error::NotCancelled => wrong_state("SUBSCRIPTION_NOT_CANCELLED", NOT_CANCELLED_MESSAGE),
            Error::Expired => wrong_state("SUBSCRIPTION_EXPIRED", EXPIRED_MESSAGE),
            Error::NotCancellable => wrong_state(
                "SUBSCRIPTION_NOT_CANCELLABLE",
                "Only an active or trial subscription can be cancelled",
            ),
            Error::AlreadySubscribed => wrong_state(
                "ALREADY_SUBSCRIBED",
                "You already have an active subscription. Manage it instead of buying a new one.",
            ),
            Error::Payments(err) => {
                tracing::warn!(error = %err, "payment provider call failed");
                Refusal::new(
                    Code::Unavailable,
                    "PAYMENT_PROVIDER_UNAVAILABLE",
                    "The payment provider could not be reached; nothing was changed. Please try again.",
                )
            }
            Error::SignatureInvalid(why) => Refusal::new(
                Code::InvalidArgument,
                "WEBHOOK_SIGNATURE_INVALID",
                format!("Stripe-Signature rejected: {why}"),
            ),
            Error::WebhookNotFound => Refusal::new(Code::NotFound, "WEBHOOK_NOT_FOUND", "No such failed webhook"),
            Error::Refused(refusal) => refusal,
            Error::Internal(err) => return platform::error::internal(&err),
        };
        refusal.into()
    }
}
