//! Subscription routes (seeds 003 and 004): see, cancel and undo a
//! cancellation, prices with the welcome-back offer, Stripe Checkout, Stripe's
//! webhook, and the win-back metrics for admins.

use axum::{
    Extension, Json,
    extract::{DefaultBodyLimit, State},
    http::HeaderMap,
    response::Response,
};
use chrono::{DateTime, Utc};
use proto::billing::v1 as pb;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use super::{AdminOnly, SignedInOnly, time};
use crate::{
    AppState,
    extract::{Body, OnBehalf, OptionalBody, RawBody, RequestId},
    problem::Problem,
    web::{self, PageError, session::CsrfToken},
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(subscription))
        .routes(routes!(cancel_subscription))
        .routes(routes!(reactivate_subscription))
        .routes(routes!(pricing))
        .routes(routes!(create_checkout_session))
        .merge(
            // Stripe's events are larger than any body a person sends.
            OpenApiRouter::new()
                .routes(routes!(stripe_webhook))
                .layer(DefaultBodyLimit::max(WEBHOOK_BODY_LIMIT)),
        )
        .routes(routes!(reactivation_metrics))
        .routes(routes!(failed_webhooks))
        .routes(routes!(replay_failed_webhooks))
        .merge(
            OpenApiRouter::new()
                .routes(routes!(checkout_success))
                .routes(routes!(checkout_cancelled))
                .layer(axum::middleware::from_fn(web::page)),
        )
}

fn plan_name(plan: pb::Plan) -> Option<&'static str> {
    match plan {
        pb::Plan::Unspecified => None,
        pb::Plan::Grower => Some("grower"),
        pb::Plan::Builder => Some("builder"),
        pb::Plan::Maven => Some("maven"),
    }
}

fn period_name(period: pb::BillingPeriod) -> Option<&'static str> {
    match period {
        pb::BillingPeriod::Unspecified => None,
        pb::BillingPeriod::Monthly => Some("monthly"),
        pb::BillingPeriod::Annual => Some("annual"),
    }
}

fn status_name(status: pb::SubscriptionStatus) -> &'static str {
    match status {
        pb::SubscriptionStatus::Unspecified | pb::SubscriptionStatus::None => "none",
        pb::SubscriptionStatus::Trial => "trial",
        pb::SubscriptionStatus::Active => "active",
        pb::SubscriptionStatus::Cancelled => "cancelled",
        pb::SubscriptionStatus::Expired => "expired",
    }
}

/// The caller's subscription as the billing page shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionView {
    /// `none`, `trial`, `active`, `cancelled` or `expired`.
    pub subscription_status: String,
    /// `grower`, `builder` or `maven`.
    pub plan: Option<String>,
    /// `monthly` or `annual`.
    pub billing_period: Option<String>,
    /// End of the paid period: renewal date, or end of access once cancelled.
    pub next_billing_date: Option<DateTime<Utc>>,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Whether "Cancel Subscription" applies (active or trial).
    pub can_cancel: bool,
    /// Whether "Reactivate Subscription" applies (cancelled, period not over).
    pub can_reactivate: bool,
    /// A renewal payment is failing.
    pub payment_failed: bool,
}

impl From<pb::Subscription> for SubscriptionView {
    fn from(subscription: pb::Subscription) -> Self {
        Self {
            subscription_status: status_name(subscription.status()).to_owned(),
            plan: plan_name(subscription.plan()).map(str::to_owned),
            billing_period: period_name(subscription.billing_period()).map(str::to_owned),
            next_billing_date: time(subscription.next_billing_date.as_ref()),
            cancelled_at: time(subscription.cancelled_at.as_ref()),
            can_cancel: subscription.can_cancel,
            can_reactivate: subscription.can_reactivate,
            payment_failed: subscription.payment_failed,
        }
    }
}

/// The caller's subscription.
#[utoipa::path(get, path = "/api/subscription", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, description = "The subscription (`none` when the caller never subscribed)", body = SubscriptionView),
        SignedInOnly,
    ))]
async fn subscription(on: OnBehalf) -> Result<Json<SubscriptionView>, Problem> {
    let request = on.request(pb::GetSubscriptionRequest::default());
    let subscription = on.state.billing.clone().get_subscription(request).await?.into_inner();
    Ok(Json(subscription.into()))
}

/// The outcome of cancelling or undoing a cancellation (seed 003's shape).
#[derive(Debug, Serialize, ToSchema)]
pub struct SubscriptionChanged {
    /// Always `true` on success.
    pub status: bool,
    pub message: String,
    pub subscription_status: String,
    pub next_billing_date: Option<DateTime<Utc>>,
}

