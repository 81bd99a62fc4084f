//! The `reactivation.billing.v1.BillingService` gRPC surface: authenticates
//! callers (a user acts on their own tenant only; admin calls need admin),
//! converts requests into domain calls at the edge and results back.

use chrono::{DateTime, Utc};
use platform::{
    auth::{Authenticator, Caller},
    wire,
};
use proto::billing::v1 as pb;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::{
    billing::Billing,
    domain::{BillingPeriod, Plan, Product, Status as SubscriptionStatus, Subscription},
    error::Error,
    webhooks::FailedWebhook,
};

#[derive(Clone, Debug)]
pub struct BillingService {
    pub(crate) billing: Billing,
    pub(crate) authenticator: Authenticator,
}

impl BillingService {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        self.authenticator.authenticate(request.metadata()).await
    }

    async fn admin<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let caller = self.caller(request).await?;
        caller.require_admin().map_err(Error::from)?;
        Ok(caller)
    }
}

fn plan_to_wire(plan: Plan) -> pb::Plan {
    match plan {
        Plan::Grower => pb::Plan::Grower,
        Plan::Builder => pb::Plan::Builder,
        Plan::Maven => pb::Plan::Maven,
    }
}

fn period_to_wire(period: BillingPeriod) -> pb::BillingPeriod {
    match period {
        BillingPeriod::Monthly => pb::BillingPeriod::Monthly,
        BillingPeriod::Annual => pb::BillingPeriod::Annual,
    }
}

fn product_from_wire(plan: i32, period: i32) -> Result<Product, Error> {
    let plan = match pb::Plan::try_from(plan) {
        Ok(pb::Plan::Grower) => Plan::Grower,
        Ok(pb::Plan::Builder) => Plan::Builder,
        Ok(pb::Plan::Maven) => Plan::Maven,
        _ => return Err(Error::invalid("plan", "plan must be grower, builder or maven")),
    };
    let period = match pb::BillingPeriod::try_from(period) {
        Ok(pb::BillingPeriod::Monthly) => BillingPeriod::Monthly,
        Ok(pb::BillingPeriod::Annual) => BillingPeriod::Annual,
        _ => {
            return Err(Error::invalid(
                "billing_period",
                "billing_period must be monthly or annual",
            ));
        }
    };
    Ok(Product { plan, period })
}

fn subscription_to_wire(subscription: Option<Subscription>, now: DateTime<Utc>) -> pb::Subscription {
    let Some(subscription) = subscription else {
        return pb::Subscription {
            status: pb::SubscriptionStatus::None.into(),
            ..Default::default()
        };
    };
    let status = match subscription.status {
        SubscriptionStatus::Trial => pb::SubscriptionStatus::Trial,
        SubscriptionStatus::Active => pb::SubscriptionStatus::Active,
        SubscriptionStatus::Cancelled => pb::SubscriptionStatus::Cancelled,
        SubscriptionStatus::Expired => pb::SubscriptionStatus::Expired,
    };
    pb::Subscription {
        status: status.into(),
        plan: plan_to_wire(subscription.product.plan).into(),
        billing_period: period_to_wire(subscription.product.period).into(),
        next_billing_date: Some(wire::timestamp(subscription.next_billing_date)),
        can_cancel: subscription.can_cancel(),
        can_reactivate: subscription.can_reactivate(now),
        cancelled_at: wire::optional_timestamp(subscription.cancelled_at),
        payment_failed: subscription.payment_failed_at.is_some(),
    }
}

impl From<FailedWebhook> for pb::FailedWebhook {
    fn from(failed: FailedWebhook) -> Self {
        Self {
            event_id: failed.event_id,
            event_type: failed.event_type,
            error: failed.error,
            attempts: failed.attempts.max(0) as u32,
            first_failed_at: Some(wire::timestamp(failed.first_failed_at)),
            last_failed_at: Some(wire::timestamp(failed.last_failed_at)),
            resolved_at: wire::optional_timestamp(failed.resolved_at),
        }
    }
}

#[tonic::async_trait]
impl pb::billing_service_server::BillingService for BillingService {
    async fn get_subscription(
        &self,
        request: Request<pb::GetSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = self.caller(&request).await?;
        let user_id = match request.get_ref().user_id.trim() {
            "" => caller.user_id,
            other => {
                caller.require_admin().map_err(Error::from)?;
                Uuid::parse_str(other).map_err(|_| Error::invalid("user_id", "user_id must be a UUID"))?
            }
        };
        let subscription = self.billing.subscription(user_id).await?;
        Ok(Response::new(subscription_to_wire(subscription, self.billing.now())))
    }

