//! One audit trail (admin): a customer's story across every service, in
//! order, each event with the trace id of the request that caused it; and
//! the reactivation funnel.

use axum::{Json, extract::Path};
use chrono::{DateTime, Utc};
use proto::{billing::v1 as billing, identity::v1 as identity, license::v1 as license};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminOnly, time};
use crate::{AppState, extract::OnBehalf, problem::Problem};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(timeline)).routes(routes!(funnel))
}

/// One lifecycle event of a customer, in any service.
#[derive(Debug, Serialize, ToSchema)]
pub struct TimelineEvent {
    /// `identity`, `billing` or `license`.
    pub service: String,
    /// e.g. `deactivated`, `reactivation_link_opened`, `cancelled`,
    /// `returned`, `offer_used`, `suspended`, `restored`.
    pub event: String,
    pub occurred_at: Option<DateTime<Utc>>,
    /// W3C trace id of the request that caused it.
    pub trace_id: Option<String>,
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Timeline {
    pub user_id: String,
    /// Oldest first.
    pub events: Vec<TimelineEvent>,
    /// Services that could not be asked just now: their events are missing.
    pub incomplete: Vec<String>,
}

fn event(
    service: &str,
    event: String,
    at: Option<&prost_types::Timestamp>,
    trace: String,
    json: &str,
) -> TimelineEvent {
    TimelineEvent {
        service: service.to_owned(),
        event,
        occurred_at: time(at),
        trace_id: Some(trace).filter(|trace| !trace.is_empty()),
        details: serde_json::from_str(json).unwrap_or_default(),
    }
}

/// One customer's lifecycle across identity, billing and license keys (admin).
///
/// The services are asked at once; one that cannot answer is named in
/// `incomplete` rather than failing the whole answer.
#[utoipa::path(get, path = "/api/admin/users/{id}/timeline", tag = "admin", security(("bearer" = [])),
    params(("id" = String, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The timeline", body = Timeline),
        AdminOnly,
    ))]
async fn timeline(on: OnBehalf, Path(id): Path<String>) -> Result<Json<Timeline>, Problem> {
    on.caller.require_admin()?;
    Ok(Json(of_customer(&on, id).await?))
}

/// The timeline of the customer `id`, asked of every service at once on
/// an admin's behalf (the caller is known to be one).
pub async fn of_customer(on: &OnBehalf, id: String) -> Result<Timeline, Problem> {
    let account = identity::ListAccountEventsRequest { user_id: id.clone() };
    let payments = billing::ListCustomerEventsRequest { user_id: id.clone() };
    let keys = license::ListCustomerHistoryRequest { user_id: id.clone() };
    let (mut identity_svc, mut billing_svc, mut license_svc) = (
        on.state.identity.clone(),
        on.state.billing.clone(),
        on.state.license.clone(),
    );
    let (account, payments, keys) = tokio::join!(
        identity_svc.list_account_events(on.request(account)),
        billing_svc.list_customer_events(on.request(payments)),
        license_svc.list_customer_history(on.request(keys)),
    );
    // The account is the timeline's subject: without it there is no answer.
    let account = account?.into_inner();
    let mut events: Vec<TimelineEvent> = account
        .events
        .into_iter()
        .map(|e| {
            event(
                "identity",
                e.event_type,
                e.occurred_at.as_ref(),
                e.trace_id,
                &e.data_json,
            )
        })
        .collect();
    let mut incomplete = Vec::new();
    match payments {
        Ok(payments) => events.extend(
            payments
                .into_inner()
                .events
                .into_iter()
                .map(|e| event("billing", e.event, e.occurred_at.as_ref(), e.trace_id, &e.details_json)),
        ),
        Err(_) => incomplete.push("billing".to_owned()),
    }
    match keys {
        Ok(keys) => events.extend(keys.into_inner().entries.into_iter().map(|e| {
            let mut entry = event(
                "license",
                e.action,
                e.performed_at.as_ref(),
                e.trace_id,
                &e.details_json,
            );
            if let serde_json::Value::Object(details) = &mut entry.details {
                details.insert("key".into(), e.key.into());
            }
            entry
        })),
        Err(_) => incomplete.push("license".to_owned()),
    }
    // Stable: events of one service keep their own order at equal times.
    events.sort_by_key(|event| event.occurred_at);
    Ok(Timeline {
        user_id: id,
        events,
        incomplete,
    })
}

#[derive(Debug, Serialize, ToSchema)]
pub struct Funnel {
    /// Reactivation links asked for.
    pub requested: u64,
    /// Of those, emails sent (accounts allowed to reactivate themselves).
    pub email_sent: u64,
    /// Links whose page was opened.
    pub link_opened: u64,
    /// Accounts reactivated through a link.
    pub confirmed: u64,
    /// Customers who came back and paid for a plan again.
    pub paid: u64,
}

/// The reactivation funnel: requested → email sent → link opened →
/// confirmed → paid (admin).
#[utoipa::path(get, path = "/api/admin/metrics/funnel", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "The counts so far", body = Funnel),
        AdminOnly,
    ))]
async fn funnel(on: OnBehalf) -> Result<Json<Funnel>, Problem> {
    on.caller.require_admin()?;
    let (mut identity_svc, mut billing_svc) = (on.state.identity.clone(), on.state.billing.clone());
    let (accounts, money) = tokio::join!(
        identity_svc.get_reactivation_funnel(on.request(identity::GetReactivationFunnelRequest {})),
        billing_svc.get_reactivation_metrics(on.request(billing::GetReactivationMetricsRequest {})),
    );
    let (accounts, money) = (accounts?.into_inner(), money?.into_inner());
    Ok(Json(Funnel {
        requested: accounts.requested,
        email_sent: accounts.email_sent,
        link_opened: accounts.link_opened,
        confirmed: accounts.confirmed,
        paid: money.returned_customers,
    }))
}
