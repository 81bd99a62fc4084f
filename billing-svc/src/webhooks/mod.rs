//! Stripe webhooks: verified by signature ([`crate::signature`]), parsed
//! ([`event`]), applied exactly once per event id ([`apply`]), kept for
//! replay when applying fails ([`failed`]).
//!
//! Stripe retries and may deliver events out of order, so an event is a
//! prompt rather than the truth: for subscription and invoice events the
//! current subscription is fetched from Stripe and synced, which makes the
//! order of arrival irrelevant. The event id is recorded in the same transaction as
//! its effects; a second delivery finds it and changes nothing.

mod apply;
mod event;
mod failed;

pub use event::{Event, EventData};
pub use failed::FailedWebhook;

use crate::{billing::Billing, error::Error, signature};

/// What became of a delivered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Applied,
    Duplicate,
    Ignored,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Applied => "applied",
            Outcome::Duplicate => "duplicate",
            Outcome::Ignored => "ignored",
        }
    }
}

impl Billing {
    /// Verifies and applies one delivery from Stripe.
    ///
    /// Counted in `stripe_webhooks_total` by outcome: `refused` when the
    /// signature or the body is bad, `failed` when applying failed (the
    /// event is kept for replay).
    #[tracing::instrument(skip_all)]
    pub async fn handle_webhook(&self, payload: &[u8], signature: &str) -> Result<(String, Outcome), Error> {
        let metrics = platform::metrics::metrics();
        let verified = signature::verify(signature, payload, self.stripe.webhook_secret.expose(), self.now())
            .and_then(|()| Event::parse(payload));
        let (event, raw) = verified.inspect_err(|_| metrics.record_webhook("refused"))?;
        tracing::info!(event = %event.id, kind = %event.kind, "stripe event received");
        let outcome = self
            .apply_or_keep(&event, &raw)
            .await
            .inspect_err(|_| metrics.record_webhook("failed"))?;
        metrics.record_webhook(outcome.as_str());
        Ok((event.id, outcome))
    }
}