impl SubscriptionChanged {
    fn new(message: &str, subscription: pb::Subscription) -> Self {
        Self {
            status: true,
            message: message.to_owned(),
            subscription_status: status_name(subscription.status()).to_owned(),
            next_billing_date: time(subscription.next_billing_date.as_ref()),
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct CancelSubscription {
    /// Why the customer leaves; kept as `last_cancellation_reason`.
    pub reason: Option<String>,
}

/// Cancel the caller's subscription at the end of the paid period.
///
/// Access continues until `next_billing_date`; nothing renews. Undo with
/// `POST /api/subscription/reactivate` before that date.
#[utoipa::path(post, path = "/api/cancel-subscription", tag = "billing", security(("bearer" = [])),
    request_body(content = CancelSubscription, description = "Optional"),
    responses(
        (status = 200, description = "Cancelled at period end", body = SubscriptionChanged),
        (status = 400, description = "Not an active or trial subscription", body = Problem, content_type = "application/problem+json"),
        SignedInOnly,
        (status = 404, description = "Tenant not found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe unavailable; nothing changed, try again", body = Problem, content_type = "application/problem+json"),
    ))]
async fn cancel_subscription(
    on: OnBehalf,
    OptionalBody(body): OptionalBody<CancelSubscription>,
) -> Result<Json<SubscriptionChanged>, Problem> {
    let message = pb::CancelSubscriptionRequest {
        reason: body.reason.unwrap_or_default(),
    };
    let request = on.request(message);
    let subscription = on
        .state
        .billing
        .clone()
        .cancel_subscription(request)
        .await?
        .into_inner();
    Ok(Json(SubscriptionChanged::new(
        "Subscription cancelled. You keep access until the end of the billing period.",
        subscription,
    )))
}

/// Undo a cancellation before the paid period ends (seed 003).
///
/// Back to `active`; `next_billing_date` is unchanged and nothing is
/// charged now.
#[utoipa::path(post, path = "/api/subscription/reactivate", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, description = "Reactivated", body = SubscriptionChanged),
        (status = 400, description = "\"Only cancelled subscriptions can be reactivated\", or \"Subscription has expired. Please purchase a new subscription.\"", body = Problem, content_type = "application/problem+json"),
        SignedInOnly,
        (status = 404, description = "Tenant not found", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "Stripe unavailable; nothing changed, try again", body = Problem, content_type = "application/problem+json"),
    ))]
async fn reactivate_subscription(on: OnBehalf) -> Result<Json<SubscriptionChanged>, Problem> {
    let request = on.request(pb::ReactivateSubscriptionRequest {});
    let subscription = on
        .state
        .billing
        .clone()
        .reactivate_subscription(request)
        .await?
        .into_inner();
    Ok(Json(SubscriptionChanged::new(
        "Subscription reactivated successfully!",
        subscription,
    )))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PriceView {
    pub plan: String,
    pub billing_period: String,
    /// One period's regular price in US cents.
    pub amount_cents: i64,
    /// The same in dollars, e.g. `"35.00"`.
    pub amount: String,
    /// The first period with the welcome-back offer, when eligible.
    pub welcome_back_amount_cents: Option<i64>,
    pub welcome_back_amount: Option<String>,
    /// `PR_WELCOME_BACK_MONTHLY` or `PR_WELCOME_BACK_ANNUAL`, when eligible.
    pub welcome_back_coupon: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PricingView {
    pub currency: String,
    /// The caller left before and has not used the offer yet.
    pub welcome_back_eligible: bool,
    pub prices: Vec<PriceView>,
}

fn dollars(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// Every plan and period, with the welcome-back price when the caller is eligible.
#[utoipa::path(get, path = "/api/pricing", tag = "billing", security(("bearer" = [])),
    responses(
        (status = 200, description = "Prices", body = PricingView),
        SignedInOnly,
    ))]
async fn pricing(on: OnBehalf) -> Result<Json<PricingView>, Problem> {
    let request = on.request(pb::GetPricingRequest {});
    let pricing = on.state.billing.clone().get_pricing(request).await?.into_inner();
    let prices = pricing
        .prices
        .iter()
        .map(|price| PriceView {
            plan: plan_name(price.plan()).unwrap_or_default().to_owned(),
            billing_period: period_name(price.billing_period()).unwrap_or_default().to_owned(),
            amount_cents: price.amount_cents,
            amount: dollars(price.amount_cents),
            welcome_back_amount_cents: price.welcome_back_amount_cents,
            welcome_back_amount: price.welcome_back_amount_cents.map(dollars),
            welcome_back_coupon: Some(price.welcome_back_coupon.clone()).filter(|coupon| !coupon.is_empty()),
        })
        .collect();
    Ok(Json(PricingView {
        currency: pricing.currency,
        welcome_back_eligible: pricing.welcome_back_eligible,
        prices,
    }))
}

#[derive(Debug, Deserialize, ToSchema)]
pub struct CheckoutRequest {
    /// `grower`, `builder` or `maven`.
    pub plan: String,
    /// `monthly` or `annual`.
    pub billing_period: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct CheckoutView {
    /// Stripe Checkout: send the browser here.
    pub url: String,
    pub session_id: String,
    /// The welcome-back coupon applied, if any.
    pub coupon: Option<String>,
}

/// Start a Stripe Checkout for a plan.
///
/// A returning customer (who cancelled before and has not used the offer)
/// gets the welcome-back coupon automatically: 50 % off the first month, or
/// 20 % off the first year.
#[utoipa::path(post, path = "/api/create-checkout-session", tag = "billing", security(("bearer" = [])),
    request_body = CheckoutRequest,
    responses(
        (status = 200, description = "The Checkout session", body = CheckoutView),
        (status = 400, description = "Unknown plan or period; already subscribed (`ALREADY_SUBSCRIBED`); or a cancelled subscription still runs (`CANCELLED_SUBSCRIPTION_RUNNING`: undo the cancellation instead)", body = Problem, content_type = "application/problem+json"),
        SignedInOnly,
        (status = 503, description = "Stripe unavailable; try again", body = Problem, content_type = "application/problem+json"),
    ))]
