//! Webhooks that failed to apply, kept with their payload so an operator
//! (or Stripe's own retry) can apply them again.

use serde_json::Value;

use super::{Event, Outcome};
pub use crate::db::webhooks::FailedWebhook;
use crate::{billing::Billing, db, error::Error};

impl Billing {
    /// Applies `event`; a failure is kept in `failed_webhooks` (and returned,
    /// so Stripe retries too).
    pub(super) async fn apply_or_keep(&self, event: &Event, raw: &Value) -> Result<Outcome, Error> {
        match self.apply(event).await {
            Ok(outcome) => Ok(outcome),
            Err(err) => {
                tracing::warn!(event = %event.id, kind = %event.kind, error = %err, "stripe event failed to apply");
                let now = self.now();
                db::webhooks::keep_failed(&self.pool, &event.id, &event.kind, raw, err.to_string(), now).await?;
                Err(err)
            }
        }
    }

    pub async fn failed_webhooks(&self, include_resolved: bool) -> Result<Vec<FailedWebhook>, Error> {
        Ok(db::webhooks::failed(&self.pool, include_resolved).await?)
    }

    /// Applies failed webhooks again: `event_id`, or every unresolved one.
    /// Each comes back with its new state (resolved, or failed once more).
    pub async fn replay_failed(&self, event_id: Option<&str>) -> Result<Vec<FailedWebhook>, Error> {
        let pending: Vec<(String, Value)> = match event_id {
            Some(id) => vec![
                db::webhooks::failed_payload(&self.pool, id)
                    .await?
                    .ok_or(Error::WebhookNotFound)?,
            ],
            None => db::webhooks::unresolved_payloads(&self.pool).await?,
        };
        let mut replayed = Vec::with_capacity(pending.len());
        for (id, payload) in pending {
            let event: Event = serde_json::from_value(payload.clone()).map_err(anyhow::Error::from)?;
            match self.apply_or_keep(&event, &payload).await {
                Ok(outcome) => tracing::info!(event = %id, outcome = outcome.as_str(), "failed webhook replayed"),
                Err(err) => tracing::warn!(event = %id, error = %err, "failed webhook failed again"),
            }
            let state = db::webhooks::failed_one(&self.pool, &id).await?;
            replayed.push(state);
        }
        Ok(replayed)
    }
}
