//! Everything a billing operation can answer besides success, and the one
//! place where it becomes a gRPC status. The messages of seed 003 are shown
//! to customers as they are.

use platform::error::{Failure, Refusal, reason};
use tonic::Code;

use crate::payments::PaymentsError;

pub const TENANT_NOT_FOUND_MESSAGE: &str = "Tenant not found";
pub const NOT_CANCELLED_MESSAGE: &str = "Only cancelled subscriptions can be reactivated";
pub const EXPIRED_MESSAGE: &str = "Subscription has expired. Please purchase a new subscription.";

platform::service_error! {
    pub enum Error {
        /// NOT_FOUND, reason `TENANT_NOT_FOUND`.
        #[error("tenant not found")]
        TenantNotFound,
        /// FAILED_PRECONDITION, reason `SUBSCRIPTION_NOT_CANCELLED`.
        #[error("subscription not cancelled")]
        NotCancelled,
        /// FAILED_PRECONDITION, reason `SUBSCRIPTION_EXPIRED`.
        #[error("subscription expired")]
        Expired,
        /// FAILED_PRECONDITION, reason `SUBSCRIPTION_NOT_CANCELLABLE`.
        #[error("subscription cannot be cancelled")]
        NotCancellable,
        /// FAILED_PRECONDITION, reason `ALREADY_SUBSCRIBED`.
        #[error("already subscribed")]
        AlreadySubscribed,
        /// The welcome-back coupons do not exist at Stripe (UNAVAILABLE,
        /// `OFFER_NOT_SET_UP`): an operator must run `billing-svc setup-coupons`.
        #[error("the welcome-back offer is not set up at Stripe")]
        OfferNotSetUp,
        /// A cancelled subscription still runs until `until`: undo it instead
        /// (FAILED_PRECONDITION, `CANCELLED_SUBSCRIPTION_RUNNING`).
        #[error("a cancelled subscription still runs")]
        CancelledStillRunning { until: chrono::DateTime<chrono::Utc> },
        /// Stripe failed; nothing changed here (UNAVAILABLE,
        /// `PAYMENT_PROVIDER_UNAVAILABLE`). Shown as the provider's own
        /// error (`transparent` would clash with the one the macro adds).
        #[error("{0}")]
        Payments(#[from] PaymentsError),
        /// INVALID_ARGUMENT, reason `WEBHOOK_SIGNATURE_INVALID`.
        #[error("webhook signature invalid: {0}")]
        SignatureInvalid(&'static str),
        /// NOT_FOUND, reason `WEBHOOK_NOT_FOUND`.
        #[error("failed webhook not found")]
        WebhookNotFound,
    }
}

impl From<Error> for Failure {
    fn from(err: Error) -> Self {
        let refusal = match err {
            Error::TenantNotFound => Refusal::not_found(reason::TENANT_NOT_FOUND, TENANT_NOT_FOUND_MESSAGE),
            Error::NotCancelled => Refusal::wrong_state(reason::SUBSCRIPTION_NOT_CANCELLED, NOT_CANCELLED_MESSAGE),
            Error::Expired => Refusal::wrong_state(reason::SUBSCRIPTION_EXPIRED, EXPIRED_MESSAGE),
            Error::NotCancellable => Refusal::wrong_state(
                reason::SUBSCRIPTION_NOT_CANCELLABLE,
                "Only an active or trial subscription can be cancelled",
            ),
            Error::AlreadySubscribed => Refusal::wrong_state(
                reason::ALREADY_SUBSCRIBED,
                "You already have an active subscription. Manage it instead of buying a new one.",
            ),
            Error::CancelledStillRunning { until } => Refusal::wrong_state(
                reason::CANCELLED_SUBSCRIPTION_RUNNING,
                format!(
                    "Your cancelled subscription runs until {}. Reactivate it instead of buying a new one; \
                     a new plan can be bought once it has ended.",
                    until.format("%B %-d, %Y")
                ),
            ),
            Error::OfferNotSetUp => {
                tracing::error!("the welcome-back coupons are missing at Stripe: run `billing-svc setup-coupons`");
                Refusal::new(
                    Code::Unavailable,
                    reason::OFFER_NOT_SET_UP,
                    "The welcome-back offer is not available yet; nothing was charged. Please try again later.",
                )
            }
            Error::Payments(err) => {
                tracing::warn!(error = %err, "payment provider call failed");
                Refusal::new(
                    Code::Unavailable,
                    reason::PAYMENT_PROVIDER_UNAVAILABLE,
                    "The payment provider could not be reached; nothing was changed. Please try again.",
                )
            }
            Error::SignatureInvalid(why) => Refusal::new(
                Code::InvalidArgument,
                reason::WEBHOOK_SIGNATURE_INVALID,
                format!("Stripe-Signature rejected: {why}"),
            ),
            Error::WebhookNotFound => Refusal::not_found(reason::WEBHOOK_NOT_FOUND, "No such failed webhook"),
            Error::Failed(failure) => return failure,
        };
        refusal.into()
    }
}

impl From<crate::domain::Refused> for Error {
    fn from(refused: crate::domain::Refused) -> Self {
        match refused {
            crate::domain::Refused::NotCancellable => Self::NotCancellable,
            crate::domain::Refused::NotCancelled => Self::NotCancelled,
            crate::domain::Refused::Expired => Self::Expired,
        }
    }
}