async fn create_checkout_session(
    on: OnBehalf,
    Body(body): Body<CheckoutRequest>,
) -> Result<Json<CheckoutView>, Problem> {
    let plan = match body.plan.trim().to_lowercase().as_str() {
        "grower" => pb::Plan::Grower,
        "builder" => pb::Plan::Builder,
        "maven" => pb::Plan::Maven,
        _ => return Err(Problem::invalid_field("plan", "plan must be grower, builder or maven")),
    };
    let period = match body.billing_period.trim().to_lowercase().as_str() {
        "monthly" => pb::BillingPeriod::Monthly,
        "annual" => pb::BillingPeriod::Annual,
        _ => {
            return Err(Problem::invalid_field(
                "billing_period",
                "billing_period must be monthly or annual",
            ));
        }
    };
    let message = pb::CreateCheckoutSessionRequest {
        plan: plan.into(),
        billing_period: period.into(),
    };
    let request = on.request(message);
    let session = on
        .state
        .billing
        .clone()
        .create_checkout_session(request)
        .await?
        .into_inner();
    Ok(Json(CheckoutView {
        url: session.url,
        session_id: session.id,
        coupon: Some(session.coupon).filter(|coupon| !coupon.is_empty()),
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookReceived {
    pub received: bool,
    pub event_id: String,
    /// `applied`, `duplicate` or `ignored`.
    pub outcome: String,
}

/// The largest Stripe event accepted: billing-svc's own limit.
const WEBHOOK_BODY_LIMIT: usize = 1024 * 1024;

/// Stripe's webhook endpoint.
///
/// The body is passed to billing untouched and verified there against
/// `Stripe-Signature`; each event id is applied once however often Stripe
/// sends it. An event that fails to apply answers 500 (Stripe retries) and
/// is kept for replay.
#[utoipa::path(post, path = "/api/stripe/webhook", tag = "billing",
    request_body(content = String, description = "A Stripe event, exactly as Stripe sent it", content_type = "application/json"),
    params(("Stripe-Signature" = String, Header, description = "t=<unix time>,v1=<HMAC-SHA256>")),
    responses(
        (status = 200, description = "Received", body = WebhookReceived),
        (status = 400, description = "Bad or stale signature, or not an event; nothing applied", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "Body over 1 MiB", body = Problem, content_type = "application/problem+json"),
        (status = 500, description = "Failed to apply; kept for replay", body = Problem, content_type = "application/problem+json"),
    ))]
async fn stripe_webhook(
    State(state): State<AppState>,
    RequestId(request_id): RequestId,
    headers: HeaderMap,
    RawBody(payload): RawBody,
) -> Result<Json<WebhookReceived>, Problem> {
    let signature = headers
        .get("stripe-signature")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let message = pb::HandleStripeWebhookRequest {
        payload: payload.to_vec(),
        signature,
    };
    let request = state.calls.anonymous(&request_id, message);
    let handled = state.billing.clone().handle_stripe_webhook(request).await?.into_inner();
    Ok(Json(WebhookReceived {
        received: true,
        event_id: handled.event_id,
        outcome: handled.outcome,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BillingChoice {
    pub monthly: u64,
    pub annual: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReactivationMetricsView {
    /// Customers who cancelled (and did not undo it).
    pub churned_customers: u64,
    /// Of those, customers who subscribed again.
    pub returned_customers: u64,
    pub reactivation_rate_percent: f64,
    pub average_days_to_return: f64,
    /// Billing period chosen on coming back.
    pub billing_choice_on_reactivation: BillingChoice,
    pub welcome_back_offers_used: u64,
}

/// Win-back metrics (admin): reactivation rate, average time to return,
/// monthly vs annual on return.
#[utoipa::path(get, path = "/api/admin/metrics/reactivation", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "The metrics", body = ReactivationMetricsView),
        AdminOnly,
    ))]
async fn reactivation_metrics(on: OnBehalf) -> Result<Json<ReactivationMetricsView>, Problem> {
    on.caller.require_admin()?;
    let request = on.request(pb::GetReactivationMetricsRequest {});
    let metrics = on
        .state
        .billing
        .clone()
        .get_reactivation_metrics(request)
        .await?
        .into_inner();
    Ok(Json(ReactivationMetricsView {
        churned_customers: metrics.churned_customers,
        returned_customers: metrics.returned_customers,
        reactivation_rate_percent: metrics.reactivation_rate_percent,
        average_days_to_return: metrics.average_days_to_return,
        billing_choice_on_reactivation: BillingChoice {
            monthly: metrics.returned_monthly,
            annual: metrics.returned_annual,
        },
        welcome_back_offers_used: metrics.welcome_back_offers_used,
    }))
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedWebhookView {
    pub event_id: String,
    pub event_type: String,
    pub error: String,
    pub attempts: u32,
    pub first_failed_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
    pub resolved_at: Option<DateTime<Utc>>,
}

impl From<pb::FailedWebhook> for FailedWebhookView {
    fn from(failed: pb::FailedWebhook) -> Self {
        Self {
            first_failed_at: time(failed.first_failed_at.as_ref()),
            last_failed_at: time(failed.last_failed_at.as_ref()),
            resolved_at: time(failed.resolved_at.as_ref()),
            event_id: failed.event_id,
            event_type: failed.event_type,
            error: failed.error,
            attempts: failed.attempts,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct FailedWebhooks {
    pub data: Vec<FailedWebhookView>,
}

/// Stripe events that failed to apply and are not resolved yet (admin).
#[utoipa::path(get, path = "/api/admin/webhooks/failed", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "Unresolved failed webhooks, oldest first", body = FailedWebhooks),
        AdminOnly,
    ))]
async fn failed_webhooks(on: OnBehalf) -> Result<Json<FailedWebhooks>, Problem> {
    on.caller.require_admin()?;
    let message = pb::ListFailedWebhooksRequest {
        include_resolved: false,
    };
    let request = on.request(message);
    let listed = on
        .state
        .billing
        .clone()
        .list_failed_webhooks(request)
        .await?
        .into_inner();
    Ok(Json(FailedWebhooks {
        data: listed.webhooks.into_iter().map(Into::into).collect(),
    }))
}

#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct ReplayWebhooks {
    /// One event id; default every unresolved failed webhook.
    pub event_id: Option<String>,
}

/// Apply failed Stripe events again (admin).
#[utoipa::path(post, path = "/api/admin/webhooks/failed/replay", tag = "admin", security(("bearer" = [])),
    request_body(content = ReplayWebhooks, description = "Optional"),
    responses(
        (status = 200, description = "Each webhook replayed, resolved or failed again", body = FailedWebhooks),
        AdminOnly,
        (status = 404, description = "No such failed webhook", body = Problem, content_type = "application/problem+json"),
    ))]
async fn replay_failed_webhooks(
    on: OnBehalf,
    OptionalBody(body): OptionalBody<ReplayWebhooks>,
) -> Result<Json<FailedWebhooks>, Problem> {
    on.caller.require_admin()?;
    let message = pb::ReplayFailedWebhooksRequest {
        event_id: body.event_id.unwrap_or_default(),
    };
    let request = on.request(message);
    let replayed = on
        .state
        .billing
        .clone()
        .replay_failed_webhooks(request)
        .await?
        .into_inner();
    Ok(Json(FailedWebhooks {
        data: replayed.replayed.into_iter().map(Into::into).collect(),
    }))
}

/// Where Stripe Checkout returns a customer who paid: a page of the web app
/// showing the new subscription.
#[utoipa::path(get, path = "/billing/success", tag = "billing",
    responses((status = 200, description = "A page confirming the payment", content_type = "text/html", body = String)))]
async fn checkout_success(
    Extension(state): Extension<AppState>,
    RequestId(request_id): RequestId,
    CsrfToken(csrf): CsrfToken,
    headers: HeaderMap,
) -> Result<Response, PageError> {
    web::billing::success(&state, &request_id, &csrf, &headers).await
}

/// Where Stripe Checkout returns a customer who gave up.
#[utoipa::path(get, path = "/billing/cancelled", tag = "billing",
    responses((status = 200, description = "A page saying nothing was charged", content_type = "text/html", body = String)))]
async fn checkout_cancelled(Extension(state): Extension<AppState>, CsrfToken(csrf): CsrfToken) -> Response {
    web::billing::cancelled(&state, &csrf)
}