    async fn cancel_subscription(
        &self,
        request: Request<pb::CancelSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = self.caller(&request).await?;
        let reason = request.into_inner().reason.trim().to_owned();
        if reason.chars().count() > 1000 {
            return Err(Error::invalid("reason", "reason must be at most 1000 characters").into());
        }
        let reason = (!reason.is_empty()).then_some(reason);
        let subscription = self.billing.cancel(caller.user_id, reason).await?;
        Ok(Response::new(subscription_to_wire(
            Some(subscription),
            self.billing.now(),
        )))
    }

    async fn reactivate_subscription(
        &self,
        request: Request<pb::ReactivateSubscriptionRequest>,
    ) -> Result<Response<pb::Subscription>, Status> {
        let caller = self.caller(&request).await?;
        let subscription = self.billing.reactivate(caller.user_id).await?;
        Ok(Response::new(subscription_to_wire(
            Some(subscription),
            self.billing.now(),
        )))
    }

    async fn get_pricing(&self, request: Request<pb::GetPricingRequest>) -> Result<Response<pb::Pricing>, Status> {
        let caller = self.caller(&request).await?;
        let eligible = self.billing.welcome_back_eligible(caller.user_id).await?;
        let prices = Product::all()
            .map(|product| pb::Price {
                plan: plan_to_wire(product.plan).into(),
                billing_period: period_to_wire(product.period).into(),
                amount_cents: product.amount_cents(),
                welcome_back_amount_cents: eligible.then(|| product.welcome_back_cents()),
                welcome_back_coupon: if eligible {
                    product.period.welcome_back().coupon.to_owned()
                } else {
                    String::new()
                },
            })
            .collect();
        Ok(Response::new(pb::Pricing {
            currency: "usd".into(),
            welcome_back_eligible: eligible,
            prices,
        }))
    }

