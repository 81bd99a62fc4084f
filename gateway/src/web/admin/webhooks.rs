//! `/admin/webhooks`: Stripe events billing-svc could not apply, with their
//! error, and replaying them once the cause is fixed.

use axum::response::Response;
use minijinja::context;
use proto::billing::v1 as billing;
use serde::Deserialize;

use super::{Console, moment};
use crate::web::{PageError, session::CheckedForm};

/// `GET /admin/webhooks`: unresolved first, then the resolved ones.
pub async fn page(console: Console) -> Result<Response, PageError> {
    let request = console.request(billing::ListFailedWebhooksRequest { include_resolved: true });
    let webhooks = console
        .state
        .billing
        .clone()
        .list_failed_webhooks(request)
        .await?
        .into_inner()
        .webhooks;
    let (open, resolved): (Vec<_>, Vec<_>) = webhooks.into_iter().partition(|webhook| webhook.resolved_at.is_none());
    let (open, resolved) = (rows(open), rows(resolved));
    Ok(console.render("admin_webhooks.html", "webhooks", context! { open, resolved }))
}

fn rows(webhooks: Vec<billing::FailedWebhook>) -> Vec<minijinja::Value> {
    webhooks
        .into_iter()
        .map(|webhook| {
            context! {
                event_id => webhook.event_id,
                event_type => webhook.event_type,
                error => webhook.error,
                attempts => webhook.attempts,
                first_failed => moment(webhook.first_failed_at.as_ref()),
                last_failed => moment(webhook.last_failed_at.as_ref()),
                resolved => moment(webhook.resolved_at.as_ref()),
            }
        })
        .collect()
}

#[derive(Debug, Deserialize)]
pub struct Replay {
    /// One event, or empty for every unresolved one.
    #[serde(default)]
    event_id: String,
}

/// "Replay": applies the event(s) again and says how each went.
pub async fn replay(console: Console, CheckedForm(form): CheckedForm<Replay>) -> Response {
    let request = console.request(billing::ReplayFailedWebhooksRequest {
        event_id: form.event_id,
    });
    let outcome = console.state.billing.clone().replay_failed_webhooks(request).await;
    let outcome = outcome
        .map(|answer| {
            let replayed = answer.into_inner().replayed;
            let applied = replayed.iter().filter(|webhook| webhook.resolved_at.is_some()).count();
            match (replayed.len(), applied) {
                (0, _) => "Nothing to replay.".to_owned(),
                (all, applied) if all == applied => format!("Replayed {all}: every event applied."),
                (all, applied) => format!("Replayed {all}: {applied} applied, {} still failing.", all - applied),
            }
        })
        .map_err(PageError::from);
    console.back("/admin/webhooks", outcome)
}