    async fn get_standing(&self, request: Request<pb::GetStandingRequest>) -> Result<Response<pb::Standing>, Status> {
        let caller = self.caller(&request).await?;
        let (choose_plan, eligible) = self.billing.standing(caller.user_id).await?;
        let welcome_back_offers = if eligible {
            BillingPeriod::ALL
                .into_iter()
                .map(|period| {
                    let offer = period.welcome_back();
                    pb::WelcomeBackOffer {
                        billing_period: period_to_wire(period).into(),
                        coupon: offer.coupon.to_owned(),
                        percent_off: offer.percent_off,
                    }
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(Response::new(pb::Standing {
            requires_action: if choose_plan {
                "choose_plan".into()
            } else {
                String::new()
            },
            welcome_back_eligible: eligible,
            welcome_back_offers,
        }))
    }

    async fn create_checkout_session(
        &self,
        request: Request<pb::CreateCheckoutSessionRequest>,
    ) -> Result<Response<pb::CheckoutSession>, Status> {
        let caller = self.caller(&request).await?;
        let body = request.into_inner();
        let product = product_from_wire(body.plan, body.billing_period)?;
        let checkout = self.billing.checkout(caller.user_id, product).await?;
        Ok(Response::new(pb::CheckoutSession {
            id: checkout.id,
            url: checkout.url,
            coupon: checkout.coupon.unwrap_or_default().to_owned(),
        }))
    }

    async fn handle_stripe_webhook(
        &self,
        request: Request<pb::HandleStripeWebhookRequest>,
    ) -> Result<Response<pb::HandleStripeWebhookResponse>, Status> {
        let body = request.into_inner();
        let (event_id, outcome) = self.billing.handle_webhook(&body.payload, &body.signature).await?;
        Ok(Response::new(pb::HandleStripeWebhookResponse {
            event_id,
            outcome: outcome.as_str().to_owned(),
        }))
    }

    async fn list_failed_webhooks(
        &self,
        request: Request<pb::ListFailedWebhooksRequest>,
    ) -> Result<Response<pb::ListFailedWebhooksResponse>, Status> {
        self.admin(&request).await?;
        let webhooks = self
            .billing
            .failed_webhooks(request.into_inner().include_resolved)
            .await?;
        Ok(Response::new(pb::ListFailedWebhooksResponse {
            webhooks: webhooks.into_iter().map(Into::into).collect(),
        }))
    }

    async fn replay_failed_webhooks(
        &self,
        request: Request<pb::ReplayFailedWebhooksRequest>,
    ) -> Result<Response<pb::ReplayFailedWebhooksResponse>, Status> {
        self.admin(&request).await?;
        let event_id = request.into_inner().event_id;
        let event_id = Some(event_id.trim()).filter(|id| !id.is_empty());
        let replayed = self.billing.replay_failed(event_id).await?;
        Ok(Response::new(pb::ReplayFailedWebhooksResponse {
            replayed: replayed.into_iter().map(Into::into).collect(),
        }))
    }

    async fn close_account(
        &self,
        request: Request<pb::CloseAccountRequest>,
    ) -> Result<Response<pb::CloseAccountResponse>, Status> {
        self.authenticator.authenticate_service(request.metadata()).await?;
        let body = request.into_inner();
        let user_id =
            Uuid::parse_str(body.user_id.trim()).map_err(|_| Error::invalid("user_id", "user_id must be a UUID"))?;
        let closure = body.idempotency_key.trim();
        if closure.is_empty() || closure.len() > 200 {
            return Err(Error::invalid("idempotency_key", "idempotency_key must be 1 to 200 characters").into());
        }
        let reason = Some(body.reason.trim().to_owned()).filter(|reason| !reason.is_empty());
        let subscription = self.billing.close_account(user_id, reason, closure).await?;
        Ok(Response::new(pb::CloseAccountResponse {
            subscription: Some(subscription_to_wire(subscription, self.billing.now())),
        }))
    }

    async fn erase_customer(
        &self,
        request: Request<pb::EraseCustomerRequest>,
    ) -> Result<Response<pb::EraseCustomerResponse>, Status> {
        self.authenticator.authenticate_service(request.metadata()).await?;
        let user_id = Uuid::parse_str(request.get_ref().user_id.trim())
            .map_err(|_| Error::invalid("user_id", "user_id must be a UUID"))?;
        let erased = self.billing.erase_customer(user_id).await?;
        Ok(Response::new(pb::EraseCustomerResponse { erased }))
    }

    async fn list_customer_events(
        &self,
        request: Request<pb::ListCustomerEventsRequest>,
    ) -> Result<Response<pb::ListCustomerEventsResponse>, Status> {
        self.admin(&request).await?;
        let user_id = Uuid::parse_str(request.get_ref().user_id.trim())
            .map_err(|_| Error::invalid("user_id", "user_id must be a UUID"))?;
        let events = self.billing.events_of(user_id).await?;
        Ok(Response::new(pb::ListCustomerEventsResponse {
            events: events
                .into_iter()
                .map(|(event, details, trace_id, occurred_at)| pb::BillingEvent {
                    event,
                    details_json: details.to_string(),
                    trace_id: trace_id.unwrap_or_default(),
                    occurred_at: Some(wire::timestamp(occurred_at)),
                })
                .collect(),
        }))
    }

    async fn get_reactivation_metrics(
        &self,
        request: Request<pb::GetReactivationMetricsRequest>,
    ) -> Result<Response<pb::ReactivationMetrics>, Status> {
        self.admin(&request).await?;
        let metrics = self.billing.metrics().await?;
        let rate = if metrics.churned == 0 {
            0.0
        } else {
            metrics.returned as f64 * 100.0 / metrics.churned as f64
        };
        Ok(Response::new(pb::ReactivationMetrics {
            churned_customers: metrics.churned.max(0) as u64,
            returned_customers: metrics.returned.max(0) as u64,
            reactivation_rate_percent: rate,
            average_days_to_return: metrics.average_days_to_return,
            returned_monthly: metrics.returned_monthly.max(0) as u64,
            returned_annual: metrics.returned_annual.max(0) as u64,
            welcome_back_offers_used: metrics.offers_used.max(0) as u64,
            weeks: metrics
                .weeks
                .into_iter()
                .map(|week| pb::ReturnsWeek {
                    week_start: Some(wire::timestamp(week.week_start)),
                    cancelled: week.cancelled.max(0) as u64,
                    returned: week.returned.max(0) as u64,
                    returned_monthly: week.returned_monthly.max(0) as u64,
                    returned_annual: week.returned_annual.max(0) as u64,
                    welcome_back_offers_used: week.offers_used.max(0) as u64,
                    average_days_to_return: week.average_days_to_return.unwrap_or(0.0),
                })
                .collect(),
        }))
    }
}
